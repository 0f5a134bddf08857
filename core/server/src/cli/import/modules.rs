//! Apache's module names (`proxy_module`, `mod_proxy.c`, `mod_proxy_http`)
//! and what modproxy has for each: the set `<IfModule>` is evaluated
//! against and what a `LoadModule` line becomes.

/// The modules modproxy ships (mods-available/), by the name `enmod` takes.
pub const SHIPPED: &[&str] = &[
    "proxy",
    "proxy_http",
    "proxy_balancer",
    "proxy_wstunnel",
    "proxy_hcheck",
    "proxy_fcgi",
    "proxy_connect",
    "deflate",
    "cache",
    "proxy_ajp",
    "proxy_ftp",
    "proxy_discovery",
    "proxy_http2",
    "lbmethod_byrequests",
    "lbmethod_bybusyness",
    "lbmethod_bytraffic",
    "lbmethod_ewma",
];

/// Compiled into Debian's apache2 (`apache2 -l`): always present there.
const BUILT_IN: &[&str] = &[
    "core",
    "http_core",
    "so",
    "watchdog",
    "log_config",
    "logio",
    "version",
    "unixd",
];

/// Apache modules whose job modproxy's core does itself.
const IN_CORE: &[(&str, &str)] = &[
    (
        "ssl",
        "TLS is built into modproxy's core (tls_certificate / tls_key)",
    ),
    ("so", "modules load through mods-enabled/ (modproxy enmod)"),
];

/// `proxy_module`, `mod_proxy.c`, `mod_proxy`, `mod_proxy.so` → `proxy`.
pub fn normalise(name: &str) -> String {
    let name = name.trim();
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name
        .strip_suffix(".c")
        .or_else(|| name.strip_suffix(".so"))
        .unwrap_or(name);
    let name = name.strip_suffix("_module").unwrap_or(name);
    name.strip_prefix("mod_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// What modproxy has for the Apache module `name` (normalised).
pub enum Equivalent {
    /// A module of the same job: `modproxy enmod NAME`.
    Module(&'static str),
    /// Done by modproxy's core; the text says how.
    Core(&'static str),
    None,
}

pub fn equivalent(name: &str) -> Equivalent {
    if let Some(m) = SHIPPED.iter().find(|m| **m == name) {
        return Equivalent::Module(m);
    }
    if let Some((_, how)) = IN_CORE.iter().find(|(m, _)| *m == name) {
        return Equivalent::Core(how);
    }
    Equivalent::None
}

/// Whether `<IfModule name>` holds for a configuration that loads no
/// module itself (a lone vhost file): the modules modproxy has, and
/// Apache's built-in ones.
pub fn present_without_load_module(name: &str) -> bool {
    BUILT_IN.contains(&name) || !matches!(equivalent(name), Equivalent::None)
}

/// Whether `name` is compiled into apache2 (present whatever LoadModule says).
pub fn built_in(name: &str) -> bool {
    BUILT_IN.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_names_the_same_module() {
        for s in [
            "proxy_http_module",
            "mod_proxy_http.c",
            "mod_proxy_http",
            "/usr/lib/apache2/modules/mod_proxy_http.so",
            "proxy_http",
        ] {
            assert_eq!(normalise(s), "proxy_http", "{s}");
        }
        assert_eq!(normalise("mod_ssl.c"), "ssl");
    }

    #[test]
    fn the_shipped_list_is_mods_available() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mods-available");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        let mut shipped: Vec<&str> = SHIPPED.to_vec();
        shipped.sort();
        assert_eq!(names, shipped);
    }

    #[test]
    fn presence_without_load_module() {
        assert!(present_without_load_module("proxy_balancer"));
        assert!(present_without_load_module("ssl"));
        assert!(present_without_load_module("log_config"));
        assert!(!present_without_load_module("rewrite"));
    }
}
