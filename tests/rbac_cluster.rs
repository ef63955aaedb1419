//! The namespace-scoped RBAC of `--watch-namespaces` on a real API server
//! (KUBECONFIG): `kubectl auth can-i … --as <operator>`, asked with
//! SelfSubjectAccessReviews from a client impersonating the operator's
//! ServiceAccount, for a throwaway release that serves two of three throwaway
//! namespaces. The expectations are written out here, not derived from `src/rbac.rs`.
//! Everything it installs is removed afterwards, also when an assertion fails.
//!
//! Run with: `cargo test --test rbac_cluster -- --ignored`

use std::panic::AssertUnwindSafe;

use dittofs_operator::rbac::{Install, cluster_role, role, served_roles};
use dittofs_operator::scope::WatchScope;
use futures::FutureExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, Config};
use serde_json::json;

fn suffix() -> String {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    hex::encode(bytes)
}

/// A release in `dfo-rbac-<id>` serving `dfo-rbac-<id>-a` and `-b` (not `-c`).
struct Setup {
    install: Install,
    served: [String; 2],
    other: String,
}

impl Setup {
    fn new() -> Self {
        let id = suffix();
        let base = format!("dfo-rbac-{id}");
        let served = [format!("{base}-a"), format!("{base}-b")];
        Setup {
            install: Install {
                release: base.clone(),
                namespace: base.clone(),
                scope: WatchScope::of(served.clone()),
            },
            other: format!("{base}-c"),
            served,
        }
    }

    fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.install.namespace.clone(), self.other.clone()];
        all.extend(self.served.iter().cloned());
        all
    }
}

fn subject(install: &Install) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: install.service_account(),
        namespace: Some(install.namespace.clone()),
        ..Default::default()
    }
}

/// What `dittofs-operator rbac --watch-namespaces …` prints, plus the bindings of
/// `deploy/bindings.yaml`, for this release.
async fn install(admin: &Client, setup: &Setup) {
    let install = &setup.install;
    let pp = PostParams::default();
    for ns in setup.namespaces() {
        Api::<Namespace>::all(admin.clone())
            .create(
                &pp,
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .expect("namespace");
    }
    Api::<ServiceAccount>::namespaced(admin.clone(), &install.namespace)
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": install.service_account()}}))
                .unwrap(),
        )
        .await
        .expect("service account");
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &cluster_role(install))
        .await
        .expect("cluster role");
    let reference = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: install.release.clone(),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &pp,
            &ClusterRoleBinding {
                metadata: kube::api::ObjectMeta {
                    name: Some(install.release.clone()),
                    ..Default::default()
                },
                role_ref: reference("ClusterRole"),
                subjects: Some(vec![subject(install)]),
            },
        )
        .await
        .expect("cluster role binding");
    Api::<Role>::namespaced(admin.clone(), &install.namespace)
        .create(&pp, &role(install))
        .await
        .expect("role");
    Api::<RoleBinding>::namespaced(admin.clone(), &install.namespace)
        .create(
            &pp,
            &RoleBinding {
                metadata: kube::api::ObjectMeta {
                    name: Some(install.release.clone()),
                    namespace: Some(install.namespace.clone()),
                    ..Default::default()
                },
                role_ref: reference("Role"),
                subjects: Some(vec![subject(install)]),
            },
        )
        .await
        .expect("role binding");
    for (role, binding) in served_roles(install) {
        let ns = role.metadata.namespace.clone().unwrap_or_default();
        Api::<Role>::namespaced(admin.clone(), &ns)
            .create(&pp, &role)
            .await
            .expect("served role");
        Api::<RoleBinding>::namespaced(admin.clone(), &ns)
            .create(&pp, &binding)
            .await
            .expect("served role binding");
    }
}

async fn remove(admin: &Client, setup: &Setup) {
    let dp = DeleteParams::default();
    let name = &setup.install.release;
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(name, &dp)
        .await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(name, &dp)
        .await;
    for ns in setup.namespaces() {
        let _ = Api::<Namespace>::all(admin.clone()).delete(&ns, &dp).await;
    }
}

async fn impersonating(install: &Install) -> Client {
    let mut config = Config::infer().await.expect("KUBECONFIG");
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{}:{}",
        install.namespace,
        install.service_account()
    ));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{}", install.namespace),
        "system:authenticated".into(),
    ]);
    Client::try_from(config).expect("impersonating client")
}

/// One `kubectl auth can-i VERB GROUP/RESOURCE[/NAME] [-n NS]`.
struct Ask<'a> {
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    /// None: all namespaces (or a cluster-scoped object).
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

async fn can_i(client: &Client, ask: &Ask<'_>) -> bool {
    let (resource, subresource) = match ask.resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (ask.resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(ask.verb.into()),
                group: Some(ask.group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: ask.namespace.map(str::to_string),
                name: ask.name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review")
        .status
        .is_some_and(|s| s.allowed)
}

async fn matrix(setup: &Setup) {
    let install = &setup.install;
    let client = impersonating(install).await;
    let [a, b] = [setup.served[0].as_str(), setup.served[1].as_str()];
    let c = setup.other.as_str();
    let own = install.namespace.as_str();
    let validating = install.validating_webhook();
    let tls = install.webhook_tls_secret();
    let lease = install.lease();
    let ask = |verb, group, resource, namespace, name| Ask {
        verb,
        group,
        resource,
        namespace,
        name,
    };
    let expectations: Vec<(Ask<'_>, bool)> = vec![
        // Secrets: only in the served namespaces.
        (ask("get", "", "secrets", Some("kube-system"), None), false),
        (ask("list", "", "secrets", Some("kube-system"), None), false),
        (
            ask("watch", "", "secrets", Some("kube-system"), None),
            false,
        ),
        (ask("list", "", "secrets", None, None), false),
        (ask("get", "", "secrets", Some(c), None), false),
        (ask("get", "", "secrets", Some("default"), None), false),
        (ask("get", "", "secrets", Some(a), None), true),
        (ask("list", "", "secrets", Some(b), None), true),
        (ask("watch", "", "secrets", Some(b), None), true),
        (ask("create", "", "secrets", Some(a), None), true),
        (ask("patch", "", "secrets", Some(a), None), true),
        (ask("update", "", "secrets", Some(a), None), false),
        (ask("delete", "", "secrets", Some(a), None), false),
        // The operator's own namespace: its TLS Secret and its Lease, by name.
        (ask("get", "", "secrets", Some(own), Some(&tls)), true),
        (ask("get", "", "secrets", Some(own), Some("another")), false),
        (
            ask(
                "get",
                "coordination.k8s.io",
                "leases",
                Some(own),
                Some(&lease),
            ),
            true,
        ),
        (
            ask(
                "get",
                "coordination.k8s.io",
                "leases",
                Some(a),
                Some(&lease),
            ),
            false,
        ),
        // DittoServers and their children: served namespaces only.
        (
            ask("list", "dittofs.dittofs.com", "dittoservers", Some(a), None),
            true,
        ),
        (
            ask("list", "dittofs.dittofs.com", "dittoservers", Some(c), None),
            false,
        ),
        (
            ask("list", "dittofs.dittofs.com", "dittoservers", None, None),
            false,
        ),
        (
            ask(
                "patch",
                "dittofs.dittofs.com",
                "dittoservers/status",
                Some(b),
                None,
            ),
            true,
        ),
        (
            ask(
                "patch",
                "dittofs.dittofs.com",
                "dittoservers/status",
                Some(c),
                None,
            ),
            false,
        ),
        (ask("patch", "apps", "statefulsets", Some(a), None), true),
        (ask("patch", "apps", "statefulsets", Some(c), None), false),
        (
            ask("get", "", "configmaps", Some("kube-system"), None),
            false,
        ),
        (
            ask("create", "events.k8s.io", "events", Some(b), None),
            true,
        ),
        (
            ask("create", "events.k8s.io", "events", Some(c), None),
            false,
        ),
        (
            ask(
                "list",
                "pgv2.percona.com",
                "perconapgclusters",
                Some(a),
                None,
            ),
            true,
        ),
        (
            ask(
                "list",
                "pgv2.percona.com",
                "perconapgclusters",
                Some(c),
                None,
            ),
            false,
        ),
        // Cluster-scoped by nature.
        (
            ask("list", "storage.k8s.io", "storageclasses", None, None),
            true,
        ),
        (
            ask(
                "get",
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                None,
                Some("dittoservers.dittofs.dittofs.com"),
            ),
            true,
        ),
        (
            ask(
                "list",
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                None,
                None,
            ),
            false,
        ),
        (
            ask(
                "patch",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                None,
                Some(&validating),
            ),
            true,
        ),
        (
            ask(
                "patch",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                None,
                Some("someone-elses"),
            ),
            false,
        ),
    ];
    let mut wrong = Vec::new();
    for (question, expected) in &expectations {
        let answer = can_i(&client, question).await;
        if answer != *expected {
            wrong.push(format!(
                "can-i {} {}/{} {:?} -n {:?}: {answer}, expected {expected}",
                question.verb, question.group, question.resource, question.name, question.namespace
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn serving_two_namespaces_the_operator_reads_nothing_elsewhere() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let admin = Client::try_default().await.expect("KUBECONFIG");
    let setup = Setup::new();
    let outcome = AssertUnwindSafe(async {
        install(&admin, &setup).await;
        matrix(&setup).await;
    })
    .catch_unwind()
    .await;
    remove(&admin, &setup).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
