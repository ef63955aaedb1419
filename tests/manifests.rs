//! The plain manifests under webhook/ and certs/: each parses into its typed Kubernetes object
//! with no field lost, they name the same objects as each other, and the bootstrap's RBAC is
//! exactly what src/certs/bootstrap.rs calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use dittofs_operator::certs::{API_ACCESS, CertsArgs, NamesFrom};
use dittofs_operator::cli::{Cli, Command};
use dittofs_operator::crd::DittoServer;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "dittofs-system";

#[derive(Default)]
struct Manifests {
    services: Vec<Service>,
    validating: Vec<ValidatingWebhookConfiguration>,
    mutating: Vec<MutatingWebhookConfiguration>,
    jobs: Vec<Job>,
    service_accounts: Vec<ServiceAccount>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML under {dir}/");
    files
}

/// Typed parse that fails on any field the type does not know (a typo would otherwise vanish).
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &Value, origin: &str) -> T {
    let object: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
    let back = serde_json::to_value(&object).unwrap();
    assert_eq!(
        &back, doc,
        "{origin}: fields were dropped or changed by the typed parse"
    );
    object
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    for dir in ["webhook", "certs"] {
        for file in yaml_files(dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
                let doc = Value::deserialize(document)
                    .unwrap_or_else(|e| panic!("{}: document {i}: {e}", file.display()));
                if doc.is_null() {
                    continue;
                }
                let origin = format!("{} document {i}", file.display());
                match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
                    (Some("v1"), Some("Service")) => m.services.push(typed(&doc, &origin)),
                    (Some("v1"), Some("ServiceAccount")) => {
                        m.service_accounts.push(typed(&doc, &origin))
                    }
                    (
                        Some("admissionregistration.k8s.io/v1"),
                        Some("ValidatingWebhookConfiguration"),
                    ) => m.validating.push(typed(&doc, &origin)),
                    (
                        Some("admissionregistration.k8s.io/v1"),
                        Some("MutatingWebhookConfiguration"),
                    ) => m.mutating.push(typed(&doc, &origin)),
                    (Some("batch/v1"), Some("Job")) => m.jobs.push(typed(&doc, &origin)),
                    (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => {
                        m.roles.push(typed(&doc, &origin))
                    }
                    (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
                        m.role_bindings.push(typed(&doc, &origin))
                    }
                    (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                        m.cluster_roles.push(typed(&doc, &origin))
                    }
                    (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                        m.cluster_role_bindings.push(typed(&doc, &origin))
                    }
                    (api, kind) => panic!("{origin}: unexpected object {api:?} {kind:?}"),
                }
            }
        }
    }
    m
}

fn only<'a, T>(items: &'a [T], what: &str) -> &'a T {
    assert_eq!(items.len(), 1, "expected exactly one {what}");
    &items[0]
}

/// The Job's arguments, parsed by the binary's own command line.
fn job_args(m: &Manifests) -> CertsArgs {
    let job = only(&m.jobs, "Job");
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = only(&pod.containers, "container");
    let mut argv = vec!["dittofs-operator".to_string()];
    argv.extend(container.args.clone().unwrap());
    match Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("Job args: {e}"))
        .command
    {
        Command::Certs(args) => {
            args.validate().unwrap();
            args
        }
        other => panic!("the Job runs {other:?}, not certs"),
    }
}

#[test]
fn every_manifest_parses_into_its_typed_object() {
    let m = load();
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.validating.len(), 1);
    assert_eq!(m.mutating.len(), 1);
    assert_eq!(m.jobs.len(), 1);
    assert_eq!(m.service_accounts.len(), 1);
    assert_eq!(m.roles.len(), 1);
    assert_eq!(m.role_bindings.len(), 1);
    assert_eq!(m.cluster_roles.len(), 1);
    assert_eq!(m.cluster_role_bindings.len(), 1);
}

#[test]
fn namespaced_objects_live_in_the_operator_namespace() {
    let m = load();
    let namespaces = m
        .services
        .iter()
        .map(|o| &o.metadata)
        .chain(m.jobs.iter().map(|o| &o.metadata))
        .chain(m.service_accounts.iter().map(|o| &o.metadata))
        .chain(m.roles.iter().map(|o| &o.metadata))
        .chain(m.role_bindings.iter().map(|o| &o.metadata))
        .map(|meta| meta.namespace.as_deref());
    for ns in namespaces {
        assert_eq!(ns, Some(NAMESPACE));
    }
    for meta in m
        .validating
        .iter()
        .map(|o| &o.metadata)
        .chain(m.mutating.iter().map(|o| &o.metadata))
        .chain(m.cluster_roles.iter().map(|o| &o.metadata))
        .chain(m.cluster_role_bindings.iter().map(|o| &o.metadata))
    {
        assert_eq!(meta.namespace, None, "{:?} is cluster-scoped", meta.name);
    }
}

#[test]
fn the_job_names_the_same_service_secret_and_configurations_as_the_other_manifests() {
    let m = load();
    let args = job_args(&m);
    assert_eq!(args.namespace, NAMESPACE);
    let service = only(&m.services, "Service");
    assert_eq!(
        service.metadata.name.as_deref(),
        Some(args.service.as_str())
    );

    let configs: BTreeSet<String> = m
        .validating
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .chain(m.mutating.iter().map(|c| c.metadata.name.clone().unwrap()))
        .collect();
    let named: BTreeSet<String> = args.webhook_configs.iter().cloned().collect();
    assert_eq!(named, configs);
    assert_eq!(
        named.len(),
        args.webhook_configs.len(),
        "a configuration is named twice"
    );

    // Every webhook is reached through that Service, on its port.
    let port = only(
        service.spec.as_ref().unwrap().ports.as_ref().unwrap(),
        "port",
    )
    .port;
    let client_configs: Vec<&WebhookClientConfig> = m
        .validating
        .iter()
        .flat_map(|c| c.webhooks.iter().flatten().map(|w| &w.client_config))
        .chain(
            m.mutating
                .iter()
                .flat_map(|c| c.webhooks.iter().flatten().map(|w| &w.client_config)),
        )
        .collect();
    assert_eq!(client_configs.len(), 2);
    for cc in client_configs {
        let svc = cc.service.as_ref().expect("clientConfig.service");
        assert_eq!(svc.name, args.service);
        assert_eq!(svc.namespace, args.namespace);
        assert_eq!(svc.port, Some(port));
        assert_eq!(cc.url, None);
        assert_eq!(cc.ca_bundle, None, "the bootstrap owns caBundle");
    }
}

#[test]
fn the_service_forwards_443_to_the_webhook_port_of_the_operator_pods_only() {
    let m = load();
    let service = only(&m.services, "Service");
    let spec = service.spec.as_ref().unwrap();
    let port = only(spec.ports.as_ref().unwrap(), "port");
    assert_eq!(port.port, 443);
    assert_eq!(port.target_port, Some(IntOrString::Int(9443)));
    let selector = spec.selector.clone().unwrap();
    assert_eq!(
        selector,
        BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            "dittofs-operator".to_string()
        )])
    );
    // The bootstrap Job's pod must never receive admission traffic.
    let job = only(&m.jobs, "Job");
    let pod_labels = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    let pod_labels = pod_labels.labels.clone().unwrap_or_default();
    assert!(
        !selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the Service selector matches the Job's pod"
    );
}

fn assert_dittoserver_rules(rules: &[RuleWithOperations], origin: &str) {
    let rule = only(rules, "rule");
    assert_eq!(
        rule.api_groups.as_deref(),
        Some(&[DittoServer::group(&()).to_string()][..]),
        "{origin}"
    );
    assert_eq!(
        rule.api_versions.as_deref(),
        Some(&[DittoServer::version(&()).to_string()][..]),
        "{origin}"
    );
    let resources = rule.resources.clone().unwrap();
    assert_eq!(
        resources,
        [DittoServer::plural(&()).to_string()],
        "{origin}"
    );
    assert!(
        resources.iter().all(|r| !r.contains('/')),
        "{origin}: never a subresource"
    );
    assert_eq!(
        rule.operations.as_deref(),
        Some(&["CREATE".to_string(), "UPDATE".to_string()][..]),
        "{origin}"
    );
    assert_eq!(rule.scope.as_deref(), Some("Namespaced"), "{origin}");
}

#[test]
fn the_validating_webhook_reviews_dittoserver_creates_and_updates() {
    let m = load();
    let config = only(&m.validating, "ValidatingWebhookConfiguration");
    assert_eq!(
        config.metadata.name.as_deref(),
        Some("dittofs-operator-validating")
    );
    let hook = only(config.webhooks.as_deref().unwrap(), "webhook");
    assert_eq!(hook.name, "validate.dittoservers.dittofs.dittofs.com");
    assert_eq!(
        hook.client_config.service.as_ref().unwrap().path.as_deref(),
        Some("/validate")
    );
    assert_dittoserver_rules(hook.rules.as_deref().unwrap(), "validating");
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.side_effects, "None");
    assert_eq!(hook.timeout_seconds, Some(5));
    assert_eq!(hook.admission_review_versions, ["v1"]);
    assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));
}

#[test]
fn the_mutating_webhook_defaults_dittoserver_creates_and_updates() {
    let m = load();
    let config = only(&m.mutating, "MutatingWebhookConfiguration");
    assert_eq!(
        config.metadata.name.as_deref(),
        Some("dittofs-operator-mutating")
    );
    let hook = only(config.webhooks.as_deref().unwrap(), "webhook");
    assert_eq!(hook.name, "mutate.dittoservers.dittofs.dittofs.com");
    assert_eq!(
        hook.client_config.service.as_ref().unwrap().path.as_deref(),
        Some("/mutate")
    );
    assert_dittoserver_rules(hook.rules.as_deref().unwrap(), "mutating");
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.side_effects, "None");
    assert_eq!(hook.timeout_seconds, Some(5));
    assert_eq!(hook.admission_review_versions, ["v1"]);
    assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));
    assert_eq!(hook.reinvocation_policy.as_deref(), Some("Never"));
}

#[test]
fn the_job_runs_restricted_under_its_own_service_account() {
    let m = load();
    let job = only(&m.jobs, "Job");
    let spec = job.spec.as_ref().unwrap();
    assert!(spec.backoff_limit.is_some_and(|n| n > 0));
    assert!(spec.ttl_seconds_after_finished.is_some());
    let pod = spec.template.spec.as_ref().unwrap();
    let sa = only(&m.service_accounts, "ServiceAccount");
    assert_eq!(
        pod.service_account_name.as_deref(),
        sa.metadata.name.as_deref()
    );
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let pod_sc = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    let container = only(&pod.containers, "container");
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/dittofs/dittofs-operator:0.1.0")
    );
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
}

/// (group, resource, verb, namespaced, resourceNames or None when unrestricted)
type Grant = (String, String, String, bool, Option<BTreeSet<String>>);

fn grants(rules: &[PolicyRule], namespaced: bool) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.non_resource_urls.is_none(),
            "no non-resource URLs needed"
        );
        let names = rule
            .resource_names
            .as_ref()
            .map(|n| n.iter().cloned().collect::<BTreeSet<_>>());
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "no wildcards"
                    );
                    out.insert((
                        group.clone(),
                        resource.clone(),
                        verb.clone(),
                        namespaced,
                        names.clone(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_what_the_bootstrap_calls() {
    let m = load();
    let args = job_args(&m);
    let mut expected = BTreeSet::new();
    for access in API_ACCESS {
        let names = match access.names {
            NamesFrom::Any => None,
            NamesFrom::SecretArg => Some(BTreeSet::from([args.secret.clone()])),
            NamesFrom::WebhookConfigArgs => Some(args.webhook_configs.iter().cloned().collect()),
        };
        for verb in access.verbs {
            expected.insert((
                access.group.to_string(),
                access.resource.to_string(),
                verb.to_string(),
                access.namespaced,
                names.clone(),
            ));
        }
    }
    let role = only(&m.roles, "Role");
    let cluster_role = only(&m.cluster_roles, "ClusterRole");
    let mut granted = grants(role.rules.as_deref().unwrap_or_default(), true);
    granted.extend(grants(
        cluster_role.rules.as_deref().unwrap_or_default(),
        false,
    ));
    assert_eq!(granted, expected);
}

#[test]
fn the_bindings_give_the_roles_to_the_jobs_service_account() {
    let m = load();
    let sa = only(&m.service_accounts, "ServiceAccount");
    let sa_name = sa.metadata.name.clone().unwrap();
    let role = only(&m.roles, "Role");
    let rb = only(&m.role_bindings, "RoleBinding");
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(Some(&rb.role_ref.name), role.metadata.name.as_ref());
    let cr = only(&m.cluster_roles, "ClusterRole");
    let crb = only(&m.cluster_role_bindings, "ClusterRoleBinding");
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&crb.role_ref.name), cr.metadata.name.as_ref());
    for subjects in [&rb.subjects, &crb.subjects] {
        let subject = only(subjects.as_deref().unwrap(), "subject");
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(subject.name, sa_name);
        assert_eq!(subject.namespace.as_deref(), Some(NAMESPACE));
    }
}
