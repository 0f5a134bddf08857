//! a2enmod-style commands: enmod, dismod, ensite, dissite, and the module
//! listing (like `apachectl -M`).

use super::Paths;
use crate::loader;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    EnableModule,
    DisableModule,
    EnableSite,
    DisableSite,
}

pub fn switch(paths: &Paths, what: Switch, args: &[String]) -> i32 {
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    // a2enmod's -q: say nothing unless something is wrong.
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let root = &paths.server_root;
    let modules = matches!(what, Switch::EnableModule | Switch::DisableModule);
    let names: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| {
            if modules {
                module_name(root, a)
            } else {
                a.clone()
            }
        })
        .collect();
    if names.is_empty() {
        eprintln!("name at least one module or site");
        return 2;
    }
    let result = match what {
        Switch::EnableModule => modproxy_config::enable(root, &names),
        Switch::DisableModule => modproxy_config::disable(root, &names, force),
        Switch::EnableSite => modproxy_config::enable_site(root, &names),
        Switch::DisableSite => modproxy_config::disable_site(root, &names),
    };
    match result {
        Ok(messages) => {
            for m in messages.iter().filter(|_| !quiet) {
                println!("{m}");
            }
            if what == Switch::EnableModule {
                warn_unbuilt(root);
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// `mod_proxy_http` (Apache's spelling) as `proxy_http`, when that is the
/// module there is; any other name as written.
fn module_name(root: &std::path::Path, name: &str) -> String {
    let Some(bare) = name.strip_prefix("mod_") else {
        return name.to_string();
    };
    let available = modproxy_config::available(root).unwrap_or_default();
    let has = |n: &str| available.iter().any(|d| d.name == n);
    if has(bare) && !has(name) {
        bare.to_string()
    } else {
        name.to_string()
    }
}

/// Enabling a module whose library is not built yet succeeds (the link is
/// all enmod makes), but the restart after it would fail: say so now.
fn warn_unbuilt(root: &std::path::Path) {
    let Ok(enabled) = modproxy_config::enabled(root) else {
        return;
    };
    for d in enabled.iter().filter(|d| !d.library.exists()) {
        eprintln!(
            "Warning: module {}'s library {} has not been built yet; build it (cargo build --release) before `modproxy restart`, or fix `library` in {}",
            d.name,
            d.library.display(),
            d.path.display()
        );
    }
}

pub fn list(paths: &Paths) -> i32 {
    let available = match modproxy_config::available(&paths.server_root) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let enabled = match modproxy_config::enabled(&paths.server_root) {
        Ok(e) => e,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return 1;
        }
    };
    let registry = match loader::load(&enabled) {
        Ok(r) => r,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return 1;
        }
    };
    let mut rows = vec![[
        "MODULE",
        "ENABLED",
        "VERSION",
        "ABI",
        "HOOKS",
        "PROVIDERS",
        "DESCRIPTION",
    ]
    .map(String::from)
    .to_vec()];
    for d in &available {
        let row = match registry.modules.iter().position(|m| m.name == d.name) {
            Some(i) => {
                let m = &registry.modules[i];
                let (hooks, providers) = registry.describe(i);
                [
                    d.name.clone(),
                    "yes".into(),
                    m.version.clone(),
                    m.abi_version.to_string(),
                    or_dash(hooks.join(",")),
                    or_dash(providers.join(",")),
                    d.description.clone(),
                ]
            }
            None => [
                d.name.clone(),
                "no".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                d.description.clone(),
            ],
        };
        rows.push(row.to_vec());
    }
    print!("{}", columns(&rows));
    0
}

fn or_dash(list: String) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list
    }
}

/// The rows as aligned columns: each as wide as its longest cell, two
/// spaces apart, whatever the names' lengths; the last is not padded.
fn columns(rows: &[Vec<String>]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::columns;

    #[test]
    fn columns_are_as_wide_as_their_longest_cell() {
        let rows: Vec<Vec<String>> = [
            ["MODULE", "HOOKS", "DESCRIPTION"],
            ["a_very_long_module_name", "-", "x"],
            [
                "p",
                "post_config,translate_name,handler,response_headers",
                "y",
            ],
        ]
        .iter()
        .map(|r| r.map(String::from).to_vec())
        .collect();
        let text = columns(&rows);
        let lines: Vec<&str> = text.lines().collect();
        let at = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(at(lines[0], "HOOKS"), at(lines[2], "post_config"));
        assert_eq!(at(lines[0], "DESCRIPTION"), at(lines[1], "x"));
        assert_eq!(at(lines[1], "x"), at(lines[2], "y"));
        assert_eq!(at(lines[0], "HOOKS"), "a_very_long_module_name  ".len());
    }
}
