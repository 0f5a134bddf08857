//! proxy_ajp: the `ajp://` scheme handler of modproxy (Apache's
//! mod_proxy_ajp), for Tomcat and other servlet containers' AJP13
//! connectors. mod_proxy decides where a request goes (a `pass` rule or a
//! balancer member); this module forwards it as AJP13 (packet.rs,
//! forward.rs) and relays the answer (exchange.rs), keeping idle
//! connections per connector and CPINGing each before it is reused.
//!
//! Not for: AJP's TLS attributes beyond the `is_ssl` flag (the host does
//! not lend modules the client's cipher or certificate), or the AJP14
//! extensions. Guarantees: the request body goes in chunks as the
//! container asks for them, the response streams back, a packet over the
//! packet size or one that breaks the protocol is a 502 (or an aborted
//! response once the head is out), and such a connection is never reused.
#![forbid(unsafe_code)]

mod config;
mod exchange;
mod forward;
mod packet;
mod pool;

use config::{AjpConfig, Connector};
use modproxy_api::hash::ConfigMap;
use modproxy_api::proxy::{register_scheme, Exchange, ExchangeStatus, SchemeHandler};
use modproxy_api::sdk::order;
use modproxy_api::{ConfigError, Module, Registrar, Request, Section};
use std::sync::{Mutex, OnceLock, PoisonError};

pub struct ProxyAjp {
    pool: pool::Pool,
    /// `[[vhost.proxy.ajp]]` as read: address → (where, settings).
    read: Mutex<ConfigMap<String, (String, Connector)>>,
    /// The same, frozen at post_config for the request path.
    connectors: OnceLock<ConfigMap<String, Connector>>,
}

impl Module for ProxyAjp {
    const NAME: &'static str = "proxy_ajp";

    fn init() -> Result<Self, String> {
        Ok(ProxyAjp {
            pool: pool::Pool::default(),
            read: Mutex::default(),
            connectors: OnceLock::new(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<Vec<AjpConfig>>("vhost.proxy.ajp", ProxyAjp::configure);
        r.post_config(order::MIDDLE, ProxyAjp::freeze);
        let me = r.module();
        register_scheme(r, "ajp", me);
    }
}

impl ProxyAjp {
    /// One connector per address: the same address twice with other
    /// settings is an error, as both could not match one Tomcat.
    fn configure(&self, section: Section<Vec<AjpConfig>>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, c) in section.value.into_iter().enumerate() {
            let at = format!("{}: {}[{i}]", section.file, section.key);
            match c.compile(&at) {
                Ok((addr, conn)) => match read.get(&addr) {
                    Some((first, known)) if *known != conn => problems.push(format!(
                        "{at}: ajp://{addr} is already set up differently at {first}: one connector has one secret and packet size; make them the same"
                    )),
                    Some(_) => {}
                    None => drop(read.insert(addr, (at, conn))),
                },
                Err(e) => problems.extend(e),
            }
        }
        ConfigError::result(problems)
    }

    fn freeze(&self) -> Result<(), ConfigError> {
        let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        let map = read.iter().map(|(a, (_, c))| (a.clone(), c.clone()));
        let _ = self.connectors.set(map.collect());
        Ok(())
    }

    fn connector(&self, addr: &str) -> Connector {
        self.connectors
            .get()
            .and_then(|m| m.get(addr))
            .cloned()
            .unwrap_or_default()
    }
}

impl SchemeHandler for ProxyAjp {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        let mut head_time = None;
        let connector = |addr: &str| self.connector(addr);
        let (code, outcome) =
            exchange::run(&self.pool, connector, &mut req, &mut ex, &mut head_time).await;
        ex.set_outcome(outcome);
        if let Some(d) = head_time {
            ex.set_head_time(d);
        }
        code
    }
}

modproxy_api::declare_module!(ProxyAjp);
