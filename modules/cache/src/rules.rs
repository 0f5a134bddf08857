//! RFC 9111's rules for a shared cache, as plain functions of header
//! values: whether a request may be answered from the cache, whether a
//! response may be stored, and for how long it stays fresh.

use std::time::Duration;

/// One Cache-Control directive's presence or value (names in any case).
fn directive<'a>(cc: &'a str, name: &str) -> Option<Option<&'a str>> {
    cc.split(',').map(str::trim).find_map(|d| {
        let (n, v) = d.split_once('=').map_or((d, None), |(n, v)| {
            (n.trim(), Some(v.trim().trim_matches('"')))
        });
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn seconds(cc: &str, name: &str) -> Option<u64> {
    directive(cc, name)?.and_then(|v| v.parse().ok())
}

/// What the request's own fields say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// May be answered from the cache.
    Use,
    /// Must go to the backend (`no-cache`, `no-store`, `max-age=0`), which
    /// may still refresh the stored copy.
    Bypass,
}

/// RFC 9111 §5.2.1: a client's `no-cache` (or `Pragma: no-cache`) or
/// `max-age=0` asks for a fresh answer from the origin.
pub fn lookup(request_cc: Option<&str>, pragma: Option<&str>) -> Lookup {
    let cc = request_cc.unwrap_or("");
    let no_cache = directive(cc, "no-cache").is_some()
        || directive(cc, "no-store").is_some()
        || seconds(cc, "max-age") == Some(0)
        || pragma.is_some_and(|p| p.to_ascii_lowercase().contains("no-cache"));
    if no_cache {
        Lookup::Bypass
    } else {
        Lookup::Use
    }
}

/// What the cache needs to know about a response to store it.
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub has_set_cookie: bool,
    pub vary: Option<&'a str>,
    /// The request carried Authorization.
    pub authorized: bool,
}

/// The settings that bound a freshness lifetime.
pub struct Limits {
    pub default_expire: Duration,
    pub max_expire: Duration,
    pub ignore_no_last_mod: bool,
}

/// How long the response stays fresh, or why it cannot be stored.
pub fn lifetime(r: &ResponseFacts<'_>, limits: &Limits) -> Result<Duration, &'static str> {
    // Statuses cacheable by default (RFC 9110 §15.1) that we also serve whole.
    if !matches!(r.status, 200 | 203 | 300 | 301 | 308 | 404 | 410) {
        return Err("status not cacheable");
    }
    let cc = r.cache_control.unwrap_or("");
    if directive(cc, "no-store").is_some() {
        return Err("no-store");
    }
    if directive(cc, "private").is_some() {
        return Err("private");
    }
    if directive(cc, "no-cache").is_some() {
        return Err("no-cache (would need revalidation on every use)");
    }
    if r.has_set_cookie {
        return Err("Set-Cookie");
    }
    if r.vary.is_some_and(|v| v.trim() == "*") {
        return Err("Vary: *");
    }
    let explicit = seconds(cc, "s-maxage").or_else(|| seconds(cc, "max-age"));
    // §3.5: an authorized answer only with public, s-maxage or must-revalidate.
    if r.authorized
        && directive(cc, "public").is_none()
        && directive(cc, "s-maxage").is_none()
        && directive(cc, "must-revalidate").is_none()
    {
        return Err("the request carried Authorization");
    }
    let life = if let Some(s) = explicit {
        Duration::from_secs(s)
    } else if let (Some(exp), Some(date)) =
        (r.expires.and_then(http_date), r.date.and_then(http_date))
    {
        Duration::from_secs(exp.saturating_sub(date))
    } else if let (Some(lm), Some(date)) = (
        r.last_modified.and_then(http_date),
        r.date.and_then(http_date),
    ) {
        // §4.2.2's heuristic, as Apache's CacheLastModifiedFactor 0.1.
        Duration::from_secs(date.saturating_sub(lm) / 10).min(limits.default_expire)
    } else if limits.ignore_no_last_mod {
        limits.default_expire
    } else {
        return Err("no expiry and no Last-Modified (ignore_no_last_mod = true stores it)");
    };
    if life.is_zero() {
        return Err("already stale");
    }
    Ok(life.min(limits.max_expire))
}

/// RFC 5861's `stale-while-revalidate` and `stale-if-error` of a
/// response; none when it says `must-revalidate` or `proxy-revalidate`.
pub fn stale_windows(cc: Option<&str>) -> (Duration, Duration) {
    let cc = cc.unwrap_or("");
    if directive(cc, "must-revalidate").is_some() || directive(cc, "proxy-revalidate").is_some() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let secs = |name| Duration::from_secs(seconds(cc, name).unwrap_or(0));
    (secs("stale-while-revalidate"), secs("stale-if-error"))
}

/// Whether a client's conditional request is met by a response with
/// these validators (RFC 9110 §13.1: If-None-Match first, weak comparison).
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> bool {
    if let Some(inm) = if_none_match {
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return etag.is_some_and(|e| {
            inm.split(',')
                .any(|t| t.trim() == "*" || weak(t) == weak(e))
        });
    }
    match (
        if_modified_since.and_then(http_date),
        last_modified.and_then(http_date),
    ) {
        (Some(since), Some(lm)) => lm <= since,
        _ => false,
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
pub fn http_date(s: &str) -> Option<u64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, time, ..] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let (day, year): (u64, u64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cc: &str) -> ResponseFacts<'_> {
        ResponseFacts {
            status: 200,
            cache_control: Some(cc),
            expires: None,
            date: None,
            last_modified: None,
            has_set_cookie: false,
            vary: None,
            authorized: false,
        }
    }
    const LIMITS: Limits = Limits {
        default_expire: Duration::from_secs(3600),
        max_expire: Duration::from_secs(86400),
        ignore_no_last_mod: false,
    };

    #[test]
    fn shared_cache_lifetimes() {
        assert_eq!(
            lifetime(&facts("max-age=60"), &LIMITS),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            lifetime(&facts("max-age=60, s-maxage=5"), &LIMITS),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            lifetime(&facts("max-age=999999"), &LIMITS),
            Ok(Duration::from_secs(86400))
        );
        assert!(lifetime(&facts("private, max-age=60"), &LIMITS).is_err());
        assert!(lifetime(&facts("no-store"), &LIMITS).is_err());
        assert!(
            lifetime(&facts(""), &LIMITS).is_err(),
            "no expiry, no Last-Modified"
        );
        let mut f = facts("");
        f.expires = Some("Sun, 06 Nov 1994 08:50:37 GMT");
        f.date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(lifetime(&f, &LIMITS), Ok(Duration::from_secs(60)));
        let mut auth = facts("max-age=60");
        auth.authorized = true;
        assert!(lifetime(&auth, &LIMITS).is_err());
        auth.cache_control = Some("max-age=60, public");
        assert!(lifetime(&auth, &LIMITS).is_ok());
    }

    #[test]
    fn stale_windows_and_conditionals() {
        let (swr, sie) = stale_windows(Some(
            "max-age=1, stale-while-revalidate=30, stale-if-error=60",
        ));
        assert_eq!((swr.as_secs(), sie.as_secs()), (30, 60));
        assert_eq!(
            stale_windows(Some("max-age=1, stale-if-error=60, must-revalidate")).1,
            Duration::ZERO
        );
        assert!(not_modified(
            Some("\"a\", W/\"b\""),
            None,
            Some("\"b\""),
            None
        ));
        assert!(!not_modified(Some("\"a\""), None, Some("\"b\""), None));
        let lm = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(not_modified(
            None,
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            None,
            lm
        ));
        assert!(!not_modified(
            None,
            Some("Sat, 05 Nov 1994 08:49:37 GMT"),
            None,
            lm
        ));
    }

    #[test]
    fn dates_and_requests() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(lookup(Some("no-cache"), None), Lookup::Bypass);
        assert_eq!(lookup(None, Some("no-cache")), Lookup::Bypass);
        assert_eq!(lookup(Some("max-age=0"), None), Lookup::Bypass);
        assert_eq!(lookup(Some("max-stale=10"), None), Lookup::Use);
    }
}
