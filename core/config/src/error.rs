//! The two error shapes: `Error` for the module and site sets, `ConfigError` for a key in a config file.
use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with the module or site sets (enmod, dismod, a descriptor), and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub problem: String,
    pub fix: String,
}

impl Error {
    pub(crate) fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub(crate) fn io(action: &str, path: &Path, err: &std::io::Error) -> Self {
        Self::new(
            format!("cannot {action} {}: {err}", path.display()),
            "check that the path exists and that modproxy may access it",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.problem, self.fix)
    }
}

impl std::error::Error for Error {}

/// A problem at one key of one config file. `key_path` looks like `vhost[0].proxy.pass[1].url`
/// (vhost indexes count within `file`); it is empty for whole-file problems such as syntax errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key_path: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(
        file: &Path,
        key_path: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        let (key_path, problem, fix) = (key_path.into(), problem.into(), fix.into());
        Self {
            file: file.to_path_buf(),
            key_path,
            problem,
            fix,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        write!(f, "{} ({})", self.problem, self.fix)
    }
}

impl std::error::Error for ConfigError {}

/// toml's own Display spans several lines with a source excerpt; ours must fit on one line.
pub(crate) fn toml_problem(src: &str, err: &toml::de::Error) -> String {
    let offset = err.span().map_or(0, |s| s.start);
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    format!("line {line}, column {column}: {}", err.message().trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_is_one_line_with_the_fix() {
        let e = ConfigError::new(Path::new("a.toml"), "vhost[0].listen", "missing", "add it");
        assert_eq!(e.to_string(), "a.toml: vhost[0].listen: missing (add it)");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let src = "a = 1\nb = = 2\n";
        let err = src.parse::<toml::Table>().unwrap_err();
        assert!(
            toml_problem(src, &err).starts_with("line 2, column 5: "),
            "{}",
            toml_problem(src, &err)
        );
    }
}
