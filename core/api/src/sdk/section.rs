//! Reads a configuration section into a module's serde type and reports every problem in it, each with its key path, rather than serde's first.

use crate::suggest::did_you_mean;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use std::collections::BTreeMap;
use toml::Value;

/// More problems than any hand-written section has; a bound on the retries.
const MAX_PROBLEMS: usize = 100;

/// Deserializes `value` into `T`. Each time serde stops, the problem is
/// recorded with its key path below `at` (`file: vhost[0].proxy.balancer`)
/// and the offending key or entry is left out, and serde runs again, so one
/// run names every problem. Returns what could be read (every key serde
/// did not reject) and the problems, each "at.path: problem: fix".
pub fn read<T: DeserializeOwned>(at: &str, mut value: Value) -> (Option<T>, Vec<String>) {
    let mut problems = Vec::new();
    let mut removed = Removed::default();
    while problems.len() < MAX_PROBLEMS {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return (Some(v), problems),
            Err(e) => e,
        };
        let mut path: Vec<Segment> = err.path().iter().cloned().collect();
        let message = err.inner().message().to_string();
        let problem = Problem::of(&message);
        // serde_path_to_error names an unknown key itself; be sure of it.
        if let Problem::Unknown { key, .. } = &problem {
            if !matches!(path.last(), Some(Segment::Map { key: k }) if k == key) {
                path.push(Segment::Map { key: key.clone() });
            }
        }
        let original = removed.original(&path);
        let cascade = matches!(&problem, Problem::Missing { key } if removed.keys.contains(&join(&original, key)));
        if !cascade {
            problems.push(problem.describe(at, &original, &message));
        }
        if path.is_empty() || !remove(&mut value, &path) {
            return (None, problems);
        }
        removed.note(&original, &path);
    }
    (None, problems)
}

/// What serde said, in the shapes whose fix we can name.
enum Problem {
    Unknown {
        key: String,
        known: Vec<String>,
    },
    Missing {
        key: String,
    },
    /// `invalid type` or `invalid value`: what was expected, in serde's words.
    Wrong {
        expected: String,
    },
    Other,
}

impl Problem {
    /// serde's messages are fixed formats (`serde::de::Error`'s provided methods).
    fn of(message: &str) -> Problem {
        let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let known = rest
                .split('`')
                .skip(3)
                .step_by(2)
                .map(str::to_string)
                .collect();
            return Problem::Unknown {
                key: quoted(rest).unwrap_or_default(),
                known,
            };
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            return Problem::Missing {
                key: quoted(rest).unwrap_or_default(),
            };
        }
        if message.starts_with("invalid type") || message.starts_with("invalid value") {
            if let Some((_, expected)) = message.rsplit_once(", expected ") {
                return Problem::Wrong {
                    expected: plain_words(expected),
                };
            }
        }
        Problem::Other
    }

    fn describe(&self, at: &str, path: &str, message: &str) -> String {
        let place = if path.is_empty() {
            at.to_string()
        } else if path.starts_with('[') {
            format!("{at}{path}")
        } else {
            format!("{at}.{path}")
        };
        match self {
            Problem::Unknown { key, known } => {
                let valid = known.join(", ");
                match did_you_mean(key, known.iter().map(String::as_str)) {
                    Some(hint) => format!("{place}: unknown key: {hint} (valid keys are {valid})"),
                    None => {
                        format!("{place}: unknown key: check the spelling; valid keys are {valid}")
                    }
                }
            }
            Problem::Missing { key } => {
                format!("{place}: {key} is missing: add {key} = …")
            }
            Problem::Wrong { expected } => {
                let found = message.split(", expected ").next().unwrap_or(message);
                format!("{place}: {found}: write {expected}")
            }
            Problem::Other => format!("{place}: {message}: fix this value"),
        }
    }
}

/// serde's Rust-flavoured expectations (`u32`, `a sequence`) in TOML's words.
fn plain_words(expected: &str) -> String {
    let number = [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ];
    if number.contains(&expected) {
        return "a whole number".into();
    }
    if expected.starts_with("struct ") || expected == "a map" {
        return "a table".into();
    }
    match expected {
        "a sequence" => "an array".into(),
        "a boolean" => "true or false".into(),
        other => other.to_string(),
    }
}

/// Which keys and array entries were left out so far, by their path in the
/// section as written, so later problems are named by that path too.
#[derive(Default)]
struct Removed {
    /// Original indexes taken out of each array (by the array's original path).
    entries: BTreeMap<String, Vec<usize>>,
    /// Original paths of every removed key or entry.
    keys: Vec<String>,
}

impl Removed {
    /// The path as written of `path`, which is into the value as it is now.
    fn original(&self, path: &[Segment]) -> String {
        let mut out = String::new();
        for segment in path {
            match segment {
                Segment::Seq { index } => {
                    let gone = self.entries.get(&out).map_or(&[][..], Vec::as_slice);
                    let index = (0..)
                        .filter(|i| !gone.contains(i))
                        .nth(*index)
                        .unwrap_or(*index);
                    out.push_str(&format!("[{index}]"));
                }
                Segment::Map { key } => out = join(&out, key),
                Segment::Enum { variant } => out = join(&out, variant),
                Segment::Unknown => {}
            }
        }
        out
    }

    fn note(&mut self, original: &str, path: &[Segment]) {
        if let Some(Segment::Seq { .. }) = path.last() {
            if let Some((parent, index)) = original
                .strip_suffix(']')
                .and_then(|p| p.rsplit_once('['))
                .and_then(|(p, i)| Some((p.to_string(), i.parse().ok()?)))
            {
                self.entries.entry(parent).or_default().push(index);
            }
        }
        self.keys.push(original.to_string());
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Takes the key or entry at `path` out of `value`; false if it is not there.
fn remove(value: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut here = value;
    for segment in parents {
        let next = match (segment, here) {
            (Segment::Seq { index }, Value::Array(a)) => a.get_mut(*index),
            (Segment::Map { key }, Value::Table(t)) => t.get_mut(key),
            _ => None,
        };
        let Some(next) = next else { return false };
        here = next;
    }
    match (last, here) {
        (Segment::Seq { index }, Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        (Segment::Map { key }, Value::Table(t)) => t.remove(key).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Balancer {
        name: String,
        #[serde(default)]
        lbmethod: String,
        members: Vec<Member>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Member {
        url: String,
        #[serde(default)]
        loadfactor: u32,
    }

    fn read_str(text: &str) -> (Option<Vec<Balancer>>, Vec<String>) {
        let value: toml::Table = text.parse().unwrap();
        read("f.toml: vhost[0].proxy.balancer", value["balancer"].clone())
    }

    #[test]
    fn every_problem_is_named_with_its_path_and_the_rest_is_read() {
        let (value, problems) = read_str(
            r#"[[balancer]]
            name = "a"
            lbmethod = 3
            members = [{ url = "http://x", loadfactr = 2 }, { loadfactor = 1 }, { url = "http://y", loadfactor = "two" }]
            [[balancer]]
            name = "b"
            members = []
            "#,
        );
        let expected = [
            "f.toml: vhost[0].proxy.balancer[0].lbmethod: invalid type: integer `3`: write a string",
            "f.toml: vhost[0].proxy.balancer[0].members[0].loadfactr: unknown key: did you mean loadfactor? (valid keys are url, loadfactor)",
            "f.toml: vhost[0].proxy.balancer[0].members[1]: url is missing: add url = …",
            "f.toml: vhost[0].proxy.balancer[0].members[2].loadfactor: invalid type: string \"two\": write a whole number",
        ];
        assert_eq!(problems, expected);
        let value = value.unwrap();
        assert_eq!(value.len(), 2);
        let urls: Vec<&str> = value[0].members.iter().map(|m| m.url.as_str()).collect();
        assert_eq!(urls, ["http://x", "http://y"]);
        let left_out = (value[0].lbmethod.as_str(), value[0].members[0].loadfactor);
        assert_eq!((value[1].name.as_str(), left_out), ("b", ("", 0)));
    }

    #[test]
    fn a_required_key_of_the_wrong_type_is_one_problem_not_two() {
        let (value, problems) = read_str("[[balancer]]\nname = 1\nmembers = []\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("balancer[0].name: invalid type"),
            "{problems:?}"
        );
        assert_eq!(value.map(|v| v.len()), Some(0));
    }

    #[test]
    fn a_whole_section_of_the_wrong_shape_is_one_problem() {
        let (value, problems) = read::<Vec<Balancer>>("f.toml: b", Value::Integer(1));
        assert!(value.is_none());
        assert_eq!(
            problems,
            ["f.toml: b: invalid type: integer `1`: write an array"]
        );
    }
}
