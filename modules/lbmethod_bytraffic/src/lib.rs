//! mod_lbmethod_bytraffic: the `bytraffic` load-balancing method
//! (Apache's `mod_lbmethod_bytraffic.c`), weighted traffic counting.
//!
//! Not for: anything but choosing a member. proxy_balancer counts the bytes
//! each exchange moved (`bytes_written`, `bytes_read`) and calls `find` with
//! its lock held.
#![forbid(unsafe_code)]

use modproxy_api::lb::{register_lbmethod, select, LbMember, LbMethod};
use modproxy_api::{Module, Registrar, Request};

/// The member that moved the fewest bytes per unit of weight:
/// `bytes_written / lbfactor + bytes_read / lbfactor`, ties to the earlier
/// member. `lbfactor` is loadfactor × 100, so a member that moved 1200
/// bytes at loadfactor 4 scores 1200/400 = 3 and beats one that moved 500
/// at loadfactor 1 (500/100 = 5):
///
/// ```text
/// loadfactor  1     4      1
/// bytes       500   1200   500
/// score       5     3      5     → member 1
/// ```
///
/// Lower `lbset`s, spares and hot standbys follow Apache's rules in
/// [`select::get_best`].
pub struct ByTraffic;

impl LbMethod for ByTraffic {
    type State = ();

    fn new_state(&self, _balancer: &str) {}

    fn find(&self, _state: &mut (), members: &mut [LbMember], _req: &Request) -> Option<usize> {
        select::by_traffic(members)
    }

    /// Forgets the traffic counted so far, so every member starts equal
    /// (Apache's `reset` zeroes `transferred` and `read`).
    fn reset(&self, _state: &mut (), members: &mut [LbMember]) {
        for m in members {
            m.bytes_written = 0;
            m.bytes_read = 0;
        }
    }
}

impl Module for ByTraffic {
    const NAME: &'static str = "lbmethod_bytraffic";

    fn init() -> Result<Self, String> {
        Ok(ByTraffic)
    }

    fn register(r: &mut Registrar<Self>) {
        let method = r.module();
        register_lbmethod(r, "bytraffic", method);
    }
}

modproxy_api::declare_module!(ByTraffic);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_the_doc_comment() {
        let member = |(f, bytes): (i64, u64)| LbMember {
            lbfactor: f * 100,
            bytes_read: bytes,
            ..LbMember::default()
        };
        let mut ms: Vec<_> = [(1, 500), (4, 1200), (1, 500)].map(member).to_vec();
        assert_eq!(select::by_traffic(&mut ms), Some(1));
        ByTraffic.reset(&mut (), &mut ms);
        assert!(ms.iter().all(|m| m.bytes_read == 0 && m.bytes_written == 0));
        assert_eq!(select::by_traffic(&mut ms), Some(0), "all equal: the first");
    }
}
