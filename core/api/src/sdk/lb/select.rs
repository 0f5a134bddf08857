//! Member selection: Apache's `ap_proxy_balancer_get_best_worker` and the
//! byrequests, bybusyness and bytraffic finders built on it.
//!
//! Every function takes the member table in config order and returns the
//! index of the chosen member, or `None` when no member may take the request
//! (the balancer then answers 503). The retry step of Apache's loop is not
//! here: the balancer clears expired `IN_ERROR` flags before calling.
//! The finders count the pick in `elected`, so the caller must not.

use super::LbMember;

/// Offers each candidate to `is_best(candidate, best_so_far)` in Apache's
/// order and returns the last candidate it accepted.
///
/// Sets are tried lowest `lbset` first; a later set is looked at only when
/// the earlier ones produced nothing. Within a set: draining members are
/// skipped (and count as unusable unless spare or standby), ordinary usable
/// members are offered in config order, then as many usable spares as there
/// were unusable ordinary members, then — only if still nothing — the usable
/// hot standbys. `is_best` may change the candidate (byrequests adds its
/// weight to `lbstatus` there).
pub fn get_best(
    members: &mut [LbMember],
    mut is_best: impl FnMut(&mut LbMember, Option<&LbMember>) -> bool,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    // A copy of the best so far: a candidate is never the current best, so
    // the copy is exactly what Apache's `prev_best` pointer would show.
    let mut offer = |members: &mut [LbMember], i: usize, best: &mut Option<usize>| {
        let prev = best.map(|b| members[b]);
        if is_best(&mut members[i], prev.as_ref()) {
            *best = Some(i);
        }
    };
    // Distinct sets, ascending, found by scanning (no allocation on this
    // per-request path); walking 0..=max would spin on a huge lbset.
    let mut set = members.iter().map(|m| m.lbset).min()?;
    loop {
        let in_set = |m: &LbMember| m.lbset == set && !m.is_draining();
        let mut unusable = members
            .iter()
            .filter(|m| m.lbset == set && m.is_draining() && !(m.is_spare() || m.is_standby()))
            .count();
        for i in 0..members.len() {
            let m = members[i];
            if !in_set(&m) || m.is_spare() || m.is_standby() {
                continue;
            }
            if m.is_usable() {
                offer(members, i, &mut best);
            } else {
                unusable += 1;
            }
        }
        // Spares stand in for unusable ordinary members, one for one.
        for i in 0..members.len() {
            if unusable == 0 {
                break;
            }
            let m = members[i];
            if in_set(&m) && m.is_spare() && m.is_usable() {
                offer(members, i, &mut best);
                unusable -= 1;
            }
        }
        if best.is_none() {
            for i in 0..members.len() {
                let m = members[i];
                if in_set(&m) && !m.is_spare() && m.is_standby() && m.is_usable() {
                    offer(members, i, &mut best);
                }
            }
        }
        if best.is_some() {
            return best;
        }
        set = members.iter().map(|m| m.lbset).filter(|&s| s > set).min()?;
    }
}

/// byrequests: smooth weighted round robin over `lbfactor`.
///
/// Each candidate gains its `lbfactor` in `lbstatus`; the highest score wins
/// (ties go to the earlier member) and pays back the sum of all candidates'
/// factors. Worked example, loadfactors 1,2,3,4 (lbfactor 100..400, total
/// 1000), `lbstatus` shown after adding, `*` = picked and minus 1000:
///
/// ```text
/// call  m0   m1   m2   m3    pick
///  1    100  200  300  400*   3
///  2    200  400  600* -200   2
///  3    300  600* -100 200    1
///  4    400 -200  200  600*   3
///  5    500*   0  500    0    0   (tie with m2: the earlier wins)
/// ```
///
/// and so on: 3,2,1,3,0,2,3,1,2,3 over ten calls, each member picked in
/// proportion to its weight without bursts.
pub fn by_requests(members: &mut [LbMember]) -> Option<usize> {
    let mut total: i64 = 0;
    let best = get_best(members, |cur, prev| {
        cur.lbstatus = cur.lbstatus.saturating_add(cur.lbfactor);
        total = total.saturating_add(cur.lbfactor);
        prev.is_none_or(|p| cur.lbstatus > p.lbstatus)
    });
    elect(members, best, total)
}

/// bybusyness: the member with the fewest requests in flight; among equally
/// busy members, the byrequests score decides (as in Apache 2.4.x
/// `mod_lbmethod_bybusyness.c`, which the reference does not spell out), so
/// idle members share the load by weight instead of all going to the first.
pub fn by_busyness(members: &mut [LbMember]) -> Option<usize> {
    let mut total: i64 = 0;
    let best = get_best(members, |cur, prev| {
        cur.lbstatus = cur.lbstatus.saturating_add(cur.lbfactor);
        total = total.saturating_add(cur.lbfactor);
        prev.is_none_or(|p| cur.busy < p.busy || (cur.busy == p.busy && cur.lbstatus > p.lbstatus))
    });
    elect(members, best, total)
}

/// bytraffic: the member that moved the fewest bytes per unit of weight,
/// `written/lbfactor + read/lbfactor` (Apache's `mod_lbmethod_bytraffic.c`
/// semantics, which the reference does not spell out: each direction is
/// divided separately; ties go to the earlier member).
pub fn by_traffic(members: &mut [LbMember]) -> Option<usize> {
    let mut min = 0u64;
    let best = get_best(members, |cur, prev| {
        // A zero or negative factor is a config bug; weigh it as 1, not a crash.
        let f = u64::try_from(cur.lbfactor).unwrap_or(1).max(1);
        let traffic = (cur.bytes_written / f).saturating_add(cur.bytes_read / f);
        if prev.is_none() || traffic < min {
            min = traffic;
            return true;
        }
        false
    });
    if let Some(i) = best {
        members[i].elected += 1;
    }
    best
}

/// The winner pays back the weights handed out this round and counts the pick.
fn elect(members: &mut [LbMember], best: Option<usize>, total: i64) -> Option<usize> {
    let m = &mut members[best?];
    m.lbstatus = m.lbstatus.saturating_sub(total);
    m.elected += 1;
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::lbmethod::flags::*;

    fn member(loadfactor: i64, lbset: u32, flags: u32) -> LbMember {
        LbMember {
            lbfactor: loadfactor * 100,
            lbset,
            flags,
            ..LbMember::default()
        }
    }

    fn picks(ms: &mut [LbMember], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| by_requests(ms)).collect()
    }

    #[test]
    fn byrequests_weighted_schedule() {
        let mut ms: Vec<_> = (1..=4).map(|f| member(f, 0, 0)).collect();
        let got: Vec<_> = picks(&mut ms, 10).into_iter().flatten().collect();
        assert_eq!(got, [3, 2, 1, 3, 0, 2, 3, 1, 2, 3]);
        let elected: Vec<_> = ms.iter().map(|m| m.elected).collect();
        assert_eq!(elected, [1, 2, 3, 4]);
    }

    #[test]
    fn byrequests_equal_weights_alternate() {
        let mut ms = [member(1, 0, 0), member(1, 0, 0)];
        let got = picks(&mut ms, 4);
        assert_eq!(got, [Some(0), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn lower_lbset_first_then_next_when_all_unusable() {
        let mut ms = [member(1, 1, 0), member(1, 0, 0)];
        assert_eq!(by_requests(&mut ms), Some(1));
        let mut ms = [
            member(1, 0, IN_ERROR),
            member(1, 0, DISABLED),
            member(1, 1, 0),
        ];
        assert_eq!(picks(&mut ms, 2), [Some(2), Some(2)]);
    }

    #[test]
    fn hot_standby_only_when_set_has_nothing_else() {
        let mut ms = [member(1, 0, STANDBY), member(1, 0, 0)];
        assert_eq!(picks(&mut ms, 3), [Some(1); 3]);
        ms[1].flags = IN_ERROR;
        assert_eq!(by_requests(&mut ms), Some(0));
        // A standby of set 0 beats every member of set 1.
        let mut ms = [
            member(1, 1, 0),
            member(1, 0, STANDBY),
            member(1, 0, STOPPED),
        ];
        assert_eq!(by_requests(&mut ms), Some(1));
    }

    #[test]
    fn spare_replaces_one_unusable_member() {
        // No unusable member: the spare idles.
        let mut ms = [member(1, 0, 0), member(1, 0, SPARE)];
        assert_eq!(picks(&mut ms, 3), [Some(0); 3]);
        // One member down: one spare steps in, the second spare stays idle.
        let mut ms = [
            member(1, 0, 0),
            member(1, 0, IN_ERROR),
            member(1, 0, SPARE),
            member(1, 0, SPARE),
        ];
        let got = picks(&mut ms, 4);
        assert_eq!(got, [Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(ms[3].elected, 0);
    }

    #[test]
    fn draining_counts_as_unusable_and_is_never_picked() {
        let mut ms = [member(4, 0, DRAINING), member(1, 0, 0), member(1, 0, SPARE)];
        let got = picks(&mut ms, 4);
        assert!(!got.contains(&Some(0)));
        assert!(got.contains(&Some(2)), "spare replaces the draining member");
        let mut ms = [member(1, 0, DRAINING | STANDBY)];
        assert_eq!(by_requests(&mut ms), None);
    }

    #[test]
    fn disabled_stopped_in_error_never_picked() {
        let mut ms = [
            member(9, 0, DISABLED),
            member(9, 0, IN_ERROR),
            member(1, 0, 0),
            member(9, 0, STOPPED),
        ];
        assert_eq!(picks(&mut ms, 3), [Some(2); 3]);
    }

    #[test]
    fn nothing_usable_is_none() {
        let mut ms = [member(1, 0, IN_ERROR), member(1, 1, DISABLED | SPARE)];
        assert_eq!(by_requests(&mut ms), None);
        assert_eq!(by_busyness(&mut ms), None);
        assert_eq!(by_traffic(&mut ms), None);
        assert_eq!(by_requests(&mut []), None);
    }

    #[test]
    fn bybusyness_picks_least_busy_then_by_weight() {
        let mut ms = [member(1, 0, 0), member(1, 0, 0), member(1, 0, 0)];
        ms[0].busy = 3;
        ms[1].busy = 1;
        ms[2].busy = 2;
        assert_eq!(by_busyness(&mut ms), Some(1));
        // All idle: the byrequests score rotates among them.
        let mut ms = [member(1, 0, 0), member(1, 0, 0)];
        let got: Vec<_> = (0..4).map(|_| by_busyness(&mut ms)).collect();
        assert_eq!(got, [Some(0), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn bytraffic_picks_least_traffic_per_weight() {
        let mut ms = [member(1, 0, 0), member(4, 0, 0), member(1, 0, 0)];
        ms[0].bytes_read = 500;
        ms[1].bytes_written = 1200; // 1200/400 = 3 per unit of weight
        ms[2].bytes_read = 300;
        ms[2].bytes_written = 200; // 5
        assert_eq!(by_traffic(&mut ms), Some(1));
        assert_eq!(ms[1].elected, 1);
        ms[0].lbfactor = 0; // config bug: weighed as 1, no panic
        assert_eq!(by_traffic(&mut ms), Some(1));
    }
}
