//! Reads an Apache configuration as httpd does before any module sees it:
//! `Include` / `IncludeOptional` (wildcards, directories) inlined in
//! place, `Define` / `UnDefine` and `${VAR}` (Defines, then the
//! environment, then Debian's `envvars` beside the configuration or its
//! defaults), `<IfModule>` and `<IfDefine>` resolved. What comes out is
//! the configuration httpd would act on, every line still naming its file
//! and line.

use super::modules;
use super::syntax::{self, Node, Place};
use super::Report;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One directive after evaluation.
#[derive(Debug, Clone)]
pub struct Directive {
    /// Lowercase, for matching (Apache's names are case-insensitive).
    pub key: String,
    pub args: Vec<String>,
    /// The line with variables expanded, for comments and reports.
    pub text: String,
    pub at: Place,
    pub block: Option<Vec<Directive>>,
}

/// Debian's `/etc/apache2/envvars`, used when the configuration has none
/// beside it (apache2ctl sources that file before it starts httpd).
const DEBIAN_ENVVARS: &[(&str, &str)] = &[
    ("APACHE_RUN_USER", "www-data"),
    ("APACHE_RUN_GROUP", "www-data"),
    ("APACHE_PID_FILE", "/var/run/apache2/apache2.pid"),
    ("APACHE_RUN_DIR", "/var/run/apache2"),
    ("APACHE_LOCK_DIR", "/var/lock/apache2"),
    ("APACHE_LOG_DIR", "/var/log/apache2"),
];

pub struct Evaluator<'r> {
    pub server_root: PathBuf,
    /// Where files are shown from: paths under it print relative.
    shown_from: PathBuf,
    defines: BTreeMap<String, String>,
    envvars: BTreeMap<String, String>,
    /// Modules loaded so far; `None` until the first LoadModule (a lone
    /// vhost file), when `<IfModule>` asks what modproxy has instead.
    loaded: Option<Vec<String>>,
    reading: Vec<PathBuf>,
    report: &'r mut Report,
}

impl<'r> Evaluator<'r> {
    /// For the configuration `main`; httpd's ServerRoot is guessed as
    /// Debian lays it out (the parent of sites-available/ and the like, or
    /// the file's own directory) until a ServerRoot directive says.
    pub fn new(main: &Path, report: &'r mut Report) -> Evaluator<'r> {
        let dir = main.parent().unwrap_or(Path::new("/")).to_path_buf();
        let inner = [
            "sites-available",
            "sites-enabled",
            "conf-available",
            "conf-enabled",
            "mods-available",
            "mods-enabled",
        ];
        let server_root = match dir.file_name().and_then(|n| n.to_str()) {
            Some(n) if inner.contains(&n) => dir.parent().unwrap_or(&dir).to_path_buf(),
            _ => dir,
        };
        let envvars = read_envvars(&server_root.join("envvars"));
        Evaluator {
            shown_from: server_root.clone(),
            server_root,
            defines: BTreeMap::new(),
            envvars,
            loaded: None,
            reading: Vec::new(),
            report,
        }
    }

    /// Reads and evaluates `file`; an error is one the whole import stops on.
    pub fn file(&mut self, file: &Path) -> Result<Vec<Directive>, String> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "cannot read {}: {e}; name an Apache configuration file modproxy may read",
                file.display()
            )
        })?;
        let shown: Rc<str> = Rc::from(self.show(file).as_str());
        let nodes = syntax::parse(&shown, &text)?;
        self.reading.push(file.to_path_buf());
        let out = self.nodes(&nodes);
        self.reading.pop();
        out
    }

    fn show(&self, file: &Path) -> String {
        file.strip_prefix(&self.shown_from)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| file.display().to_string())
    }

    fn nodes(&mut self, nodes: &[Node]) -> Result<Vec<Directive>, String> {
        let mut out = Vec::new();
        for node in nodes {
            self.node(node, &mut out)?;
        }
        Ok(out)
    }

    fn node(&mut self, node: &Node, out: &mut Vec<Directive>) -> Result<(), String> {
        let args_text = self.expand(&node.args, &node.at);
        let args = syntax::words(&args_text);
        let key = node.name.to_ascii_lowercase();
        let text = Node {
            args: args_text.clone(),
            ..node.clone()
        }
        .text();
        if let Some(children) = &node.block {
            let condition = match key.as_str() {
                "ifmodule" => Some(self.if_module(&args)),
                "ifdefine" => Some(self.if_define(&args)),
                _ => None,
            };
            match condition {
                // What a module modproxy lacks holds stays together, so
                // that the converter can report it as one block.
                Some(true) if key == "ifmodule" && !self.modproxy_has(&args) => {
                    out.push(Directive {
                        key,
                        args,
                        text,
                        at: node.at.clone(),
                        block: Some(self.nodes(children)?),
                    })
                }
                Some(true) => out.extend(self.nodes(children)?),
                Some(false) => self.report.note(
                    &node.at,
                    format!(
                        "{text} is false here; httpd skips what it holds, and so does the import"
                    ),
                ),
                None => out.push(Directive {
                    key,
                    args,
                    text,
                    at: node.at.clone(),
                    block: Some(self.nodes(children)?),
                }),
            }
            return Ok(());
        }
        match key.as_str() {
            "include" | "includeoptional" => self.include(&key, &args, node, out)?,
            "define" => match args.as_slice() {
                [name] => {
                    self.defines.insert(name.clone(), String::new());
                }
                [name, value] => {
                    self.defines.insert(name.clone(), value.clone());
                }
                _ => self
                    .report
                    .skip(&node.at, &text, "Define takes a name and at most one value"),
            },
            "undefine" => {
                for a in &args {
                    self.defines.remove(a);
                }
            }
            "serverroot" => match args.as_slice() {
                [dir] => self.server_root = PathBuf::from(dir),
                _ => self
                    .report
                    .skip(&node.at, &text, "ServerRoot takes one directory"),
            },
            _ => {
                if key == "loadmodule" {
                    if let Some(name) = args.first() {
                        self.loaded
                            .get_or_insert_with(Vec::new)
                            .push(modules::normalise(name));
                    }
                }
                out.push(Directive {
                    key,
                    args,
                    text,
                    at: node.at.clone(),
                    block: None,
                });
            }
        }
        Ok(())
    }

    fn if_module(&self, args: &[String]) -> bool {
        let arg = args.first().map(String::as_str).unwrap_or("");
        let (negate, name) = match arg.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, arg),
        };
        let name = modules::normalise(name);
        let present = match &self.loaded {
            Some(loaded) => loaded.contains(&name) || modules::built_in(&name),
            None => modules::present_without_load_module(&name),
        };
        present != negate
    }

    /// Whether the module `<IfModule>` names is one modproxy has (or one
    /// built into httpd, which holds core directives).
    fn modproxy_has(&self, args: &[String]) -> bool {
        let arg = args.first().map(String::as_str).unwrap_or("");
        let name = modules::normalise(arg.trim_start_matches('!'));
        arg.starts_with('!') || modules::present_without_load_module(&name)
    }

    fn if_define(&self, args: &[String]) -> bool {
        let arg = args.first().map(String::as_str).unwrap_or("");
        match arg.strip_prefix('!') {
            Some(n) => !self.defines.contains_key(n),
            None => self.defines.contains_key(arg),
        }
    }

    /// `${NAME}` from Define, then the environment, then envvars.
    fn expand(&mut self, s: &str, at: &Place) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &after[..end];
            let value = self
                .defines
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
                .or_else(|| self.envvars.get(name).cloned());
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    self.report.note(at, format!("${{{name}}} is not defined (no Define, environment variable or envvars entry); left as written, as httpd does"));
                    out.push_str(&rest[start..start + 2 + end + 1]);
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn include(
        &mut self,
        key: &str,
        args: &[String],
        node: &Node,
        out: &mut Vec<Directive>,
    ) -> Result<(), String> {
        let optional = key == "includeoptional";
        let [pattern] = args else {
            self.report.skip(
                &node.at,
                &node.text(),
                "Include takes one path or wildcard pattern",
            );
            return Ok(());
        };
        let path = self.server_root.join(pattern);
        let files = expand_pattern(&path);
        if files.is_empty() && !optional {
            self.report.skip(
                &node.at,
                &format!("{} {pattern}", node.name),
                &format!("{} matches no file (httpd would refuse to start); copy the file there, or import it on its own", path.display()),
            );
        }
        for file in files {
            if self.reading.contains(&file) {
                return Err(format!(
                    "{}: {} includes itself (through {}); remove the loop",
                    node.at,
                    file.display(),
                    self.show(self.reading.last().unwrap_or(&file))
                ));
            }
            if self.reading.len() > 32 {
                return Err(format!(
                    "{}: includes nest more than 32 deep; look for a loop",
                    node.at
                ));
            }
            out.extend(self.file(&file)?);
        }
        Ok(())
    }
}

/// The files a path or wildcard pattern names, in httpd's order: a
/// directory means every file under it, and matches sort by name.
fn expand_pattern(path: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for part in path.components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if part.contains(['*', '?', '[']) {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && fnmatch(&part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                next.push(dir.join(&*part));
            }
        }
        found = next;
    }
    let mut files = Vec::new();
    for p in found {
        files_under(&p, &mut files);
    }
    files
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        out.push(p.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(p) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for q in paths {
            files_under(&q, out);
        }
    }
}

/// Shell wildcards: `*`, `?` and `[…]` (with `!` or `^` negating).
fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..close];
                let (negate, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[close + 1..], &n[1..])
            }
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// `export NAME=VALUE` lines of a Debian envvars file (`$SUFFIX` and
/// earlier names expanded, as the shell would for the default instance);
/// Debian's defaults when there is no such file.
fn read_envvars(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return DEBIAN_ENVVARS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    };
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("SUFFIX".into(), String::new());
    for line in text.lines() {
        let Some(assign) = line.trim().strip_prefix("export ") else {
            continue;
        };
        let Some((name, value)) = assign.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').trim_matches('\'');
        let mut expanded = String::new();
        let mut rest = value;
        while let Some(i) = rest.find('$') {
            expanded.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (var, tail) = match after.strip_prefix('{') {
                Some(b) => b.split_once('}').unwrap_or((b, "")),
                None => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            expanded.push_str(vars.get(var).map(String::as_str).unwrap_or(""));
            rest = tail;
        }
        expanded.push_str(rest);
        vars.insert(name.trim().to_string(), expanded);
    }
    vars.remove("SUFFIX");
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "modproxy-import-eval-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::SeqCst)
    }

    fn eval(main: &Path) -> (Vec<Directive>, Report) {
        let mut report = Report::default();
        let out = Evaluator::new(main, &mut report).file(main).unwrap();
        (out, report)
    }

    fn flat(ds: &[Directive]) -> Vec<String> {
        let mut v = Vec::new();
        for d in ds {
            v.push(d.text.clone());
            if let Some(b) = &d.block {
                v.extend(flat(b));
            }
        }
        v
    }

    #[test]
    fn includes_defines_variables_and_ifmodule_resolve_as_httpd_does() {
        let d = dir();
        std::fs::create_dir_all(d.join("sites-enabled")).unwrap();
        std::fs::create_dir_all(d.join("mods-enabled")).unwrap();
        std::fs::write(
            d.join("envvars"),
            "export APACHE_LOG_DIR=/var/log/apache2$SUFFIX\n",
        )
        .unwrap();
        std::fs::write(
            d.join("mods-enabled/proxy.load"),
            "LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so\n",
        )
        .unwrap();
        std::fs::write(
            d.join("sites-enabled/b.conf"),
            "<VirtualHost *:${PORT}>\nErrorLog ${APACHE_LOG_DIR}/b.log\n</VirtualHost>\n",
        )
        .unwrap();
        std::fs::write(d.join("sites-enabled/a.conf"), "ServerName a\n").unwrap();
        std::fs::write(
            d.join("apache2.conf"),
            "Define PORT 8000\nIncludeOptional mods-enabled/*.load\nInclude sites-enabled/\n<IfModule proxy_module>\nProxyTimeout 5\n</IfModule>\n<IfModule mod_rewrite.c>\nRewriteEngine On\n</IfModule>\n<IfModule !mod_ssl.c>\nListen 80\n</IfModule>\n<IfDefine PORT>\nProxyVia On\n</IfDefine>\nIncludeOptional nowhere/*.conf\n",
        )
        .unwrap();
        let (out, report) = eval(&d.join("apache2.conf"));
        assert_eq!(
            flat(&out),
            [
                "LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so",
                "ServerName a",
                "<VirtualHost *:8000>",
                "ErrorLog /var/log/apache2/b.log",
                "ProxyTimeout 5",
                "Listen 80",
                "ProxyVia On",
            ]
        );
        assert_eq!(out[1].at.to_string(), "sites-enabled/a.conf:1");
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.1.contains("<IfModule mod_rewrite.c> is false")),
            "{:?}",
            report.notes
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_lone_vhost_asks_what_modproxy_has_and_debian_defaults_fill_variables() {
        let d = dir();
        std::fs::create_dir_all(d.join("sites-available")).unwrap();
        let f = d.join("sites-available/x.conf");
        std::fs::write(&f, "<IfModule mod_ssl.c>\nCustomLog ${APACHE_LOG_DIR}/x.log combined\nInclude missing.conf\nErrorLog ${NOPE_NOT_SET}/e\n</IfModule>\n").unwrap();
        let (out, report) = eval(&f);
        assert_eq!(
            flat(&out),
            [
                "CustomLog /var/log/apache2/x.log combined",
                "ErrorLog ${NOPE_NOT_SET}/e"
            ]
        );
        assert_eq!(report.skipped.len(), 1);
        assert!(
            report.skipped[0]
                .why
                .contains("missing.conf matches no file"),
            "{:?}",
            report.skipped
        );
        assert!(report
            .notes
            .iter()
            .any(|n| n.1.contains("${NOPE_NOT_SET} is not defined")));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn include_loops_are_refused() {
        let d = dir();
        std::fs::write(d.join("a.conf"), "Include b.conf\n").unwrap();
        std::fs::write(d.join("b.conf"), "Include a.conf\n").unwrap();
        let mut report = Report::default();
        let e = Evaluator::new(&d.join("a.conf"), &mut report)
            .file(&d.join("a.conf"))
            .unwrap_err();
        assert!(e.contains("includes itself"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn wildcards() {
        assert!(fnmatch("*.conf", "000-default.conf"));
        assert!(!fnmatch("*.conf", "x.load"));
        assert!(fnmatch("[0-9]?-*.c[!x]nf", "00-a.conf"));
    }
}
