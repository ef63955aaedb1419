//! End-to-end against a real API server (KUBECONFIG). Works on a cluster that runs
//! kube-controller-manager without a kubelet (and on one without either): the
//! controller runs in-process; a ready pod is faked by patching the status of pod
//! `<name>-0` once the StatefulSet controller has created it (nothing else writes a
//! pod's status without a kubelet), or the StatefulSet's status when no pod appears.
//!
//! Every test works in a throwaway namespace that is removed when the test ends,
//! also when it fails (finalizers of its DittoServers are stripped first, so the
//! namespace can go even if the controller is gone).
//!
//! `KUBECONFIG=… cargo test --test controller_cluster -- --ignored --test-threads=1`

use std::path::Path;
use std::time::Duration;

use dittofs_operator::controller::{self, ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::manifest;
use dittofs_operator::probes::Readiness;
use dittofs_operator::webhook::KubeLookup;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};
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

async fn install_crd(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        controller::CRD_NAME,
        &PatchParams::apply("dittofs-operator-test").force(),
        &Patch::Apply(crd),
    )
    .await
    .expect("install CRD");
    eventually("CRD established", Duration::from_secs(30), || async {
        let crd = crds.get(controller::CRD_NAME).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

/// A namespace that is removed when dropped — also when the test panics.
struct Namespaced {
    name: String,
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: clean up on a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async move {
                let Ok(client) = Client::try_default().await else {
                    return;
                };
                // Our finalizers would keep the namespace Terminating once the
                // controller is gone.
                let servers: Api<DittoServer> = Api::namespaced(client.clone(), &name);
                if let Ok(list) = servers.list_metadata(&ListParams::default()).await {
                    for ds in list {
                        let _ = servers
                            .patch_metadata(
                                &ds.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                            )
                            .await;
                    }
                }
                let namespaces: Api<Namespace> = Api::all(client);
                let _ = namespaces.delete(&name, &DeleteParams::default()).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// The controller running in-process on a fresh namespace.
struct Env {
    client: Client,
    ns: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _namespace: Namespaced,
}

impl Env {
    async fn start(test: &str) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_default().await.expect("KUBECONFIG");
        install_crd(&client, &DittoServer::crd()).await;
        let ns = format!("dittofs-{test}-{}", std::process::id());
        let namespaced = Namespaced { name: ns.clone() };
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
            )
            .await
            .expect("create namespace");
        let shutdown = CancellationToken::new();
        let readiness = Readiness::new();
        let lookup = KubeLookup::start(client.clone(), &readiness, shutdown.clone());
        let (leader_tx, leader) = watch::channel(true);
        let task = tokio::spawn({
            let client = client.clone();
            let shutdown = shutdown.clone();
            async move {
                let _keep = leader_tx;
                controller::run(
                    client,
                    ControllerArgs {
                        concurrency: 4,
                        debounce: Duration::from_millis(200),
                        reporter: "dittofs-operator-e2e".into(),
                    },
                    lookup,
                    leader,
                    readiness.gate("controller"),
                    ControllerMetrics::unregistered(),
                    shutdown,
                    CancellationToken::new(),
                )
                .await;
            }
        });
        Env {
            client,
            ns,
            shutdown,
            task: Some(task),
            _namespace: namespaced,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create(&self, ds: Value) -> DittoServer {
        let mut ds: DittoServer = serde_json::from_value(ds).expect("DittoServer");
        ds.metadata.namespace = Some(self.ns.clone());
        self.api::<DittoServer>()
            .create(&PostParams::default(), &ds)
            .await
            .expect("create DittoServer")
    }

    async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        let ds = self.api::<DittoServer>().get(name).await.ok()?;
        let c = ds
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status, c.reason, c.message))
    }

    async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> String {
        eventually(
            &format!("{name}: {type_}={status} {reason:?}"),
            Duration::from_secs(60),
            || async {
                let (s, r, m) = self.condition(name, type_).await?;
                (s == status && reason.is_none_or(|want| want == r)).then_some(m)
            },
        )
        .await
    }

    async fn wait_gone(&self, name: &str, within: Duration) {
        let servers = self.api::<DittoServer>();
        eventually("DittoServer gone (finalizer released)", within, || async {
            servers.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// Make the server's one pod ready: the pod `<name>-0` the StatefulSet controller
    /// created, else (no kube-controller-manager) the StatefulSet's status.
    async fn fake_ready_pod(&self, name: &str) {
        let pods = self.api::<Pod>();
        let pod_name = format!("{name}-0");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if pods.get_opt(&pod_name).await.ok().flatten().is_some() {
                let now = jiff::Timestamp::now().to_string();
                pods.patch_status(
                    &pod_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {
                        "phase": "Running",
                        "conditions": [
                            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                            {"type": "Ready", "status": "True", "lastTransitionTime": now},
                        ],
                        "containerStatuses": [{"name": "dittofs", "ready": true, "restartCount": 0,
                            "image": "dittofs", "imageID": "", "started": true,
                            "state": {"running": {"startedAt": now}}}],
                    }})),
                )
                .await
                .expect("fake ready pod");
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // No StatefulSet controller in this cluster: report the ready pod ourselves.
        let sts_api = self.api::<StatefulSet>();
        let sts = sts_api.get(name).await.expect("StatefulSet");
        let generation = sts.metadata.generation.unwrap_or(1);
        sts_api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1, "currentReplicas": 1, "observedGeneration": generation, "currentRevision": "r1", "updateRevision": "r1"}})),
            )
            .await
            .expect("fake ready StatefulSet");
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

fn minimal(name: &str) -> Value {
    json!({"apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
           "metadata": {"name": name}, "spec": {"replicas": 1, "storage": {"metadataSize": "1Gi"}, "service": {"type": "ClusterIP"}}})
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn samples_reconcile_become_ready_and_delete_cleanly() {
    let env = Env::start("e2e").await;
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
        env.wait_condition(name, "Ready", "True", None).await;
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
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_users_object_with_a_child_name_is_never_taken_over_or_deleted() {
    let env = Env::start("taken").await;
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
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_generated_secret_the_user_references_is_released_and_kept() {
    let env = Env::start("adopt").await;
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
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_short_jwt_secret_and_an_absent_percona_crd_are_reported_and_deletion_is_prompt() {
    let env = Env::start("reported").await;
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
    short["spec"]["identity"] = json!({"jwt": {"secretRef": {"name": "short", "key": "jwt"}}});
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
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn an_unreadable_object_is_reported_and_does_not_stop_the_others() {
    let env = Env::start("unreadable").await;
    // A CRD that accepts what this operator cannot read (what a newer CRD does).
    let mut loose = DittoServer::crd();
    for version in &mut loose.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            && let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec"))
        {
            spec.properties = None;
            spec.required = None;
            spec.x_kubernetes_preserve_unknown_fields = Some(true);
        }
    }
    install_crd(&env.client, &loose).await;
    struct RestoreCrd(Client);
    impl Drop for RestoreCrd {
        fn drop(&mut self) {
            let client = self.0.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Runtime::new() {
                    rt.block_on(async move {
                        let crds: Api<CustomResourceDefinition> = Api::all(client);
                        let _ = crds
                            .patch(
                                controller::CRD_NAME,
                                &PatchParams::apply("dittofs-operator-test").force(),
                                &Patch::Apply(DittoServer::crd()),
                            )
                            .await;
                    });
                }
            })
            .join();
        }
    }
    let _restore = RestoreCrd(env.client.clone());

    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::erase::<DittoServer>(&()),
    );
    let mut bad = minimal("bad");
    bad["spec"]["smb"] = json!({"enabled": "maybe"});
    raw.create(
        &PostParams::default(),
        &serde_json::from_value(bad).expect("object"),
    )
    .await
    .expect("create the unreadable object");
    env.create(minimal("good")).await;
    let message = env
        .wait_condition("bad", "ConfigReady", "False", Some("UnreadableSpec"))
        .await;
    assert!(message.contains("spec.smb.enabled"), "{message}");
    eventually("the good one is built", Duration::from_secs(60), || async {
        env.api::<StatefulSet>()
            .get_opt("good")
            .await
            .ok()
            .flatten()
    })
    .await;
    raw.delete("bad", &DeleteParams::default())
        .await
        .expect("delete");
    env.wait_gone("bad", Duration::from_secs(30)).await;
    env.stop().await;
}

/// The Percona CRD, as a stand-in with no operator behind it (installed only where
/// Percona is not: a real Percona operator would start a real database).
fn percona_stand_in() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "perconapgclusters.pgv2.percona.com"},
        "spec": {"group": "pgv2.percona.com", "scope": "Namespaced",
                 "names": {"plural": "perconapgclusters", "singular": "perconapgcluster", "kind": "PerconaPGCluster"},
                 "versions": [{"name": "v2", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("CRD")
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_percona_cluster_carries_our_owner_reference_only_while_deletion_is_wanted() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.expect("KUBECONFIG");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if crds
        .get_opt("perconapgclusters.pgv2.percona.com")
        .await
        .expect("read CRDs")
        .is_some()
    {
        eprintln!("skipped: a Percona operator is installed; covered by the in-memory tests");
        return;
    }
    struct RemoveCrd(Client);
    impl Drop for RemoveCrd {
        fn drop(&mut self) {
            let client = self.0.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Runtime::new() {
                    rt.block_on(async move {
                        let crds: Api<CustomResourceDefinition> = Api::all(client);
                        let _ = crds
                            .delete(
                                "perconapgclusters.pgv2.percona.com",
                                &DeleteParams::default(),
                            )
                            .await;
                    });
                }
            })
            .join();
        }
    }
    crds.create(&PostParams::default(), &percona_stand_in())
        .await
        .expect("install the stand-in CRD");
    let _remove = RemoveCrd(client.clone());
    eventually(
        "the stand-in CRD served",
        Duration::from_secs(30),
        || async {
            let crd = crds.get("perconapgclusters.pgv2.percona.com").await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await;

    let env = Env::start("percona").await;
    let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &dittofs_operator::resources::percona::api_resource(),
    );
    let mut ds = minimal("db");
    ds["spec"]["percona"] = json!({"enabled": true, "deleteWithServer": true});
    let created = env.create(ds).await;
    let uid = created.uid().expect("uid");
    let owners = || async {
        let c = clusters.get_opt("db-postgres").await.ok()??;
        Some(
            c.owner_references()
                .iter()
                .map(|r| r.uid.clone())
                .collect::<Vec<_>>(),
        )
    };
    eventually("the cluster, owned", Duration::from_secs(60), || async {
        owners().await.filter(|o| o.contains(&uid))
    })
    .await;
    env.api::<DittoServer>()
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"percona": {"deleteWithServer": false}}})),
        )
        .await
        .expect("keep the database");
    eventually(
        "our owner reference removed",
        Duration::from_secs(60),
        || async { owners().await.filter(|o| !o.contains(&uid)) },
    )
    .await;
    env.api::<DittoServer>()
        .delete("db", &DeleteParams::foreground())
        .await
        .expect("delete (foreground)");
    // Foreground: the garbage collector deletes the owned children first.
    env.wait_gone("db", Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        clusters
            .get_opt("db-postgres")
            .await
            .expect("get")
            .is_some(),
        "the database survives a foreground deletion"
    );
    let _ = clusters
        .delete("db-postgres", &DeleteParams::default())
        .await;
    env.stop().await;
}
