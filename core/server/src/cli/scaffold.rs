//! `modproxy new-lbmethod NAME DIR [--api PATH]`: writes a third-party
//! lbmethod crate that builds and loads as is (in the spirit of Apache's
//! `apxs -g`). The templates live in `templates/` beside this file.

use std::fs;
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("templates/lbmethod_Cargo.toml.in");
const LIB_RS: &str = include_str!("templates/lbmethod_lib.rs.in");
const DESCRIPTOR: &str = include_str!("templates/lbmethod_descriptor.toml.in");
const README: &str = include_str!("templates/lbmethod_README.md.in");
const GITIGNORE: &str = include_str!("templates/lbmethod_gitignore.in");

/// Runs the command; returns the exit code.
pub fn new_lbmethod(args: &[String]) -> i32 {
    match scaffold(args) {
        Ok(dir) => {
            println!(
                "wrote lbmethod crate in {}\nnext: cd there, cargo build --release, then see its README.md",
                dir.display()
            );
            0
        }
        Err(msg) => {
            eprintln!("modproxy new-lbmethod: {msg}");
            1
        }
    }
}

fn scaffold(args: &[String]) -> Result<PathBuf, String> {
    let (name, dir, api) = parse(args)?;
    check_name(&name)?;
    let api = match api {
        Some(p) => p,
        None => find_api()?,
    };
    let api = api.canonicalize().map_err(|e| {
        format!(
            "--api {}: {e}: pass the path of modproxy's core/api",
            api.display()
        )
    })?;
    if !api.join("Cargo.toml").is_file() {
        return Err(format!(
            "{} has no Cargo.toml: pass --api with the path of modproxy's core/api",
            api.display()
        ));
    }
    let api_text = api.to_str().ok_or_else(|| {
        format!(
            "{} is not valid UTF-8: move modproxy to a plain path",
            api.display()
        )
    })?;
    if dir.exists() && fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(format!(
            "{} already exists and is not empty: choose a new directory",
            dir.display()
        ));
    }
    let fill = |t: &str| {
        // Debug-quoting escapes the path for a TOML basic string.
        let quoted = format!("{api_text:?}");
        t.replace("{{NAME}}", &name).replace("\"{{API}}\"", &quoted)
    };
    let files = [
        ("Cargo.toml".to_string(), fill(CARGO_TOML)),
        ("src/lib.rs".to_string(), fill(LIB_RS)),
        (format!("lbmethod_{name}.toml"), fill(DESCRIPTOR)),
        ("README.md".to_string(), fill(README)),
        (".gitignore".to_string(), GITIGNORE.to_string()),
    ];
    for (rel, text) in files {
        write(&dir.join(rel), &text)?;
    }
    Ok(dir)
}

/// `NAME DIR [--api PATH]`, the option anywhere.
fn parse(args: &[String]) -> Result<(String, PathBuf, Option<PathBuf>), String> {
    let usage = "usage: modproxy new-lbmethod NAME DIR [--api PATH_TO_MODPROXY/core/api]";
    let mut api = None;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--api" {
            let p = it.next().ok_or(format!("--api needs a path: {usage}"))?;
            api = Some(PathBuf::from(p));
        } else {
            positional.push(a.clone());
        }
    }
    match positional.as_slice() {
        [name, dir] => Ok((name.clone(), PathBuf::from(dir), api)),
        _ => Err(format!("expected NAME and DIR: {usage}")),
    }
}

/// The name becomes `lbmethod = "NAME"`, the module `lbmethod_NAME` and a
/// Rust crate name, so it must suit all three.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name an lbmethod: use lowercase letters, digits and '_', starting with a letter (e.g. leastlatency)"
        ))
    }
}

/// modproxy's `core/api`, found from the binary's location
/// (`REPO/target/PROFILE/modproxy`, or anywhere below the repository).
fn find_api() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| {
            format!("cannot locate this binary ({e}): pass --api PATH_TO_MODPROXY/core/api")
        })?;
    exe.ancestors()
        .map(|d| d.join("core/api"))
        .find(|api| api.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            format!(
                "no modproxy source tree above {}: pass --api PATH_TO_MODPROXY/core/api",
                exe.display()
            )
        })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_a_crate_and_a_config_value() {
        assert!(check_name("leastlatency").is_ok());
        assert!(check_name("by_zone2").is_ok());
        for bad in ["", "2fast", "Upper", "with-dash", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_takes_the_api_option_anywhere() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (n, d, a) = parse(&args(&["--api", "/x/core/api", "rr", "out"])).unwrap();
        assert_eq!(
            (n.as_str(), d, a),
            (
                "rr",
                PathBuf::from("out"),
                Some(PathBuf::from("/x/core/api"))
            )
        );
        assert!(parse(&args(&["rr"])).unwrap_err().contains("usage"));
    }

    #[test]
    fn templates_are_filled() {
        let t = "name = \"lbmethod_{{NAME}}\"\napi = { path = \"{{API}}\" }";
        let filled = t
            .replace("{{NAME}}", "rr")
            .replace("\"{{API}}\"", &format!("{:?}", "/a \"b\"/core/api"));
        assert!(filled.contains("lbmethod_rr") && filled.contains(r#""/a \"b\"/core/api""#));
        assert!(LIB_RS.contains("{{NAME}}") && CARGO_TOML.contains("\"{{API}}\""));
    }
}
