//! A module descriptor (`mods-available/NAME.toml`): what the module is, where its library lives, what it needs and owns.
use crate::error::{toml_problem, Error};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// The file stem, which is also the name used by enmod/dismod.
    pub name: String,
    pub description: String,
    /// Absolute: resolved against the directory of the descriptor's real file.
    pub library: PathBuf,
    pub depends: Vec<String>,
    /// Config tables the module owns, e.g. `vhost.proxy`, so an unclaimed table can name its module.
    pub sections: Vec<String>,
    /// Providers (`group:name`) the module registers, so a missing provider can name its module.
    pub provides: Vec<String>,
    pub defaults: toml::Table,
    /// The real file, after following the mods-enabled symlink.
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    description: String,
    library: PathBuf,
    #[serde(default)]
    depends: Vec<String>,
    #[serde(default)]
    sections: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    defaults: toml::Table,
}

impl Descriptor {
    pub(crate) fn load(name: &str, path: &Path) -> Result<Self, Error> {
        let real = fs::canonicalize(path).map_err(|e| Error::io("resolve", path, &e))?;
        let src = fs::read_to_string(&real).map_err(|e| Error::io("read", &real, &e))?;
        let raw: Raw = toml::from_str(&src).map_err(|e| {
            Error::new(
                format!("{} is not a valid module descriptor: {}", real.display(), toml_problem(&src, &e)),
                "fix it; allowed keys are description, library, depends, sections, provides and [defaults]",
            )
        })?;
        // Relative to the real file so a descriptor means the same thing through any symlink.
        let library = real.parent().unwrap_or(Path::new("/")).join(raw.library);
        Ok(Self {
            name: name.to_string(),
            description: raw.description,
            library,
            depends: raw.depends,
            sections: raw.sections,
            provides: raw.provides,
            defaults: raw.defaults,
            path: real,
        })
    }
}

/// The module whose descriptor says it registers `provider` (`group:name`).
pub fn module_providing<'a>(
    descriptors: &'a [Descriptor],
    provider: &str,
) -> Option<&'a Descriptor> {
    descriptors
        .iter()
        .find(|d| d.provides.iter().any(|p| p == provider))
}

/// The module whose descriptor says it owns the config table `section` (e.g. `vhost.proxy`).
pub fn module_owning<'a>(descriptors: &'a [Descriptor], section: &str) -> Option<&'a Descriptor> {
    descriptors
        .iter()
        .find(|d| d.sections.iter().any(|s| s == section))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::MODULES;
    use crate::testutil::{root, write};

    #[test]
    fn library_resolves_from_the_real_file_not_the_link() {
        let dir = root();
        let body = "library = \"../lib/libx.so\"\nprovides = [\"lbmethod:x\"]\n[defaults]\nn = 1\n";
        write(dir.path(), "mods-available/x.toml", body);
        MODULES.link(dir.path(), "x").unwrap();
        let d = Descriptor::load("x", &MODULES.link_path(dir.path(), "x")).unwrap();
        let real_dir = fs::canonicalize(dir.path().join("mods-available")).unwrap();
        assert_eq!(d.library, real_dir.join("../lib/libx.so"));
        assert_eq!(d.defaults["n"].as_integer(), Some(1));
        assert_eq!(
            module_providing(&[d], "lbmethod:x").map(|d| d.name.as_str()),
            Some("x")
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_the_allowed_list() {
        let dir = root();
        write(
            dir.path(),
            "mods-available/x.toml",
            "library = \"a.so\"\ndepend = [\"y\"]\n",
        );
        let err = Descriptor::load("x", &dir.path().join("mods-available/x.toml")).unwrap_err();
        assert!(
            err.problem.contains("line 2") && err.problem.contains("depend"),
            "{err}"
        );
        assert!(err.fix.contains("allowed keys"), "{err}");
    }
}
