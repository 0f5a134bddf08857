//! The balancer-manager page in a real headless browser: Debian's
//! `chromium` driven by `playwright-core` (tests/browser/, installed by
//! .ci/run), run as `node --test` against a real modproxy and backends.
//! With `UPDATE_SCREENSHOT=1` it also refreshes docs/balancer-manager.png.

use modproxy_tests::balancer::{member, site};
use modproxy_tests::{free_port, repo_root, Backend, Server, ServerRoot};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs one `node --test` file of tests/browser with `env`; fails with
/// its output and the server's log.
fn run_node(file: &str, env: &[(&str, String)], root: &ServerRoot) {
    let dir = repo_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and playwright-core: run `apt-get install -y chromium nodejs npm` and `npm ci --prefix tests/browser` (as .ci/run does)"
    );
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node (apt-get install -y nodejs)");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node --test {file} failed ({}):\n{}\n{}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        root.log()
    );
}

/// A member failing its health checks shows as hc-failed on the page,
/// with its last check and the reason, without a reload.
#[test]
fn page_shows_a_member_failing_its_health_checks_in_chromium() {
    let good = Backend::text("m0");
    let sick = Backend::start(|seen| {
        let status = if seen.target == "/health" { 503 } else { 200 };
        (status, vec![], b"m1".to_vec())
    });
    let root = ServerRoot::new();
    root.enable(&[
        "proxy_http",
        "proxy_balancer",
        "proxy_hcheck",
        "lbmethod_byrequests",
    ]);
    let port = free_port();
    let hc = "hcmethod = \"GET\", hcuri = \"/health\", hcinterval = 1";
    let members = [member(&good.url(), hc), member(&sick.url(), hc)];
    root.config(&format!(
        "{}\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\n",
        site(port, "", &members)
    ));
    let _server = Server::start(&root, port);
    let env = [
        (
            "MANAGER_URL",
            format!("http://127.0.0.1:{port}/balancer-manager"),
        ),
        ("MEMBER0", good.url()),
        ("MEMBER1", sick.url()),
    ];
    run_node("health.test.mjs", &env, &root);
}

#[test]
fn page_disables_and_enables_a_member_in_chromium() {
    let b = [Backend::text("m0"), Backend::text("m1")];
    let root = ServerRoot::new();
    root.enable(&[
        "proxy_http",
        "proxy_balancer",
        "lbmethod_byrequests",
        "lbmethod_bybusyness",
    ]);
    let port = free_port();
    let members = [
        member(&b[0].url(), "route = \"n0\""),
        member(&b[1].url(), "route = \"n1\""),
    ];
    root.config(&format!(
        "{}\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\n",
        site(port, "sticky_session = \"JSESSIONID|jsessionid\"", &members)
    ));
    let _server = Server::start(&root, port);
    let screenshot = if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        repo_root().join("docs/balancer-manager.png")
    } else {
        root.dir.join("balancer-manager.png")
    };
    let env = [
        (
            "MANAGER_URL",
            format!("http://127.0.0.1:{port}/balancer-manager"),
        ),
        ("SITE_URL", format!("http://127.0.0.1:{port}/")),
        ("MEMBER0", b[0].url()),
        ("MEMBER1", b[1].url()),
        ("SCREENSHOT", screenshot.display().to_string()),
    ];
    run_node("manager.test.mjs", &env, &root);
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}
