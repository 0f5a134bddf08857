//! Pure request-path logic: the refusal of dot segments a backend could
//! still find, ProxyPass prefix matching by path segment, exclusions under
//! every reading a backend may give a path, and building the backend URL.
//!
//! The core hands over the path already canonical, as Apache's core does
//! (`modproxy_http1::path`: dot segments resolved, `//` merged,
//! unreserved escapes decoded), and that form is forwarded. What is left
//! to guard against is a backend reading more into it than Apache does:
//! `\` as `/`, `;params` dropped (Tomcat), `%2f` decoded (with
//! `allow_encoded_slashes = "nodecode"`). Matching also compares a
//! normalised form (RFC 3986 §6.2.2: `%61` is `a`, `//` is `/`), so a
//! prefix or path written with escapes still matches.

use std::borrow::Cow;

/// Why a path is refused: it holds a `.` or `..` segment, even encoded
/// (`%2e%2e`), behind an encoded slash (`..%2f`) or backslash (`..\`), or
/// a Tomcat-style path parameter (`..;x`). A canonical path has no plain
/// one left, so what this finds is a segment some backend would resolve,
/// and so escape the prefix, though Apache's rules do not.
pub fn dot_segment(path: &str) -> Option<String> {
    // One pass, no allocation: `/`, `\`, `%2f`, `%5c` end a segment, `.`
    // and `%2e` are dots, `;` and `%3b` end the part of a segment that
    // names it.
    let b = path.as_bytes();
    let (mut dots, mut other, mut in_params) = (0usize, false, false);
    let mut i = 0;
    loop {
        let (unit, len) = match b.get(i) {
            None => (b'/', 1),
            Some(b'%') if b.len() >= i + 3 => {
                match (b[i + 1].to_ascii_lowercase(), b[i + 2].to_ascii_lowercase()) {
                    (b'2', b'f') | (b'5', b'c') => (b'/', 3),
                    (b'2', b'e') => (b'.', 3),
                    (b'3', b'b') => (b';', 3),
                    _ => (b'%', 1),
                }
            }
            Some(b'\\') => (b'/', 1),
            Some(&c) => (c, 1),
        };
        match unit {
            b'/' => {
                if !other && (dots == 1 || dots == 2) {
                    let name = if dots == 1 { "." } else { ".." };
                    return Some(format!("dot segment {name:?} in path {path:?}"));
                }
                if i >= b.len() {
                    return None;
                }
                (dots, other, in_params) = (0, false, false);
            }
            _ if in_params => {}
            b';' => in_params = true,
            b'.' => dots += 1,
            _ => other = true,
        }
        i += len;
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// One unit of a path for matching, normalised: a character (unreserved
/// `%XX` escapes decode to theirs), or an escape kept as a byte (`%2f` and
/// `%2F` are the same unit, and not `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Char(char),
    Escape(u8),
}

/// The first unit of `s` and its raw length.
fn unit(s: &str) -> Option<(Unit, usize)> {
    let first = s.chars().next()?;
    if let [b'%', h, l, ..] = *s.as_bytes() {
        if let (Some(hi), Some(lo)) = (hex(h), hex(l)) {
            let c = hi * 16 + lo;
            let norm = if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                Unit::Char(char::from(c))
            } else {
                Unit::Escape(c)
            };
            return Some((norm, 3));
        }
    }
    Some((Unit::Char(first), first.len_utf8()))
}

/// The units of `s` from byte `at` on, each with its raw offset.
fn units(s: &str, mut at: usize) -> impl Iterator<Item = (usize, Unit)> + '_ {
    std::iter::from_fn(move || {
        let (u, len) = s.get(at..).and_then(unit)?;
        let here = at;
        at += len;
        Some((here, u))
    })
}

/// Matches `prefix` against `path` by whole segments; returns the raw rest
/// of `path` after the prefix. `/foo` matches `/foo` and `/foo/x`, not
/// `/foobar`; `/foo/` matches `/foo/x` but not `/foo`.
pub fn match_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let mut have = units(path, 0).peekable();
    for (_, w) in units(prefix, 0) {
        let (_, h) = have.next()?;
        if h != w {
            return None;
        }
        // A run of slashes in the path matches one slash in the prefix.
        if w == Unit::Char('/') {
            while have.next_if(|(_, h)| *h == Unit::Char('/')).is_some() {}
        }
    }
    let rest = have
        .peek()
        .and_then(|(at, _)| path.get(*at..))
        .unwrap_or("");
    let boundary = prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/');
    boundary.then_some(rest)
}

/// Whether an exclusion (`url = "!"`) at `prefix` covers `path`: by
/// [`match_prefix`], or as a backend that reads more into the path would
/// see both (`%XX` decoded, `\` as `/`, `;params` dropped, `//` as `/`),
/// so that `/%5Cstatic` or `/static;x/a.css` stay excluded from `/static`.
pub fn excluded_by(prefix: &str, path: &str) -> bool {
    if match_prefix(prefix, path).is_some() {
        return true;
    }
    // Without these bytes the backend's view is the one just matched.
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\' | b';')) {
        return false;
    }
    backend_view(path).starts_with(&backend_view(prefix))
}

/// `path`'s segments as the most liberal backend reads them: every `%XX`
/// decoded once, `\` a separator, `;` and what follows dropped from each
/// segment, empty segments gone.
fn backend_view(path: &str) -> Vec<Vec<u8>> {
    let mut decoded = Vec::with_capacity(path.len());
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let escaped = match b[i..] {
            [b'%', h, l, ..] => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped {
            Some(c) => {
                decoded.push(c);
                i += 3;
            }
            None => {
                decoded.push(b[i]);
                i += 1;
            }
        }
    }
    decoded
        .split(|&c| c == b'/' || c == b'\\')
        .map(|s| s.split(|&c| c == b';').next().unwrap_or_default().to_vec())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Joins a URL (or path) and the rest of a path with exactly one slash
/// between them. Apache pastes them together, so `ProxyPass /a/ http://b/c`
/// sends `/a/x` to `http://b/cx`; here it goes to `http://b/c/x`.
pub fn join(base: &str, rest: &str) -> String {
    let mut out = String::with_capacity(base.len() + rest.len() + 1);
    push_joined(&mut out, base, rest);
    out
}

/// [`join`], appended to `out`.
fn push_joined(out: &mut String, base: &str, rest: &str) {
    if rest.is_empty() {
        out.push_str(base);
        return;
    }
    out.push_str(base.strip_suffix('/').unwrap_or(base));
    out.push('/');
    out.push_str(rest.strip_prefix('/').unwrap_or(rest));
}

/// The backend target: `base` joined with the rest of the path, never
/// without a path (`http://b` + `` is `http://b/`), then `?query` unchanged.
pub fn target(base: &str, rest: &str, query: &str) -> String {
    build_target(base, None, rest, query)
}

/// [`target`] for a `base` whose origin (`scheme://authority`, as
/// [`split_origin`] finds it) is `base[..origin_len]`, without scanning
/// for it again: joining keeps that origin in front (an authority holds no
/// `/`, `?` or `#`), so it is the target's origin too.
pub fn target_at(base: &str, origin_len: usize, rest: &str, query: &str) -> String {
    build_target(base, Some(origin_len), rest, query)
}

/// [`target`], with the origin's length given or found in the joined URL.
fn build_target(base: &str, origin_len: Option<usize>, rest: &str, query: &str) -> String {
    // One allocation: room for the joining slash, a path's `/` and the `?`.
    let mut url = String::with_capacity(base.len() + rest.len() + query.len() + 3);
    push_joined(&mut url, base, rest);
    let origin_len = origin_len.or_else(|| split_origin(&url).map(|(origin, _)| origin.len()));
    if let Some(at) = origin_len {
        if url
            .get(at..)
            .is_none_or(|path| path.is_empty() || path.starts_with('?'))
        {
            url.insert(at, '/');
        }
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A balancer member's target and pool key, `target(member, rest, "")` and
/// `origin(member)`, with one split of the member's URL.
pub fn member_target<'m>(member: &'m str, rest: &str) -> (String, Cow<'m, str>) {
    match split_origin(member) {
        Some((o, _)) => (target_at(member, o.len(), rest, ""), lower(o)),
        None => (target(member, rest, ""), origin(member)),
    }
}

/// Expands `$0`..`$9` in `template` with the captures (missing ones are
/// empty). Returns `None` when the template holds no reference, in which
/// case Apache appends the whole path (so `\.gif$` → `balancer://x` works).
pub fn substitute(template: &str, group: impl Fn(usize) -> String) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut used = false;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().and_then(|d| d.to_digit(10))) {
            ('$', Some(n)) => {
                chars.next();
                out.push_str(&group(n as usize));
                used = true;
            }
            _ => out.push(c),
        }
    }
    used.then_some(out)
}

/// What comes before the first `://`, lower-cased (borrowed when it
/// already is); empty when there is no `://`.
pub fn scheme(url: &str) -> Cow<'_, str> {
    // A window scan: `split_once("://")` builds a two-way searcher per call.
    let end = url.as_bytes().windows(3).position(|w| w == b"://");
    lower(end.map_or("", |end| &url[..end]))
}

/// `scheme://host:port` of a URL, lower-cased: the pool key.
pub fn origin(url: &str) -> Cow<'_, str> {
    lower(split_origin(url).map_or(url, |(origin, _)| origin))
}

/// `s` in lower case, copied only when it has an upper-case letter.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Splits `scheme://authority/path` into (`scheme://authority`, `/path`).
pub fn split_origin(url: &str) -> Option<(&str, &str)> {
    // `str::find("://")` builds a two-way searcher per call; a scheme's
    // colon is the first one, a few bytes in: a plain scan beats memchr's
    // setup at that distance.
    let colon = url.bytes().position(|b| b == b':')?;
    let after = colon + 3;
    if !url[colon..].starts_with("://") {
        return None;
    }
    let end = url.as_bytes()[after..]
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(url.len(), |i| after + i);
    (end > after).then(|| url.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_by_segment() {
        assert_eq!(match_prefix("/foo", "/foo"), Some(""));
        assert_eq!(match_prefix("/foo", "/foo/x"), Some("/x"));
        assert_eq!(match_prefix("/foo", "/foobar"), None);
        assert_eq!(match_prefix("/foo/", "/foo/x/y"), Some("x/y"));
        assert_eq!(match_prefix("/foo/", "/foo"), None);
        assert_eq!(match_prefix("/", "/anything"), Some("anything"));
    }

    #[test]
    fn prefix_sees_through_encoding_and_slash_runs() {
        assert_eq!(match_prefix("/admin", "/%61dmin/x"), Some("/x"));
        assert_eq!(match_prefix("/admin", "//admin"), Some(""));
        assert_eq!(match_prefix("/a/b", "/a//b/c"), Some("/c"));
        // An encoded slash is not a segment boundary.
        assert_eq!(match_prefix("/a", "/a%2fb"), None);
        assert_eq!(match_prefix("/caf%c3%a9", "/caf%C3%A9/x"), Some("/x"));
    }

    #[test]
    fn dot_segments_are_refused_even_encoded() {
        for bad in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E%2e",
            "/a/.%2E/",
            "/a/..%2fb",
            "/a/..;x/b",
            "/a\\..\\b",
        ] {
            assert!(dot_segment(bad).is_some(), "{bad}");
        }
        for ok in ["/a/b", "/a/..b", "/a/.well-known/x", "/a/%2e%2ex", "/"] {
            assert!(dot_segment(ok).is_none(), "{ok}");
        }
        assert!(dot_segment("/a/..%3Bx/b").is_some());
    }

    #[test]
    fn exclusions_cover_every_backend_reading_of_the_path() {
        for covered in [
            "/static",
            "/static/a.css",
            "/static%2Fa.css",
            "/static%5Ca.css",
            "/%5Cstatic/a.css",
            "/static;x/a.css",
            "/;x/static",
            "/%73tatic",
        ] {
            assert!(excluded_by("/static", covered), "{covered}");
        }
        for open in ["/staticky", "/a/static", "/stat%69cx", "/x;/static.css"] {
            assert!(!excluded_by("/static", open), "{open}");
        }
    }

    #[test]
    fn join_puts_one_slash_between() {
        assert_eq!(join("http://b/c/", "x"), "http://b/c/x");
        assert_eq!(join("http://b/c", "x"), "http://b/c/x");
        assert_eq!(join("http://b/c/", "/x"), "http://b/c/x");
        assert_eq!(join("http://b/c", ""), "http://b/c");
        assert_eq!(join("http://b/c", "/x//y%2Fz"), "http://b/c/x//y%2Fz");
    }

    #[test]
    fn target_keeps_path_and_query_as_received() {
        assert_eq!(
            target("http://b/c/", "x%20y", "a=%2F&b"),
            "http://b/c/x%20y?a=%2F&b"
        );
        assert_eq!(target("http://b:8080", "", ""), "http://b:8080/");
        assert_eq!(target("http://b:8080", "", "q"), "http://b:8080/?q");
        assert_eq!(target("http://b:8080?x", "", ""), "http://b:8080/?x");
    }

    #[test]
    fn target_at_is_target_for_a_base_with_an_origin() {
        for base in [
            "http://b:8080",
            "http://b/",
            "HTTP://B:1/app",
            "http://b?x",
            "http://b#f",
        ] {
            let Some((o, _)) = split_origin(base) else {
                panic!("{base}")
            };
            for rest in ["", "/", "/x/y", "x", "?q"] {
                for query in ["", "a=1"] {
                    let want = target(base, rest, query);
                    assert_eq!(target_at(base, o.len(), rest, query), want, "{base} {rest}");
                }
            }
        }
    }

    #[test]
    fn member_target_is_target_and_origin() {
        let members = [
            "http://b:8080",
            "http://b:8080/",
            "HTTP://B:1/app",
            "http://b/app/",
            "http://b?x",
            "http://b#f",
            "nope",
            "http://",
        ];
        for member in members {
            for rest in ["", "/", "/x/y?q", "x", "?q"] {
                let (t, o) = member_target(member, rest);
                assert_eq!(t, target(member, rest, ""), "{member} + {rest}");
                assert_eq!(o, origin(member), "{member}");
            }
        }
    }

    #[test]
    fn substitute_expands_references() {
        let g = |n: usize| {
            ["/img/a.png", "a"]
                .get(n)
                .map_or(String::new(), |s| s.to_string())
        };
        assert_eq!(
            substitute("http://b/png/$1", g).as_deref(),
            Some("http://b/png/a")
        );
        assert_eq!(
            substitute("http://b$0?$7", g).as_deref(),
            Some("http://b/img/a.png?")
        );
        assert_eq!(substitute("balancer://x", g), None);
    }

    #[test]
    fn scheme_and_origin_lower_case_only_when_needed() {
        assert_eq!(scheme("http://h/p"), "http");
        assert!(matches!(scheme("http://h/p"), Cow::Borrowed(_)));
        assert_eq!(scheme("HTTPS://h"), "https");
        assert_eq!(scheme("nope"), "");
        assert_eq!(scheme("http:///p"), "http");
        assert_eq!(origin("http://h:1/p?q"), "http://h:1");
        assert!(matches!(origin("http://h:1/p"), Cow::Borrowed(_)));
        assert_eq!(origin("HTTP://H:1/P"), "http://h:1");
        assert_eq!(origin("nope"), "nope");
    }

    #[test]
    fn split_origin_cuts_at_path() {
        assert_eq!(split_origin("http://h:1/p?q"), Some(("http://h:1", "/p?q")));
        assert_eq!(split_origin("balancer://c"), Some(("balancer://c", "")));
        assert_eq!(split_origin("http:///p"), None);
        assert_eq!(split_origin("nope"), None);
    }
}
