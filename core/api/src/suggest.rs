//! "Did you mean …?": the known word nearest to a mistyped one, for error messages of the core and of modules.

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a typo: at most one edit per three characters (at least one), and
/// never the whole word. Ties go to the first candidate.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_len = word.chars().count();
    let allowed = (word_len / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            (
                distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= allowed && *d < word_len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"did you mean X?"` for the nearest candidate, or `None`.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    nearest(word, candidates).map(|c| format!("did you mean {c}?"))
}

/// What no loaded module provides (an lbmethod, a URL scheme), and what to
/// do: enable the module whose descriptor provides it (`offered_by`), else
/// take the loaded one it is a near miss of, else one of those loaded.
/// `what` names the kind ("lbmethod"); `show` writes a name as the user
/// writes it (`http` as `http://`). One line: "problem: fix".
pub fn missing_provider(
    what: &str,
    name: &str,
    loaded: &[String],
    offered_by: Option<&str>,
    show: fn(&str) -> String,
) -> String {
    if let Some(module) = offered_by {
        return format!(
            "{what} {} is provided by module {module}, which is not enabled: run `modproxy enmod {module}`",
            show(name)
        );
    }
    let listed: Vec<String> = loaded.iter().map(|n| show(n)).collect();
    let listed = if listed.is_empty() {
        "none is loaded".to_string()
    } else {
        format!("loaded: {}", listed.join(", "))
    };
    match nearest(name, loaded.iter().map(String::as_str)) {
        Some(near) => format!(
            "no enabled module provides {what} {} ({listed}): did you mean {}?",
            show(name),
            show(near)
        ),
        None => format!(
            "no enabled module provides {what} {} ({listed}): use a loaded one, or enable the module that provides it",
            show(name)
        ),
    }
}

/// Levenshtein distance over characters, with one row of memory.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(distance("byrequest", "byrequests"), 1);
        assert_eq!(distance("htp", "http"), 1);
        assert_eq!(distance("loadfactr", "loadfactor"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn a_missing_provider_names_its_module_or_a_near_miss_or_the_loaded_ones() {
        let loaded = ["byrequests".to_string(), "bytraffic".to_string()];
        let plain = |s: &str| s.to_string();
        assert_eq!(
            missing_provider("lbmethod", "bybusyness", &loaded, Some("lbmethod_bybusyness"), plain),
            "lbmethod bybusyness is provided by module lbmethod_bybusyness, which is not enabled: run `modproxy enmod lbmethod_bybusyness`"
        );
        assert_eq!(
            missing_provider("lbmethod", "byrequest", &loaded, None, plain),
            "no enabled module provides lbmethod byrequest (loaded: byrequests, bytraffic): did you mean byrequests?"
        );
        let url = |s: &str| format!("{s}://");
        let schemes = ["http".to_string(), "https".to_string()];
        let fix = missing_provider("scheme", "htp", &schemes, None, url);
        assert!(
            fix.ends_with("(loaded: http://, https://): did you mean http://?"),
            "{fix}"
        );
        let fix = missing_provider("scheme", "gopher", &[], None, url);
        assert!(
            fix.contains("gopher:// (none is loaded): use a loaded one"),
            "{fix}"
        );
    }

    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        let methods = ["bybusyness", "byrequests", "bytraffic"];
        assert_eq!(nearest("byrequest", methods), Some("byrequests"));
        assert_eq!(nearest("ByRequests", methods), Some("byrequests"));
        assert_eq!(nearest("roundrobin", methods), None);
        assert_eq!(nearest("htp", ["http", "https", "ws"]), Some("http"));
        // One letter is no evidence of a typo of another one-letter word.
        assert_eq!(nearest("x", ["y"]), None);
        assert_eq!(
            nearest("byrequests", methods),
            None,
            "an exact match is no typo"
        );
        assert_eq!(
            did_you_mean("timout", ["timeout", "ttl"]).as_deref(),
            Some("did you mean timeout?")
        );
    }
}
