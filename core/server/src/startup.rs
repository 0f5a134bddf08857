//! Everything between reading the command line and serving: read the
//! config, load the enabled modules, hand out configuration sections.
//! `configtest` and `run` share it, so they always agree.

use crate::loader::{self, registry::Registry};
use modproxy_config::Config;
use std::path::Path;

/// A configuration with its modules loaded and configured.
pub struct Loaded {
    pub config: Config,
    pub registry: &'static Registry,
    /// Certificates of the TLS listeners, read and checked.
    pub tls: crate::server::tls::TlsListeners,
}

/// Loads config and modules; every problem is returned as one line.
pub fn load(server_root: &Path, config_path: &Path) -> Result<Loaded, Vec<String>> {
    let config = modproxy_config::load(server_root, config_path)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let enabled = modproxy_config::enabled(server_root)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let available = modproxy_config::available(server_root).map_err(|e| vec![e.to_string()])?;
    let registry = loader::load(&enabled)?.freeze();
    loader::configure(registry, &config, &available, &enabled)?;
    if config.vhosts.is_empty() {
        return Err(vec![format!(
            "{}: no [[vhost]] is defined, so there is nothing to listen on; add one with `listen = \"127.0.0.1:8000\"`",
            server_root.join(config_path).display()
        )]);
    }
    let tls = crate::server::tls::load(&config, server_root)?;
    Ok(Loaded {
        config,
        registry,
        tls,
    })
}
