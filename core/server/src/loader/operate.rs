//! Host services for operating the server (appended to the `HostApi`
//! table): the server's paths, listing a provider group, which available
//! module provides what, the Prometheus text with every module's `metrics`
//! lines, and `modproxy status`'s balancer table from the balancer provider.

use super::registry::{frozen, Registry};
use modproxy_api::abi::{server_file as which_file, AbiStr, HeaderVisitor};
use std::ffi::c_void;
use std::path::Path;
use std::sync::OnceLock;

/// SERVER_ROOT and the config file, set once before modules load.
static SERVER_FILES: OnceLock<[String; 2]> = OnceLock::new();

/// Records `-d` and `-f` for modules that keep files beside the config.
pub fn set_server_files(root: &Path, config: &Path) {
    let _ = SERVER_FILES.set([root.display().to_string(), config.display().to_string()]);
}

/// SERVER_ROOT, for files named relative to it (`tls_ca_file`).
pub fn server_root() -> Option<std::path::PathBuf> {
    SERVER_FILES.get().map(|f| std::path::PathBuf::from(&f[0]))
}

host_fn! {
    pub fn server_file(which: u32) -> AbiStr = AbiStr::EMPTY;
    {
        let Some(files) = SERVER_FILES.get() else {
            return AbiStr::EMPTY;
        };
        match which {
            which_file::SERVER_ROOT => AbiStr::new(files[0].as_bytes()),
            which_file::CONFIG => AbiStr::new(files[1].as_bytes()),
            _ => AbiStr::EMPTY,
        }
    }
}

/// `(group:name, module)` for every `provides` of every available
/// descriptor, set once before sections are handed out.
static PROVIDES: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Records what each descriptor in `mods-available/` says it provides.
pub fn set_available(available: &[modproxy_config::Descriptor]) {
    let provides = available
        .iter()
        .flat_map(|d| d.provides.iter().map(|p| (p.clone(), d.name.clone())))
        .collect();
    let _ = PROVIDES.set(provides);
}

host_fn! {
    pub fn provider_module(group: AbiStr, name: AbiStr) -> AbiStr = AbiStr::EMPTY;
    {
        // SAFETY: the ABI makes AbiStr arguments valid for the call.
        let wanted = unsafe { format!("{}:{}", group.to_str_lossy(), name.to_str_lossy()) };
        PROVIDES
            .get()
            .and_then(|all| all.iter().find(|(p, _)| *p == wanted))
            .map_or(AbiStr::EMPTY, |(_, module)| AbiStr::new(module.as_bytes()))
    }
}

fn names_in<'a>(registry: &'a Registry, group: &str) -> Vec<&'a String> {
    let mut names: Vec<&String> = registry
        .providers
        .keys()
        .filter(|(g, _)| g == group)
        .map(|(_, n)| n)
        .collect();
    names.sort();
    names
}

host_fn! {
    pub fn providers_visit(group: AbiStr, visitor: HeaderVisitor, ud: *mut c_void) = ();
    {
        let Some(registry) = frozen() else { return };
        // SAFETY: the ABI makes AbiStr arguments valid for the call.
        let group = unsafe { group.to_str_lossy() };
        for name in names_in(registry, &group) {
            visitor(ud, AbiStr::new(name.as_bytes()), AbiStr::EMPTY);
        }
    }
}

host_fn! {
    pub fn metrics_render(visitor: HeaderVisitor, ud: *mut c_void) = ();
    {
        let Some(registry) = frozen() else { return };
        let core = crate::metrics::render(registry);
        visitor(ud, AbiStr::new(core.as_bytes()), AbiStr::EMPTY);
        for name in names_in(registry, modproxy_api::metrics::GROUP) {
            let key = (modproxy_api::metrics::GROUP.to_string(), name.clone());
            if let Some(p) = registry.providers.get(&key) {
                // SAFETY: providers in the metrics group are registered by
                // modproxy_api::metrics::register_metrics and live forever.
                unsafe { modproxy_api::metrics::call_source(p.raw.vtable, p.raw.data, visitor, ud) };
            }
        }
    }
}

/// The balancer provider's table of balancers and members, if one is loaded.
pub fn balancer_status(registry: &Registry) -> Option<String> {
    use modproxy_api::proxy::{BALANCER_GROUP, BALANCER_NAME};
    let key = (BALANCER_GROUP.to_string(), BALANCER_NAME.to_string());
    let p = registry.providers.get(&key)?;
    // SAFETY: the provider under this key is registered by
    // modproxy_api::proxy::register_balancer and lives forever.
    unsafe { modproxy_api::proxy::call_status_table(p.raw.vtable, p.raw.data) }
}
