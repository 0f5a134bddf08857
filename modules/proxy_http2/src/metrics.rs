//! proxy_http2's lines in the server's Prometheus text: per HTTP/2
//! backend, the connections that take new streams and the streams open.

use crate::ProxyHttp2;
use modproxy_api::metrics::MetricsSource;
use std::fmt::Write;

impl MetricsSource for ProxyHttp2 {
    fn render(&self, out: &mut String) {
        let conns = "modproxy_h2_backend_connections";
        let streams = "modproxy_h2_backend_streams";
        let _ = writeln!(out, "# HELP {conns} HTTP/2 connections taking new streams, per backend.\n# TYPE {conns} gauge");
        let counts = self.pool.counts();
        for (backend, open, _) in &counts {
            let _ = writeln!(out, "{conns}{{backend=\"{}\"}} {open}", escape(backend));
        }
        let _ = writeln!(
            out,
            "# HELP {streams} HTTP/2 streams open, per backend.\n# TYPE {streams} gauge"
        );
        for (backend, _, active) in &counts {
            let _ = writeln!(out, "{streams}{{backend=\"{}\"}} {active}", escape(backend));
        }
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}
