//! The health checks' verdicts that survive a restart: which members had
//! failed their checks, written to `health-state.json` beside the config
//! at each change, read back at startup, so a member known bad stays out
//! of the new process until it passes (Apache keeps it in shared memory).
//! Also the [`HealthTargets`] face proxy_hcheck reaches the balancers by.

use crate::manager::persist;
use crate::ProxyBalancer;
use modproxy_api::sdk::health::{CheckReport, CheckTarget, HealthTargets};
use modproxy_api::sdk::host::{self, ServerFile};
use modproxy_api::{log, Level};
use std::collections::BTreeMap;
use std::path::PathBuf;

const FILE_NAME: &str = "health-state.json";

/// Balancer name → the URLs of its members that failed their checks.
type Failed = BTreeMap<String, Vec<String>>;

fn path() -> Option<PathBuf> {
    let config = host::server_file(ServerFile::Config)?;
    Some(config.parent()?.join(FILE_NAME))
}

impl ProxyBalancer {
    /// Writes which members failed their checks (after a change).
    pub fn save_health(&self) {
        let Some(path) = path() else { return };
        let failed: Failed = self
            .clusters_sorted()
            .iter()
            .map(|c| {
                (
                    c.policy.name.clone(),
                    c.hc_failed_urls()
                        .iter()
                        .map(|u| u.to_string())
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, urls)| !urls.is_empty())
            .collect();
        let text = serde_json::to_string_pretty(&failed).unwrap_or_default();
        if let Err(e) = persist::write_text(&path, &text) {
            log(
                Level::Warn,
                format_args!("{e}: health-check verdicts will not survive a restart"),
            );
        }
    }

    /// Takes the members that had failed their checks before a restart
    /// out again, until they pass.
    pub fn restore_health(&self) {
        let Some(path) = path() else { return };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let failed: Failed = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                return log(Level::Warn, format_args!("{}: {e}; health-check verdicts from before the restart are ignored: fix or delete the file", path.display()));
            }
        };
        for (name, urls) in failed {
            let Some(c) = self.cluster(&name) else {
                continue;
            };
            for url in urls {
                if c.restore_hc_failed(&url) {
                    log(Level::Info, format_args!("balancer://{name}: member {url} failed its health checks before the restart; it stays out until it passes"));
                }
            }
        }
    }
}

impl HealthTargets for ProxyBalancer {
    fn targets(&self) -> Vec<CheckTarget> {
        self.clusters_sorted()
            .iter()
            .flat_map(|c| c.check_targets())
            .collect()
    }

    fn report(&self, balancer: &str, member: u32, report: &CheckReport) {
        if self
            .cluster(balancer)
            .is_some_and(|c| c.book_check(member, report))
        {
            self.save_health();
        }
    }
}
