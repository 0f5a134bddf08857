//! Building lbmethod crates that live outside the workspace, as their
//! authors would: `cargo build --release` in their own directory. All of
//! them share one target directory under the workspace's, so modproxy-api
//! and its dependencies compile once.

use crate::repo_root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where third-party crates are built (`target/third_party`).
pub fn target() -> PathBuf {
    repo_root().join("target").join("third_party")
}

/// `cargo build --release` in `dir`, offline first (the crates the
/// workspace uses are already downloaded), online if that fails. Returns
/// the path of `lib{crate_name}.so`.
pub fn build(dir: &Path, crate_name: &str) -> PathBuf {
    build_into(dir, crate_name, &target())
}

/// [`build`] into a target directory of its own: for a crate whose
/// library name another one shares, or that links another modproxy-api.
pub fn build_into(dir: &Path, crate_name: &str, target: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |offline: bool| {
        let mut c = Command::new(&cargo);
        c.current_dir(dir)
            .args(["build", "--release", "--quiet"])
            .env("CARGO_TARGET_DIR", target);
        if offline {
            c.arg("--offline");
        }
        c.output().expect("run cargo")
    };
    let mut out = run(true);
    if !out.status.success() {
        out = run(false);
    }
    assert!(
        out.status.success(),
        "cargo build in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = target.join("release").join(format!("lib{crate_name}.so"));
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

/// A descriptor's text with `library` replaced by the absolute `lib`, as
/// an operator copying it into mods-available would write it.
pub fn with_library(descriptor: &str, lib: &Path) -> String {
    descriptor
        .lines()
        .map(|l| {
            if l.starts_with("library") {
                format!("library = {:?}", lib.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
