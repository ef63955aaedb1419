//! Reconcile passes against an in-memory API server, with the stores fed by hand:
//! `pass()` brings the stores up to date first (a watch that kept up), `stale_pass()`
//! runs on whatever the stores held before (a watch that lags the server, as a real
//! one does under load). Which requests a pass makes, what it writes, which events
//! and status come out. No cluster needed.

mod fake_api;
mod fake_dittofs;

use std::sync::{Arc, Mutex};

use dittofs_operator::controller::reconcile::reconcile;
use dittofs_operator::controller::watches::{OptionalType, Stores, Writers};
use dittofs_operator::controller::{Context, ControllerMetrics, StoredServer};
use fake_api::{AllFound, DS_PATH, FakeApi, PG_PATH, STS_PATH, start};
use fake_dittofs::FakeDittoFs;
use http::Method;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

const NS: &str = "/api/v1/namespaces/ns";
const JWT_PATH: &str = "/api/v1/namespaces/ns/secrets/d-jwt-secret";
const CM_PATH: &str = "/api/v1/namespaces/ns/configmaps/d-config";

struct Harness {
    api: FakeApi,
    /// The DittoFS server of `d`, once its pod is ready (`pod_ready`).
    dittofs: FakeDittoFs,
    ctx: Arc<Context<AllFound>>,
    stores: Stores,
    writers: Mutex<Writers>,
    leader: watch::Sender<bool>,
}

impl Harness {
    fn new(mut spec: Value) -> Self {
        let api = FakeApi::new();
        api.create_namespace("ns");
        // The server's REST API is reached through `d-api.ns.svc`, which the test's
        // resolver sends to the fake DittoFS on loopback, at the Service port.
        let dittofs = FakeDittoFs::start();
        spec["controlPlane"]["servicePort"] = json!(dittofs.port());
        api.put(
            DS_PATH,
            json!({
                "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
                "metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid", "generation": 1, "resourceVersion": "1"},
                "spec": spec,
            }),
        );
        let client = start(&api);
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        let (stores, writers) = Stores::new();
        stores.set_percona_type(OptionalType::Served);
        let (leader, rx) = watch::channel(true);
        let ctx = Arc::new(Context::new(
            client,
            reporter,
            AllFound,
            rx,
            stores.clone(),
            ControllerMetrics::unregistered(),
            dittofs_operator::dittofs::Client::new(
                dittofs_operator::dittofs::Resolver::everything_to(
                    std::net::Ipv4Addr::LOCALHOST.into(),
                ),
            ),
            std::time::Duration::from_secs(60),
        ));
        Harness {
            api,
            dittofs,
            ctx,
            stores,
            writers: Mutex::new(writers),
            leader,
        }
    }

    /// Objects of the collection `path` as `K`.
    fn list<K: DeserializeOwned>(&self, path: &str) -> Vec<K> {
        self.api.list_as::<K>(path)
    }

    fn ours<K: DeserializeOwned + kube::Resource>(&self, path: &str) -> Vec<K> {
        self.list::<K>(path)
            .into_iter()
            .filter(|o| {
                o.meta()
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                    == Some(&"dittofs-operator".to_string())
            })
            .collect()
    }

    /// Bring every store up to date with the server (what a watch that kept up shows).
    fn sync(&self) {
        let mut w = self.writers.lock().unwrap();
        let servers: Vec<StoredServer> =
            self.list("/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/dittoservers");
        refill(&mut w.servers, servers.clone());
        for s in &servers {
            self.stores
                .on_server_event(&Event::Apply(s.clone()), &Default::default());
        }
        refill(
            &mut w.config_maps,
            self.ours::<PartialObjectMeta<ConfigMap>>(&format!("{NS}/configmaps")),
        );
        refill(
            &mut w.services,
            self.ours::<PartialObjectMeta<Service>>(&format!("{NS}/services")),
        );
        refill(
            &mut w.network_policies,
            self.ours::<PartialObjectMeta<NetworkPolicy>>(
                "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies",
            ),
        );
        refill(
            &mut w.secrets,
            self.list::<PartialObjectMeta<Secret>>(&format!("{NS}/secrets")),
        );
        refill(
            &mut w.stateful_sets,
            self.ours::<StatefulSet>("/apis/apps/v1/namespaces/ns/statefulsets"),
        );
        if self.api.serves("pgv2.percona.com", "perconapgclusters") {
            refill(
                &mut w.percona,
                self.ours::<DynamicObject>(
                    "/apis/pgv2.percona.com/v2/namespaces/ns/perconapgclusters",
                ),
            );
        }
        // What the ServiceMonitor watch would say of its type.
        if self.api.serves("monitoring.coreos.com", "servicemonitors") {
            self.stores.set_service_monitor_type(OptionalType::Served);
            refill(
                &mut w.service_monitors,
                self.ours::<DynamicObject>(
                    "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors",
                ),
            );
        } else {
            self.stores.set_service_monitor_type(OptionalType::Absent);
        }
    }

    /// A pass on up-to-date stores.
    async fn pass(&self) -> Result<(), String> {
        self.sync();
        self.stale_pass().await
    }

    /// A pass on the stores as they are (they may trail the server).
    async fn stale_pass(&self) -> Result<(), String> {
        let stored = self
            .stores
            .servers
            .get(&ObjectRef::new("d").within("ns"))
            .expect("the DittoServer is in the store");
        reconcile(stored, self.ctx.clone())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Passes until one writes nothing to Kubernetes (the first contact with the
    /// server keeps its refresh token, then reads the server once more); panics
    /// after five.
    async fn settle(&self) {
        for _ in 0..5 {
            self.api.clear_log();
            self.pass().await.expect("pass");
            let writes = self.api.writes();
            eprintln!("settling: {writes:?}");
            if writes.is_empty() {
                return;
            }
        }
        panic!("not settled after five passes: {:?}", self.api.writes());
    }

    fn edit_spec(&self, f: impl FnOnce(&mut Value)) {
        let mut ds = self.api.get(DS_PATH).unwrap();
        f(&mut ds["spec"]);
        let generation = ds["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        ds["metadata"]["generation"] = json!(generation);
        self.api.put(DS_PATH, ds);
    }

    /// Simulate the StatefulSet controller: one ready, up-to-date pod, whose DittoFS
    /// server started with the admin password of the generated Secret.
    fn pod_ready(&self) {
        let mut sts = self.api.get(STS_PATH).expect("StatefulSet exists");
        sts["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1, "currentRevision": "r1", "updateRevision": "r1"});
        self.api.put(STS_PATH, sts);
        if self.dittofs.server("d-api.ns.svc").is_none() {
            let secret = self
                .api
                .get(&format!("{NS}/secrets/d-admin-bootstrap-credentials"))
                .expect("the admin Secret exists");
            let password = secret["data"]["password"].as_str().expect("password");
            use base64::Engine;
            let password = base64::engine::general_purpose::STANDARD
                .decode(password)
                .expect("base64");
            self.dittofs
                .add_server("d-api.ns.svc", &String::from_utf8(password).expect("utf-8"));
        }
    }

    fn finalizers(&self) -> Vec<String> {
        self.api.ds().metadata.finalizers.unwrap_or_default()
    }

    /// The DittoServer is gone: its last finalizer was released.
    fn gone(&self) -> bool {
        self.api.get(DS_PATH).is_none()
    }

    fn gets(&self) -> Vec<String> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::GET)
            .map(|r| r.path)
            .collect()
    }

    fn count(&self, reason: &str) -> usize {
        self.api
            .event_reasons()
            .iter()
            .filter(|r| *r == reason)
            .count()
    }
}

fn refill<K>(writer: &mut Writer<K>, objects: Vec<K>)
where
    K: kube::runtime::reflector::Lookup + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
}

fn minimal() -> Value {
    json!({"storage": {"metadataSize": "1Gi"}})
}

/// A spec with a Percona database: the one cleanup that needs our finalizer.
fn percona() -> Value {
    json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}})
}

const NP_PATH: &str = "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/d-ingress";

/// The server pod's NetworkPolicy admits exactly what the Services target, follows
/// them when they change, and goes when it is turned off.
#[tokio::test]
async fn the_server_pod_gets_a_network_policy_that_follows_its_services() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "metrics": {"enabled": true}}));
    h.pass().await.unwrap();
    let ports = |h: &Harness| -> Vec<(String, Value)> {
        let policy = h.api.get(NP_PATH).expect("the NetworkPolicy");
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
            "d"
        );
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "server"
        );
        assert!(
            policy["spec"]["ingress"][0].get("from").is_none(),
            "from anywhere"
        );
        policy["spec"]["ingress"][0]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["protocol"].as_str().unwrap_or("").to_string(),
                    p["port"].clone(),
                )
            })
            .collect()
    };
    let mut expected = vec![
        ("TCP".to_string(), json!(10111)),
        ("TCP".to_string(), json!(12049)),
        ("TCP".to_string(), json!("api")),
        ("TCP".to_string(), json!("metrics")),
        ("UDP".to_string(), json!(10111)),
    ];
    let mut got = ports(&h);
    got.sort_by_key(|p| format!("{p:?}"));
    expected.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(got, expected);

    // SMB on, metrics off: the SMB adapter's port comes, the metrics port goes.
    h.edit_spec(|spec| {
        spec["smb"] = json!({"enabled": true});
        spec["metrics"] = json!({"enabled": false});
    });
    h.pass().await.unwrap();
    let got = ports(&h);
    assert!(got.contains(&("TCP".to_string(), json!(1445))), "{got:?}");
    assert!(
        !got.contains(&("TCP".to_string(), json!("metrics"))),
        "{got:?}"
    );

    h.edit_spec(|spec| spec["networkPolicy"] = json!({"enabled": false}));
    h.pass().await.unwrap();
    assert!(h.api.get(NP_PATH).is_none(), "removed when turned off");
}

const SM_PATH: &str = "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/d-metrics";

/// A ServiceMonitor asked for is made once its CRD is installed (nothing is tried
/// before), scrapes the metrics Service with the bearer token, and goes when it is
/// no longer asked for.
#[tokio::test]
async fn a_service_monitor_is_made_while_its_type_is_served() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "metrics": {
        "enabled": true, "path": "/m",
        "bearerTokenSecret": {"name": "scrape", "key": "token"},
        "serviceMonitor": {"enabled": true, "interval": "30s", "labels": {"release": "prometheus"}}}}));
    h.pass().await.unwrap();
    assert!(
        h.api
            .requests()
            .iter()
            .all(|r| !r.path.contains("servicemonitors")),
        "nothing is asked of a type that is not served"
    );

    h.api.install_service_monitor_crd();
    h.pass().await.unwrap();
    let monitor = h.api.get(SM_PATH).expect("the ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "dittofs-operator"
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "metrics"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["path"], "/m");
    assert_eq!(endpoint["interval"], "30s");
    assert_eq!(
        endpoint["bearerTokenSecret"],
        json!({"name": "scrape", "key": "token"})
    );
    // It selects the metrics Service the operator made.
    let service = h
        .api
        .get("/api/v1/namespaces/ns/services/d-metrics")
        .expect("metrics Service");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][k], v, "{k}");
    }

    h.edit_spec(|spec| spec["metrics"]["serviceMonitor"]["enabled"] = json!(false));
    h.pass().await.unwrap();
    assert!(
        h.api.get(SM_PATH).is_none(),
        "removed when no longer asked for"
    );
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
    // Nothing to clean up at deletion without Percona: no finalizer.
    assert!(!h.api.wrote(Method::PATCH, DS_PATH), "no finalizer");
    let cm = position(CM_PATH);
    let sts = position(STS_PATH);
    assert!(cm < sts, "ConfigMap applied before the StatefulSet");
    for path in [
        JWT_PATH,
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
    assert!(h.finalizers().is_empty());
    assert_eq!(
        h.api.condition("ConfigReady"),
        Some(("True".into(), "ConfigApplied".into()))
    );
    assert_eq!(h.api.condition("Ready").map(|c| c.0), Some("False".into()));
    assert_eq!(
        h.api.condition("ServerConfigured"),
        Some(("False".into(), "ServerNotReady".into()))
    );
    // A first creation is no event: the conditions say it.
    assert!(
        h.api.event_reasons().is_empty(),
        "{:?}",
        h.api.event_reasons()
    );
    assert_eq!(
        h.api.ds().status.and_then(|s| s.config_hash),
        h.api.sts_hash()
    );

    h.pod_ready();
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("ServerConfigured"),
        Some(("True".into(), "Configured".into()))
    );
    assert_eq!(
        h.api.condition("Ready"),
        Some(("True".into(), "AllConditionsMet".into()))
    );
}

#[tokio::test]
async fn the_finalizer_is_held_only_while_a_database_may_need_cleaning_up() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    assert!(h.finalizers().is_empty());
    h.edit_spec(|spec| spec["percona"] = json!({"enabled": true}));
    h.pass().await.unwrap();
    assert_eq!(h.finalizers(), ["dittofs.dittofs.com/finalizer"]);
    // Percona off: the cluster is released (kept, not ours), nothing to clean up.
    h.edit_spec(|spec| spec["percona"] = json!({"enabled": false}));
    h.pass().await.unwrap();
    h.pass().await.unwrap();
    assert!(h.finalizers().is_empty(), "{:?}", h.finalizers());
}

#[tokio::test]
async fn a_resync_with_nothing_changed_makes_no_request_at_all() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    h.pod_ready();
    h.settle().await;
    h.api.clear_log();
    h.pass().await.unwrap();
    let requests: Vec<_> = h
        .api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        requests,
        Vec::new(),
        "an idle resync is answered by the stores: no read, no write"
    );
}

#[tokio::test]
async fn a_store_that_lags_costs_no_error_and_no_duplicate_write() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    // The stores still show the world before the first pass: no finalizer, no
    // children, no status. The server has them all.
    {
        let mut w = h.writers.lock().unwrap();
        let before: StoredServer = serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid", "generation": 1, "resourceVersion": "1"},
            "spec": h.api.get(DS_PATH).expect("the DittoServer")["spec"],
        }))
        .unwrap();
        refill(&mut w.servers, vec![before]);
        refill(&mut w.config_maps, Vec::new());
        refill(&mut w.services, Vec::new());
        refill(&mut w.network_policies, Vec::new());
        refill(&mut w.stateful_sets, Vec::new());
    }
    h.api.clear_log();
    h.stale_pass().await.expect("a stale store is not an error");
    assert_eq!(
        h.api
            .writes()
            .iter()
            .filter(|(_, p)| !p.contains("/events"))
            .count(),
        0,
        "what this process wrote is remembered until the store shows it: {:?}",
        h.api.writes()
    );
    assert_eq!(h.count("ReconcileFailed"), 0);
    assert_eq!(
        h.gets(),
        vec![STS_PATH.to_string()],
        "only the StatefulSet (its status) is read; the rest is known from our own writes"
    );
}

#[tokio::test]
async fn a_finalizer_guard_that_fails_on_a_stale_object_is_retried_at_once() {
    let h = Harness::new(percona());
    // Someone else's finalizer arrived on the server; our store has not seen it.
    h.sync();
    let mut ds = h.api.get(DS_PATH).unwrap();
    ds["metadata"]["finalizers"] = json!(["example.com/other"]);
    h.api.put(DS_PATH, ds);
    h.stale_pass()
        .await
        .expect("the failed guard is re-read and retried in the same pass");
    assert_eq!(
        h.finalizers(),
        vec![
            "example.com/other".to_string(),
            "dittofs.dittofs.com/finalizer".to_string()
        ]
    );
    assert_eq!(h.count("ReconcileFailed"), 0);
}

#[tokio::test]
async fn deletion_on_a_stale_object_releases_the_finalizer_in_one_pass() {
    let h = Harness::new(percona());
    h.pass().await.unwrap();
    deleting(&h, 1);
    h.sync();
    // Another finalizer was added before ours after the store last looked: our
    // index in the list moved.
    let mut ds = h.api.get(DS_PATH).unwrap();
    ds["metadata"]["finalizers"] = json!(["example.com/first", "dittofs.dittofs.com/finalizer"]);
    h.api.put(DS_PATH, ds);
    h.stale_pass()
        .await
        .expect("released despite the stale index");
    assert_eq!(h.finalizers(), vec!["example.com/first".to_string()]);
}

#[tokio::test]
async fn a_rotated_secret_changes_the_hash_and_rolls_the_pod() {
    let h = Harness::new(postgres());
    postgres_secret(&h, "YQ==", "100");
    h.pass().await.unwrap();
    let before = h.api.sts_hash().expect("hash");

    // Same resourceVersion: the data is not read again.
    h.api.clear_log();
    h.pass().await.unwrap();
    let reads_pg = |h: &Harness| h.gets().iter().any(|p| p.ends_with("/secrets/pg"));
    assert!(!reads_pg(&h));

    postgres_secret(&h, "Yg==", "101");
    h.api.clear_log();
    h.pass().await.unwrap();
    assert!(reads_pg(&h), "a new resourceVersion is read once");
    let after = h.api.sts_hash().expect("hash");
    assert_ne!(before, after);
    assert!(h.api.wrote(Method::PATCH, STS_PATH));
    assert!(h.count("Updated") >= 1);
}

#[tokio::test]
async fn the_backup_credentials_check_is_answered_from_the_stores() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true,
        "backup": {"enabled": true, "credentialsSecretRef": {"name": "pgbackrest"}, "bucket": "b", "endpoint": "s3.example.com", "region": "r"}}}),
    );
    h.api.put(
        &format!("{NS}/secrets/pgbackrest"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "pgbackrest", "namespace": "ns", "uid": "bk", "resourceVersion": "7"},
               "data": {"s3.conf": "YQ=="}}),
    );
    h.pass().await.unwrap();
    our_cluster(&h, false);
    h.pass().await.unwrap();
    assert_eq!(h.count("ValidationFailed"), 0);
    // Watched and read like the pod's Secrets: a change triggers a pass, and the
    // check is answered from what the pass observed (in a cluster the fallback
    // lookup would GET it; this harness's fallback answers without a request, so
    // the index and the cached data are what show it).
    assert!(!h.stores.secret_index.readers("ns", "pgbackrest").is_empty());
    assert!(h.stores.secret_data.any("ns", "pgbackrest").is_some());
}

#[tokio::test]
async fn warnings_are_one_event_until_they_change() {
    // Valid, with a warning (a grace period the server may outlast).
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "terminationGracePeriodSeconds": 60}),
    );
    h.pass().await.unwrap();
    h.pass().await.unwrap();
    assert_eq!(h.count("ValidationWarning"), 1, "once, not every pass");
    assert!(h.api.get(STS_PATH).is_some(), "a warning stops nothing");
    h.edit_spec(|spec| spec["terminationGracePeriodSeconds"] = json!(120));
    h.pass().await.unwrap();
    assert_eq!(h.count("ValidationWarning"), 1, "no warnings, no event");
    h.edit_spec(|spec| spec["terminationGracePeriodSeconds"] = json!(60));
    h.pass().await.unwrap();
    assert_eq!(h.count("ValidationWarning"), 2, "back again: news again");
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
    assert_eq!(h.count("ValidationFailed"), 1);
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

fn postgres_secret(h: &Harness, host: &str, rv: &str) {
    h.api.put(
        &format!("{NS}/secrets/pg"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "pg", "namespace": "ns", "uid": "pg-secret", "resourceVersion": rv},
               "data": {"host": host, "port": "NTQzMg==", "database": "ZA==", "user": "dQ==", "password": "cA=="}}),
    );
}

fn postgres() -> Value {
    json!({"storage": {"metadataSize": "1Gi"}, "database": {"type": "postgres", "postgresSecretRef": {"name": "pg"}}})
}

#[tokio::test]
async fn a_repeated_failure_is_one_event_and_status_keeps_what_was_observed() {
    let h = Harness::new(postgres());
    postgres_secret(&h, "YQ==", "100");
    h.pass().await.unwrap();
    h.pod_ready();
    h.pass().await.unwrap();
    let phase = |h: &Harness| {
        h.api
            .ds()
            .status
            .and_then(|s| s.phase)
            .map(|p| format!("{p:?}"))
    };
    assert_eq!(phase(&h), Some("Running".into()));
    // The Secret is rotated, and cannot be read: three passes fail in a row.
    postgres_secret(&h, "Yg==", "101");
    h.api.fail_path(&format!("{NS}/secrets/pg"));
    for _ in 0..3 {
        assert!(h.pass().await.is_err());
    }
    assert_eq!(h.count("ReconcileFailed"), 1, "one event for one failure");
    let status = h.api.ds().status.expect("status");
    assert_eq!(
        status.ready_replicas,
        Some(1),
        "the running pod is still reported"
    );
    assert_eq!(
        h.api.condition("Degraded").map(|c| c.1),
        Some("ReconcileFailed".into())
    );
    h.api.heal_path(&format!("{NS}/secrets/pg"));
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("Degraded").map(|c| c.0),
        Some("False".into())
    );
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
    assert_eq!(h.count("PerconaNotReady"), 1);
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("DatabaseReady"),
        Some(("False".into(), "PerconaNotReady".into()))
    );
    assert_eq!(h.count("PerconaNotReady"), 1, "not repeated every pass");

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
        "metadata": {"name": "d-postgres", "namespace": "ns", "uid": "pg-uid", "resourceVersion": "50",
                     "labels": {"app.kubernetes.io/managed-by": "dittofs-operator", "app.kubernetes.io/instance": "d"}},
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
    assert!(h.gone(), "finalizer released, the object is gone");
    assert_eq!(h.count("Deleting"), 1);
    assert_eq!(h.count("PerconaDeleted"), 1);
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
    assert!(h.gone());
    assert_eq!(h.count("PerconaOrphaned"), 1);
}

#[tokio::test]
async fn a_percona_cluster_never_keeps_our_owner_reference_once_deletion_is_not_wanted() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    our_cluster(&h, true);
    // Percona turned off: the cluster stays, released at once (not at deletion).
    h.edit_spec(|spec| spec["percona"] = json!({"enabled": false}));
    h.pass().await.unwrap();
    let cluster = h.api.get(PG_PATH).expect("kept");
    assert_eq!(cluster["metadata"]["ownerReferences"], json!([]));
    assert!(!h.api.wrote(Method::DELETE, PG_PATH));
}

#[tokio::test]
async fn an_invalid_spec_still_releases_a_database_no_longer_deleted_with_the_server() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    our_cluster(&h, true);
    // The same edit turns deleteWithServer off and makes the spec invalid (replicas: 2
    // would be refused by the schema and the webhook; bypass both).
    h.edit_spec(|spec| {
        spec["percona"]["deleteWithServer"] = json!(false);
        spec["replicas"] = json!(2);
    });
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("ConfigReady"),
        Some(("False".into(), "InvalidSpec".into()))
    );
    let cluster = h.api.get(PG_PATH).expect("kept");
    assert_eq!(
        cluster["metadata"]["ownerReferences"],
        json!([]),
        "released although nothing else is applied"
    );
}

#[tokio::test]
async fn cleanup_is_bounded() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}));
    h.pass().await.unwrap();
    our_cluster(&h, false);
    h.pass().await.unwrap();
    // The cluster cannot be read or changed: cleanup fails until the bound.
    h.api.fail_path(PG_PATH);
    deleting(&h, 5);
    assert!(
        h.pass().await.is_err(),
        "cleanup failure is retried within the bound"
    );
    assert!(!h.finalizers().is_empty());
    deleting(&h, 120);
    h.pass().await.unwrap();
    assert!(h.gone(), "released after the timeout");
    assert_eq!(h.count("CleanupTimeout"), 1);
}

#[tokio::test]
async fn cleanup_never_times_out_into_garbage_collecting_a_kept_database() {
    // deleteWithServer was true (our owner reference is on the cluster), then false;
    // the release keeps failing past the bound: the finalizer must stay, or the
    // garbage collector would delete the database with the DittoServer.
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    our_cluster(&h, true);
    h.edit_spec(|spec| spec["percona"]["deleteWithServer"] = json!(false));
    h.api.fail_path(PG_PATH);
    deleting(&h, 120);
    assert!(h.pass().await.is_err(), "still retrying past the bound");
    assert!(h.pass().await.is_err());
    assert!(!h.finalizers().is_empty(), "the finalizer stays");
    assert!(!h.api.wrote(Method::DELETE, PG_PATH));
    assert_eq!(h.count("CleanupTimeout"), 1, "one event, not one per retry");
    // Once the release goes through, the deletion finishes.
    h.api.heal_path(PG_PATH);
    h.pass().await.unwrap();
    assert!(h.gone());
    assert_eq!(
        h.api.get(PG_PATH).expect("kept")["metadata"]["ownerReferences"],
        json!([])
    );
}

#[tokio::test]
async fn a_secret_the_spec_now_references_is_released_not_deleted() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    let generated = h.api.get(JWT_PATH).expect("generated");
    h.edit_spec(|spec| {
        spec["identity"] =
            json!({"jwt": {"secretRef": {"name": "d-jwt-secret", "key": "jwt-secret"}}})
    });
    h.pass().await.unwrap();
    let kept = h.api.get(JWT_PATH).expect("never deleted");
    assert_eq!(kept["data"], generated["data"], "the key is unchanged");
    assert!(
        kept["metadata"]["ownerReferences"].is_null(),
        "retained: never garbage-collected with us"
    );
    assert!(
        kept["metadata"]["labels"]
            .get("app.kubernetes.io/managed-by")
            .is_none()
    );
    assert!(!h.api.wrote(Method::DELETE, JWT_PATH));
    assert_eq!(h.count("Released"), 1);
    // Stable afterwards: nothing more to release.
    h.pass().await.unwrap();
    assert_eq!(h.count("Released"), 1);
}

#[tokio::test]
async fn an_object_with_a_child_name_that_is_not_ours_is_never_taken_over() {
    let h = Harness::new(minimal());
    let users = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "d-config", "namespace": "ns", "uid": "user-uid", "resourceVersion": "5"},
        "data": {"user-data": "precious"}});
    let users = h.api.put(CM_PATH, users);
    h.pass().await.unwrap();
    assert_eq!(h.api.get(CM_PATH), Some(users), "untouched");
    assert!(
        h.api.get(STS_PATH).is_none(),
        "no pod mounts someone else's config"
    );
    assert_eq!(
        h.api.condition("Degraded").map(|c| c.1),
        Some("NameConflict".into())
    );
    assert_eq!(h.count("NameConflict"), 1);
    h.pass().await.unwrap();
    assert_eq!(h.count("NameConflict"), 1, "one event while it lasts");

    // The user removes it: the pass proceeds.
    h.api.remove(CM_PATH);
    h.pass().await.unwrap();
    assert!(h.api.get(STS_PATH).is_some());
    assert_eq!(
        h.api.condition("Degraded").map(|c| c.0),
        Some("False".into())
    );
}

#[tokio::test]
async fn an_unreadable_spec_gets_a_condition_and_is_still_released_on_deletion() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    h.edit_spec(|spec| spec["smb"] = json!({"enabled": "maybe"}));
    h.pass().await.unwrap();
    assert_eq!(
        h.api.condition("ConfigReady").map(|c| c.1),
        Some("UnreadableSpec".into())
    );
    assert_eq!(h.count("UnreadableSpec"), 1);
    deleting(&h, 1);
    h.pass().await.unwrap();
    assert!(h.gone(), "the finalizer is released");
}

#[tokio::test]
async fn an_absent_percona_crd_is_an_answer_not_an_error() {
    let h = Harness::new(json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}));
    h.api.uninstall_percona_crd();
    // The Percona watch has not listed: the pass asks, and gets a plain-text 404.
    h.stores.set_percona_type(OptionalType::Unknown);
    h.pass().await.expect("no failure");
    let (status, reason) = h.api.condition("ConfigReady").expect("ConfigReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    let message = h
        .api
        .ds()
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "ConfigReady")
        .expect("ConfigReady")
        .message;
    assert!(
        message.contains("Percona PostgreSQL operator is not installed"),
        "{message}"
    );
    assert_eq!(h.count("ReconcileFailed"), 0);
    // Deletion is not held up by the missing type.
    deleting(&h, 1);
    h.pass().await.expect("released at once");
    assert!(h.gone());
}

#[tokio::test]
async fn switching_delete_with_server_off_removes_our_owner_reference_at_once() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    let owned = h.api.get(PG_PATH).expect("applied")["metadata"]["ownerReferences"].clone();
    assert_eq!(
        owned[0]["uid"], "ds-uid",
        "owned while deleteWithServer is true"
    );
    h.edit_spec(|spec| spec["percona"]["deleteWithServer"] = json!(false));
    h.pass().await.unwrap();
    let refs = h.api.get(PG_PATH).expect("kept")["metadata"]["ownerReferences"].clone();
    assert!(
        refs.as_array().is_none_or(Vec::is_empty),
        "no owner reference: {refs}"
    );
}

#[tokio::test]
async fn a_short_jwt_secret_is_reported_with_its_length_never_its_value() {
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "identity": {"jwt": {"secretRef": {"name": "jwt", "key": "k"}}}}),
    );
    h.api.put(
        &format!("{NS}/secrets/jwt"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jwt", "namespace": "ns"},
               "data": {"k": "c2hvcnQtc2VjcmV0"}}),
    );
    h.pass().await.unwrap();
    let message = h
        .api
        .ds()
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "ConfigReady")
        .expect("ConfigReady")
        .message;
    assert!(
        message.contains("12") && message.contains("32"),
        "{message}"
    );
    assert!(
        !message.contains("short-secret"),
        "never the value: {message}"
    );
    assert!(
        h.api.get(STS_PATH).is_none(),
        "a server that would not start is not deployed"
    );
}

#[tokio::test]
async fn a_replica_that_is_not_leader_does_nothing() {
    let h = Harness::new(minimal());
    h.leader.send_replace(false);
    h.pass().await.unwrap();
    assert!(h.api.requests().is_empty());
}

#[tokio::test]
async fn our_own_status_writes_do_not_trigger_a_pass_and_deleted_objects_are_forgotten() {
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    h.sync();
    let triggers = dittofs_operator::controller::Triggers::default();
    let mut requests = Box::pin(triggers.subscribe());
    let stored = |v: Value| serde_json::from_value::<StoredServer>(v).unwrap();
    let mut ds = h.api.get(DS_PATH).unwrap();
    // A status-only change (what our own status write looks like).
    ds["status"]["phase"] = json!("Running");
    h.stores
        .on_server_event(&Event::Apply(stored(ds.clone())), &triggers);
    // A spec change.
    ds["metadata"]["generation"] = json!(9);
    h.stores
        .on_server_event(&Event::Apply(stored(ds.clone())), &triggers);
    triggers.unsubscribe();
    use futures::StreamExt;
    let got: Vec<_> = requests.by_ref().collect().await;
    assert_eq!(got.len(), 1, "only the spec change triggers: {got:?}");

    assert!(h.stores.memory.servers_remembered() > 0);
    h.stores
        .on_server_event(&Event::Delete(stored(ds)), &triggers);
    assert_eq!(
        h.stores.memory.servers_remembered(),
        0,
        "forgotten once deleted"
    );
}

#[tokio::test]
async fn a_relist_forgets_the_deleted_and_triggers_the_changed_once_the_store_shows_them() {
    use futures::StreamExt;
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    h.sync();
    assert_eq!(h.stores.memory.servers_remembered(), 1);
    assert!(
        !h.stores
            .secret_index
            .readers("ns", "d-jwt-secret")
            .is_empty()
    );
    let stored = |v: Value| serde_json::from_value::<StoredServer>(v).unwrap();

    // The watch restarts and re-lists; the object's spec changed meanwhile. The pass
    // it is due must wait for the end of the list: until then the store shows the
    // old object.
    let triggers = dittofs_operator::controller::Triggers::default();
    let mut requests = Box::pin(triggers.subscribe());
    let mut changed = h.api.get(DS_PATH).unwrap();
    changed["metadata"]["generation"] = json!(5);
    let relist = |events: &[Event<StoredServer>]| {
        let mut w = h.writers.lock().unwrap();
        for e in events {
            w.servers.apply_watcher_event(e);
            h.stores.on_server_event(e, &triggers);
        }
    };
    relist(&[Event::Init, Event::InitApply(stored(changed.clone()))]);
    assert!(
        futures::FutureExt::now_or_never(requests.next()).is_none(),
        "no pass while the store still shows the old list"
    );
    relist(&[Event::InitDone]);
    triggers.unsubscribe();
    let got: Vec<_> = requests.by_ref().collect().await;
    assert_eq!(got.len(), 1, "one pass, at the end of the list: {got:?}");
    assert_eq!(h.stores.memory.servers_remembered(), 1, "still there");
    assert!(
        !h.stores
            .secret_index
            .readers("ns", "d-jwt-secret")
            .is_empty()
    );

    // Deleted while the watch was down: no delete event comes, only a re-list
    // without it.
    relist(&[Event::Init, Event::InitDone]);
    assert_eq!(h.stores.memory.servers_remembered(), 0);
    assert!(
        h.stores
            .secret_index
            .readers("ns", "d-jwt-secret")
            .is_empty()
    );
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
    // Exercise every path: create, Percona wait and ready, metrics and
    // NetworkPolicy pruning, release, deletion.
    let h = Harness::new(
        json!({"storage": {"metadataSize": "1Gi"}, "metrics": {"enabled": true}, "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    h.pass().await.unwrap();
    let mut cluster = h.api.get(PG_PATH).unwrap();
    cluster["status"] = json!({"state": "ready"});
    h.api.put(PG_PATH, cluster);
    h.pass().await.unwrap();
    h.edit_spec(|spec| {
        spec["metrics"] = json!({"enabled": false});
        spec["networkPolicy"] = json!({"enabled": false});
        spec["identity"] =
            json!({"jwt": {"secretRef": {"name": "d-jwt-secret", "key": "jwt-secret"}}});
    });
    h.pass().await.unwrap();
    deleting(&h, 1);
    h.pass().await.unwrap();

    let requests: Vec<_> = h
        .api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert!(requests.len() > 20);
    for (method, path) in requests {
        let (group, resource) = group_resource(&path);
        let verbs: &[&str] = match method {
            Method::GET => &["get"],
            Method::PATCH => &["patch"],
            Method::POST => &["create"],
            Method::DELETE => &["delete"],
            _ => &["update"],
        };
        for verb in verbs {
            let allowed = dittofs_operator::rbac::Install::plain()
                .grants()
                .iter()
                .map(|(r, _)| r)
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
    // Server-side apply creates what does not exist: `create` on every applied kind.
    for (group, resource) in [
        ("", "secrets"),
        ("", "configmaps"),
        ("", "services"),
        ("apps", "statefulsets"),
        ("pgv2.percona.com", "perconapgclusters"),
    ] {
        assert!(
            dittofs_operator::rbac::SERVED_NAMESPACE_RULES
                .iter()
                .any(|r| r.api_group == group
                    && r.resources.contains(&resource)
                    && r.verbs.contains(&"create")),
            "{resource}: server-side apply needs create"
        );
    }
}

#[tokio::test]
async fn a_deleting_object_is_retried_within_seconds_whatever_its_backoff() {
    use dittofs_operator::controller::error::ReconcileError;
    use dittofs_operator::controller::{DELETION_RETRY, PRECONDITION_RETRY, error_policy};
    use kube::runtime::controller::Action;
    use std::time::Duration;
    let h = Harness::new(minimal());
    h.pass().await.unwrap();
    let stored = |v: Value| Arc::new(serde_json::from_value::<StoredServer>(v).unwrap());
    let live = h.api.get(DS_PATH).unwrap();
    let failure = || ReconcileError::Timeout(Duration::from_secs(30));
    // Ten failures in a row: the backoff has reached its 5 min cap.
    let mut last = Action::await_change();
    for _ in 0..10 {
        last = error_policy(stored(live.clone()), &failure(), h.ctx.clone());
    }
    assert_eq!(last, Action::requeue(Duration::from_secs(300)));
    // Deletion starts: the next failure is retried within seconds.
    let mut deleting = live.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(
        error_policy(stored(deleting), &failure(), h.ctx.clone()),
        Action::requeue(DELETION_RETRY)
    );
    // A lost race is retried at once, never backed off.
    let conflict = ReconcileError::Status(kube::Error::Api(
        kube::core::Status::failure("conflict", "Conflict")
            .with_code(409)
            .boxed(),
    ));
    assert_eq!(
        error_policy(stored(live), &conflict, h.ctx.clone()),
        Action::requeue(PRECONDITION_RETRY)
    );
}
