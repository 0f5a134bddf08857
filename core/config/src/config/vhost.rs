//! `[[vhost]]` entries: the core reads `listen`, `server_name`, `server_alias`, `allow_encoded_slashes`, `protocols` and the TLS pair `tls_certificate` / `tls_key`; every other key belongs to a module.
use super::fields::Reader;
use crate::error::ConfigError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

const VHOST_KEYS: &[&str] = &[
    "listen",
    "server_name",
    "server_alias",
    "tls_certificate",
    "tls_key",
    "allow_encoded_slashes",
    "protocols",
];

/// `protocols` (Apache's `Protocols`): which HTTP versions a vhost
/// serves. HTTP/1.1 always; `h2` is HTTP/2 over TLS (chosen by ALPN),
/// `h2c` HTTP/2 in clear text with prior knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    pub h2: bool,
    pub h2c: bool,
}

/// `allow_encoded_slashes`: what the core does with `%2f` in a request
/// path (Apache's AllowEncodedSlashes, a core directive there too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EncodedSlashes {
    /// `false`, the default: answered 404.
    #[default]
    Off,
    /// `true`: decoded to `/`.
    On,
    /// `"nodecode"`: accepted and forwarded encoded.
    NoDecode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vhost {
    /// Position among all vhosts of the configuration (main file first, then includes in order).
    pub index: usize,
    /// Position among the vhosts of `file`, as used in key paths such as `vhost[0].listen`.
    pub index_in_file: usize,
    pub listen: Vec<SocketAddr>,
    pub server_name: Option<String>,
    pub server_alias: Vec<String>,
    pub encoded_slashes: EncodedSlashes,
    pub protocols: Protocols,
    /// PEM certificate chain and private key (relative to SERVER_ROOT):
    /// both or neither. Read and checked by the core's TLS setup.
    pub tls: Option<TlsFiles>,
    /// The file that defines this vhost.
    pub file: PathBuf,
    /// Module-owned keys, e.g. `proxy`; routed by `route_sections`.
    pub extra: Table,
}

/// A vhost's `tls_certificate` and `tls_key`, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl Vhost {
    /// `vhost[N]`, the key path of this vhost in its file.
    pub fn key_path(&self) -> String {
        format!("vhost[{}]", self.index_in_file)
    }
}

/// Parses the `vhost` value of one file; `first_index` is how many vhosts earlier files defined.
pub(crate) fn parse_all(
    value: &Value,
    file: &Path,
    first_index: usize,
    errors: &mut Vec<ConfigError>,
) -> Vec<Vhost> {
    let Value::Array(entries) = value else {
        let problem = format!("expected an array of tables, found {}", value.type_str());
        errors.push(ConfigError::new(
            file,
            "vhost",
            problem,
            "write each virtual host as [[vhost]], with two brackets",
        ));
        return Vec::new();
    };
    let mut vhosts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut r = Reader::new(file, &format!("vhost[{i}]."), errors);
        let Value::Table(table) = entry else {
            r.error(
                "",
                format!("expected a table, found {}", entry.type_str()),
                "write each virtual host as [[vhost]]",
            );
            continue;
        };
        let tls = tls(table, &mut r);
        vhosts.push(Vhost {
            index: first_index + i,
            index_in_file: i,
            listen: listen(table, &mut r),
            server_name: r.optional_string(table, "server_name"),
            server_alias: r.strings(table, "server_alias"),
            encoded_slashes: encoded_slashes(table, &mut r),
            protocols: protocols(table, tls.is_some(), &mut r),
            tls,
            file: file.to_path_buf(),
            extra: table
                .iter()
                .filter(|(k, _)| !VHOST_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    vhosts
}

fn tls(table: &Table, r: &mut Reader) -> Option<TlsFiles> {
    let certificate = r.optional_string(table, "tls_certificate");
    let key = r.optional_string(table, "tls_key");
    match (certificate, key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            certificate: c.into(),
            key: k.into(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            r.error(
                "tls_key",
                "missing: tls_certificate is set, so TLS needs the certificate's private key too",
                "add tls_key = \"tls/site.key\" (a PEM file, relative to SERVER_ROOT)",
            );
            None
        }
        (None, Some(_)) => {
            r.error(
                "tls_certificate",
                "missing: tls_key is set, so TLS needs the certificate chain too",
                "add tls_certificate = \"tls/site.crt\" (a PEM file, relative to SERVER_ROOT)",
            );
            None
        }
    }
}

/// Default: `["h2", "http/1.1"]` with TLS, `["http/1.1"]` without, as
/// Apache's mod_http2 and nginx's `http2 on` are used. `h2` on a plain
/// vhost or `h2c` on a TLS one has no effect (Apache accepts both too):
/// each applies where its transport is.
fn protocols(table: &Table, tls: bool, r: &mut Reader) -> Protocols {
    if !table.contains_key("protocols") {
        return Protocols {
            h2: tls,
            h2c: false,
        };
    }
    let mut out = Protocols {
        h2: false,
        h2c: false,
    };
    let mut http11 = false;
    for name in r.strings(table, "protocols") {
        match name.to_ascii_lowercase().as_str() {
            "h2" => out.h2 = true,
            "h2c" => out.h2c = true,
            "http/1.1" => http11 = true,
            _ => r.error(
                "protocols",
                format!("{name:?} is not a protocol modproxy serves"),
                "list some of \"h2\" (HTTP/2 over TLS), \"h2c\" (HTTP/2 in clear text) and \"http/1.1\"",
            ),
        }
    }
    if !http11 {
        r.error(
            "protocols",
            "\"http/1.1\" is missing: every vhost serves HTTP/1.1 clients",
            "add \"http/1.1\" to the list, e.g. protocols = [\"h2\", \"http/1.1\"]",
        );
    }
    out
}

fn encoded_slashes(table: &Table, r: &mut Reader) -> EncodedSlashes {
    match table.get("allow_encoded_slashes") {
        None | Some(Value::Boolean(false)) => EncodedSlashes::Off,
        Some(Value::Boolean(true)) => EncodedSlashes::On,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("nodecode") => EncodedSlashes::NoDecode,
        Some(other) => {
            let shown = match other {
                Value::String(s) => format!("{s:?}"),
                v => format!("{v} ({})", v.type_str()),
            };
            r.error(
                "allow_encoded_slashes",
                format!("{shown} is not a setting"),
                "write allow_encoded_slashes = false (%2f in a path is 404), true (decoded to /) or \"nodecode\" (accepted, forwarded encoded)",
            );
            EncodedSlashes::Off
        }
    }
}

fn listen(table: &Table, r: &mut Reader) -> Vec<SocketAddr> {
    if !table.contains_key("listen") {
        r.error(
            "listen",
            "missing: a virtual host needs an address to listen on",
            "add listen = \"127.0.0.1:8000\"",
        );
    }
    let mut addrs = Vec::new();
    for text in r.strings(table, "listen") {
        match text.parse() {
            Ok(addr) => addrs.push(addr),
            Err(_) => r.error(
                "listen",
                format!("{text:?} is not an IP address and port"),
                "write it like \"127.0.0.1:8000\", \"0.0.0.0:80\" or \"[::]:443\" (host names are not resolved)",
            ),
        }
    }
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> (Vec<Vhost>, Vec<String>) {
        let table: Table = src.parse().unwrap();
        let mut errors = Vec::new();
        let vhosts = parse_all(&table["vhost"], Path::new("s.toml"), 2, &mut errors);
        (vhosts, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn listen_takes_a_string_or_an_array_and_other_keys_are_extra() {
        let src = "[[vhost]]\nlisten = \"127.0.0.1:80\"\n[vhost.proxy]\na = 1\n[[vhost]]\nlisten = [\"[::1]:81\", \"0.0.0.0:82\"]\nserver_name = \"b\"\n";
        let (vhosts, errors) = parse_str(src);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (vhosts[1].index, vhosts[1].key_path()),
            (3, "vhost[1]".to_string())
        );
        assert_eq!(vhosts[1].listen.len(), 2);
        assert_eq!(vhosts[0].extra.keys().collect::<Vec<_>>(), ["proxy"]);
        assert_eq!(vhosts[1].server_name.as_deref(), Some("b"));
    }

    #[test]
    fn allow_encoded_slashes_is_off_true_or_nodecode() {
        let at = |v: &str| {
            let (vhosts, errors) =
                parse_str(&format!("[[vhost]]\nlisten = \"127.0.0.1:80\"\n{v}\n"));
            assert!(errors.is_empty(), "{errors:?}");
            vhosts[0].encoded_slashes
        };
        assert_eq!(at(""), EncodedSlashes::Off);
        assert_eq!(at("allow_encoded_slashes = false"), EncodedSlashes::Off);
        assert_eq!(at("allow_encoded_slashes = true"), EncodedSlashes::On);
        assert_eq!(
            at("allow_encoded_slashes = \"nodecode\""),
            EncodedSlashes::NoDecode
        );
        assert_eq!(
            at("allow_encoded_slashes = \"NoDecode\""),
            EncodedSlashes::NoDecode
        );
    }

    #[test]
    fn protocols_default_by_transport_and_are_checked() {
        let tls = "tls_certificate = \"a.crt\"\ntls_key = \"a.key\"\n";
        let at = |extra: &str| {
            let (vhosts, errors) =
                parse_str(&format!("[[vhost]]\nlisten = \"127.0.0.1:80\"\n{extra}\n"));
            (vhosts[0].protocols, errors)
        };
        assert_eq!(
            at("").0,
            Protocols {
                h2: false,
                h2c: false
            }
        );
        assert_eq!(
            at(tls).0,
            Protocols {
                h2: true,
                h2c: false
            }
        );
        assert_eq!(
            at("protocols = [\"h2c\", \"http/1.1\"]").0,
            Protocols {
                h2: false,
                h2c: true
            }
        );
        assert_eq!(
            at(&format!("{tls}protocols = [\"http/1.1\"]")).0,
            Protocols {
                h2: false,
                h2c: false
            }
        );
        let errors = at("protocols = [\"h3\", \"h2\"]").1;
        assert!(errors[0].contains("\"h3\" is not a protocol"), "{errors:?}");
        assert!(errors[1].contains("\"http/1.1\" is missing"), "{errors:?}");
    }

    #[test]
    fn bad_and_missing_listen_and_single_brackets_are_errors() {
        let (_, errors) =
            parse_str("[[vhost]]\nlisten = \"localhost:80\"\n[[vhost]]\nserver_name = \"x\"\n");
        assert!(
            errors[0].starts_with("s.toml: vhost[0].listen: \"localhost:80\" is not an IP address"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("vhost[1].listen: missing") && errors[1].contains("add listen ="),
            "{errors:?}"
        );
        let (_, errors) =
            parse_str("[[vhost]]\nlisten = \"127.0.0.1:80\"\ntls_certificate = \"a.crt\"\n");
        assert!(
            errors[0].contains("vhost[0].tls_key: missing"),
            "{errors:?}"
        );
        let (_, errors) =
            parse_str("[[vhost]]\nlisten = \"127.0.0.1:80\"\nallow_encoded_slashes = \"yes\"\n");
        assert!(
            errors[0].contains("vhost[0].allow_encoded_slashes: \"yes\" is not a setting")
                && errors[0].contains("\"nodecode\""),
            "{errors:?}"
        );
        let (_, errors) = parse_str("[vhost]\nlisten = \"127.0.0.1:80\"\n");
        assert!(
            errors[0].contains("[[vhost]], with two brackets"),
            "{errors:?}"
        );
    }
}
