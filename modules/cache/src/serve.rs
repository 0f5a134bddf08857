//! The handler: answers a fresh stored response without the backend; on
//! a miss takes the URL's fill lock and lets proxy's handler run, or,
//! while another request fills it, waits for that answer.

use crate::rules::{self, Lookup};
use crate::store::Stored;
use crate::{key, Cache, Site, FILL_NOTE, LOCK_WAIT};
use modproxy_api::sdk::net::sleep;
use modproxy_api::{Bytes, Headers, Request, Status};
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a waiting miss looks again.
const POLL: Duration = Duration::from_millis(5);

pub fn handle(
    m: &'static Cache,
    mut req: Request,
) -> Option<impl Future<Output = Status> + Send + 'static> {
    let site = m.site(&req)?;
    if !matches!(req.method(), "GET" | "HEAD") || !site.covers(req.path()) {
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
    Some(async move { lookup(site, req, key).await })
}

/// What one look at the store found.
enum Found {
    Hit(Stored),
    /// This request fills the URL: on to the backend.
    Fill,
    /// Another request is filling it.
    Wait,
}

fn look(site: &Site, req: &Request, key: &str, now: Instant) -> Found {
    let value_of = |name: &str| req.header_str(Headers::Request, name).map(str::to_owned);
    let mut store = site.store();
    if let Some(hit) = store.get(key, &value_of, now) {
        store.hits += 1;
        return Found::Hit(hit);
    }
    if !site.config.lock || store.try_fill(key, now, LOCK_WAIT) {
        store.misses += 1;
        return Found::Fill;
    }
    Found::Wait
}

async fn lookup(site: &'static Site, mut req: Request, key: String) -> Status {
    let started = Instant::now();
    loop {
        let now = Instant::now();
        match look(site, &req, &key, now) {
            Found::Hit(hit) => return answer(site, req, hit, now).await,
            Found::Fill => {
                req.set_note(FILL_NOTE, &key);
                return Status::Declined;
            }
            // The filling request takes too long: ask the backend too,
            // without storing (the first one will).
            Found::Wait if started.elapsed() > LOCK_WAIT => return Status::Declined,
            Found::Wait => sleep(POLL).await,
        }
    }
}

/// Sends a stored response, with its Age.
async fn answer(site: &Site, mut req: Request, hit: Stored, now: Instant) -> Status {
    req.set_status(hit.status);
    for (name, value) in &hit.fields {
        req.add_header(Headers::Response, name, value);
    }
    req.set_header(
        Headers::Response,
        "age",
        hit.age(now).to_string().as_bytes(),
    );
    req.set_header(
        Headers::Response,
        "content-length",
        hit.body.len().to_string().as_bytes(),
    );
    if site.config.header {
        req.set_header(Headers::Response, "x-cache", b"HIT");
    }
    if req.send_head().is_ok() && req.method() != "HEAD" {
        let body: Bytes = hit.body.clone();
        if req.write_body(body).await.is_err() {
            return Status::Http(502);
        }
    }
    Status::Ok
}
