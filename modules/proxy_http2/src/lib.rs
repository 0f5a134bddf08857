//! proxy_http2: the `h2://` and `h2c://` scheme handlers of modproxy
//! (Apache's mod_proxy_http2). mod_proxy decides where a request goes;
//! this module sends it to an HTTP/2 backend as a stream, multiplexed
//! with others on a few connections per backend (`[[vhost.proxy.h2]]`),
//! and relays the answer, trailers included (gRPC).
//!
//! `h2://` is TLS with ALPN h2 (a backend that does not pick h2 is
//! refused); `h2c://` is cleartext with prior knowledge (no Upgrade
//! dance). The h2 crate does the framing, HPACK and flow control; it runs
//! over the host's connections (io.rs) and its connection task on the
//! host's spawn, since this cdylib's tokio has no reactor.
//!
//! Not for: server push (refused in SETTINGS), or the Upgrade to h2c.
//! Guarantees: bodies stream both ways within the flow-control windows
//! (never buffered whole), a response cut short is never relayed as
//! complete, and a connection that dies fails only its own streams.
#![forbid(unsafe_code)]

mod body;
mod config;
mod exchange;
mod io;
mod metrics;
mod pool;
mod request;
mod stream;
mod target;

use config::{H2Config, Limits};
use modproxy_api::hash::ConfigMap;
use modproxy_api::proxy::{register_scheme, Exchange, ExchangeStatus, SchemeHandler};
use modproxy_api::sdk::order;
use modproxy_api::{ConfigError, Module, Registrar, Request, Section};
use std::sync::{Mutex, OnceLock, PoisonError};

pub struct ProxyHttp2 {
    pool: pool::Pool,
    /// `[[vhost.proxy.h2]]` as read: backend key → (where, settings).
    read: Mutex<ConfigMap<String, (String, Limits)>>,
    /// The same, frozen at post_config for the request path.
    limits: OnceLock<ConfigMap<String, Limits>>,
}

impl Module for ProxyHttp2 {
    const NAME: &'static str = "proxy_http2";

    fn init() -> Result<Self, String> {
        Ok(ProxyHttp2 {
            pool: pool::Pool::default(),
            read: Mutex::default(),
            limits: OnceLock::new(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<Vec<H2Config>>("vhost.proxy.h2", ProxyHttp2::configure);
        r.post_config(order::MIDDLE, ProxyHttp2::freeze);
        let me = r.module();
        // h2:// is the same exchange over TLS with ALPN h2.
        register_scheme(r, "h2", me);
        register_scheme(r, "h2c", me);
        modproxy_api::metrics::register_metrics(r, "proxy_http2", me);
    }
}

impl ProxyHttp2 {
    /// One setting per backend: the same address twice with other limits
    /// is an error, as one backend has one pool.
    fn configure(&self, section: Section<Vec<H2Config>>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, c) in section.value.into_iter().enumerate() {
            let at = format!("{}: {}[{i}]", section.file, section.key);
            match c.compile(&at) {
                Ok((key, limits)) => match read.get(&key) {
                    Some((first, known)) if *known != limits => problems.push(format!(
                        "{at}: {key} is already set up differently at {first}: one backend has one pool; make them the same"
                    )),
                    Some(_) => {}
                    None => drop(read.insert(key, (at, limits))),
                },
                Err(e) => problems.extend(e),
            }
        }
        ConfigError::result(problems)
    }

    fn freeze(&self) -> Result<(), ConfigError> {
        let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        let map = read.iter().map(|(k, (_, l))| (k.clone(), *l));
        let _ = self.limits.set(map.collect());
        Ok(())
    }

    fn limits(&self, key: &str) -> Limits {
        self.limits
            .get()
            .and_then(|m| m.get(key))
            .copied()
            .unwrap_or_default()
    }
}

impl SchemeHandler for ProxyHttp2 {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        let limits = |key: &str| self.limits(key);
        let (code, outcome, head_time) = exchange::run(&self.pool, limits, &mut req, &mut ex).await;
        ex.set_outcome(outcome);
        if let Some(d) = head_time {
            ex.set_head_time(d);
        }
        code
    }
}

modproxy_api::declare_module!(ProxyHttp2);
