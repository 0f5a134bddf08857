//! Sticky sessions: finding the route a request asks for (Apache's
//! `stickysession=COOKIE|urlparam`). The session value is `id.route`; the
//! route is everything after the first `.`.

/// Where to look for the session value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    cookie: String,
    param: String,
}

impl Sticky {
    /// As configured: `COOKIE|urlparam`, for the balancer manager.
    pub fn describe(&self) -> String {
        format!("{}|{}", self.cookie, self.param)
    }

    /// `"JSESSIONID"` names both the cookie and the URL parameter;
    /// `"JSESSIONID|jsessionid"` names them apart, as in Apache. Empty: off.
    pub fn parse(s: &str) -> Result<Option<Sticky>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let (cookie, param) = s.split_once('|').unwrap_or((s, s));
        let bad = |n: &str| {
            n.is_empty() || n.contains(|c: char| c.is_whitespace() || "=;,&?/|\"".contains(c))
        };
        if bad(cookie) || bad(param) {
            return Err(format!("`{s}` is not a cookie name: write NAME or COOKIE|urlparam, e.g. \"JSESSIONID|jsessionid\""));
        }
        Ok(Some(Sticky {
            cookie: cookie.into(),
            param: param.into(),
        }))
    }

    /// The route in the URL: a `;NAME=value` path parameter or a
    /// `NAME=value` query parameter. Apache looks here before the cookie,
    /// so a URL-rewritten session wins over a stale cookie.
    pub fn url_route<'a>(&self, path: &'a str, query: &'a str) -> Option<&'a str> {
        let in_path = path
            .split(';')
            .skip(1)
            .map(|p| p.split('/').next().unwrap_or(""));
        let in_query = query.split('&');
        in_path
            .chain(in_query)
            .find_map(|pair| value_of(pair, &self.param))
            .and_then(route_of)
    }

    /// The route in one `Cookie` header value (`a=1; NAME=value`).
    pub fn cookie_route<'a>(&self, header: &'a str) -> Option<&'a str> {
        let value = header
            .split(';')
            .find_map(|pair| value_of(pair.trim(), &self.cookie))?;
        route_of(value.trim_matches('"'))
    }
}

fn value_of<'a>(pair: &'a str, name: &str) -> Option<&'a str> {
    pair.split_once('=')
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `abc.node1` → `node1`; no `.` or nothing after it: no route.
fn route_of(value: &str) -> Option<&str> {
    value
        .split_once('.')
        .map(|(_, route)| route)
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sticky(s: &str) -> Sticky {
        Sticky::parse(s).unwrap().unwrap()
    }

    #[test]
    fn route_is_after_the_first_dot_of_the_cookie() {
        let s = sticky("JSESSIONID");
        assert_eq!(s.cookie_route("JSESSIONID=abc.node1"), Some("node1"));
        assert_eq!(
            s.cookie_route("lang=en; JSESSIONID=\"abc.n1.x\"; b=2"),
            Some("n1.x")
        );
        assert_eq!(s.cookie_route("JSESSIONID=abc"), None);
        assert_eq!(s.cookie_route("JSESSIONID=abc."), None);
        assert_eq!(s.cookie_route("XJSESSIONID=abc.node1"), None);
    }

    #[test]
    fn url_route_from_query_or_path_parameter() {
        let s = sticky("JSESSIONID|jsessionid");
        assert_eq!(s.url_route("/app", "a=1&jsessionid=x.node2"), Some("node2"));
        assert_eq!(
            s.url_route("/app/page;jsessionid=x.node3", ""),
            Some("node3")
        );
        assert_eq!(
            s.url_route("/app;jsessionid=x.node4/more", ""),
            Some("node4")
        );
        assert_eq!(
            s.url_route("/app", "JSESSIONID=x.node2"),
            None,
            "the URL name differs"
        );
        assert_eq!(s.cookie_route("JSESSIONID=y.node5"), Some("node5"));
    }

    #[test]
    fn parse_names() {
        assert_eq!(Sticky::parse(""), Ok(None));
        assert_eq!(
            sticky("SID"),
            Sticky {
                cookie: "SID".into(),
                param: "SID".into()
            }
        );
        assert!(Sticky::parse("a b").is_err());
        assert!(Sticky::parse("SID|").is_err());
    }
}
