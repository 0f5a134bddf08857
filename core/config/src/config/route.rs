//! Hands each module-owned table to the module that claimed it; the longest claim wins, unclaimed tables are errors naming a fix.
use super::Config;
use crate::descriptor::{module_owning, Descriptor};
use crate::error::ConfigError;
use modproxy_api::suggest::did_you_mean;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Value;

/// One module-owned piece of configuration, ready to hand to its module.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub module: String,
    /// The claim it matched, e.g. `vhost.proxy.balancer`, or `defaults`.
    pub path: String,
    /// Index into `Config::vhosts`; None for top-level tables.
    pub vhost: Option<usize>,
    pub file: PathBuf,
    /// Where it sits in `file`, e.g. `vhost[0].proxy.balancer`, for the module's own error messages.
    pub key: String,
    /// With the keys routed to longer claims removed.
    pub value: Value,
}

/// A descriptor's `[defaults]` as a section, for the loader to hand to the module before its config.
pub fn module_defaults(descriptor: &Descriptor) -> Option<Section> {
    (!descriptor.defaults.is_empty()).then(|| Section {
        module: descriptor.name.clone(),
        path: "defaults".into(),
        vhost: None,
        file: descriptor.path.clone(),
        key: "defaults".into(),
        value: Value::Table(descriptor.defaults.clone()),
    })
}

/// Routes every module-owned key of `config` using `claims` (section path, module) of the loaded
/// modules. A vhost key `k` matches claim `vhost.k`, a top-level key `k` matches claim `k`.
///
/// Example: with claims `vhost.proxy` → proxy and `vhost.proxy.balancer` → proxy_balancer, the
/// table `[vhost.proxy]` goes to proxy without its `balancer` key, and that key's value (the
/// `[[vhost.proxy.balancer]]` array) goes to proxy_balancer as a section of its own.
/// `descriptors` (all available) let an unclaimed table name the module to enable. Returns the
/// sections that found their module and a problem for each table that did not.
pub fn route_sections(
    config: &Config,
    claims: &[(String, String)],
    descriptors: &[Descriptor],
) -> (Vec<Section>, Vec<ConfigError>) {
    let claims = claims
        .iter()
        .map(|(p, m)| (p.as_str(), m.as_str()))
        .collect();
    let mut router = Router {
        claims,
        descriptors,
        sections: Vec::new(),
        errors: Vec::new(),
    };
    for t in &config.module_tables {
        router.route(
            &Place {
                file: &t.file,
                vhost: None,
            },
            "",
            &t.key,
            t.key.clone(),
            t.value.clone(),
        );
    }
    for v in &config.vhosts {
        let place = Place {
            file: &v.file,
            vhost: Some(v.index),
        };
        for (key, value) in &v.extra {
            router.route(
                &place,
                "vhost",
                key,
                format!("{}.{key}", v.key_path()),
                value.clone(),
            );
        }
    }
    (router.sections, router.errors)
}

struct Place<'a> {
    file: &'a Path,
    vhost: Option<usize>,
}

struct Router<'a> {
    claims: BTreeMap<&'a str, &'a str>,
    descriptors: &'a [Descriptor],
    sections: Vec<Section>,
    errors: Vec<ConfigError>,
}

impl Router<'_> {
    fn route(&mut self, at: &Place, parent: &str, key: &str, key_path: String, mut value: Value) {
        let path = join(parent, key);
        let Some(module) = self.claims.get(path.as_str()).map(|m| m.to_string()) else {
            self.errors
                .push(self.unclaimed(at, &path, key_path, &value));
            return;
        };
        // Sub-keys a descriptor claims are split off even when that module is not loaded, so the
        // user learns to enable it instead of the parent module rejecting an unknown key.
        let mut children = Vec::new();
        if let Value::Table(table) = &mut value {
            let owned: Vec<String> = table
                .keys()
                .filter(|k| self.is_section(&join(&path, k)))
                .cloned()
                .collect();
            children = owned
                .into_iter()
                .filter_map(|k| table.remove(&k).map(|v| (k, v)))
                .collect();
        }
        let (file, vhost) = (at.file.to_path_buf(), at.vhost);
        self.sections.push(Section {
            module,
            path: path.clone(),
            vhost,
            file,
            key: key_path.clone(),
            value,
        });
        for (child, v) in children {
            self.route(at, &path, &child, format!("{key_path}.{child}"), v);
        }
    }

    fn is_section(&self, path: &str) -> bool {
        self.claims.contains_key(path) || module_owning(self.descriptors, path).is_some()
    }

    fn unclaimed(&self, at: &Place, path: &str, key_path: String, value: &Value) -> ConfigError {
        let shown = if value.is_table() || value.is_array() {
            format!("[{path}]")
        } else {
            path.to_string()
        };
        if let Some(owner) = module_owning(self.descriptors, path) {
            let problem = format!(
                "{shown} belongs to module {}, which is not enabled",
                owner.name
            );
            return ConfigError::new(
                at.file,
                key_path,
                problem,
                format!("run `modproxy enmod {}`", owner.name),
            );
        }
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        let mut known: Vec<&str> = self.claims.keys().copied().collect();
        known.extend(
            self.descriptors
                .iter()
                .flat_map(|d| d.sections.iter().map(String::as_str)),
        );
        known.retain(|k| k.rsplit_once('.').map_or("", |(p, _)| p) == parent);
        known.sort_unstable();
        known.dedup();
        let listing = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        let fix = match did_you_mean(path, known.iter().copied()) {
            Some(hint) => format!("{hint} Sections modules can claim here: {listing}"),
            None => format!("check the spelling; sections modules can claim here: {listing}"),
        };
        ConfigError::new(
            at.file,
            key_path,
            format!("no enabled module claims {shown}"),
            fix,
        )
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{module, root, write};

    const TUTORIAL: &str = r#"
[[vhost]]
listen = "127.0.0.1:8000"

[vhost.proxy]
preserve_host = true
pass = [{ path = "/", url = "balancer://mycluster/" }]
pass_reverse = [{ path = "/", url = "balancer://mycluster/" }]

[[vhost.proxy.balancer]]
name = "mycluster"
members = [{ url = "http://127.0.0.1:8080" }, { url = "http://127.0.0.1:8081" }]
"#;

    /// The tutorial config plus the proxy family's descriptors, and the routing result for `claims`.
    fn route(extra: &str, claims: &[(&str, &str)]) -> Result<Vec<Section>, Vec<String>> {
        let dir = root();
        module(dir.path(), "proxy", &[], &["vhost.proxy"]);
        module(
            dir.path(),
            "proxy_balancer",
            &["proxy"],
            &["vhost.proxy.balancer"],
        );
        write(dir.path(), "modproxy.toml", &format!("{extra}\n{TUTORIAL}"));
        let config = crate::load(dir.path(), Path::new("modproxy.toml")).unwrap();
        let claims: Vec<(String, String)> = claims
            .iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect();
        let descriptors = crate::available(dir.path()).unwrap();
        match route_sections(&config, &claims, &descriptors) {
            (sections, errors) if errors.is_empty() => Ok(sections),
            (_, errors) => Err(errors.iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn the_tutorial_routes_proxy_and_balancer_separately() {
        let sections = route(
            "",
            &[
                ("vhost.proxy", "proxy"),
                ("vhost.proxy.balancer", "proxy_balancer"),
            ],
        )
        .unwrap();
        let routed: Vec<(&str, &str, &str)> = sections
            .iter()
            .map(|s| (s.module.as_str(), s.path.as_str(), s.key.as_str()))
            .collect();
        let expected = [
            ("proxy", "vhost.proxy", "vhost[0].proxy"),
            (
                "proxy_balancer",
                "vhost.proxy.balancer",
                "vhost[0].proxy.balancer",
            ),
        ];
        assert_eq!(routed, expected);
        let proxy = sections[0].value.as_table().unwrap();
        assert!(!proxy.contains_key("balancer") && proxy.contains_key("pass"));
        assert_eq!(sections[1].value[0]["name"].as_str(), Some("mycluster"));
        assert_eq!(sections[1].vhost, Some(0));
    }

    #[test]
    fn an_unloaded_sub_claim_names_its_module() {
        let errors = route("", &[("vhost.proxy", "proxy")]).unwrap_err();
        assert_eq!(errors.len(), 1);
        let expected = "vhost[0].proxy.balancer: [vhost.proxy.balancer] belongs to module proxy_balancer, which is not enabled (run `modproxy enmod proxy_balancer`)";
        assert!(errors[0].ends_with(expected), "{errors:?}");
    }

    #[test]
    fn an_unloaded_table_names_its_module_and_a_typo_lists_the_known_sections() {
        let errors = route("proxi = 1\n[prox]\na = 1", &[]).unwrap_err();
        assert!(errors[0].ends_with("prox: no enabled module claims [prox] (check the spelling; sections modules can claim here: none)"), "{errors:?}");
        assert!(errors[1].ends_with("proxi: no enabled module claims proxi (check the spelling; sections modules can claim here: none)"), "{errors:?}");
        assert!(errors[2].ends_with("[vhost.proxy] belongs to module proxy, which is not enabled (run `modproxy enmod proxy`)"), "{errors:?}");
    }

    #[test]
    fn global_tables_route_without_the_vhost_prefix() {
        let claims = [
            ("proxy", "proxy"),
            ("vhost.proxy", "proxy"),
            ("vhost.proxy.balancer", "proxy_balancer"),
        ];
        let sections = route("[proxy]\ntimeout = 5", &claims).unwrap();
        assert_eq!(
            (sections[0].path.as_str(), sections[0].vhost),
            ("proxy", None)
        );
        let errors = route(
            "[[vhost]]\nlisten = \"127.0.0.1:1\"\n[vhost.proxyy]\n",
            &claims,
        )
        .unwrap_err();
        assert!(
            errors[0].contains(
                "(did you mean vhost.proxy? Sections modules can claim here: vhost.proxy)"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn defaults_become_a_section() {
        let dir = root();
        write(
            dir.path(),
            "mods-available/m.toml",
            "library = \"m.so\"\n[defaults]\nretry = 60\n",
        );
        module(dir.path(), "plain", &[], &[]);
        let all = crate::available(dir.path()).unwrap();
        let section = module_defaults(&all[0]).unwrap();
        assert_eq!(
            (
                section.module.as_str(),
                section.path.as_str(),
                section.vhost
            ),
            ("m", "defaults", None)
        );
        assert_eq!(section.value["retry"].as_integer(), Some(60));
        assert_eq!(module_defaults(&all[1]), None);
    }
}
