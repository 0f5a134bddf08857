//! Runtime changes that survive a restart: after each change the manager
//! writes `balancer-state.json` beside the config file, holding for every
//! changed setting both the value the manager set and the value the config
//! had then. On load a setting is restored only if the config still has
//! that old value; if the config file changed it since, the config wins
//! and the log says so (Apache's BalancerPersist silently lets the saved
//! state override the file, a known complaint).

use super::state::Settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "balancer-state.json";

/// A setting as the config had it when the manager changed it, and the
/// manager's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair<T> {
    pub configured: T,
    pub value: T,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBalancer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbmethod: Option<Pair<String>>,
    /// By member URL.
    #[serde(default)]
    pub members: BTreeMap<String, Pair<Settings>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    #[serde(default)]
    pub balancers: BTreeMap<String, SavedBalancer>,
}

/// Where the state lives for config file `config`.
pub fn path_for(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join(FILE_NAME)
}

/// Reads the state; a missing file is an empty state.
pub fn read(path: &Path) -> Result<Saved, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: {e}; the manager's saved changes are ignored: fix or delete the file",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(format!(
            "cannot read {}: {e}; the manager's saved changes are ignored",
            path.display()
        )),
    }
}

/// Writes the state through a temporary file and a rename, so a crash
/// never leaves half a file for the next start.
pub fn write(path: &Path, saved: &Saved) -> Result<(), String> {
    let text = serde_json::to_string_pretty(saved).map_err(|e| e.to_string())?;
    write_text(path, &text)
}

/// Writes `text` through a temporary file and a rename.
pub fn write_text(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    std::fs::write(&tmp, format!("{text}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!(
                "cannot save the manager's changes to {}: {e}; they will be lost on restart unless that directory is writable",
                path.display()
            )
        })
}

/// The value to use for one setting, and a message when the config wins.
fn pick<T: PartialEq + Clone + std::fmt::Debug>(
    what: &str,
    now: &T,
    configured: &T,
    value: &T,
) -> (T, Option<String>) {
    if value == configured {
        return (now.clone(), None); // the manager never changed it
    }
    if now == configured {
        return (value.clone(), None);
    }
    let msg = format!(
        "config changed {what} from {configured:?} to {now:?} since the manager set it to {value:?}; the config wins"
    );
    (now.clone(), Some(msg))
}

/// Merges a saved member with the config's settings `now`, field by field.
pub fn merge(now: &Settings, saved: &Pair<Settings>) -> (Settings, Vec<String>) {
    let (c, v) = (&saved.configured, &saved.value);
    let mut notes = Vec::new();
    let mut note = |m: Option<String>| notes.extend(m);
    let (loadfactor, m) = pick("loadfactor", &now.loadfactor, &c.loadfactor, &v.loadfactor);
    note(m);
    let (lbset, m) = pick("lbset", &now.lbset, &c.lbset, &v.lbset);
    note(m);
    let (route, m) = pick("route", &now.route, &c.route, &v.route);
    note(m);
    let (status, m) = pick("status", &now.status, &c.status, &v.status);
    note(m);
    let merged = Settings {
        loadfactor,
        lbset,
        route,
        status,
    };
    (merged, notes)
}

/// The lbmethod to use, and a message when the config wins.
pub fn merge_lbmethod(now: &str, saved: &Pair<String>) -> (String, Option<String>) {
    pick("lbmethod", &now.to_owned(), &saved.configured, &saved.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(loadfactor: u32, status: &str) -> Settings {
        Settings {
            loadfactor,
            lbset: 0,
            route: String::new(),
            status: status.into(),
        }
    }

    #[test]
    fn manager_value_is_restored_while_the_config_is_unchanged() {
        let saved = Pair {
            configured: s(1, ""),
            value: s(2, "+D"),
        };
        assert_eq!(merge(&s(1, ""), &saved), (s(2, "+D"), vec![]));
    }

    #[test]
    fn config_wins_per_setting_and_says_so() {
        let saved = Pair {
            configured: s(1, ""),
            value: s(2, "+D"),
        };
        let (merged, notes) = merge(&s(5, ""), &saved);
        assert_eq!(merged, s(5, "+D"), "status still restored");
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("config changed loadfactor from 1 to 5 since the manager set it to 2; the config wins"),
            "{notes:?}"
        );
        let lb = Pair {
            configured: "byrequests".to_string(),
            value: "bybusyness".to_string(),
        };
        assert_eq!(merge_lbmethod("byrequests", &lb).0, "bybusyness");
        assert_eq!(merge_lbmethod("bytraffic", &lb).0, "bytraffic");
    }

    #[test]
    fn file_round_trips_and_a_missing_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("mp-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = path_for(&dir.join("modproxy.toml"));
        assert_eq!(read(&path), Ok(Saved::default()));
        let mut saved = Saved::default();
        saved
            .balancers
            .entry("c".into())
            .or_default()
            .members
            .insert(
                "http://a:1".into(),
                Pair {
                    configured: s(1, ""),
                    value: s(1, "+D"),
                },
            );
        write(&path, &saved).unwrap();
        assert_eq!(read(&path), Ok(saved));
        std::fs::write(&path, "{").unwrap();
        assert!(read(&path).unwrap_err().contains("fix or delete"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
