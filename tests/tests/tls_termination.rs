//! TLS on listeners (mod_ssl's job): SNI picks the vhost's certificate,
//! TLS 1.2 and 1.3 with ALPN http/1.1, X-Forwarded-Proto says https, curl
//! speaks to it, configtest names a missing, non-PEM or mismatched key,
//! a restart loads renewed certificates, and WebSockets work over TLS.

#[path = "support/tls.rs"]
mod tls;
#[path = "support/ws.rs"]
mod ws;

use modproxy_tests::{free_port, Backend, Server, ServerRoot};
use std::process::Command;
use tls::Cert;

/// Two TLS vhosts on one port, a.test and b.test, both proxying to `backend`.
fn two_sites(root: &ServerRoot, port: u16, a: &Cert, b: &Cert, backend: &str) {
    root.write("tls/a.crt", &a.pem);
    root.write("tls/a.key", &a.key_pem);
    root.write("tls/b.crt", &b.pem);
    root.write("tls/b.key", &b.key_pem);
    let site = |name: &str| {
        format!(
            "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"{name}.test\"\n\
             tls_certificate = \"tls/{name}.crt\"\ntls_key = \"tls/{name}.key\"\n\
             [vhost.proxy]\npass = [{{ path = \"/\", url = \"{backend}/{name}/\" }}]\n"
        )
    };
    root.config(&format!("{}\n{}", site("a"), site("b")));
}

#[test]
fn sni_picks_each_vhosts_certificate_and_the_backend_sees_https() {
    let (a, b) = (Cert::new(&["a.test"]), Cert::new(&["b.test"]));
    let backend = Backend::text("ok");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    two_sites(&root, port, &a, &b, &backend.url());
    let _server = Server::start(&root, port);
    let trust_both = tls::client_config(&[&a, &b]);

    let (seen, answer) = tls::get(trust_both.clone(), port, "a.test", "/x").unwrap();
    assert_eq!(seen, a.der, "SNI a.test gets a.test's certificate");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (seen, _) = tls::get(trust_both, port, "b.test", "/y").unwrap();
    assert_eq!(seen, b.der, "SNI b.test gets b.test's certificate");

    let requests = backend.seen();
    assert_eq!(requests[0].target, "/a/x");
    assert_eq!(requests[1].target, "/b/y", "the vhost follows the name");
    assert_eq!(requests[0].header("x-forwarded-proto"), Some("https"));

    // A client that trusts only b's certificate refuses a.test's.
    let err = tls::connect(tls::client_config(&[&b]), port, "a.test").unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // An unknown name gets the first TLS vhost's certificate.
    let mut c = rustls::ClientConfig::clone(&tls::client_config(&[&a]));
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    let err = tls::connect(std::sync::Arc::new(c.clone()), port, "other.test").unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("not valid for name") && err.contains("DnsName(\"a.test\")"),
        "{err}"
    );

    // ALPN http/1.1, and TLS 1.2 as well as 1.3.
    let s = tls::connect(std::sync::Arc::new(c), port, "a.test").unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut store = rustls::RootCertStore::empty();
    store.add(a.der.clone()).unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let s = tls::connect(std::sync::Arc::new(tls12), port, "a.test").unwrap();
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn curl_gets_a_page_over_https_and_refuses_an_untrusted_certificate() {
    let (a, b) = (Cert::new(&["a.test"]), Cert::new(&["b.test"]));
    let backend = Backend::text("hello over tls");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    two_sites(&root, port, &a, &b, &backend.url());
    let _server = Server::start(&root, port);
    let curl = |ca: &str, name: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(root.dir.join(ca))
            .arg("--resolve")
            .arg(format!("{name}:{port}:127.0.0.1"))
            .arg(format!("https://{name}:{port}/"))
            .output()
            .expect("curl is installed")
    };
    let ok = curl("tls/a.crt", "a.test");
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "hello over tls");
    let ok = curl("tls/b.crt", "b.test");
    assert!(ok.status.success(), "{ok:?}");
    // a.test's certificate is not signed by b's: curl refuses it (60).
    let refused = curl("tls/b.crt", "a.test");
    assert_eq!(refused.status.code(), Some(60), "{refused:?}");
}

#[test]
fn configtest_names_a_missing_unreadable_non_pem_or_mismatched_key() {
    let (a, b) = (Cert::new(&["a.test"]), Cert::new(&["b.test"]));
    let root = ServerRoot::new();
    let port = free_port();
    let config = |cert: &str, key: &str| {
        root.config(&format!(
            "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\ntls_certificate = \"{cert}\"\ntls_key = \"{key}\"\n"
        ));
        let out = root.cli(&["configtest"]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    root.write("a.crt", &a.pem);
    root.write("a.key", &a.key_pem);
    root.write("b.key", &b.key_pem);
    root.write("junk.crt", "not a certificate\n");
    assert_eq!(
        config("a.crt", "a.key").0,
        Some(0),
        "a matching pair is fine"
    );

    let (code, err) = config("a.crt", "missing.key");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("vhost[0].tls_key: cannot read") && err.contains("missing.key"),
        "{err}"
    );
    let (_, err) = config("junk.crt", "a.key");
    assert!(
        err.contains("vhost[0].tls_certificate") && err.contains("no PEM certificate"),
        "{err}"
    );
    let (_, err) = config("a.crt", "junk.crt");
    assert!(
        err.contains("tls_key") && err.contains("private key in PEM form"),
        "{err}"
    );
    let (_, err) = config("a.crt", "b.key");
    assert!(
        err.contains("vhost[0].tls_key") && err.contains("does not match the certificate"),
        "{err}"
    );

    // A plain vhost on a TLS listener is refused, naming both choices.
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\ntls_certificate = \"a.crt\"\ntls_key = \"a.key\"\n\
         [[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"plain\"\n"
    ));
    let err = String::from_utf8_lossy(&root.cli(&["configtest"]).stderr).into_owned();
    assert!(
        err.contains("vhost[1]") && err.contains("either TLS or plain"),
        "{err}"
    );
}

#[test]
fn a_restart_loads_renewed_certificates() {
    let (old, new) = (Cert::new(&["a.test"]), Cert::new(&["a.test"]));
    let backend = Backend::text("ok");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    two_sites(&root, port, &old, &Cert::new(&["b.test"]), &backend.url());
    let _server = Server::start(&root, port);
    let trust = tls::client_config(&[&old, &new]);
    assert_eq!(
        tls::get(trust.clone(), port, "a.test", "/").unwrap().0,
        old.der
    );

    root.write("tls/a.crt", &new.pem);
    root.write("tls/a.key", &new.key_pem);
    root.restart();
    let after = tls::get(trust, port, "a.test", "/");
    let after = after.unwrap_or_else(|e| panic!("after the restart: {e}\n{}", root.log()));
    assert_eq!(after.0, new.der);
}

#[test]
fn a_websocket_tunnel_runs_over_a_tls_listener() {
    let a = Cert::new(&["a.test"]);
    let echo = ws::EchoBackend::start();
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_wstunnel"]);
    let port = free_port();
    root.write("tls/a.crt", &a.pem);
    root.write("tls/a.key", &a.key_pem);
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"a.test\"\n\
         tls_certificate = \"tls/a.crt\"\ntls_key = \"tls/a.key\"\n\
         [vhost.proxy]\npass = [{{ path = \"/\", url = \"ws://127.0.0.1:{}/\" }}]\n",
        echo.port
    ));
    let _server = Server::start(&root, port);
    let stream = tls::connect(tls::client_config(&[&a]), port, "a.test").unwrap();
    let (mut socket, _) = tungstenite::client(format!("wss://a.test:{port}/chat"), stream)
        .unwrap_or_else(|e| panic!("{e}\n{}", root.log()));
    socket.send(tungstenite::Message::text("over tls")).unwrap();
    assert_eq!(
        socket.read().unwrap(),
        tungstenite::Message::text("over tls")
    );
    let seen = echo.seen.lock().unwrap().clone();
    assert_eq!(seen[0], ("/chat".to_string(), Some("https".to_string())));
}
