//! The handler: answers a fresh stored response without the backend (or
//! a 304 when the client's own validators match); a stale one is
//! revalidated by the request that takes the URL's fill lock, while the
//! others get the stale copy inside its `stale-while-revalidate` window
//! or wait; a miss takes the lock and lets proxy's handler run.

use crate::rules::{self, Lookup};
use crate::store::Stored;
use crate::{key, Cache, Kind, Site, FILL_NOTE, LOCK_WAIT, REVALIDATE_NOTE};
use modproxy_api::sdk::net::sleep;
use modproxy_api::{Bytes, Headers, Request, Status};
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a waiting miss looks again.
const POLL: Duration = Duration::from_millis(5);

pub fn handle(m: &'static Cache, mut req: Request) -> Option<Pending> {
    let site = m.site(&req)?;
    let kind = site.kind(req.path().trim_end_matches('*'))?;
    if req.method() == "PURGE" {
        return Some(Box::pin(purge(site, kind, req)) as Pending);
    }
    if !matches!(req.method(), "GET" | "HEAD") {
        return None;
    }
    let key = key(&req);
    let cc = req.header_str(Headers::Request, "cache-control");
    if rules::lookup(cc, req.header_str(Headers::Request, "pragma")) == Lookup::Bypass {
        // The client wants the origin's answer, which may refresh the copy.
        req.set_note(FILL_NOTE, &key);
        site.store().misses += 1;
        return None;
    }
    Some(Box::pin(lookup(site, kind, req, key)))
}

type Pending = std::pin::Pin<Box<dyn Future<Output = Status> + Send>>;

/// `PURGE /path` drops the URL's stored variants, `PURGE /prefix*` every
/// URL under it; only from loopback (as Varnish's and nginx's purge are
/// usually set up).
async fn purge(site: &Site, kind: Kind, mut req: Request) -> Status {
    let ip = req.client_addr().rsplit_once(':').map_or("", |(ip, _)| ip);
    if !(ip.starts_with("127.") || ip == "[::1]") {
        return Status::Http(403);
    }
    let whole = key(&req);
    let (prefix, exact) = match whole.strip_suffix('*') {
        Some(p) => (p.to_owned(), false),
        None => (whole, true),
    };
    let n = match kind {
        Kind::Memory => site.store().purge_matching(&prefix, exact),
        Kind::Disk => site.disk_purge(&prefix, exact),
    };
    let body = format!("{{\"purged\": {n}}}\n");
    req.set_status(200);
    req.set_header(Headers::Response, "content-type", b"application/json");
    req.set_header(
        Headers::Response,
        "content-length",
        body.len().to_string().as_bytes(),
    );
    if req.send_head().is_ok() {
        let _ = req.write_body(Bytes::from(body)).await;
    }
    Status::Ok
}

/// What one look at the store found.
enum Found {
    Hit(Stored),
    /// Served stale while another request revalidates it.
    Stale(Stored),
    /// This request fills the URL: on to the backend, conditional when a
    /// stale copy has validators.
    Fill(Option<Stored>),
    /// Another request is filling it.
    Wait,
}

fn look(site: &Site, kind: Kind, req: &Request, key: &str, now: Instant) -> Found {
    let value_of = |name: &str| req.header_str(Headers::Request, name).map(str::to_owned);
    let stored = site.get(kind, key, &value_of);
    let mut store = site.store();
    if let Some(hit) = stored.as_ref().filter(|s| s.is_fresh(now)) {
        store.hits += 1;
        return Found::Hit(hit.clone());
    }
    if !site.config.lock || store.try_fill(key, now, LOCK_WAIT) {
        store.misses += 1;
        return Found::Fill(stored);
    }
    match stored {
        Some(stale) if stale.may_serve_while_revalidating(now) => {
            store.hits += 1;
            Found::Stale(stale)
        }
        _ => Found::Wait,
    }
}

async fn lookup(site: &'static Site, kind: Kind, mut req: Request, key: String) -> Status {
    let started = Instant::now();
    loop {
        let now = Instant::now();
        match look(site, kind, &req, &key, now) {
            Found::Hit(hit) => return answer(site, req, hit, now, "HIT").await,
            Found::Stale(stale) => return answer(site, req, stale, now, "STALE").await,
            Found::Fill(stale) => {
                req.set_note(FILL_NOTE, &key);
                if let Some(stale) = stale {
                    ask_conditionally(&mut req, &stale);
                }
                return Status::Declined;
            }
            // The filling request takes too long: ask the backend too,
            // without storing (the first one will).
            Found::Wait if started.elapsed() > LOCK_WAIT => return Status::Declined,
            Found::Wait => sleep(POLL).await,
        }
    }
}

/// Turns the request into a revalidation of `stale`: the backend answers
/// 304 if it still holds (the filter then answers from the copy).
fn ask_conditionally(req: &mut Request, stale: &Stored) {
    let etag = stale.field("etag").map(str::to_owned);
    let lm = stale.field("last-modified").map(str::to_owned);
    if etag.is_none() && lm.is_none() {
        return;
    }
    req.set_note(REVALIDATE_NOTE, "1");
    req.remove_header(Headers::Request, "if-none-match");
    req.remove_header(Headers::Request, "if-modified-since");
    if let Some(e) = etag {
        req.set_header(Headers::Request, "if-none-match", e.as_bytes());
    }
    if let Some(l) = lm {
        req.set_header(Headers::Request, "if-modified-since", l.as_bytes());
    }
}

/// Sends a stored response with its Age, or 304 when the client's own
/// validators match it.
async fn answer(site: &Site, mut req: Request, hit: Stored, now: Instant, how: &str) -> Status {
    let not_modified = hit.status == 200
        && rules::not_modified(
            req.header_str(Headers::Request, "if-none-match"),
            req.header_str(Headers::Request, "if-modified-since"),
            hit.field("etag"),
            hit.field("last-modified"),
        );
    req.set_status(if not_modified { 304 } else { hit.status });
    for (name, value) in &hit.fields {
        req.add_header(Headers::Response, name, value);
    }
    req.set_header(
        Headers::Response,
        "age",
        hit.age(now).to_string().as_bytes(),
    );
    if site.config.header {
        req.set_header(Headers::Response, "x-cache", how.as_bytes());
    }
    if not_modified {
        let _ = req.send_head();
        return Status::Ok;
    }
    let len = hit.body.len().to_string();
    req.set_header(Headers::Response, "content-length", len.as_bytes());
    if req.send_head().is_ok() && req.method() != "HEAD" {
        let body: Bytes = hit.body.clone();
        if req.write_body(body).await.is_err() {
            return Status::Http(502);
        }
    }
    Status::Ok
}
