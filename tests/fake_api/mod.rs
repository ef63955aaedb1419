//! An in-memory API server that behaves like kube-apiserver 1.36 for what the
//! operator does, used as a `kube::Client` by the reconcile tests and benchmark.
//!
//! `FakeApi` implements `tower::Service<http::Request<kube::client::Body>>`
//! directly: cloneable, every request answered on its own (a watch is a
//! streaming body fed by its own task), one store lock held only while a verb
//! runs. `FakeApi::client()` gives a `kube::Client`.
//!
//! # What is modelled, and which real-server behaviour each part stands for
//!
//! - **Routing and discovery** (`registry`): core (`/api/v1`) and group
//!   (`/apis/G/V`) paths, namespaced and cluster-scoped, collections, objects and
//!   `/status`. Built-in types plus custom types defined by stored
//!   CustomResourceDefinitions (created through the API or [`FakeApi::install_crd`]).
//!   A path under a group, version, resource or subresource that is not served
//!   answers `404` with `text/plain; charset=utf-8` body `404 page not found`, as
//!   the real server's final not-found handler; a missing object of a served type
//!   answers a `NotFound` Status with `details.name`/`kind`. `/api`, `/api/v1`,
//!   `/apis`, `/apis/G`, `/apis/G/V` and `/version` reflect what is installed
//!   (what `kube::discovery::oneshot::pinned_kind` reads).
//! - **Metadata** (`objects`, `store`): `uid` and `creationTimestamp` on create,
//!   one cluster-wide `resourceVersion` bumped by every write (a write that
//!   changes nothing is not stored and bumps nothing), `generateName`,
//!   `generation` = 1 on create and +1 when anything outside `metadata` (and
//!   `status`, for types with the subresource) changes, and when deletion starts.
//!   Finalizers: DELETE of an object with finalizers sets `deletionTimestamp`;
//!   removing the last finalizer removes the object; adding a finalizer to an
//!   object being deleted is refused (422). `propagationPolicy` Orphan and
//!   Foreground add the `orphan` / `foregroundDeletion` finalizers the garbage
//!   collector acts on. Namespaces: creating in a missing namespace is a 404,
//!   in a terminating one a 403 (NamespaceLifecycle).
//! - **Verbs** (`handlers`): GET; LIST with label selectors (`k=v`, `k==v`,
//!   `k!=v`, `k`, `!k`, `k in (..)`, `k notin (..)`), field selectors on
//!   `metadata.name`/`metadata.namespace` (others: 400), `limit`/`continue`;
//!   WATCH (see `watch`); POST (409 AlreadyExists, 422 without a name); PUT (409
//!   on a stale resourceVersion, 404 when absent, 422 without a resourceVersion
//!   for custom resources); DELETE with `uid`/`resourceVersion` preconditions and
//!   DELETE of a collection; PATCH as JSON patch (evanphx semantics: a `test`
//!   for `null` passes on a missing path; any failed operation is the 422
//!   `Invalid` "the server rejected our request due to an error in our request"
//!   the real patch handler answers), merge patch, and server-side apply (`ssa`).
//!   A resourceVersion left in a patched or applied object is a precondition.
//!   `dryRun=All` stores nothing. The `Accept` headers of `PartialObjectMetadata`
//!   and `PartialObjectMetadataList` answer metadata only (what
//!   `metadata_watcher` and `Api<PartialObjectMeta<K>>` send).
//! - **Status subresource**: writes to `/status` change only `status`; writes to
//!   the main resource keep the stored `status`; create drops `status`.
//! - **Secrets**: `stringData` is moved into `data` (base64) on every write.
//! - **Custom resources** (`schema`): unknown fields are pruned and schema
//!   defaults applied on every write, from the CRD's `openAPIV3Schema`; a value of
//!   the wrong `type` is refused (422 `Invalid`, the real field error), except, on
//!   an update, where it equals the stored value (validation ratcheting), so an
//!   object stored under a looser schema stays writable.
//! - **Server-side apply** (`ssa`): `managedFields` per manager, merge, removal of
//!   fields no longer applied, 409 conflicts with `FieldManagerConflict` causes,
//!   `force=true` transfers ownership, apply creates. Updates take ownership of
//!   what they change.
//! - **Lagging watches** (`watch`): events delivered a configurable lag (plus
//!   seeded jitter) after their write, in order; GET and LIST always answer the
//!   current state. 410 `Expired` for a resourceVersion older than the kept
//!   history; bookmarks; `sendInitialEvents`.
//! - **Controllers of a real cluster, opt-in** (`controllers`): garbage collector
//!   (absent owners, Foreground, Orphan), namespace controller, and a StatefulSet
//!   controller + kubelet stand-in that makes a StatefulSet's pods and reports it
//!   ready.
//! - **Observation and faults**: a request log, counts, injected 500s, 409s and
//!   delays; direct state access by path.
//!
//! # Deliberately not modelled
//!
//! Authentication, RBAC, admission webhooks and ValidatingAdmissionPolicies (and so not
//! the moment a real server takes before it enforces a new policy); schema validation
//! beyond names and custom resources' `type`, and defaulting of built-in types (a
//! Service gets no clusterIP, a StatefulSet no defaulted fields); strategic merge patch
//! strategies (a strategic merge patch is applied as a merge patch); list-type and
//! map-key schema information in server-side apply beyond `metadata.finalizers` (set)
//! and `metadata.ownerReferences` (keyed by uid) — other lists are atomic; version
//! conversion of custom resources (versions share one schema); the moment a real server
//! takes before it serves a changed CRD schema (here it applies at once); graceful
//! deletion (pods go at once, as unscheduled pods do); the shared storage of core and
//! `events.k8s.io` Events (two separate types here); `resourceVersionMatch=Exact` and
//! consistent snapshots across list pages (later pages see current objects); aggregated
//! discovery (406); protobuf; a CRD's cleanup honouring its custom resources'
//! finalizers (they are removed with the CRD).

#![allow(dead_code)]

mod controllers;
mod errors;
mod handlers;
mod objects;
pub mod over_http;
mod patch;
mod registry;
mod render;
mod schema;
mod selector;
mod ssa;
mod store;
mod watch;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dittofs_operator::crd::DittoServer;
use dittofs_operator::validation::{ClusterLookup, Lookup, SecretFacts};
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use errors::ApiError;
use handlers::{Answer, View};
use objects::Ownership;
use registry::{Route, TypeLookup};
use store::{Addr, State, StoreConfig, now_rfc3339};

pub use objects::Propagation;
pub use watch::LagConfig;

/// A cluster where every looked-up fact exists.
pub struct AllFound;

impl ClusterLookup for AllFound {
    async fn storage_class(&self, _: &str) -> Lookup<()> {
        Lookup::Found(())
    }
    async fn secret(&self, _: &str, _: &str) -> Lookup<SecretFacts> {
        Lookup::Found(SecretFacts::default())
    }
    async fn percona_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
    async fn service_monitor_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
}

pub const DS_PATH: &str = "/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/dittoservers/d";
pub const STS_PATH: &str = "/apis/apps/v1/namespaces/ns/statefulsets/d";
pub const PG_PATH: &str = "/apis/pgv2.percona.com/v2/namespaces/ns/perconapgclusters/d-postgres";

/// Name of the Percona CRD [`FakeApi::install_percona_crd`] installs.
pub const PERCONA_CRD: &str = "perconapgclusters.pgv2.percona.com";
/// Name of the DittoServer CRD.
pub const DITTOSERVER_CRD: &str = "dittoservers.dittofs.dittofs.com";

/// One request, as the fake saw and answered it.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// The raw query string (percent-encoded), empty when none.
    pub query: String,
    pub content_type: String,
    pub accept: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or `discovery` for discovery paths, `unknown` otherwise.
    pub verb: &'static str,
    /// HTTP status of the answer (200 for a watch that started).
    pub status: u16,
    /// The request body (shared, not copied).
    pub body: Bytes,
}

impl RequestRecord {
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

#[derive(Default)]
struct Faults {
    /// Paths answering 500 to every request.
    failing: BTreeSet<String>,
    /// Paths whose next writes answer 409 Conflict, with how many are left.
    conflicts: HashMap<String, u32>,
    /// Paths whose next requests answer this code, with how many are left.
    statuses: HashMap<String, (u16, u32)>,
    /// Added before every request is handled.
    delay: Duration,
}

/// State shared by every clone of a [`FakeApi`] and by its watch and controller tasks.
pub(crate) struct Shared {
    state: Mutex<State>,
    lag: tokio::sync::watch::Sender<LagConfig>,
    bookmark_interval: Mutex<Duration>,
    log: Mutex<Vec<RequestRecord>>,
    /// Write requests ever answered (not reset by `clear_log`).
    write_count: std::sync::atomic::AtomicUsize,
    /// Watch streams currently open.
    open_watches: std::sync::atomic::AtomicUsize,
    /// Requests received and not answered yet (or abandoned by the client).
    in_flight: std::sync::atomic::AtomicUsize,
    faults: Mutex<Faults>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn bookmark_interval(&self) -> Duration {
        *lock(&self.bookmark_interval)
    }
}

/// The in-memory API server. Clones share one cluster.
#[derive(Clone)]
pub struct FakeApi {
    shared: Arc<Shared>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

/// The PerconaPGCluster CRD, reduced to what the fake needs: names, scope, a
/// served storage version with a status subresource, no pruning.
pub fn percona_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": PERCONA_CRD},
        "spec": {
            "group": "pgv2.percona.com",
            "names": {"plural": "perconapgclusters", "singular": "perconapgcluster",
                      "kind": "PerconaPGCluster", "listKind": "PerconaPGClusterList",
                      "shortNames": ["pg"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v2", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    })
}

/// Name of the Prometheus Operator's ServiceMonitor CRD.
pub const SERVICE_MONITOR_CRD: &str = "servicemonitors.monitoring.coreos.com";

/// The Prometheus Operator's ServiceMonitor CRD (not installed by default).
pub fn service_monitor_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": SERVICE_MONITOR_CRD},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"plural": "servicemonitors", "singular": "servicemonitor",
                      "kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                      "categories": ["prometheus-operator"], "shortNames": ["smon"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

/// The DittoServer CRD, as the operator generates it.
pub fn dittoserver_crd() -> Value {
    serde_json::to_value(dittofs_operator::schema::crd()).unwrap_or_default()
}

/// Split a query string into decoded pairs (`+` is a space, `%XX` a byte).
fn parse_query(query: &str) -> HashMap<String, String> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
                (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)),
                _ => None,
            };
            match (bytes[i], escaped) {
                (_, Some((h, l))) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                (b'+', None) => out.push(b' '),
                (b, None) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: u16, content_type: &str, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    match error {
        ApiError::Status(code, body) => {
            full(*code, "application/json", body.to_string().into_bytes())
        }
        ApiError::PlainNotFound => {
            let mut r = full(
                404,
                "text/plain; charset=utf-8",
                b"404 page not found\n".to_vec(),
            );
            r.headers_mut().insert(
                "x-content-type-options",
                http::HeaderValue::from_static("nosniff"),
            );
            r
        }
    }
}

impl FakeApi {
    /// A cluster with the built-in types, the namespaces every cluster has
    /// (`default`, `kube-system`, `kube-public`, `kube-node-lease`), and the
    /// DittoServer and Percona CRDs installed.
    pub fn new() -> Self {
        let api = Self::bare();
        api.install_crd(dittoserver_crd());
        api.install_percona_crd();
        api
    }

    /// Like [`FakeApi::new`] but with no CRD installed.
    pub fn bare() -> Self {
        let api = FakeApi {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(StoreConfig::default(), 0x5eed)),
                lag: tokio::sync::watch::channel(LagConfig::default()).0,
                bookmark_interval: Mutex::new(Duration::from_secs(60)),
                log: Mutex::new(Vec::new()),
                write_count: std::sync::atomic::AtomicUsize::new(0),
                open_watches: std::sync::atomic::AtomicUsize::new(0),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                faults: Mutex::new(Faults::default()),
            }),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            api.create_namespace(ns);
        }
        api
    }

    /// A `kube::Client` talking to this server, default namespace `default`.
    pub fn client(&self) -> Client {
        self.client_in("default")
    }

    /// A `kube::Client` whose default namespace is `namespace`.
    pub fn client_in(&self, namespace: &str) -> Client {
        Client::new(self.clone(), namespace)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    // ----- direct state access -------------------------------------------------

    /// The object at `path` (an object path such as [`DS_PATH`]).
    fn addr(state: &State, path: &str) -> Addr {
        match registry::route(path, state) {
            Some(Route::Resource(r)) if r.name.is_some() => Addr {
                ty: r.ty,
                namespace: r.namespace.unwrap_or_default(),
                name: r.name.unwrap_or_default(),
            },
            _ => panic!("{path} is not an object path of a served type"),
        }
    }

    /// Store `obj` at `path` as a privileged write: no admission, no ownership
    /// tracking; `name`, `namespace`, `apiVersion` and `kind` come from the path
    /// when missing; `uid` and `creationTimestamp` are kept from the stored object
    /// or made up; `generation` is computed when missing. Bumps the
    /// resourceVersion and notifies watches. Returns what was stored.
    pub fn put(&self, path: &str, obj: Value) -> Value {
        let mut state = self.state();
        let addr = Self::addr(&state, path);
        let info = state.info(addr.ty).expect("served type");
        let mut obj = obj;
        if obj["apiVersion"].is_null() {
            obj["apiVersion"] = json!(info.storage_api_version());
        }
        if obj["kind"].is_null() {
            obj["kind"] = json!(info.kind);
        }
        obj["metadata"]["name"] = json!(addr.name);
        if info.namespaced {
            obj["metadata"]["namespace"] = json!(addr.namespace);
        }
        let previous = state.get(&addr).cloned();
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = match previous.as_ref().and_then(|p| store::uid_of(p)) {
                Some(uid) => json!(uid),
                None => json!(state.new_uid()),
            };
        }
        if obj["metadata"]["creationTimestamp"].is_null() {
            obj["metadata"]["creationTimestamp"] = previous
                .as_ref()
                .map(|p| p["metadata"]["creationTimestamp"].clone())
                .filter(|t| !t.is_null())
                .unwrap_or_else(|| json!(now_rfc3339()));
        }
        if info.generation && obj["metadata"]["generation"].is_null() {
            let generation = match &previous {
                None => 1,
                Some(p) => {
                    let old = p["metadata"]["generation"].as_i64().unwrap_or(1);
                    let strip = |v: &Value| {
                        let mut v = v.clone();
                        if let Some(m) = v.as_object_mut() {
                            m.remove("metadata");
                            if info.status_subresource {
                                m.remove("status");
                            }
                        }
                        v
                    };
                    if strip(p) == strip(&obj) {
                        old
                    } else {
                        old + 1
                    }
                }
            };
            obj["metadata"]["generation"] = json!(generation);
        }
        let stored = state.commit(&addr, Some(obj)).expect("served type");
        state.after_write(&addr);
        (*stored).clone()
    }

    /// The object at `path`, if it exists.
    pub fn get(&self, path: &str) -> Option<Value> {
        let state = self.state();
        let addr = Self::addr(&state, path);
        state.get(&addr).map(|o| (**o).clone())
    }

    /// The object at `path`, decoded.
    pub fn get_as<K: DeserializeOwned>(&self, path: &str) -> Option<K> {
        self.get(path)
            .map(|v| serde_json::from_value(v).expect("stored object decodes"))
    }

    /// Remove the object at `path` at once (no finalizers, no garbage collection
    /// decision; watches see DELETED). Returns whether it existed.
    pub fn remove(&self, path: &str) -> bool {
        let mut state = self.state();
        let addr = Self::addr(&state, path);
        let existed = state.commit(&addr, None).is_some();
        state.after_write(&addr);
        existed
    }

    /// Delete the object at `path` as a DELETE request would (finalizers hold it,
    /// `propagation` as given). Returns whether it is gone now.
    pub fn delete(&self, path: &str, propagation: Option<Propagation>) -> bool {
        let mut state = self.state();
        let addr = Self::addr(&state, path);
        let options = objects::DeleteOptions {
            propagation,
            ..Default::default()
        };
        let gone = matches!(state.delete(&addr, &options), Ok(objects::Deleted::Gone(_)));
        state.after_write(&addr);
        gone
    }

    /// Objects in a collection (`/api/v1/namespaces/ns/pods`, `/api/v1/pods` for all
    /// namespaces), in key order.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let state = self.state();
        match registry::route(collection, &*state) {
            Some(Route::Resource(r)) if r.name.is_none() => state
                .type_state(r.ty)
                .map(|t| {
                    t.range(r.namespace.as_deref(), None)
                        .map(|(_, o)| (**o).clone())
                        .collect()
                })
                .unwrap_or_default(),
            _ => panic!("{collection} is not a collection path of a served type"),
        }
    }

    /// Objects in a collection, decoded.
    pub fn list_as<K: DeserializeOwned>(&self, collection: &str) -> Vec<K> {
        self.list(collection)
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("stored object decodes"))
            .collect()
    }

    /// The cluster's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state().rv
    }

    /// Create namespace `name` (no-op when it exists).
    pub fn create_namespace(&self, name: &str) {
        let mut state = self.state();
        let Some(ty) = state.namespace_type() else {
            return;
        };
        let _ = state.create(
            ty,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            Ownership::Untracked,
            false,
        );
    }

    /// Whether creating objects needs an existing namespace (default: true).
    pub fn set_require_namespaces(&self, require: bool) {
        self.state().config.require_namespaces = require;
    }

    // ----- CRDs ---------------------------------------------------------------

    /// Create (or replace the spec of) a CustomResourceDefinition, as `kubectl
    /// apply` of it would; the type is served and the CRD Established at once.
    pub fn install_crd(&self, crd: Value) {
        let name = crd["metadata"]["name"]
            .as_str()
            .expect("CRD has a name")
            .to_string();
        let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
        let mut state = self.state();
        let addr = Self::addr(&state, &path);
        match state.get(&addr).cloned() {
            Some(live) => {
                let mut next = (*live).clone();
                next["spec"] = crd["spec"].clone();
                let scope = ssa::Scope::Main {
                    status_separate: true,
                };
                let _ = state.update(&addr, next, scope, Ownership::Untracked, false);
            }
            None => {
                state
                    .create(addr.ty, None, crd, Ownership::Untracked, false)
                    .expect("CRD is valid");
            }
        }
        state.after_write(&addr);
    }

    /// Delete a CustomResourceDefinition: the type stops being served at once, its
    /// objects are gone, its watches end.
    pub fn uninstall_crd(&self, name: &str) {
        let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
        let mut state = self.state();
        let addr = Self::addr(&state, &path);
        let _ = state.delete(&addr, &objects::DeleteOptions::default());
        state.after_write(&addr);
    }

    pub fn install_percona_crd(&self) {
        self.install_crd(percona_crd());
    }

    pub fn uninstall_percona_crd(&self) {
        self.uninstall_crd(PERCONA_CRD);
    }

    pub fn install_service_monitor_crd(&self) {
        self.install_crd(service_monitor_crd());
    }

    /// Is `resource` of `group` served?
    pub fn serves(&self, group: &str, resource: &str) -> bool {
        self.state().lookup(group, resource).is_some()
    }

    // ----- watches ------------------------------------------------------------

    /// Deliver every watch event `lag` after its write (keeps jitter and
    /// per-resource lags). Takes effect at once, also for events already written.
    pub fn set_watch_lag(&self, lag: Duration) {
        self.shared.lag.send_modify(|c| c.base = lag);
    }

    /// Add up to `max` of pseudo-random lag per event, from `seed`.
    pub fn set_watch_jitter(&self, max: Duration, seed: u64) {
        self.shared.lag.send_modify(|c| {
            c.jitter = max;
            c.seed = seed;
        });
    }

    /// Lag of one resource's events (plural, e.g. `dittoservers`), instead of the
    /// global one.
    pub fn set_watch_lag_for(&self, resource: &str, lag: Duration) {
        self.shared.lag.send_modify(|c| {
            c.per_resource.insert(resource.to_string(), lag);
        });
    }

    pub fn lag_config(&self) -> LagConfig {
        self.shared.lag.borrow().clone()
    }

    /// How often watches that allow bookmarks get one (default 60 s).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.shared.bookmark_interval) = interval;
    }

    /// Events kept per type for watches to resume from (default 10,000).
    pub fn set_watch_history_limit(&self, limit: usize) {
        self.state().config.history_limit = limit.max(1);
    }

    /// Forget all watch history: any watch resuming from a resourceVersion before
    /// now gets 410 Expired (what a compaction or an API server restart does).
    pub fn compact_watch_history(&self) {
        let mut state = self.state();
        let rv = state.rv;
        let types: Vec<usize> = state.served_types().map(|(i, _)| i).collect();
        for ty in types {
            if let Some(t) = state.type_state_mut(ty) {
                t.history.clear();
                t.compacted = rv;
                // Wake open watches so they notice.
                t.latest.send_replace(rv);
            }
        }
    }

    // ----- controllers --------------------------------------------------------

    /// Run the garbage collector and namespace controller in the background,
    /// reacting to every write (like kube-controller-manager).
    pub fn enable_garbage_collector(&self) {
        let shared = self.shared.clone();
        let mut changes = self.state().changes.subscribe();
        tokio::spawn(async move {
            loop {
                shared.state().collect_garbage();
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Run the garbage collector and namespace controller once, until they have
    /// nothing left to do. Returns how many objects they looked at.
    pub fn collect_garbage(&self) -> usize {
        self.state().collect_garbage()
    }

    /// Run a StatefulSet controller + kubelet in the background: `ready_after`
    /// after a StatefulSet is written, its pods exist and it reports every replica
    /// ready (see [`FakeApi::make_statefulset_ready`]).
    pub fn enable_statefulset_controller(&self, ready_after: Duration) {
        let shared = self.shared.clone();
        let mut changes = {
            let mut state = self.state();
            state.queues.sts_enabled = true;
            let all: Vec<Addr> = state
                .routes
                .get(&("apps".to_string(), "statefulsets".to_string()))
                .and_then(|ty| state.type_state(*ty).map(|t| (*ty, t)))
                .map(|(ty, t)| {
                    t.objects
                        .keys()
                        .map(|(ns, name)| Addr {
                            ty,
                            namespace: ns.clone(),
                            name: name.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            state.queues.statefulsets.extend(all);
            state.changes.subscribe()
        };
        tokio::spawn(async move {
            loop {
                let pending = !shared.state().queues.statefulsets.is_empty();
                if pending {
                    tokio::time::sleep(ready_after).await;
                    shared.state().run_statefulset_controller();
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Play the StatefulSet controller and kubelet once for the StatefulSet at
    /// `path`: pods `<name>-0…` (owned by it, labelled with the revision),
    /// claims for its volume claim templates, and a status with replicas,
    /// readyReplicas, availableReplicas, currentReplicas and updatedReplicas at
    /// `spec.replicas`, currentRevision = updateRevision, observedGeneration =
    /// generation. Returns false when it does not exist or is being deleted.
    pub fn make_statefulset_ready(&self, path: &str) -> bool {
        let mut state = self.state();
        let addr = Self::addr(&state, path);
        state.make_statefulset_ready(&addr)
    }

    // ----- observation --------------------------------------------------------

    /// Every request since the last [`FakeApi::clear_log`], in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// How many requests were logged (cheaper than `requests().len()`).
    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Wait until no write request has arrived for `quiet`, at most `within`.
    /// Returns whether it got quiet (a controller under test settled).
    pub async fn settle(&self, quiet: Duration, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let writes = || {
            self.shared
                .write_count
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut seen = writes();
        let mut since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(10).min(quiet)).await;
            let now = tokio::time::Instant::now();
            let current = writes();
            if current != seen {
                seen = current;
                since = now;
            } else if now - since >= quiet {
                return true;
            }
            if now >= deadline {
                return false;
            }
        }
    }

    /// Watch streams open right now (a client that leaks watches shows here).
    /// Requests received whose answer is still being prepared (a client that
    /// drops its request — a cancelled pass — ends it too, unanswered).
    pub fn in_flight(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn open_watches(&self) -> usize {
        self.shared
            .open_watches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests per verb.
    pub fn counts_by_verb(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for r in lock(&self.shared.log).iter() {
            *counts.entry(r.verb).or_insert(0) += 1;
        }
        counts
    }

    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Non-GET requests: (method, path).
    pub fn writes(&self) -> Vec<(Method, String)> {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.is_write())
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    }

    pub fn wrote(&self, method: Method, path: &str) -> bool {
        lock(&self.shared.log)
            .iter()
            .any(|r| r.method == method && r.path == path)
    }

    /// Requests with this verb (`get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`, `deletecollection`, `discovery`).
    pub fn count(&self, verb: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.verb == verb)
            .count()
    }

    /// Requests to exactly this path (an object's `/status` is another path).
    pub fn count_for(&self, path: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Writes to exactly this path.
    pub fn writes_to(&self, path: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.is_write() && r.path == path)
            .count()
    }

    /// `reason` of every stored Event (core and events.k8s.io), in key order.
    pub fn event_reasons(&self) -> Vec<String> {
        let state = self.state();
        let mut reasons = Vec::new();
        for group in ["", "events.k8s.io"] {
            if let Some((ty, _)) = state.lookup(group, "events")
                && let Some(t) = state.type_state(ty)
            {
                reasons.extend(
                    t.objects
                        .values()
                        .map(|e| e["reason"].as_str().unwrap_or_default().to_string()),
                );
            }
        }
        reasons
    }

    // ----- faults -------------------------------------------------------------

    /// Every request to `path` answers 500 until [`FakeApi::heal_path`].
    pub fn fail_path(&self, path: &str) {
        lock(&self.shared.faults).failing.insert(path.to_string());
    }

    pub fn heal_path(&self, path: &str) {
        lock(&self.shared.faults).failing.remove(path);
    }

    /// The next `n` writes to `path` answer 409 Conflict (as if another client
    /// wrote first).
    pub fn inject_conflicts(&self, path: &str, n: u32) {
        lock(&self.shared.faults)
            .conflicts
            .insert(path.to_string(), n);
    }

    /// The next `n` requests to `path` answer `code` with a Status.
    pub fn inject_status(&self, path: &str, code: u16, n: u32) {
        lock(&self.shared.faults)
            .statuses
            .insert(path.to_string(), (code, n));
    }

    /// Every request waits `delay` before it is handled.
    pub fn set_request_delay(&self, delay: Duration) {
        lock(&self.shared.faults).delay = delay;
    }

    // ----- helpers of the reconcile tests ---------------------------------------

    pub fn ds(&self) -> DittoServer {
        self.get_as(DS_PATH).expect("DittoServer stored")
    }

    pub fn condition(&self, type_: &str) -> Option<(String, String)> {
        self.condition_at(DS_PATH, type_)
    }

    /// (status, reason) of condition `type_` of the DittoServer at `path`.
    pub fn condition_at(&self, path: &str, type_: &str) -> Option<(String, String)> {
        let ds = self.get(path)?;
        let c = ds["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)?
            .clone();
        Some((
            c["status"].as_str()?.to_string(),
            c["reason"].as_str()?.to_string(),
        ))
    }

    pub fn sts_hash(&self) -> Option<String> {
        self.get(STS_PATH)?["spec"]["template"]["metadata"]["annotations"]["dittofs.io/config-hash"]
            .as_str()
            .map(str::to_string)
    }

    // ----- serving --------------------------------------------------------------

    /// An injected fault for this request, if any.
    fn fault(&self, method: &Method, path: &str) -> Option<ApiError> {
        let mut faults = lock(&self.shared.faults);
        if faults.failing.contains(path) {
            return Some(errors::internal("injected failure"));
        }
        if let Some((code, left)) = faults.statuses.get_mut(path)
            && *left > 0
        {
            *left -= 1;
            let code = *code;
            return Some(errors::status(
                code,
                "InternalError",
                format!("injected status {code}"),
                None,
            ));
        }
        if *method != Method::GET
            && let Some(left) = faults.conflicts.get_mut(path)
            && *left > 0
        {
            *left -= 1;
            let state = self.state();
            let name = path.rsplit('/').next().unwrap_or_default();
            let name = if name == "status" {
                path.trim_end_matches("/status")
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
            } else {
                name
            };
            if let Some(Route::Resource(r)) = registry::route(path, &*state)
                && let Some(info) = state.info(r.ty)
            {
                return Some(errors::conflict(&info, name, errors::MODIFIED));
            }
            return Some(errors::status(409, "Conflict", "injected conflict", None));
        }
        None
    }

    fn discovery(&self, route: &Route) -> Value {
        let state = self.state();
        let served: Vec<_> = state.served_types().map(|(_, t)| t.info.clone()).collect();
        match route {
            Route::Version => json!({
                "major": "1", "minor": "36", "gitVersion": "v1.36.0",
                "gitCommit": "fake", "gitTreeState": "clean", "buildDate": "2026-04-01T00:00:00Z",
                "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64",
            }),
            Route::CoreVersions => json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
            }),
            Route::CoreResources => json!({
                "kind": "APIResourceList",
                "groupVersion": "v1",
                "resources": served.iter().filter(|t| t.group.is_empty())
                    .flat_map(|t| t.discovery_entries()).collect::<Vec<_>>(),
            }),
            Route::GroupVersion(group, version) => json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": format!("{group}/{version}"),
                "resources": served.iter()
                    .filter(|t| &t.group == group && t.versions.contains(version))
                    .flat_map(|t| t.discovery_entries()).collect::<Vec<_>>(),
            }),
            Route::Groups | Route::Group(_) => {
                let mut groups: std::collections::BTreeMap<String, Vec<String>> =
                    Default::default();
                for t in &served {
                    if t.group.is_empty() {
                        continue;
                    }
                    let versions = groups.entry(t.group.clone()).or_default();
                    for v in &t.versions {
                        if !versions.contains(v) {
                            versions.push(v.clone());
                        }
                    }
                }
                let group_json = |name: &String, versions: &Vec<String>| {
                    let vs: Vec<Value> = versions
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                        .collect();
                    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
                };
                match route {
                    Route::Group(name) => {
                        let mut g = group_json(name, &groups[name]);
                        g["kind"] = json!("APIGroup");
                        g["apiVersion"] = json!("v1");
                        g
                    }
                    _ => json!({
                        "kind": "APIGroupList",
                        "apiVersion": "v1",
                        "groups": groups.iter().map(|(n, v)| group_json(n, v)).collect::<Vec<_>>(),
                    }),
                }
            }
            Route::Resource(_) => Value::Null,
        }
    }

    /// Answer one request; also returns the verb and status for the log.
    fn respond(&self, req: &handlers::Request) -> (&'static str, u16, Response<Body>) {
        let route = registry::route(&req.path, &*self.state());
        let verb = match &route {
            Some(Route::Resource(r)) => handlers::verb(&req.method, r, &req.query),
            Some(_) => "discovery",
            None => "unknown",
        };
        if let Some(fault) = self.fault(&req.method, &req.path) {
            return (verb, fault.code(), error_response(&fault));
        }
        let route = match route {
            None => return (verb, 404, error_response(&ApiError::PlainNotFound)),
            Some(Route::Resource(r)) => r,
            Some(other) => {
                if req.method != Method::GET {
                    return (
                        "discovery",
                        405,
                        error_response(&errors::method_not_allowed()),
                    );
                }
                // Aggregated discovery is not modelled.
                if req.accept.contains("as=APIGroupDiscoveryList") {
                    let e = errors::not_acceptable("application/json");
                    return ("discovery", 406, error_response(&e));
                }
                let body = self.discovery(&other).to_string().into_bytes();
                return ("discovery", 200, full(200, "application/json", body));
            }
        };
        let view = match View::of(&req.accept) {
            Ok(v) => v,
            Err(e) => return (verb, e.code(), error_response(&e)),
        };
        let wants_list_view = route.name.is_none() && req.method == Method::GET && verb == "list";
        if (view == View::MetadataList && !wants_list_view)
            || (view == View::Metadata && wants_list_view)
        {
            let e = errors::not_acceptable("application/json");
            return (verb, 406, error_response(&e));
        }
        if verb == "watch" {
            return match watch::start(&self.shared, &route, req, view) {
                Ok(rx) => {
                    let stream = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
                    });
                    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    ("watch", 200, response)
                }
                Err(e) => ("watch", e.code(), error_response(&e)),
            };
        }
        let (answer, info) = {
            let mut state = self.state();
            let answer = state.handle(req, &route);
            (answer, state.info(route.ty))
        };
        let Some(info) = info else {
            return (verb, 404, error_response(&ApiError::PlainNotFound));
        };
        match answer {
            Err(e) => (verb, e.code(), error_response(&e)),
            Ok(Answer::Object(code, obj)) => {
                let body = render::object(&obj, &info, &route.version, view).to_string();
                (
                    verb,
                    code,
                    full(code, "application/json", body.into_bytes()),
                )
            }
            Ok(Answer::Value(code, value)) => (
                verb,
                code,
                full(code, "application/json", value.to_string().into_bytes()),
            ),
            Ok(Answer::List {
                resource_version,
                continue_token,
                remaining,
                items,
            }) => {
                let body = render::list(
                    &info,
                    &route.version,
                    view,
                    resource_version,
                    continue_token.as_deref(),
                    remaining,
                    &items,
                );
                (verb, 200, full(200, "application/json", body))
            }
        }
    }

    async fn serve(self, request: Request<kube::client::Body>) -> Response<Body> {
        struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.shared
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _in_flight = InFlight(&self.shared.in_flight);
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let delay = lock(&self.shared.faults).delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let header = |name: http::header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let raw_query = parts.uri.query().unwrap_or_default().to_string();
        let req = handlers::Request {
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            query: parse_query(&raw_query),
            content_type: header(http::header::CONTENT_TYPE),
            accept: header(http::header::ACCEPT),
            user_agent: header(http::header::USER_AGENT),
            body,
        };
        let (verb, status, response) = self.respond(&req);
        if req.method != Method::GET {
            self.shared
                .write_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        lock(&self.shared.log).push(RequestRecord {
            method: req.method,
            path: req.path,
            query: raw_query,
            content_type: req.content_type,
            accept: req.accept,
            verb,
            status,
            body: req.body,
        });
        response
    }
}

impl tower::Service<Request<kube::client::Body>> for FakeApi {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.serve(request).await) })
    }
}

/// A client for `api` whose default namespace is `ns` (what the reconcile tests use).
pub fn start(api: &FakeApi) -> Client {
    api.client_in("ns")
}

/// The operator's controller running against a test API server, until `shutdown`.
pub struct RunningController {
    pub task: tokio::task::JoinHandle<()>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl RunningController {
    /// Stop it and wait (bounded) for it to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Spawn `controller::run` against `api`, leading while `leader` says so, with
/// every cluster fact found and DittoFS servers looked for on loopback.
pub fn spawn_controller(
    api: &FakeApi,
    args: dittofs_operator::controller::ControllerArgs,
    metrics: dittofs_operator::controller::ControllerMetrics,
    leader: tokio::sync::watch::Receiver<bool>,
) -> RunningController {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let readiness = dittofs_operator::probes::Readiness::new();
    let task = tokio::spawn(dittofs_operator::controller::run(
        api.client(),
        dittofs_operator::dittofs::Client::new(dittofs_operator::dittofs::Resolver::everything_to(
            std::net::Ipv4Addr::LOCALHOST.into(),
        )),
        args,
        AllFound,
        leader,
        readiness.gate("controller"),
        metrics,
        shutdown.clone(),
        tokio_util::sync::CancellationToken::new(),
    ));
    RunningController { task, shutdown }
}
