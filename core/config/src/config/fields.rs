//! Typed reads of core keys that record every problem and fall back to the default, so one run reports them all.
use crate::error::ConfigError;
use modproxy_api::suggest::did_you_mean;
use std::path::Path;
use toml::{Table, Value};

/// Reads keys of one table; `prefix` is the key path of that table with a trailing dot, or empty.
pub(crate) struct Reader<'a> {
    pub file: &'a Path,
    pub prefix: String,
    pub errors: &'a mut Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a Path, prefix: &str, errors: &'a mut Vec<ConfigError>) -> Self {
        Self {
            file,
            prefix: prefix.to_string(),
            errors,
        }
    }

    pub fn error(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        let path = format!("{}{key}", self.prefix)
            .trim_end_matches('.')
            .to_string();
        self.errors
            .push(ConfigError::new(self.file, path, problem, fix));
    }

    fn wrong_type(&mut self, key: &str, expected: &str, found: &Value) {
        let problem = format!("expected {expected}, found {}", found.type_str());
        self.error(key, problem, format!("write {key} as {expected}"));
    }

    pub fn string(&mut self, table: &Table, key: &str, default: &str) -> String {
        match table.get(key) {
            None => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                self.wrong_type(key, "a string", other);
                default.to_string()
            }
        }
    }

    pub fn optional_string(&mut self, table: &Table, key: &str) -> Option<String> {
        table.get(key).map(|_| self.string(table, key, ""))
    }

    /// An integer no smaller than `min`; the fix states the bound.
    pub fn uint(&mut self, table: &Table, key: &str, default: u64, min: u64) -> u64 {
        match table.get(key) {
            None => default,
            Some(Value::Integer(n)) if *n >= 0 && *n as u64 >= min => *n as u64,
            Some(Value::Integer(n)) => {
                self.error(
                    key,
                    format!("{n} is too small"),
                    format!("use a whole number of at least {min}"),
                );
                default
            }
            Some(other) => {
                self.wrong_type(key, "a whole number", other);
                default
            }
        }
    }

    /// A string or an array of strings (so `listen = "a"` and `listen = ["a", "b"]` both work).
    pub fn strings(&mut self, table: &Table, key: &str) -> Vec<String> {
        match table.get(key) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if items.iter().all(Value::is_str) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(other) => {
                self.wrong_type(key, "a string or an array of strings", other);
                Vec::new()
            }
        }
    }

    /// One of a fixed set of words; the fix lists them.
    pub fn choice<T: Copy>(
        &mut self,
        table: &Table,
        key: &str,
        default: T,
        options: &[(&str, T)],
    ) -> T {
        let Some(value) = table.get(key) else {
            return default;
        };
        let Some(word) = value.as_str() else {
            self.wrong_type(key, "a string", value);
            return default;
        };
        match options.iter().find(|(w, _)| *w == word) {
            Some((_, value)) => *value,
            None => {
                let words: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
                let fix = match did_you_mean(word, words.iter().copied()) {
                    Some(hint) => format!("{hint} Use one of {}", words.join(", ")),
                    None => format!("use one of {}", words.join(", ")),
                };
                self.error(key, format!("unknown value {word:?}"), fix);
                default
            }
        }
    }

    /// For tables the core owns entirely, where an unknown key is almost certainly a typo.
    pub fn no_other_keys(&mut self, table: &Table, allowed: &[&str]) {
        for key in table.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let known = allowed.join(", ");
            let fix = match did_you_mean(key, allowed.iter().copied()) {
                Some(hint) => format!("{hint} Known settings are {known}"),
                None => format!("check the spelling; known settings are {known}"),
            };
            self.error(key, "unknown setting", fix);
        }
    }

    /// The sub-table at `key`, or an empty one (recording an error if `key` is not a table).
    pub fn table(&mut self, table: &Table, key: &str) -> Table {
        match table.get(key) {
            None => Table::new(),
            Some(Value::Table(t)) => t.clone(),
            Some(other) => {
                self.wrong_type(key, &format!("a table ([{key}])"), other);
                Table::new()
            }
        }
    }
}
