//! `ftp://[user[:password]@]host[:port]/path`: who logs in where, and the
//! path decoded (a CR, LF or NUL in it would smuggle a command).

#[derive(Debug, PartialEq, Eq)]
pub struct FtpUrl {
    /// `host:port` to connect to, and the host alone.
    pub addr: String,
    pub host: String,
    pub user: String,
    pub password: String,
    /// Decoded, from its leading `/`.
    pub path: String,
}

pub fn parse(url: &str) -> Result<FtpUrl, String> {
    let rest = url
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("ftp://"))
        .map(|_| &url[6..])
        .ok_or_else(|| format!("`{url}` is not an ftp:// URL"))?;
    let (auth, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let (userinfo, hostport) = auth.rsplit_once('@').unwrap_or(("", auth));
    let (user, password) = match userinfo.split_once(':') {
        _ if userinfo.is_empty() => ("anonymous".to_owned(), "modproxy@".to_owned()),
        Some((u, p)) => (decode(u)?, decode(p)?),
        None => (decode(userinfo)?, String::new()),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, p),
        _ => (hostport, "21"),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("`{url}` has no host or a bad port"));
    }
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(FtpUrl {
        addr,
        host: host.to_owned(),
        user,
        password,
        path: decode(path)?,
    })
}

/// Percent-decoding; refuses what would end an FTP command line.
pub fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(v) = hex else {
                return Err(format!("`{s}` has a bad %-escape"));
            };
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.iter().any(|c| matches!(c, b'\r' | b'\n' | 0)) {
        return Err(format!(
            "`{s}` holds a CR, LF or NUL, which FTP cannot carry"
        ));
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_hosts_and_paths() {
        let u = parse("ftp://127.0.0.1:2121/pub/a%20b.txt").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.user.as_str()),
            ("127.0.0.1:2121", "anonymous")
        );
        assert_eq!(u.path, "/pub/a b.txt");
        let u = parse("FTP://al%40ice:p%3Ass@host/").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str()), ("al@ice", "p:ss"));
        assert_eq!(u.addr, "host:21");
        assert_eq!(parse("ftp://[::1]:21/x").unwrap().addr, "[::1]:21");
        assert!(parse("ftp://h/a%0d%0aDELE%20x").is_err());
        assert!(parse("http://h/").is_err());
        assert!(parse("ftp://h:x/").is_err());
    }
}
