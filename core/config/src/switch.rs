//! a2enmod/a2dismod logic shared by modules and sites: dependency pull-in, dependant checks, messages.
use crate::error::Error;
use crate::links::{Kind, State};
use std::collections::BTreeSet;
use std::path::Path;

/// Last message of an enable or disable that changed something; the caller prints it as is.
pub const RESTART_HINT: &str = "To activate the new configuration, run: modproxy restart";

/// Answers "what does NAME need" (enable) or "which enabled ones need NAME" (disable).
pub(crate) type Graph<'a> = &'a dyn Fn(&str) -> Vec<String>;

struct Run<'a> {
    kind: &'a Kind,
    root: &'a Path,
    seen: BTreeSet<String>,
    messages: Vec<String>,
    changed: bool,
}

impl<'a> Run<'a> {
    fn new(kind: &'a Kind, root: &'a Path) -> Self {
        Self {
            kind,
            root,
            seen: BTreeSet::new(),
            messages: Vec::new(),
            changed: false,
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.changed {
            self.messages.push(RESTART_HINT.to_string());
        }
        self.messages
    }

    fn enable(&mut self, name: &str, available: &[String], depends: Graph) -> Result<(), Error> {
        let (kind, root) = (self.kind, self.root);
        if !self.seen.insert(name.to_string()) {
            // Already handled in this run, or on the current path of a dependency cycle.
            if kind.state(root, name) == State::Enabled {
                self.messages
                    .push(format!("{} {name} already enabled", kind.title));
            }
            return Ok(());
        }
        for dep in depends(name) {
            if !available.contains(&dep) {
                return Err(Error::new(
                    format!(
                        "{} {name} depends on {dep}, but {}/{dep}.toml does not exist",
                        kind.noun, kind.available
                    ),
                    format!(
                        "install {dep}, or remove it from `depends` in {}/{name}.toml",
                        kind.available
                    ),
                ));
            }
            self.messages
                .push(format!("Considering dependency {dep} for {name}:"));
            self.enable(&dep, available, depends)?;
        }
        if kind.state(root, name) == State::Enabled {
            self.messages
                .push(format!("{} {name} already enabled", kind.title));
        } else {
            kind.link(root, name)?;
            self.messages
                .push(format!("Enabling {} {name}.", kind.noun));
            self.changed = true;
        }
        Ok(())
    }

    /// Post-order, so dependants go before what they need.
    fn disable(&mut self, name: &str, dependants: Graph) -> Result<(), Error> {
        if !self.seen.insert(name.to_string()) {
            return Ok(());
        }
        for dependant in dependants(name) {
            self.disable(&dependant, dependants)?;
        }
        let (kind, root) = (self.kind, self.root);
        if kind.state(root, name) == State::Missing {
            self.messages
                .push(format!("{} {name} already disabled", kind.title));
        } else {
            kind.unlink(root, name)?;
            self.messages
                .push(format!("Disabling {} {name}.", kind.noun));
            self.changed = true;
        }
        Ok(())
    }
}

/// Enables `names` and, first, everything they depend on. Nothing changes if a name is unknown.
pub(crate) fn enable(
    kind: &Kind,
    root: &Path,
    names: &[String],
    available: &[String],
    depends: Graph,
) -> Result<Vec<String>, Error> {
    if let Some(unknown) = names.iter().find(|n| !available.contains(n)) {
        return Err(kind.unknown(unknown, available));
    }
    let mut run = Run::new(kind, root);
    for name in names {
        run.enable(name, available, depends)?;
    }
    Ok(run.finish())
}

/// Disables `names`. Enabled dependants that are not also being disabled block it, unless `force`,
/// which disables them too. Nothing changes if a name is unknown or blocked.
pub(crate) fn disable(
    kind: &Kind,
    root: &Path,
    names: &[String],
    known: &[String],
    dependants: Graph,
    force: bool,
) -> Result<Vec<String>, Error> {
    if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
        return Err(kind.unknown(unknown, known));
    }
    for name in names.iter().filter(|_| !force) {
        let blockers: Vec<String> = all_dependants(name, dependants)
            .into_iter()
            .filter(|d| !names.contains(d))
            .collect();
        if !blockers.is_empty() {
            return Err(Error::new(
                format!("{} {name} is needed by {}", kind.noun, blockers.join(", ")),
                "disable those first, or use -f to disable them too",
            ));
        }
    }
    let mut run = Run::new(kind, root);
    for name in names {
        run.disable(name, dependants)?;
    }
    Ok(run.finish())
}

/// Direct and indirect dependants, in discovery order.
fn all_dependants(name: &str, dependants: Graph) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut queue = dependants(name);
    while let Some(next) = queue.pop() {
        if next != name && !found.contains(&next) {
            queue.extend(dependants(&next));
            found.push(next);
        }
    }
    found
}
