//! The connections behind a module's `conn` handle: a plain TCP stream
//! (the common case, kept first and direct), a TLS stream to an
//! `https://` backend, a unix-domain stream (`connect_new` with
//! `unix:/path`, a PHP-FPM socket), or a client connection taken over from
//! HTTP after a `101 Switching Protocols` (a WebSocket tunnel) or a
//! CONNECT. The `conn_*` services work on all four.

use crate::http::splice::{poll_op, Pipe};
use modproxy_api::abi::io;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub enum HostConn {
    /// With the pipe of request body bytes spliced to it that the socket
    /// has not taken yet (`body_splice_to`): they go out before anything
    /// written after them, and on a flush.
    Tcp(TcpStream, Option<Pipe>),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Unix(UnixStream),
    /// The client's side of a tunnel; the token (held, never read) keeps
    /// a draining server alive (up to `limits.tunnel_grace`) until the
    /// tunnel closes.
    #[allow(dead_code)]
    Upgraded(
        Box<crate::http::client_io::Upgraded>,
        Option<crate::server::tunnels::Token>,
    ),
}

impl HostConn {
    /// The TCP socket underneath, where there is one we own.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            HostConn::Tcp(s, _) => Some(s),
            HostConn::Tls(s) => Some(s.get_ref().0),
            HostConn::Unix(_) | HostConn::Upgraded(..) => None,
        }
    }

    /// Sends what the pipe of a spliced request body still holds.
    pub fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let HostConn::Tcp(stream, held @ Some(_)) = self else {
            return Poll::Ready(Ok(()));
        };
        if let Some(pipe) = held.as_mut() {
            while pipe.held() > 0 {
                let sent = ready!(poll_op(stream, cx, Interest::WRITABLE, |fd| pipe.drain(fd)))?;
                if sent == 0 {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
            }
        }
        *held = None; // empty: back to its pool
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for HostConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            HostConn::Tcp(s, _) => Pin::new(s).poll_read(cx, buf),
            HostConn::Tls(s) => Pin::new(s).poll_read(cx, buf),
            HostConn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            HostConn::Upgraded(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for HostConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let conn = self.get_mut();
        ready!(conn.poll_release(cx))?;
        match conn {
            HostConn::Tcp(s, _) => Pin::new(s).poll_write(cx, data),
            HostConn::Tls(s) => Pin::new(s).poll_write(cx, data),
            HostConn::Unix(s) => Pin::new(s).poll_write(cx, data),
            HostConn::Upgraded(s, _) => Pin::new(s).poll_write(cx, data),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let conn = self.get_mut();
        ready!(conn.poll_release(cx))?;
        match conn {
            HostConn::Tcp(s, _) => Pin::new(s).poll_flush(cx),
            HostConn::Tls(s) => Pin::new(s).poll_flush(cx),
            HostConn::Unix(s) => Pin::new(s).poll_flush(cx),
            HostConn::Upgraded(s, _) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let conn = self.get_mut();
        ready!(conn.poll_release(cx))?;
        match conn {
            HostConn::Tcp(s, _) => Pin::new(s).poll_shutdown(cx),
            HostConn::Tls(s) => Pin::new(s).poll_shutdown(cx),
            HostConn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            HostConn::Upgraded(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// TCP connect, then the TLS handshake; `Err` is an `io` code.
pub async fn tls_connect(
    addr: String,
    server_name: String,
    insecure: bool,
    alpn_h2: bool,
    ca_file: String,
    timeout: Duration,
) -> Result<HostConn, i32> {
    let config = client_config(insecure, alpn_h2, &ca_file).map_err(|why| {
        crate::log::error(&format!("TLS to {addr}: {why}"));
        io::ERR_TLS
    })?;
    let name = ServerName::try_from(server_name.clone()).map_err(|_| {
        crate::log::error(&format!(
            "TLS to {addr}: {server_name:?} is not a host name or IP address usable for TLS"
        ));
        io::ERR_TLS
    })?;
    let connect = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| super::host_api::io_code(&e))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                crate::log::error(&format!(
                    "TLS handshake with {server_name} ({addr}) failed: {e}; \
                     give the backend's CA with tls_ca_file, or tls_verify = false for a test backend"
                ));
                io::ERR_TLS
            })
    };
    let tls = match tokio::time::timeout(timeout, connect).await {
        Err(_) => return Err(io::ERR_TIMEOUT),
        Ok(r) => r?,
    };
    if alpn_h2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        crate::log::error(&format!(
            "TLS to {server_name} ({addr}): the backend did not agree to HTTP/2 (ALPN h2) \
             on an h2:// connection; enable HTTP/2 on its TLS port, or write https:// \
             to speak HTTP/1.1 to it"
        ));
        return Err(io::ERR_TLS);
    }
    Ok(HostConn::Tls(Box::new(tls)))
}

/// One client config per (insecure, ALPN h2, CA file), made on first use:
/// loading the system's roots reads a few hundred files.
fn client_config(
    insecure: bool,
    alpn_h2: bool,
    ca_file: &str,
) -> Result<Arc<ClientConfig>, String> {
    type ByKey = HashMap<(bool, bool, String), Arc<ClientConfig>>;
    static CONFIGS: OnceLock<Mutex<ByKey>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(Default::default);
    let key = (insecure, alpn_h2, ca_file.to_owned());
    if let Some(c) = configs.lock().map_err(|_| "poisoned")?.get(&key) {
        return Ok(c.clone());
    }
    let builder = ClientConfig::builder_with_provider(crate::server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth()
    };
    // An h2:// backend is offered h2 alone: one that does not speak it
    // must fail the handshake's check, not fall back to HTTP/1.1 bytes
    // the module would not understand.
    config.alpn_protocols = if alpn_h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let config = Arc::new(config);
    if let Ok(mut map) = configs.lock() {
        map.insert(key, config.clone());
    }
    Ok(config)
}

fn roots(ca_file: &str) -> Result<RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let mut store = RootCertStore::empty();
    if ca_file.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("no system CA certificates found (install ca-certificates), so no backend can be verified; or set tls_ca_file".into());
        }
        return Ok(store);
    }
    let path = crate::loader::operate::server_root()
        .map(|root| root.join(ca_file))
        .unwrap_or_else(|| PathBuf::from(ca_file));
    let pem = std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read tls_ca_file {}: {e}; check the path (relative to SERVER_ROOT)",
            path.display()
        )
    })?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| format!("tls_ca_file {} is not PEM ({e:?})", path.display()))?;
        store
            .add(cert)
            .map_err(|e| format!("tls_ca_file {}: unusable certificate ({e})", path.display()))?;
    }
    if store.is_empty() {
        return Err(format!(
            "tls_ca_file {} holds no PEM certificate; give the CA (or self-signed) certificate the backend's chain ends in",
            path.display()
        ));
    }
    Ok(store)
}

/// `tls_verify = false`: any certificate is accepted, but the handshake
/// signatures are still checked (the peer holds the key it presents).
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &crate::server::tls::provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &crate::server::tls::provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::server::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
