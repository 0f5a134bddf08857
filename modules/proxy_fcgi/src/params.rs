//! The FastCGI parameters of a request: the CGI/1.1 variables (RFC 3875
//! §4.1) as Apache's `ap_add_common_vars` and `ap_add_cgi_vars` set them
//! for mod_proxy_fcgi, then the rule's `fcgi_set_env`. Built once per
//! request and encoded as name-value pairs for the PARAMS stream.

use crate::record::push_pair;
use crate::target::Target;
use std::borrow::Cow;

type Name<'a> = Cow<'a, str>;
type Value<'a> = Cow<'a, [u8]>;

/// What the variables are built from besides the target.
pub struct Inputs<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub version: &'a str,
    /// `ip:port` of the client and of our listener.
    pub client: &'a str,
    pub local: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The vhost's `server_name`, for a request without a Host field.
    pub server_name: &'a str,
    /// The client's fields, names in lower case.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The body length when the client's framing did not give one (a
    /// chunked body, read whole first): sent as CONTENT_LENGTH, and its
    /// Transfer-Encoding field is not passed on.
    pub spooled_len: Option<u64>,
}

/// The variables in the order Apache adds them.
pub struct Vars<'a> {
    list: Vec<(Name<'a>, Value<'a>)>,
}

impl<'a> Vars<'a> {
    pub fn build(i: &Inputs<'a>, target: &Target<'a>) -> Vars<'a> {
        let mut v = Vars {
            list: Vec::with_capacity(i.headers.len() + 24),
        };
        let mut host = None;
        for &(name, value) in &i.headers {
            match name {
                "content-type" => v.add("CONTENT_TYPE".into(), value.into()),
                "content-length" if i.spooled_len.is_none() => {
                    v.add("CONTENT_LENGTH".into(), value.into())
                }
                "content-length" => {}
                "transfer-encoding" if i.spooled_len.is_some() => {}
                // httpoxy (CVE-2016-5385): HTTP_PROXY would be read as the
                // application's outgoing proxy. Credentials stay here too,
                // as Apache's default (CGIPassAuth off).
                "proxy" | "authorization" | "proxy-authorization" => {}
                _ => {
                    if name == "host" {
                        host.get_or_insert(value);
                    }
                    if let Some(env) = http_name(name) {
                        v.merge(env.into(), value);
                    }
                }
            }
        }
        if let Some(len) = i.spooled_len {
            v.add("CONTENT_LENGTH".into(), len.to_string().into_bytes().into());
        }
        let env = process_env();
        v.add("PATH".into(), env.path.as_bytes().into());
        if let Some(lib) = &env.ld_library_path {
            v.add("LD_LIBRARY_PATH".into(), lib.as_bytes().into());
        }
        v.add("SERVER_SIGNATURE".into(), (&b""[..]).into());
        v.add("SERVER_SOFTWARE".into(), SOFTWARE.as_bytes().into());
        let (local_ip, local_port) = split_addr(i.local);
        let (name, port) = server_name_port(host, i.server_name, local_port);
        v.add("SERVER_NAME".into(), name);
        v.add("SERVER_ADDR".into(), local_ip.as_bytes().into());
        v.add("SERVER_PORT".into(), port);
        let (client_ip, client_port) = split_addr(i.client);
        v.add("REMOTE_ADDR".into(), client_ip.as_bytes().into());
        v.add("DOCUMENT_ROOT".into(), (&b""[..]).into());
        v.add("REQUEST_SCHEME".into(), i.scheme.as_bytes().into());
        v.add("CONTEXT_PREFIX".into(), (&b""[..]).into());
        v.add("CONTEXT_DOCUMENT_ROOT".into(), (&b""[..]).into());
        let mut script = b"proxy:".to_vec();
        script.extend_from_slice(&decode_path(target.script_url));
        v.add("SCRIPT_FILENAME".into(), script.into());
        v.add("REMOTE_PORT".into(), client_port.as_bytes().into());
        if i.scheme == "https" {
            // mod_ssl's: applications test it to build their own URLs.
            v.add("HTTPS".into(), (&b"on"[..]).into());
        }
        v.add("GATEWAY_INTERFACE".into(), (&b"CGI/1.1"[..]).into());
        v.add("SERVER_PROTOCOL".into(), i.version.as_bytes().into());
        v.add("REQUEST_METHOD".into(), i.method.as_bytes().into());
        v.add("QUERY_STRING".into(), i.query.as_bytes().into());
        let mut uri = i.path.as_bytes().to_vec();
        if !i.query.is_empty() {
            uri.push(b'?');
            uri.extend_from_slice(i.query.as_bytes());
        }
        v.add("REQUEST_URI".into(), uri.into());
        // Apache's r->uri: the path decoded. PATH_INFO is left to the
        // FastCGI server (PHP-FPM's cgi.fix_pathinfo), as Apache leaves it.
        v.add(
            "SCRIPT_NAME".into(),
            decode_path(i.path).into_owned().into(),
        );
        v
    }

    fn add(&mut self, name: Name<'a>, value: Value<'a>) {
        self.list.push((name, value));
    }

    /// A repeated field joins the first one's value with `, `, as Apache's
    /// header table merges repeats.
    fn merge(&mut self, name: Name<'a>, value: &'a [u8]) {
        match self.list.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                let joined = v.to_mut();
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(value);
            }
            None => self.add(name, value.into()),
        }
    }

    /// Applies `fcgi_set_env` lines from proxy's note: `NAME=value` sets
    /// (replacing every earlier value), `!NAME` removes; `+reuse` is not
    /// a variable and is skipped.
    pub fn apply(&mut self, lines: &'a str) {
        for line in lines.split('\n') {
            if let Some(name) = line.strip_prefix('!') {
                self.list.retain(|(n, _)| n != name);
            } else if let Some((name, value)) = line.split_once('=') {
                self.list.retain(|(n, _)| n != name);
                self.add(name.into(), value.as_bytes().into());
            }
        }
    }

    /// The value of `name`, for tests and logs.
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.list
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Name-value pairs, the PARAMS stream's content.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.list {
            push_pair(out, name.as_bytes(), value);
        }
    }
}

/// What Apache passes on from its own environment (`env2env`), read once.
struct ProcessEnv {
    path: String,
    ld_library_path: Option<String>,
}

fn process_env() -> &'static ProcessEnv {
    static ENV: std::sync::OnceLock<ProcessEnv> = std::sync::OnceLock::new();
    ENV.get_or_init(|| ProcessEnv {
        path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ld_library_path: std::env::var("LD_LIBRARY_PATH").ok(),
    })
}

const SOFTWARE: &str = concat!("modproxy/", env!("CARGO_PKG_VERSION"));

/// `HTTP_` and the field name upper-cased with `-` as `_`; `None` for a
/// name with any other character (`X_Forwarded`): Apache drops those, so
/// that no field can pose as another's variable.
fn http_name(field: &str) -> Option<String> {
    let mut env = String::with_capacity(5 + field.len());
    env.push_str("HTTP_");
    for c in field.bytes() {
        match c {
            b'-' => env.push('_'),
            c if c.is_ascii_alphanumeric() => env.push(char::from(c.to_ascii_uppercase())),
            _ => return None,
        }
    }
    Some(env)
}

/// `ip:port` (`[v6]:port`) into its parts, brackets dropped.
fn split_addr(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((ip, port)) => (
            ip.strip_prefix('[')
                .and_then(|ip| ip.strip_suffix(']'))
                .unwrap_or(ip),
            port,
        ),
        None => (addr, ""),
    }
}

/// SERVER_NAME and SERVER_PORT as Apache's default (`UseCanonicalName
/// Off`) gives them: from the client's Host field, else the vhost's name
/// and the port the request came in on.
fn server_name_port<'a>(
    host: Option<&'a [u8]>,
    server_name: &'a str,
    local_port: &'a str,
) -> (Value<'a>, Value<'a>) {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return (server_name.as_bytes().into(), local_port.as_bytes().into());
    };
    // `[v6]:port`, `name:port`, or either without the port.
    let end_of_name = match host.first() {
        Some(b'[') => host
            .iter()
            .position(|&b| b == b']')
            .map_or(host.len(), |i| i + 1),
        _ => host.iter().position(|&b| b == b':').unwrap_or(host.len()),
    };
    let (name, rest) = host.split_at(end_of_name);
    let port = match rest.strip_prefix(b":") {
        Some(p) if !p.is_empty() => p,
        _ => local_port.as_bytes(),
    };
    (name.into(), port.into())
}

/// Percent-escapes decoded, as Apache decodes the path into `r->uri`,
/// but for `%2F` and `%00`, which stay escaped: decoded, they would change
/// which file the path names, or cut it short.
pub fn decode_path(path: &str) -> Cow<'_, [u8]> {
    let b = path.as_bytes();
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = match b[i..] {
            [b'%', h, l, ..] => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match decoded {
            Some(c) if c != b'/' && c != 0 => {
                out.push(c);
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(headers: Vec<(&'static str, &'static [u8])>) -> Inputs<'static> {
        Inputs {
            method: "POST",
            path: "/app/a%20b.php",
            query: "x=1",
            version: "HTTP/1.1",
            client: "127.0.0.1:40000",
            local: "127.0.0.1:8000",
            scheme: "http",
            server_name: "proxy.test",
            headers,
            spooled_len: None,
        }
    }

    fn target() -> Target<'static> {
        Target::parse(
            "fcgi://127.0.0.1:9000/var/www/a%20b.php?x=1",
            "fcgi://127.0.0.1:9000",
        )
        .unwrap()
    }

    fn text(v: &Vars<'_>, name: &str) -> Option<String> {
        v.get(name).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    #[test]
    fn cgi_variables_as_apache_sets_them() {
        let i = inputs(vec![
            ("host", b"example.org:8443"),
            ("content-type", b"text/plain"),
            ("content-length", b"5"),
            ("x-many", b"a"),
            ("x-many", b"b"),
            ("user-agent", b"t"),
        ]);
        let v = Vars::build(&i, &target());
        let want = [
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "5"),
            ("HTTP_HOST", "example.org:8443"),
            ("HTTP_X_MANY", "a, b"),
            ("HTTP_USER_AGENT", "t"),
            ("SERVER_NAME", "example.org"),
            ("SERVER_PORT", "8443"),
            ("SERVER_ADDR", "127.0.0.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "40000"),
            (
                "SCRIPT_FILENAME",
                "proxy:fcgi://127.0.0.1:9000/var/www/a b.php",
            ),
            ("SCRIPT_NAME", "/app/a b.php"),
            ("REQUEST_URI", "/app/a%20b.php?x=1"),
            ("QUERY_STRING", "x=1"),
            ("REQUEST_METHOD", "POST"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_SCHEME", "http"),
        ];
        for (name, value) in want {
            assert_eq!(text(&v, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(v.get("HTTPS"), None);
        assert_eq!(v.get("HTTP_CONTENT_TYPE"), None);
        assert_eq!(v.get("PATH_INFO"), None);
    }

    #[test]
    fn proxy_and_credentials_never_reach_the_application() {
        let i = inputs(vec![
            ("proxy", b"http://evil:3128"),
            ("authorization", b"Basic eA=="),
            ("proxy-authorization", b"Basic eA=="),
            ("x_underscore", b"spoof"),
        ]);
        let v = Vars::build(&i, &target());
        for name in [
            "HTTP_PROXY",
            "HTTP_AUTHORIZATION",
            "HTTP_PROXY_AUTHORIZATION",
            "HTTP_X_UNDERSCORE",
        ] {
            assert_eq!(v.get(name), None, "{name}");
        }
    }

    #[test]
    fn without_host_the_vhost_names_the_server_and_https_is_on_for_tls() {
        let mut i = inputs(vec![]);
        i.scheme = "https";
        i.local = "[::1]:8443";
        let v = Vars::build(&i, &target());
        assert_eq!(text(&v, "SERVER_NAME").as_deref(), Some("proxy.test"));
        assert_eq!(text(&v, "SERVER_PORT").as_deref(), Some("8443"));
        assert_eq!(text(&v, "SERVER_ADDR").as_deref(), Some("::1"));
        assert_eq!(text(&v, "HTTPS").as_deref(), Some("on"));
        let i = inputs(vec![("host", b"[::1]")]);
        let v = Vars::build(&i, &target());
        assert_eq!(text(&v, "SERVER_NAME").as_deref(), Some("[::1]"));
        assert_eq!(text(&v, "SERVER_PORT").as_deref(), Some("8000"));
    }

    #[test]
    fn a_spooled_body_has_its_length_and_no_transfer_encoding() {
        let mut i = inputs(vec![("transfer-encoding", b"chunked")]);
        i.spooled_len = Some(42);
        let v = Vars::build(&i, &target());
        assert_eq!(text(&v, "CONTENT_LENGTH").as_deref(), Some("42"));
        assert_eq!(v.get("HTTP_TRANSFER_ENCODING"), None);
    }

    #[test]
    fn set_env_overrides_adds_and_removes() {
        let i = inputs(vec![("user-agent", b"t")]);
        let mut v = Vars::build(&i, &target());
        v.apply("+reuse\nSCRIPT_FILENAME=/srv/index.php\nNEW=1\n!HTTP_USER_AGENT");
        assert_eq!(
            text(&v, "SCRIPT_FILENAME").as_deref(),
            Some("/srv/index.php")
        );
        assert_eq!(text(&v, "NEW").as_deref(), Some("1"));
        assert_eq!(v.get("HTTP_USER_AGENT"), None);
        assert_eq!(v.get("+reuse"), None);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert!(out.windows(14).any(|w| w == b"/srv/index.php"));
    }

    #[test]
    fn paths_decode_but_slashes_and_nul_stay_escaped() {
        assert_eq!(&*decode_path("/a%20b/%C3%A9"), "/a b/é".as_bytes());
        assert_eq!(&*decode_path("/a%2Fb%00c%zz"), b"/a%2Fb%00c%zz");
        assert!(matches!(decode_path("/plain"), Cow::Borrowed(_)));
    }
}
