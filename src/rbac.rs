//! The operator's RBAC, from one source: every rule names the component and the code
//! path that needs it, and `tests/rbac_usage.rs` runs each component against an
//! in-memory API server and fails when a call is not granted *or* a granted verb is
//! never used.
//!
//! Three sets of rules, placed by the install's scope ([`Install::grants`]):
//! - [`CLUSTER_SCOPED_RULES`]: objects that exist once per cluster (the CRD,
//!   StorageClasses, our webhook configurations by name), always in a ClusterRole;
//! - [`SERVED_NAMESPACE_RULES`]: what serving DittoServers takes in their namespace
//!   (them, their children, the Secrets they read, events): in the ClusterRole when
//!   every namespace is served, otherwise in a Role in each served namespace
//!   (`--watch-namespaces`), so nothing outside them can be read;
//! - [`OPERATOR_NAMESPACE_RULES`]: the operator's own namespace (its Lease, its
//!   webhook TLS Secret), in a Role there.
//!
//! Object names follow the install ([`Install`]): the Helm release name, or
//! `dittofs-operator` for the plain manifests in `deploy/`. `dittofs-operator rbac
//! [--watch-namespaces …]` prints the roles; the committed copies in `deploy/` and the
//! Helm chart are compared with it by `tests/generated.rs`.
//!
//! RBAC cannot say "only Secrets of type Opaque": the ValidatingAdmissionPolicy of
//! [`crate::policy`] narrows the Secret writes these rules allow.
//!
//! The evaluation side (which RBAC attributes an HTTP request is authorized with, and
//! whether these rules grant them) lives with the tests, in
//! `tests/support/rbac_eval.rs`.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use crate::crd::DittoServer;
use crate::scope::WatchScope;

/// The part of the binary that makes a call; each is exercised by its own usage test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// `src/controller/`: the DittoServer reconciler and its watches.
    Reconciler,
    /// `src/controller/events.rs`: kube-runtime's event `Recorder`.
    Events,
    /// `src/webhook/lookups.rs`: cluster facts for the validation core (webhook and
    /// reconciler).
    Lookups,
    /// `src/leader.rs`: leader election through kube-lease-manager.
    Leader,
    /// `src/certs/bootstrap.rs`: the webhook TLS Secret and `caBundle`s (`run`
    /// repeats it every 30 s).
    Certs,
}

/// Objects a rule is restricted to. `create`, `list` and `watch` can never be
/// restricted by name (the API server authorizes them before a name exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    Any,
    /// The DittoServer CRD.
    Crd,
    /// The ValidatingWebhookConfiguration of this install.
    ValidatingWebhook,
    /// The MutatingWebhookConfiguration of this install.
    MutatingWebhook,
    /// Both webhook configurations (the certificate code looks each name up as both
    /// kinds).
    BothWebhooks,
    /// The webhook's `kubernetes.io/tls` Secret.
    WebhookTlsSecret,
    /// The leader-election Lease.
    Lease,
}

/// One RBAC rule and why it exists.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub component: Component,
    /// The code that makes the calls (file and function).
    pub code: &'static str,
    /// Why the calls are needed.
    pub why: &'static str,
    pub api_group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub names: Names,
}

/// The names one installation uses, and the namespaces it serves. The Helm chart
/// derives every name from the release name; `deploy/` uses the release name
/// `dittofs-operator`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// Prefix of every object name (the Helm release name).
    pub release: String,
    /// The operator's namespace (where the Lease and the TLS Secret live).
    pub namespace: String,
    /// The namespaces whose DittoServers it serves.
    pub scope: WatchScope,
}

/// Where a rule is granted: the ClusterRole, or a Role in one namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    Cluster,
    Namespace(String),
}

impl Install {
    /// What `deploy/` installs (every namespace served).
    pub fn plain() -> Self {
        Install {
            release: "dittofs-operator".into(),
            namespace: "dittofs-system".into(),
            scope: WatchScope::Cluster,
        }
    }

    /// Template expressions, rendered by the chart with `tpl`.
    pub fn helm() -> Self {
        Install {
            release: "{{ .Release.Name }}".into(),
            namespace: "{{ .Release.Namespace }}".into(),
            scope: WatchScope::Cluster,
        }
    }

    /// The same install serving `scope`.
    pub fn serving(self, scope: WatchScope) -> Self {
        Install { scope, ..self }
    }

    /// Every rule with where it is granted: cluster-scoped rules in the ClusterRole;
    /// the served-namespace rules there too when every namespace is served, else in
    /// a Role in each served namespace; the operator's own in a Role in its namespace.
    pub fn grants(&self) -> Vec<(&'static Rule, Grant)> {
        let mut grants: Vec<(&'static Rule, Grant)> = CLUSTER_SCOPED_RULES
            .iter()
            .map(|r| (r, Grant::Cluster))
            .collect();
        match self.scope.namespaces() {
            None => grants.extend(SERVED_NAMESPACE_RULES.iter().map(|r| (r, Grant::Cluster))),
            Some(namespaces) => {
                for ns in namespaces {
                    grants.extend(
                        SERVED_NAMESPACE_RULES
                            .iter()
                            .map(|r| (r, Grant::Namespace(ns.clone()))),
                    );
                }
            }
        }
        grants.extend(
            OPERATOR_NAMESPACE_RULES
                .iter()
                .map(|r| (r, Grant::Namespace(self.namespace.clone()))),
        );
        grants
    }

    /// The Role (and RoleBinding) of each served namespace: distinct from the
    /// operator's own Role, which may live in the same namespace.
    pub fn served_role(&self) -> String {
        format!("{}-dittoservers", self.release)
    }

    pub fn validating_webhook(&self) -> String {
        format!("{}-validating", self.release)
    }
    pub fn mutating_webhook(&self) -> String {
        format!("{}-mutating", self.release)
    }
    pub fn webhook_tls_secret(&self) -> String {
        format!("{}-webhook-tls", self.release)
    }
    pub fn webhook_service(&self) -> String {
        format!("{}-webhook", self.release)
    }
    /// The operator's ServiceAccount and its Lease share the release name.
    pub fn service_account(&self) -> String {
        self.release.clone()
    }
    pub fn lease(&self) -> String {
        self.release.clone()
    }
    /// The certificate bootstrap Job's ServiceAccount.
    pub fn certs_service_account(&self) -> String {
        format!("{}-certs", self.release)
    }

    /// The object names `names` stands for (empty: any).
    pub fn resolve(&self, names: Names) -> Vec<String> {
        match names {
            Names::Any => Vec::new(),
            Names::Crd => vec![format!(
                "{}.{}",
                DittoServer::plural(&()),
                DittoServer::group(&())
            )],
            Names::ValidatingWebhook => vec![self.validating_webhook()],
            Names::MutatingWebhook => vec![self.mutating_webhook()],
            Names::BothWebhooks => vec![self.validating_webhook(), self.mutating_webhook()],
            Names::WebhookTlsSecret => vec![self.webhook_tls_secret()],
            Names::Lease => vec![self.lease()],
        }
    }
}

const DITTOFS: &str = "dittofs.dittofs.com";
const CORE: &str = "";

/// Objects that exist once per cluster: always in the ClusterRole.
pub const CLUSTER_SCOPED_RULES: &[Rule] = &[
    Rule {
        component: Component::Reconciler,
        code: "controller/mod.rs wait_for_crd",
        why: "start the Controller only once the DittoServer CRD is established",
        api_group: "apiextensions.k8s.io",
        resources: &["customresourcedefinitions"],
        verbs: &["get"],
        names: Names::Crd,
    },
    Rule {
        component: Component::Lookups,
        code: "webhook/lookups.rs KubeLookup::start",
        why: "StorageClass names for validation (metadata-only reflector)",
        api_group: "storage.k8s.io",
        resources: &["storageclasses"],
        verbs: &["list", "watch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Certs,
        code: "certs/bootstrap.rs ensure_ca_bundles",
        why: "each --webhook-config name is looked up as both kinds",
        api_group: "admissionregistration.k8s.io",
        resources: &[
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
        ],
        verbs: &["get"],
        names: Names::BothWebhooks,
    },
    Rule {
        component: Component::Certs,
        code: "certs/bootstrap.rs ensure_config",
        why: "write caBundle (JSON patch guarded by a test of each webhook's name)",
        api_group: "admissionregistration.k8s.io",
        resources: &["validatingwebhookconfigurations"],
        verbs: &["patch"],
        names: Names::ValidatingWebhook,
    },
    Rule {
        component: Component::Certs,
        code: "certs/bootstrap.rs ensure_config",
        why: "write caBundle (JSON patch guarded by a test of each webhook's name)",
        api_group: "admissionregistration.k8s.io",
        resources: &["mutatingwebhookconfigurations"],
        verbs: &["patch"],
        names: Names::MutatingWebhook,
    },
];

/// What serving DittoServers takes in their namespace: in the ClusterRole when
/// every namespace is served, otherwise in a Role in each served namespace.
pub const SERVED_NAMESPACE_RULES: &[Rule] = &[
    Rule {
        component: Component::Reconciler,
        code: "controller/watches.rs Stores::start (the DittoServer reflector)",
        why: "watch DittoServers (the reflector lists, then watches)",
        api_group: DITTOFS,
        resources: &["dittoservers"],
        verbs: &["list", "watch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/finalizer.rs add, remove",
        why: "add and remove the finalizer with a guarded JSON patch",
        api_group: DITTOFS,
        resources: &["dittoservers"],
        verbs: &["patch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/status.rs write",
        why: "report conditions (merge patch of the status subresource)",
        api_group: DITTOFS,
        resources: &["dittoservers/status"],
        verbs: &["patch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "resources/labels.rs owner, sent by controller/write.rs apply",
        why: "owner references with blockOwnerDeletion (so that foreground deletion waits \
              for the children) need update on the \
              owner's finalizers subresource (OwnerReferencesPermissionEnforcement \
              admission plugin)",
        api_group: DITTOFS,
        resources: &["dittoservers/finalizers"],
        verbs: &["update"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/watches.rs Stores::start (metadata reflectors)",
        why: "watch the children (label-selected) and referenced Secrets",
        api_group: CORE,
        resources: &["configmaps", "services", "secrets"],
        verbs: &["list", "watch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/write.rs apply; controller/observe.rs read_secret",
        why: "read the live child (and referenced Secrets), then server-side apply it; \
              apply creates an absent object, which the API server authorizes as create",
        api_group: CORE,
        resources: &["configmaps", "services", "secrets"],
        verbs: &["get", "create", "patch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/write.rs delete_if_ours",
        why: "remove the metrics Service when metrics are turned off (only if the \
              DittoServer controls it)",
        api_group: CORE,
        resources: &["services"],
        verbs: &["delete"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/watches.rs Stores::start; controller/write.rs apply, \
               delete_if_ours",
        why: "watch, read and server-side apply the server pod's NetworkPolicy; remove \
              it when networkPolicy.enabled is turned off (only if the DittoServer \
              controls it)",
        api_group: "networking.k8s.io",
        resources: &["networkpolicies"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/watches.rs Stores::start; controller/write.rs apply, \
               delete_if_ours",
        why: "watch, read and server-side apply the ServiceMonitor of the metrics \
              Service (Prometheus Operator); remove it when it is no longer asked for \
              (only if the DittoServer controls it)",
        api_group: "monitoring.coreos.com",
        resources: &["servicemonitors"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/watches.rs Stores::start; controller/write.rs apply",
        why: "watch, read and server-side apply the StatefulSet (never deleted: PVCs \
              and data stay when a DittoServer goes)",
        api_group: "apps",
        resources: &["statefulsets"],
        verbs: &["get", "list", "watch", "create", "patch"],
        names: Names::Any,
    },
    Rule {
        component: Component::Reconciler,
        code: "controller/watches.rs Stores::start; controller/observe.rs \
               observe_percona; controller/write.rs apply, release; \
               controller/percona.rs cleanup",
        why: "watch, apply, orphan (JSON patch) and, with deleteWithServer, delete the \
              PerconaPGCluster of a DittoServer",
        api_group: "pgv2.percona.com",
        resources: &["perconapgclusters"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        names: Names::Any,
    },
    Rule {
        component: Component::Events,
        code: "controller/events.rs publish (kube::runtime::events::Recorder)",
        why: "publish an event (a Recorder per event: always a create, never a series \
              patch)",
        api_group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create"],
        names: Names::Any,
    },
    Rule {
        component: Component::Lookups,
        code: "webhook/lookups.rs KubeLookup::secret",
        why: "check that a referenced Secret exists and has the keys (value lengths only)",
        api_group: CORE,
        resources: &["secrets"],
        verbs: &["get"],
        names: Names::Any,
    },
];

/// The operator's own namespace: a Role there.
pub const OPERATOR_NAMESPACE_RULES: &[Rule] = &[
    Rule {
        component: Component::Leader,
        code: "leader.rs leadership (kube-lease-manager LeaseState::create)",
        why: "create the Lease when it does not exist yet",
        api_group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["create"],
        names: Names::Any,
    },
    Rule {
        component: Component::Leader,
        code: "leader.rs leadership, hold (kube-lease-manager LeaseState::get, patch)",
        why: "read, acquire, renew and release the Lease (apply and strategic-merge \
              patches)",
        api_group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "patch"],
        names: Names::Lease,
    },
    Rule {
        component: Component::Certs,
        code: "certs/bootstrap.rs ensure_secret",
        why: "create the TLS Secret on first start",
        api_group: CORE,
        resources: &["secrets"],
        verbs: &["create"],
        names: Names::Any,
    },
    Rule {
        component: Component::Certs,
        code: "certs/bootstrap.rs ensure_secret",
        why: "read the TLS Secret and replace it (resourceVersion-guarded) to rotate the \
              serving certificate",
        api_group: CORE,
        resources: &["secrets"],
        verbs: &["get", "update"],
        names: Names::WebhookTlsSecret,
    },
];

fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Option<Vec<String>> {
    let v: Vec<String> = items.into_iter().map(Into::into).collect();
    (!v.is_empty()).then_some(v)
}

/// Rules as Kubernetes PolicyRules, names resolved for `install`.
pub fn policy_rules<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    install: &Install,
) -> Vec<PolicyRule> {
    rules
        .into_iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.api_group.to_string()]),
            resources: strings(r.resources.iter().copied()),
            verbs: r.verbs.iter().map(|v| v.to_string()).collect(),
            resource_names: strings(install.resolve(r.names)),
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

/// The rules `install` grants at `grant`.
fn rules_at(install: &Install, grant: &Grant) -> Vec<&'static Rule> {
    install
        .grants()
        .into_iter()
        .filter(|(_, g)| g == grant)
        .map(|(r, _)| r)
        .collect()
}

/// The ClusterRole of `install`.
pub fn cluster_role(install: &Install) -> ClusterRole {
    ClusterRole {
        metadata: meta(&install.release, None),
        rules: Some(policy_rules(rules_at(install, &Grant::Cluster), install)),
        ..Default::default()
    }
}

/// The Role of `install` in its own namespace.
pub fn role(install: &Install) -> Role {
    Role {
        metadata: meta(&install.release, Some(&install.namespace)),
        rules: Some(policy_rules(OPERATOR_NAMESPACE_RULES, install)),
    }
}

/// With `--watch-namespaces`: the Role of each served namespace and the
/// RoleBinding that gives it to the operator's ServiceAccount.
pub fn served_roles(install: &Install) -> Vec<(Role, RoleBinding)> {
    let Some(namespaces) = install.scope.namespaces() else {
        return Vec::new();
    };
    namespaces
        .iter()
        .map(|ns| {
            let name = install.served_role();
            let role = Role {
                metadata: meta(&name, Some(ns)),
                rules: Some(policy_rules(SERVED_NAMESPACE_RULES, install)),
            };
            let binding = RoleBinding {
                metadata: meta(&name, Some(ns)),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name,
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: install.service_account(),
                    namespace: Some(install.namespace.clone()),
                    ..Default::default()
                }]),
            };
            (role, binding)
        })
        .collect()
}

/// The roles of `deploy/` serving `scope`, as YAML: what `dittofs-operator rbac`
/// prints; `deploy/rbac.yaml` holds it for every namespace,
/// `deploy/namespaced/rbac.yaml` for the example namespaces of `docs/install.md`.
/// The bindings of the ClusterRole and of the operator's Role are in
/// `deploy/bindings.yaml` (the same in both modes).
pub fn rbac_yaml(scope: &WatchScope) -> Result<String, serde_yaml_ng::Error> {
    let install = Install::plain().serving(scope.clone());
    let mut docs = vec![
        serde_yaml_ng::to_string(&cluster_role(&install))?,
        serde_yaml_ng::to_string(&role(&install))?,
    ];
    for (role, binding) in served_roles(&install) {
        docs.push(serde_yaml_ng::to_string(&role)?);
        docs.push(serde_yaml_ng::to_string(&binding)?);
    }
    Ok(docs.join("---\n"))
}

/// The chart's rule files (rendered with `tpl`): the ClusterRole's rules for
/// cluster-scoped objects, the rules of a served namespace (in the ClusterRole too
/// when `watchNamespaces` is empty), and the operator namespace's Role.
pub fn chart_rule_files() -> Result<[(&'static str, String); 3], serde_yaml_ng::Error> {
    let install = Install::helm();
    Ok([
        (
            "cluster-rules.yaml",
            serde_yaml_ng::to_string(&policy_rules(CLUSTER_SCOPED_RULES, &install))?,
        ),
        (
            "served-rules.yaml",
            serde_yaml_ng::to_string(&policy_rules(SERVED_NAMESPACE_RULES, &install))?,
        ),
        (
            "role-rules.yaml",
            serde_yaml_ng::to_string(&policy_rules(OPERATOR_NAMESPACE_RULES, &install))?,
        ),
    ])
}

/// The permissions as a Markdown table (rule → code path → why), one section per
/// scope, for `docs/install.md` (kept equal by `tests/generated.rs`).
pub fn markdown_table() -> String {
    let install = Install::plain();
    let mut out = String::new();
    for (title, rules) in [
        ("ClusterRole (cluster-scoped objects)", CLUSTER_SCOPED_RULES),
        (
            "Served namespaces: in the ClusterRole by default; with `--watch-namespaces`, a Role `dittofs-operator-dittoservers` in each listed namespace only",
            SERVED_NAMESPACE_RULES,
        ),
        (
            "Role (the operator's namespace only)",
            OPERATOR_NAMESPACE_RULES,
        ),
    ] {
        out.push_str(&format!(
            "**{title}**\n\n| API group | resources | verbs | names | code path | why |\n|---|---|---|---|---|---|\n"
        ));
        for r in rules {
            let names = install.resolve(r.names);
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | `{}` | {} |\n",
                if r.api_group.is_empty() {
                    "\"\""
                } else {
                    r.api_group
                },
                r.resources.join(", "),
                r.verbs.join(", "),
                if names.is_empty() {
                    "any".to_string()
                } else {
                    names.join(", ")
                },
                r.code,
                r.why
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_update_or_delete_outside_the_operator_namespace_and_no_wildcards() {
        for rule in CLUSTER_SCOPED_RULES.iter().chain(SERVED_NAMESPACE_RULES) {
            assert!(!rule.verbs.contains(&"*") && !rule.resources.contains(&"*"));
            if rule.api_group.is_empty() && rule.resources.contains(&"secrets") {
                for verb in ["update", "delete", "deletecollection"] {
                    assert!(!rule.verbs.contains(&verb), "cluster-wide secrets {verb}");
                }
            }
            assert!(
                !rule.resources.contains(&"leases"),
                "Leases belong in the operator's namespace"
            );
        }
    }

    #[test]
    fn restricted_rules_never_carry_unrestrictable_verbs() {
        for rule in CLUSTER_SCOPED_RULES
            .iter()
            .chain(SERVED_NAMESPACE_RULES)
            .chain(OPERATOR_NAMESPACE_RULES)
        {
            if rule.names != Names::Any {
                for verb in ["create", "list", "watch", "deletecollection"] {
                    assert!(!rule.verbs.contains(&verb), "{verb} in {}", rule.code);
                }
            }
        }
    }

    #[test]
    fn helm_names_are_template_expressions() {
        let [_, _, (_, yaml)] = chart_rule_files().unwrap();
        assert!(yaml.contains("'{{ .Release.Name }}-webhook-tls'"), "{yaml}");
        assert!(yaml.contains("'{{ .Release.Name }}'"), "{yaml}");
    }
}
