//! The output filter that stores a backend's answer: it sees the head of
//! a response whose request took the fill lock (the `cache-fill` note),
//! keeps a copy of the body as it passes, and stores it at the end when
//! RFC 9111 allows. A 304 to a revalidation becomes the stored response,
//! fresh again; a 5xx (the backend's, or the proxy's own when the backend
//! is down) becomes the stale copy inside its `stale-if-error` window.
//! The lock is released whatever happens.

use crate::rules::{self, Limits, ResponseFacts};
use crate::store::Stored;
use crate::{Cache, Kind, Site, FILL_NOTE, REVALIDATE_NOTE};
use modproxy_api::sdk::filter::{Emit, Filter, FilterStep};
use modproxy_api::{Bytes, Headers, Level, Request};
use std::time::{Duration, Instant};

/// Fields the cache never stores: hop-by-hop, framing, its own.
const NOT_STORED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "age",
    "x-cache",
    "set-cookie",
];

/// One response on its way into the store, or answered from it.
pub struct Filling {
    site: &'static Site,
    kind: Kind,
    key: String,
    /// What will be stored at the end, while it is small enough.
    stored: Option<Stored>,
    body: Vec<u8>,
    limit: usize,
    /// The stored body that answers instead of the backend's (a 304 or a
    /// 5xx replaced); the backend's own body is then dropped.
    replay: Option<Bytes>,
}

impl Drop for Filling {
    fn drop(&mut self) {
        self.site.store().end_fill(&self.key);
    }
}

impl Filter for Cache {
    type State = Filling;

    fn start(&self, req: &mut Request) -> Option<Filling> {
        let site = self.site(req)?;
        let key = req.note(FILL_NOTE)?.to_owned();
        let kind = site.kind(req.path()).unwrap_or(Kind::Memory);
        let limit = usize::try_from(site.config.max_size / 4).unwrap_or(usize::MAX);
        let mut state = Filling {
            site,
            kind,
            key,
            stored: None,
            body: Vec::new(),
            limit,
            replay: None,
        };
        let value_of = |name: &str| req.header_str(Headers::Request, name).map(str::to_owned);
        let copy = site.get(kind, &state.key, &value_of);
        let status = req.status();
        match copy {
            Some(old) if status == 304 && req.note(REVALIDATE_NOTE).is_some() => {
                // Still valid: the stored response, with the 304's fields.
                req.set_status(old.status);
                add_missing(req, &old.fields);
                mark(site, req, "REVALIDATED");
                if let Some(mut fresh) = storable(site, req) {
                    fresh.body = old.body.clone();
                    site.refresh(kind, &state.key, fresh);
                }
                state.replay = Some(old.body);
                return Some(state);
            }
            Some(old) if status >= 500 && old.may_serve_on_error(Instant::now()) => {
                replace_all(req, &old);
                mark(site, req, "STALE");
                modproxy_api::log(
                    Level::Warn,
                    format_args!(
                        "cache: {}: the backend answered {status}; answering with the stale copy (stale-if-error)",
                        state.key
                    ),
                );
                state.replay = Some(old.body);
                return Some(state);
            }
            _ => {}
        }
        mark(site, req, "MISS");
        state.stored = storable(site, req);
        // None: not stored, and the lock goes with the state right away.
        state.stored.is_some().then_some(state)
    }

    fn body(&self, state: &mut Filling, chunk: Bytes, out: &mut Emit) -> FilterStep {
        if state.replay.is_some() {
            return FilterStep::Continue; // the stored body answers instead
        }
        if state.stored.is_some() {
            if state.body.len() + chunk.len() > state.limit {
                state.stored = None; // too big to keep: passed on, not stored
                state.body = Vec::new();
            } else {
                state.body.extend_from_slice(&chunk);
            }
        }
        out.send(chunk);
        FilterStep::Continue
    }

    fn finish(&self, state: &mut Filling, out: &mut Emit) -> FilterStep {
        if let Some(body) = state.replay.take() {
            out.send(body);
            return FilterStep::Continue;
        }
        if let Some(mut stored) = state.stored.take() {
            stored.body = Bytes::from(std::mem::take(&mut state.body));
            stored.stored_at = Instant::now();
            state.site.put(state.kind, &state.key, stored);
        }
        FilterStep::Continue
    }
}

fn mark(site: &Site, req: &mut Request, how: &str) {
    if site.config.header {
        req.set_header(Headers::Response, "x-cache", how.as_bytes());
    }
}

/// Adds the stored fields the response lacks (a 304 carries only some).
fn add_missing(req: &mut Request, fields: &[(String, Vec<u8>)]) {
    for (name, value) in fields {
        if req.header(Headers::Response, name).is_none() {
            req.add_header(Headers::Response, name, value);
        }
    }
}

/// Puts the stored response in place of this one (an error's fields go).
fn replace_all(req: &mut Request, stored: &Stored) {
    let mut names = Vec::new();
    req.for_each_header(Headers::Response, |n, _| names.push(n.to_owned()));
    for n in names {
        req.remove_header(Headers::Response, &n);
    }
    req.set_status(stored.status);
    add_missing(req, &stored.fields);
    let age = stored.age(Instant::now()).to_string();
    req.set_header(Headers::Response, "age", age.as_bytes());
}

/// The response as it will be stored, if RFC 9111 lets a shared cache keep it.
fn storable(site: &Site, req: &Request) -> Option<Stored> {
    let h = |name: &str| req.header_str(Headers::Response, name);
    let facts = ResponseFacts {
        status: req.status(),
        cache_control: h("cache-control"),
        expires: h("expires"),
        date: h("date"),
        last_modified: h("last-modified"),
        has_set_cookie: h("set-cookie").is_some(),
        vary: h("vary"),
        authorized: req.header(Headers::Request, "authorization").is_some(),
    };
    let c = &site.config;
    let limits = Limits {
        default_expire: Duration::from_secs(c.default_expire),
        max_expire: Duration::from_secs(c.max_expire),
        ignore_no_last_mod: c.ignore_no_last_mod,
    };
    let lifetime = rules::lifetime(&facts, &limits).ok()?;
    if req.method() != "GET" {
        return None; // a HEAD's answer has no body to answer a GET with
    }
    let vary = facts
        .vary
        .unwrap_or("")
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .map(|name| {
            let value = req.header_str(Headers::Request, &name).map(str::to_owned);
            (name, value)
        })
        .collect();
    let mut fields = Vec::new();
    req.for_each_header(Headers::Response, |name, value| {
        if !NOT_STORED.contains(&name) {
            fields.push((name.to_owned(), value.to_vec()));
        }
    });
    let age_at_store = h("age").and_then(|a| a.trim().parse().ok()).unwrap_or(0);
    let (stale_while_revalidate, stale_if_error) = rules::stale_windows(facts.cache_control);
    Some(Stored {
        status: facts.status,
        fields,
        body: Bytes::new(),
        stored_at: Instant::now(),
        lifetime,
        age_at_store,
        vary,
        stale_while_revalidate,
        stale_if_error,
    })
}
