//! mod_lbmethod_byrequests: the `byrequests` load-balancing method
//! (Apache's `mod_lbmethod_byrequests.c`), weighted request counting.
//!
//! Not for: anything but choosing a member. Retry, forced recovery and
//! sticky sessions belong to proxy_balancer, which calls `find` with its
//! lock held and expired errors already cleared.
#![forbid(unsafe_code)]

use modproxy_api::lb::{register_lbmethod, select, LbMember, LbMethod};
use modproxy_api::{Module, Registrar, Request};

/// Smooth weighted round robin over each member's `lbfactor`
/// (loadfactor × 100).
///
/// On every pick each usable member gains its `lbfactor` in `lbstatus`; the
/// highest score wins (ties go to the earlier member) and pays back the sum
/// of all candidates' factors. Loadfactors 1,2,3,4 (total 1000), scores
/// after adding, `*` = picked and minus 1000:
///
/// ```text
/// pick  m0   m1   m2   m3    chosen
///  1    100  200  300  400*   3
///  2    200  400  600* -200   2
///  3    300  600* -100 200    1
///  4    400 -200  200  600*   3
///  5    500*   0  500    0    0   (tie with m2: the earlier wins)
/// ```
///
/// and on: 3,2,1,3,0,2,3,1,2,3 over ten picks, each member chosen in
/// proportion to its weight, without bursts. Lower `lbset`s, spares and hot
/// standbys follow Apache's rules in [`select::get_best`].
pub struct ByRequests;

impl LbMethod for ByRequests {
    type State = ();

    fn new_state(&self, _balancer: &str) {}

    fn find(&self, _state: &mut (), members: &mut [LbMember], _req: &Request) -> Option<usize> {
        select::by_requests(members)
    }

    /// Forgets the running scores, so the schedule starts over.
    fn reset(&self, _state: &mut (), members: &mut [LbMember]) {
        for m in members {
            m.lbstatus = 0;
        }
    }
}

impl Module for ByRequests {
    const NAME: &'static str = "lbmethod_byrequests";

    fn init() -> Result<Self, String> {
        Ok(ByRequests)
    }

    fn register(r: &mut Registrar<Self>) {
        let method = r.module();
        register_lbmethod(r, "byrequests", method);
    }
}

modproxy_api::declare_module!(ByRequests);

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(loadfactors: &[i64]) -> Vec<LbMember> {
        let member = |&f: &i64| LbMember {
            lbfactor: f * 100,
            ..LbMember::default()
        };
        loadfactors.iter().map(member).collect()
    }

    fn schedule(members: &mut [LbMember], n: usize) -> Vec<usize> {
        (0..n)
            .filter_map(|_| select::by_requests(members))
            .collect()
    }

    #[test]
    fn worked_example_from_the_doc_comment() {
        let mut ms = weighted(&[1, 2, 3, 4]);
        assert_eq!(schedule(&mut ms, 10), [3, 2, 1, 3, 0, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn reset_zeroes_every_score_and_restarts_the_schedule() {
        let mut ms = weighted(&[1, 2, 3, 4]);
        schedule(&mut ms, 3);
        ByRequests.reset(&mut (), &mut ms);
        assert!(ms.iter().all(|m| m.lbstatus == 0));
        assert_eq!(schedule(&mut ms, 4), [3, 2, 1, 3]);
    }
}
