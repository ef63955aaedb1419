//! Which namespaces one installation serves: every namespace (the default), or the
//! list given with `--watch-namespaces`.
//!
//! With a list, every watch and every request of the reconciler is made per
//! namespace (`controller/watches.rs`), the webhook judges only objects of those
//! namespaces (`webhook/admission.rs`), and the RBAC of that install grants the
//! namespaced verbs in those namespaces only (`rbac.rs`). So a stolen operator token
//! reads no Secret outside them.

/// Command-line arguments of the scope (shared by `run`, `controller` and `webhook`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ScopeArgs {
    /// Serve only DittoServers in these namespaces (comma-separated or repeated).
    /// Empty: every namespace. The RBAC and the webhook configurations of the
    /// install must follow (`dittofs-operator rbac --watch-namespaces …`, chart value
    /// `watchNamespaces`).
    #[arg(
        long = "watch-namespaces",
        value_name = "NAMESPACE",
        value_delimiter = ',',
        value_parser = parse_namespace,
        env = "DITTOFS_WATCH_NAMESPACES"
    )]
    pub watch_namespaces: Vec<String>,
}

impl ScopeArgs {
    pub fn scope(&self) -> WatchScope {
        WatchScope::of(self.watch_namespaces.iter().cloned())
    }
}

/// One `--watch-namespaces` item: a namespace name (surrounding spaces ignored).
/// An empty item (`a,,b`) is refused: it is most often a template that rendered
/// nothing.
pub fn parse_namespace(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        return Err(
            "an empty namespace name; give names separated by commas, e.g. team-a,team-b".into(),
        );
    }
    match crate::names::label_problem(name) {
        Some(reason) => Err(format!("{name:?} is not a namespace name: it {reason}")),
        None => Ok(name.to_string()),
    }
}

/// The namespaces an installation serves.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum WatchScope {
    /// Every namespace: cluster-wide watches and a ClusterRole.
    #[default]
    Cluster,
    /// These namespaces only (sorted, without duplicates, never empty).
    Namespaces(Vec<String>),
}

impl WatchScope {
    /// The scope of these namespaces (already checked by [`parse_namespace`]); none
    /// is every namespace.
    pub fn of(namespaces: impl IntoIterator<Item = String>) -> Self {
        let mut list: Vec<String> = namespaces.into_iter().collect();
        if list.is_empty() {
            return WatchScope::Cluster;
        }
        list.sort();
        list.dedup();
        WatchScope::Namespaces(list)
    }

    /// Is a DittoServer in `namespace` served by this installation?
    pub fn serves(&self, namespace: &str) -> bool {
        match self {
            WatchScope::Cluster => true,
            WatchScope::Namespaces(list) => list.iter().any(|n| n == namespace),
        }
    }

    /// The namespaces, or `None` for every namespace.
    pub fn namespaces(&self) -> Option<&[String]> {
        match self {
            WatchScope::Cluster => None,
            WatchScope::Namespaces(list) => Some(list),
        }
    }

    /// How the scope reads in logs and messages.
    pub fn describe(&self) -> String {
        match self {
            WatchScope::Cluster => "every namespace".to_string(),
            WatchScope::Namespaces(list) => format!("namespaces {}", list.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_namespace_is_every_namespace() {
        assert_eq!(WatchScope::of([]), WatchScope::Cluster);
        assert!(WatchScope::Cluster.serves("kube-system"));
        assert_eq!(WatchScope::Cluster.namespaces(), None);
    }

    #[test]
    fn names_are_sorted_and_deduplicated() {
        let scope = WatchScope::of(list(&["team-b", "team-a", "team-b"]));
        assert_eq!(scope, WatchScope::Namespaces(list(&["team-a", "team-b"])));
        assert!(scope.serves("team-a"));
        assert!(!scope.serves("kube-system"));
        assert_eq!(scope.describe(), "namespaces team-a, team-b");
    }

    #[test]
    fn the_flag_refuses_what_is_not_a_namespace_name() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            scope: ScopeArgs,
        }
        let parsed = Cli::try_parse_from(["x", "--watch-namespaces", "team-b, team-a"]).unwrap();
        assert_eq!(
            parsed.scope.scope(),
            WatchScope::Namespaces(list(&["team-a", "team-b"]))
        );
        let err = Cli::try_parse_from(["x", "--watch-namespaces", "team-a,Team_B"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--watch-namespaces"), "{err}");
        assert!(
            err.contains("\"Team_B\" is not a namespace name: it must be lowercase"),
            "{err}"
        );
        let err = Cli::try_parse_from(["x", "--watch-namespaces", "a,,b"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("an empty namespace name"), "{err}");
    }
}
