//! Expands an `include` pattern: a directory and a file name with at most one `*`, e.g. `sites-enabled/*.toml`.
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Matching files, sorted, resolved against `root`. A missing directory matches nothing, so an
/// empty `sites-enabled/` needs no placeholder; a missing file named without `*` is an error.
/// Errors are `(problem, fix)`.
pub(crate) fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, (String, String)> {
    let full = root.join(pattern);
    let dir = full.parent().unwrap_or(root);
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if dir.to_string_lossy().contains('*') || name.matches('*').count() > 1 {
        return Err((
            format!("{pattern:?}: `*` may appear only once, in the file name"),
            "use one pattern per directory, such as \"sites-enabled/*.toml\"".into(),
        ));
    }
    let Some((prefix, suffix)) = name.split_once('*') else {
        if full.is_file() {
            return Ok(vec![full]);
        }
        return Err((
            format!("included file {} does not exist", full.display()),
            "create it or remove it from include".into(),
        ));
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err((
                format!("cannot read {}: {e}", dir.display()),
                "check the directory's permissions".into(),
            ))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let hidden = n.starts_with('.') && !prefix.starts_with('.');
            n.len() >= prefix.len() + suffix.len()
                && n.starts_with(prefix)
                && n.ends_with(suffix)
                && !hidden
        })
        // Symlinks are kept even when dangling, so reading them reports the broken link.
        .filter(|e| !e.path().is_dir())
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{root, write};

    #[test]
    fn star_matches_in_the_file_name_only() {
        let dir = root();
        for f in ["d/b.toml", "d/a.toml", "d/x.txt", "d/.h.toml"] {
            write(dir.path(), f, "");
        }
        let names: Vec<_> = expand(dir.path(), "d/*.toml")
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.toml", "b.toml"]);
        assert_eq!(
            expand(dir.path(), "missing/*.toml").unwrap(),
            Vec::<PathBuf>::new()
        );
        assert!(expand(dir.path(), "*/a.toml")
            .unwrap_err()
            .1
            .contains("one pattern per directory"));
        assert!(expand(dir.path(), "d/none.toml")
            .unwrap_err()
            .1
            .contains("remove it from include"));
    }
}
