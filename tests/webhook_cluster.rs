//! The webhook against a real API server (KUBECONFIG): registered by
//! `url: https://127.0.0.1:PORT/...`, so the API server must run on this host's
//! network (a local kube-apiserver, k3s, minikube `--driver=none`; not kind, whose
//! API server lives in a container).
//!
//! `cargo test --test webhook_cluster -- --ignored`
//!
//! Creates (and deletes, also when a step fails) a namespace, both webhook
//! configurations scoped to that namespace, a StorageClass of its own, and the
//! DittoServer CRD when it is not installed yet. Needs no kubelet: no pod is ever
//! started.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dittofs_operator::crd::DittoServer;
use dittofs_operator::probes::Readiness;
use dittofs_operator::webhook::{KubeLookup, ServerArgs, Webhook, WebhookMetrics};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const FIELD_MANAGER: &str = "dittofs-webhook-cluster-test";

#[derive(Clone)]
struct Cluster {
    client: Client,
    namespace: String,
    config_name: String,
    /// A StorageClass only this test creates and deletes.
    storage_class: String,
    /// Set once this test's create of the CRD succeeded: only then is it ours to
    /// delete (shared with the task that installs).
    created_crd: Arc<AtomicBool>,
}

fn webhook_entry(name: &str, url: &str, ca_pem: &str, namespace: &str) -> Value {
    use base64::Engine as _;
    json!({
        "name": name,
        "clientConfig": {
            "url": url,
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        },
        "rules": [{
            "apiGroups": ["dittofs.dittofs.com"],
            "apiVersions": ["v1alpha1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["dittoservers"],
            "scope": "Namespaced",
        }],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "timeoutSeconds": 5,
        "admissionReviewVersions": ["v1"],
    })
}

impl Cluster {
    /// Names only. Nothing is created.
    fn new(client: Client) -> Self {
        let suffix = std::process::id();
        Self {
            client,
            namespace: format!("dittofs-webhook-test-{suffix}"),
            storage_class: format!("dittofs-webhook-test-{suffix}"),
            config_name: format!("dittofs-webhook-test-{suffix}"),
            created_crd: Arc::default(),
        }
    }

    /// Create what the checks need; run inside the task whose failure is followed by
    /// `teardown`, so a failure half-way leaves nothing behind.
    async fn install(&self, port: u16, ca_pem: &str) {
        let cluster = self;
        let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
        let crd = dittofs_operator::schema::crd();
        let crd_name = crd.metadata.name.clone().unwrap();
        if crds.get_opt(&crd_name).await.unwrap().is_none() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
            cluster.created_crd.store(true, Ordering::SeqCst);
        }
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": cluster.namespace}})).unwrap(),
            )
            .await
            .unwrap();
        let base = format!("https://127.0.0.1:{port}");
        let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": cluster.config_name},
            "webhooks": [webhook_entry("validate.dittofs.dittofs.com", &format!("{base}/validate"), ca_pem, &cluster.namespace)],
        }))
        .unwrap();
        let mut mutating = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": cluster.config_name},
            "webhooks": [webhook_entry("mutate.dittofs.dittofs.com", &format!("{base}/mutate"), ca_pem, &cluster.namespace)],
        });
        mutating["webhooks"][0]["reinvocationPolicy"] = json!("Never");
        let mutating: MutatingWebhookConfiguration = serde_json::from_value(mutating).unwrap();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Api::<ValidatingWebhookConfiguration>::all(cluster.client.clone())
            .patch(&cluster.config_name, &pp, &Patch::Apply(&validating))
            .await
            .unwrap();
        Api::<MutatingWebhookConfiguration>::all(cluster.client.clone())
            .patch(&cluster.config_name, &pp, &Patch::Apply(&mutating))
            .await
            .unwrap();
        cluster.wait_crd_established(&crd_name).await;
    }

    async fn wait_crd_established(&self, name: &str) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let crd = crds.get(name).await.unwrap();
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return;
            }
            assert!(Instant::now() < deadline, "CRD {name} never established");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn teardown(&self) {
        let dp = DeleteParams::default();
        // A DittoServer left with a finalizer (a failed check) would hold the
        // namespace in Terminating forever: no controller runs here to remove it.
        let servers = self.servers();
        if let Ok(list) = servers.list(&Default::default()).await {
            for ds in list {
                if let Some(name) = ds.metadata.name.as_deref() {
                    let _ = servers
                        .patch(
                            name,
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                        )
                        .await;
                }
            }
        }
        let _ = Api::<StorageClass>::all(self.client.clone())
            .delete(&self.storage_class, &dp)
            .await;
        let _ = Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.config_name, &dp)
            .await;
        let _ = Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.config_name, &dp)
            .await;
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &dp)
            .await;
        if self.created_crd.load(Ordering::SeqCst) {
            let _ = Api::<CustomResourceDefinition>::all(self.client.clone())
                .delete(
                    &dittofs_operator::schema::crd()
                        .metadata
                        .name
                        .unwrap_or_default(),
                    &dp,
                )
                .await;
        }
    }

    fn servers(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &kube::discovery::ApiResource::erase::<DittoServer>(&()),
        )
    }

    /// Retry a dry-run create of `object` until `done(status, message)` holds (the
    /// webhook's caches follow the cluster asynchronously); returns the message.
    async fn until(&self, what: &str, object: &Value, done: impl Fn(u16, &str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, body) = self.create(object, true).await;
            let message = body["message"].as_str().unwrap_or_default().to_string();
            if done(status, &message) {
                return message;
            }
            assert!(Instant::now() < deadline, "{what}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// POST a DittoServer (dry-run or not); returns the HTTP status, the `Warning`
    /// headers and the body.
    async fn create(&self, object: &Value, dry_run: bool) -> (u16, Vec<String>, Value) {
        let url = format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{}/dittoservers",
            self.namespace
        );
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let request = kube::core::Request::new(url)
            .create(&pp, serde_json::to_vec(object).unwrap())
            .unwrap();
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let body = response.into_body().collect_bytes().await.unwrap();
        (status, warnings, serde_json::from_slice(&body).unwrap())
    }
}

fn object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1",
        "kind": "DittoServer",
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn checks(cluster: &Cluster) {
    // The API server picks up new webhook configurations asynchronously: retry a
    // dry-run create of an invalid object until our webhook answers.
    let invalid = object(
        "invalid",
        json!({"storage": {"metadataSize": "1Gi", "storageClassName": "no-such-class-dittofs-test"}}),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let message = loop {
        let (status, _, body) = cluster.create(&invalid, true).await;
        let message = body["message"].as_str().unwrap_or_default().to_string();
        if status >= 400 && message.contains("validate.dittofs.dittofs.com") {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never answered: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(message.contains("denied the request"), "{message}");
    assert!(
        message.contains("storageClassName") && message.contains("no-such-class-dittofs-test"),
        "{message}"
    );

    // A warning reaches the client as a `Warning` header (what kubectl prints).
    let warned = object(
        "warned",
        json!({"storage": {"metadataSize": "1Gi"}, "identity": {"jwt": {"secretRef": {"name": "no-such-secret-dittofs-test", "key": "k"}}}}),
    );
    let (status, warnings, body) = cluster.create(&warned, true).await;
    assert!(status < 300, "{status} {body}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no-such-secret-dittofs-test")),
        "{warnings:?}"
    );

    // Defaults appear on the stored object. The mutating configuration may become
    // active a moment after the validating one: wait for a dry run to come back
    // defaulted before creating for real.
    let minimal = object("defaulted", json!({"storage": {"metadataSize": "1Gi"}}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, body) = cluster.create(&minimal, true).await;
        assert!(status < 300, "{status} {body}");
        if body["spec"]["image"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mutating webhook never active: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, _, body) = cluster.create(&minimal, false).await;
    assert!(status < 300, "{status} {body}");
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &cluster.namespace,
        &kube::discovery::ApiResource::erase::<DittoServer>(&()),
    );
    let stored = api.get("defaulted").await.unwrap();
    let spec = &stored.data["spec"];
    assert_eq!(spec["image"], dittofs_operator::defaults::DEFAULT_IMAGE);
    assert_eq!(spec["nfsPort"], 2049);
    assert_eq!(spec["replicas"], 1);
}

/// Issue 8 §1: a DittoServer whose StorageClass was deleted after creation can
/// still be edited (an unrelated field) and deleted (the finalizer-removal UPDATE).
async fn deleted_storage_class_blocks_nothing(cluster: &Cluster) {
    let classes: Api<StorageClass> = Api::all(cluster.client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": cluster.storage_class},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))
    .unwrap();
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    let spec =
        json!({"storage": {"metadataSize": "1Gi", "storageClassName": cluster.storage_class}});
    let mut pinned = object("pinned", spec.clone());
    // Our own finalizer stands in for the controller's, so deletion needs an UPDATE.
    pinned["metadata"]["finalizers"] = json!(["dittofs.dittofs.com/finalizer"]);
    cluster
        .until(
            "the webhook never saw the new StorageClass",
            &pinned,
            |status, _| status < 300,
        )
        .await;
    let (status, _, body) = cluster.create(&pinned, false).await;
    assert!(status < 300, "{status} {body}");

    classes
        .delete(&cluster.storage_class, &DeleteParams::default())
        .await
        .unwrap();
    let probe = object("probe", spec);
    let message = cluster
        .until(
            "the webhook never saw the StorageClass go",
            &probe,
            |status, message| status >= 400 && message.contains("does not exist in the cluster"),
        )
        .await;
    assert!(message.contains(&cluster.storage_class), "{message}");

    let servers = cluster.servers();
    servers
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("an unrelated edit is allowed although the StorageClass is gone");
    servers
        .delete("pinned", &DeleteParams::default())
        .await
        .unwrap();
    servers
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("removing the finalizer is allowed although the StorageClass is gone");
    let deadline = Instant::now() + Duration::from_secs(30);
    while servers.get_opt("pinned").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "pinned was never deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Issue 8 §2: with no Percona CRD (a plain-text 404 from the API server),
/// `percona.enabled: true` is denied naming the missing operator.
async fn absent_percona_crd_is_denied(cluster: &Cluster) {
    let installed = Api::<CustomResourceDefinition>::all(cluster.client.clone())
        .get_opt("perconapgclusters.pgv2.percona.com")
        .await
        .unwrap()
        .is_some();
    if installed {
        eprintln!("the Percona CRD is installed in this cluster: its absence is not tested");
        return;
    }
    let percona = object(
        "percona",
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}),
    );
    let (status, _, body) = cluster.create(&percona, true).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(status >= 400, "{status} {body}");
    assert!(
        message.contains("spec.percona.enabled: the Percona PostgreSQL operator is not installed"),
        "{message}"
    );
}

/// Issue 8 §7: a JWT secret shorter than 32 bytes is denied with its length and
/// the minimum, never its value.
async fn short_jwt_secret_is_denied(cluster: &Cluster) {
    const VALUE: &str = "not-enough!";
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "short-jwt"},
        "stringData": {"jwt-secret": VALUE},
    }))
    .unwrap();
    Api::<Secret>::namespaced(cluster.client.clone(), &cluster.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let short = object(
        "short",
        json!({"storage": {"metadataSize": "1Gi"}, "identity": {"jwt": {"secretRef": {"name": "short-jwt", "key": "jwt-secret"}}}}),
    );
    let (status, _, body) = cluster.create(&short, true).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(status >= 400, "{status} {body}");
    assert!(
        message.contains("holds 11 bytes") && message.contains("fewer than 32 bytes"),
        "{message}"
    );
    assert!(!message.contains(VALUE), "the value leaked: {message}");
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn webhook_registered_by_url_rejects_warns_and_defaults() {
    support::install_provider();
    let client = Client::try_default().await.expect("KUBECONFIG");
    let dir = tempfile::tempdir().unwrap();
    let args = ServerArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        probe_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert_file: None,
        tls_key_file: None,
        self_signed: true,
        ca_out: Some(dir.path().join("ca.pem")),
        tls_reload_interval: Duration::from_secs(5),
        shutdown_delay: Duration::ZERO,
    };
    let readiness = Readiness::new();
    let shutdown = CancellationToken::new();
    let lookup = KubeLookup::start(client.clone(), &readiness, shutdown.clone());
    let webhook = Webhook::bind(
        &args,
        Default::default(),
        Arc::new(lookup),
        &readiness,
        WebhookMetrics::unregistered(),
    )
    .await
    .unwrap();
    let port = webhook.local_addr().unwrap().port();
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let server = tokio::spawn(webhook.run(shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !readiness.is_ready() {
        assert!(
            Instant::now() < deadline,
            "not ready: {:?}",
            readiness.pending()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cluster = Cluster::new(client);
    let checked = cluster.clone();
    // Install and check in a task, so a failed step still lets us clean up.
    let result = tokio::spawn(async move {
        checked.install(port, &ca_pem).await;
        checks(&checked).await;
        deleted_storage_class_blocks_nothing(&checked).await;
        absent_percona_crd_is_denied(&checked).await;
        short_jwt_secret_is_denied(&checked).await;
    })
    .await;
    cluster.teardown().await;
    shutdown.cancel();
    server.await.unwrap();
    if let Err(failure) = result {
        std::panic::resume_unwind(failure.into_panic());
    }
}
