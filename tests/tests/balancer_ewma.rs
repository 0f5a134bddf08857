//! lbmethod_ewma through the real server: a fast member and one answering
//! after 200 ms, with clients in parallel; the slow one gets at most 10 %
//! of the requests, and once it is fast again it gets traffic again.

use modproxy_tests::balancer::{member, serve};
use modproxy_tests::{get, Backend};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients in parallel.
const CLIENTS: usize = 4;

/// Bodies of GETs from `CLIENTS` threads, for `run` or `n` each, whichever
/// ends first; a non-200 shows as `<STATUS>`.
fn burst(port: u16, n: usize, run: Duration) -> Vec<String> {
    let end = Instant::now() + run;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let one = || match get(port, "/", &[]) {
                    Ok(r) if r.status == 200 => r.text(),
                    Ok(r) => format!("<{}>", r.status),
                    Err(e) => format!("<{e}>"),
                };
                (0..n)
                    .map_while(|_| (Instant::now() < end).then(one))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

fn share(got: &[String], body: &str) -> f64 {
    got.iter().filter(|g| *g == body).count() as f64 / got.len().max(1) as f64
}

#[test]
fn the_slow_member_gets_at_most_a_tenth_and_traffic_again_once_fast() {
    let fast = Backend::text("fast");
    let slow_now = Arc::new(AtomicBool::new(true));
    let is_slow = slow_now.clone();
    let slow = Backend::start(move |_| {
        if is_slow.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        (200, vec![], b"slow".to_vec())
    });
    let members = [member(&fast.url(), ""), member(&slow.url(), "")];
    let (root, server) = serve(&["lbmethod_ewma"], "lbmethod = \"ewma\"", &members);

    let got = burst(server.port, 250, Duration::from_secs(20));
    assert!(
        got.iter().all(|g| g == "fast" || g == "slow"),
        "{got:?}\n{}",
        root.log()
    );
    let slow_share = share(&got, "slow");
    eprintln!(
        "slow member while slow: {:.1} % of {}",
        slow_share * 100.0,
        got.len()
    );
    assert!(got.len() >= 500, "{}", got.len());
    assert!(slow_share <= 0.10, "slow member got {slow_share:.3}");

    slow_now.store(false, Ordering::SeqCst);
    // Its average is stale after a second without samples: the next
    // request probes it, and the fast answer replaces the 200 ms.
    std::thread::sleep(Duration::from_millis(1200));
    let got = burst(server.port, 10_000, Duration::from_secs(3));
    let again = share(&got, "slow");
    eprintln!(
        "slow member once fast: {:.1} % of {}",
        again * 100.0,
        got.len()
    );
    assert!(
        again >= 0.10,
        "the recovered member got {again:.3} of {}",
        got.len()
    );
}
