//! The operator's RBAC, from one source: every rule names the code that needs it.
//! Cluster-wide rules go in a ClusterRole; what only concerns the operator's own
//! namespace (its Lease, its webhook TLS Secret) in a Role there. `dittofs-operator
//! rbac` prints both; the committed copies in `deploy/` and the Helm chart are
//! compared with it by a test.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One RBAC rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub api_group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Restrict to these names (empty: any). `create` can never be restricted so.
    pub resource_names: &'static [&'static str],
}

/// Webhook configurations whose caBundle the operator maintains (`run`).
pub const WEBHOOK_CONFIGURATIONS: &[&str] =
    &["dittofs-operator-validating", "dittofs-operator-mutating"];

/// The webhook's TLS Secret in the operator's namespace.
pub const WEBHOOK_TLS_SECRET: &str = "dittofs-operator-webhook-tls";

/// Every cluster-wide rule, least privilege.
pub const RULES: &[Rule] = &[
    // controller: watch DittoServers; finalizer add/remove (JSON patch).
    Rule {
        api_group: "dittofs.dittofs.com",
        resources: &["dittoservers"],
        verbs: &["get", "list", "watch", "patch"],
        resource_names: &[],
    },
    // controller/reconcile.rs: status merge patch.
    Rule {
        api_group: "dittofs.dittofs.com",
        resources: &["dittoservers/status"],
        verbs: &["get", "patch"],
        resource_names: &[],
    },
    // Children carry blockOwnerDeletion owner references.
    Rule {
        api_group: "dittofs.dittofs.com",
        resources: &["dittoservers/finalizers"],
        verbs: &["update"],
        resource_names: &[],
    },
    // controller: owned children — watch, server-side apply (create/patch), prune.
    Rule {
        api_group: "",
        resources: &["configmaps", "services"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        resource_names: &[],
    },
    Rule {
        api_group: "apps",
        resources: &["statefulsets"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        resource_names: &[],
    },
    // controller: referenced Secrets are read and watched (config hash, rotation);
    // managed Secrets applied and pruned; certs: the webhook TLS Secret (update).
    Rule {
        api_group: "",
        resources: &["secrets"],
        verbs: &[
            "get", "list", "watch", "create", "patch", "update", "delete",
        ],
        resource_names: &[],
    },
    // controller: the PerconaPGCluster (apply, watch by label, delete per deleteWithServer).
    Rule {
        api_group: "pgv2.percona.com",
        resources: &["perconapgclusters"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        resource_names: &[],
    },
    // controller/mod.rs: wait until the DittoServer CRD is established.
    Rule {
        api_group: "apiextensions.k8s.io",
        resources: &["customresourcedefinitions"],
        verbs: &["get"],
        resource_names: &[],
    },
    // webhook/lookups.rs: StorageClass cache (metadata watch).
    Rule {
        api_group: "storage.k8s.io",
        resources: &["storageclasses"],
        verbs: &["get", "list", "watch"],
        resource_names: &[],
    },
    // controller/events.rs: kube's Recorder creates events and patches repeats into series.
    Rule {
        api_group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        resource_names: &[],
    },
    // leader.rs: kube-lease-manager gets, creates and server-side applies the Lease.
    Rule {
        api_group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "create", "patch"],
        resource_names: &[],
    },
    // certs (inside `run`): only the caBundle of our two configurations.
    Rule {
        api_group: "admissionregistration.k8s.io",
        resources: &[
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
        ],
        verbs: &["get", "patch"],
        resource_names: WEBHOOK_CONFIGURATIONS,
    },
];

/// Rules of the Role in the operator's own namespace.
pub const NAMESPACED_RULES: &[Rule] = &[
    // leader.rs: kube-lease-manager gets, creates and server-side applies the Lease.
    Rule {
        api_group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "create", "patch"],
        resource_names: &[],
    },
    // certs (inside `run`): rotate the serving certificate of the TLS Secret.
    Rule {
        api_group: "",
        resources: &["secrets"],
        verbs: &["update"],
        resource_names: &[WEBHOOK_TLS_SECRET],
    },
];

fn strings(items: &[&str]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.iter().map(|s| s.to_string()).collect())
}

/// Rules as Kubernetes PolicyRules.
pub fn policy_rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.api_group.to_string()]),
            resources: strings(r.resources),
            verbs: r.verbs.iter().map(|v| v.to_string()).collect(),
            resource_names: strings(r.resource_names),
            ..Default::default()
        })
        .collect()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(
            [(
                "app.kubernetes.io/name".to_string(),
                "dittofs-operator".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

/// The ClusterRole named `name`.
pub fn cluster_role(name: &str) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None),
        rules: Some(policy_rules(RULES)),
        ..Default::default()
    }
}

/// The Role named `name` in `namespace`.
pub fn role(name: &str, namespace: &str) -> Role {
    Role {
        metadata: meta(name, Some(namespace)),
        rules: Some(policy_rules(NAMESPACED_RULES)),
    }
}

/// The ClusterRole and the Role (namespace `dittofs-system`) as YAML: what
/// `dittofs-operator rbac` prints and `deploy/rbac.yaml` holds.
pub fn rbac_yaml() -> Result<String, serde_yaml_ng::Error> {
    Ok(format!(
        "{}---\n{}",
        serde_yaml_ng::to_string(&cluster_role("dittofs-operator"))?,
        serde_yaml_ng::to_string(&role("dittofs-operator", "dittofs-system"))?
    ))
}

/// The cluster-wide rules for the Helm chart: object names follow the release name
/// (the chart renders this file with `tpl`).
pub fn chart_rules_yaml() -> Result<String, serde_yaml_ng::Error> {
    Ok(for_release(&serde_yaml_ng::to_string(&policy_rules(
        RULES,
    ))?))
}

/// The namespaced rules for the Helm chart's Role (rendered with `tpl`).
pub fn chart_namespaced_rules_yaml() -> Result<String, serde_yaml_ng::Error> {
    Ok(for_release(&serde_yaml_ng::to_string(&policy_rules(
        NAMESPACED_RULES,
    ))?))
}

/// Our object names start with the default release name; in the chart they start
/// with the actual one.
fn for_release(yaml: &str) -> String {
    yaml.replace("- dittofs-operator-", "- '{{ .Release.Name }}-")
        .lines()
        .map(|l| {
            if l.contains("'{{ .Release.Name }}-") {
                format!("{l}'")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
