//! modproxy's configuration: the main file and its includes, module descriptors, and the enabled module and site sets.
//!
//! Pure file logic: no sockets, no async runtime, no dlopen. It reads SERVER_ROOT and, for
//! enmod/dismod/ensite/dissite, writes symlinks there. Every error says what is wrong and what to do.
//! Unix only: the enabled sets are symlinks, as with Apache's a2enmod.
#![forbid(unsafe_code)]

mod config;
mod descriptor;
mod error;
mod links;
mod modules;
mod order;
mod sites;
mod switch;
#[cfg(test)]
mod testutil;

pub use config::route::{module_defaults, route_sections, Section};
pub use config::server::{
    AccessFormat, H2Limits, Limits, LogLevel, LogSettings, LogTarget, ServerSettings,
};
pub use config::vhost::{EncodedSlashes, Protocols, TlsFiles, Vhost};
pub use config::{load, load_partial, Config, ModuleTable};
pub use descriptor::{module_owning, module_providing, Descriptor};
pub use error::{ConfigError, Error};
pub use modules::{available, disable, enable, enabled};
pub use sites::{disable_site, enable_site, enabled_sites};
pub use switch::RESTART_HINT;
