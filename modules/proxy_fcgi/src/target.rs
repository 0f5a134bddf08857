//! Where an `fcgi://` exchange goes: the address to connect to (from the
//! worker, which names a unix socket when the rule was written
//! `unix:/path|fcgi://host/path`) and the URL that becomes SCRIPT_FILENAME.

use std::borrow::Cow;

/// Apache's default port for `fcgi://` URLs without one.
pub const DEFAULT_PORT: u16 = 8000;

#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// `fcgi://host:port/path`, without the query.
    pub script_url: &'a str,
    /// `host:port`, or `unix:/path/to.sock`.
    pub connect: Cow<'a, str>,
}

impl<'a> Target<'a> {
    /// `Err` says what is wrong with the URL.
    pub fn parse(target: &'a str, worker: &'a str) -> Result<Target<'a>, String> {
        let rest = target
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("fcgi://"))
            .map(|_| &target[7..])
            .ok_or_else(|| format!("{target:?} is not an fcgi:// URL"))?;
        let script_url = match target.find('?') {
            Some(q) => &target[..q],
            None => target,
        };
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if authority.is_empty() {
            return Err(format!(
                "{target:?} has no host: write fcgi://host:port/path"
            ));
        }
        if let Some(path) = worker
            .get(..5)
            .filter(|s| s.eq_ignore_ascii_case("unix:"))
            .and_then(|_| worker[5..].split_once('|'))
            .map(|(path, _)| path)
        {
            let connect = Cow::Owned(format!("unix:{path}"));
            return Ok(Target {
                script_url,
                connect,
            });
        }
        let has_port = match authority.rfind(':') {
            Some(colon) => !authority[colon..].contains(']'),
            None => false,
        };
        let connect = if has_port {
            Cow::Borrowed(authority)
        } else {
            Cow::Owned(format!("{authority}:{DEFAULT_PORT}"))
        };
        Ok(Target {
            script_url,
            connect,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_targets_connect_to_their_authority() {
        let t = Target::parse(
            "fcgi://127.0.0.1:9000/var/www/i.php?a=b",
            "fcgi://127.0.0.1:9000",
        )
        .unwrap();
        assert_eq!(t.script_url, "fcgi://127.0.0.1:9000/var/www/i.php");
        assert_eq!(t.connect, "127.0.0.1:9000");
        let t = Target::parse("FCGI://php/x", "fcgi://php").unwrap();
        assert_eq!(t.connect, "php:8000");
        let t = Target::parse("fcgi://[::1]/x", "fcgi://[::1]").unwrap();
        assert_eq!(t.connect, "[::1]:8000");
        let t = Target::parse("fcgi://[::1]:9/x", "fcgi://[::1]:9").unwrap();
        assert_eq!(t.connect, "[::1]:9");
    }

    #[test]
    fn a_unix_worker_connects_to_its_socket() {
        let t = Target::parse(
            "fcgi://localhost/var/www/i.php",
            "unix:/run/php/php8.2-fpm.sock|fcgi://localhost",
        )
        .unwrap();
        assert_eq!(t.connect, "unix:/run/php/php8.2-fpm.sock");
        assert_eq!(t.script_url, "fcgi://localhost/var/www/i.php");
    }

    #[test]
    fn other_urls_are_refused() {
        assert!(Target::parse("http://a/", "http://a").is_err());
        assert!(Target::parse("fcgi:///x", "fcgi://").is_err());
    }
}
