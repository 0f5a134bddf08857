//! proxy_fcgi: the `fcgi://` scheme handler of modproxy (Apache's
//! mod_proxy_fcgi). mod_proxy decides where a request goes; this module
//! speaks FastCGI to that server (PHP-FPM, or any FastCGI responder) over
//! TCP or a unix socket (`unix:/run/php/php8.2-fpm.sock|fcgi://localhost/`),
//! through the host's runtime.
//!
//! The request becomes BEGIN_REQUEST, the CGI/1.1 variables Apache sets
//! (plus the rule's `fcgi_set_env`) as PARAMS, and the client's body as
//! STDIN records, streamed. STDOUT is read as a CGI response (Status,
//! Location, fields) and its body streamed back; STDERR lines go to the
//! error log with the worker's name. With `enable_reuse` the connection
//! is kept (FCGI_KEEP_CONN). Not for: multiplexing several requests on one
//! connection (no FastCGI server in use does it), the authorizer and
//! filter roles. Guarantees: every wait on the server is bounded by the
//! worker's timeouts; a response cut short is never relayed as complete.
#![forbid(unsafe_code)]

mod backend;
mod exchange;
mod params;
mod pool;
mod record;
mod response;
mod target;

use modproxy_api::proxy::{register_scheme, Exchange, ExchangeStatus, SchemeHandler};
use modproxy_api::{Module, Registrar, Request};

pub struct ProxyFcgi {
    pools: pool::Pool,
}

impl Module for ProxyFcgi {
    const NAME: &'static str = "proxy_fcgi";

    fn init() -> Result<Self, String> {
        Ok(ProxyFcgi {
            pools: pool::Pool::default(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        let me = r.module();
        register_scheme(r, "fcgi", me);
    }
}

impl SchemeHandler for ProxyFcgi {
    async fn exchange(&'static self, mut req: Request, mut ex: Exchange) -> ExchangeStatus {
        let (code, outcome) = exchange::run(&self.pools, &mut req, &mut ex).await;
        ex.set_outcome(outcome);
        code
    }
}

modproxy_api::declare_module!(ProxyFcgi);
