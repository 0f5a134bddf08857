//! proxy_wstunnel: WebSocket tunnels (Apache's mod_proxy_wstunnel, 2.4.47+
//! shape). Handles `ws://` and `wss://` targets, and the WebSocket
//! upgrades that proxy routes here from `http://` / `https://` workers
//! with `upgrade = "websocket"`.
//!
//! A request that asks for a WebSocket goes to the backend with its
//! Upgrade; on `101 Switching Protocols` the 101 goes to the client, the
//! host hands over the client's connection, and bytes flow both ways
//! until both sides closed (half-close passed on) or nothing moved for the
//! worker's `timeout`. Any other answer is relayed as a normal response.
//! A plain request to a `ws://` target is an ordinary HTTP exchange,
//! handed to proxy_http. A tunnel is one backend connection, so through a
//! balancer it stays on the member it started on.
#![forbid(unsafe_code)]

mod handshake;
mod target;

use modproxy_api::proxy::{register_scheme, Exchange, ExchangeStatus, SchemeHandle, SchemeHandler};
use modproxy_api::{log, Level, Module, Registrar, Request};

pub struct ProxyWstunnel;

impl Module for ProxyWstunnel {
    const NAME: &'static str = "proxy_wstunnel";

    fn init() -> Result<Self, String> {
        Ok(ProxyWstunnel)
    }

    fn register(r: &mut Registrar<Self>) {
        let me = r.module();
        register_scheme(r, "ws", me);
        register_scheme(r, "wss", me);
    }
}

impl SchemeHandler for ProxyWstunnel {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        if !handshake::wants_websocket(&req) {
            return plain_http(&mut req, &mut ex).await;
        }
        let (rc, outcome) = handshake::run(&mut req, &mut ex).await;
        ex.set_outcome(outcome);
        rc
    }
}

/// A request without a WebSocket upgrade to a `ws://` target: an ordinary
/// exchange with the same backend, by proxy_http.
async fn plain_http(req: &mut Request, ex: &mut Exchange) -> ExchangeStatus {
    let url = target::as_http(ex.target());
    let scheme = if url.starts_with("https:") {
        "https"
    } else {
        "http"
    };
    let Some(http) = SchemeHandle::lookup(scheme) else {
        log(
            Level::Error,
            format_args!(
                "proxy_wstunnel: {}: a request without Upgrade: websocket needs proxy_http: run `modproxy enmod proxy_http`",
                ex.target()
            ),
        );
        return ExchangeStatus::Declined;
    };
    let (rc, outcome) = http
        .exchange(req, &url, ex.worker(), ex.params(), ex.flags())
        .await;
    ex.set_outcome(outcome);
    rc
}

modproxy_api::declare_module!(ProxyWstunnel);
