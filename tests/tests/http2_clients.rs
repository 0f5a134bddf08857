//! HTTP/2 to clients: h2 over TLS by ALPN (the default on TLS vhosts)
//! and h2c with prior knowledge where `protocols` lists it, curl on the
//! other end. A stream is the same request to every module as an
//! HTTP/1.1 one: the tutorial's Example 2 balances h2 requests unchanged,
//! bodies of megabytes go both ways within HTTP/2's flow control, and the
//! backend is spoken to in HTTP/1.1 with the h2 request's fields.

#[path = "support/tls.rs"]
mod tls;

use modproxy_tests::{free_port, Backend, Server, ServerRoot};
use std::process::{Command, Output};

fn curl(args: &[&str]) -> Output {
    curl_within("20", args)
}

/// curl, given `seconds` in all (the bodies of megabytes get more).
fn curl_within(seconds: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", seconds])
        .args(args)
        .output()
        .expect("curl is installed")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn echo_backend() -> Backend {
    Backend::start(|seen| (200, vec![], seen.body.clone()))
}

#[test]
fn h2_by_alpn_on_tls_and_h2c_by_prior_knowledge_on_plain() {
    let cert = tls::Cert::new(&["a.test"]);
    let backend = Backend::text("hello");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    root.write("tls/a.crt", &cert.pem);
    root.write("tls/a.key", &cert.key_pem);
    let (tls_port, h2c_port, plain_port) = (free_port(), free_port(), free_port());
    let pass = format!(
        "[vhost.proxy]\npreserve_host = true\npass = [{{ path = \"/\", url = \"{}/\" }}]\n",
        backend.url()
    );
    root.config(&format!(
        "[log]\naccess_log = \"logs/access.log\"\n\
         [[vhost]]\nlisten = \"127.0.0.1:{tls_port}\"\nserver_name = \"a.test\"\n\
         tls_certificate = \"tls/a.crt\"\ntls_key = \"tls/a.key\"\n{pass}\n\
         [[vhost]]\nlisten = \"127.0.0.1:{h2c_port}\"\nprotocols = [\"h2c\", \"http/1.1\"]\n{pass}\n\
         [[vhost]]\nlisten = \"127.0.0.1:{plain_port}\"\n{pass}\n"
    ));
    let _server = Server::start(&root, tls_port);

    let resolve = format!("a.test:{tls_port}:127.0.0.1");
    let cacert = root.dir.join("tls/a.crt");
    let url = format!("https://a.test:{tls_port}/tls");
    let cacert = cacert.to_str().unwrap();
    let tls = |version: &str| {
        curl(&[
            version,
            "--resolve",
            &resolve,
            "--cacert",
            cacert,
            "-w",
            " %{http_version}",
            &url,
        ])
    };
    let out = tls("--http2");
    assert_eq!(text(&out), "hello 2", "{out:?}");
    // A client that offers only HTTP/1.1 gets it.
    let out = tls("--http1.1");
    assert_eq!(text(&out), "hello 1.1", "{out:?}");

    let h2c = |version: &str, path: &str| {
        curl(&[
            version,
            "-w",
            " %{http_version}",
            &format!("http://127.0.0.1:{h2c_port}{path}"),
        ])
    };
    let out = h2c("--http2-prior-knowledge", "/h2c");
    assert_eq!(text(&out), "hello 2", "{out:?}");
    let out = h2c("--http1.1", "/h1");
    assert_eq!(
        text(&out),
        "hello 1.1",
        "HTTP/1.1 on an h2c listener: {out:?}"
    );
    // Where h2c is not listed, the preface is no HTTP/1.1 request either.
    let out = curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{plain_port}/no"),
    ]);
    assert!(
        !out.status.success() || !text(&out).contains("hello"),
        "{out:?}"
    );

    // The backend hears HTTP/1.1, with the h2 request's authority as Host.
    let seen = backend.seen();
    let h2c = seen
        .iter()
        .find(|r| r.target == "/h2c")
        .expect("the h2c request");
    assert_eq!(h2c.header("host"), Some(&*format!("127.0.0.1:{h2c_port}")));
    let tls_req = seen.iter().find(|r| r.target == "/tls").unwrap();
    assert_eq!(tls_req.header("x-forwarded-proto"), Some("https"));
    assert!(seen.iter().all(|r| r.target != "/no"));

    let log = std::fs::read_to_string(root.dir.join("logs/access.log")).unwrap();
    assert!(log.contains("\"GET /tls HTTP/2.0\" 200"), "{log}");
    assert!(log.contains("\"GET /h2c HTTP/2.0\" 200"), "{log}");
    assert!(log.contains("\"GET /h1 HTTP/1.1\" 200"), "{log}");
}

#[test]
fn example2_balances_h2_requests_as_http11_ones() {
    let (a, b) = (Backend::text("A"), Backend::text("B"));
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_balancer", "lbmethod_byrequests"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nprotocols = [\"h2c\", \"http/1.1\"]\n\
         [vhost.proxy]\npreserve_host = true\n\
         pass = [{{ path = \"/\", url = \"balancer://mycluster/\" }}]\n\
         pass_reverse = [{{ path = \"/\", url = \"balancer://mycluster/\" }}]\n\
         [[vhost.proxy.balancer]]\nname = \"mycluster\"\n\
         members = [{{ url = \"{}\" }}, {{ url = \"{}\" }}]\n",
        a.url(),
        b.url()
    ));
    let _server = Server::start(&root, port);
    // A hundred requests on one connection, ten streams at a time.
    let out = Command::new("h2load")
        .args(["-n", "100", "-c", "1", "-m", "10"])
        .arg(format!("http://127.0.0.1:{port}/r"))
        .output()
        .expect("h2load is installed (nghttp2-client)");
    let report = text(&out);
    assert!(report.contains("100 succeeded, 0 failed"), "{report}");
    assert_eq!(
        (a.seen().len(), b.seen().len()),
        (50, 50),
        "byrequests alternates"
    );
    let out = curl(&[
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        &format!("http://127.0.0.1:{port}/one"),
    ]);
    assert!(text(&out) == "A 2" || text(&out) == "B 2", "{out:?}");
    assert_eq!(
        a.seen()[0].header("host"),
        Some(&*format!("127.0.0.1:{port}")),
        "preserve_host"
    );
}

#[test]
fn megabytes_go_both_ways_within_flow_control() {
    let backend = echo_backend();
    let big = Backend::start(|_| (200, vec![], vec![b'z'; 24 << 20]));
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nprotocols = [\"h2c\", \"http/1.1\"]\n\
         [vhost.proxy]\npass = [{{ path = \"/big\", url = \"{}/big\" }}, {{ path = \"/\", url = \"{}/\" }}]\n",
        big.url(),
        backend.url()
    ));
    let _server = Server::start(&root, port);
    let upload = root.dir.join("upload.bin");
    let data: Vec<u8> = (0..(9u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&upload, &data).unwrap();
    let at = format!("@{}", upload.display());
    let url = format!("http://127.0.0.1:{port}/echo");
    // With a Content-Length, and streamed without one (chunked to the backend).
    let out = curl_within(
        "30",
        &["--http2-prior-knowledge", "--data-binary", &at, &url],
    );
    assert!(
        out.stdout == data,
        "9 MiB echoed byte-exact ({} bytes back)",
        out.stdout.len()
    );
    let out = curl_within(
        "30",
        &[
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-T",
            upload.to_str().unwrap(),
            "-H",
            "Content-Length:",
            &url,
        ],
    );
    assert!(
        out.stdout == data,
        "streamed upload echoed ({} bytes back)",
        out.stdout.len()
    );
    let seen = backend.seen();
    assert!(
        seen.iter()
            .any(|r| r.header("transfer-encoding") == Some("chunked")),
        "a body of unknown length goes chunked"
    );
    let out = curl_within(
        "30",
        &[
            "--http2-prior-knowledge",
            &format!("http://127.0.0.1:{port}/big"),
        ],
    );
    assert_eq!(out.stdout.len(), 24 << 20);
    assert!(out.stdout.iter().all(|&b| b == b'z'));
}

#[test]
fn the_core_and_the_manager_count_requests_by_protocol() {
    let backend = Backend::text("ok");
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_balancer"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nprotocols = [\"h2c\", \"http/1.1\"]\n\
         [vhost.balancer_manager]\npath = \"/balancer-manager\"\nmetrics = \"/metrics\"\n\
         [vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n",
        backend.url()
    ));
    let _server = Server::start(&root, port);
    for _ in 0..3 {
        curl(&[
            "--http2-prior-knowledge",
            &format!("http://127.0.0.1:{port}/x"),
        ]);
    }
    curl(&[&format!("http://127.0.0.1:{port}/y")]);
    let metrics = text(&curl(&[&format!("http://127.0.0.1:{port}/metrics")]));
    assert!(
        metrics.contains("modproxy_requests_by_protocol_total{protocol=\"HTTP/2.0\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("modproxy_requests_by_protocol_total{protocol=\"HTTP/1.1\"} 1"),
        "{metrics}"
    );
}
