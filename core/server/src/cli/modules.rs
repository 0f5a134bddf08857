//! a2enmod-style commands: enmod, dismod, ensite, dissite, and the module
//! listing (like `apachectl -M`).

use super::Paths;
use crate::loader;

pub enum Switch {
    EnableModule,
    DisableModule,
    EnableSite,
    DisableSite,
}

pub fn switch(paths: &Paths, what: Switch, args: &[String]) -> i32 {
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    let names: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    if names.is_empty() {
        eprintln!("name at least one module or site");
        return 2;
    }
    let root = &paths.server_root;
    let result = match what {
        Switch::EnableModule => modproxy_config::enable(root, &names),
        Switch::DisableModule => modproxy_config::disable(root, &names, force),
        Switch::EnableSite => modproxy_config::enable_site(root, &names),
        Switch::DisableSite => modproxy_config::disable_site(root, &names),
    };
    match result {
        Ok(messages) => {
            for m in messages {
                println!("{m}");
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

pub fn list(paths: &Paths) -> i32 {
    let available = match modproxy_config::available(&paths.server_root) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let enabled = match modproxy_config::enabled(&paths.server_root) {
        Ok(e) => e,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return 1;
        }
    };
    let registry = match loader::load(&enabled) {
        Ok(r) => r,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return 1;
        }
    };
    println!(
        "{:<22} {:<8} {:<8} {:<4} {:<48} PROVIDERS",
        "MODULE", "ENABLED", "VERSION", "ABI", "HOOKS"
    );
    for d in &available {
        match registry.modules.iter().position(|m| m.name == d.name) {
            Some(i) => {
                let m = &registry.modules[i];
                let (hooks, providers) = registry.describe(i);
                println!(
                    "{:<22} {:<8} {:<8} {:<4} {:<48} {}",
                    d.name,
                    "yes",
                    m.version,
                    m.abi_version,
                    hooks.join(","),
                    providers.join(",")
                );
            }
            None => println!(
                "{:<22} {:<8} {:<8} {:<4} {:<48} {}",
                d.name, "no", "-", "-", "-", d.description
            ),
        }
    }
    0
}
