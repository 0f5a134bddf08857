//! translate_name: claim the requests a rule maps to a backend (and, with
//! `forward = true`, absolute-URI requests), leaving notes for the handler.
//! Runs first, so a proxied path never reaches another module's mapping.

use crate::notes::{FCGI, RULE, TARGET};
use crate::paths::{dot_segment, target};
use crate::vhost::VhostProxy;
use crate::Proxy;
use modproxy_api::{log, Level, Request, Status};

/// OK with the notes set when a rule matched; Declined when none did (or an
/// exclusion did); 400 for a dot segment a backend could still resolve
/// (the core has resolved the plain ones); 403 for a forward-proxy
/// request while forwarding is off.
pub fn translate(m: &Proxy, req: &mut Request) -> Status {
    let Some(v) = m.vhost(req.vhost()) else {
        if !req.path().starts_with('/') && req.method() == "CONNECT" {
            return connect_refused(req, "this vhost has no [vhost.proxy] section");
        }
        return Status::Declined;
    };
    if !req.absolute_authority().is_empty() {
        return forward(v, req);
    }
    let path = req.path();
    if !path.starts_with('/') {
        // CONNECT's authority-form target (`host:port`) is the only other
        // form that reaches a hook (the core answers `*` itself): the
        // method is asked only then, so other requests pay nothing.
        if req.method() == "CONNECT" {
            return connect(m, v, req);
        }
        return Status::Declined;
    }
    if let Some(why) = dot_segment(path) {
        log(
            Level::Info,
            format_args!(
                "{why}: refused with 400: a backend reading \\ or %2f as /, or dropping ;params, would resolve it and could escape the proxied prefix"
            ),
        );
        return Status::Http(400);
    }
    let Some((rule, url)) = v.route(path, req.query()) else {
        return Status::Declined;
    };
    req.set_note(TARGET, &url);
    req.set_note(RULE, &rule.name);
    if let Some(fcgi) = &rule.fcgi {
        req.set_note(FCGI, fcgi);
    }
    Status::Ok
}

/// An absolute URI in the request line asks us to be a forward proxy.
fn forward(v: &VhostProxy, req: &mut Request) -> Status {
    let authority = req.absolute_authority();
    if !v.forward {
        log(
            Level::Info,
            format_args!("forward-proxy request for {authority} refused with 403: forward proxying is off (set forward = true in [vhost.proxy] to allow it)"),
        );
        return Status::Http(403);
    }
    if !authority
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        log(Level::Info, format_args!("forward-proxy request for {authority} refused with 501: only http:// URLs are forwarded"));
        return Status::Http(501);
    }
    let url = target(authority, req.path(), req.query());
    req.set_note(TARGET, &url);
    req.set_note(RULE, "forward");
    Status::Ok
}

/// CONNECT host:port asks for a tunnel (module proxy_connect), on a vhost
/// that forwards. proxy_connect checks the port and the client.
fn connect(m: &Proxy, v: &VhostProxy, req: &mut Request) -> Status {
    if !v.forward {
        return connect_refused(
            req,
            "forward proxying is off (set forward = true in [vhost.proxy], and enable proxy_connect)",
        );
    }
    if m.scheme("connect").is_none() {
        return connect_refused(
            req,
            "no module tunnels CONNECT: run `modproxy enmod proxy_connect`",
        );
    }
    let url = format!("connect://{}", req.path());
    req.set_note(TARGET, &url);
    req.set_note(RULE, "forward");
    Status::Ok
}

fn connect_refused(req: &Request, why: &str) -> Status {
    log(
        Level::Info,
        format_args!("CONNECT {} refused with 405: {why}", req.path()),
    );
    Status::Http(405)
}
