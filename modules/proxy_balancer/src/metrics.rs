//! proxy_balancer's lines in the server's Prometheus text: per member
//! elected, busy, errors, traffic and state.

use crate::manager::state::{CheckView, MemberView};
use crate::ProxyBalancer;
use modproxy_api::metrics::MetricsSource;
use std::fmt::Write;

const STATES: [&str; 7] = [
    "ok",
    "disabled",
    "stopped",
    "hc-failed",
    "error",
    "draining",
    "standby",
];

/// A label value with `\`, `"` and newlines escaped (Prometheus text format).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type Sample = fn(&MemberView) -> u64;

const SERIES: [(&str, &str, &str, Sample); 5] = [
    (
        "modproxy_balancer_member_elected_total",
        "counter",
        "Times the member was picked.",
        |m| m.elected,
    ),
    (
        "modproxy_balancer_member_busy",
        "gauge",
        "Requests in flight on the member.",
        |m| m.busy,
    ),
    (
        "modproxy_balancer_member_errors_total",
        "counter",
        "Times the member was put in error state.",
        |m| m.errors,
    ),
    (
        "modproxy_balancer_member_sent_bytes_total",
        "counter",
        "Bytes sent to the member.",
        |m| m.bytes_to,
    ),
    (
        "modproxy_balancer_member_received_bytes_total",
        "counter",
        "Bytes read from the member.",
        |m| m.bytes_from,
    ),
];

impl MetricsSource for ProxyBalancer {
    fn render(&self, out: &mut String) {
        let views: Vec<_> = self.clusters_sorted().iter().map(|c| c.view()).collect();
        for (name, kind, help, value) in SERIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for b in &views {
                for m in &b.members {
                    let _ = writeln!(
                        out,
                        "{name}{{balancer=\"{}\",member=\"{}\"}} {}",
                        label(&b.name),
                        label(&m.url),
                        value(m)
                    );
                }
            }
        }
        render_checks(out, &views);
        let name = "modproxy_balancer_member_state";
        let _ = writeln!(out, "# HELP {name} 1 for the member's current state (ok, disabled, stopped, hc-failed, error, draining, standby).\n# TYPE {name} gauge");
        for b in &views {
            for m in &b.members {
                for s in STATES {
                    let on = u8::from(m.state == s);
                    let _ = writeln!(
                        out,
                        "{name}{{balancer=\"{}\",member=\"{}\",state=\"{s}\"}} {on}",
                        label(&b.name),
                        label(&m.url)
                    );
                }
            }
        }
    }
}

/// The health checks' series, for members that have checks.
fn render_checks(out: &mut String, views: &[crate::manager::state::BalancerView]) {
    type CheckSample = fn(&CheckView) -> String;
    let series: [(&str, &str, CheckSample); 4] = [
        (
            "modproxy_balancer_member_check_passed",
            "1 when the member's last health check passed.",
            |c| u8::from(c.last_result == "passed").to_string(),
        ),
        (
            "modproxy_balancer_member_check_timestamp_seconds",
            "Unix time of the member's last health check.",
            |c| c.last_check.to_string(),
        ),
        (
            "modproxy_balancer_member_check_duration_seconds",
            "How long the member's last health check took.",
            |c| format!("{:.6}", c.last_duration_ms / 1000.0),
        ),
        (
            "modproxy_balancer_member_check_failures_in_a_row",
            "Consecutive failed health checks of the member.",
            |c| c.consecutive_fails.to_string(),
        ),
    ];
    for (name, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for b in views {
            for m in &b.members {
                if let Some(c) = &m.hcheck {
                    let _ = writeln!(
                        out,
                        "{name}{{balancer=\"{}\",member=\"{}\"}} {}",
                        label(&b.name),
                        label(&m.url),
                        value(c)
                    );
                }
            }
        }
    }
}
