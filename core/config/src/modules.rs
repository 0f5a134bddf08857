//! The module set: available descriptors, the enabled ones in load order, and enmod/dismod.
use crate::descriptor::Descriptor;
use crate::error::Error;
use crate::links::{State, MODULES};
use crate::order::load_order;
use crate::switch;
use std::collections::BTreeMap;
use std::path::Path;

/// Every descriptor in `mods-available/`, sorted by name.
pub fn available(server_root: &Path) -> Result<Vec<Descriptor>, Error> {
    let names = MODULES.available_names(server_root)?;
    names
        .iter()
        .map(|n| Descriptor::load(n, &MODULES.available_path(server_root, n)))
        .collect()
}

/// The enabled modules, dependencies before dependants (ties by name). All problems are reported.
pub fn enabled(server_root: &Path) -> Result<Vec<Descriptor>, Vec<Error>> {
    let names = MODULES.enabled_names(server_root).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut found = BTreeMap::new();
    for name in names {
        if MODULES.state(server_root, &name) == State::Dangling {
            errors.push(MODULES.dangling(&name));
            continue;
        }
        match Descriptor::load(&name, &MODULES.link_path(server_root, &name)) {
            Ok(d) => {
                found.insert(name, d);
            }
            Err(e) => errors.push(e),
        }
    }
    for d in found.values() {
        for dep in d.depends.iter().filter(|dep| !found.contains_key(*dep)) {
            errors.push(Error::new(
                format!("module {} depends on {dep}, which is not enabled", d.name),
                format!("run `modproxy enmod {dep}`"),
            ));
        }
    }
    let graph = found
        .iter()
        .map(|(n, d)| (n.clone(), d.depends.clone()))
        .collect();
    let order = load_order(&graph).unwrap_or_else(|stuck| {
        errors.push(Error::new(
            format!(
                "modules {} depend on each other in a cycle",
                stuck.join(", ")
            ),
            "remove one of the `depends` entries that close the cycle in mods-available/",
        ));
        Vec::new()
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(order.into_iter().filter_map(|n| found.remove(&n)).collect())
}

/// Like a2enmod: enables `names` and, first, what they depend on. Returns messages for the user.
pub fn enable(server_root: &Path, names: &[String]) -> Result<Vec<String>, Error> {
    let descriptors = available(server_root)?;
    let depends: BTreeMap<String, Vec<String>> = descriptors
        .into_iter()
        .map(|d| (d.name, d.depends))
        .collect();
    let names_available: Vec<String> = depends.keys().cloned().collect();
    let graph = |name: &str| depends.get(name).cloned().unwrap_or_default();
    switch::enable(&MODULES, server_root, names, &names_available, &graph)
}

/// Like a2dismod: refuses while an enabled module depends on one of `names`, unless `force`,
/// which disables those dependants too. Returns messages for the user.
pub fn disable(server_root: &Path, names: &[String], force: bool) -> Result<Vec<String>, Error> {
    let known = MODULES.known_names(server_root)?;
    // Unreadable enabled descriptors are skipped: dismod must still work to remove a broken module.
    let enabled: Vec<Descriptor> = MODULES
        .enabled_names(server_root)?
        .iter()
        .filter_map(|n| Descriptor::load(n, &MODULES.link_path(server_root, n)).ok())
        .collect();
    let graph = |name: &str| {
        enabled
            .iter()
            .filter(|d| d.depends.iter().any(|x| x == name))
            .map(|d| d.name.clone())
            .collect()
    };
    switch::disable(&MODULES, server_root, names, &known, &graph, force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::RESTART_HINT;
    use crate::testutil::{module, root, strings};

    fn proxy_family(root: &Path) {
        module(root, "proxy", &[], &["vhost.proxy"]);
        module(root, "proxy_http", &["proxy"], &[]);
        module(
            root,
            "proxy_balancer",
            &["proxy"],
            &["vhost.proxy.balancer"],
        );
        module(root, "lbmethod_byrequests", &["proxy_balancer"], &[]);
    }

    fn enabled_names(root: &Path) -> Vec<String> {
        enabled(root).unwrap().into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn enable_pulls_in_dependencies_and_is_idempotent() {
        let dir = root();
        proxy_family(dir.path());
        let msgs = enable(dir.path(), &strings(&["lbmethod_byrequests"])).unwrap();
        let expected = [
            "Considering dependency proxy_balancer for lbmethod_byrequests:",
            "Considering dependency proxy for proxy_balancer:",
            "Enabling module proxy.",
            "Enabling module proxy_balancer.",
            "Enabling module lbmethod_byrequests.",
            RESTART_HINT,
        ];
        assert_eq!(msgs, expected);
        let again = enable(dir.path(), &strings(&["proxy_http", "proxy"])).unwrap();
        let expected = [
            "Considering dependency proxy for proxy_http:",
            "Module proxy already enabled",
            "Enabling module proxy_http.",
            "Module proxy already enabled",
            RESTART_HINT,
        ];
        assert_eq!(again, expected);
        assert_eq!(
            enable(dir.path(), &strings(&["proxy"])).unwrap(),
            ["Module proxy already enabled"]
        );
        let order = [
            "proxy",
            "proxy_balancer",
            "lbmethod_byrequests",
            "proxy_http",
        ];
        assert_eq!(enabled_names(dir.path()), order);
    }

    #[test]
    fn unknown_module_lists_the_available_ones_and_changes_nothing() {
        let dir = root();
        proxy_family(dir.path());
        let err = enable(dir.path(), &strings(&["proxy", "proxy_htp"])).unwrap_err();
        assert!(err.problem.contains("no module named proxy_htp"), "{err}");
        assert!(
            err.fix
                .contains("lbmethod_byrequests, proxy, proxy_balancer, proxy_http"),
            "{err}"
        );
        assert!(enabled_names(dir.path()).is_empty());
        assert!(disable(dir.path(), &strings(&["nope"]), false)
            .unwrap_err()
            .fix
            .contains("proxy_http"));
    }

    #[test]
    fn disable_refuses_dependants_unless_forced() {
        let dir = root();
        proxy_family(dir.path());
        enable(dir.path(), &strings(&["proxy_http", "lbmethod_byrequests"])).unwrap();
        let err = disable(dir.path(), &strings(&["proxy"]), false).unwrap_err();
        assert!(
            err.problem.starts_with("module proxy is needed by "),
            "{err}"
        );
        for dependant in ["proxy_http", "proxy_balancer", "lbmethod_byrequests"] {
            assert!(err.problem.contains(dependant), "{err}");
        }
        assert!(err.fix.contains("use -f"), "{err}");
        assert_eq!(enabled_names(dir.path()).len(), 4);
        // Disabling the dependants in the same call is not blocked.
        disable(
            dir.path(),
            &strings(&["lbmethod_byrequests", "proxy_balancer"]),
            false,
        )
        .unwrap();
        let msgs = disable(dir.path(), &strings(&["proxy"]), true).unwrap();
        assert_eq!(
            msgs,
            [
                "Disabling module proxy_http.",
                "Disabling module proxy.",
                RESTART_HINT
            ]
        );
        assert_eq!(
            disable(dir.path(), &strings(&["proxy"]), false).unwrap(),
            ["Module proxy already disabled"]
        );
    }

    #[test]
    fn forced_disable_cascades_through_indirect_dependants() {
        let dir = root();
        proxy_family(dir.path());
        enable(dir.path(), &strings(&["lbmethod_byrequests"])).unwrap();
        disable(dir.path(), &strings(&["proxy"]), true).unwrap();
        assert!(enabled_names(dir.path()).is_empty());
    }

    #[test]
    fn enabled_reports_dangling_links_missing_dependencies_and_cycles() {
        let dir = root();
        proxy_family(dir.path());
        module(dir.path(), "a", &["b"], &[]);
        module(dir.path(), "b", &["a"], &[]);
        module(dir.path(), "gone", &[], &[]);
        enable(dir.path(), &strings(&["proxy_http", "a", "gone"])).unwrap();
        MODULES.unlink(dir.path(), "proxy").unwrap();
        std::fs::remove_file(dir.path().join("mods-available/gone.toml")).unwrap();
        let errs: Vec<String> = enabled(dir.path())
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        let expected = [
            "mods-enabled/gone.toml points to a missing file; run `modproxy dismod gone`",
            "module proxy_http depends on proxy, which is not enabled; run `modproxy enmod proxy`",
            "modules a, b depend on each other in a cycle; remove one of the `depends` entries that close the cycle in mods-available/",
        ];
        assert_eq!(errs, expected);
    }
}
