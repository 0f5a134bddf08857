//! What the balancer manager shows and changes, as plain data: a member's
//! view, the settings an operator may change, and how a change request
//! applies to a member table. No host, no locks: every rule is unit-tested.

use crate::health::Health;
use crate::table::{MemberMeta, Table};
use modproxy_api::lb::{flags, LbMember, LbStats};
use serde::{Deserialize, Serialize};

/// The status bits an operator sets: the rest (+E, +R, +I) belong to the
/// config or to the balancer's own error handling.
pub const ADMIN_FLAGS: u32 = flags::DISABLED | flags::DRAINING | flags::STANDBY | flags::STOPPED;

const LETTERS: [(u32, char); 8] = [
    (flags::DISABLED, 'D'),
    (flags::STOPPED, 'S'),
    (flags::IGNORE_ERRORS, 'I'),
    (flags::STANDBY, 'H'),
    (flags::SPARE, 'R'),
    (flags::DRAINING, 'N'),
    (flags::IN_ERROR, 'E'),
    (flags::HC_FAILED, 'C'),
];

/// `+D+N`-style text of `bits` (empty when none is set).
pub fn flags_text(bits: u32) -> String {
    LETTERS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| format!("+{c}"))
        .collect()
}

/// One word for the member's state, most important first.
pub fn state_word(bits: u32) -> &'static str {
    if bits & flags::STOPPED != 0 {
        "stopped"
    } else if bits & flags::DISABLED != 0 {
        "disabled"
    } else if bits & flags::HC_FAILED != 0 {
        "hc-failed"
    } else if bits & flags::IN_ERROR != 0 {
        "error"
    } else if bits & flags::DRAINING != 0 {
        "draining"
    } else if bits & flags::STANDBY != 0 {
        "standby"
    } else {
        "ok"
    }
}

/// Applies `+D-N`-style text to `bits`: each letter is set with `+` (or no
/// sign) and cleared with `-`; only [`ADMIN_FLAGS`] letters are accepted.
pub fn apply_status(bits: u32, text: &str) -> Result<u32, String> {
    let mut out = bits;
    let mut set = true;
    for c in text.trim().chars() {
        let bit = match c.to_ascii_uppercase() {
            '+' => {
                set = true;
                continue;
            }
            '-' => {
                set = false;
                continue;
            }
            'D' => flags::DISABLED,
            'N' => flags::DRAINING,
            'H' => flags::STANDBY,
            'S' => flags::STOPPED,
            _ => return Err(format!("status `{text}`: `{c}` cannot be changed at run time: use +D/-D (disabled), +N/-N (drain), +H/-H (hot standby) or +S/-S (stopped)")),
        };
        if set {
            out |= bit;
        } else {
            out &= !bit;
        }
    }
    Ok(out)
}

/// What an operator may change on a member, as the config writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub loadfactor: u32,
    pub lbset: u32,
    pub route: String,
    /// The admin flags only, e.g. `+D`.
    pub status: String,
}

impl Settings {
    pub fn of(member: &LbMember, meta: &MemberMeta) -> Settings {
        Settings {
            loadfactor: u32::try_from(member.lbfactor / 100).unwrap_or(0),
            lbset: member.lbset,
            route: meta.route.clone(),
            status: flags_text(member.flags & ADMIN_FLAGS),
        }
    }
}

/// A member's changes in a POST: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSet {
    pub status: Option<String>,
    pub loadfactor: Option<u32>,
    pub lbset: Option<u32>,
    pub route: Option<String>,
}

/// One POST to the API: a member's settings, or the balancer's lbmethod.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub balancer: String,
    pub member: Option<String>,
    pub set: Option<MemberSet>,
    pub lbmethod: Option<String>,
}

/// Applies `set` to member `i`, all or nothing: every value is checked
/// before any is written.
pub fn apply_set(table: &mut Table, i: usize, set: &MemberSet) -> Result<(), String> {
    let member = table.members.get(i).ok_or("no such member")?;
    let bits = match &set.status {
        Some(s) => apply_status(member.flags, s)?,
        None => member.flags,
    };
    if let Some(f) = set.loadfactor {
        if !(1..=100).contains(&f) {
            return Err(format!(
                "loadfactor {f} is out of range: use a weight from 1 to 100"
            ));
        }
    }
    if let Some(r) = &set.route {
        if r.contains(|c: char| c.is_whitespace() || c == ';' || c == ',') {
            return Err(format!(
                "route `{r}` holds a space, `;` or `,`: use letters, digits, '-', '_' or '.'"
            ));
        }
    }
    let (member, meta) = (&mut table.members[i], &mut table.meta[i]);
    member.flags = bits;
    if let Some(f) = set.loadfactor {
        member.lbfactor = i64::from(f) * 100;
    }
    if let Some(s) = set.lbset {
        member.lbset = s;
    }
    if let Some(r) = &set.route {
        meta.route.clone_from(r);
    }
    Ok(())
}

/// Sets `settings` on member `i` (a persisted state being restored).
pub fn restore(table: &mut Table, i: usize, settings: &Settings) -> Result<(), String> {
    let set = MemberSet {
        status: Some(format!("-D-N-H-S{}", settings.status)),
        loadfactor: Some(settings.loadfactor),
        lbset: Some(settings.lbset),
        route: Some(settings.route.clone()),
    };
    apply_set(table, i, &set)
}

/// One member as the manager shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub url: String,
    pub route: String,
    pub redirect: String,
    pub loadfactor: u32,
    pub lbset: u32,
    /// Every status flag, e.g. `+H+E`.
    pub status: String,
    pub state: &'static str,
    /// `config`, or where a source found it (an etcd key, a DNS record).
    pub source: String,
    pub usable: bool,
    pub elected: u64,
    pub busy: u64,
    pub lbstatus: i64,
    pub bytes_to: u64,
    pub bytes_from: u64,
    pub errors: u64,
    pub last_error: String,
    /// `ok`, `failing` (the balancer's own error state) or `hc-failed`
    /// (its health checks took it out); `unchecked` is never shown: a
    /// member without checks is `ok` or `failing`.
    pub health: &'static str,
    /// Its health checks (proxy_hcheck), when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hcheck: Option<CheckView>,
}

/// A member's health checks as the manager, `modproxy status` and the
/// metrics show them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckView {
    pub method: String,
    /// Unix time of the last check; 0 before the first.
    pub last_check: u64,
    /// `passed`, `failed`, or `none` before the first check.
    pub last_result: &'static str,
    pub last_duration_ms: f64,
    pub consecutive_passes: u32,
    pub consecutive_fails: u32,
    /// Why the last check failed, or why the member is out.
    pub reason: String,
}

impl CheckView {
    fn of(h: &Health) -> Option<CheckView> {
        let settings = h.settings.as_ref()?;
        let last = h.last.clone().unwrap_or_default();
        let reason = if h.down_reason.is_empty() {
            last.reason.clone()
        } else {
            h.down_reason.clone()
        };
        Some(CheckView {
            method: format!("{:?}", settings.method).to_ascii_uppercase(),
            last_check: last.unix,
            last_result: match &h.last {
                None => "none",
                Some(l) if l.passed => "passed",
                Some(_) => "failed",
            },
            last_duration_ms: last.duration.as_secs_f64() * 1000.0,
            consecutive_passes: h.passes,
            consecutive_fails: h.fails,
            reason,
        })
    }
}

/// Every member of `t` as the manager shows it, in config order.
pub fn member_views(t: &Table) -> Vec<MemberView> {
    let all = t.members.iter().zip(&t.meta).zip(&t.stats);
    all.map(|((m, meta), s)| MemberView::of(m, meta, s))
        .collect()
}

impl MemberView {
    pub fn of(member: &LbMember, meta: &MemberMeta, stats: &LbStats) -> MemberView {
        MemberView {
            url: meta.url.to_owned(),
            route: meta.route.clone(),
            redirect: meta.redirect.clone(),
            loadfactor: u32::try_from(member.lbfactor / 100).unwrap_or(0),
            lbset: member.lbset,
            status: flags_text(member.flags),
            state: match &meta.discovered {
                Some(d) if d.gone => "removed",
                _ => state_word(member.flags),
            },
            source: meta
                .discovered
                .as_ref()
                .map_or_else(|| "config".to_owned(), |d| d.origin.clone()),
            usable: member.is_usable(),
            elected: member.elected,
            busy: member.busy,
            lbstatus: member.lbstatus,
            bytes_to: member.bytes_written,
            bytes_from: member.bytes_read,
            errors: stats.errors,
            last_error: meta.last_error.clone(),
            health: if member.flags & flags::HC_FAILED != 0 {
                "hc-failed"
            } else if member.flags & flags::IN_ERROR != 0 {
                "failing"
            } else {
                "ok"
            },
            hcheck: CheckView::of(&meta.health),
        }
    }
}

/// One balancer as the manager shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BalancerView {
    pub name: String,
    pub lbmethod: String,
    pub sticky_session: String,
    pub nofailover: bool,
    pub maxattempts: u32,
    pub failonstatus: Vec<u16>,
    pub failontimeout: bool,
    pub forcerecovery: bool,
    pub timeout: u64,
    pub members: Vec<MemberView>,
    /// Where members come from, and whether that source is reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<crate::discovered::DiscoveryView>,
}

/// `modproxy status`'s table of `balancers`.
pub fn status_table(balancers: &[BalancerView]) -> String {
    let mut out = String::new();
    for b in balancers {
        out.push_str(&format!(
            "balancer://{} lbmethod {}{}\n",
            b.name,
            b.lbmethod,
            if b.sticky_session.is_empty() {
                String::new()
            } else {
                format!(" sticky {}", b.sticky_session)
            }
        ));
        if let Some(d) = &b.discovery {
            out.push_str(&format!("  source {}: {}\n", d.source, d.state));
        }
        let width = b
            .members
            .iter()
            .map(|m| m.url.len())
            .max()
            .unwrap_or(6)
            .max(6);
        out.push_str(&format!(
            "  {:width$}  {:8}  {:>8}  {:>5}  {:>6}  {:>6}  {:>5}  route\n",
            "member", "state", "elected", "busy", "errors", "factor", "lbset"
        ));
        for m in &b.members {
            out.push_str(&format!(
                "  {:width$}  {:8}  {:>8}  {:>5}  {:>6}  {:>6}  {:>5}  {}\n",
                m.url, m.state, m.elected, m.busy, m.errors, m.loadfactor, m.lbset, m.route
            ));
            if let Some(c) = &m.hcheck {
                out.push_str(&format!(
                    "  {:width$}  check {} {}: {} passes, {} failures in a row, last {:.1} ms{}\n",
                    "",
                    c.method,
                    c.last_result,
                    c.consecutive_passes,
                    c.consecutive_fails,
                    c.last_duration_ms,
                    if c.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.reason)
                    }
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::table;
    use modproxy_api::lb::flags::*;

    #[test]
    fn status_text_sets_and_clears_admin_flags_only() {
        assert_eq!(apply_status(0, "+D"), Ok(DISABLED));
        assert_eq!(apply_status(DISABLED | IN_ERROR, "-D"), Ok(IN_ERROR));
        assert_eq!(apply_status(0, "+N+H"), Ok(DRAINING | STANDBY));
        assert_eq!(apply_status(DRAINING, "-N+d"), Ok(DISABLED));
        let e = apply_status(0, "+E").unwrap_err();
        assert!(e.contains("cannot be changed at run time"), "{e}");
        assert_eq!(flags_text(STANDBY | IN_ERROR), "+H+E");
        assert_eq!(state_word(DISABLED | IN_ERROR), "disabled");
    }

    #[test]
    fn a_change_is_all_or_nothing() {
        let mut t = table(&[("a", 0), ("b", 0)]);
        let bad = MemberSet {
            status: Some("+D".into()),
            loadfactor: Some(101),
            ..MemberSet::default()
        };
        assert!(apply_set(&mut t, 0, &bad).unwrap_err().contains("1 to 100"));
        assert_eq!(t.members[0].flags, 0, "nothing was applied");
        let good = MemberSet {
            status: Some("+D".into()),
            loadfactor: Some(3),
            lbset: Some(1),
            route: Some("x".into()),
        };
        apply_set(&mut t, 1, &good).unwrap();
        let s = Settings::of(&t.members[1], &t.meta[1]);
        assert_eq!(
            s,
            Settings {
                loadfactor: 3,
                lbset: 1,
                route: "x".into(),
                status: "+D".into()
            }
        );
        assert!(apply_set(&mut t, 5, &good).is_err());
    }

    #[test]
    fn restore_replaces_admin_flags_but_keeps_errors() {
        let mut t = table(&[("a", DISABLED | IN_ERROR)]);
        let s = Settings {
            loadfactor: 2,
            lbset: 0,
            route: "a".into(),
            status: "+N".into(),
        };
        restore(&mut t, 0, &s).unwrap();
        assert_eq!(t.members[0].flags, DRAINING | IN_ERROR);
        assert_eq!(t.members[0].lbfactor, 200);
    }

    #[test]
    fn change_json_is_strict() {
        let c: Change = serde_json::from_str(
            r#"{"balancer":"c","member":"http://a:1","set":{"status":"+D","loadfactor":2}}"#,
        )
        .unwrap();
        assert_eq!(c.set.unwrap().loadfactor, Some(2));
        assert!(serde_json::from_str::<Change>(r#"{"balancer":"c","sett":{}}"#).is_err());
    }

    #[test]
    fn status_table_lines_up() {
        let t = table(&[("a", 0), ("b", DISABLED)]);
        let view = BalancerView {
            name: "c".into(),
            lbmethod: "byrequests".into(),
            sticky_session: String::new(),
            nofailover: false,
            maxattempts: 1,
            failonstatus: vec![],
            failontimeout: false,
            forcerecovery: true,
            timeout: 0,
            members: member_views(&t),
            discovery: None,
        };
        let text = status_table(&[view]);
        assert!(
            text.starts_with("balancer://c lbmethod byrequests\n"),
            "{text}"
        );
        assert!(text.contains("disabled"), "{text}");
        assert_eq!(text.lines().count(), 4);
    }
}
