//! The stable-toolchain fuzz run: every harness on its seed corpus, then
//! on deterministic pseudo-random inputs (xorshift, seeded per harness)
//! mutated from the seeds, for FUZZ_SECONDS in total (default 20). A
//! failure prints the input as a byte string to add to the corpus.

use std::time::{Duration, Instant};

type Harness = fn(&[u8]);

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.push(Vec::new());
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Interesting bytes for HTTP, paths and TOML.
const DICT: &[&[u8]] = &[
    b"/",
    b"..",
    b"%2e",
    b"%2E",
    b"%2f",
    b"%5c",
    b"%5C",
    b"%2F",
    b"%3b",
    b"%73",
    b"%41",
    b"/static",
    b"/app/private",
    b"\\",
    b";",
    b"?",
    b"#",
    b"\r\n",
    b"\n",
    b":",
    b" ",
    b"0",
    b"f",
    b"ffffffffffffffff",
    b"HTTP/1.1 200 OK\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: ",
    b"GET / HTTP/1.1\r\n",
    b"Host: x\r\n",
    b"Connection: close\r\n",
    b"Expect: 100-continue\r\n",
    b"\r\n\r\n",
    b"[[vhost]]\n",
    b"listen = ",
    b"\"",
    b"[limits]\n",
    b"= ",
    b"\xff",
    b"%",
    b"%%",
    b"http://backend:8080/b/",
    b"/app/",
    b"domain=",
    b"path=",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 => v.insert(at, rng.next() as u8),
            1 if !v.is_empty() => {
                v.remove(at.min(v.len() - 1));
            }
            2 => {
                let word = DICT[rng.below(DICT.len())];
                v.splice(at..at, word.iter().copied());
            }
            _ => {
                if let Some(b) = v.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
    }
    v.truncate(16 * 1024);
    v
}

fn run(name: &str, harness: Harness, budget: Duration, seed: u64) -> u64 {
    let corpus = seeds(name);
    for input in &corpus {
        harness(input);
    }
    let mut rng = Rng(seed);
    let mut runs = corpus.len() as u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base);
        let caught = std::panic::catch_unwind(|| harness(&input));
        assert!(caught.is_ok(), "{name} failed on {:?}", bytes_text(&input));
        runs += 1;
    }
    runs
}

fn bytes_text(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

#[test]
fn fuzz_every_harness_for_the_time_budget() {
    let total: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let harnesses: [(&str, Harness); 5] = [
        ("config", modproxy_fuzz::config),
        ("paths", modproxy_fuzz::paths),
        ("codec", modproxy_fuzz::codec),
        ("boundary", modproxy_fuzz::boundary),
        ("request", modproxy_fuzz::request),
    ];
    let each = Duration::from_millis(total * 1000 / harnesses.len() as u64);
    for (i, (name, h)) in harnesses.iter().enumerate() {
        let runs = run(name, *h, each, 0x9e3779b97f4a7c15 ^ (i as u64 + 1));
        println!("{name}: {runs} inputs in {:?}", each);
    }
}
