//! TLS for the end-to-end tests: self-signed certificates made at test
#![allow(dead_code)] // Each test file uses part of it.
//! time (rcgen) and a blocking rustls client that reports which
//! certificate the server presented.

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// A self-signed certificate for some names, with its key, as PEM.
pub struct Cert {
    pub pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Cert {
    pub fn new(names: &[&str]) -> Cert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).expect("a test certificate");
        Cert {
            pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
            der: made.cert.der().clone(),
        }
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config trusting exactly `roots`.
pub fn client_config(roots: &[&Cert]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for c in roots {
        store.add(c.der.clone()).expect("a usable root");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to 127.0.0.1:`port` with SNI `name`.
pub fn connect(
    config: Arc<ClientConfig>,
    port: u16,
    name: &str,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
    let server_name = ServerName::try_from(name.to_string()).expect("a DNS name");
    let conn = ClientConnection::new(config, server_name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    // Complete the handshake now, so a refused certificate shows here.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// GET `path` with Host `name` over TLS; (certificate seen, raw response).
pub fn get(
    config: Arc<ClientConfig>,
    port: u16,
    name: &str,
    path: &str,
) -> std::io::Result<(CertificateDer<'static>, String)> {
    let mut s = connect(config, port, name)?;
    let seen = s.conn.peer_certificates().expect("a certificate")[0].clone();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer closing without close_notify still delivered the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    Ok((seen, String::from_utf8_lossy(&out).into_owned()))
}

/// A small HTTPS backend (one thread per connection) answering every
/// request with `body`; records the SNI name each client sent.
pub struct TlsBackend {
    pub port: u16,
    pub sni: Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl TlsBackend {
    pub fn start(cert: &Cert, body: &'static str) -> TlsBackend {
        use rustls::pki_types::pem::PemObject;
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sni = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sni.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let (config, seen) = (config.clone(), seen.clone());
                std::thread::spawn(move || serve(config, tcp, body, seen));
            }
        });
        TlsBackend { port, sni }
    }
}

fn serve(
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    body: &str,
    seen: Arc<std::sync::Mutex<Vec<Option<String>>>>,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(15)));
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        seen.lock()
            .unwrap()
            .push(s.conn.server_name().map(str::to_owned));
        head.clear();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(answer.as_bytes())
            .and_then(|_| s.flush())
            .is_err()
        {
            return;
        }
    }
}
