//! TLS termination (mod_ssl's job) with rustls: every `[[vhost]]` with
//! `tls_certificate` and `tls_key` makes its listeners TLS listeners. The
//! client's SNI picks among the certificates of the vhosts on a listener
//! by `server_name` / `server_alias`; without SNI, or for an unknown name,
//! the first TLS vhost on the listener answers (Apache's default vhost
//! rule). TLS 1.2 and 1.3, ALPN `h2` (when a vhost's `protocols` has it)
//! and `http/1.1`.
//!
//! Everything is read and checked at startup, so `configtest` and a
//! restart onto a broken certificate fail with the reason, and a restart
//! (a new process) picks up renewed certificates.

use modproxy_config::{Config, TlsFiles, Vhost};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The TLS configuration of every TLS listener, by address.
#[derive(Default)]
pub struct TlsListeners {
    by_addr: HashMap<SocketAddr, Arc<ServerConfig>>,
}

impl TlsListeners {
    /// The acceptor for `addr`, or `None` for a plain listener.
    pub fn acceptor(&self, addr: &SocketAddr) -> Option<tokio_rustls::TlsAcceptor> {
        self.by_addr
            .get(addr)
            .map(|c| tokio_rustls::TlsAcceptor::from(c.clone()))
    }
}

/// The one crypto provider: ring, compiled in (no OpenSSL).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every vhost's certificate and key and builds one server config
/// per TLS listener. Every problem is one line naming the vhost and file.
pub fn load(config: &Config, server_root: &Path) -> Result<TlsListeners, Vec<String>> {
    let mut errors = Vec::new();
    let mut keys: HashMap<usize, Arc<CertifiedKey>> = HashMap::new();
    for v in &config.vhosts {
        if let Some(files) = &v.tls {
            match certified_key(files, server_root) {
                Ok(k) => {
                    keys.insert(v.index, Arc::new(k));
                }
                Err(why) => errors.push(format!("{}: {}.{why}", v.file.display(), v.key_path())),
            }
        }
    }
    let mut out = TlsListeners::default();
    let mut addrs: Vec<SocketAddr> = config
        .vhosts
        .iter()
        .flat_map(|v| v.listen.clone())
        .collect();
    addrs.sort();
    addrs.dedup();
    for addr in addrs {
        let on: Vec<&Vhost> = config
            .vhosts
            .iter()
            .filter(|v| v.listen.contains(&addr))
            .collect();
        if on.iter().all(|v| v.tls.is_none()) {
            continue;
        }
        for v in on.iter().filter(|v| v.tls.is_none()) {
            errors.push(format!(
                "{}: {}: listens on {addr}, where other vhosts use TLS, but has no tls_certificate; \
                 a listener is either TLS or plain: give it tls_certificate and tls_key, or another address",
                v.file.display(),
                v.key_path()
            ));
        }
        let resolver = SniResolver::new(&on, &keys);
        let Some(resolver) = resolver else {
            continue; // Its certificates failed to load: already reported.
        };
        let h2 = on.iter().any(|v| v.tls.is_some() && v.protocols.h2);
        match server_config(resolver, h2) {
            Ok(c) => {
                out.by_addr.insert(addr, Arc::new(c));
            }
            Err(e) => errors.push(format!("TLS setup for {addr} failed: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// ALPN offers `h2` first when a vhost on the listener serves it
/// (`protocols`), as Apache and nginx do; a client that offers neither
/// gets HTTP/1.1.
fn server_config(resolver: SniResolver, h2: bool) -> Result<ServerConfig, rustls::Error> {
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    c.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(c)
}

/// Reads and checks one vhost's pair; the error continues the key path
/// (`tls_key: ...`).
fn certified_key(files: &TlsFiles, server_root: &Path) -> Result<CertifiedKey, String> {
    let cert_path = server_root.join(&files.certificate);
    let key_path = server_root.join(&files.key);
    let cert_pem = read("tls_certificate", &cert_path)?;
    let key_pem = read("tls_key", &key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| not_pem("tls_certificate", &cert_path, "certificates", &e))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_certificate: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----); \
             give the server's certificate, then its intermediates",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| not_pem("tls_key", &key_path, "a private key", &e))?;
    let signing = provider().key_provider.load_private_key(key).map_err(|e| {
        format!(
            "tls_key: {} is not a usable private key ({e}); use an RSA, ECDSA (P-256/P-384) or Ed25519 key",
            key_path.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "tls_key: {} does not match the certificate in {}; give the key the certificate was issued for",
            key_path.display(),
            cert_path.display()
        )),
        Err(e) => Err(format!(
            "tls_certificate: {} is not a valid certificate ({e}); check the file holds the server's certificate first",
            cert_path.display()
        )),
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "{key}: cannot read {}: {e}; check the path (relative to SERVER_ROOT) and that modproxy may read it",
            path.display()
        )
    })
}

fn not_pem(key: &str, path: &Path, what: &str, e: &rustls_pki_types::pem::Error) -> String {
    format!(
        "{key}: {} does not hold {what} in PEM form ({e:?}); convert it, e.g. `openssl x509 -inform der -in FILE -out FILE.pem`",
        path.display()
    )
}

/// Picks a certificate by the client's SNI name.
#[derive(Debug)]
struct SniResolver {
    /// Lowercase server_name and server_alias of each TLS vhost, in order.
    names: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn new(on: &[&Vhost], keys: &HashMap<usize, Arc<CertifiedKey>>) -> Option<SniResolver> {
        let mut names = Vec::new();
        let mut default = None;
        for v in on {
            let Some(key) = keys.get(&v.index) else {
                continue;
            };
            default.get_or_insert_with(|| key.clone());
            for n in v.server_name.iter().chain(&v.server_alias) {
                names.push((n.to_ascii_lowercase(), key.clone()));
            }
        }
        if on
            .iter()
            .any(|v| v.tls.is_some() && !keys.contains_key(&v.index))
        {
            return None;
        }
        Some(SniResolver {
            names,
            default: default?,
        })
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = hello.server_name().and_then(|sni| {
            self.names
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(sni))
                .map(|(_, k)| k.clone())
        });
        Some(key.unwrap_or_else(|| self.default.clone()))
    }
}
