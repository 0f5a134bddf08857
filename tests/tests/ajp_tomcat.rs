//! proxy_ajp against a real Tomcat 10 (Debian's tomcat10-common, see
//! tests/src/tomcat.rs) and, beside it, Apache's own mod_proxy_ajp on the
//! same Tomcat: GET with the request's attributes, a 3 MiB POST echoed
//! byte-exact (Content-Length and chunked), a large download, cookies and
//! JSESSIONID stickiness across two instances (jvmRoute), the connector's
//! secret, the packet size, and a Tomcat that goes down and comes back.
//!
//! t1 (8 KiB packets) and t2 (64 KiB packets) are shared by every test of
//! this binary; both require the secret `s3cret`.

use modproxy_tests::apache::preamble;
use modproxy_tests::client::{request, Conn};
use modproxy_tests::tomcat::{shared, Setup, Tomcat};
use modproxy_tests::{checksum, free_port, get, noise, Apache, Response, Server, ServerRoot};
use std::collections::BTreeMap;

const SECRET: &str = "s3cret";

fn t1() -> &'static Tomcat {
    shared(Setup {
        route: "t1",
        secret: Some(SECRET),
        packet_size: 8192,
    })
}

fn t2() -> &'static Tomcat {
    shared(Setup {
        route: "t2",
        secret: Some(SECRET),
        packet_size: 65536,
    })
}

/// The connector tables of both instances, for modproxy's config.
fn connectors() -> String {
    format!(
        "[[vhost.proxy.ajp]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\n\
         [[vhost.proxy.ajp]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\najp_packet_size = 65536\n",
        t1().url(),
        t2().url()
    )
}

/// modproxy with `proxy`, `proxy_ajp` (and the balancer) on one vhost.
fn modproxy(pass: &str, extra: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(&["proxy_ajp", "proxy_balancer", "lbmethod_byrequests"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [\n{pass}\n]\n\n{extra}\n{}",
        connectors()
    ));
    let server = Server::start(&root, port);
    (root, server)
}

/// Apache httpd with mod_proxy_ajp and one vhost of `directives`.
fn apache(directives: &str) -> (Apache, u16) {
    let port = free_port();
    let dir =
        std::env::temp_dir().join(format!("modproxy-apache-ajp-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mods = [
        "mpm_event",
        "authz_core",
        "slotmem_shm",
        "proxy",
        "proxy_ajp",
        "proxy_balancer",
        "lbmethod_byrequests",
    ];
    let conf = format!(
        "{}Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n{directives}\n</VirtualHost>\n",
        preamble(&dir, &mods)
    );
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    (Apache::start_config(&dir, &path, &[port]), port)
}

/// The servlet's `/info` lines as a map (repeated keys joined by `\n`).
fn info(r: &Response) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for line in r.text().lines() {
        if let Some((k, v)) = line.split_once(": ") {
            m.entry(k.to_owned())
                .and_modify(|old| {
                    old.push('\n');
                    old.push_str(v)
                })
                .or_insert_with(|| v.to_owned());
        }
    }
    m
}

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn get_carries_the_request_as_apache_does() {
    let pass = format!("{{ path = \"/app\", url = \"{}/app\" }}", t1().url());
    let (_root, mp) = modproxy(&pass, "");
    let (_apache, ap) = apache(&format!(
        "ProxyPass /app {}/app secret={SECRET}",
        t1().url()
    ));
    let path = "/app/info/x%20y?a=1&b=%2F";
    let headers = [
        ("Cookie", "a=b; c=d"),
        ("X-Custom", "yes"),
        ("Accept", "text/plain"),
    ];
    let ours = get(mp.port, path, &headers).unwrap();
    let theirs = get(ap, path, &headers).unwrap();
    assert_eq!(ours.status, 200, "{}", ours.text());
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    let (mut o, mut t) = (info(&ours), info(&theirs));
    assert_eq!(o["uri"], "/app/info/x%20y");
    assert_eq!(o["query"], "a=1&b=%2F");
    assert_eq!(o["remote_addr"], "127.0.0.1");
    assert_eq!(o["local_addr"], "127.0.0.1");
    assert_eq!(o["secure"], "false");
    assert_eq!(o["header cookie"], "a=b; c=d");
    assert_eq!(o["header x-custom"], "yes");
    assert_eq!(o["header host"], format!("127.0.0.1:{}", mp.port));
    assert!(o["remote_port"].parse::<u16>().unwrap() > 0);
    assert!(
        !o.contains_key("header connection"),
        "hop-by-hop field forwarded: {o:?}"
    );
    // The same request as Apache forwards it, but for what differs by
    // nature: the ports of the two front ends and of their clients.
    for m in [&mut o, &mut t] {
        for k in ["remote_port", "header host", "server_port"] {
            m.remove(k);
        }
    }
    // Apache forwards the client's `Connection: close` too; hop-by-hop
    // fields stop at modproxy (AJP has its own connection handling).
    assert_eq!(t.remove("header connection").as_deref(), Some("close"));
    assert_eq!(o, t);
    assert_eq!(ours.header("X-Route"), Some("t1"));
    assert_eq!(ours.header("Content-Type"), theirs.header("Content-Type"));
}

#[test]
fn a_3_mib_post_comes_back_byte_exact_with_either_framing() {
    let pass = format!(
        "{{ path = \"/small\", url = \"{}/app\" }},\n{{ path = \"/large\", url = \"{}/app\" }}",
        t1().url(),
        t2().url()
    );
    let (_root, mp) = modproxy(&pass, "");
    let (_apache, ap) = apache(&format!(
        "ProxyPass /small {}/app secret={SECRET}",
        t1().url()
    ));
    let body = noise(3 << 20, 17);
    let ct = [("Content-Type", "application/octet-stream")];
    for (port, path) in [
        (mp.port, "/small/echo"),
        (mp.port, "/large/echo"),
        (ap, "/small/echo"),
    ] {
        let r = request(port, "POST", path, &ct, &body).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.body.len(), body.len(), "{path}");
        assert_eq!(checksum(&r.body), checksum(&body), "{path}: body differs");
    }
    // Chunked from the client: the length is unknown, so the body goes
    // only as Tomcat asks for it, and ends with the empty packet.
    let mut c = Conn::open(mp.port).unwrap();
    let head = "POST /small/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-test\r\n\r\n";
    c.send(head.as_bytes()).unwrap();
    for piece in body.chunks(100_000) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        c.send(piece).unwrap();
        c.send(b"\r\n").unwrap();
    }
    c.send(b"0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/x-test"));
    assert_eq!(checksum(&r.body), checksum(&body), "chunked body differs");
}

#[test]
fn a_large_download_streams_with_its_length() {
    let pass = format!("{{ path = \"/app\", url = \"{}/app\" }}", t1().url());
    let (_root, mp) = modproxy(&pass, "");
    let n = 20 << 20;
    let r = get(mp.port, &format!("/app/big?n={n}"), &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(n.to_string().as_str()));
    assert_eq!(r.body.len(), n);
    let piece: Vec<u8> = (0..10007u32).map(|i| (i * 31 + 7) as u8).collect();
    assert!(r.body.chunks(10007).all(|c| c == &piece[..c.len()]));
    // HEAD: the head alone, as Tomcat gave it.
    let h = Conn::open(mp.port)
        .and_then(|mut c| {
            c.send(b"HEAD /app/big?n=100 HTTP/1.1\r\nHost: x\r\n\r\n")?;
            c.read_response(true)
        })
        .unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    // A status of the application's, with its page.
    let s = get(mp.port, "/app/status?code=404", &[]).unwrap();
    assert_eq!((s.status, s.text().as_str()), (404, "status 404"));
}

#[test]
fn sessions_stick_to_their_tomcat_by_the_jsessionid_route() {
    let balancer = format!(
        "[[vhost.proxy.balancer]]\nname = \"tomcats\"\nsticky_session = \"JSESSIONID|jsessionid\"\n\
         members = [{{ url = \"{}\", route = \"t1\" }}, {{ url = \"{}\", route = \"t2\" }}]\n",
        t1().url(),
        t2().url()
    );
    let (_root, mp) = modproxy(
        "{ path = \"/app\", url = \"balancer://tomcats/app\" }",
        &balancer,
    );
    let (_apache, ap) = apache(&format!(
        "<Proxy balancer://tomcats>\nBalancerMember {} route=t1 secret={SECRET}\nBalancerMember {} route=t2 secret={SECRET}\n\
         ProxySet stickysession=JSESSIONID|jsessionid\n</Proxy>\nProxyPass /app balancer://tomcats/app",
        t1().url(),
        t2().url()
    ));
    for port in [mp.port, ap] {
        // Without a session the balancer alternates.
        let routes: Vec<String> = (0..4)
            .map(|_| {
                get(port, "/app/info", &[])
                    .unwrap()
                    .header("X-Route")
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            routes.iter().any(|r| r == "t1") && routes.iter().any(|r| r == "t2"),
            "{routes:?}"
        );
        for _ in 0..2 {
            let first = get(port, "/app/session", &[]).unwrap();
            assert_eq!(first.status, 200);
            let cookies = set_cookies(&first);
            assert_eq!(cookies.len(), 3, "every Set-Cookie relayed: {cookies:?}");
            let jsession = cookies
                .iter()
                .find_map(|c| c.strip_prefix("JSESSIONID="))
                .and_then(|c| c.split(';').next())
                .unwrap()
                .to_owned();
            let route = first.header("X-Route").unwrap().to_owned();
            assert!(
                jsession.ends_with(&format!(".{route}")),
                "{jsession} from {route}"
            );
            for visit in 2..=5 {
                let cookie = format!("JSESSIONID={jsession}; visits={}", visit - 1);
                let r = get(port, "/app/session", &[("Cookie", &cookie)]).unwrap();
                assert_eq!(
                    r.header("X-Route"),
                    Some(route.as_str()),
                    "port {port}: {}",
                    r.text()
                );
                assert!(
                    r.text().contains(&format!("visits={visit} new=false")),
                    "{}",
                    r.text()
                );
            }
            // The session in the URL instead of a cookie (`;jsessionid=`).
            let r = get(port, &format!("/app/session;jsessionid={jsession}"), &[]).unwrap();
            assert_eq!(r.header("X-Route"), Some(route.as_str()));
            assert!(r.text().contains("visits=6"), "{}", r.text());
        }
    }
}

#[test]
fn the_secret_is_sent_and_a_wrong_one_gets_tomcats_403() {
    let pass = format!(
        "{{ path = \"/right\", url = \"{}/app\" }},\n{{ path = \"/none\", url = \"ajp://localhost:{}/app\" }},\n{{ path = \"/wrong\", url = \"ajp://127.0.0.2:{}/app\" }}",
        t1().url(),
        t1().port,
        t1().port
    );
    // `localhost` has no connector table, so no secret goes with it;
    // 127.0.0.2 reaches nothing (Tomcat listens on 127.0.0.1 only). The
    // wrong secret needs a server of its own: one address, one secret.
    let (_root, mp) = modproxy(&pass, "");
    let root2 = ServerRoot::new();
    root2.enable(&["proxy_ajp"]);
    let port2 = free_port();
    root2.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port2}\"\n\n[vhost.proxy]\npass = [{{ path = \"/app\", url = \"{}/app\" }}]\n\n\
         [[vhost.proxy.ajp]]\nurl = \"{}\"\nsecret = \"not-the-secret\"\n",
        t1().url(),
        t1().url()
    ));
    let mp2 = Server::start(&root2, port2);
    let (_apache, ap) = apache(&format!(
        "ProxyPass /right {}/app secret={SECRET}\nProxyPass /none ajp://localhost:{}/app\nProxyPass /wrong ajp://127.0.0.3:{}/app",
        t1().url(),
        t1().port,
        t1().port
    ));
    let (_apache2, ap2) = apache(&format!(
        "ProxyPass /app {}/app secret=not-the-secret",
        t1().url()
    ));
    let ours = |port, path: &str| get(port, path, &[]).unwrap().status;
    assert_eq!(ours(mp.port, "/right/info"), 200);
    assert_eq!(ours(ap, "/right/info"), 200);
    assert_eq!(ours(mp.port, "/none/info"), 403, "no secret");
    assert_eq!(ours(ap, "/none/info"), 403);
    assert_eq!(ours(mp2.port, "/app/info"), 403, "wrong secret");
    assert_eq!(ours(ap2, "/app/info"), 403);
    // Nothing listening on 127.0.0.2: both answer 503.
    assert_eq!(ours(mp.port, "/wrong/info"), 503);
    assert_eq!(ours(ap, "/wrong/info"), 503);
}

#[test]
fn a_head_over_the_packet_size_is_refused_with_400_unless_the_packets_are_larger() {
    let pass = format!(
        "{{ path = \"/small\", url = \"{}/app\" }},\n{{ path = \"/large\", url = \"{}/app\" }}",
        t1().url(),
        t2().url()
    );
    let (root, mp) = modproxy(&pass, "");
    let (_apache, ap) = apache(&format!(
        "ProxyPass /small {}/app secret={SECRET}",
        t1().url()
    ));
    let big = "v".repeat(7000);
    let two = [("X-Big-1", big.as_str()), ("X-Big-2", big.as_str())];
    assert_eq!(get(mp.port, "/small/info", &two).unwrap().status, 400);
    assert_eq!(get(ap, "/small/info", &two).unwrap().status, 400);
    let r = get(mp.port, "/large/info", &two).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(info(&r)["header x-big-2"], big);
    assert!(
        root.log().contains("raise ajp_packet_size"),
        "{}",
        root.log()
    );
}

#[test]
fn tomcat_down_is_503_and_back_up_it_serves_again() {
    let setup = Setup {
        route: "t3",
        secret: None,
        packet_size: 8192,
    };
    let mut t3 = Tomcat::start(setup.clone());
    let port = t3.port;
    let pass = format!(
        "{{ path = \"/app\", url = \"{}/app\", retry = 0 }}",
        t3.url()
    );
    let (_root, mp) = modproxy(&pass, "");
    let (_apache, ap) = apache(&format!("ProxyPass /app {}/app retry=0", t3.url()));
    // Keep-alive requests leave pooled connections behind, in both.
    for p in [mp.port, ap] {
        assert_eq!(
            request(p, "GET", "/app/info", &[], b"").unwrap().status,
            200
        );
    }
    t3.stop();
    for p in [mp.port, ap] {
        assert_eq!(get(p, "/app/info", &[]).unwrap().status, 503, "port {p}");
    }
    let _t3 = Tomcat::start_on(setup, port);
    for p in [mp.port, ap] {
        let r = get(p, "/app/info", &[]).unwrap();
        assert_eq!(r.status, 200, "port {p}: {}", r.text());
    }
}
