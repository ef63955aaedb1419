//! The escalations of issue 9 against a real API server (KUBECONFIG): the generated RBAC
//! and the Secret, StatefulSet and NetworkPolicy policies are installed for a throwaway
//! release in a throwaway namespace, and a client impersonating that release's
//! ServiceAccount tries to mint a token Secret, to create a hostPID/hostPath
//! StatefulSet and a NetworkPolicy selecting every pod.
//! Everything it installs is removed afterwards, also when an assertion fails.
//!
//! Only the throwaway namespace is ever written to: the token Secret, the
//! StatefulSets and the NetworkPolicies are attempted there (the token for its `default` ServiceAccount), never
//! in kube-system. The allowed StatefulSet has `replicas: 0` (no pod; no kubelet needed).
//!
//! The API server enforces a new policy a moment after it is created: before any
//! denial is asserted, each policy is probed with a server-side dry run (nothing is
//! stored) of a write it must deny, until it denies it.
//!
//! Run with: `cargo test --test policy_cluster -- --ignored`

#[path = "support/cluster_rbac.rs"]
mod cluster_rbac;
mod support;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use cluster_rbac::{Ask, can_i, impersonating, install_rbac, remove_rbac, suffix};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::policy::{
    network_policy_policy, network_policy_policy_binding, network_policy_policy_name,
    secret_policy, secret_policy_binding, secret_policy_name, stateful_set_policy,
    stateful_set_policy_binding, stateful_set_policy_name,
};
use dittofs_operator::rbac::Install;
use futures::FutureExt;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

async fn install_everything(admin: &Client, install: &Install) {
    let pp = PostParams::default();
    install_rbac(admin, install).await;
    for (policy, binding) in [
        (secret_policy(install), secret_policy_binding(install)),
        (
            stateful_set_policy(install),
            stateful_set_policy_binding(install),
        ),
        (
            network_policy_policy(install),
            network_policy_policy_binding(install),
        ),
    ] {
        Api::<ValidatingAdmissionPolicy>::all(admin.clone())
            .create(&pp, &policy)
            .await
            .expect("policy");
        Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
            .create(&pp, &binding)
            .await
            .expect("policy binding");
    }
}

async fn remove_everything(admin: &Client, install: &Install) {
    let dp = DeleteParams::default();
    for policy_name in [
        secret_policy(install).metadata.name.unwrap_or_default(),
        stateful_set_policy(install)
            .metadata
            .name
            .unwrap_or_default(),
        network_policy_policy(install)
            .metadata
            .name
            .unwrap_or_default(),
    ] {
        let _ = Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
            .delete(&policy_name, &dp)
            .await;
        let _ = Api::<ValidatingAdmissionPolicy>::all(admin.clone())
            .delete(&policy_name, &dp)
            .await;
    }
    remove_rbac(admin, install).await;
}

fn secret(name: &str, type_: &str, labels: serde_json::Value) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": type_,
    }))
    .unwrap()
}

/// Whether `result` is a denial by the policy named `policy`: the API server names
/// the policy that denied a request, and the message is the policy's own.
fn denied_by<T>(policy: &str, result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(s))
        if s.code == 403
            && s.reason == "Forbidden"
            && s.message.contains(&format!("ValidatingAdmissionPolicy '{policy}'"))
            && s.message.contains("dittofs-operator may"))
}

/// Fail unless `result` (the operator's ServiceAccount writing `what`) was denied by
/// the policy named `policy`.
fn assert_denied<T>(policy: &str, what: &str, result: &Result<T, kube::Error>) {
    match result {
        _ if denied_by(policy, result) => {}
        Ok(_) => panic!("{what} was written by the operator's ServiceAccount"),
        Err(e) => panic!("{what} was refused, but not by the policy {policy}: {e}"),
    }
}

/// Wait until the policy named `policy` is enforced. The API server enforces a new
/// policy and binding a moment after they are created, so until then a write it
/// must deny passes. `probe` is such a write made harmless, a dry run as the
/// operator's ServiceAccount; it is repeated until the policy denies it. Before
/// that it is admitted (the policy is not enforced yet) or refused by RBAC (the
/// authorizer has not seen the new bindings yet). Fails after 60 s with the last
/// answer and the policy's status (type-checking warnings).
async fn until_enforced<T, F, Fut>(admin: &Client, policy: &str, probe: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = probe().await;
        if denied_by(policy, &result) {
            return;
        }
        if Instant::now() >= deadline {
            let answer = match result {
                Ok(_) => "the dry run was admitted".to_string(),
                Err(e) => format!("the dry run was refused otherwise: {e}"),
            };
            let status = Api::<ValidatingAdmissionPolicy>::all(admin.clone())
                .get(policy)
                .await
                .map(|p| serde_json::to_string(&p.status).unwrap_or_default())
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            panic!(
                "the policy {policy} was not enforced within 60 s: {answer}; its status: {status}"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn scenario(admin: &Client, install: &Install) {
    let operator = impersonating(install).await;
    let ns = &install.namespace;
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), ns);
    let pp = PostParams::default();
    let token = secret("minted", "kubernetes.io/service-account-token", json!({}));
    // No denial counts before every policy is enforced. Probed with server-side
    // dry runs (`dryRun=All`): admission, policies included, runs in full; nothing
    // is stored.
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let secret_policy = secret_policy_name(install);
    until_enforced(admin, &secret_policy, || secrets.create(&dry_run, &token)).await;
    let stateful_set_policy = stateful_set_policy_name(install);
    let stateful_set_api: Api<StatefulSet> = Api::namespaced(operator.clone(), ns);
    let privileged = privileged_stateful_set(ns);
    until_enforced(admin, &stateful_set_policy, || {
        stateful_set_api.create(&dry_run, &privileged)
    })
    .await;
    let network_policy_policy = network_policy_policy_name(install);
    let network_policy_api: Api<NetworkPolicy> = Api::namespaced(operator.clone(), ns);
    let every_pod = every_pod_network_policy(ns);
    until_enforced(admin, &network_policy_policy, || {
        network_policy_api.create(&dry_run, &every_pod)
    })
    .await;

    // RBAC: no Secret update or delete outside the operator's namespace, no Lease there.
    let in_kube_system = |verb, group, resource| Ask {
        verb,
        group,
        resource,
        namespace: Some("kube-system"),
        name: None,
    };
    for (verb, group, resource) in [
        ("update", "", "secrets"),
        ("delete", "", "secrets"),
        ("create", "coordination.k8s.io", "leases"),
    ] {
        assert!(
            !can_i(&operator, &in_kube_system(verb, group, resource)).await,
            "{verb} {resource} in kube-system must be refused"
        );
    }
    assert!(
        can_i(&operator, &in_kube_system("create", "", "secrets")).await,
        "RBAC alone allows create"
    );

    assert_denied(
        &secret_policy,
        "a token Secret",
        &secrets.create(&pp, &token).await,
    );
    let managed = json!({"app.kubernetes.io/managed-by": "dittofs-operator"});
    let labelled_token = secret(
        "minted2",
        "kubernetes.io/service-account-token",
        managed.clone(),
    );
    assert_denied(
        &secret_policy,
        "a labelled token Secret",
        &secrets.create(&pp, &labelled_token).await,
    );
    assert_denied(
        &secret_policy,
        "an unlabelled Opaque Secret",
        &secrets
            .create(&pp, &secret("plain", "Opaque", json!({})))
            .await,
    );
    secrets
        .create(&pp, &secret("ours", "Opaque", managed))
        .await
        .expect("a managed Opaque Secret is allowed");
    // Release: our label removed by a patch.
    secrets
        .patch(
            "ours",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}})),
        )
        .await
        .expect("releasing a managed Secret is allowed");
    // Now foreign: never changed again, not even to put the label back.
    let claim = secrets
        .patch(
            "ours",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "dittofs-operator"}}})),
        )
        .await;
    assert_denied(&secret_policy, "a change to a foreign Secret", &claim);
    // The admin's own writes are not affected.
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&pp, &secret("admins", "Opaque", json!({})))
        .await
        .expect("other users are not matched");

    // A stolen operator token cannot run a powerful pod through a StatefulSet; what
    // the operator builds is allowed.
    assert_denied(
        &stateful_set_policy,
        "a hostPID/hostPath StatefulSet",
        &stateful_set_api.create(&pp, &privileged).await,
    );
    stateful_set_api
        .create(&pp, &built_stateful_set("ours", ns))
        .await
        .expect("the StatefulSet the operator builds is allowed");

    // Nor open every pod of a namespace through a NetworkPolicy; the server pod's
    // policy the operator builds is allowed.
    assert_denied(
        &network_policy_policy,
        "a NetworkPolicy selecting every pod",
        &network_policy_api.create(&pp, &every_pod).await,
    );
    network_policy_api
        .create(&pp, &built_network_policy("ours", ns))
        .await
        .expect("the NetworkPolicy the operator builds is allowed");
    // Nor delete a tenant's own policy (RBAC allows delete, for the operator's own).
    let mut tenant = serde_json::to_value(every_pod_network_policy(ns)).expect("JSON");
    tenant["metadata"] = json!({"name": "default-deny", "namespace": ns});
    let tenant: NetworkPolicy = serde_json::from_value(tenant).expect("NetworkPolicy");
    Api::<NetworkPolicy>::namespaced(admin.clone(), ns)
        .create(&pp, &tenant)
        .await
        .expect("the tenant's own policy");
    assert_denied(
        &network_policy_policy,
        "deleting a tenant's NetworkPolicy",
        &network_policy_api
            .delete("default-deny", &DeleteParams::default())
            .await,
    );
    network_policy_api
        .delete("ours", &DeleteParams::default())
        .await
        .expect("the operator deletes its own NetworkPolicy");
}

/// The server pod's NetworkPolicy the operator builds for a minimal DittoServer
/// `name` in `ns` (without its owner reference).
fn built_network_policy(name: &str, ns: &str) -> NetworkPolicy {
    let ds: DittoServer = serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": name, "namespace": ns, "uid": "00000000-0000-0000-0000-000000000000"},
        "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}},
    }))
    .expect("DittoServer");
    let mut policy = support::built_network_policy(&ds).expect("on by default");
    policy.metadata.owner_references = None;
    policy
}

/// The operator's NetworkPolicy with an empty pod selector (every pod of the
/// namespace): what a stolen token would write.
fn every_pod_network_policy(ns: &str) -> NetworkPolicy {
    let mut policy = serde_json::to_value(built_network_policy("escalate", ns)).expect("JSON");
    policy["spec"]["podSelector"] = json!({});
    serde_json::from_value(policy).expect("NetworkPolicy")
}

/// The StatefulSet the operator builds for a minimal DittoServer `name` in `ns`
/// (without its owner reference: there is no DittoServer behind it here).
fn built_stateful_set(name: &str, ns: &str) -> StatefulSet {
    let ds: DittoServer = serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": name, "namespace": ns, "uid": "00000000-0000-0000-0000-000000000000"},
        "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}},
    }))
    .expect("DittoServer");
    let mut sts = support::built_stateful_set(&ds);
    sts.metadata.owner_references = None;
    sts
}

/// The operator's StatefulSet with a hostPID pod that mounts the node's root: what a
/// stolen token would write.
fn privileged_stateful_set(ns: &str) -> StatefulSet {
    let mut privileged = serde_json::to_value(built_stateful_set("escalate", ns)).expect("JSON");
    privileged["spec"]["template"]["spec"]["hostPID"] = json!(true);
    privileged["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(json!({"name": "root", "hostPath": {"path": "/"}}));
    serde_json::from_value(privileged).expect("StatefulSet")
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_operator_service_account_cannot_mint_a_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let admin = Client::try_default().await.expect("KUBECONFIG");
    let id = suffix();
    let install = Install {
        release: format!("dfo-policy-{id}"),
        namespace: format!("dfo-policy-{id}"),
        scope: Default::default(),
    };
    let outcome = AssertUnwindSafe(async {
        install_everything(&admin, &install).await;
        scenario(&admin, &install).await;
    })
    .catch_unwind()
    .await;
    remove_everything(&admin, &install).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
