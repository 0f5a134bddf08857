//! What an Apache configuration becomes before it is written out: the
//! main server and each virtual host as modproxy's keys, every value with
//! the directive it came from.

use super::super::syntax::Place;
use toml::Value;

/// The directive a key or entry came from, for the comment above it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub at: Place,
    pub text: String,
}

/// One key's value and where it came from.
#[derive(Debug, Clone)]
pub struct Item {
    pub origin: Origin,
    pub value: Value,
}

/// One inline table of an array (`pass`, `members`, …).
#[derive(Debug, Clone)]
pub struct Entry {
    pub origin: Origin,
    pub fields: Vec<(String, Value)>,
}

impl Entry {
    pub fn new(origin: Origin) -> Entry {
        Entry {
            origin,
            fields: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: Value) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.to_string(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn url(&self) -> &str {
        self.get("url").and_then(Value::as_str).unwrap_or("")
    }
}

/// Keys in the order they were first set; setting one again replaces it
/// (the last Apache directive wins), keeping the place of the new one.
#[derive(Debug, Clone, Default)]
pub struct Keys(pub Vec<(String, Item)>);

impl Keys {
    pub fn set(&mut self, key: &str, origin: &Origin, value: Value) {
        let item = Item {
            origin: origin.clone(),
            value,
        };
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = item,
            None => self.0.push((key.to_string(), item)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Item> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, i)| i)
    }

    /// These keys, then `base`'s that these do not set.
    pub fn over(&self, base: &Keys) -> Keys {
        let mut out = self.clone();
        for (k, item) in &base.0 {
            if out.get(k).is_none() {
                out.0.push((k.clone(), item.clone()));
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Balancer {
    pub origin: Origin,
    pub name: String,
    pub settings: Keys,
    pub members: Vec<Entry>,
}

/// `<Location PATH> SetHandler balancer-manager`.
#[derive(Debug, Clone)]
pub struct Manager {
    pub origin: Origin,
    pub path: String,
    pub allow: Option<Item>,
}

/// The main server or one `<VirtualHost>`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The `<VirtualHost>` line; `None` for the main server.
    pub origin: Option<Origin>,
    /// The `<VirtualHost>` addresses as written.
    pub addrs: Vec<String>,
    /// `server_name`, `server_alias`, `allow_encoded_slashes`.
    pub core: Keys,
    pub aliases: Vec<(Origin, String)>,
    pub ssl_engine: Option<(Origin, bool)>,
    pub certificate: Option<Item>,
    pub key: Option<Item>,
    /// `preserve_host`, `timeout`, `via`, …
    pub proxy: Keys,
    pub pass: Vec<Entry>,
    /// ProxyPass inside `<Location>`: httpd tries these first, the last
    /// matching section winning.
    pub location_pass: Vec<Entry>,
    pub pass_match: Vec<Entry>,
    pub location_match: Vec<Entry>,
    pub pass_reverse: Vec<Entry>,
    pub cookie_domain: Vec<Entry>,
    pub cookie_path: Vec<Entry>,
    pub balancers: Vec<Balancer>,
    pub manager: Option<Manager>,
    /// `tls_verify` / `tls_ca_file` from SSLProxyVerify and
    /// SSLProxyCACertificateFile, for every https:// and wss:// worker.
    pub backend_tls: Keys,
}

impl Scope {
    pub fn balancer(&mut self, name: &str, origin: &Origin) -> &mut Balancer {
        let i = match self.balancers.iter().position(|b| b.name == name) {
            Some(i) => i,
            None => {
                self.balancers.push(Balancer {
                    origin: origin.clone(),
                    name: name.to_string(),
                    settings: Keys::default(),
                    members: Vec::new(),
                });
                self.balancers.len() - 1
            }
        };
        &mut self.balancers[i]
    }
}

/// The whole configuration as modproxy keys.
#[derive(Debug, Default)]
pub struct Model {
    /// Top-level keys (`server_name`).
    pub top: Keys,
    pub limits: Keys,
    pub log: Keys,
    /// `Listen` addresses: (ip or None for every address, port, origin).
    pub listens: Vec<(Option<String>, u16, Origin)>,
    /// Every LoadModule line that names a module modproxy has.
    pub load_modules: Vec<(Origin, String)>,
    /// Vhosts ready to write: inheritance applied, listen addresses resolved.
    pub vhosts: Vec<(Scope, Vec<String>)>,
}
