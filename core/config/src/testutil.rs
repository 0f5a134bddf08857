//! Test helpers: a throwaway SERVER_ROOT and terse ways to fill it.
use std::fs;
use std::path::Path;

pub fn root() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

pub fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

/// An available module descriptor with the given dependencies and sections.
pub fn module(root: &Path, name: &str, depends: &[&str], sections: &[&str]) {
    let body = format!(
        "description = \"test {name}\"\nlibrary = \"../lib/lib{name}.so\"\ndepends = {depends:?}\nsections = {sections:?}\n"
    );
    write(root, &format!("mods-available/{name}.toml"), &body);
}

pub fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
