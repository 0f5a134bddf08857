//! Which encoding a client gets: its `Accept-Encoding` with q-values
//! (RFC 9110 §12.5.3) against the configured list, whose order breaks ties.

/// The configured encoding the client prefers most, if it accepts any.
pub fn choose<'a>(accept: &str, offered: &'a [String]) -> Option<&'a str> {
    let mut best: Option<(&str, f32)> = None;
    for name in offered {
        let q = quality(accept, name);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((name, q));
        }
    }
    best.map(|(n, _)| n)
}

/// The q-value the client gives `coding`: its own entry, else `*`, else 0.
fn quality(accept: &str, coding: &str) -> f32 {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered() -> Vec<String> {
        vec!["br".into(), "gzip".into(), "zstd".into()]
    }

    #[test]
    fn q_values_decide_and_the_config_order_breaks_ties() {
        assert_eq!(choose("gzip, br", &offered()), Some("br"));
        assert_eq!(choose("gzip;q=1, br;q=0.5", &offered()), Some("gzip"));
        assert_eq!(choose("br;q=0, gzip", &offered()), Some("gzip"));
        assert_eq!(choose("*;q=0.1, gzip;q=0", &offered()), Some("br"));
        assert_eq!(choose("identity", &offered()), None);
        assert_eq!(choose("", &offered()), None);
        assert_eq!(choose("GZIP", &offered()), Some("gzip"));
    }
}
