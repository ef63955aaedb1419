//! End-to-end against a real API server (KUBECONFIG). Works on a cluster that runs
//! kube-controller-manager without a kubelet (and on one without either): the
//! controller runs in-process; a ready pod is faked by patching the status of pod
//! `<name>-0` once the StatefulSet controller has created it (nothing else writes a
//! pod's status without a kubelet), or the StatefulSet's status when no pod appears.
//!
//! Every test works in a throwaway namespace that is removed when the test ends,
//! also when it fails (its DittoServers are deleted and their finalizers stripped
//! first, so the namespace can go even if the controller is gone). The tests run in
//! parallel, each with its own controller (watching every namespace); each installs
//! this version's DittoServer CRD (server-side apply, forced) and leaves it
//! installed. Tests that change cluster-wide objects are in
//! `controller_cluster_crd.rs`, so that they never run beside these.
//!
//! `KUBECONFIG=… cargo test --test controller_cluster -- --ignored`

mod controller_env;

use std::path::Path;
use std::time::Duration;

use controller_env::{Env, eventually, minimal, with_cleanup};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::manifest;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
#[ignore = "needs cluster"]
async fn samples_reconcile_become_ready_and_delete_cleanly() {
    let env = Env::start("e2e").await;
    with_cleanup(
        async {
            let percona_installed = Api::<CustomResourceDefinition>::all(env.client.clone())
                .get_opt("perconapgclusters.pgv2.percona.com")
                .await
                .ok()
                .flatten()
                .is_some();
            let servers = env.api::<DittoServer>();
            let secrets = env.api::<Secret>();
            let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
            let mut names = Vec::new();
            for file in [
                "minimal.yaml",
                "memory.yaml",
                "s3.yaml",
                "postgres.yaml",
                "percona.yaml",
                "smb.yaml",
                "metrics.yaml",
                "servicemonitor.yaml",
                "tls.yaml",
                "snapshots.yaml",
                "ldap.yaml",
                "kerberos.yaml",
            ] {
                for doc in manifest::load_documents(&samples.join(file)).expect("sample") {
                    if let Some(secret) = manifest::secret(&doc) {
                        let mut secret = secret.expect("secret");
                        secret.metadata.namespace = Some(env.ns.clone());
                        secrets
                            .create(&PostParams::default(), &secret)
                            .await
                            .expect("create secret");
                    } else if manifest::is_ditto_server(&doc) {
                        let mut ds = manifest::ditto_server(&doc).expect("sample");
                        ds.metadata.namespace = Some(env.ns.clone());
                        servers
                            .create(&PostParams::default(), &ds)
                            .await
                            .expect("create DittoServer");
                        names.push((ds.name_any(), file == "percona.yaml"));
                    }
                }
            }

            for (name, percona) in &names {
                if *percona && !percona_installed {
                    // Validation fails without the Percona CRD: reported, nothing built.
                    env.wait_condition(name, "ConfigReady", "False", Some("InvalidSpec"))
                        .await;
                    continue;
                }
                if *percona {
                    continue; // A real Percona cluster takes minutes; covered by the mocked tests.
                }
                let sts_api = env.api::<StatefulSet>();
                let sts = eventually("StatefulSet", Duration::from_secs(60), || async {
                    sts_api.get_opt(name).await.ok().flatten()
                })
                .await;
                let spec = sts.spec.expect("spec");
                let policy = spec
                    .persistent_volume_claim_retention_policy
                    .expect("retention");
                assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
                assert!(
                    env.api::<ConfigMap>()
                        .get_opt(&format!("{name}-config"))
                        .await
                        .expect("get")
                        .is_some()
                );
                let svcs = env.api::<Service>();
                for suffix in ["file", "api", "headless"] {
                    assert!(
                        svcs.get_opt(&format!("{name}-{suffix}"))
                            .await
                            .expect("get")
                            .is_some(),
                        "{name}-{suffix}"
                    );
                }
                if spec.replicas == Some(0) {
                    continue;
                }
                env.fake_ready_pod(name).await;
                // Everything of Kubernetes met; the server half is not: there is no
                // DittoFS server behind `<name>-api` in a cluster without a kubelet
                // (the DittoFS half runs end to end in controller_dittofs.rs).
                eventually(
                    "Ready False for the server half alone",
                    Duration::from_secs(60),
                    || async {
                        let (status, reason, message) = env.condition(name, "Ready").await?;
                        (status == "False"
                            && reason == "ConditionsNotMet"
                            && message == "Not ready: ServerNotConfigured")
                            .then_some(())
                    },
                )
                .await;
                let (status, reason, _) = env
                    .condition(name, "ServerConfigured")
                    .await
                    .expect("ServerConfigured");
                // Whatever answers (or not) on this machine's loopback: not configured,
                // and never for an invalid spec.
                assert_eq!(status, "False", "{name}");
                assert_ne!(reason, "InvalidSpec", "{name}");
            }

            for (name, _) in &names {
                servers
                    .delete(name, &DeleteParams::default())
                    .await
                    .expect("delete");
            }
            for (name, _) in &names {
                // Promptly: no cleanup waits for a timeout, even with no Percona CRD.
                env.wait_gone(name, Duration::from_secs(30)).await;
            }
        },
        env.clean_up(),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_users_object_with_a_child_name_is_never_taken_over_or_deleted() {
    let env = Env::start("taken").await;
    with_cleanup(
        async {
            let cms = env.api::<ConfigMap>();
            cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "taken-config"}, "data": {"user-data": "precious"}}),
        )
        .expect("cm"),
    )
    .await
    .expect("the user's ConfigMap");
            env.create(minimal("taken")).await;
            let message = env
                .wait_condition("taken", "Degraded", "True", Some("NameConflict"))
                .await;
            assert!(message.contains("taken-config"), "{message}");
            env.api::<DittoServer>()
                .delete("taken", &DeleteParams::default())
                .await
                .expect("delete");
            env.wait_gone("taken", Duration::from_secs(30)).await;
            // Give the garbage collector time to act if it could.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let cm = cms
                .get("taken-config")
                .await
                .expect("the user's ConfigMap survives");
            assert!(cm.owner_references().is_empty());
            assert_eq!(
                cm.data.and_then(|d| d.get("user-data").cloned()).as_deref(),
                Some("precious")
            );
        },
        env.clean_up(),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_generated_secret_the_user_references_is_released_and_kept() {
    let env = Env::start("adopt").await;
    with_cleanup(
        async {
    env.create(minimal("adopt")).await;
    let secrets = env.api::<Secret>();
    let generated = eventually("generated JWT Secret", Duration::from_secs(60), || async {
        secrets.get_opt("adopt-jwt-secret").await.ok().flatten()
    })
    .await;
    env.api::<DittoServer>()
        .patch(
            "adopt",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"identity": {"jwt": {"secretRef": {"name": "adopt-jwt-secret", "key": "jwt-secret"}}}}})),
        )
        .await
        .expect("reference it");
    let released = eventually("released", Duration::from_secs(60), || async {
        let s = secrets.get("adopt-jwt-secret").await.ok()?;
        s.owner_references().is_empty().then_some(s)
    })
    .await;
    assert_eq!(released.data, generated.data, "the key is unchanged");
    assert!(
        !released
            .labels()
            .contains_key("app.kubernetes.io/managed-by")
    );
    env.api::<DittoServer>()
        .delete("adopt", &DeleteParams::default())
        .await
        .expect("delete");
    env.wait_gone("adopt", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        secrets
            .get_opt("adopt-jwt-secret")
            .await
            .expect("get")
            .is_some(),
        "kept"
    );
        },
        env.clean_up(),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_short_jwt_secret_and_an_absent_percona_crd_are_reported_and_deletion_is_prompt() {
    let env = Env::start("reported").await;
    with_cleanup(
        async {
            env.api::<Secret>()
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(
                        json!({"metadata": {"name": "short"}, "stringData": {"jwt": "too-short"}}),
                    )
                    .expect("secret"),
                )
                .await
                .expect("secret");
            let mut short = minimal("short-jwt");
            short["spec"]["identity"] =
                json!({"jwt": {"secretRef": {"name": "short", "key": "jwt"}}});
            env.create(short).await;
            let message = env
                .wait_condition("short-jwt", "ConfigReady", "False", Some("InvalidSpec"))
                .await;
            assert!(message.contains("32"), "names the minimum: {message}");
            assert!(!message.contains("too-short"), "never the value: {message}");

            let percona_installed = Api::<CustomResourceDefinition>::all(env.client.clone())
                .get_opt("perconapgclusters.pgv2.percona.com")
                .await
                .ok()
                .flatten()
                .is_some();
            if !percona_installed {
                let mut pg = minimal("no-percona");
                pg["spec"]["percona"] = json!({"enabled": true});
                env.create(pg).await;
                let message = env
                    .wait_condition("no-percona", "ConfigReady", "False", Some("InvalidSpec"))
                    .await;
                assert!(message.contains("Percona"), "{message}");
                env.api::<DittoServer>()
                    .delete("no-percona", &DeleteParams::default())
                    .await
                    .expect("delete");
                // The absent CRD is an answer, not a failure to wait out.
                env.wait_gone("no-percona", Duration::from_secs(20)).await;
            }
        },
        env.clean_up(),
    )
    .await;
}
