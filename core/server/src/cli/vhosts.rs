//! `modproxy -S` (apachectl -S): the virtual hosts as parsed, grouped by
//! the address they listen on, with the default one of each address (the
//! first, which answers requests no name matches), then the server's files.

use super::Paths;
use modproxy_config::{LogTarget, Vhost};
use std::net::SocketAddr;

pub fn show(paths: &Paths) -> i32 {
    let config = match modproxy_config::load(&paths.server_root, &paths.config) {
        Ok(c) => c,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return 1;
        }
    };
    print!("{}", describe(&config, paths));
    0
}

fn describe(config: &modproxy_config::Config, paths: &Paths) -> String {
    let default_name = &config.server.server_name;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for v in &config.vhosts {
        for a in &v.listen {
            if !addrs.contains(a) {
                addrs.push(*a);
            }
        }
    }
    let place = |v: &Vhost| {
        let file = v.file.strip_prefix(&paths.server_root).unwrap_or(&v.file);
        format!("({} {})", file.display(), v.key_path())
    };
    let name = |v: &Vhost| {
        v.server_name
            .clone()
            .unwrap_or_else(|| default_name.clone())
    };
    let tls = |v: &Vhost| if v.tls.is_some() { " [TLS]" } else { "" };
    let mut out = String::from("VirtualHost configuration:\n");
    for addr in &addrs {
        let on: Vec<&Vhost> = config
            .vhosts
            .iter()
            .filter(|v| v.listen.contains(addr))
            .collect();
        let shown = addr.to_string();
        if let [only] = on.as_slice() {
            out.push_str(&format!(
                "{shown:<22} {} {}{}\n",
                name(only),
                place(only),
                tls(only)
            ));
            continue;
        }
        out.push_str(&format!("{shown:<22} is a NameVirtualHost\n"));
        out.push_str(&format!(
            "         default server {} {}\n",
            name(on[0]),
            place(on[0])
        ));
        for v in &on {
            out.push_str(&format!(
                "         port {} namevhost {} {}{}\n",
                addr.port(),
                name(v),
                place(v),
                tls(v)
            ));
            for alias in &v.server_alias {
                out.push_str(&format!("                 alias {alias}\n"));
            }
        }
    }
    let target = |t: &LogTarget| match t {
        LogTarget::Stderr => "stderr".to_string(),
        LogTarget::File(p) => p.display().to_string(),
    };
    let log = &config.server.log;
    out.push_str(&format!(
        "ServerRoot: \"{}\"\n",
        paths.server_root.display()
    ));
    out.push_str(&format!("Config: \"{}\"\n", paths.config.display()));
    for f in config.files.iter().skip(1) {
        out.push_str(&format!("Included: \"{}\"\n", f.display()));
    }
    out.push_str(&format!("Main ErrorLog: \"{}\"\n", target(&log.error_log)));
    out.push_str(&format!(
        "Main AccessLog: \"{}\"\n",
        log.access_log.as_ref().map_or("off".to_string(), target)
    ));
    out.push_str(&format!(
        "PidFile: \"{}\"\n",
        config.server.pid_file.display()
    ));
    out.push_str(&format!(
        "ControlSocket: \"{}\"\n",
        config.server.control_socket.display()
    ));
    out
}
