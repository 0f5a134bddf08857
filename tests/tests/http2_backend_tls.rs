//! `h2://` backends in proxy_http2: TLS with ALPN h2 to a real nghttpd,
//! verified against a configured CA file or not at all with `tls_verify =
//! false`; a TLS backend that does not pick h2 is refused with a line
//! saying so, never spoken to in the wrong protocol.

#[path = "support/h2.rs"]
mod h2;
#[path = "support/tls.rs"]
mod tls;

use h2::{serve, Backend};
use modproxy_tests::{checksum, get, noise, request};
use tls::{Cert, TlsBackend};

struct Site {
    dir: std::path::PathBuf,
}

impl Site {
    fn new(cert: &Cert) -> Site {
        let dir = std::env::temp_dir().join(format!(
            "modproxy-h2-tls-{}-{}",
            std::process::id(),
            modproxy_tests::free_port()
        ));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/index.html"), "hello over h2").unwrap();
        std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &cert.pem).unwrap();
        Site { dir }
    }
    fn nghttpd(&self) -> Backend {
        let (key, cert) = (self.dir.join("key.pem"), self.dir.join("cert.pem"));
        Backend::nghttpd(&self.dir.join("www"), Some((&key, &cert)))
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_h2_backend_is_verified_against_its_ca_file_or_not_at_all() {
    let cert = Cert::new(&["localhost"]);
    let site = Site::new(&cert);
    let nghttpd = site.nghttpd();
    let url = format!("h2://localhost:{}/", nghttpd.port);

    let (root, server) = serve(
        &[],
        &format!("pass = [{{ path = \"/\", url = \"{url}\", tls_ca_file = \"tls/backend.crt\" }}]"),
    );
    root.write("tls/backend.crt", &cert.pem);
    let r = get(server.port, "/index.html", &[]).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello over h2"),
        "{}",
        root.log()
    );
    // A POST body up and the file down on the same verified connection.
    let body = noise(2 << 20, 3);
    let r = request(server.port, "POST", "/index.html", &[], &body).unwrap();
    assert!(r.status < 500, "{} {}", r.status, root.log());

    let (_root, insecure) = serve(
        &[],
        &format!("pass = [{{ path = \"/\", url = \"{url}\", tls_verify = false }}]"),
    );
    let r = get(insecure.port, "/index.html", &[]).unwrap();
    assert_eq!(
        (r.status, checksum(&r.body)),
        (200, checksum(b"hello over h2"))
    );

    let (strict_root, strict) = serve(
        &[],
        &format!("pass = [{{ path = \"/\", url = \"{url}\" }}]"),
    );
    let r = get(strict.port, "/index.html", &[]).unwrap();
    assert!(r.status == 502 || r.status == 503, "status {}", r.status);
    let log = strict_root.log();
    assert!(
        log.contains("tls_ca_file"),
        "the log says what to do:\n{log}"
    );
}

#[test]
fn large_bodies_cross_an_h2_connection_both_ways_byte_exact() {
    // Every frame through the host's TLS stream, bodies on the same
    // connection both ways, the last bytes flushed (io.rs).
    let cert = Cert::new(&["localhost"]);
    let site = Site::new(&cert);
    let b = Backend::python_tls("tls", &site.dir.join("cert.pem"), &site.dir.join("key.pem"));
    let (root, server) = serve(
        &[],
        &format!(
            "pass = [{{ path = \"/\", url = \"h2://localhost:{}/\", tls_verify = false }}]",
            b.port
        ),
    );
    for size in [1, 70_000, 5 << 20] {
        let body = noise(size, size as u64);
        let r = request(server.port, "POST", "/echo", &[], &body).unwrap();
        assert_eq!(r.status, 200, "{}\n{}", root.log(), b.log());
        assert_eq!((r.body.len(), checksum(&r.body)), (size, checksum(&body)));
    }
    let r = get(server.port, "/big?n=4194304", &[]).unwrap();
    assert_eq!(r.body.len(), 4 << 20);
    assert_eq!(r.header("x-backend"), Some("tls"));
}

#[test]
fn a_tls_backend_that_does_not_pick_h2_is_refused_with_a_clear_error() {
    // A plain HTTPS server: no ALPN, HTTP/1.1 only.
    let cert = Cert::new(&["localhost"]);
    let backend = TlsBackend::start(&cert, "http/1.1 only");
    let (root, server) = serve(
        &[],
        &format!(
            "pass = [{{ path = \"/\", url = \"h2://localhost:{}/\", tls_verify = false }}]",
            backend.port
        ),
    );
    let r = get(server.port, "/", &[]).unwrap();
    assert!(r.status == 502 || r.status == 503, "status {}", r.status);
    let log = root.log();
    assert!(
        log.contains("did not agree to HTTP/2 (ALPN h2)") && log.contains("https://"),
        "the log names the problem and the way out:\n{log}"
    );
}
