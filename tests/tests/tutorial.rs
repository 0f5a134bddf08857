//! The tutorial this project comes from, run as written: its two Flask
//! backends on 8080 and 8081 (demo/flask/, the tutorial's code unchanged),
//! Example 1 (one backend) and Example 2 (a balancer of both) on port 8000.
//! Fixed ports, as in the tutorial, so everything runs in this one test.

use modproxy_tests::{get, repo_root, Server, ServerRoot};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Flask(Child);

impl Flask {
    fn start(app: &str, port: u16) -> Flask {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is in use; the tutorial's backends need it: stop whatever listens there"
        );
        let mut child = Command::new("python3")
            .args(["-m", "flask", "run", "--port", &port.to_string()])
            .env("FLASK_APP", repo_root().join("demo/flask").join(app))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m flask (pip install flask; .ci/run does)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(port, "/", &[]).is_err() {
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "flask {app} exited: is flask installed (pip install flask)?"
            );
            assert!(
                Instant::now() < deadline,
                "flask {app} did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Flask(child)
    }
}

impl Drop for Flask {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const EXAMPLE_1: &str = r#"
[[vhost]]
listen = "127.0.0.1:8000"

[vhost.proxy]
preserve_host = true
pass = [{ path = "/", url = "http://127.0.0.1:8080/" }]
pass_reverse = [{ path = "/", url = "http://127.0.0.1:8080/" }]
"#;

const EXAMPLE_2: &str = r#"
[[vhost]]
listen = "127.0.0.1:8000"

[vhost.proxy]
preserve_host = true
pass = [{ path = "/", url = "balancer://mycluster/" }]
pass_reverse = [{ path = "/", url = "balancer://mycluster/" }]

[[vhost.proxy.balancer]]
name = "mycluster"
members = [{ url = "http://127.0.0.1:8080" }, { url = "http://127.0.0.1:8081" }]
"#;

#[test]
fn the_tutorials_examples_work_with_its_flask_backends() {
    let _b1 = Flask::start("backend1.py", 8080);
    let _b2 = Flask::start("backend2.py", 8081);
    assert_eq!(get(8080, "/", &[]).unwrap().text(), "Hello world!");
    assert_eq!(get(8081, "/", &[]).unwrap().text(), "Howdy world!");

    // Step 1 of the tutorial: a2enmod the four modules.
    let root = ServerRoot::new();
    root.enable(&[
        "proxy",
        "proxy_http",
        "proxy_balancer",
        "lbmethod_byrequests",
    ]);

    // Example 1: one backend.
    root.config(EXAMPLE_1);
    let server = Server::start(&root, 8000);
    let r = get(8000, "/", &[]).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello world!"),
        "{}",
        root.log()
    );

    // Example 2, after a graceful restart: requests alternate.
    root.config(EXAMPLE_2);
    root.restart();
    let answers: Vec<String> = (0..4)
        .map(|_| get(8000, "/", &[]).unwrap().text())
        .collect();
    assert_eq!(
        answers,
        [
            "Hello world!",
            "Howdy world!",
            "Hello world!",
            "Howdy world!"
        ],
        "{}",
        root.log()
    );
    drop(server);
}
