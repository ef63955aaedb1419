//! The namespace-scoped RBAC of `--watch-namespaces` on a real API server
//! (KUBECONFIG): `kubectl auth can-i … --as <operator>`, asked with
//! SelfSubjectAccessReviews from a client impersonating the operator's
//! ServiceAccount, for a throwaway release that serves two of three throwaway
//! namespaces. The expectations are written out here, not derived from `src/rbac.rs`.
//! Everything it installs is removed afterwards, also when an assertion fails.
//!
//! Run with: `cargo test --test rbac_cluster -- --ignored`

#[path = "support/cluster_rbac.rs"]
mod cluster_rbac;

use std::panic::AssertUnwindSafe;

use cluster_rbac::{Ask, can_i, impersonating, install_rbac, remove_rbac, suffix};
use dittofs_operator::rbac::Install;
use dittofs_operator::scope::WatchScope;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// A release in `dfo-rbac-<id>` serving `dfo-rbac-<id>-a` and `-b`, and `-c`, a
/// namespace it does not serve.
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
}

/// What `dittofs-operator rbac --watch-namespaces …` prints and the bindings of
/// `deploy/bindings.yaml`, and the namespace it does not serve.
async fn install(admin: &Client, setup: &Setup) {
    install_rbac(admin, &setup.install).await;
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": setup.other}})).unwrap(),
        )
        .await
        .expect("namespace");
}

async fn remove(admin: &Client, setup: &Setup) {
    remove_rbac(admin, &setup.install).await;
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(&setup.other, &DeleteParams::default())
        .await;
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
