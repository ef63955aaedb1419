//! The production [`ClusterLookup`]: answers in bounded time, never hangs an
//! admission request.
//!
//! - StorageClasses: a metadata-only reflector fed by a watch; no API call on the hot
//!   path ("unknown" until the first list completes).
//! - Secrets: a direct GET in the object's namespace, bounded by [`SECRET_TIMEOUT`]
//!   (Secrets are not cached: caching every Secret of the cluster costs memory and
//!   RBAC the webhook should not need).
//! - The Percona and ServiceMonitor CRDs: discovery of `pgv2.percona.com/v2`
//!   `PerconaPGCluster` and `monitoring.coreos.com/v1` `ServiceMonitor`, each cached;
//!   "present" is trusted for [`PERCONA_FOUND_TTL`], "absent or unknown" is re-asked
//!   at most every [`PERCONA_RETRY_INTERVAL`].
//!
//! "Does not exist" is classified by [`api_error::absent`], so the plain-text 404
//! a real API server gives for a group it does not serve is an answer (NotFound),
//! not a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, GroupVersionKind};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Error as KubeError};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::api_error;
use crate::probes::Readiness;
use crate::validation::{ClusterLookup, Lookup, SecretFacts};

/// Bound on a Secret GET.
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on a discovery request.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// A miss (absent or unknown) is re-checked at most this often: a CRD installed
/// after a rejection is seen by the next review a few seconds later, for at most
/// one discovery request per interval while reviews keep asking.
pub const PERCONA_RETRY_INTERVAL: Duration = Duration::from_secs(3);
/// A found CRD is re-checked after this long (it may have been uninstalled).
pub const PERCONA_FOUND_TTL: Duration = Duration::from_secs(600);

/// A kind whose CRD may not be installed: (group, version, kind).
type OptionalKind = (&'static str, &'static str, &'static str);
const PERCONA: OptionalKind = ("pgv2.percona.com", "v2", "PerconaPGCluster");
const SERVICE_MONITOR: OptionalKind = ("monitoring.coreos.com", "v1", "ServiceMonitor");

/// The last discovery answer and when it was obtained.
#[derive(Clone, Debug, Default)]
struct DiscoveryCache {
    last: Option<(Lookup<()>, Instant)>,
}

impl DiscoveryCache {
    /// The cached answer if still fresh at `now`: "found" for [`PERCONA_FOUND_TTL`],
    /// anything else for [`PERCONA_RETRY_INTERVAL`].
    fn fresh(&self, now: Instant) -> Option<Lookup<()>> {
        let (answer, at) = self.last.as_ref()?;
        let ttl = match answer {
            Lookup::Found(()) => PERCONA_FOUND_TTL,
            _ => PERCONA_RETRY_INTERVAL,
        };
        (now.saturating_duration_since(*at) < ttl).then(|| answer.clone())
    }

    fn store(&mut self, answer: Lookup<()>, at: Instant) {
        self.last = Some((answer, at));
    }
}

/// Cluster lookups backed by the API server.
#[derive(Clone)]
pub struct KubeLookup {
    client: Client,
    storage_classes: Store<PartialObjectMeta<StorageClass>>,
    /// Set once the first StorageClass list is in the store.
    storage_classes_synced: Arc<AtomicBool>,
    percona: Arc<Mutex<DiscoveryCache>>,
    service_monitor: Arc<Mutex<DiscoveryCache>>,
}

impl KubeLookup {
    /// Start the StorageClass watch (until `shutdown`) and return the lookup. The
    /// readiness gate `storageclass-cache` opens when the first list has completed.
    pub fn start(client: Client, readiness: &Readiness, shutdown: CancellationToken) -> Self {
        let gate = readiness.gate("storageclass-cache");
        let (store, writer) = reflector::store();
        // `Api<PartialObjectMeta<_>>` watches metadata only: names are all we need.
        let api: Api<PartialObjectMeta<StorageClass>> = Api::all(client.clone());
        let stream = reflector::reflector(
            writer,
            watcher::watcher(api, watcher::Config::default()).default_backoff(),
        )
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, "StorageClass watch error; retrying with backoff");
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                () = stream => {}
                () = shutdown.cancelled() => {}
            }
        });
        let ready_store = store.clone();
        let synced = Arc::new(AtomicBool::new(false));
        let synced_flag = synced.clone();
        tokio::spawn(async move {
            if ready_store.wait_until_ready().await.is_ok() {
                synced_flag.store(true, Ordering::Release);
                gate.set_ready(true);
                tracing::info!("StorageClass cache synced");
            }
        });
        Self {
            client,
            storage_classes: store,
            storage_classes_synced: synced,
            percona: Arc::new(Mutex::new(DiscoveryCache::default())),
            service_monitor: Arc::new(Mutex::new(DiscoveryCache::default())),
        }
    }

    async fn discover(&self, (group, version, kind): OptionalKind) -> Lookup<()> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let query = kube::discovery::oneshot::pinned_kind(&self.client, &gvk);
        match tokio::time::timeout(DISCOVERY_TIMEOUT, query).await {
            Ok(Ok(_)) => Lookup::Found(()),
            // A group the server does not serve is a plain-text 404, a served group
            // without the kind a discovery miss: either way the CRD is not installed.
            Ok(Err(e)) if api_error::is_absent(&e) => Lookup::NotFound,
            Ok(Err(e)) => {
                Lookup::Unknown(format!("API discovery of {group}/{version} failed: {e}"))
            }
            Err(_) => Lookup::Unknown(format!(
                "API discovery of {group}/{version} did not answer within {} s",
                DISCOVERY_TIMEOUT.as_secs()
            )),
        }
    }

    /// One discovery at a time per kind; callers that waited reuse its answer.
    async fn cached(&self, cache: &Mutex<DiscoveryCache>, kind: OptionalKind) -> Lookup<()> {
        let mut cache = cache.lock().await;
        if let Some(answer) = cache.fresh(Instant::now()) {
            return answer;
        }
        let answer = self.discover(kind).await;
        cache.store(answer.clone(), Instant::now());
        answer
    }
}

impl ClusterLookup for KubeLookup {
    async fn storage_class(&self, name: &str) -> Lookup<()> {
        if !self.storage_classes_synced.load(Ordering::Acquire) {
            return Lookup::Unknown("the StorageClass cache has not synced yet".to_string());
        }
        match self.storage_classes.get(&ObjectRef::new(name)) {
            Some(_) => Lookup::Found(()),
            None => Lookup::NotFound,
        }
    }

    async fn secret(&self, namespace: &str, name: &str) -> Lookup<SecretFacts> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        // `get`, not `get_opt`: `get_opt` knows only a 404 with a `Status` body.
        match tokio::time::timeout(SECRET_TIMEOUT, api.get(name)).await {
            Ok(Ok(secret)) => Lookup::Found(SecretFacts::of(&secret)),
            Ok(Err(e)) if api_error::is_absent(&e) => Lookup::NotFound,
            Ok(Err(KubeError::Api(status))) if status.is_forbidden() => Lookup::Unknown(format!(
                "the operator may not read Secrets in namespace {namespace} (forbidden)"
            )),
            Ok(Err(e)) => Lookup::Unknown(format!("reading Secret {namespace}/{name} failed: {e}")),
            Err(_) => Lookup::Unknown(format!(
                "reading Secret {namespace}/{name} did not answer within {} s",
                SECRET_TIMEOUT.as_secs()
            )),
        }
    }

    async fn percona_crd(&self) -> Lookup<()> {
        self.cached(&self.percona, PERCONA).await
    }

    async fn service_monitor_crd(&self) -> Lookup<()> {
        self.cached(&self.service_monitor, SERVICE_MONITOR).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use std::sync::atomic::AtomicUsize;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn json_response(status: u16, body: serde_json::Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    fn status(code: u16, reason: &str) -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": reason})
    }

    /// A fake API server: StorageClass `standard`; Secrets `s3` (keys accessKeyId,
    /// secretAccessKey), `locked` (403), `slow` (never answers); Percona discovery
    /// 404 until `percona_installed` is set. Counts discovery requests.
    fn fake_api(
        mut handle: Handle,
        discovery_calls: Arc<AtomicUsize>,
        percona_installed: Arc<AtomicBool>,
    ) {
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let response = match path.as_str() {
                    "/apis/storage.k8s.io/v1/storageclasses" if query.contains("watch=true") => {
                        held.push(send); // a watch that never sends an event
                        continue;
                    }
                    "/apis/storage.k8s.io/v1/storageclasses" => json_response(
                        200,
                        serde_json::json!({
                            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                            "metadata": {"resourceVersion": "10"},
                            "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                       "metadata": {"name": "standard", "resourceVersion": "9"}}]
                        }),
                    ),
                    "/api/v1/namespaces/team/secrets/s3" => json_response(
                        200,
                        serde_json::json!({
                            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": "team"},
                            "data": {"accessKeyId": "YQ==", "secretAccessKey": "Yg=="}
                        }),
                    ),
                    "/api/v1/namespaces/team/secrets/locked" => {
                        json_response(403, status(403, "Forbidden"))
                    }
                    "/api/v1/namespaces/team/secrets/slow" => {
                        held.push(send);
                        continue;
                    }
                    "/apis/pgv2.percona.com/v2" => {
                        discovery_calls.fetch_add(1, Ordering::SeqCst);
                        if percona_installed.load(Ordering::SeqCst) {
                            json_response(
                                200,
                                serde_json::json!({
                                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "pgv2.percona.com/v2",
                                    "resources": [{"name": "perconapgclusters", "singularName": "perconapgcluster",
                                                   "namespaced": true, "kind": "PerconaPGCluster",
                                                   "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]
                                }),
                            )
                        } else {
                            json_response(404, status(404, "NotFound"))
                        }
                    }
                    _ => json_response(404, status(404, "NotFound")),
                };
                send.send_response(response);
            }
        });
    }

    async fn lookup() -> (KubeLookup, Readiness, Arc<AtomicUsize>, Arc<AtomicBool>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let calls = Arc::new(AtomicUsize::new(0));
        let installed = Arc::new(AtomicBool::new(false));
        fake_api(handle, calls.clone(), installed.clone());
        let client = Client::new(service, "default");
        let readiness = Readiness::new();
        let lookup = KubeLookup::start(client, &readiness, CancellationToken::new());
        (lookup, readiness, calls, installed)
    }

    #[tokio::test]
    async fn storage_classes_come_from_the_synced_cache() {
        let (lookup, readiness, _, _) = lookup().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !readiness.is_ready() {
            assert!(Instant::now() < deadline, "cache never synced");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(lookup.storage_class("standard").await, Lookup::Found(()));
        assert_eq!(lookup.storage_class("fast").await, Lookup::NotFound);
    }

    #[tokio::test]
    async fn storage_classes_are_unknown_before_the_cache_syncs() {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        // The handle never answers: the first list never completes.
        let readiness = Readiness::new();
        let lookup = KubeLookup::start(
            Client::new(service, "default"),
            &readiness,
            CancellationToken::new(),
        );
        assert!(matches!(
            lookup.storage_class("standard").await,
            Lookup::Unknown(_)
        ));
        assert_eq!(readiness.pending(), vec!["storageclass-cache"]);
    }

    #[tokio::test]
    async fn secrets_are_read_in_the_namespace_with_a_bounded_wait() {
        let (lookup, _, _, _) = lookup().await;
        assert_eq!(
            lookup.secret("team", "s3").await,
            Lookup::Found(SecretFacts {
                value_lengths: [
                    ("accessKeyId".to_string(), 1),
                    ("secretAccessKey".to_string(), 1)
                ]
                .into(),
                secret_type: Some("Opaque".into()),
            })
        );
        assert_eq!(lookup.secret("team", "absent").await, Lookup::NotFound);
        let Lookup::Unknown(reason) = lookup.secret("team", "locked").await else {
            panic!("forbidden must be unknown");
        };
        assert!(reason.contains("forbidden"), "{reason}");
        let started = Instant::now();
        let Lookup::Unknown(reason) = lookup.secret("team", "slow").await else {
            panic!("a hanging GET must be unknown");
        };
        assert!(reason.contains("did not answer"), "{reason}");
        assert!(started.elapsed() < SECRET_TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn percona_discovery_is_cached() {
        let (lookup, _, calls, installed) = lookup().await;
        assert_eq!(lookup.percona_crd().await, Lookup::NotFound);
        installed.store(true, Ordering::SeqCst);
        // Within the retry interval the miss is answered from the cache.
        assert_eq!(lookup.percona_crd().await, Lookup::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Once the cached miss is stale, discovery runs again and finds the CRD.
        lookup
            .percona
            .lock()
            .await
            .store(Lookup::NotFound, Instant::now() - PERCONA_RETRY_INTERVAL);
        assert_eq!(lookup.percona_crd().await, Lookup::Found(()));
        assert_eq!(lookup.percona_crd().await, Lookup::Found(()));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// What a real API server answers for a path it does not serve (a CRD that is
    /// not installed): 404, `text/plain`, `404 page not found`.
    fn page_not_found() -> Response<Body> {
        Response::builder()
            .status(404)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(b"404 page not found\n".to_vec()))
            .unwrap()
    }

    /// A fake API server that knows no group `pgv2.percona.com` and no namespace
    /// `gone`, answering both as a real one does, and serves `pgv2.percona.com/v2`
    /// without the PerconaPGCluster kind when `group_without_kind` is set.
    fn absent_api(mut handle: Handle, group_without_kind: bool) {
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_string();
                let response = match path.as_str() {
                    "/apis/storage.k8s.io/v1/storageclasses" => {
                        held.push(send); // the StorageClass watch is not under test
                        continue;
                    }
                    "/apis/pgv2.percona.com/v2" if group_without_kind => json_response(
                        200,
                        serde_json::json!({
                            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "pgv2.percona.com/v2",
                            "resources": [{"name": "perconapgbackups", "singularName": "perconapgbackup",
                                           "namespaced": true, "kind": "PerconaPGBackup", "verbs": ["get"]}]
                        }),
                    ),
                    _ => page_not_found(),
                };
                send.send_response(response);
            }
        });
    }

    fn absent_lookup(group_without_kind: bool) -> KubeLookup {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        absent_api(handle, group_without_kind);
        KubeLookup::start(
            Client::new(service, "default"),
            &Readiness::new(),
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn an_absent_percona_crd_is_not_found() {
        // Plain-text 404 on discovery: the group is not served at all.
        assert_eq!(absent_lookup(false).percona_crd().await, Lookup::NotFound);
        // The group is served but has no PerconaPGCluster: a discovery miss.
        assert_eq!(absent_lookup(true).percona_crd().await, Lookup::NotFound);
        // The same discovery answers for the Prometheus Operator's ServiceMonitor.
        assert_eq!(
            absent_lookup(false).service_monitor_crd().await,
            Lookup::NotFound
        );
    }

    #[tokio::test]
    async fn a_plain_text_404_secret_is_not_found() {
        assert_eq!(
            absent_lookup(false).secret("gone", "s").await,
            Lookup::NotFound
        );
    }

    #[tokio::test]
    async fn absent_percona_crd_denies_percona_enabled_naming_the_operator() {
        let ds: crate::crd::DittoServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
            "metadata": {"name": "pg", "namespace": "team"},
            "spec": {"storage": {"metadataSize": "1Gi"}, "percona": {"enabled": true}}
        }))
        .unwrap();
        let report = crate::validation::validate(&ds, None, &absent_lookup(false)).await;
        let denial = report
            .errors
            .iter()
            .find(|f| f.field == "spec.percona.enabled")
            .unwrap_or_else(|| panic!("denied: {report:?}"));
        assert!(
            denial
                .message
                .contains("the Percona PostgreSQL operator is not installed"),
            "{denial}"
        );
    }

    #[test]
    fn cache_freshness_depends_on_the_answer() {
        let now = Instant::now();
        let mut cache = DiscoveryCache::default();
        assert_eq!(cache.fresh(now), None);
        cache.store(Lookup::NotFound, now);
        assert_eq!(
            cache.fresh(now + PERCONA_RETRY_INTERVAL - Duration::from_millis(1)),
            Some(Lookup::NotFound)
        );
        assert_eq!(cache.fresh(now + PERCONA_RETRY_INTERVAL), None);
        cache.store(Lookup::Found(()), now);
        assert_eq!(
            cache.fresh(now + Duration::from_secs(300)),
            Some(Lookup::Found(()))
        );
        assert_eq!(cache.fresh(now + PERCONA_FOUND_TTL), None);
    }
}
