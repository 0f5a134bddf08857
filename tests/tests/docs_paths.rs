//! No document names a file that does not exist: every repository path
//! that README.md and docs/*.md cite (`core/…`, `modules/…`, `tests/…`
//! and the other top-level folders) is there. Patterns (`NAME_*.rs`,
//! `modules/<name>/`) and build output (`target/…`) are not paths.

use modproxy_tests::repo_root;

const TOP: &[&str] = &[
    "core/",
    "modules/",
    "tests/",
    "bench/",
    "docs/",
    "examples/",
    "mods-available/",
    "mods-enabled/",
    "sites-available/",
    "demo/",
    "fuzz/",
    "scripts/",
];

/// Words that look like repository paths, as written in `text`.
fn cited_paths(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    text.split(|c: char| !is_path_char(c))
        .map(|w| w.trim_end_matches(['.', ',']))
        .filter(|w| TOP.iter().any(|t| w.starts_with(t)))
        .filter(|w| !w.contains("NAME") && !w.contains("..") && !w.ends_with(['-', '_']))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_path_the_docs_cite_exists() {
    let root = repo_root();
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            // A pattern like tests/tests/NAME_*.rs or modules/<name>/.
            let line = line.replace(['*', '<', '>'], " ");
            for path in cited_paths(&line) {
                if !root.join(&path).exists() {
                    let name = doc.strip_prefix(&root).unwrap().display().to_string();
                    missing.push(format!("{name}:{}: {path}", n + 1));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths cited but missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn paths_are_found_in_prose_and_code_spans() {
    let found =
        cited_paths("see `core/api/src/abi/` and modules/proxy/src/lib.rs, or ../shared/x.");
    assert_eq!(found, ["core/api/src/abi/", "modules/proxy/src/lib.rs"]);
}
