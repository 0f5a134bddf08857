//! proxy_http: the `http://` scheme handler of modproxy (Apache's
//! mod_proxy_http). mod_proxy decides where a request goes; this module
//! does the HTTP/1.1 exchange with that backend over the host's runtime,
//! keeping idle connections per worker for reuse.
//!
//! `https://` targets use a TLS connection made by the host (verified
//! against the system's roots, `tls_ca_file`, or not with `tls_verify =
//! false`). Not for: protocol upgrades (proxy_wstunnel's job) or HTTP/2
//! to backends. Guarantees: bodies stream both ways through a
//! bounded buffer, and a response cut short is never relayed as complete
//! (the exchange ends ABORTED and the core drops the client connection).
#![forbid(unsafe_code)]

mod backend;
mod deadline;
mod drain;
mod exchange;
mod metrics;
mod pool;
mod relay;
mod send;
mod target;

use modproxy_api::proxy::{register_scheme, Exchange, ExchangeStatus, SchemeHandler};
use modproxy_api::{Module, Registrar, Request};

pub struct ProxyHttp {
    /// Idle backend connections, keyed by worker.
    pools: pool::Pool<backend::Idle>,
}

impl Module for ProxyHttp {
    const NAME: &'static str = "proxy_http";

    fn init() -> Result<Self, String> {
        Ok(ProxyHttp {
            pools: pool::Pool::default(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        let me = r.module();
        register_scheme(r, "http", me);
        // https:// is the same exchange over a TLS connection from the host.
        register_scheme(r, "https", me);
        modproxy_api::metrics::register_metrics(r, "proxy_http", me);
    }
}

impl SchemeHandler for ProxyHttp {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        let mut head_time = None;
        let (code, outcome) = exchange::run(&self.pools, &mut req, &mut ex, &mut head_time).await;
        ex.set_outcome(outcome);
        if let Some(d) = head_time {
            ex.set_head_time(d);
        }
        code
    }
}

modproxy_api::declare_module!(ProxyHttp);
