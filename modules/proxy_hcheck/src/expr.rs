//! `[[vhost.proxy.hcheck_expr]]`: named conditions a check's response must
//! meet (Apache's `ProxyHCExpr`), written as keys instead of an ap_expr
//! string. Every key given must hold; a member names one with `hcexpr`.
//! Without one, a check passes on a 2xx or 3xx status, as Apache's does.

use modproxy_http1::backend_response::ResponseHead;
use regex::Regex;
use serde::Deserialize;

/// One entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExprConfig {
    pub name: String,
    /// Status codes or ranges, e.g. `["200-299", "302"]`.
    #[serde(default)]
    pub status: Vec<String>,
    /// A response field that must be present (any case).
    pub header: Option<String>,
    /// …and its value, matched as a regular expression.
    pub header_value: Option<String>,
    /// A substring the body must contain (`GET` checks read up to 64 KiB).
    pub body: Option<String>,
    /// A regular expression the body must match.
    pub body_regex: Option<String>,
}

/// A condition, compiled.
#[derive(Debug, Clone)]
pub struct Expr {
    statuses: Vec<(u16, u16)>,
    header: Option<(String, Option<Regex>)>,
    body: Option<String>,
    body_regex: Option<Regex>,
}

impl Default for Expr {
    /// Apache's default: any 2xx or 3xx.
    fn default() -> Expr {
        Expr {
            statuses: vec![(200, 399)],
            header: None,
            body: None,
            body_regex: None,
        }
    }
}

impl Expr {
    /// Compiles one entry; `at` starts each problem.
    pub fn compile(c: ExprConfig, at: &str) -> Result<(String, Expr), Vec<String>> {
        let mut problems = Vec::new();
        let mut statuses = Vec::new();
        for s in &c.status {
            match parse_range(s) {
                Some(r) => statuses.push(r),
                None => problems.push(format!("{at}.status: `{s}` is not a status or range: write e.g. \"200\" or \"200-299\"")),
            }
        }
        if statuses.is_empty() {
            statuses.push((200, 399));
        }
        let mut regex = |key: &str, re: Option<String>| {
            re.and_then(|re| {
                Regex::new(&re)
                    .map_err(|e| {
                        problems.push(format!(
                            "{at}.{key}: `{re}` is not a regular expression: {e}"
                        ))
                    })
                    .ok()
            })
        };
        let header_value = regex("header_value", c.header_value);
        let body_regex = regex("body_regex", c.body_regex);
        if header_value.is_some() && c.header.is_none() {
            problems.push(format!(
                "{at}.header_value: name the field it applies to with header = \"...\""
            ));
        }
        if c.name.is_empty() {
            problems.push(format!(
                "{at}.name: give the condition a name for members' hcexpr"
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let header = c.header.map(|h| (h.to_ascii_lowercase(), header_value));
        Ok((
            c.name,
            Expr {
                statuses,
                header,
                body: c.body,
                body_regex,
            },
        ))
    }

    /// Whether the check reads the body at all.
    pub fn wants_body(&self) -> bool {
        self.body.is_some() || self.body_regex.is_some()
    }

    /// `Ok` when the response meets the condition, else why not.
    pub fn judge(&self, head: &ResponseHead, body: &[u8]) -> Result<(), String> {
        if !self
            .statuses
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&head.status))
        {
            return Err(format!("status {}", head.status));
        }
        if let Some((name, value)) = &self.header {
            let found = head
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name));
            match (found, value) {
                (None, _) => return Err(format!("no {name} field")),
                (Some((_, v)), Some(re)) if !re.is_match(&String::from_utf8_lossy(v)) => {
                    return Err(format!(
                        "{name}: {} does not match",
                        String::from_utf8_lossy(v)
                    ));
                }
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(body);
        if let Some(want) = &self.body {
            if !text.contains(want.as_str()) {
                return Err(format!("body lacks \"{want}\""));
            }
        }
        if let Some(re) = &self.body_regex {
            if !re.is_match(&text) {
                return Err(format!("body does not match /{}/", re.as_str()));
            }
        }
        Ok(())
    }
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    ((100..=599).contains(&lo) && lo <= hi && hi <= 599).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use modproxy_http1::backend_response::parse_response_head;

    fn head(text: &str) -> ResponseHead {
        parse_response_head(text.as_bytes(), 64, 8192, false)
            .unwrap()
            .unwrap()
            .0
    }

    fn expr(toml_text: &str) -> Result<Expr, Vec<String>> {
        let c: ExprConfig = toml::from_str(toml_text).unwrap();
        Expr::compile(c, "x").map(|(_, e)| e)
    }

    #[test]
    fn the_default_passes_2xx_and_3xx_only() {
        let e = Expr::default();
        assert!(e
            .judge(&head("HTTP/1.1 204 No Content\r\n\r\n"), b"")
            .is_ok());
        assert!(e.judge(&head("HTTP/1.1 302 Found\r\n\r\n"), b"").is_ok());
        assert_eq!(
            e.judge(&head("HTTP/1.1 503 Busy\r\n\r\n"), b""),
            Err("status 503".into())
        );
    }

    #[test]
    fn every_key_given_must_hold() {
        let e = expr("name = \"ready\"\nstatus = [\"200\"]\nheader = \"X-State\"\nheader_value = \"^up$\"\nbody = \"OK\"").unwrap();
        let ok = head("HTTP/1.1 200 OK\r\nx-state: up\r\n\r\n");
        assert!(e.judge(&ok, b"all OK").is_ok());
        assert!(e.judge(&ok, b"all bad").unwrap_err().contains("body lacks"));
        let down = head("HTTP/1.1 200 OK\r\nX-State: down\r\n\r\n");
        assert!(e
            .judge(&down, b"OK")
            .unwrap_err()
            .contains("does not match"));
        assert!(e.wants_body());
    }

    #[test]
    fn bad_entries_name_the_key() {
        let e = expr("name = \"x\"\nstatus = [\"2xx\"]\nbody_regex = \"(\"").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("x.status: `2xx`"));
        assert!(e[1].starts_with("x.body_regex"));
    }
}
