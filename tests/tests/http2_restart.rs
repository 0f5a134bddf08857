//! A restart under HTTP/2 load: the old server says GOAWAY on every h2
//! connection (first with the largest stream id, then, a round trip
//! later, with the last it took), lets the streams in flight finish, and
//! h2load opens new connections to the new server. No stream the server
//! took fails: every answer is a 2xx, none times out.
//!
//! What h2load does count as "errored" is a request it queued in the
//! instant the GOAWAY arrived and so never sent (nghttp2 will not start
//! a stream after GOAWAY, and h2load does not retry it on the next
//! connection, as browsers do): at most one per connection per restart.
//! nginx, reloaded ten times under the same load, shows the same (18 of
//! 8018 on this machine, docs/reliability.md).

use modproxy_tests::{h2c_proxy, Backend};
use std::process::Command;
use std::time::Duration;

#[test]
fn ten_restarts_under_h2load_fail_no_stream() {
    let backend = Backend::start(|_| {
        // Long enough that restarts land while streams are in flight.
        std::thread::sleep(Duration::from_millis(2));
        (200, vec![], b"ok".to_vec())
    });
    let (root, server) = h2c_proxy(&["proxy_http"], &backend.url(), "");
    let port = server.port;
    let first_pid = server.pid();
    let load = std::thread::spawn(move || {
        Command::new("h2load")
            .args(["-D", "8", "-c", "8", "-m", "10", "-T", "5"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .expect("h2load is installed (nghttp2-client)")
    });
    std::thread::sleep(Duration::from_millis(700));
    for _ in 0..10 {
        root.restart();
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = load.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let line = report
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("no summary from h2load: {report}"));
    let number = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        line[..at]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    eprintln!("{line}");
    assert!(number("succeeded") > 1000, "{report}");
    assert_eq!(number("timeout"), 0, "{report}");
    assert_eq!(
        number("failed"),
        number("errored"),
        "no stream was answered with an error: {report}"
    );
    assert!(
        number("errored") <= 8 * 10,
        "at most one unsent request per connection per restart: {report}"
    );
    let codes = report
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .unwrap();
    assert!(codes.contains(" 0 3xx, 0 4xx, 0 5xx"), "{codes}");
    let pid = std::fs::read_to_string(root.dir.join("run/modproxy.pid")).unwrap();
    assert_ne!(pid.trim(), first_pid.to_string(), "a new process serves");
}
