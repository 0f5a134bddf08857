//! The module loader: opens every enabled module, lets it register, hands
//! it its configuration, and runs post_config. This directory holds all of
//! the host's `unsafe` (the dlopen, the services table, raw request handles).
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod conn;
mod dl;
pub mod filters;
#[macro_use]
pub mod host_api;
pub mod operate;
pub mod registry;
pub mod request;

use modproxy_api::abi::HookKind;
use modproxy_config::{Config, Descriptor};
use registry::{ModuleInfo, Registry};

/// Loads `enabled` (already in dependency order) and lets each register.
/// Each error is one line naming the module.
pub fn load(enabled: &[Descriptor]) -> Result<Registry, Vec<String>> {
    let mut registry = Registry::default();
    let mut errors = Vec::new();
    for d in enabled {
        let opened = match dl::open(&d.name, &d.library) {
            Ok(o) => o,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let index = registry.modules.len();
        registry.modules.push(ModuleInfo {
            name: opened.name,
            version: opened.version,
            abi_version: opened.abi,
        });
        let mut reg = host_api::RegCtx {
            registry: &mut registry,
            module: index,
        };
        if let Err(reasons) = host_api::call_init(opened.header, &mut reg) {
            errors.push(format!(
                "module {}: init failed: {}",
                d.name,
                reasons.join("; ")
            ));
            continue;
        }
        errors.extend(unkept_promises(d, &registry, index));
    }
    if errors.is_empty() {
        Ok(registry)
    } else {
        Err(errors)
    }
}

/// A descriptor's `provides` is what configtest and enmod tell users to
/// rely on ("enable lbmethod_x for lbmethod:x"): each entry the module did
/// not register is an error naming both sides, instead of a dead end where
/// the config names a provider that the enabled module never offers.
fn unkept_promises(d: &Descriptor, registry: &Registry, module: usize) -> Vec<String> {
    let registered: Vec<String> = registry
        .providers
        .iter()
        .filter(|(_, p)| p.module == module)
        .map(|((group, name), _)| format!("{group}:{name}"))
        .collect();
    let mut errors = Vec::new();
    for promised in &d.provides {
        if registered.contains(promised) {
            continue;
        }
        let group = promised.split(':').next().unwrap_or_default();
        let mut same_group: Vec<&str> = registered
            .iter()
            .filter(|r| r.split(':').next() == Some(group))
            .map(String::as_str)
            .collect();
        same_group.sort_unstable();
        let got = match same_group.as_slice() {
            [] => format!("no {group} provider"),
            found => found.join(", "),
        };
        errors.push(format!(
            "module {}: its descriptor {} provides {promised}, but the module registered {got}; make `provides` list what the module registers (or fix the name the module registers)",
            d.name,
            d.path.display()
        ));
    }
    errors
}

/// Routes the configuration's module sections to their modules, then runs
/// post_config. Needs the frozen registry, so modules can look up providers.
/// Every stage runs whatever the one before found, so one pass reports
/// every problem: a table no module claims, each module's sections, and
/// the wiring post_config checks (schemes, balancers, lbmethods).
pub fn configure(
    registry: &'static Registry,
    config: &Config,
    available: &[Descriptor],
    enabled: &[Descriptor],
) -> Result<(), Vec<String>> {
    operate::set_available(available);
    let claims: Vec<(String, String)> = registry
        .claims
        .iter()
        .map(|c| (c.path.clone(), registry.modules[c.module].name.clone()))
        .collect();
    let mut sections: Vec<modproxy_config::Section> = enabled
        .iter()
        .filter_map(modproxy_config::module_defaults)
        .collect();
    let (routed, unclaimed) = modproxy_config::route_sections(config, &claims, available);
    sections.extend(routed);
    let mut errors: Vec<String> = unclaimed.iter().map(ToString::to_string).collect();
    for s in &sections {
        let Some(claim) = registry
            .claims
            .iter()
            .find(|c| c.path == s.path && registry.modules[c.module].name == s.module)
        else {
            continue; // defaults for a module that claims no `defaults` section
        };
        let text = wrap_value(&s.value);
        let file = s.file.display().to_string();
        if let Err(e) = host_api::call_section(claim, &s.path, s.vhost, &file, &s.key, &text) {
            errors.extend(e);
        }
    }
    for hook in registry.hooks(HookKind::PostConfig) {
        if let Err(e) = host_api::call_post_config(hook) {
            let name = &registry.modules[hook.module].name;
            errors.extend(e.into_iter().map(|m| format!("module {name}: {m}")));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Runs every child_init hook: the server has started serving, on the
/// main worker's runtime, where modules start their background tasks.
pub fn start_serving(registry: &Registry) {
    for hook in registry.hooks(HookKind::ChildInit) {
        host_api::call_child_init(hook);
    }
}

/// Sections travel as `value = ...` (TOML has no bare top-level values).
fn wrap_value(value: &toml::Value) -> String {
    let mut t = toml::Table::new();
    t.insert("value".into(), value.clone());
    toml::to_string(&t).unwrap_or_default()
}
