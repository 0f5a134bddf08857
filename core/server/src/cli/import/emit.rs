//! Writes the model as modproxy's TOML: the modules to enable, the
//! server-wide keys, then each vhost, every key or entry under a comment
//! naming the Apache file, line and directive it came from, and at the end
//! what was not converted and why.

use super::convert::model::{Entry, Item, Keys, Model, Origin, Scope};
use super::modules::SHIPPED;
use super::Report;
use std::fmt::Write;
use toml::Value;

pub fn toml(model: &Model, report: &Report, source: &str) -> String {
    let mut out = Out(String::new());
    out.line(&format!(
        "# modproxy configuration imported from {source} by `modproxy import`."
    ));
    out.line("# The comment above each key names the Apache file, line and directive it");
    out.line("# came from. What was not converted is listed at the end.");
    let needed = modules_needed(model);
    if !needed.is_empty() {
        out.line("#");
        out.line("# Enable the modules it uses (a2enmod's job):");
        out.line(&format!("#   modproxy enmod {}", needed.join(" ")));
    }
    for (o, m) in &model.load_modules {
        out.line(&format!("# {}: {} -> modproxy enmod {m}", o.at, o.text));
    }
    out.blank();
    out.keys(&model.top);
    for (table, keys) in [("limits", &model.limits), ("log", &model.log)] {
        if !keys.0.is_empty() {
            out.blank();
            out.line(&format!("[{table}]"));
            out.keys(keys);
        }
    }
    for (scope, listen) in &model.vhosts {
        vhost(&mut out, scope, listen, model);
    }
    if !report.skipped.is_empty() {
        out.blank();
        out.line(&format!("# Not converted ({}):", report.skipped.len()));
        for s in &report.skipped {
            out.line(&format!("#   {}: {}", s.at, s.text));
            out.line(&format!("#       {}", s.why));
        }
    }
    if !report.notes.is_empty() {
        out.blank();
        out.line("# Notes:");
        for (at, note) in &report.notes {
            out.line(&format!("#   {at}: {note}"));
        }
    }
    out.0
}

/// The modules the converted keys need, in enmod's order, with those
/// the LoadModule lines named.
pub fn modules_needed(model: &Model) -> Vec<String> {
    let mut want: Vec<String> = model.load_modules.iter().map(|(_, m)| m.clone()).collect();
    for (s, _) in &model.vhosts {
        let urls: Vec<&str> = all_entries(s).map(Entry::url).collect();
        let proxying = !urls.is_empty() || !s.proxy.0.is_empty() || s.manager.is_some();
        if proxying {
            want.push("proxy".into());
        }
        if urls
            .iter()
            .any(|u| u.starts_with("http://") || u.starts_with("https://"))
        {
            want.push("proxy_http".into());
        }
        let upgrade = all_entries(s).any(|e| e.get("upgrade").is_some());
        if upgrade
            || urls
                .iter()
                .any(|u| u.starts_with("ws://") || u.starts_with("wss://"))
        {
            want.push("proxy_wstunnel".into());
        }
        if !s.balancers.is_empty() || s.manager.is_some() {
            want.push("proxy_balancer".into());
        }
        for b in &s.balancers {
            let m = b
                .settings
                .get("lbmethod")
                .and_then(|i| i.value.as_str())
                .unwrap_or("byrequests");
            want.push(format!("lbmethod_{m}"));
        }
    }
    SHIPPED
        .iter()
        .filter(|m| want.iter().any(|w| w == *m))
        .map(|m| m.to_string())
        .collect()
}

fn all_entries(s: &Scope) -> impl Iterator<Item = &Entry> {
    s.pass
        .iter()
        .chain(&s.location_pass)
        .chain(&s.pass_match)
        .chain(&s.location_match)
        .chain(s.balancers.iter().flat_map(|b| &b.members))
}

fn vhost(out: &mut Out, s: &Scope, listen: &[String], model: &Model) {
    out.blank();
    if let Some(o) = &s.origin {
        out.comment(o);
    } else {
        out.line(
            "# the main server (outside any <VirtualHost>), on the Listen addresses no vhost takes",
        );
    }
    out.line("[[vhost]]");
    for (ip, port, o) in &model.listens {
        let addr = super::convert::values::socket(ip.as_deref(), *port);
        if listen.contains(&addr) {
            out.comment(o);
        }
    }
    let listen_value = match listen {
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    };
    out.line(&format!("listen = {listen_value}"));
    let mut core = s.core.clone();
    let names = &s.aliases;
    if let Some(name) = core.0.iter().position(|(k, _)| k == "server_name") {
        let item = core.0.remove(name);
        out.key(&item.0, &item.1);
    }
    if !names.is_empty() {
        out.line("server_alias = [");
        for (o, a) in names {
            out.line(&format!("    # {}: {}", o.at, o.text));
            out.line(&format!("    {},", Value::String(a.clone())));
        }
        out.line("]");
    }
    out.keys(&core);
    let lists: [(&str, Vec<&Entry>); 5] = [
        (
            "pass",
            s.location_pass.iter().rev().chain(&s.pass).collect(),
        ),
        (
            "pass_match",
            s.location_match.iter().rev().chain(&s.pass_match).collect(),
        ),
        ("pass_reverse", s.pass_reverse.iter().collect()),
        (
            "pass_reverse_cookie_domain",
            s.cookie_domain.iter().collect(),
        ),
        ("pass_reverse_cookie_path", s.cookie_path.iter().collect()),
    ];
    if !s.proxy.0.is_empty() || lists.iter().any(|(_, l)| !l.is_empty()) {
        out.blank();
        out.line("[vhost.proxy]");
        out.keys(&s.proxy);
        for (key, entries) in &lists {
            out.entries(key, entries);
        }
    }
    for b in &s.balancers {
        out.blank();
        out.comment(&b.origin);
        out.line("[[vhost.proxy.balancer]]");
        out.line(&format!("name = {}", Value::String(b.name.clone())));
        out.keys(&b.settings);
        out.entries("members", &b.members.iter().collect::<Vec<_>>());
    }
    if let Some(m) = &s.manager {
        out.blank();
        out.comment(&m.origin);
        out.line("[vhost.balancer_manager]");
        out.line(&format!("path = {}", Value::String(m.path.clone())));
        if let Some(allow) = &m.allow {
            out.key("allow", allow);
        }
    }
}

struct Out(String);

impl Out {
    fn line(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }

    fn blank(&mut self) {
        if !self.0.ends_with("\n\n") {
            self.0.push('\n');
        }
    }

    fn comment(&mut self, o: &Origin) {
        let _ = writeln!(self.0, "# {}: {}", o.at, o.text);
    }

    fn key(&mut self, key: &str, item: &Item) {
        self.comment(&item.origin);
        let _ = writeln!(self.0, "{key} = {}", item.value);
    }

    fn keys(&mut self, keys: &Keys) {
        for (k, item) in &keys.0 {
            self.key(k, item);
        }
    }

    fn entries(&mut self, key: &str, entries: &[&Entry]) {
        if entries.is_empty() {
            return;
        }
        self.line(&format!("{key} = ["));
        for e in entries {
            let _ = writeln!(self.0, "    # {}: {}", e.origin.at, e.origin.text);
            let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let _ = writeln!(self.0, "    {{ {} }},", fields.join(", "));
        }
        self.line("]");
    }
}
