//! proxy_http's lines in the server's Prometheus text: how many idle
//! keep-alive connections each worker's pool holds.

use crate::ProxyHttp;
use modproxy_api::metrics::MetricsSource;
use std::fmt::Write;

impl MetricsSource for ProxyHttp {
    fn render(&self, out: &mut String) {
        let name = "modproxy_backend_pool_idle_connections";
        let _ = writeln!(out, "# HELP {name} Idle keep-alive connections kept for reuse, per backend worker.\n# TYPE {name} gauge");
        for (worker, n) in self.pools.idle_counts() {
            let worker = worker.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "{name}{{worker=\"{worker}\"}} {n}");
        }
    }
}
