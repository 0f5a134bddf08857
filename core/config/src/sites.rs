//! The enabled site set: `sites-enabled/` links to `sites-available/`, like a2ensite/a2dissite.
use crate::error::Error;
use crate::links::{State, SITES};
use crate::switch;
use std::path::Path;

/// Sites have no dependencies, so nothing is pulled in and nothing blocks a disable.
fn independent(_: &str) -> Vec<String> {
    Vec::new()
}

pub fn enable_site(server_root: &Path, names: &[String]) -> Result<Vec<String>, Error> {
    let available = SITES.available_names(server_root)?;
    switch::enable(&SITES, server_root, names, &available, &independent)
}

pub fn disable_site(server_root: &Path, names: &[String]) -> Result<Vec<String>, Error> {
    let known = SITES.known_names(server_root)?;
    switch::disable(&SITES, server_root, names, &known, &independent, false)
}

/// Names of enabled sites, sorted; a link to a missing file is an error naming the fix.
pub fn enabled_sites(server_root: &Path) -> Result<Vec<String>, Vec<Error>> {
    let names = SITES.enabled_names(server_root).map_err(|e| vec![e])?;
    let dangling: Vec<Error> = names
        .iter()
        .filter(|n| SITES.state(server_root, n) == State::Dangling)
        .map(|n| SITES.dangling(n))
        .collect();
    if dangling.is_empty() {
        Ok(names)
    } else {
        Err(dangling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{root, strings, write};

    #[test]
    fn enable_disable_and_list() {
        let dir = root();
        write(dir.path(), "sites-available/default.toml", "");
        let msgs = enable_site(dir.path(), &strings(&["default"])).unwrap();
        assert_eq!(msgs, ["Enabling site default.", switch::RESTART_HINT]);
        assert_eq!(
            enable_site(dir.path(), &strings(&["default"])).unwrap(),
            ["Site default already enabled"]
        );
        assert_eq!(enabled_sites(dir.path()).unwrap(), ["default"]);
        assert_eq!(
            disable_site(dir.path(), &strings(&["default"])).unwrap()[0],
            "Disabling site default."
        );
        assert_eq!(
            disable_site(dir.path(), &strings(&["default"])).unwrap(),
            ["Site default already disabled"]
        );
        let err = enable_site(dir.path(), &strings(&["nope"])).unwrap_err();
        assert!(
            err.to_string().contains("available sites: default"),
            "{err}"
        );
    }

    #[test]
    fn dangling_site_link_names_dissite() {
        let dir = root();
        write(dir.path(), "sites-available/old.toml", "");
        enable_site(dir.path(), &strings(&["old"])).unwrap();
        std::fs::remove_file(dir.path().join("sites-available/old.toml")).unwrap();
        let errs = enabled_sites(dir.path()).unwrap_err();
        assert!(
            errs[0].to_string().contains("run `modproxy dissite old`"),
            "{}",
            errs[0]
        );
        disable_site(dir.path(), &strings(&["old"])).unwrap();
        assert!(enabled_sites(dir.path()).unwrap().is_empty());
    }
}
