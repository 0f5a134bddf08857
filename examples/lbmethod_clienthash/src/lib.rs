//! lbmethod_clienthash: an example third-party load-balancing method. Each
//! client goes to the same member every time, keyed by its `X-Client-Id`
//! header or else its IP address (the request context an lbmethod can read).
//!
//! Not for: session stickiness that must survive member changes exactly
//! (use `sticky_session`); a member going down moves only its own clients.
#![forbid(unsafe_code)]

use modproxy_api::lb::{register_lbmethod, select, LbMember, LbMethod};
use modproxy_api::{Headers, Module, Registrar, Request};

/// The header that names a client, when the client (or a front proxy) sends one.
const CLIENT_ID: &str = "x-client-id";

pub struct ClientHash;

/// Per-balancer state: a seed from the balancer's name, so two balancers
/// over the same members do not send a client to the same place by rote.
pub struct Seed(u64);

impl LbMethod for ClientHash {
    type State = Seed;

    fn new_state(&self, balancer: &str) -> Seed {
        Seed(fnv1a(FNV_OFFSET, balancer.as_bytes()))
    }

    /// Rendezvous hashing: every member scores `hash(seed, key, index)`,
    /// scaled by its weight; the highest usable score wins. The score goes
    /// into `lbstatus` (the method's own field) so that `get_best` can
    /// compare it while applying Apache's lbset, spare and standby rules.
    fn find(&self, seed: &mut Seed, members: &mut [LbMember], req: &Request) -> Option<usize> {
        let key = client_key(req);
        for (i, m) in members.iter_mut().enumerate() {
            let h = fnv1a(fnv1a(seed.0, key.as_bytes()), &i.to_le_bytes());
            // 32 bits of hash × lbfactor (≤ 10000) cannot overflow an i64.
            m.lbstatus = i64::from((h >> 32) as u32) * m.lbfactor / 100;
        }
        let best = select::get_best(members, |cur, prev| {
            prev.is_none_or(|p| cur.lbstatus > p.lbstatus)
        })?;
        members[best].elected += 1;
        Some(best)
    }
}

/// The `X-Client-Id` header, else the client's IP without its port.
fn client_key(req: &Request) -> String {
    if let Some(id) = req.header_str(Headers::Request, CLIENT_ID) {
        return format!("id:{id}");
    }
    let addr = req.client_addr();
    let ip = addr.rsplit_once(':').map_or(addr, |(ip, _port)| ip);
    format!("ip:{ip}")
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: small, no dependency, and stable across builds and platforms
/// (std's hasher is randomly seeded per process, so a restart would move
/// every client).
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Module for ClientHash {
    const NAME: &'static str = "lbmethod_clienthash";

    fn init() -> Result<Self, String> {
        Ok(ClientHash)
    }

    fn register(r: &mut Registrar<Self>) {
        let method = r.module();
        register_lbmethod(r, "clienthash", method);
    }
}

modproxy_api::declare_module!(ClientHash);
