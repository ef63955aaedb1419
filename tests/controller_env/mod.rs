//! The controller running in-process against a real API server (KUBECONFIG), on a
//! throwaway namespace: shared by `controller_cluster.rs` and
//! `controller_cluster_crd.rs`.
//!
//! Cleanup never runs in a `Drop` (which cannot await, and would block the runtime
//! the test's own client needs): a test body runs inside [`with_cleanup`], which
//! awaits the cleanup on the test's runtime whether the body passed or panicked.

#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;

use dittofs_operator::controller::{self, ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::probes::Readiness;
use dittofs_operator::webhook::KubeLookup;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Field manager of the CRD writes of these tests.
pub const FIELD_MANAGER: &str = "dittofs-operator-test";

/// Repeat `f` every half second until it gives a value; None once `timeout` has
/// passed without one.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// [`poll_until`], failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(timeout, f)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Run `body`, then await `cleanup` whatever happened in `body` (a failed assertion
/// included); then fail as `body` did, or, when it passed, if `cleanup` reports a
/// problem.
pub async fn with_cleanup(
    body: impl Future<Output = ()>,
    cleanup: impl Future<Output = Vec<String>>,
) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    let problems = cleanup.await;
    match outcome {
        Err(panic) => {
            if !problems.is_empty() {
                eprintln!("cleanup after the failure: {}", problems.join("; "));
            }
            std::panic::resume_unwind(panic);
        }
        Ok(()) => assert!(
            problems.is_empty(),
            "cleanup failed: {}",
            problems.join("; ")
        ),
    }
}

/// Server-side apply `crd` (as [`FIELD_MANAGER`], forced) and wait until it is
/// Established.
pub async fn install_crd(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        controller::CRD_NAME,
        &PatchParams::apply(FIELD_MANAGER).force(),
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

/// DittoServers of `ns` as raw JSON: readable whatever their spec holds.
pub fn raw_servers(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<DittoServer>(&()))
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Remove namespace `ns` and its DittoServers; returns what failed. Our finalizer
/// would hold a DittoServer (and so the namespace, Terminating) once no controller
/// runs: each is deleted first, so that no controller still running can add the
/// finalizer back, then its finalizers are removed. Raw JSON throughout, so an
/// unreadable spec is no obstacle.
pub async fn remove_namespace(client: &Client, ns: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let servers = raw_servers(client, ns);
    match servers.list(&ListParams::default()).await {
        Ok(list) => {
            for ds in list {
                let name = ds.name_any();
                if let Err(e) = servers.delete(&name, &DeleteParams::default()).await
                    && !not_found(&e)
                {
                    problems.push(format!("deleting DittoServer {ns}/{name}: {e}"));
                }
                if let Err(e) = servers
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await
                    && !not_found(&e)
                {
                    problems.push(format!("releasing DittoServer {ns}/{name}: {e}"));
                }
            }
        }
        Err(e) if not_found(&e) => {}
        Err(e) => problems.push(format!("listing the DittoServers of {ns}: {e}")),
    }
    if let Err(e) = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        && !not_found(&e)
    {
        problems.push(format!("deleting namespace {ns}: {e}"));
    }
    problems
}

/// The controller running in-process on a fresh namespace. The controller watches
/// every namespace; the test's objects are in `ns`.
pub struct Env {
    pub client: Client,
    pub ns: String,
    shutdown: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Env {
    /// Install this version's CRD, create the namespace, start the controller.
    /// Nothing that can fail comes after the namespace is created.
    pub async fn start(test: &str) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_default().await.expect("KUBECONFIG");
        install_crd(&client, &dittofs_operator::schema::crd()).await;
        let ns = format!("dittofs-{test}-{}", std::process::id());
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
                    dittofs_operator::dittofs::Client::new(
                        dittofs_operator::dittofs::Resolver::everything_to(
                            std::net::Ipv4Addr::LOCALHOST.into(),
                        ),
                    ),
                    ControllerArgs {
                        concurrency: 4,
                        debounce: Duration::from_millis(200),
                        reporter: "dittofs-operator-e2e".into(),
                        poll_interval: std::time::Duration::from_secs(60),
                        scope: Default::default(),
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
            task: Mutex::new(Some(task)),
        }
    }

    /// Stop the controller and remove the namespace; returns what failed (for
    /// [`with_cleanup`]).
    pub async fn clean_up(&self) -> Vec<String> {
        self.shutdown.cancel();
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(10), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        remove_namespace(&self.client, &self.ns).await
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The DittoServers of the namespace as raw JSON.
    pub fn raw(&self) -> Api<DynamicObject> {
        raw_servers(&self.client, &self.ns)
    }

    pub async fn create(&self, ds: Value) -> DittoServer {
        let mut ds: DittoServer = serde_json::from_value(ds).expect("DittoServer");
        ds.metadata.namespace = Some(self.ns.clone());
        self.api::<DittoServer>()
            .create(&PostParams::default(), &ds)
            .await
            .expect("create DittoServer")
    }

    /// (status, reason, message) of condition `type_` of DittoServer `name`, read as
    /// raw JSON (the spec may be unreadable).
    pub async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        let ds = self.raw().get(name).await.ok()?;
        let c = ds.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)?;
        let field = |f: &str| c[f].as_str().unwrap_or_default().to_string();
        Some((field("status"), field("reason"), field("message")))
    }

    pub async fn wait_condition(
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

    pub async fn wait_gone(&self, name: &str, within: Duration) {
        let servers = self.raw();
        eventually("DittoServer gone (finalizer released)", within, || async {
            servers.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// Make the server's one pod ready: the pod `<name>-0` the StatefulSet controller
    /// created, else (no kube-controller-manager) the StatefulSet's status.
    pub async fn fake_ready_pod(&self, name: &str) {
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
}

/// A minimal valid DittoServer `name` (no namespace).
pub fn minimal(name: &str) -> Value {
    json!({"apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
           "metadata": {"name": name}, "spec": {"replicas": 1, "storage": {"metadataSize": "1Gi"}, "service": {"type": "ClusterIP"}}})
}
