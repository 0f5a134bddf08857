//! Health checks, the balancer's side (ABI 1.3): the `hc*` keys of a
//! member (or of its balancer, as its members' default), what each
//! member's checks build up (consecutive passes and failures, the last
//! check), and the rules that take a member out (`+C`, HC_FAILED) and bring
//! it back. proxy_hcheck runs the checks; this file only books them, so
//! every rule is plain data and unit-tested.

use modproxy_api::lb::flags;
use modproxy_api::sdk::health::{AgentState, CheckMethod, CheckReport};
use serde::Deserialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `hcpassive = { errors = 10, within = 10 }`: that many failed responses
/// on real traffic within that many seconds take the member out until its
/// active check passes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PassiveKeys {
    pub errors: u32,
    pub within: u64,
}

/// The `hc*` keys as written on a member or a balancer; a member's own
/// win over its balancer's ([`HcKeys::or`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HcKeys {
    pub hcmethod: Option<String>,
    pub hcuri: Option<String>,
    pub hcinterval: Option<u64>,
    pub hcpasses: Option<u32>,
    pub hcfails: Option<u32>,
    pub hcexpr: Option<String>,
    pub hctimeout: Option<u64>,
    pub hcagent: Option<String>,
    pub hcpassive: Option<PassiveKeys>,
}

impl HcKeys {
    /// These keys, with `defaults` (the balancer's) where a key is unset.
    pub fn or(self, defaults: &HcKeys) -> HcKeys {
        let d = defaults.clone();
        HcKeys {
            hcmethod: self.hcmethod.or(d.hcmethod),
            hcuri: self.hcuri.or(d.hcuri),
            hcinterval: self.hcinterval.or(d.hcinterval),
            hcpasses: self.hcpasses.or(d.hcpasses),
            hcfails: self.hcfails.or(d.hcfails),
            hcexpr: self.hcexpr.or(d.hcexpr),
            hctimeout: self.hctimeout.or(d.hctimeout),
            hcagent: self.hcagent.or(d.hcagent),
            hcpassive: self.hcpassive.or(d.hcpassive),
        }
    }

    /// The member's check, `None` when it has none; `at` starts each
    /// problem; `worker_timeout` is `hctimeout`'s default.
    pub fn check(
        self,
        at: &str,
        worker_timeout: Duration,
    ) -> Result<Option<HcSettings>, Vec<String>> {
        let mut problems = Vec::new();
        let method = match self
            .hcmethod
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None => CheckMethod::None,
            Some("TCP") => CheckMethod::Tcp,
            Some("OPTIONS") => CheckMethod::Options,
            Some("HEAD") => CheckMethod::Head,
            Some("GET") => CheckMethod::Get,
            Some("CPING") => CheckMethod::Cping,
            Some(other) => {
                problems.push(format!("{at}.hcmethod: `{other}` is not a check: use \"TCP\", \"OPTIONS\", \"HEAD\", \"GET\" or \"CPING\" (ajp:// members)"));
                CheckMethod::None
            }
        };
        let agent = self.hcagent.unwrap_or_default();
        if !agent.is_empty()
            && agent
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            problems.push(format!(
                "{at}.hcagent: `{agent}` is not host:port: write e.g. \"127.0.0.1:9999\""
            ));
        }
        if method == CheckMethod::None && agent.is_empty() {
            if self.hcpassive.is_some() {
                problems.push(format!("{at}.hcpassive: passive checks take a member out until its active check passes: set hcmethod too"));
            }
            let stray = [
                ("hcuri", self.hcuri.is_some()),
                ("hcinterval", self.hcinterval.is_some()),
                ("hcexpr", self.hcexpr.is_some()),
            ];
            if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
                problems.push(format!("{at}.{key}: there is no check to apply it to: set hcmethod (e.g. \"GET\") or hcagent"));
            }
            return if problems.is_empty() {
                Ok(None)
            } else {
                Err(problems)
            };
        }
        let interval = self.hcinterval.unwrap_or(30);
        if interval == 0 {
            problems.push(format!(
                "{at}.hcinterval: 0 seconds would check without pause: use 1 or more (default 30)"
            ));
        }
        let (passes, fails) = (self.hcpasses.unwrap_or(1), self.hcfails.unwrap_or(1));
        for (key, n) in [("hcpasses", passes), ("hcfails", fails)] {
            if n == 0 {
                problems.push(format!(
                    "{at}.{key}: 0 checks can decide nothing: use 1 or more (default 1)"
                ));
            }
        }
        let uri = self.hcuri.unwrap_or_else(|| "/".into());
        if !uri.starts_with('/') {
            problems.push(format!(
                "{at}.hcuri: `{uri}` is not a path: start it with '/', e.g. \"/health\""
            ));
        }
        if let Some(p) = self.hcpassive {
            if p.errors == 0 || p.within == 0 {
                problems.push(format!("{at}.hcpassive: errors and within must both be at least 1, e.g. {{ errors = 10, within = 10 }}"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(HcSettings {
            method,
            uri: leak(uri),
            interval: Duration::from_secs(interval),
            passes,
            fails,
            expr: leak(self.hcexpr.unwrap_or_default()),
            timeout: self.hctimeout.map_or(worker_timeout, Duration::from_secs),
            agent: leak(agent),
            passive: self
                .hcpassive
                .map(|p| (p.errors, Duration::from_secs(p.within))),
            at: leak(at.to_owned()),
        }))
    }
}

/// Leaked once per member at startup: the health interface hands these
/// out as living for the process.
fn leak(s: String) -> &'static str {
    crate::table::intern(s)
}

/// A member's check, once its keys are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcSettings {
    pub method: CheckMethod,
    pub uri: &'static str,
    pub interval: Duration,
    pub passes: u32,
    pub fails: u32,
    pub expr: &'static str,
    pub timeout: Duration,
    pub agent: &'static str,
    /// Failed responses, and the window they must fall in.
    pub passive: Option<(u32, Duration)>,
    /// Where the member is configured.
    pub at: &'static str,
}

/// The last check of a member, for the manager, `modproxy status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastCheck {
    /// Unix time of the check.
    pub unix: u64,
    pub passed: bool,
    pub duration: Duration,
    /// Why it failed; empty on a pass.
    pub reason: String,
}

/// What a member's checks have built up.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub settings: Option<HcSettings>,
    /// Consecutive passes and failures, the newest run.
    pub passes: u32,
    pub fails: u32,
    pub last: Option<LastCheck>,
    /// Why the member went out, while it is out.
    pub down_reason: String,
    /// The status bits the member's agent set (drain, maint), so that its
    /// `up` clears those and never an operator's.
    pub agent_bits: u32,
    /// The agent's weight, in percent of the configured loadfactor.
    pub agent_weight: Option<u32>,
    /// When the failed responses of the passive check's window happened.
    pub passive_failures: VecDeque<Instant>,
}

/// A member's health changed: logged, once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It failed its checks (`hcfails` in a row, its agent said `down`, or
    /// the passive check's errors): the reason.
    Out(String),
    /// It passed `hcpasses` in a row and serves again.
    Back,
}

impl Health {
    /// Books one check; `flags` are the member's status bits, changed in
    /// place. Returns the transition it caused, if any.
    pub fn book(
        &mut self,
        flags_: &mut u32,
        report: &CheckReport,
        unix: u64,
    ) -> Option<Transition> {
        let settings = self.settings.clone()?;
        self.last = Some(LastCheck {
            unix,
            passed: report.passed,
            duration: report.duration,
            reason: report.reason.clone(),
        });
        if let Some(answer) = report.agent {
            self.agent_weight = answer.weight_percent;
            let (set, clear) = match answer.state {
                Some(AgentState::Drain) => (flags::DRAINING, flags::STOPPED),
                Some(AgentState::Maint) => (flags::STOPPED, flags::DRAINING),
                Some(AgentState::Up) => (0, flags::DRAINING | flags::STOPPED),
                _ => (0, 0),
            };
            *flags_ &= !(clear & self.agent_bits);
            self.agent_bits = (self.agent_bits & !clear) | set;
            *flags_ |= set;
            if answer.state == Some(AgentState::Down) {
                self.passes = 0;
                self.fails = self.fails.saturating_add(1);
                return self.take_out(flags_, "its agent answered down".into());
            }
        }
        if report.passed {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            let failed = *flags_ & (flags::HC_FAILED | flags::IN_ERROR) != 0;
            if failed && self.passes >= settings.passes {
                // A passing check also ends a plain error state early
                // (Apache PR 66302): the member answers again.
                *flags_ &= !(flags::HC_FAILED | flags::IN_ERROR);
                self.down_reason.clear();
                self.passive_failures.clear();
                return Some(Transition::Back);
            }
            None
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            if self.fails >= settings.fails {
                return self.take_out(flags_, report.reason.clone());
            }
            None
        }
    }

    /// A real request's outcome on the member, for the passive check.
    pub fn book_traffic(
        &mut self,
        flags_: &mut u32,
        failed: bool,
        now: Instant,
    ) -> Option<Transition> {
        let (errors, within) = self.settings.as_ref()?.passive?;
        if !failed || *flags_ & flags::HC_FAILED != 0 {
            return None;
        }
        self.passive_failures.push_back(now);
        while self
            .passive_failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > within)
        {
            self.passive_failures.pop_front();
        }
        if self.passive_failures.len() >= errors as usize {
            self.passive_failures.clear();
            self.passes = 0;
            let why = format!(
                "{errors} failed responses within {}s (hcpassive)",
                within.as_secs()
            );
            return self.take_out(flags_, why);
        }
        None
    }

    fn take_out(&mut self, flags_: &mut u32, reason: String) -> Option<Transition> {
        if *flags_ & flags::HC_FAILED != 0 {
            return None;
        }
        *flags_ |= flags::HC_FAILED;
        self.down_reason = reason.clone();
        Some(Transition::Out(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modproxy_api::sdk::health::AgentAnswer;

    fn settings(passes: u32, fails: u32) -> Health {
        let keys = HcKeys {
            hcmethod: Some("GET".into()),
            hcpasses: Some(passes),
            hcfails: Some(fails),
            hcpassive: Some(PassiveKeys {
                errors: 3,
                within: 10,
            }),
            ..HcKeys::default()
        };
        Health {
            settings: keys.check("t", Duration::from_secs(60)).unwrap(),
            ..Health::default()
        }
    }

    fn check(passed: bool) -> CheckReport {
        CheckReport {
            passed,
            duration: Duration::from_millis(1),
            reason: if passed {
                String::new()
            } else {
                "status 503".into()
            },
            agent: None,
        }
    }

    #[test]
    fn out_after_hcfails_in_a_row_and_back_after_hcpasses() {
        let (mut h, mut f) = (settings(2, 2), 0);
        assert_eq!(h.book(&mut f, &check(false), 1), None);
        assert_eq!(
            h.book(&mut f, &check(true), 2),
            None,
            "a pass resets the run"
        );
        assert_eq!(h.book(&mut f, &check(false), 3), None);
        assert_eq!(
            h.book(&mut f, &check(false), 4),
            Some(Transition::Out("status 503".into()))
        );
        assert_eq!(f, flags::HC_FAILED);
        assert_eq!(h.book(&mut f, &check(false), 5), None, "logged once");
        assert_eq!(h.book(&mut f, &check(true), 6), None);
        assert_eq!(h.book(&mut f, &check(true), 7), Some(Transition::Back));
        assert_eq!(f, 0);
        assert_eq!(h.last.as_ref().map(|l| l.unix), Some(7));
    }

    #[test]
    fn a_passing_check_ends_a_plain_error_state() {
        let (mut h, mut f) = (settings(1, 1), flags::IN_ERROR);
        assert_eq!(h.book(&mut f, &check(true), 1), Some(Transition::Back));
        assert_eq!(f, 0);
    }

    #[test]
    fn the_agent_drains_and_its_up_clears_only_its_own_bits() {
        let (mut h, mut f) = (settings(1, 1), flags::DISABLED);
        let agent = |state| CheckReport {
            agent: Some(AgentAnswer {
                state: Some(state),
                weight_percent: Some(50),
            }),
            ..check(true)
        };
        h.book(&mut f, &agent(AgentState::Drain), 1);
        assert_eq!(f, flags::DISABLED | flags::DRAINING);
        assert_eq!(h.agent_weight, Some(50));
        h.book(&mut f, &agent(AgentState::Up), 2);
        assert_eq!(f, flags::DISABLED, "the operator's +D stays");
        assert!(matches!(
            h.book(&mut f, &agent(AgentState::Down), 3),
            Some(Transition::Out(_))
        ));
    }

    #[test]
    fn passive_errors_within_the_window_take_the_member_out() {
        let (mut h, mut f, t0) = (settings(1, 1), 0, Instant::now());
        assert_eq!(h.book_traffic(&mut f, true, t0), None);
        assert_eq!(
            h.book_traffic(&mut f, true, t0 + Duration::from_secs(11)),
            None,
            "the first fell out of the window"
        );
        assert_eq!(
            h.book_traffic(&mut f, false, t0 + Duration::from_secs(12)),
            None
        );
        assert_eq!(
            h.book_traffic(&mut f, true, t0 + Duration::from_secs(12)),
            None
        );
        assert!(matches!(
            h.book_traffic(&mut f, true, t0 + Duration::from_secs(13)),
            Some(Transition::Out(_))
        ));
        assert_eq!(f, flags::HC_FAILED);
    }

    #[test]
    fn bad_keys_name_the_key_and_the_fix() {
        let bad = HcKeys {
            hcmethod: Some("PING".into()),
            ..HcKeys::default()
        };
        let e = bad.check("m", Duration::ZERO).unwrap_err();
        assert!(e[0].starts_with("m.hcmethod: `PING`"), "{e:?}");
        let stray = HcKeys {
            hcuri: Some("/health".into()),
            ..HcKeys::default()
        };
        let e = stray.check("m", Duration::ZERO).unwrap_err();
        assert!(e[0].contains("set hcmethod"), "{e:?}");
        let member = HcKeys {
            hcuri: Some("/m".into()),
            ..HcKeys::default()
        };
        let balancer = HcKeys {
            hcmethod: Some("head".into()),
            hcuri: Some("/b".into()),
            ..HcKeys::default()
        };
        let s = member
            .or(&balancer)
            .check("m", Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.method, s.uri, s.timeout),
            (CheckMethod::Head, "/m", Duration::from_secs(5))
        );
    }
}
