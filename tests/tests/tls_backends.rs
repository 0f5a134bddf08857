//! `https://` backends in proxy_http: verified against a configured CA
//! file (and refused without it, since a self-signed certificate is in no
//! system store), or accepted unverified with `tls_verify = false`; SNI is
//! the URL's host.

#[path = "support/tls.rs"]
mod tls;

use modproxy_tests::{get, Proxied};
use tls::{Cert, TlsBackend};

fn proxy_to_https(backend: &TlsBackend, keys: &str, cert: &Cert) -> Proxied {
    let p = Proxied::start(&format!(
        "pass = [{{ path = \"/\", url = \"https://localhost:{}/\"{keys} }}]",
        backend.port
    ));
    p.root.write("tls/backend.crt", &cert.pem);
    p
}

#[test]
fn a_self_signed_backend_is_refused_unless_its_ca_is_given_or_verification_is_off() {
    let cert = Cert::new(&["localhost"]);
    let backend = TlsBackend::start(&cert, "secret");

    let strict = proxy_to_https(&backend, "", &cert);
    let r = get(strict.port, "/", &[]).unwrap();
    assert!(r.status == 502 || r.status == 503, "status {}", r.status);
    let log = strict.log_eventually("TLS handshake with localhost");
    assert!(
        log.contains("tls_ca_file"),
        "the log says what to do:\n{log}"
    );

    let with_ca = proxy_to_https(&backend, ", tls_ca_file = \"tls/backend.crt\"", &cert);
    let r = get(with_ca.port, "/", &[]).unwrap();
    assert_eq!(
        (r.status, r.text()),
        (200, "secret".to_string()),
        "{}",
        with_ca.log()
    );
    // Pooled: a second request reuses the TLS connection.
    assert_eq!(get(with_ca.port, "/", &[]).unwrap().status, 200);

    let insecure = proxy_to_https(&backend, ", tls_verify = false", &cert);
    let r = get(insecure.port, "/", &[]).unwrap();
    assert_eq!((r.status, r.text()), (200, "secret".to_string()));

    let sni = backend.sni.lock().unwrap().clone();
    assert!(
        sni.iter().all(|n| n.as_deref() == Some("localhost")),
        "SNI is the URL's host: {sni:?}"
    );
}
