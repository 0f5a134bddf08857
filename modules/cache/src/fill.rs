//! The output filter that stores a backend's answer: it sees the head of
//! a response whose request took the fill lock (the `cache-fill` note),
//! keeps a copy of the body as it passes, and stores it at the end when
//! RFC 9111 allows. The lock is released whatever happens.

use crate::rules::{self, Limits, ResponseFacts};
use crate::store::Stored;
use crate::{Cache, Site, FILL_NOTE};
use modproxy_api::sdk::filter::{Emit, FilterStep, OutputFilter};
use modproxy_api::{Bytes, Headers, Request};
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

/// One response on its way into the store.
pub struct Filling {
    site: &'static Site,
    key: String,
    stored: Option<Stored>,
    body: Vec<u8>,
    limit: usize,
}

impl Drop for Filling {
    fn drop(&mut self) {
        self.site.store().end_fill(&self.key);
    }
}

impl OutputFilter for Cache {
    type State = Filling;

    fn start(&self, req: &mut Request) -> Option<Filling> {
        let site = self.site(req)?;
        let key = req.note(FILL_NOTE)?.to_owned();
        if site.config.header {
            req.set_header(Headers::Response, "x-cache", b"MISS");
        }
        let stored = storable(site, req);
        if stored.is_none() {
            site.store().end_fill(&key);
            return None;
        }
        let limit = usize::try_from(site.config.max_size / 4).unwrap_or(usize::MAX);
        Some(Filling {
            site,
            key,
            stored,
            body: Vec::new(),
            limit,
        })
    }

    fn body(&self, state: &mut Filling, chunk: Bytes, out: &mut Emit) -> FilterStep {
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

    fn finish(&self, state: &mut Filling, _out: &mut Emit) -> FilterStep {
        if let Some(mut stored) = state.stored.take() {
            stored.body = Bytes::from(std::mem::take(&mut state.body));
            stored.stored_at = Instant::now();
            state.site.store().put(&state.key, stored);
        }
        FilterStep::Continue
    }
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
    Some(Stored {
        status: facts.status,
        fields,
        body: Bytes::new(),
        stored_at: Instant::now(),
        lifetime,
        age_at_store,
        vary,
    })
}
