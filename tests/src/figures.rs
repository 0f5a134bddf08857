//! Figures the reliability tests record for docs/reliability.md: one JSON
//! file per scenario under `target/reliability/`, rendered into the doc's
//! table by `tests/reliability/render.py`. Written by hand (no serde) to
//! keep the test crate free of dependencies.

use std::path::PathBuf;

/// One row of the reliability table.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Sort key and file name, e.g. "1a" (issue item 1, first scenario).
    pub id: &'static str,
    pub scenario: String,
    /// `file.rs::test_fn`.
    pub test: &'static str,
    pub tried: String,
    pub outcome: String,
    pub sent: u64,
    pub failed: u64,
    pub lost: u64,
    pub recovery_ms: Option<u64>,
}

/// Where figures go: `$CARGO_TARGET_DIR` (or `target/`) + `reliability/`.
pub fn dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"))
        .join("reliability")
}

impl Figure {
    /// Writes `dir()/ID.json`. Failing to write is not a test failure.
    pub fn record(&self) {
        let dir = dir();
        let _ = std::fs::create_dir_all(&dir);
        let recovery = self
            .recovery_ms
            .map_or("null".to_string(), |n| n.to_string());
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let json = format!(
            "{{\"id\": {}, \"scenario\": {}, \"test\": {}, \"tried\": {}, \"outcome\": {}, \"sent\": {}, \"failed\": {}, \"lost\": {}, \"recovery_ms\": {recovery}, \"profile\": \"{profile}\"}}\n",
            quote(self.id),
            quote(&self.scenario),
            quote(self.test),
            quote(&self.tried),
            quote(&self.outcome),
            self.sent,
            self.failed,
            self.lost,
        );
        let _ = std::fs::write(dir.join(format!("{}.json", self.id)), json);
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What wrk reported: requests, non-2xx/3xx answers and socket errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkReport {
    pub requests: u64,
    pub non_2xx: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub timeouts: u64,
}

impl WrkReport {
    pub fn parse(text: &str) -> WrkReport {
        let mut r = WrkReport::default();
        for line in text.lines().map(str::trim) {
            if line.contains("requests in") {
                r.requests = first_number(line);
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                r.non_2xx = first_number(rest);
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                for part in rest.split(',') {
                    let mut words = part.split_whitespace();
                    let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let n = n.parse().unwrap_or(0);
                    match kind {
                        "connect" => r.connect_errors = n,
                        "read" => r.read_errors = n,
                        "write" => r.write_errors = n,
                        "timeout" => r.timeouts = n,
                        _ => {}
                    }
                }
            }
        }
        r
    }

    /// Requests that failed in any way the client could see.
    pub fn failed(&self) -> u64 {
        self.non_2xx + self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }
}

fn first_number(s: &str) -> u64 {
    s.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or(0)
}

/// Starts wrk against `url` (panics with the install hint if missing).
pub fn wrk(url: &str, args: &[&str]) -> std::process::Child {
    std::process::Command::new("wrk")
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wrk is not installed: apt-get install -y wrk (.ci/run does)")
}

/// Waits for wrk and parses what it printed.
pub fn wrk_finish(child: std::process::Child) -> (WrkReport, String) {
    let out = child.wait_with_output().expect("wrk finishes");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (WrkReport::parse(&text), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_parsed() {
        let text = "  12345 requests in 6.00s, 1.2MB read\n  Socket errors: connect 1, read 2, write 3, timeout 4\n  Non-2xx or 3xx responses: 5\n";
        let r = WrkReport::parse(text);
        assert_eq!(
            (
                r.requests,
                r.connect_errors,
                r.read_errors,
                r.write_errors,
                r.timeouts,
                r.non_2xx
            ),
            (12345, 1, 2, 3, 4, 5)
        );
        assert_eq!(r.failed(), 15);
        assert_eq!(quote("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }
}
