//! Apache's value spellings read as modproxy's: On/Off, seconds, sizes,
//! addresses, and why a directive modproxy has no key for is skipped.

/// `On` / `Off`, any case.
pub fn on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?} is not On or Off")),
    }
}

/// A whole number.
pub fn whole(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a whole number, which modproxy needs here"))
}

/// Seconds as httpd writes them: `30`, `30s`, `1500ms` (whole seconds
/// only: modproxy counts in seconds), `2mi`, `1h`.
pub fn seconds(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a time in seconds"))?;
    match unit {
        "" | "s" => Ok(n),
        "mi" => Ok(n * 60),
        "h" => Ok(n * 3600),
        "ms" if (n / 1000) * 1000 == n => Ok(n / 1000),
        "ms" => Err(format!(
            "{s}: modproxy counts whole seconds; write {}",
            n.div_ceil(1000).max(1)
        )),
        _ => Err(format!("{s:?} is not a time in seconds")),
    }
}

/// `*:80`, `_default_:443`, `127.0.0.1:8080`, `[::1]:80`, `80`, `*` →
/// (host, port): host `None` for a bare port.
pub fn host_port(addr: &str) -> Option<(Option<String>, Option<u16>)> {
    if let Ok(port) = addr.parse::<u16>() {
        return Some((None, Some(port)));
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some("*") => None,
            Some(p) => Some(p.parse().ok()?),
            None if tail.is_empty() => None,
            None => return None,
        };
        return Some((Some(host.to_string()), port));
    }
    match addr.rsplit_once(':') {
        Some((host, "*")) => Some((Some(host.to_string()), None)),
        Some((host, port)) => Some((Some(host.to_string()), Some(port.parse().ok()?))),
        None => Some((Some(addr.to_string()), None)),
    }
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// `ip:port` as modproxy's `listen` takes it; no ip means every IPv4 address.
pub fn socket(ip: Option<&str>, port: u16) -> String {
    match ip {
        Some(ip) if ip.contains(':') => format!("[{ip}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => format!("0.0.0.0:{port}"),
    }
}

/// ServerName's host: `https://www.example.com:443` → `www.example.com`.
pub fn server_name(s: &str) -> String {
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = match s.strip_prefix('[') {
        Some(v6) => return v6.split(']').next().unwrap_or("").to_string(),
        None => s,
    };
    s.split(':').next().unwrap_or("").to_string()
}

/// Why modproxy has no key for a directive.
pub fn why_not(key: &str, text: &str) -> String {
    let name = text
        .trim_start_matches('<')
        .split(|c: char| c.is_whitespace() || c == '>')
        .next()
        .unwrap_or(key);
    let files = "modproxy serves no files, only what its pass rules send to backends";
    let reason = match key {
        "documentroot" | "directory" | "directorymatch" | "files" | "filesmatch" | "alias"
        | "aliasmatch" | "scriptalias" | "directoryindex" | "options" | "allowoverride"
        | "accessfilename" | "addtype" | "addhandler" | "addoutputfilter" | "errordocument"
        | "indexoptions" | "typesconfig" | "addcharset" | "adddefaultcharset" => files,
        "user" | "group" => "modproxy runs as the user who starts it (under systemd: User= and Group=)",
        "serveradmin" => "modproxy's error pages name no administrator",
        k if k.starts_with("rewrite") => "modproxy has no mod_rewrite: write the mapping as ProxyPass or ProxyPassMatch rules",
        "header" | "requestheader" => "modproxy has no mod_headers (it adds X-Forwarded-For, -Host, -Server and -Proto itself: add_headers)",
        "require" | "order" | "allow" | "deny" | "satisfy" | "requireall" | "requireany"
        | "requirenone" | "authtype" | "authname" | "authuserfile" | "limit" | "limitexcept" => {
            "modproxy has no access control besides the balancer manager's ([vhost.balancer_manager] allow)"
        }
        "keepalive" | "maxkeepaliverequests" => "modproxy always keeps client connections alive; limits.keepalive_timeout bounds how long one idles",
        "startservers" | "minsparethreads" | "maxsparethreads" | "minspareservers"
        | "maxspareservers" | "threadsperchild" | "threadlimit" | "serverlimit"
        | "maxconnectionsperchild" | "maxrequestsperchild" | "asyncrequestworkerfactor" => {
            "modproxy's runtime is not an MPM: `workers` sets its threads and limits.max_connections its connections"
        }
        "logformat" => "modproxy's access log formats are fixed: log.access_format = combined, common or json",
        "proxy" | "proxymatch" => "modproxy has no per-target settings besides balancers: <Proxy balancer://…> is what it reads",
        "location" | "locationmatch" => "modproxy reads ProxyPass, ProxyPassReverse and SetHandler balancer-manager in <Location>; nothing else",
        "sethandler" => "modproxy's only handlers are the proxy and the balancer manager",
        "if" | "elseif" | "else" | "ifversion" | "iffile" | "ifdirective" | "ifsection" => {
            "modproxy import evaluates <IfModule> and <IfDefine> only: resolve this condition by hand"
        }
        k if k.starts_with("hc") || k == "proxyhctemplate" || k == "proxyhcexpr" => {
            "health checks (mod_proxy_hcheck) are not in modproxy yet"
        }
        "hostnamelookups" => "modproxy never looks up client host names",
        "defaultruntimedir" | "mutex" => "modproxy keeps its runtime files under its server root (run/)",
        "servertokens" | "serversignature" => "modproxy's Server header and error pages are fixed",
        "traceenable" => "modproxy answers TRACE as any method: it forwards it",
        _ => "",
    };
    if reason.is_empty() {
        format!("modproxy has no equivalent of {name}")
    } else {
        reason.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_switches() {
        assert_eq!(seconds("30"), Ok(30));
        assert_eq!(seconds("2000ms"), Ok(2));
        assert_eq!(seconds("2mi"), Ok(120));
        assert!(seconds("1500ms").unwrap_err().contains("write 2"));
        assert!(seconds("soon").is_err());
        assert_eq!(on_off("ON"), Ok(true));
        assert!(on_off("yes").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("*:80"), Some((Some("*".into()), Some(80))));
        assert_eq!(host_port("80"), Some((None, Some(80))));
        assert_eq!(
            host_port("[::1]:8443"),
            Some((Some("::1".into()), Some(8443)))
        );
        assert_eq!(
            host_port("_default_"),
            Some((Some("_default_".into()), None))
        );
        assert_eq!(host_port("*:x"), None);
        assert_eq!(socket(Some("::1"), 80), "[::1]:80");
        assert_eq!(socket(None, 80), "0.0.0.0:80");
        assert_eq!(
            server_name("https://www.example.com:443"),
            "www.example.com"
        );
        assert_eq!(server_name("example.com"), "example.com");
    }
}
