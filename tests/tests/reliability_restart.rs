//! Zero-drop restarts (issue item 1): wrk load through Example 2 while
//! `modproxy restart` runs 10 times, once onto a changed module set (the
//! lbmethod switched from byrequests to bytraffic), with a slow 5 s
//! download in flight that must complete across the restarts; then a
//! restart onto a broken config that must leave the old server serving.
//! Figures go to target/reliability/1*.json for docs/reliability.md.

use modproxy_tests::balancer::member;
use modproxy_tests::figures::{wrk, wrk_finish, Figure};
use modproxy_tests::member::Member;
use modproxy_tests::{free_port, get, Conn, Scripted, Server, ServerRoot};
use std::time::{Duration, Instant};

/// Example 2 plus a `/slow` rule to a backend that trickles its answer.
fn config(port: u16, slow: &str, lbmethod: &str, members: &[String]) -> String {
    format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npreserve_host = true\n\
         pass = [{{ path = \"/slow\", url = \"{slow}/slow\" }}, {{ path = \"/\", url = \"balancer://mycluster/\" }}]\n\
         pass_reverse = [{{ path = \"/\", url = \"balancer://mycluster/\" }}]\n\n\
         [[vhost.proxy.balancer]]\nname = \"mycluster\"\nlbmethod = \"{lbmethod}\"\nmembers = [{}]\n",
        members.join(", ")
    )
}

/// 50 pieces of 1000 bytes, one every 100 ms: a 5 s download.
const PIECES: usize = 50;
const PIECE: usize = 1000;

fn slow_backend() -> Scripted {
    Scripted::start(|mut peer| {
        while peer.request().is_some() {
            peer.send(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    PIECES * PIECE
                )
                .as_bytes(),
            );
            for i in 0..PIECES {
                std::thread::sleep(Duration::from_millis(100));
                peer.send(&vec![b'a' + (i % 26) as u8; PIECE]);
            }
        }
    })
}

/// Downloads /slow on its own thread; Ok(body length) if it arrived whole.
fn slow_download(port: u16) -> std::thread::JoinHandle<Result<usize, String>> {
    std::thread::spawn(move || {
        let mut c = Conn::open(port).map_err(|e| e.to_string())?;
        c.stream()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        c.send(format!("GET /slow HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let r = c.read_response(false).map_err(|e| e.to_string())?;
        let want: Vec<u8> = (0..PIECES)
            .flat_map(|i| vec![b'a' + (i % 26) as u8; PIECE])
            .collect();
        if r.status != 200 || r.body != want {
            return Err(format!("status {}, {} bytes", r.status, r.body.len()));
        }
        Ok(r.body.len())
    })
}

#[test]
fn ten_restarts_under_wrk_load_drop_nothing_and_a_slow_download_completes() {
    let (m0, m1) = (Member::start("m0"), Member::start("m1"));
    let members = [member(&m0.url(), ""), member(&m1.url(), "")];
    let slow = slow_backend();
    let root = ServerRoot::new();
    root.enable(&[
        "proxy_http",
        "proxy_balancer",
        "lbmethod_byrequests",
        "lbmethod_bytraffic",
    ]);
    let port = free_port();
    root.config(&config(port, &slow.url(), "byrequests", &members));
    let server = Server::start(&root, port);
    let first_pid = server.pid();

    let load = wrk(
        &format!("http://127.0.0.1:{port}/"),
        &["-t2", "-c16", "-d14s", "--timeout", "5s"],
    );
    let download = slow_download(port);
    std::thread::sleep(Duration::from_millis(800));
    let mut restart_ms = Vec::new();
    for i in 0..10 {
        if i == 5 {
            // The changed module set: bytraffic loaded, byrequests dropped.
            let out = root.cli(&["dismod", "lbmethod_byrequests"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            root.config(&config(port, &slow.url(), "bytraffic", &members));
        }
        let t = Instant::now();
        let out = root.cli(&["restart"]);
        restart_ms.push(t.elapsed().as_millis() as u64);
        assert!(
            out.status.success(),
            "restart {i}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            root.log()
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
    let slow_result = download.join().unwrap();
    let (report, text) = wrk_finish(load);
    let status = root.cli(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();

    Figure {
        id: "1a",
        scenario: "Restart under load".into(),
        test: "reliability_restart.rs::ten_restarts_under_wrk_load_drop_nothing_and_a_slow_download_completes",
        tried: "wrk -t2 -c16 -d14s through Example 2 (2 members); `modproxy restart` x10, the 6th onto bytraffic with byrequests disabled; a 5 s download in flight".into(),
        outcome: format!(
            "{} non-2xx, {} refused connects, {} read/write errors, {} timeouts; slow download: {}; restart took {}..{} ms",
            report.non_2xx,
            report.connect_errors,
            report.read_errors + report.write_errors,
            report.timeouts,
            match &slow_result { Ok(n) => format!("{n} bytes, complete"), Err(e) => e.clone() },
            restart_ms.iter().min().unwrap(),
            restart_ms.iter().max().unwrap(),
        ),
        sent: report.requests,
        failed: report.failed(),
        lost: u64::from(slow_result.is_err()),
        recovery_ms: Some(*restart_ms.iter().max().unwrap()),
    }
    .record();

    assert!(report.requests > 1000, "the load ran:\n{text}");
    assert_eq!(report.failed(), 0, "clients saw failures:\n{text}");
    assert_eq!(slow_result, Ok(PIECES * PIECE), "the slow download");
    assert!(
        status.contains("bytraffic"),
        "the new module set serves: {status}"
    );
    let r = get(port, "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(first_pid.to_string(), status.trim(), "a new process serves");
    drop(server);
}

#[test]
fn a_restart_onto_a_broken_config_under_load_keeps_the_old_server_serving() {
    let m0 = Member::start("m0");
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_balancer", "lbmethod_byrequests"]);
    let port = free_port();
    let members = [member(&m0.url(), "")];
    let good = config(port, &m0.url(), "byrequests", &members);
    root.config(&good);
    let _server = Server::start(&root, port);
    let load = wrk(
        &format!("http://127.0.0.1:{port}/"),
        &["-t1", "-c4", "-d3s", "--timeout", "2s"],
    );
    std::thread::sleep(Duration::from_millis(500));
    // A module the config now needs is not enabled, and a table no module claims.
    root.config(&format!(
        "{}\n[vhost.nonsense]\nx = 1\n",
        good.replace("byrequests", "bybusyness")
    ));
    let out = root.cli(&["restart"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let (report, text) = wrk_finish(load);
    let after = get(port, "/", &[]).unwrap();

    Figure {
        id: "1b",
        scenario: "Restart onto a broken config".into(),
        test: "reliability_restart.rs::a_restart_onto_a_broken_config_under_load_keeps_the_old_server_serving",
        tried: "wrk -c4 -d3s; config with an unclaimed table and an lbmethod whose module is not enabled; `modproxy restart`".into(),
        outcome: format!(
            "restart exit {:?}, says: {}; old server kept serving ({} after)",
            out.status.code(),
            err.lines().next().unwrap_or(""),
            after.status
        ),
        sent: report.requests,
        failed: report.failed(),
        lost: 0,
        recovery_ms: None,
    }
    .record();

    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("vhost[0].nonsense") && err.contains("old configuration"),
        "{err}"
    );
    assert_eq!(report.failed(), 0, "{text}");
    assert_eq!((after.status, after.text().as_str()), (200, "m0"));
}
