//! The core's own Prometheus metrics: requests, responses by status class,
//! latency histogram and bytes, counted with relaxed atomics where a
//! request finishes (`server/finish.rs`), and the loaded modules. Modules
//! add their own lines through `metrics` providers (`modproxy_api::metrics`).

use crate::http::request_head::Version;
use crate::loader::registry::Registry;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Upper bounds of the latency buckets, in microseconds (Prometheus'
/// default buckets, 5 ms to 10 s).
const BOUNDS_MICROS: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

struct Counters {
    requests: AtomicU64,
    /// 1xx..5xx at 0..4; anything else counts as 5xx.
    classes: [AtomicU64; 5],
    /// Not cumulative: each request counts in the first bucket it fits.
    buckets: [AtomicU64; BOUNDS_MICROS.len()],
    latency_micros: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    /// HTTP/1.0, HTTP/1.1, HTTP/2 at 0..2.
    protocols: [AtomicU64; 3],
    /// Body bytes spliced: the response's at 0, the request's at 1.
    spliced: [AtomicU64; 2],
}

#[allow(clippy::declare_interior_mutable_const)] // only used to build the static arrays
const ZERO: AtomicU64 = AtomicU64::new(0);

static COUNTERS: Counters = Counters {
    requests: ZERO,
    classes: [ZERO; 5],
    buckets: [ZERO; BOUNDS_MICROS.len()],
    latency_micros: ZERO,
    bytes_sent: ZERO,
    bytes_received: ZERO,
    protocols: [ZERO; 3],
    spliced: [ZERO; 2],
};

/// The protocols counted, as the access log names them.
const PROTOCOLS: [Version; 3] = [Version::Http10, Version::Http11, Version::Http2];

static STARTED: OnceLock<f64> = OnceLock::new();

/// Notes the process start time (call once while starting).
pub fn started() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let _ = STARTED.set(now);
}

/// Counts one finished request.
pub fn record(status: u16, micros: u64, sent: u64, received: u64, version: Version) {
    let c = &COUNTERS;
    c.requests.fetch_add(1, Relaxed);
    let protocol = PROTOCOLS.iter().position(|v| *v == version).unwrap_or(1);
    c.protocols[protocol].fetch_add(1, Relaxed);
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    c.classes[class].fetch_add(1, Relaxed);
    if let Some(i) = BOUNDS_MICROS.iter().position(|b| micros <= *b) {
        c.buckets[i].fetch_add(1, Relaxed);
    }
    c.latency_micros.fetch_add(micros, Relaxed);
    c.bytes_sent.fetch_add(sent, Relaxed);
    c.bytes_received.fetch_add(received, Relaxed);
}

/// Which body a splice moved.
#[derive(Clone, Copy)]
pub enum Spliced {
    Response = 0,
    Request = 1,
}

/// Counts `n` body bytes moved in the kernel (ABI 1.7's splices).
pub fn spliced(body: Spliced, n: usize) {
    COUNTERS.spliced[body as usize].fetch_add(n as u64, Relaxed);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// The core's metrics in Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let c = &COUNTERS;
    let mut out = String::new();
    let requests = c.requests.load(Relaxed);
    counter(
        &mut out,
        "modproxy_requests_total",
        "Requests finished (answered or abandoned).",
        requests,
    );
    out.push_str("# HELP modproxy_requests_by_protocol_total Requests finished, by the protocol they came in.\n# TYPE modproxy_requests_by_protocol_total counter\n");
    for (v, n) in PROTOCOLS.iter().zip(&c.protocols) {
        let _ = writeln!(
            out,
            "modproxy_requests_by_protocol_total{{protocol=\"{}\"}} {}",
            v.as_str(),
            n.load(Relaxed)
        );
    }
    out.push_str("# HELP modproxy_responses_total Responses by status class.\n# TYPE modproxy_responses_total counter\n");
    for (i, n) in c.classes.iter().enumerate() {
        let _ = writeln!(
            out,
            "modproxy_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            n.load(Relaxed)
        );
    }
    out.push_str("# HELP modproxy_request_duration_seconds Time from the request head to the end of the response.\n# TYPE modproxy_request_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (bound, n) in BOUNDS_MICROS.iter().zip(&c.buckets) {
        cumulative += n.load(Relaxed);
        let le = *bound as f64 / 1e6;
        let _ = writeln!(
            out,
            "modproxy_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let sum = c.latency_micros.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "modproxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {requests}\nmodproxy_request_duration_seconds_sum {sum}\nmodproxy_request_duration_seconds_count {requests}"
    );
    counter(
        &mut out,
        "modproxy_response_bytes_total",
        "Response body bytes sent to clients.",
        c.bytes_sent.load(Relaxed),
    );
    counter(
        &mut out,
        "modproxy_request_bytes_total",
        "Request body bytes read from clients.",
        c.bytes_received.load(Relaxed),
    );
    out.push_str("# HELP modproxy_spliced_bytes_total Body bytes moved between sockets in the kernel (splice), never copied through the server.\n# TYPE modproxy_spliced_bytes_total counter\n");
    for (body, n) in ["response", "request"].iter().zip(&c.spliced) {
        let _ = writeln!(
            out,
            "modproxy_spliced_bytes_total{{body=\"{body}\"}} {}",
            n.load(Relaxed)
        );
    }
    let start = STARTED.get().copied().unwrap_or(0.0);
    let _ = writeln!(out, "# HELP modproxy_start_time_seconds When this server process started (Unix time).\n# TYPE modproxy_start_time_seconds gauge\nmodproxy_start_time_seconds {start}");
    out.push_str("# HELP modproxy_module_info A loaded module, its version and ABI version.\n# TYPE modproxy_module_info gauge\n");
    for m in &registry.modules {
        let _ = writeln!(
            out,
            "modproxy_module_info{{module=\"{}\",version=\"{}\",abi=\"{}\"}} 1",
            m.name, m.version, m.abi_version
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_classes_add_up() {
        record(200, 3_000, 10, 1, Version::Http11);
        record(503, 30_000, 5, 0, Version::Http2);
        record(99, 20_000_000, 0, 0, Version::Http11);
        let text = render(&Registry::default());
        assert!(text.contains("modproxy_requests_total 3"), "{text}");
        assert!(text.contains("modproxy_responses_total{class=\"2xx\"} 1"));
        assert!(text.contains("modproxy_responses_total{class=\"5xx\"} 1"));
        assert!(text.contains("modproxy_responses_total{class=\"1xx\"} 1"));
        assert!(text.contains("modproxy_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("modproxy_request_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("modproxy_request_duration_seconds_bucket{le=\"10\"} 2"));
        assert!(text.contains("modproxy_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("modproxy_response_bytes_total 15"));
        spliced(Spliced::Request, 7);
        let text = render(&Registry::default());
        assert!(text.contains("modproxy_spliced_bytes_total{body=\"request\"} 7"));
        assert!(text.contains("modproxy_requests_by_protocol_total{protocol=\"HTTP/1.1\"} 2"));
        assert!(text.contains("modproxy_requests_by_protocol_total{protocol=\"HTTP/2.0\"} 1"));
    }
}
