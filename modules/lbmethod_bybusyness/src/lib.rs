//! mod_lbmethod_bybusyness: the `bybusyness` load-balancing method
//! (Apache's `mod_lbmethod_bybusyness.c`), pending request counting.
//!
//! Not for: anything but choosing a member. Retry, forced recovery and
//! sticky sessions belong to proxy_balancer, which counts `busy` (requests
//! in flight) and calls `find` with its lock held.
#![forbid(unsafe_code)]

use modproxy_api::lb::{register_lbmethod, select, LbMember, LbMethod};
use modproxy_api::{Module, Registrar, Request};

/// The member with the fewest requests in flight (`busy`). Among equally
/// busy members the byrequests score decides, so idle members share the
/// load by weight instead of all of it going to the first one:
///
/// ```text
/// busy       3  1  2   → member 1
/// busy       0  0      → 0, 1, 0, 1 … (weights 1, 1)
/// ```
///
/// Lower `lbset`s, spares and hot standbys follow Apache's rules in
/// [`select::get_best`].
pub struct ByBusyness;

impl LbMethod for ByBusyness {
    type State = ();

    fn new_state(&self, _balancer: &str) {}

    fn find(&self, _state: &mut (), members: &mut [LbMember], _req: &Request) -> Option<usize> {
        select::by_busyness(members)
    }

    /// Forgets the tie-break scores; `busy` is live data and stays.
    fn reset(&self, _state: &mut (), members: &mut [LbMember]) {
        for m in members {
            m.lbstatus = 0;
        }
    }
}

impl Module for ByBusyness {
    const NAME: &'static str = "lbmethod_bybusyness";

    fn init() -> Result<Self, String> {
        Ok(ByBusyness)
    }

    fn register(r: &mut Registrar<Self>) {
        let method = r.module();
        register_lbmethod(r, "bybusyness", method);
    }
}

modproxy_api::declare_module!(ByBusyness);

#[cfg(test)]
mod tests {
    use super::*;

    fn members(busy: &[u64]) -> Vec<LbMember> {
        let member = |&b: &u64| LbMember {
            lbfactor: 100,
            busy: b,
            ..LbMember::default()
        };
        busy.iter().map(member).collect()
    }

    #[test]
    fn least_busy_wins() {
        let mut ms = members(&[3, 1, 2]);
        assert_eq!(select::by_busyness(&mut ms), Some(1));
    }

    #[test]
    fn idle_members_alternate_and_reset_restarts_the_tie_break() {
        let mut ms = members(&[0, 0]);
        let got: Vec<_> = (0..3)
            .filter_map(|_| select::by_busyness(&mut ms))
            .collect();
        assert_eq!(got, [0, 1, 0]);
        ByBusyness.reset(&mut (), &mut ms);
        assert!(ms.iter().all(|m| m.lbstatus == 0));
        assert_eq!(select::by_busyness(&mut ms), Some(0));
    }
}
