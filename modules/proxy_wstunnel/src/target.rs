//! The backend named by a `ws://`, `wss://`, `http://` or `https://`
//! target: where to connect, whether with TLS, and the request target.

/// A parsed target URL, borrowing from it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Host without IPv6 brackets (the TLS server name).
    pub host: &'a str,
    /// `host:port` for the connect (IPv6 in brackets).
    pub addr: String,
    /// The Host header: the port only when it is not the default.
    pub authority: &'a str,
    pub tls: bool,
    pub path_and_query: &'a str,
}

pub fn parse(url: &str) -> Result<Target<'_>, &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        _ => return Err("not a ws://, wss://, http:// or https:// URL"),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err("no host, or user information in the URL");
    }
    let default = if tls { 443 } else { 80 };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
            (h, after.strip_prefix(':').unwrap_or(""))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, ""),
        },
    };
    let port: u16 = if port.is_empty() {
        default
    } else {
        port.parse()
            .map_err(|_| "the port is not a number from 1 to 65535")?
    };
    let addr = if authority.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tail = tail.split('#').next().unwrap_or("");
    Ok(Target {
        host,
        addr,
        authority,
        tls,
        path_and_query: if tail.is_empty() { "/" } else { tail },
    })
}

/// The same URL for an ordinary HTTP exchange: ws → http, wss → https.
pub fn as_http(url: &str) -> String {
    match url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("ws") => format!("http://{rest}"),
        Some((s, rest)) if s.eq_ignore_ascii_case("wss") => format!("https://{rest}"),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_ports_and_paths() {
        let t = parse("ws://b:9000/chat?x=1").unwrap();
        assert_eq!((t.host, t.addr.as_str(), t.tls), ("b", "b:9000", false));
        assert_eq!(t.path_and_query, "/chat?x=1");
        let t = parse("wss://[::1]").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.tls, t.path_and_query),
            ("[::1]:443", true, "/")
        );
        assert!(parse("ftp://b/").is_err());
        assert_eq!(as_http("WSS://b/x"), "https://b/x");
    }
}
