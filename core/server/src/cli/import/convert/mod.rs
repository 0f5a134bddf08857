//! Turns evaluated Apache directives into modproxy's keys: the main
//! server's settings, each `<VirtualHost>` with what it inherits from the
//! main server (as httpd merges them), and its listen addresses resolved
//! against the `Listen` lines. Every directive either becomes a key, or is
//! reported with why it was not; `proxy.rs` does mod_proxy's directives.

pub mod model;
mod proxy;
pub mod values;

use super::eval::Directive;
use super::modules::{self, Equivalent};
use super::Report;
use model::{Keys, Model, Origin, Scope};
use std::path::{Path, PathBuf};
use toml::Value;
use values::{seconds, whole};

pub struct Converter<'r> {
    model: Model,
    main: Scope,
    vhosts: Vec<Scope>,
    report: &'r mut Report,
    /// httpd's ServerRoot: relative paths in the configuration are under it.
    server_root: PathBuf,
}

/// The model of `directives` (a whole evaluated configuration).
pub fn convert(directives: &[Directive], server_root: &Path, report: &mut Report) -> Model {
    let mut c = Converter {
        model: Model::default(),
        main: Scope::default(),
        vhosts: Vec::new(),
        report,
        server_root: server_root.to_path_buf(),
    };
    for d in directives {
        c.top(d);
    }
    c.finish();
    c.model
}

pub fn origin(d: &Directive) -> Origin {
    Origin {
        at: d.at.clone(),
        text: d.text.clone(),
    }
}

impl Converter<'_> {
    fn done(&mut self, d: &Directive) {
        self.report.converted(&d.at);
    }

    fn skip(&mut self, d: &Directive, why: &str) {
        let text = match &d.block {
            Some(inner) if !inner.is_empty() => {
                format!("{} (and the {} directives it holds)", d.text, count(inner))
            }
            _ => d.text.clone(),
        };
        self.report.skip(&d.at, &text, why);
    }

    /// A part of `d` (one parameter) that was not converted.
    fn skip_part(&mut self, d: &Directive, part: &str, why: &str) {
        self.report
            .skip_part(&d.at, &format!("{}: {part}", d.text), why);
    }

    fn path(&self, p: &str) -> String {
        self.server_root.join(p).display().to_string()
    }

    fn top(&mut self, d: &Directive) {
        match d.key.as_str() {
            "virtualhost" => self.virtual_host(d),
            "listen" => self.listen(d),
            "loadmodule" => self.load_module(d),
            "ifmodule" if !holds_known(d) => self.lacking_module(d),
            "ifmodule" => {
                for inner in d.block.as_deref().unwrap_or_default() {
                    self.top(inner);
                }
            }
            _ => {
                let mut main = std::mem::take(&mut self.main);
                self.in_server(&mut main, d, true);
                self.main = main;
            }
        }
    }

    fn virtual_host(&mut self, d: &Directive) {
        if d.args.is_empty() {
            return self.skip(d, "<VirtualHost> needs an address, e.g. <VirtualHost *:80>");
        }
        let mut scope = Scope {
            origin: Some(origin(d)),
            addrs: d.args.clone(),
            ..Scope::default()
        };
        self.done(d);
        for inner in d.block.as_deref().unwrap_or_default() {
            self.in_server(&mut scope, inner, false);
        }
        self.vhosts.push(scope);
    }

    fn listen(&mut self, d: &Directive) {
        let Some(addr) = d.args.first() else {
            return self.skip(d, "Listen needs a port or an address and port");
        };
        if d.args.len() > 1
            && !d.args[1].eq_ignore_ascii_case("http")
            && !d.args[1].eq_ignore_ascii_case("https")
        {
            self.skip_part(
                d,
                &d.args[1],
                "modproxy speaks http and https only; the listener is kept",
            );
        }
        match values::host_port(addr) {
            Some((host, Some(port))) if host.is_none() || values::is_ip(host.as_deref().unwrap_or("")) => {
                self.model.listens.push((host, port, origin(d)));
                self.done(d);
            }
            _ => self.skip(d, "modproxy listens on IP addresses: write Listen PORT or Listen IP:PORT (host names are not resolved)"),
        }
    }

    fn load_module(&mut self, d: &Directive) {
        let Some(name) = d.args.first() else {
            return self.skip(d, "LoadModule needs a module name and a file");
        };
        let name = modules::normalise(name);
        match modules::equivalent(&name) {
            Equivalent::Module(m) => {
                self.model.load_modules.push((origin(d), m.to_string()));
                self.done(d);
            }
            Equivalent::Core(how) => {
                self.report.note(&d.at, format!("mod_{name}: {how}"));
                self.done(d)
            }
            Equivalent::None => {
                let why = if name.starts_with("mpm_") {
                    "modproxy's runtime is not an MPM: `workers` sets its threads".to_string()
                } else {
                    format!("modproxy has no mod_{name}")
                };
                self.skip(d, &why)
            }
        }
    }

    /// A true `<IfModule>` of a module modproxy lacks, holding nothing
    /// the import converts: one report line for the block.
    fn lacking_module(&mut self, d: &Directive) {
        let name = modules::normalise(d.args.first().map(String::as_str).unwrap_or(""));
        self.skip(
            d,
            &format!(
                "modproxy has no mod_{name}, and nothing in this block is a directive modproxy has"
            ),
        );
    }

    /// A directive of the main server (`main`) or of one vhost.
    fn in_server(&mut self, scope: &mut Scope, d: &Directive, main: bool) {
        let o = origin(d);
        let one = d.args.first().cloned().unwrap_or_default();
        match d.key.as_str() {
            "ifmodule" if !holds_known(d) => self.lacking_module(d),
            "ifmodule" => {
                for inner in d.block.as_deref().unwrap_or_default() {
                    self.in_server(scope, inner, main);
                }
            }
            "servername" => {
                let name = values::server_name(&one);
                if name.is_empty() {
                    return self.skip(d, "ServerName needs a host name");
                }
                if main {
                    self.model.top.set("server_name", &o, Value::String(name.clone()));
                }
                scope.core.set("server_name", &o, Value::String(name));
                self.done(d);
            }
            "serveralias" => {
                for a in &d.args {
                    if a.contains(['*', '?']) {
                        self.skip_part(d, a, "modproxy matches host names exactly: list each name the wildcard stood for");
                    } else {
                        scope.aliases.push((o.clone(), a.clone()));
                    }
                }
                self.done(d);
            }
            "sslengine" => match one.to_ascii_lowercase().as_str() {
                "on" => {
                    scope.ssl_engine = Some((o, true));
                    self.done(d);
                }
                "off" => {
                    scope.ssl_engine = Some((o, false));
                    self.done(d);
                }
                _ => self.skip(d, "modproxy's TLS is on or off: write SSLEngine on"),
            },
            "sslcertificatefile" => {
                scope.certificate = Some(model::Item {
                    origin: o,
                    value: Value::String(self.path(&one)),
                });
                self.done(d);
            }
            "sslcertificatekeyfile" => {
                scope.key = Some(model::Item {
                    origin: o,
                    value: Value::String(self.path(&one)),
                });
                self.done(d);
            }
            "sslcertificatechainfile" => self.skip(d, "tls_certificate is the whole chain: append this file to the certificate file"),
            "sslproxyengine" => self.done(d),
            "sslproxyverify" => {
                if one.eq_ignore_ascii_case("none") || one.eq_ignore_ascii_case("optional_no_ca") {
                    scope.backend_tls.set("tls_verify", &o, Value::Boolean(false));
                }
                self.done(d);
            }
            "sslproxycacertificatefile" => {
                scope.backend_tls.set("tls_ca_file", &o, Value::String(self.path(&one)));
                self.done(d);
            }
            k if k.starts_with("ssl") => self.skip(d, "modproxy's TLS takes a certificate and a key (tls_certificate, tls_key); protocols and ciphers are rustls's safe defaults"),
            "allowencodedslashes" => {
                let v = match one.to_ascii_lowercase().as_str() {
                    "on" => Value::Boolean(true),
                    "off" => Value::Boolean(false),
                    "nodecode" => Value::String("nodecode".into()),
                    _ => return self.skip(d, "AllowEncodedSlashes is On, Off or NoDecode"),
                };
                scope.core.set("allow_encoded_slashes", &o, v);
                self.done(d);
            }
            "protocols" => {
                // httpd's names are modproxy's; HTTP/1.1 is always served.
                let mut list: Vec<Value> = Vec::new();
                let mut unknown = Vec::new();
                for p in &d.args {
                    match p.to_ascii_lowercase().as_str() {
                        name @ ("h2" | "h2c" | "http/1.1") => list.push(Value::String(name.into())),
                        _ => unknown.push(p.as_str()),
                    }
                }
                if !list.iter().any(|v| v.as_str() == Some("http/1.1")) {
                    list.push(Value::String("http/1.1".into()));
                }
                scope.core.set("protocols", &o, Value::Array(list));
                if unknown.is_empty() {
                    self.done(d);
                } else {
                    let names = unknown.join(", ");
                    self.skip(d, &format!("modproxy serves h2, h2c and http/1.1; {names} is not offered"));
                }
            }
            "timeout" | "keepalivetimeout" | "limitrequestline" | "limitrequestfieldsize" | "limitrequestfields" | "limitrequestbody" | "maxrequestworkers" | "maxclients" | "acceptfilter" | "loglevel" | "errorlog" | "customlog" | "bufferedlogs" => {
                if main {
                    self.global(d)
                } else {
                    self.skip(d, "modproxy sets this for the whole server, in the main file ([limits], [log]); set it outside <VirtualHost>")
                }
            }
            "listen" | "loadmodule" | "virtualhost" => self.skip(d, "belongs in the main server, not inside <VirtualHost>"),
            "pidfile" => self.skip(d, "this is Apache's pid file: `modproxy stop` would signal Apache through it; modproxy keeps its own (pid_file, default run/modproxy.pid)"),
            _ => {
                if !proxy::directive(self, scope, d, None) {
                    self.unsupported(d)
                }
            }
        }
    }

    /// Server-wide settings: `[limits]`, `[log]`.
    fn global(&mut self, d: &Directive) {
        let o = origin(d);
        let one = d.args.first().cloned().unwrap_or_default();
        let limit = |key: &str| match key {
            "timeout" => Some("timeout"),
            "keepalivetimeout" => Some("keepalive_timeout"),
            "limitrequestline" => Some("request_line"),
            "limitrequestfieldsize" => Some("request_field_size"),
            "limitrequestfields" => Some("request_fields"),
            "limitrequestbody" => Some("request_body"),
            "maxrequestworkers" | "maxclients" => Some("max_connections"),
            _ => None,
        };
        if let Some(key) = limit(&d.key) {
            let n = if key.ends_with("timeout") {
                seconds(&one)
            } else {
                whole(&one)
            };
            return match n {
                Ok(n) => {
                    self.model.limits.set(key, &o, Value::Integer(n as i64));
                    self.done(d)
                }
                Err(why) => self.skip(d, &why),
            };
        }
        match d.key.as_str() {
            "acceptfilter" => match (one.as_str(), d.args.get(1).map(String::as_str)) {
                ("http", Some("data")) | ("http", Some("httpready")) => {
                    self.model.limits.set("defer_accept", &o, Value::Integer(1));
                    self.done(d)
                }
                ("http", Some("none")) => {
                    self.model.limits.set("defer_accept", &o, Value::Integer(0));
                    self.done(d)
                }
                _ => self.skip(d, "modproxy has one defer_accept for every listener, set from AcceptFilter http data|none"),
            },
            "loglevel" => {
                let level = match one.to_ascii_lowercase().as_str() {
                    "emerg" | "alert" | "crit" | "error" => "error",
                    "warn" => "warn",
                    "notice" | "info" => "info",
                    l if l == "debug" || l.starts_with("trace") => "debug",
                    _ => return self.skip(d, "LogLevel's first word is a level (error, warn, info, debug, …)"),
                };
                for part in &d.args[1..] {
                    self.skip_part(d, part, "modproxy has one level for the whole server, not one per module");
                }
                self.model.log.set("level", &o, Value::String(level.into()));
                self.done(d)
            }
            "errorlog" => {
                if one.starts_with('|') || one.starts_with("syslog") {
                    return self.skip(d, "modproxy writes its error log to a file or stderr; pipe stderr (`modproxy run 2>&1 | …`) instead");
                }
                self.model.log.set("error_log", &o, Value::String(self.path(&one)));
                self.done(d)
            }
            "bufferedlogs" => {
                if one.eq_ignore_ascii_case("on") {
                    // Apache flushes when its buffer fills; so does ours,
                    // and within access_log_flush (1 s) at the latest.
                    self.model.log.set("access_log_buffer", &o, Value::Integer(65536));
                }
                self.done(d)
            }
            "customlog" => {
                if self.model.log.get("access_log").is_some() {
                    return self.skip(d, "modproxy writes one access log; the first CustomLog is it");
                }
                if one.starts_with('|') {
                    return self.skip(d, "modproxy writes its access log to a file or stderr, not to a pipe");
                }
                let format = d.args.get(1).map(String::as_str).unwrap_or("common");
                if !["combined", "common"].contains(&format) {
                    return self.skip(d, "modproxy's access log formats are combined, common and json (log.access_format); this one is neither");
                }
                if let Some(cond) = d.args.get(2) {
                    self.skip_part(d, cond, "modproxy logs every request");
                }
                self.model.log.set("access_log", &o, Value::String(self.path(&one)));
                self.model.log.set("access_format", &o, Value::String(format.into()));
                self.done(d)
            }
            _ => self.unsupported(d),
        }
    }

    fn unsupported(&mut self, d: &Directive) {
        let why = values::why_not(&d.key, &d.text);
        self.skip(d, &why)
    }

    /// Inheritance, listen addresses, TLS: the vhosts as they are written.
    fn finish(&mut self) {
        let vhosts = std::mem::take(&mut self.vhosts);
        let mut claimed: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for v in &vhosts {
            let merged = self.inherit(v);
            let listen = self.addresses(v);
            if listen.is_empty() {
                if let Some(o) = &v.origin {
                    self.report.skip(&o.at, &o.text, "none of its addresses is one modproxy can listen on (an IP address or *, with a port)");
                }
                continue;
            }
            claimed.extend(listen.iter().cloned());
            out.push((merged, listen));
        }
        let unclaimed: Vec<String> = self
            .model
            .listens
            .iter()
            .map(|(ip, port, _)| values::socket(ip.as_deref(), *port))
            .filter(|a| !claimed.contains(a))
            .fold(Vec::new(), |mut acc, a| {
                if !acc.contains(&a) {
                    acc.push(a);
                }
                acc
            });
        let main = self.main.clone();
        let main_serves = !unclaimed.is_empty() || (vhosts.is_empty() && has_proxying(&main));
        if main_serves {
            let listen = if unclaimed.is_empty() {
                if let Some(at) = first_place(&main) {
                    self.report.note(&at, "no Listen and no <VirtualHost>: the main server listens on 0.0.0.0:80, as httpd's default".into());
                }
                vec!["0.0.0.0:80".to_string()]
            } else {
                unclaimed
            };
            let merged = self.inherit(&main);
            out.insert(0, (merged, listen));
        }
        for (scope, _) in &mut out {
            self.tls(scope);
            proxy::finish(scope);
        }
        self.model.vhosts = out;
    }

    /// `v` with what it inherits from the main server, as httpd merges.
    fn inherit(&self, v: &Scope) -> Scope {
        let main = &self.main;
        if v.origin.is_none() {
            return v.clone();
        }
        let mut base_core = Keys::default();
        for key in ["allow_encoded_slashes", "protocols"] {
            if let Some(i) = main.core.get(key) {
                base_core.set(key, &i.origin, i.value.clone());
            }
        }
        let cat =
            |a: &Vec<model::Entry>, b: &Vec<model::Entry>| a.iter().chain(b).cloned().collect();
        let mut out = Scope {
            origin: v.origin.clone(),
            addrs: v.addrs.clone(),
            core: v.core.over(&base_core),
            aliases: v.aliases.clone(),
            ssl_engine: v.ssl_engine.clone().or_else(|| main.ssl_engine.clone()),
            certificate: v.certificate.clone().or_else(|| main.certificate.clone()),
            key: v.key.clone().or_else(|| main.key.clone()),
            proxy: v.proxy.over(&main.proxy),
            pass: cat(&main.pass, &v.pass),
            location_pass: cat(&main.location_pass, &v.location_pass),
            pass_match: cat(&main.pass_match, &v.pass_match),
            location_match: cat(&main.location_match, &v.location_match),
            pass_reverse: cat(&main.pass_reverse, &v.pass_reverse),
            cookie_domain: cat(&main.cookie_domain, &v.cookie_domain),
            cookie_path: cat(&main.cookie_path, &v.cookie_path),
            balancers: v.balancers.clone(),
            manager: v.manager.clone().or_else(|| main.manager.clone()),
            backend_tls: v.backend_tls.over(&main.backend_tls),
        };
        let used = proxy::balancers_used(&out);
        for b in &main.balancers {
            if used.contains(&b.name) && !out.balancers.iter().any(|x| x.name == b.name) {
                out.balancers.push(b.clone());
            }
        }
        out
    }

    /// The addresses a vhost listens on: its `<VirtualHost>` addresses
    /// against the `Listen` lines, as httpd matches them.
    fn addresses(&mut self, v: &Scope) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let o = v.origin.clone().expect("a vhost has an origin");
        for addr in &v.addrs {
            let Some((host, port)) = values::host_port(addr) else {
                self.report.skip_part(
                    &o.at,
                    &format!("{}: {addr}", o.text),
                    "not an address: write *:PORT or IP:PORT",
                );
                continue;
            };
            let wildcard = matches!(host.as_deref(), None | Some("*") | Some("_default_"));
            if !wildcard && !values::is_ip(host.as_deref().unwrap_or("")) {
                self.report.skip_part(&o.at, &format!("{}: {addr}", o.text), "modproxy listens on IP addresses (host names are not resolved): write the address");
                continue;
            }
            let ip = if wildcard { None } else { host.clone() };
            let mut found = Vec::new();
            for (lip, lport, _) in &self.model.listens {
                if port.is_some_and(|p| p != *lport) {
                    continue;
                }
                match (&ip, lip) {
                    (None, l) => found.push(values::socket(l.as_deref(), *lport)),
                    (Some(i), None) => found.push(values::socket(Some(i), *lport)),
                    (Some(i), Some(l)) if i == l => found.push(values::socket(Some(i), *lport)),
                    _ => {}
                }
            }
            if found.is_empty() {
                let p = port.unwrap_or(80);
                if !self.model.listens.is_empty() {
                    self.report.note(&o.at, format!("no Listen covers {addr}: httpd would not serve this vhost there; modproxy will listen on port {p}"));
                }
                found.push(values::socket(ip.as_deref(), p));
            }
            for a in found {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    fn tls(&mut self, scope: &mut Scope) {
        let on = scope.ssl_engine.as_ref().is_some_and(|(_, on)| *on);
        match (on, &scope.certificate, &scope.key) {
            (true, Some(c), Some(k)) => {
                let (c, k) = (c.clone(), k.clone());
                scope.core.set("tls_certificate", &c.origin, c.value);
                scope.core.set("tls_key", &k.origin, k.value);
                // httpd serves HTTP/2 only where `Protocols` says so;
                // modproxy's TLS vhosts offer h2 by default: say what
                // httpd did.
                if scope.core.get("protocols").is_none() {
                    let http11 = Value::Array(vec![Value::String("http/1.1".into())]);
                    scope.core.set("protocols", &k.origin, http11);
                }
            }
            (true, _, _) => {
                let (o, _) = scope.ssl_engine.clone().expect("checked");
                self.report.skip(&o.at, &o.text, "TLS needs SSLCertificateFile and SSLCertificateKeyFile for this vhost: add them");
            }
            (false, c, k) => {
                for item in [c, k].into_iter().flatten() {
                    self.report.skip(&item.origin.at, &item.origin.text, "SSLEngine is not on for this vhost, so httpd serves it without TLS; so does modproxy");
                }
            }
        }
    }
}

/// Directives the converter turns into keys (in some context).
const KNOWN: &[&str] = &[
    "virtualhost",
    "listen",
    "loadmodule",
    "servername",
    "serveralias",
    "sslengine",
    "sslcertificatefile",
    "sslcertificatekeyfile",
    "sslproxyverify",
    "sslproxycacertificatefile",
    "allowencodedslashes",
    "protocols",
    "timeout",
    "keepalivetimeout",
    "limitrequestline",
    "limitrequestfieldsize",
    "limitrequestfields",
    "limitrequestbody",
    "maxrequestworkers",
    "maxclients",
    "acceptfilter",
    "loglevel",
    "errorlog",
    "customlog",
    "bufferedlogs",
    "proxypreservehost",
    "proxyaddheaders",
    "proxyerroroverride",
    "proxyrequests",
    "proxyvia",
    "proxytimeout",
    "proxypass",
    "proxypassmatch",
    "proxypassreverse",
    "proxypassreversecookiedomain",
    "proxypassreversecookiepath",
    "proxyset",
    "balancermember",
    "proxy",
    "location",
    "locationmatch",
];

/// Whether `d`'s block holds a directive the converter knows.
fn holds_known(d: &Directive) -> bool {
    d.block
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|i| KNOWN.contains(&i.key.as_str()) || (i.key == "ifmodule" && holds_known(i)))
}

fn has_proxying(s: &Scope) -> bool {
    first_place(s).is_some()
}

/// Where the first proxying directive of `s` is.
fn first_place(s: &Scope) -> Option<super::syntax::Place> {
    [&s.pass, &s.pass_match, &s.location_pass, &s.location_match]
        .iter()
        .find_map(|list| list.first().map(|e| e.origin.at.clone()))
        .or_else(|| s.manager.as_ref().map(|m| m.origin.at.clone()))
}

fn count(ds: &[Directive]) -> usize {
    ds.iter()
        .map(|d| 1 + d.block.as_deref().map_or(0, count))
        .sum()
}
