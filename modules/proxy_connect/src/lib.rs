//! proxy_connect: CONNECT tunnels (Apache's mod_proxy_connect). On a vhost
//! with `forward = true`, `CONNECT host:port` from a client in the
//! section's `allow` list, to a port in `allow_connect` (443 and 563 by
//! default, as Apache's AllowCONNECT), gets `200 Connection Established`
//! and then a two-way byte tunnel to host:port: half-close passed on,
//! closed after the vhost's `timeout` without traffic, held in
//! `limits.max_connections` and across `modproxy restart` (up to
//! `limits.tunnel_grace`) as WebSocket tunnels are.
//!
//! A CONNECT that is not allowed gets 405 (proxy: no forwarding here) or
//! 403 (this module: the client or the port); a target that does not
//! answer gets 503. Not for: tunnelling through a further proxy
//! (Apache's ProxyRemote).
#![forbid(unsafe_code)]

mod access;

use access::{split_authority, ConnectConfig, Policy};
use modproxy_api::proxy::{
    register_scheme, Exchange, ExchangeOutcome, ExchangeStatus, SchemeHandler,
};
use modproxy_api::sdk::net::TcpConn;
use modproxy_api::sdk::tunnel;
use modproxy_api::{log, ConfigError, IoError, Level, Module, Registrar, Request, Section};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

pub struct ProxyConnect {
    /// Per vhost index; a vhost without a section has the defaults.
    policies: RwLock<Vec<Option<Policy>>>,
}

impl Module for ProxyConnect {
    const NAME: &'static str = "proxy_connect";

    fn init() -> Result<Self, String> {
        Ok(ProxyConnect {
            policies: RwLock::default(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<ConnectConfig>("vhost.proxy_connect", configure);
        let me = r.module();
        register_scheme(r, "connect", me);
    }
}

fn configure(m: &ProxyConnect, s: Section<ConnectConfig>) -> Result<(), ConfigError> {
    let at = format!("{}: {}", s.file, s.key);
    let Some(vhost) = s.vhost else {
        return Err(format!("{at}: proxy_connect settings belong to a virtual host: move them under [vhost.proxy_connect]").into());
    };
    let policy = Policy::compile(s.value, &at).map_err(ConfigError::from)?;
    let mut all = m.policies.write().unwrap_or_else(PoisonError::into_inner);
    if all.len() <= vhost {
        all.resize(vhost + 1, None);
    }
    all[vhost] = Some(policy);
    Ok(())
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn millis(ms: u64) -> Duration {
    if ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(ms)
    }
}

impl SchemeHandler for ProxyConnect {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        let mut outcome = ExchangeOutcome::default();
        let code = self.tunnel(&mut req, &mut ex, &mut outcome).await;
        ex.set_outcome(outcome);
        code
    }
}

impl ProxyConnect {
    /// The allow lists of vhost `index`.
    fn allowed(&self, index: usize, client: &str, port: u16) -> Result<(), String> {
        let all = self.policies.read().unwrap_or_else(PoisonError::into_inner);
        let default = Policy::default();
        let policy = all.get(index).and_then(Option::as_ref).unwrap_or(&default);
        if !policy.client_allowed(client) {
            return Err(format!(
                "client {client} is not in [vhost.proxy_connect] allow (loopback only unless set)"
            ));
        }
        if !policy.port_allowed(port) {
            let ports: Vec<String> = policy.ports.iter().map(u16::to_string).collect();
            return Err(format!(
                "port {port} is not in [vhost.proxy_connect] allow_connect ([{}]): add it there to allow tunnels to it",
                ports.join(", ")
            ));
        }
        Ok(())
    }

    async fn tunnel(
        &self,
        req: &mut Request,
        ex: &mut Exchange,
        outcome: &mut ExchangeOutcome,
    ) -> ExchangeStatus {
        let authority = ex
            .target()
            .strip_prefix("connect://")
            .unwrap_or_default()
            .to_owned();
        let params = ex.params();
        let (_, port) = match split_authority(&authority) {
            Ok(hp) => hp,
            Err(why) => {
                log(
                    Level::Info,
                    format_args!("proxy_connect: {why}: answering 400"),
                );
                return ExchangeStatus::ClientError;
            }
        };
        if let Err(why) = self.allowed(req.vhost(), req.client_addr(), port) {
            log(
                Level::Info,
                format_args!("proxy_connect: CONNECT {authority} refused with 403: {why}"),
            );
            // The core's own 403 page, as error_override answers.
            outcome.status = 403;
            return ExchangeStatus::Overridden;
        }
        let backend = match TcpConn::connect(&authority, millis(params.connect_timeout_ms)).await {
            Ok(c) => c,
            Err(e @ (IoError::Refused | IoError::Timeout | IoError::Reset)) => {
                log(
                    Level::Error,
                    format_args!(
                        "proxy_connect: CONNECT {authority}: connect failed: {e}; answering 503"
                    ),
                );
                return ExchangeStatus::ConnectFailed;
            }
            Err(e) => {
                log(Level::Error, format_args!("proxy_connect: CONNECT {authority}: cannot reach it ({e}: is the host name right?); answering 502"));
                outcome.status = 502;
                return ExchangeStatus::Overridden;
            }
        };
        req.set_status(200);
        if req.send_head().is_err() {
            return ExchangeStatus::Aborted;
        }
        outcome.status = 200;
        let client = match TcpConn::upgrade(req).await {
            Ok(c) => c,
            Err(e) => {
                log(Level::Info, format_args!("proxy_connect: CONNECT {authority}: the client connection was not handed over: {e}"));
                return ExchangeStatus::Aborted;
            }
        };
        let moved = tunnel::run(
            client,
            backend,
            bytes::Bytes::new(),
            millis(params.timeout_ms),
        )
        .await;
        outcome.bytes_sent += moved.up;
        outcome.bytes_received += moved.down;
        if let Some(why) = moved.ended {
            log(
                Level::Debug,
                format_args!("proxy_connect: CONNECT {authority}: tunnel ended: {why}"),
            );
        }
        ExchangeStatus::Relayed
    }
}

modproxy_api::declare_module!(ProxyConnect);
