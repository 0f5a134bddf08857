//! Symlink bookkeeping shared by modules and sites: `X-available/NAME.toml`, enabled by a relative link in `X-enabled/`.
use crate::error::Error;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// One available/enabled directory pair and the words used to talk about it.
pub(crate) struct Kind {
    pub noun: &'static str,
    pub title: &'static str,
    pub available: &'static str,
    pub enabled: &'static str,
    pub disable_cmd: &'static str,
}

pub(crate) const MODULES: Kind = Kind {
    noun: "module",
    title: "Module",
    available: "mods-available",
    enabled: "mods-enabled",
    disable_cmd: "dismod",
};

pub(crate) const SITES: Kind = Kind {
    noun: "site",
    title: "Site",
    available: "sites-available",
    enabled: "sites-enabled",
    disable_cmd: "dissite",
};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Missing,
    Dangling,
    Enabled,
}

impl Kind {
    pub fn available_path(&self, root: &Path, name: &str) -> PathBuf {
        root.join(self.available).join(format!("{name}.toml"))
    }

    pub fn link_path(&self, root: &Path, name: &str) -> PathBuf {
        root.join(self.enabled).join(format!("{name}.toml"))
    }

    pub fn available_names(&self, root: &Path) -> Result<Vec<String>, Error> {
        toml_names(&root.join(self.available))
    }

    /// Every entry in the enabled directory, dangling or not.
    pub fn enabled_names(&self, root: &Path) -> Result<Vec<String>, Error> {
        toml_names(&root.join(self.enabled))
    }

    /// Names that are available or enabled: dismod must be able to remove a dangling link.
    pub fn known_names(&self, root: &Path) -> Result<Vec<String>, Error> {
        let mut names = self.available_names(root)?;
        names.extend(self.enabled_names(root)?);
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub fn state(&self, root: &Path, name: &str) -> State {
        let link = self.link_path(root, name);
        match (fs::symlink_metadata(&link), fs::metadata(&link)) {
            (Err(_), _) => State::Missing,
            (Ok(_), Err(_)) => State::Dangling,
            (Ok(_), Ok(_)) => State::Enabled,
        }
    }

    /// Relative, so SERVER_ROOT can be moved or mounted elsewhere without breaking the links.
    pub fn link(&self, root: &Path, name: &str) -> Result<(), Error> {
        let dir = root.join(self.enabled);
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, &e))?;
        let link = self.link_path(root, name);
        if self.state(root, name) == State::Dangling {
            self.unlink(root, name)?;
        }
        let target = Path::new("..")
            .join(self.available)
            .join(format!("{name}.toml"));
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| Error::io("create symlink", &link, &e))
    }

    pub fn unlink(&self, root: &Path, name: &str) -> Result<(), Error> {
        let link = self.link_path(root, name);
        match fs::remove_file(&link) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io("remove", &link, &e)),
            _ => Ok(()),
        }
    }

    pub fn unknown(&self, name: &str, available: &[String]) -> Error {
        let listing = if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        };
        Error::new(
            format!("no {} named {name} in {}/", self.noun, self.available),
            format!("choose one of the available {}s: {listing}", self.noun),
        )
    }

    pub fn dangling(&self, name: &str) -> Error {
        Error::new(
            format!("{}/{name}.toml points to a missing file", self.enabled),
            format!("run `modproxy {} {name}`", self.disable_cmd),
        )
    }
}

/// `NAME` for every `NAME.toml` in `dir`, sorted; a missing directory holds nothing.
fn toml_names(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", dir, &e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io("read directory", dir, &e))?
            .path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.starts_with('.'));
        if let (Some(stem), true) = (stem, path.extension().is_some_and(|x| x == "toml")) {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{root, write};

    #[test]
    fn links_are_relative_and_states_are_detected() {
        let dir = root();
        write(dir.path(), "sites-available/a.toml", "");
        assert_eq!(SITES.state(dir.path(), "a"), State::Missing);
        SITES.link(dir.path(), "a").unwrap();
        let target = fs::read_link(SITES.link_path(dir.path(), "a")).unwrap();
        assert_eq!(target, Path::new("../sites-available/a.toml"));
        assert_eq!(SITES.state(dir.path(), "a"), State::Enabled);
        fs::remove_file(SITES.available_path(dir.path(), "a")).unwrap();
        assert_eq!(SITES.state(dir.path(), "a"), State::Dangling);
        assert_eq!(SITES.known_names(dir.path()).unwrap(), ["a"]);
    }
}
