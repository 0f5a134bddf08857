//! proxy_ftp against a real FTP server on loopback (pyftpdlib, installed
//! by tests/setup.sh): a listing as HTML with names escaped, a 50 MiB
//! download byte-exact with its length and type, a missing file (404), a
//! directory without its slash (301), a refused login (502), and a login
//! from the URL.

use modproxy_tests::{checksum, free_port, get, noise, Server, ServerRoot};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = r#"
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
root, port = sys.argv[1], int(sys.argv[2])
a = DummyAuthorizer()
a.add_user("alice", "wonder", root, perm="elr")
a.add_anonymous(root)
FTPHandler.authorizer = a
FTPServer(("127.0.0.1", port), FTPHandler).serve_forever()
"#;

/// pyftpdlib serving a temp dir; killed on drop.
struct Ftp {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Ftp {
    fn start() -> Ftp {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("modproxy-ftp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("pub/sub dir")).unwrap();
        std::fs::write(dir.join("pub/hello.txt"), "hello over ftp\n").unwrap();
        std::fs::write(dir.join("pub/a <b>&c.txt"), "odd name").unwrap();
        let child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with pyftpdlib: run tests/setup.sh");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pyftpdlib did not listen: run tests/setup.sh"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ftp { child, port, dir }
    }
}

impl Drop for Ftp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn modproxy(ftp: &Ftp) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(&["proxy_ftp"]);
    let port = free_port();
    let f = ftp.port;
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [\n\
         {{ path = \"/anon\", url = \"ftp://127.0.0.1:{f}/\", timeout = 5 }},\n\
         {{ path = \"/alice\", url = \"ftp://alice:wonder@127.0.0.1:{f}/\", timeout = 5 }},\n\
         {{ path = \"/mallory\", url = \"ftp://alice:guess@127.0.0.1:{f}/\", timeout = 5 }},\n]\n"
    ));
    let server = Server::start(&root, port);
    (root, server)
}

#[test]
fn a_directory_is_listed_as_html_with_its_names_escaped() {
    let ftp = Ftp::start();
    let (_root, mp) = modproxy(&ftp);
    let r = get(mp.port, "/anon/pub/", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.contains("<title>Index of /pub/</title>"), "{page}");
    assert!(
        page.contains("<a href=\"hello.txt\">hello.txt</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"a%20%3Cb%3E&amp;c.txt\">a &lt;b&gt;&amp;c.txt</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"sub%20dir/\">sub dir/</a>"),
        "{page}"
    );
    assert!(!page.contains("<b>"), "a name went out unescaped: {page}");
    // Without its slash, a directory sends the client to its listing.
    let d = get(mp.port, "/anon/pub", &[]).unwrap();
    assert_eq!(d.status, 301);
    assert_eq!(d.header("Location"), Some("/anon/pub/"));
}

#[test]
fn a_50_mib_file_streams_byte_exact_with_length_and_type() {
    let ftp = Ftp::start();
    let data = noise(50 << 20, 5);
    std::fs::write(ftp.dir.join("pub/big.bin"), &data).unwrap();
    let (_root, mp) = modproxy(&ftp);
    let t0 = Instant::now();
    let r = get(mp.port, "/alice/pub/big.bin", &[]).unwrap();
    let took = t0.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some((50u64 << 20).to_string().as_str())
    );
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.body.len(), data.len());
    assert_eq!(checksum(&r.body), checksum(&data), "body differs");
    eprintln!("50 MiB through proxy_ftp in {took:?}");
    let t = get(mp.port, "/anon/pub/hello.txt", &[]).unwrap();
    assert_eq!((t.status, t.text().as_str()), (200, "hello over ftp\n"));
    assert_eq!(t.header("Content-Type"), Some("text/plain"));
}

#[test]
fn a_missing_file_is_404_and_a_refused_login_502() {
    let ftp = Ftp::start();
    let (root, mp) = modproxy(&ftp);
    for path in ["/anon/pub/nope.txt", "/anon/nope/"] {
        let r = get(mp.port, path, &[]).unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = get(mp.port, "/mallory/pub/hello.txt", &[]).unwrap();
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("refused the login of alice: 530"),
        "{}",
        r.text()
    );
    assert!(root.log().contains("refused the login"), "{}", root.log());
    // Nothing listening: 503, as for any backend that refuses connections.
    drop(ftp);
    assert_eq!(
        get(mp.port, "/anon/pub/hello.txt", &[]).unwrap().status,
        503
    );
}
