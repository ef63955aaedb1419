//! Reconcile against the in-memory API server (`tests/fake_api`): which requests a
//! pass makes, what it writes, which events and status come out. No cluster needed.

mod fake_api;

use std::sync::Arc;

use dittofs_operator::controller::reconcile::reconcile;
use dittofs_operator::controller::{Context, ControllerMetrics};
use fake_api::{AllFound, DS_PATH, FakeApi, PG_PATH, STS_PATH, start};
use http::Method;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tokio::sync::watch;

struct Harness {
    api: FakeApi,
    ctx: Arc<Context<AllFound>>,
    _leader: watch::Sender<bool>,
}

impl Harness {
    fn new(spec: Value) -> Self {
        let api = FakeApi::new();
        api.create_namespace("ns");
        api.put(
            DS_PATH,
            json!({
                "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
                "metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid", "generation": 1, "resourceVersion": "1"},
                "spec": spec,
            }),
        );
        let client = start(&api);
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "test".into(),
                instance: None,
            },
        );
        let (tx, rx) = watch::channel(true);
        let ctx = Arc::new(Context::new(
            client,
            recorder,
            AllFound,
            rx,
            ControllerMetrics::unregistered(),
        ));
        Harness {
            api,
            ctx,
            _leader: tx,
        }
    }

    async fn pass(&self) -> Result<(), String> {
        reconcile(Arc::new(self.api.ds()), self.ctx.clone())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn edit_spec(&self, f: impl FnOnce(&mut Value)) {
        let mut ds = self.api.get(DS_PATH).unwrap();
        f(&mut ds["spec"]);
        let generation = ds["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        ds["metadata"]["generation"] = json!(generation);
        self.api.put(DS_PATH, ds);
    }

    /// Simulate the StatefulSet controller: one ready, up-to-date pod.
    fn pod_ready(&self) {
        let mut sts = self.api.get(STS_PATH).expect("StatefulSet exists");
        sts["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1, "currentRevision": "r1", "updateRevision": "r1"});
        self.api.put(STS_PATH, sts);
    }
}

fn minimal() -> Value {
    json!({"storage": {"metadataSize": "1Gi"}})
}

#[tokio::test]
async fn creates_everything_from_nothing() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    let writes = h.api.writes();
    let position = |path: &str| {
        writes
            .iter()
            .position(|(_, p)| p == path)
            .unwrap_or_else(|| panic!("{path} not written: {writes:?}"))
    };
    assert!(h.api.wrote(Method::PATCH, DS_PATH), "finalizer added");
    let cm = position("/api/v1/namespaces/ns/configmaps/d-config");
    let sts = position(STS_PATH);
    assert!(cm < sts, "ConfigMap applied before the StatefulSet");
    for path in [
        "/api/v1/namespaces/ns/secrets/d-jwt-secret",
        "/api/v1/namespaces/ns/secrets/d-admin-bootstrap-credentials",
        "/api/v1/namespaces/ns/services/d-file",
        "/api/v1/namespaces/ns/services/d-api",
        "/api/v1/namespaces/ns/services/d-headless",
    ] {
        position(path);
    }
    assert!(
        h.api
            .get("/api/v1/namespaces/ns/services/d-metrics")
            .is_none()
    );
    let ds = h.api.ds();
    assert!(
        ds.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"dittofs.dittofs.com/finalizer".to_string())
    );
    assert_eq!(
        h.api.condition("ConfigReady"),
        Some(("True".into(), "ConfigApplied".into()))
    );
    assert_eq!(h.api.condition("Ready").map(|c| c.0), Some("False".into()));
    assert!(h.api.event_reasons().contains(&"Created".to_string()));
    assert_eq!(ds.status.and_then(|s| s.config_hash), h.api.sts_hash());

    h.pod_ready();
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("Ready"),
        Some(("True".into(), "AllConditionsMet".into()))
    );
}

#[tokio::test]
async fn a_resync_with_nothing_changed_writes_nothing() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    h.pod_ready();
    h.pass().await.unwrap();
    h.api.clear_log();
    h.pass().await.unwrap();
    assert_eq!(
        h.api.writes(),
        Vec::<(Method, String)>::new(),
        "no write on an idle resync"
    );
}

#[tokio::test]
async fn a_rotated_secret_changes_the_hash_and_rolls_the_pod() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "s3": {"credentialsSecretRef": {"secretName": "s3"}}}),
    );
    let secret = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": "ns"}, "data": {"accessKeyId": v, "secretAccessKey": "c2VjcmV0"}});
    h.api
        .put("/api/v1/namespaces/ns/secrets/s3", secret("YQ=="));
    h.pass().await.unwrap();
    let before = h.api.sts_hash().expect("hash");
    h.api
        .put("/api/v1/namespaces/ns/secrets/s3", secret("Yg=="));
    h.api.clear_log();
    h.pass().await.unwrap();
    let after = h.api.sts_hash().expect("hash");
    assert_ne!(before, after);
    assert!(h.api.wrote(Method::PATCH, STS_PATH));
    assert!(h.api.event_reasons().iter().any(|r| r == "Updated"));
}

#[tokio::test]
async fn a_service_only_edit_keeps_the_hash_and_the_pod() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    let before = h.api.sts_hash();
    h.edit_spec(|spec| spec["service"] = json!({"type": "NodePort", "annotations": {"a": "b"}}));
    h.api.clear_log();
    h.pass().await.unwrap();
    assert!(
        h.api
            .wrote(Method::PATCH, "/api/v1/namespaces/ns/services/d-file")
    );
    assert!(
        !h.api.wrote(Method::PATCH, STS_PATH),
        "the StatefulSet is untouched"
    );
    assert_eq!(h.api.sts_hash(), before);
}

#[tokio::test]
async fn an_invalid_object_gets_a_condition_and_an_event_and_no_children() {
    // replicas: 2 would be refused by the schema and the webhook; bypass both.
    let h = Harness::new(json!({"replicas": 2, "storage": {"metadataSize": "1Gi"}}));
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("ConfigReady"),
        Some(("False".into(), "InvalidSpec".into()))
    );
    assert_eq!(
        h.api.condition("Degraded").map(|c| c.0),
        Some("True".into())
    );
    assert!(
        h.api
            .event_reasons()
            .contains(&"ValidationFailed".to_string())
    );
    let children: Vec<_> = h
        .api
        .writes()
        .into_iter()
        .filter(|(_, p)| !p.starts_with(DS_PATH) && !p.contains("/events"))
        .collect();
    assert!(children.is_empty(), "no child touched: {children:?}");
    // The same invalid spec again: no new event, no status write.
    h.api.clear_log();
    h.pass().await.unwrap();
    assert!(h.api.writes().is_empty(), "{:?}", h.api.writes());
}

#[tokio::test]
async fn percona_waits_then_connects() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}));
    h.pass().await.unwrap();
    let cluster = h.api.get(PG_PATH).expect("PerconaPGCluster applied");
    assert!(
        cluster["metadata"]["ownerReferences"].is_null(),
        "no owner reference without deleteWithServer"
    );
    assert!(
        h.api.get(STS_PATH).is_none(),
        "StatefulSet waits for the database"
    );
    // Just created: the cluster did not exist when this pass looked.
    assert_eq!(
        h.api.condition("DatabaseReady"),
        Some(("False".into(), "PerconaNotFound".into()))
    );
    assert_eq!(
        h.api
            .event_reasons()
            .iter()
            .filter(|r| *r == "PerconaNotReady")
            .count(),
        1
    );
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("DatabaseReady"),
        Some(("False".into(), "PerconaNotReady".into()))
    );
    assert_eq!(
        h.api
            .event_reasons()
            .iter()
            .filter(|r| *r == "PerconaNotReady")
            .count(),
        1,
        "not repeated every pass"
    );

    let mut cluster = h.api.get(PG_PATH).unwrap();
    cluster["status"] = json!({"state": "ready"});
    h.api.put(PG_PATH, cluster);
    h.pass().await.unwrap();
    assert!(
        h.api.get(STS_PATH).is_some(),
        "StatefulSet created once the database is ready"
    );
    assert_eq!(
        h.api.condition("DatabaseReady"),
        Some(("True".into(), "PerconaReady".into()))
    );
}

fn deleting(h: &Harness, seconds_ago: i64) {
    let mut ds = h.api.get(DS_PATH).unwrap();
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
    ds["metadata"]["deletionTimestamp"] = json!(at.to_string());
    h.api.put(DS_PATH, ds);
}

fn our_cluster(h: &Harness, owned: bool) {
    let mut c = json!({
        "apiVersion": "pgv2.percona.com/v2", "kind": "PerconaPGCluster",
        "metadata": {"name": "d-postgres", "namespace": "ns", "labels": {"app.kubernetes.io/managed-by": "dittofs-operator", "app.kubernetes.io/instance": "d"}},
        "spec": {}, "status": {"state": "ready"}
    });
    if owned {
        c["metadata"]["ownerReferences"] = json!([{"apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer", "name": "d", "uid": "ds-uid", "controller": true}]);
    }
    h.api.put(PG_PATH, c);
}

#[tokio::test]
async fn deletion_with_delete_with_server_deletes_the_database() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    our_cluster(&h, true);
    deleting(&h, 1);
    h.pass().await.unwrap();
    assert!(h.api.wrote(Method::DELETE, PG_PATH));
    assert!(
        h.api.get(DS_PATH).is_none(),
        "finalizer released: the server removed the object"
    );
    let reasons = h.api.event_reasons();
    assert!(
        reasons.contains(&"Deleting".to_string())
            && reasons.contains(&"PerconaDeleted".to_string())
    );
}

#[tokio::test]
async fn deletion_without_delete_with_server_keeps_the_database() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}));
    h.pass().await.unwrap();
    // Even if an owner reference got there (e.g. deleteWithServer was true before).
    our_cluster(&h, true);
    deleting(&h, 1);
    h.pass().await.unwrap();
    assert!(!h.api.wrote(Method::DELETE, PG_PATH));
    let cluster = h.api.get(PG_PATH).expect("kept");
    assert_eq!(
        cluster["metadata"]["ownerReferences"],
        json!([]),
        "GC can never take it"
    );
    assert!(
        h.api.get(DS_PATH).is_none(),
        "finalizer released: the server removed the object"
    );
    assert!(
        h.api
            .event_reasons()
            .contains(&"PerconaOrphaned".to_string())
    );
}

#[tokio::test]
async fn cleanup_is_bounded() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}));
    h.pass().await.unwrap();
    h.api.fail_path(PG_PATH);
    deleting(&h, 5);
    assert!(
        h.pass().await.is_err(),
        "cleanup failure is retried within the bound"
    );
    assert!(
        !h.api
            .ds()
            .metadata
            .finalizers
            .unwrap_or_default()
            .is_empty()
    );
    deleting(&h, 120);
    h.pass().await.unwrap();
    assert!(
        h.api.get(DS_PATH).is_none(),
        "released after the timeout: the server removed the object"
    );
    assert!(
        h.api
            .event_reasons()
            .contains(&"CleanupTimeout".to_string())
    );
}

#[tokio::test]
async fn a_replica_that_is_not_leader_does_nothing() {
    let h = Harness::new(minimal());
    h._leader.send_replace(false);
    h.pass().await.unwrap();
    assert!(h.api.requests().is_empty());
}

/// (apiGroup, resource) of an API path, e.g. `/apis/apps/v1/namespaces/ns/statefulsets/d`.
fn group_resource(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.first() {
        Some(&"api") => (String::new(), &parts[2..]),
        _ => (
            parts.get(1).copied().unwrap_or_default().to_string(),
            &parts[3.min(parts.len())..],
        ),
    };
    let rest: Vec<&str> = if rest.first() == Some(&"namespaces") {
        rest[2.min(rest.len())..].to_vec()
    } else {
        rest.to_vec()
    };
    let mut resource = rest.first().copied().unwrap_or_default().to_string();
    if rest.get(2) == Some(&"status") {
        resource.push_str("/status");
    }
    (group, resource)
}

#[tokio::test]
async fn every_call_the_reconciler_makes_is_allowed_by_the_cluster_role() {
    // Exercise every path: create, Percona wait and ready, metrics pruning, deletion.
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "metrics": {"enabled": true}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    let mut cluster = h.api.get(PG_PATH).unwrap();
    cluster["status"] = json!({"state": "ready"});
    h.api.put(PG_PATH, cluster);
    h.pass().await.unwrap();
    h.edit_spec(|spec| spec["metrics"] = json!({"enabled": false}));
    h.pass().await.unwrap();
    deleting(&h, 1);
    h.pass().await.unwrap();

    let requests = h.api.requests();
    assert!(requests.len() > 20);
    for fake_api::RequestRecord { method, path, .. } in requests {
        let (group, resource) = group_resource(&path);
        let verbs: &[&str] = match method {
            Method::GET => &["get"],
            // Server-side apply may create: both verbs are needed.
            Method::PATCH => &["patch"],
            Method::POST => &["create"],
            Method::DELETE => &["delete"],
            _ => &["update"],
        };
        for verb in verbs {
            let allowed = dittofs_operator::rbac::RULES
                .iter()
                .chain(dittofs_operator::rbac::NAMESPACED_RULES)
                .any(|r| {
                    r.api_group == group
                        && r.resources.contains(&resource.as_str())
                        && r.verbs.contains(verb)
                });
            assert!(
                allowed,
                "{method} {path}: ({group:?}, {resource}, {verb}) is not in src/rbac.rs"
            );
        }
    }
}
