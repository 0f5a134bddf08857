//! `modproxy import APACHE_CONF [-o FILE]`: an Apache httpd configuration
//! (one vhost file, or a whole apache2.conf with what it includes) as
//! modproxy's TOML.
//!
//! `syntax` reads Apache's syntax, `eval` does what httpd does while
//! reading (Include, Define, `${VAR}`, `<IfModule>`), `convert` maps the
//! directives onto modproxy's keys and `emit` writes them with their
//! origins. Nothing is dropped silently: every directive that is not
//! converted is listed with its file, line and why, on stderr and at the
//! end of the output, and the exit status is then 2.

mod convert;
mod emit;
mod eval;
mod modules;
mod syntax;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use syntax::Place;

const USAGE: &str = "usage: modproxy import APACHE_CONF [-o FILE]

Reads an Apache configuration (a vhost file, or apache2.conf and what it
includes) and writes the equivalent modproxy configuration to FILE, or to
stdout. Exit status: 0 when everything was converted, 2 when something was
not (each such directive is listed on stderr and in the output), 1 on error.";

/// What the import did with each directive.
#[derive(Debug, Default)]
pub struct Report {
    converted: BTreeSet<(String, usize)>,
    pub skipped: Vec<Skip>,
    pub notes: Vec<(Place, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub at: Place,
    pub text: String,
    pub why: String,
}

impl Report {
    fn key(at: &Place) -> (String, usize) {
        (at.file.to_string(), at.line)
    }

    pub fn converted(&mut self, at: &Place) {
        self.converted.insert(Report::key(at));
    }

    /// A whole directive that was not converted.
    pub fn skip(&mut self, at: &Place, text: &str, why: &str) {
        self.converted.remove(&Report::key(at));
        self.skip_part(at, text, why);
    }

    /// A part of a directive (a parameter) that was not converted.
    pub fn skip_part(&mut self, at: &Place, text: &str, why: &str) {
        let skip = Skip {
            at: at.clone(),
            text: text.to_string(),
            why: why.to_string(),
        };
        if !self.skipped.contains(&skip) {
            self.skipped.push(skip);
        }
    }

    pub fn note(&mut self, at: &Place, note: String) {
        if !self.notes.iter().any(|(a, n)| a == at && *n == note) {
            self.notes.push((at.clone(), note));
        }
    }

    /// Directives converted, whole or in part.
    pub fn converted_count(&self) -> usize {
        self.converted.len()
    }
}

/// The converted configuration and the report of `main`.
pub fn import(main: &Path) -> Result<(String, Report), String> {
    let mut report = Report::default();
    let (directives, server_root) = {
        let mut eval = eval::Evaluator::new(main, &mut report);
        let directives = eval.file(main)?;
        (directives, eval.server_root.clone())
    };
    let model = convert::convert(&directives, &server_root, &mut report);
    let text = emit::toml(&model, &report, &main.display().to_string());
    Ok((text, report))
}

pub fn run(args: &[String]) -> i32 {
    let mut input: Option<PathBuf> = None;
    let mut output: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-o" | "--output" => match args.get(i + 1) {
                Some(f) => {
                    output = Some(PathBuf::from(f));
                    i += 1;
                }
                None => return usage("-o needs a file name"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            a if a.starts_with('-') => return usage(&format!("unknown option {a}")),
            a if input.is_none() => input = Some(PathBuf::from(a)),
            a => {
                return usage(&format!(
                    "one Apache configuration at a time ({a} is a second)"
                ))
            }
        }
        i += 1;
    }
    let Some(input) = input else {
        return usage("name the Apache configuration to import, e.g. /etc/apache2/apache2.conf");
    };
    let input = std::path::absolute(&input).unwrap_or(input);
    let (text, report) = match import(&input) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("modproxy import: {e}");
            return 1;
        }
    };
    match &output {
        Some(file) => {
            if let Err(e) = std::fs::write(file, &text) {
                eprintln!("modproxy import: cannot write {}: {e}; check the directory exists and is writable", file.display());
                return 1;
            }
        }
        None => print!("{text}"),
    }
    for s in &report.skipped {
        eprintln!("{}: not converted: {}: {}", s.at, s.text, s.why);
    }
    for (at, note) in &report.notes {
        eprintln!("{at}: note: {note}");
    }
    let target = output
        .as_ref()
        .map_or("stdout".to_string(), |f| f.display().to_string());
    eprintln!(
        "modproxy import: {} directives converted, {} not converted; written to {target}; check it with `modproxy -f FILE configtest`",
        report.converted_count(),
        report.skipped.len()
    );
    if report.skipped.is_empty() {
        0
    } else {
        2
    }
}

fn usage(problem: &str) -> i32 {
    eprintln!("modproxy import: {problem}\n\n{USAGE}");
    1
}

#[cfg(test)]
mod tests;
