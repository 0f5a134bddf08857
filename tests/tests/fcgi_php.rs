//! proxy_fcgi against a real PHP-FPM started by the test on loopback:
//! pages, a 3 MiB body echoed byte-exact, a redirect mapped back by
//! pass_reverse, a status PHP sets, a fatal error, a unix socket, kept
//! connections, balancer members, and PHP-FPM going away.

use modproxy_tests::{checksum, free_port, get, noise, request, PhpFpm, Server, ServerRoot};

/// modproxy with proxy_fcgi (and proxy_balancer, for `extra` sections)
/// and one vhost whose `[vhost.proxy]` body is `proxy`.
fn serve(proxy: &str, extra: &str) -> (ServerRoot, Server, u16) {
    let root = ServerRoot::new();
    root.enable(&["proxy_fcgi", "proxy_balancer", "lbmethod_byrequests"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\n\n[vhost.proxy]\n{proxy}\n{extra}\n"
    ));
    let server = Server::start(&root, port);
    (root, server, port)
}

fn app(fpm: &PhpFpm, keys: &str) -> (ServerRoot, Server, u16) {
    serve(
        &format!(
            "pass = [{{ path = \"/app/\", url = \"{}/\"{keys} }}]\npass_reverse = [{{ path = \"/app/\", url = \"http://backend.internal/app/\" }}]",
            fpm.url()
        ),
        "",
    )
}

#[test]
fn a_php_page_is_served_with_its_fields() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = app(&fpm, "");
    let r = get(port, "/app/index.php", &[]).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", root.log(), fpm.log());
    assert_eq!(r.text(), "Hello from PHP 8 via GET pool www");
    assert_eq!(r.header("x-powered"), Some("fpm"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // The whole body came with the head: its length is known.
    assert_eq!(r.header("content-length"), Some("33"));
    let head = request(port, "HEAD", "/app/index.php", &[], b"").unwrap();
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[test]
fn a_three_mib_post_comes_back_byte_exact() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = app(&fpm, "");
    let body = noise(3 * 1024 * 1024, 16);
    let r = request(
        port,
        "POST",
        "/app/echo.php",
        &[("Content-Type", "application/octet-stream")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", root.log(), fpm.log());
    assert_eq!(r.header("x-received"), Some("3145728"));
    assert_eq!(r.body.len(), body.len());
    assert_eq!(checksum(&r.body), checksum(&body));
}

#[test]
fn a_chunked_post_is_read_whole_and_gets_its_length() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = app(&fpm, "");
    let mut c = modproxy_tests::Conn::open(port).unwrap();
    c.send(b"POST /app/echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", root.log());
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("x-received"), Some("11"));
}

#[test]
fn a_php_redirect_is_mapped_back_by_pass_reverse() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = app(&fpm, "");
    let r = get(port, "/app/redirect.php", &[]).unwrap();
    assert_eq!(r.status, 302, "{}", root.log());
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://127.0.0.1:{port}/app/next.php?from=redirect")
    );
}

#[test]
fn a_status_set_by_php_reaches_the_client() {
    let fpm = PhpFpm::start();
    let (_root, _server, port) = app(&fpm, "");
    let r = get(port, "/app/status.php", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no such thing, says PHP");
}

#[test]
fn a_fatal_php_error_is_a_500_and_its_message_is_logged_with_the_backend() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = app(&fpm, "");
    let r = get(port, "/app/fatal.php", &[]).unwrap();
    assert_eq!(r.status, 500, "{}", root.log());
    let worker = format!("fcgi://127.0.0.1:{}", fpm.port());
    let log = root.log();
    let line = log
        .lines()
        .find(|l| l.contains("FastCGI stderr") && l.contains("no_such_function_at_all"))
        .unwrap_or_else(|| panic!("no stderr line in the log:\n{log}"));
    assert!(line.contains(&worker), "{line}");
    assert!(line.contains("PHP Fatal error"), "{line}");
    // A script that only writes to its error log still answers.
    let r = get(port, "/app/warn.php", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "warned"));
    assert!(root.log().contains("a note from the script"));
}

#[test]
fn a_missing_script_is_php_fpms_404() {
    let fpm = PhpFpm::start();
    let (_root, _server, port) = app(&fpm, "");
    let r = get(port, "/app/nothing-here.php", &[]).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn php_fpm_down_is_a_503_naming_the_backend_and_nothing_hangs() {
    let mut fpm = PhpFpm::start();
    let (root, _server, port) = app(&fpm, ", retry = 0");
    assert_eq!(get(port, "/app/small.php", &[]).unwrap().status, 200);
    fpm.stop();
    let started = std::time::Instant::now();
    let r = get(port, "/app/small.php", &[]).unwrap();
    assert_eq!(r.status, 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let log = root.log();
    assert!(
        log.contains(&format!("connect to 127.0.0.1:{} failed", fpm.port()))
            && log.contains("is the FastCGI server (PHP-FPM) running"),
        "{log}"
    );
}

#[test]
fn a_unix_socket_written_as_apache_does() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = serve(
        &format!(
            "pass = [{{ path = \"/\", url = \"unix:{}|fcgi://localhost{}/\" }}]",
            fpm.socket().display(),
            fpm.docroot().display()
        ),
        "",
    );
    let r = get(port, "/index.php", &[]).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", root.log(), fpm.log());
    assert_eq!(r.text(), "Hello from PHP 8 via GET pool sock");
    let server = get(port, "/server.php", &[]).unwrap().text();
    assert!(
        server.contains(&format!(
            "\"SCRIPT_FILENAME\":\"{}/server.php\"",
            fpm.docroot().display()
        )),
        "{server}"
    );
}

#[test]
fn kept_connections_serve_many_requests_on_few_php_workers() {
    // One worker: a connection the proxy kept would hold it forever if
    // it were not the one reused.
    let fpm = PhpFpm::pools(&["www"], 1);
    let (root, _server, port) = app(&fpm, ", enable_reuse = true");
    for i in 0..30 {
        let r = get(port, "/app/small.php", &[]).unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ok"),
            "request {i}: {}",
            root.log()
        );
    }
    let body = noise(200_000, 3);
    let r = request(port, "POST", "/app/echo.php", &[], &body).unwrap();
    assert_eq!(checksum(&r.body), checksum(&body));
}

#[test]
fn fcgi_set_env_adds_overrides_and_removes_parameters() {
    let fpm = PhpFpm::start();
    let (root, _server, port) = app(
        &fpm,
        ", fcgi_set_env = { APP_ENV = \"test\", SERVER_NAME = \"public.example\", \"!HTTP_USER_AGENT\" = \"\" }",
    );
    let r = get(port, "/app/server.php", &[("User-Agent", "secret-agent")]).unwrap();
    assert_eq!(r.status, 200, "{}", root.log());
    let s = r.text();
    assert!(s.contains("\"APP_ENV\":\"test\""), "{s}");
    assert!(s.contains("\"SERVER_NAME\":\"public.example\""), "{s}");
    assert!(!s.contains("secret-agent"), "{s}");
}

#[test]
fn balancer_members_can_be_fcgi_pools() {
    let fpm = PhpFpm::pools(&["a", "b"], 2);
    let docroot = fpm.docroot();
    let members: Vec<String> = fpm
        .ports
        .iter()
        .map(|p| format!("{{ url = \"fcgi://127.0.0.1:{p}{}\" }}", docroot.display()))
        .collect();
    let (root, _server, port) = serve(
        "pass = [{ path = \"/\", url = \"balancer://php/\" }]",
        &format!(
            "[[vhost.proxy.balancer]]\nname = \"php\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    );
    let mut pools: Vec<String> = (0..4)
        .map(|_| {
            let r = get(port, "/index.php", &[]).unwrap();
            assert_eq!(r.status, 200, "{}", root.log());
            r.text().rsplit(' ').next().unwrap().to_string()
        })
        .collect();
    pools.sort();
    assert_eq!(pools, ["a", "a", "b", "b"]);
}
