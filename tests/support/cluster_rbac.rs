//! A throwaway release on a real API server (KUBECONFIG): its namespaces, its
//! ServiceAccount and the RBAC `src/rbac.rs` generates for it (with the bindings of
//! `deploy/bindings.yaml`), and a client acting as that ServiceAccount. Shared by
//! `policy_cluster.rs` and `rbac_cluster.rs`.

use dittofs_operator::rbac::{Install, cluster_role, role, served_roles};
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

/// Eight random hex digits, for names no earlier run left behind.
pub fn suffix() -> String {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    hex::encode(bytes)
}

/// A client acting as the release's ServiceAccount (`kubectl --as`).
pub async fn impersonating(install: &Install) -> Client {
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

/// The namespaces the release needs: its own and those it serves.
fn namespaces(install: &Install) -> Vec<String> {
    let mut all = vec![install.namespace.clone()];
    all.extend(
        install
            .scope
            .namespaces()
            .unwrap_or_default()
            .iter()
            .cloned(),
    );
    all
}

/// Create the namespaces, the ServiceAccount, the roles and their bindings.
pub async fn install_rbac(admin: &Client, install: &Install) {
    let pp = PostParams::default();
    for ns in namespaces(install) {
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
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: install.service_account(),
        namespace: Some(install.namespace.clone()),
        ..Default::default()
    };
    let reference = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: install.release.clone(),
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &cluster_role(install))
        .await
        .expect("cluster role");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &pp,
            &ClusterRoleBinding {
                metadata: kube::api::ObjectMeta {
                    name: Some(install.release.clone()),
                    ..Default::default()
                },
                role_ref: reference("ClusterRole"),
                subjects: Some(vec![subject.clone()]),
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
                subjects: Some(vec![subject]),
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

/// Remove what `install_rbac` made (whatever of it exists).
pub async fn remove_rbac(admin: &Client, install: &Install) {
    let dp = DeleteParams::default();
    let name = &install.release;
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(name, &dp)
        .await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(name, &dp)
        .await;
    for ns in namespaces(install) {
        let _ = Api::<Namespace>::all(admin.clone()).delete(&ns, &dp).await;
    }
}

/// One `kubectl auth can-i VERB GROUP/RESOURCE[/NAME] [-n NS]`.
pub struct Ask<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    /// None: all namespaces (or a cluster-scoped object).
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

pub async fn can_i(client: &Client, ask: &Ask<'_>) -> bool {
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
