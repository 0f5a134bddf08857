//! One pick, once expired errors are cleared: the sticky route first, then
//! the balancer's lbmethod (Apache's `proxy_balancer_pre_request`, steps 4-5).

use crate::table::{Route, Table};
use modproxy_api::lb::{FindError, LbMember, LbStats};

/// Why no member was picked; each ends in a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoneUsable,
    /// The session's member is down and `nofailover` forbids another.
    RouteDown,
    /// The lbmethod panicked (its own SDK already logged the panic).
    Panicked,
}

/// Picks a member for a request whose session asks for `route`, and counts
/// it busy. `find` is the lbmethod, which counts its own pick in `elected`;
/// a sticky pick is counted here.
///
/// A route no member carries falls through to the lbmethod even with
/// `nofailover` (Apache answers 503 there): a cookie left over from an
/// older member list must not lock a client out for good.
pub fn choose(
    table: &mut Table,
    nofailover: bool,
    route: Option<&str>,
    find: impl FnOnce(&mut [LbMember], &[LbStats]) -> Result<usize, FindError>,
) -> Result<usize, Refusal> {
    let sticky = match route.map(|r| table.find_route(r)) {
        Some(Route::Usable(i)) => Some(i),
        Some(Route::Unusable) if nofailover => return Err(Refusal::RouteDown),
        _ => None,
    };
    let i = match sticky {
        Some(i) => {
            table.members[i].elected = table.members[i].elected.saturating_add(1);
            i
        }
        None => find(&mut table.members, &table.stats).map_err(|e| match e {
            FindError::NoneUsable => Refusal::NoneUsable,
            FindError::Panicked => Refusal::Panicked,
        })?,
    };
    let m = table.members.get_mut(i).ok_or(Refusal::NoneUsable)?;
    m.busy = m.busy.saturating_add(1);
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::table;
    use modproxy_api::lb::flags::*;
    use modproxy_api::lb::select::by_requests;

    fn byrequests(ms: &mut [LbMember], _: &[LbStats]) -> Result<usize, FindError> {
        by_requests(ms).ok_or(FindError::NoneUsable)
    }

    #[test]
    fn sticky_route_wins_and_counts_as_elected() {
        let mut t = table(&[("a", 0), ("b", 0)]);
        assert_eq!(choose(&mut t, false, Some("b"), byrequests), Ok(1));
        assert_eq!(choose(&mut t, false, Some("b"), byrequests), Ok(1));
        assert_eq!((t.members[1].elected, t.members[1].busy), (2, 2));
        assert_eq!(t.members[0].lbstatus, 0, "the lbmethod was not asked");
    }

    #[test]
    fn no_route_or_unknown_route_uses_the_lbmethod() {
        let mut t = table(&[("a", 0), ("b", 0)]);
        let got: Vec<_> = [None, Some("zz"), None]
            .iter()
            .map(|r| choose(&mut t, true, *r, byrequests))
            .collect();
        assert_eq!(got, [Ok(0), Ok(1), Ok(0)]);
        assert_eq!((t.members[0].busy, t.members[0].elected), (2, 2));
    }

    #[test]
    fn route_down_fails_over_unless_nofailover() {
        let mut t = table(&[("a", IN_ERROR), ("b", 0)]);
        assert_eq!(choose(&mut t, false, Some("a"), byrequests), Ok(1));
        assert_eq!(
            choose(&mut t, true, Some("a"), byrequests),
            Err(Refusal::RouteDown)
        );
    }

    #[test]
    fn nothing_usable_and_panics_are_refusals() {
        let mut t = table(&[("a", IN_ERROR), ("b", DISABLED)]);
        assert_eq!(
            choose(&mut t, false, None, byrequests),
            Err(Refusal::NoneUsable)
        );
        assert_eq!(
            choose(&mut t, false, None, |_, _| Err(FindError::Panicked)),
            Err(Refusal::Panicked)
        );
        assert!(t.members.iter().all(|m| m.busy == 0));
    }
}
