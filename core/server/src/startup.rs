//! Everything between reading the command line and serving: read the
//! config, load the enabled modules, hand out configuration sections.
//! `configtest` and `run` share it, so they always agree.

use crate::loader::{self, registry::Registry};
use modproxy_config::{Config, Descriptor};
use std::path::Path;

/// A configuration with its modules loaded and configured.
pub struct Loaded {
    pub config: Config,
    pub registry: &'static Registry,
    /// Certificates of the TLS listeners, read and checked.
    pub tls: crate::server::tls::TlsListeners,
}

/// Loads config and modules; every problem is returned as one line. Each
/// stage runs on what the stages before it could read, so one run names
/// every problem (a user fixes them in one edit, not one restart each).
pub fn load(server_root: &Path, config_path: &Path) -> Result<Loaded, Vec<String>> {
    let (config, config_errors) = modproxy_config::load_partial(server_root, config_path);
    let mut errors: Vec<String> = config_errors.iter().map(ToString::to_string).collect();
    // Without the module set no section can be checked: stop there.
    let Some((registry, available, enabled)) = modules(server_root, &mut errors) else {
        return Err(errors);
    };
    let Some(config) = config else {
        return Err(errors);
    };
    if let Err(e) = loader::configure(registry, &config, &available, &enabled) {
        errors.extend(e);
    }
    // A mistyped [[vhost]] was reported already; "no vhost" would repeat it.
    if config.vhosts.is_empty() && config_errors.is_empty() {
        errors.push(format!(
            "{}: no [[vhost]] is defined, so there is nothing to listen on; add one with `listen = \"127.0.0.1:8000\"`",
            server_root.join(config_path).display()
        ));
    }
    let tls = crate::server::tls::load(&config, server_root).map_err(|e| errors.extend(e));
    match tls {
        Ok(tls) if errors.is_empty() => Ok(Loaded {
            config,
            registry,
            tls,
        }),
        _ => Err(errors),
    }
}

type Modules = (&'static Registry, Vec<Descriptor>, Vec<Descriptor>);

/// The enabled modules loaded and registered, and every descriptor; `None`
/// (with the problems added to `errors`) when the set cannot be loaded.
fn modules(server_root: &Path, errors: &mut Vec<String>) -> Option<Modules> {
    let lines = |errs: Vec<_>| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<String>>()
    };
    let enabled = modproxy_config::enabled(server_root).map_err(|e| errors.extend(lines(e)));
    let available = modproxy_config::available(server_root).map_err(|e| errors.push(e.to_string()));
    let (Ok(enabled), Ok(available)) = (enabled, available) else {
        return None;
    };
    match loader::load(&enabled) {
        Ok(registry) => Some((registry.freeze(), available, enabled)),
        Err(e) => {
            errors.extend(e);
            None
        }
    }
}
