//! End-to-end against a real API server (KUBECONFIG; no kubelet assumed): install
//! the CRD, run the controller in-process, apply every sample, check children and
//! status, fake a ready pod, delete. Run with
//! `KUBECONFIG=… cargo test --test controller_cluster -- --ignored --test-threads=1`.

use std::path::Path;
use std::time::Duration;

use dittofs_operator::controller::{self, ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::manifest;
use dittofs_operator::probes::Readiness;
use dittofs_operator::webhook::KubeLookup;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "dittoservers.dittofs.dittofs.com",
        &PatchParams::apply("dittofs-operator-test").force(),
        &Patch::Apply(DittoServer::crd()),
    )
    .await
    .expect("install CRD");
    eventually("CRD established", Duration::from_secs(30), || async {
        let crd = crds.get("dittoservers.dittofs.dittofs.com").await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

fn ready(ds: &DittoServer) -> bool {
    ds.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn samples_reconcile_become_ready_and_delete_cleanly() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.expect("KUBECONFIG");
    install_crd(&client).await;
    let ns_name = format!("dittofs-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}})).expect("ns"),
        )
        .await
        .expect("create namespace");

    let shutdown = CancellationToken::new();
    let readiness = Readiness::new();
    let lookup = KubeLookup::start(client.clone(), &readiness, shutdown.clone());
    let (_leader_tx, leader) = watch::channel(true);
    let controller_task = tokio::spawn(controller::run(
        client.clone(),
        ControllerArgs {
            concurrency: 4,
            reporter: "dittofs-operator-e2e".into(),
        },
        lookup,
        leader,
        readiness.gate("controller"),
        ControllerMetrics::unregistered(),
        shutdown.clone(),
    ));

    let percona_installed = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt("perconapgclusters.pgv2.percona.com")
        .await
        .ok()
        .flatten()
        .is_some();
    let servers: Api<DittoServer> = Api::namespaced(client.clone(), &ns_name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_name);
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
    ] {
        for doc in manifest::load_documents(&samples.join(file)).expect("sample") {
            if let Some(secret) = manifest::secret(&doc) {
                let mut secret = secret.expect("secret");
                secret.metadata.namespace = Some(ns_name.clone());
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .expect("create secret");
            } else if manifest::is_ditto_server(&doc) {
                let mut ds = manifest::ditto_server(&doc).expect("sample");
                ds.metadata.namespace = Some(ns_name.clone());
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
            let ds = eventually(
                "ConfigReady=False without Percona",
                Duration::from_secs(60),
                || async {
                    let ds = servers.get(name).await.ok()?;
                    ds.status
                        .as_ref()?
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "ConfigReady" && c.status == "False")
                        .then_some(ds)
                },
            )
            .await;
            assert!(ds.status.and_then(|s| s.phase).is_some());
            continue;
        }
        if *percona {
            continue; // A real Percona cluster takes minutes; covered by the mocked tests.
        }
        let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns_name);
        let sts = eventually("StatefulSet", Duration::from_secs(60), || async {
            sts_api.get_opt(name).await.ok().flatten()
        })
        .await;
        let spec = sts.spec.expect("spec");
        let policy = spec
            .persistent_volume_claim_retention_policy
            .expect("retention");
        assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns_name);
        assert!(
            cms.get_opt(&format!("{name}-config"))
                .await
                .expect("get")
                .is_some()
        );
        let svcs: Api<Service> = Api::namespaced(client.clone(), &ns_name);
        for suffix in ["file", "api", "headless"] {
            assert!(
                svcs.get_opt(&format!("{name}-{suffix}"))
                    .await
                    .expect("get")
                    .is_some(),
                "{name}-{suffix}"
            );
        }
        // No kubelet: play the StatefulSet controller and report one ready pod.
        let generation = sts.metadata.generation.unwrap_or(1);
        sts_api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1, "currentReplicas": 1, "observedGeneration": generation, "currentRevision": "r1", "updateRevision": "r1"}})),
            )
            .await
            .expect("fake ready pod");
        eventually("Ready=True", Duration::from_secs(90), || async {
            let ds = servers.get(name).await.ok()?;
            ready(&ds).then_some(())
        })
        .await;
    }

    for (name, _) in &names {
        servers
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    for (name, _) in &names {
        eventually(
            "DittoServer gone (finalizer released)",
            Duration::from_secs(90),
            || async { servers.get_opt(name).await.ok()?.is_none().then_some(()) },
        )
        .await;
    }

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), controller_task).await;
    let _ = namespaces.delete(&ns_name, &DeleteParams::default()).await;
}
