//! Load order: every module after the modules it depends on, ties broken by name.
use std::collections::{BTreeMap, BTreeSet};

/// Kahn's algorithm over `deps` (module -> its dependencies). Dependencies that are not keys are
/// ignored here; the caller reports them. On a cycle, returns the modules that could not be ordered.
///
/// Example: `{proxy: [], proxy_http: [proxy], proxy_balancer: [proxy], lbmethod_byrequests: [proxy_balancer]}`
/// orders as proxy, proxy_balancer, lbmethod_byrequests, proxy_http: after proxy, both proxy_*
/// are ready and proxy_balancer sorts first; then lbmethod_byrequests sorts before proxy_http.
pub(crate) fn load_order(deps: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, Vec<String>> {
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependants: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, needs) in deps {
        let known: BTreeSet<&str> = needs
            .iter()
            .map(String::as_str)
            .filter(|d| deps.contains_key(*d))
            .collect();
        waiting.insert(name, known.len());
        for dep in known {
            dependants.entry(dep).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(m, _)| *m)
        .collect();
    let mut order = Vec::new();
    while let Some(next) = ready.pop_first() {
        order.push(next.to_string());
        for dependant in dependants.get(next).into_iter().flatten() {
            let count = waiting.entry(dependant).or_default();
            *count -= 1;
            if *count == 0 {
                ready.insert(dependant);
            }
        }
    }
    let stuck: Vec<String> = waiting
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(m, _)| m.to_string())
        .collect();
    if stuck.is_empty() {
        Ok(order)
    } else {
        Err(stuck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(m, d)| (m.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn the_documented_example() {
        let g = graph(&[
            ("proxy_http", &["proxy"]),
            ("lbmethod_byrequests", &["proxy_balancer"]),
            ("proxy_balancer", &["proxy"]),
            ("proxy", &[]),
        ]);
        let order = load_order(&g).unwrap();
        assert_eq!(
            order,
            [
                "proxy",
                "proxy_balancer",
                "lbmethod_byrequests",
                "proxy_http"
            ]
        );
    }

    #[test]
    fn cycles_name_their_members() {
        let g = graph(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
        assert_eq!(load_order(&g).unwrap_err(), ["a", "b"]);
    }
}
