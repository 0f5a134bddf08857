//! Loads the main config file and its includes into a `Config`: core settings typed, module tables kept raw for routing.
pub(crate) mod fields;
pub(crate) mod include;
pub(crate) mod route;
pub(crate) mod server;
pub(crate) mod vhost;

use crate::error::{toml_problem, ConfigError};
use fields::Reader;
use server::{ServerSettings, CORE_KEYS};
use std::fs;
use std::path::{Path, PathBuf};
use toml::{Table, Value};
use vhost::Vhost;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerSettings,
    /// All vhosts: the main file's first, then each included file's, in include order.
    pub vhosts: Vec<Vhost>,
    /// Top-level tables that are not core settings, e.g. a global `[proxy]`; routed by `route_sections`.
    pub module_tables: Vec<ModuleTable>,
    /// The main file, then every included file, in the order they were read.
    pub files: Vec<PathBuf>,
}

/// One top-level, module-owned key of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleTable {
    pub file: PathBuf,
    pub key: String,
    pub value: Value,
}

/// Reads `config_path` (relative paths are relative to `server_root`) and the files its `include`
/// patterns match. Every problem found is returned, not just the first.
pub fn load(server_root: &Path, config_path: &Path) -> Result<Config, Vec<ConfigError>> {
    match load_partial(server_root, config_path) {
        (Some(config), errors) if errors.is_empty() => Ok(config),
        (_, errors) => Err(errors),
    }
}

/// [`load`], keeping what could be read despite the problems, so later checks (the modules'
/// sections) can run in the same pass and report theirs too. `None` when the main file itself
/// cannot be read or parsed.
pub fn load_partial(server_root: &Path, config_path: &Path) -> (Option<Config>, Vec<ConfigError>) {
    let main = server_root.join(config_path);
    let table = match read_table(&main) {
        Ok(table) => table,
        Err(e) => return (None, vec![e]),
    };
    let mut errors = Vec::new();
    let server = server::parse(
        &table,
        server_root,
        &mut Reader::new(&main, "", &mut errors),
    );
    let mut config = Config {
        server,
        vhosts: Vec::new(),
        module_tables: Vec::new(),
        files: Vec::new(),
    };
    config.absorb(&main, table, &mut errors);
    for (i, pattern) in config.server.include.clone().iter().enumerate() {
        let files = include::expand(server_root, pattern).unwrap_or_else(|(problem, fix)| {
            errors.push(ConfigError::new(
                &main,
                format!("include[{i}]"),
                problem,
                fix,
            ));
            Vec::new()
        });
        for file in files {
            if config.files.contains(&file) {
                continue;
            }
            match read_table(&file) {
                Ok(table) => {
                    core_keys_only_in_main(&table, &file, &main, &mut errors);
                    config.absorb(&file, table, &mut errors);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (Some(config), errors)
}

impl Config {
    /// Takes the vhosts and module tables of one file; core settings were read separately.
    fn absorb(&mut self, file: &Path, table: Table, errors: &mut Vec<ConfigError>) {
        self.files.push(file.to_path_buf());
        for (key, value) in table {
            if key == "vhost" {
                self.vhosts
                    .extend(vhost::parse_all(&value, file, self.vhosts.len(), errors));
            } else if !CORE_KEYS.contains(&key.as_str()) {
                self.module_tables.push(ModuleTable {
                    file: file.to_path_buf(),
                    key,
                    value,
                });
            }
        }
    }
}

/// An included file changing e.g. `workers` would make the result depend on include order.
fn core_keys_only_in_main(table: &Table, file: &Path, main: &Path, errors: &mut Vec<ConfigError>) {
    for key in table
        .keys()
        .filter(|k| *k != "vhost" && CORE_KEYS.contains(&k.as_str()))
    {
        let fix = format!("move it to the main file {}", main.display());
        errors.push(ConfigError::new(
            file,
            key.clone(),
            "this server setting is only read from the main file",
            fix,
        ));
    }
}

fn read_table(file: &Path) -> Result<Table, ConfigError> {
    let src = fs::read_to_string(file).map_err(|e| {
        let fix = "check that the file exists and that modproxy may read it (a dangling link in sites-enabled/ is removed with `modproxy dissite NAME`)";
        ConfigError::new(file, "", format!("cannot read: {e}"), fix)
    })?;
    src.parse::<Table>().map_err(|e| {
        ConfigError::new(
            file,
            "",
            toml_problem(&src, &e),
            "fix the TOML syntax there",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{root, write};

    const MAIN: &str = "include = [\"sites-enabled/*.toml\"]\nworkers = 2\n[proxy]\ntimeout = 3\n[[vhost]]\nlisten = \"127.0.0.1:8000\"\n";

    #[test]
    fn includes_add_vhosts_and_module_tables_in_order() {
        let dir = root();
        write(dir.path(), "modproxy.toml", MAIN);
        write(
            dir.path(),
            "sites-available/a.toml",
            "[[vhost]]\nlisten = \"127.0.0.1:8001\"\n[[vhost]]\nlisten = \"127.0.0.1:8002\"\n",
        );
        write(dir.path(), "sites-available/b.toml", "[headers]\nx = 1\n");
        crate::enable_site(dir.path(), &["a".into(), "b".into()]).unwrap();
        let config = load(dir.path(), Path::new("modproxy.toml")).unwrap();
        assert_eq!(config.server.workers, 2);
        assert_eq!(config.files.len(), 3);
        let ports: Vec<u16> = config.vhosts.iter().map(|v| v.listen[0].port()).collect();
        assert_eq!(ports, [8000, 8001, 8002]);
        assert_eq!(
            (config.vhosts[2].index, config.vhosts[2].index_in_file),
            (2, 1)
        );
        assert!(config.vhosts[2].file.ends_with("sites-enabled/a.toml"));
        let keys: Vec<&str> = config
            .module_tables
            .iter()
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(keys, ["proxy", "headers"]);
    }

    #[test]
    fn missing_sites_dir_is_fine_and_errors_are_all_collected() {
        let dir = root();
        write(dir.path(), "modproxy.toml", MAIN);
        assert!(load(dir.path(), Path::new("modproxy.toml")).is_ok());
        write(
            dir.path(),
            "sites-enabled/x.toml",
            "workers = 4\n[[vhost]]\nlisten = \"nowhere\"\n",
        );
        write(dir.path(), "sites-enabled/y.toml", "[[vhost]\n");
        let errors: Vec<String> = load(dir.path(), Path::new("modproxy.toml"))
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains(
                "x.toml: workers: this server setting is only read from the main file (move it"
            ),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("x.toml: vhost[0].listen: \"nowhere\""),
            "{errors:?}"
        );
        assert!(
            errors[2].contains("y.toml: line 1, column")
                && errors[2].ends_with("(fix the TOML syntax there)"),
            "{errors:?}"
        );
        // What could be read is kept, for the modules' checks to run on.
        let (partial, errors) = load_partial(dir.path(), Path::new("modproxy.toml"));
        let partial = partial.expect("the main file parses");
        assert_eq!((partial.vhosts.len(), errors.len()), (2, 3));
    }

    #[test]
    fn an_unreadable_main_file_says_so() {
        let dir = root();
        let errors = load(dir.path(), Path::new("modproxy.toml")).unwrap_err();
        assert!(
            errors[0].problem.starts_with("cannot read"),
            "{}",
            errors[0]
        );
    }
}
