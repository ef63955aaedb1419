//! The watch-fed stores every reconcile pass reads, and the triggers they feed.
//!
//! One reflector per type runs for the life of the process on every replica, so a
//! replica that gains the Lease starts from warm caches. A pass never GETs what a
//! store holds; every store may trail the API server, which the passes allow for
//! (see `memory.rs`, `write.rs` and `finalizer.rs`).
//!
//! | store | what | why this shape |
//! |---|---|---|
//! | `servers` | every DittoServer, spec parsed per object | one unreadable object must not stop the watch |
//! | `config_maps`, `services`, `network_policies` | metadata of ours (label-selected) | the applied hash and owner are all a pass needs |
//! | `stateful_sets` | ours: metadata, pod-template annotations, status | status feeds the DittoServer status |
//! | `secrets` | metadata of **every** Secret, annotations dropped | triggers and ownership checks without holding Secret data |
//! | `percona` | PerconaPGClusters of ours: metadata and status | state; the CRD may be absent, which is an answer |
//! | `service_monitors` | ServiceMonitors of ours: metadata | as for the children; the CRD may be absent |
//!
//! Secret data is read (GET) only for Secrets a DittoServer reads, and again only
//! when the Secret's resourceVersion moves (`SecretCache`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api_error::{self, Absent};
use crate::crd::GROUP;
use crate::effective::EffectiveSpec;
use crate::names::{
    APPLIED_HASH_ANNOTATION, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, managed_selector,
};
use crate::resources::percona::api_resource;
use crate::resources::service_monitor;
use crate::scope::WatchScope;

use super::memory::Memory;
use super::stored::{ServerRef, StoredServer};

/// Page size of the cluster-wide Secret list: Secrets created by `kubectl apply`
/// carry their whole data again in an annotation, so a page of 500 can be large.
const SECRET_PAGE_SIZE: u32 = 100;

/// Whether a type that may not be installed (PerconaPGCluster, ServiceMonitor) is
/// served, as its watch last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionalType {
    /// Not known yet (the watch has not listed successfully nor been told 404).
    Unknown,
    /// Served, and the store has listed it.
    Served,
    /// The CRD is not installed (a 404 without a Status body).
    Absent,
}

impl OptionalType {
    fn load(state: &AtomicU8) -> Self {
        match state.load(Ordering::Acquire) {
            x if x == Self::Served as u8 => Self::Served,
            x if x == Self::Absent as u8 => Self::Absent,
            _ => Self::Unknown,
        }
    }
}

/// The stores, shared by every pass.
#[derive(Clone)]
pub struct Stores {
    pub servers: Store<StoredServer>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pub stateful_sets: Store<StatefulSet>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub percona: Store<DynamicObject>,
    percona_type: Arc<AtomicU8>,
    /// ServiceMonitors of ours: metadata only.
    pub service_monitors: Store<DynamicObject>,
    service_monitor_type: Arc<AtomicU8>,
    /// Which DittoServers read which Secret, kept up to date on DittoServer events.
    pub secret_index: Arc<SecretIndex>,
    /// Data of the Secrets DittoServers read, by resourceVersion.
    pub secret_data: Arc<SecretCache>,
    /// What the reconciler wrote and the stores may not show yet, and per-object memory.
    pub memory: Arc<Memory>,
    /// During a re-list of DittoServers, the ones due a pass: the store shows the new
    /// list only at its end, so a pass before then would read the old one, or miss
    /// an object created meanwhile.
    relist_due: Arc<Mutex<Option<Vec<ServerRef>>>>,
}

/// The write ends of the stores; `Stores::start` feeds them from watches, tests may
/// feed them by hand.
pub struct Writers {
    pub servers: Writer<StoredServer>,
    pub config_maps: Writer<PartialObjectMeta<ConfigMap>>,
    pub services: Writer<PartialObjectMeta<Service>>,
    pub network_policies: Writer<PartialObjectMeta<NetworkPolicy>>,
    pub stateful_sets: Writer<StatefulSet>,
    pub secrets: Writer<PartialObjectMeta<Secret>>,
    pub percona: Writer<DynamicObject>,
    pub service_monitors: Writer<DynamicObject>,
}

impl Stores {
    /// Empty stores and their writers.
    pub fn new() -> (Self, Writers) {
        let (servers, servers_w) = reflector::store();
        let (config_maps, config_maps_w) = reflector::store();
        let (services, services_w) = reflector::store();
        let (network_policies, network_policies_w) = reflector::store();
        let (stateful_sets, stateful_sets_w) = reflector::store();
        let (secrets, secrets_w) = reflector::store();
        let percona_w = Writer::new(api_resource());
        let percona = percona_w.as_reader();
        let service_monitors_w = Writer::new(service_monitor::api_resource());
        let service_monitors = service_monitors_w.as_reader();
        let stores = Self {
            servers,
            config_maps,
            services,
            network_policies,
            stateful_sets,
            secrets,
            percona,
            percona_type: Arc::new(AtomicU8::new(OptionalType::Unknown as u8)),
            service_monitors,
            service_monitor_type: Arc::new(AtomicU8::new(OptionalType::Unknown as u8)),
            secret_index: Arc::default(),
            secret_data: Arc::default(),
            memory: Arc::default(),
            relist_due: Arc::default(),
        };
        let writers = Writers {
            servers: servers_w,
            config_maps: config_maps_w,
            services: services_w,
            network_policies: network_policies_w,
            stateful_sets: stateful_sets_w,
            secrets: secrets_w,
            percona: percona_w,
            service_monitors: service_monitors_w,
        };
        (stores, writers)
    }

    /// Start one watch per store (one per served namespace with a
    /// `--watch-namespaces` list, merged by `scoped.rs`) until `shutdown`; events
    /// are turned into reconcile requests on `triggers`.
    pub fn start(
        client: &Client,
        scope: &WatchScope,
        triggers: Triggers,
        shutdown: &CancellationToken,
    ) -> Self {
        let (stores, w) = Self::new();
        let ours = watcher::Config::default().labels(&managed_selector());

        let s = stores.clone();
        let t = triggers.clone();
        spawn_reflector(
            "DittoServer",
            w.servers,
            scoped_watch(
                scope,
                |ns| api::<StoredServer>(client, ns),
                &watcher::Config::default().any_semantic(),
                |_: &mut StoredServer| {},
                &stores.servers,
                Retry::Default,
            ),
            move |event| s.on_server_event(event, &t),
            |_| {},
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers.clone());
        spawn_reflector(
            "ConfigMap",
            w.config_maps,
            scoped_watch(
                scope,
                |ns| api::<PartialObjectMeta<ConfigMap>>(client, ns),
                &ours,
                |c: &mut PartialObjectMeta<ConfigMap>| keep_what_passes_read(&mut c.metadata),
                &stores.config_maps,
                Retry::Default,
            ),
            move |event| s.on_child_event("ConfigMap", event, &t),
            |_| {},
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers.clone());
        spawn_reflector(
            "Service",
            w.services,
            scoped_watch(
                scope,
                |ns| api::<PartialObjectMeta<Service>>(client, ns),
                &ours,
                |s: &mut PartialObjectMeta<Service>| keep_what_passes_read(&mut s.metadata),
                &stores.services,
                Retry::Default,
            ),
            move |event| s.on_child_event("Service", event, &t),
            |_| {},
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers.clone());
        spawn_reflector(
            "NetworkPolicy",
            w.network_policies,
            scoped_watch(
                scope,
                |ns| api::<PartialObjectMeta<NetworkPolicy>>(client, ns),
                &ours,
                |n: &mut PartialObjectMeta<NetworkPolicy>| keep_what_passes_read(&mut n.metadata),
                &stores.network_policies,
                Retry::Default,
            ),
            move |event| s.on_child_event("NetworkPolicy", event, &t),
            |_| {},
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers.clone());
        spawn_reflector(
            "StatefulSet",
            w.stateful_sets,
            scoped_watch(
                scope,
                |ns| api::<StatefulSet>(client, ns),
                &ours,
                keep_what_passes_read_of_a_stateful_set,
                &stores.stateful_sets,
                Retry::Default,
            ),
            move |event| s.on_child_event("StatefulSet", event, &t),
            |_| {},
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers.clone());
        spawn_reflector(
            "Secret",
            w.secrets,
            scoped_watch(
                scope,
                |ns| api::<PartialObjectMeta<Secret>>(client, ns),
                &watcher::Config::default().page_size(SECRET_PAGE_SIZE),
                |s: &mut PartialObjectMeta<Secret>| keep_what_passes_read(&mut s.metadata),
                &stores.secrets,
                Retry::Default,
            ),
            move |event| s.on_secret_event(event, &t),
            |_| {},
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers.clone());
        let (absent, served) = (stores.clone(), stores.clone());
        let percona = api_resource();
        spawn_reflector(
            "PerconaPGCluster",
            w.percona,
            scoped_watch(
                scope,
                |ns| dynamic_api(client, ns, &percona),
                &ours,
                |c: &mut DynamicObject| {
                    keep_what_passes_read(&mut c.metadata);
                    // Only the state is read; the spec is ours and can be large.
                    c.data = serde_json::json!({"status": c.data.get("status")});
                },
                &stores.percona,
                Retry::TypeMayBeAbsent {
                    // Served, and listed: the store answers from here on.
                    listed: Arc::new(move || served.set_percona_type(OptionalType::Served)),
                },
            ),
            move |event| s.on_child_event("PerconaPGCluster", event, &t),
            move |error| {
                if watch_error_source(error).and_then(api_error::absent) == Some(Absent::Type) {
                    absent.set_percona_type(OptionalType::Absent);
                }
            },
            shutdown,
        );
        let (s, t) = (stores.clone(), triggers);
        let (absent, served, all) = (stores.clone(), stores.clone(), t.clone());
        let monitors = service_monitor::api_resource();
        spawn_reflector(
            "ServiceMonitor",
            w.service_monitors,
            scoped_watch(
                scope,
                |ns| dynamic_api(client, ns, &monitors),
                &ours,
                |m: &mut DynamicObject| {
                    keep_what_passes_read(&mut m.metadata);
                    m.data = serde_json::Value::Null;
                },
                &stores.service_monitors,
                Retry::TypeMayBeAbsent {
                    listed: Arc::new(move || {
                        let was = served.service_monitor_type();
                        served.set_service_monitor_type(OptionalType::Served);
                        if was != OptionalType::Served {
                            // Installed now (or first seen): the DittoServers that
                            // ask for one get it without waiting for another change.
                            served
                                .servers
                                .state()
                                .iter()
                                .for_each(|server| all.send(ObjectRef::from(server.as_ref())));
                        }
                    }),
                },
            ),
            move |event| s.on_child_event("ServiceMonitor", event, &t),
            move |error| {
                if watch_error_source(error).and_then(api_error::absent) == Some(Absent::Type) {
                    absent.set_service_monitor_type(OptionalType::Absent);
                }
            },
            shutdown,
        );
        stores
    }

    /// Wait until every store (but Percona's and the ServiceMonitors', whose CRDs
    /// may never exist) has listed.
    pub async fn synced(&self) {
        let _ = futures::join!(
            self.servers.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.services.wait_until_ready(),
            self.network_policies.wait_until_ready(),
            self.stateful_sets.wait_until_ready(),
            self.secrets.wait_until_ready(),
        );
    }

    pub fn percona_type(&self) -> OptionalType {
        OptionalType::load(&self.percona_type)
    }

    pub fn set_percona_type(&self, t: OptionalType) {
        self.percona_type.store(t as u8, Ordering::Release);
    }

    pub fn service_monitor_type(&self) -> OptionalType {
        OptionalType::load(&self.service_monitor_type)
    }

    pub fn set_service_monitor_type(&self, t: OptionalType) {
        self.service_monitor_type.store(t as u8, Ordering::Release);
    }

    /// A DittoServer changed: refresh what it reads, forget it when gone, and
    /// reconcile it when something a pass acts on changed (not on our own status
    /// writes, which change nothing a pass reads).
    pub fn on_server_event(&self, event: &watcher::Event<StoredServer>, triggers: &Triggers) {
        match event {
            watcher::Event::Apply(s) => {
                let r = ObjectRef::from(s);
                self.secret_index.set(&r, secrets_read_by(s));
                if self.memory.server_changed(&r, s) {
                    triggers.send(r);
                }
            }
            watcher::Event::InitApply(s) => {
                let r = ObjectRef::from(s);
                self.secret_index.set(&r, secrets_read_by(s));
                if self.memory.server_changed(&r, s) {
                    lock(&self.relist_due).get_or_insert_default().push(r);
                }
            }
            watcher::Event::Delete(s) => {
                let r = ObjectRef::from(s);
                self.secret_index.remove(&r);
                self.secret_data.retain_referenced(&self.secret_index);
                self.memory.forget(&r);
            }
            // A re-list replaced the store: forget the DittoServers deleted while the
            // watch was down (no delete event ever comes for them).
            watcher::Event::InitDone => {
                let live: HashSet<ServerRef> = self
                    .servers
                    .state()
                    .iter()
                    .map(|s| ObjectRef::from(&**s))
                    .collect();
                self.secret_index.retain(|r| live.contains(r));
                self.secret_data.retain_referenced(&self.secret_index);
                self.memory.retain_servers(|r| live.contains(r));
                for r in lock(&self.relist_due).take().unwrap_or_default() {
                    triggers.send(r);
                }
            }
            // A re-list that failed part-way starts again with `Init`: what it already
            // found due stays due (the memory has recorded those objects as seen).
            watcher::Event::Init => {
                lock(&self.relist_due).get_or_insert_default();
            }
        }
    }

    /// One of our children changed: reconcile its DittoServer.
    fn on_child_event<K: Resource + ResourceExt>(
        &self,
        kind: &'static str,
        event: &watcher::Event<K>,
        triggers: &Triggers,
    ) {
        let (obj, deleted) = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => (o, false),
            watcher::Event::Delete(o) => (o, true),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        self.memory.child_seen(kind, obj.meta(), deleted);
        if let Some(server) = server_of(obj.meta()) {
            triggers.send(server);
        }
    }

    /// A Secret changed: reconcile the DittoServers that read it (none for almost
    /// every Secret of the cluster), and drop data that is no longer current.
    fn on_secret_event(
        &self,
        event: &watcher::Event<PartialObjectMeta<Secret>>,
        triggers: &Triggers,
    ) {
        let (secret, deleted) = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => (o, false),
            watcher::Event::Delete(o) => (o, true),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
            return;
        };
        if deleted {
            self.secret_data.remove(&ns, &name);
        }
        self.memory.child_seen("Secret", &secret.metadata, deleted);
        for server in self.secret_index.readers(&ns, &name) {
            triggers.send(server);
        }
        // A managed Secret is also a child: reconcile its owner.
        if let Some(server) = server_of(&secret.metadata) {
            triggers.send(server);
        }
    }
}

/// The DittoServer a child belongs to: its controller owner reference, else (an
/// orphan we labelled) its instance label.
fn server_of(meta: &ObjectMeta) -> Option<ServerRef> {
    let ns = meta.namespace.as_deref()?;
    let owner = meta.owner_references.iter().flatten().find(|o| {
        o.controller == Some(true)
            && o.kind == crate::crd::KIND
            && o.api_version.starts_with(&format!("{GROUP}/"))
    });
    if let Some(o) = owner {
        return Some(ObjectRef::new(&o.name).within(ns));
    }
    let labels = meta.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    labels
        .get(INSTANCE_LABEL)
        .map(|i| ObjectRef::new(i).within(ns))
}

/// Names of every Secret a pass of `server` reads: what its pod reads (user and
/// managed), what it checks or sends to DittoFS, and its account Secret.
pub fn secrets_read_by(server: &StoredServer) -> Vec<String> {
    let Ok(ds) = server.server() else {
        return Vec::new();
    };
    let eff = EffectiveSpec::resolve(&ds);
    let mut names = eff.referenced_secrets();
    names.extend(eff.checked_secrets());
    for s in [&eff.jwt.secret, &eff.admin.password] {
        if s.managed {
            names.push(s.name.clone());
        }
    }
    names.push(crate::names::account_secret(&eff.name));
    names.sort();
    names.dedup();
    names
}

/// Keep only what a pass reads of a child's metadata: identity, labels, owners
/// and our own annotation. managedFields are often larger than the object, and
/// annotations can hold a full copy of it (`kubectl apply`).
fn keep_what_passes_read(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k == APPLIED_HASH_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A StatefulSet as a pass reads it: metadata, the pod template's annotations
/// (the config hash) and the status. Not the pod spec, the largest part.
fn keep_what_passes_read_of_a_stateful_set(sts: &mut StatefulSet) {
    keep_what_passes_read(&mut sts.metadata);
    if let Some(spec) = sts.spec.as_mut() {
        spec.template.spec = None;
        spec.volume_claim_templates = None;
    }
}

/// `Api` of `K` in namespace `ns`, or in every namespace.
fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// [`api`] of a type known only at run time (a CRD that may not be installed).
fn dynamic_api(
    client: &Client,
    ns: Option<&str>,
    resource: &kube::api::ApiResource,
) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// How a failed watch retries.
#[derive(Clone)]
enum Retry {
    /// 0.8 s doubling to [`RETRY_CAP`], kind to a struggling API server.
    Default,
    /// A type that may not be installed (a CRD added later): 0.8 s doubling to
    /// [`ABSENT_TYPE_RETRY_CAP`], so that a type installed later is served to the
    /// passes within seconds, for one list request per few seconds while it is not.
    /// `listed` runs whenever one of its watches has listed: the type is served
    /// (before any merge of namespaces, which shows a re-list only as changes).
    TypeMayBeAbsent { listed: Arc<dyn Fn() + Send + Sync> },
}

/// Longest wait between two lists of a failing watch.
pub const RETRY_CAP: Duration = Duration::from_secs(30);
/// Longest wait between two lists of a type that is not installed.
pub const ABSENT_TYPE_RETRY_CAP: Duration = Duration::from_secs(5);

/// 0.8 s doubling up to `cap`; starts over once the watch has gone
/// [`Self::QUIET`] without an error. A watcher announces every new list with an
/// `Init` event, which asks the backoff to reset even when that list then fails:
/// honoured at once (as kube's own backoffs do), the delay would never grow and a
/// watch refused for good (a 403, an absent type) would list every 0.8 s.
struct GuardedBackoff {
    cap: Duration,
    next: Duration,
    last_error: Option<std::time::Instant>,
}

impl GuardedBackoff {
    const FIRST: Duration = Duration::from_millis(800);
    const QUIET: Duration = Duration::from_secs(120);

    fn new(cap: Duration) -> Self {
        Self {
            cap,
            next: Self::FIRST,
            last_error: None,
        }
    }
}

impl Iterator for GuardedBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.last_error = Some(std::time::Instant::now());
        let now = self.next;
        self.next = (now * 2).min(self.cap);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for GuardedBackoff {
    fn reset(&mut self) {
        if self.last_error.is_none_or(|at| at.elapsed() >= Self::QUIET) {
            self.next = Self::FIRST;
        }
    }
}

/// One watch of `api` with `retry`'s backoff: without one a failing watch would
/// retry at once, in a loop.
fn one_watch<K>(
    api: Api<K>,
    config: &watcher::Config,
    keep: impl FnMut(&mut K) + Send + 'static,
    retry: Retry,
) -> BoxStream<'static, watcher::Result<watcher::Event<K>>>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let watch = watcher::watcher(api, config.clone()).modify(keep);
    match retry {
        Retry::Default => watch.backoff(GuardedBackoff::new(RETRY_CAP)).boxed(),
        Retry::TypeMayBeAbsent { listed } => watch
            .inspect_ok(move |event| {
                if matches!(event, watcher::Event::InitDone) {
                    listed();
                }
            })
            .backoff(GuardedBackoff::new(ABSENT_TYPE_RETRY_CAP))
            .boxed(),
    }
}

/// The watch of one store over `scope`: one cluster-wide watch, or one per served
/// namespace (each with its own backoff) merged into a single list-watch
/// (`scoped.rs`). `keep` trims each object before it is stored (or held by a first
/// list).
fn scoped_watch<K>(
    scope: &WatchScope,
    api: impl Fn(Option<&str>) -> Api<K>,
    config: &watcher::Config,
    keep: impl FnMut(&mut K) + Clone + Send + 'static,
    store: &Store<K>,
    retry: Retry,
) -> BoxStream<'static, watcher::Result<watcher::Event<K>>>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    match scope.namespaces() {
        None => one_watch(api(None), config, keep, retry),
        Some([one]) => one_watch(api(Some(one)), config, keep, retry),
        Some(namespaces) => {
            let streams = namespaces
                .iter()
                .map(|ns| one_watch(api(Some(ns)), config, keep.clone(), retry.clone()))
                .collect();
            super::scoped::merge(namespaces.to_vec(), streams, store.clone())
        }
    }
}

fn watch_error_source(error: &watcher::Error) -> Option<&kube::Error> {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => Some(e),
        _ => None,
    }
}

/// Run a reflector until `shutdown`: apply events to the store, hand each to
/// `on_event`, and each error to `on_error` (`stream` retries with backoff).
fn spawn_reflector<K, S>(
    what: &'static str,
    writer: Writer<K>,
    stream: S,
    on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
    on_error: impl Fn(&watcher::Error) + Send + 'static,
    shutdown: &CancellationToken,
) where
    K: kube::runtime::reflector::Lookup + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
{
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let events = reflector::reflector(writer, stream);
        futures::pin_mut!(events);
        loop {
            let next = tokio::select! {
                next = events.next() => next,
                () = shutdown.cancelled() => return,
            };
            match next {
                Some(Ok(event)) => on_event(&event),
                Some(Err(error)) => {
                    on_error(&error);
                    tracing::debug!(kind = what, %error, "watch error; retrying with backoff");
                }
                None => return,
            }
        }
    });
}

/// Where watch events turn into reconcile requests: a channel to the Controller of
/// the current leadership term, or nowhere while this replica does not lead (a new
/// term starts by reconciling everything).
#[derive(Clone, Default)]
pub struct Triggers {
    current: Arc<Mutex<Option<mpsc::UnboundedSender<ServerRef>>>>,
}

impl Triggers {
    pub fn send(&self, server: ServerRef) {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = current.as_ref() {
            let _ = tx.send(server);
        }
    }

    /// Start a term: requests go to the returned stream until it is dropped.
    pub fn subscribe(&self) -> impl Stream<Item = ServerRef> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        futures::stream::unfold(rx, |mut rx| async move {
            let next = rx.recv().await?;
            Some((next, rx))
        })
    }

    /// End the term.
    pub fn unsubscribe(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Which DittoServers read which Secret (by namespace and name).
#[derive(Default)]
pub struct SecretIndex {
    inner: Mutex<SecretIndexInner>,
}

#[derive(Default)]
struct SecretIndexInner {
    readers: HashMap<(String, String), HashSet<ServerRef>>,
    reads: HashMap<ServerRef, Vec<String>>,
}

impl SecretIndexInner {
    fn remove(&mut self, server: &ServerRef) {
        let ns = server.namespace.clone().unwrap_or_default();
        if let Some(old) = self.reads.remove(server) {
            for name in old {
                remove_reader(&mut self.readers, (ns.clone(), name), server);
            }
        }
    }
}

impl SecretIndex {
    /// Record that `server` reads `names` (in its namespace), replacing what it read.
    pub fn set(&self, server: &ServerRef, names: Vec<String>) {
        let mut inner = lock(&self.inner);
        let ns = server.namespace.clone().unwrap_or_default();
        if inner.reads.get(server) == Some(&names) {
            return;
        }
        inner.remove(server);
        for name in &names {
            inner
                .readers
                .entry((ns.clone(), name.clone()))
                .or_default()
                .insert(server.clone());
        }
        inner.reads.insert(server.clone(), names);
    }

    pub fn remove(&self, server: &ServerRef) {
        lock(&self.inner).remove(server);
    }

    /// Keep only the DittoServers for which `live` holds.
    pub fn retain(&self, live: impl Fn(&ServerRef) -> bool) {
        let mut inner = lock(&self.inner);
        let gone: Vec<ServerRef> = inner.reads.keys().filter(|r| !live(r)).cloned().collect();
        for server in &gone {
            inner.remove(server);
        }
    }

    /// The DittoServers that read Secret `ns/name`.
    pub fn readers(&self, ns: &str, name: &str) -> Vec<ServerRef> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .readers
            .get(&(ns.to_string(), name.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn is_read(&self, ns: &str, name: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .readers
            .contains_key(&(ns.to_string(), name.to_string()))
    }
}

/// A poisoned lock still holds consistent data here (every update is a few map
/// operations), so it is used rather than turned into a panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn remove_reader(
    readers: &mut HashMap<(String, String), HashSet<ServerRef>>,
    key: (String, String),
    server: &ServerRef,
) {
    if let Some(set) = readers.get_mut(&key) {
        set.remove(server);
        if set.is_empty() {
            readers.remove(&key);
        }
    }
}

/// Data of one Secret at one resourceVersion.
#[derive(Clone, Debug)]
pub struct CachedSecret {
    pub resource_version: String,
    pub data: BTreeMap<String, Vec<u8>>,
    /// The Secret's `type` (`Opaque` when it has none).
    pub secret_type: String,
}

impl CachedSecret {
    pub fn of(secret: &Secret) -> Self {
        Self {
            resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
            data: secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            secret_type: secret.type_.clone().unwrap_or_else(|| "Opaque".into()),
        }
    }
}

/// Data of the Secrets DittoServers read, so a pass GETs a Secret only when its
/// resourceVersion in the metadata store moved.
#[derive(Default)]
pub struct SecretCache {
    inner: Mutex<HashMap<(String, String), CachedSecret>>,
}

impl SecretCache {
    /// The cached data when it is at `resource_version`.
    pub fn get(&self, ns: &str, name: &str, resource_version: &str) -> Option<CachedSecret> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .get(&(ns.to_string(), name.to_string()))
            .filter(|c| c.resource_version == resource_version)
            .cloned()
    }

    /// The cached data whatever its version (when the metadata store does not have
    /// the Secret yet, a fresh read is still newer than nothing).
    pub fn any(&self, ns: &str, name: &str) -> Option<CachedSecret> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.get(&(ns.to_string(), name.to_string())).cloned()
    }

    pub fn put(&self, ns: &str, name: &str, secret: CachedSecret) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.insert((ns.to_string(), name.to_string()), secret);
    }

    pub fn remove(&self, ns: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.remove(&(ns.to_string(), name.to_string()));
    }

    /// Drop the data of Secrets no DittoServer reads any more.
    pub fn retain_referenced(&self, index: &SecretIndex) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.retain(|(ns, name), _| index.is_read(ns, name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

    #[test]
    fn stores_keep_only_what_a_pass_reads() {
        let mut sts = StatefulSet {
            metadata: ObjectMeta {
                annotations: Some(
                    [
                        (APPLIED_HASH_ANNOTATION.to_string(), "h".to_string()),
                        (
                            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                            "{…}".to_string(),
                        ),
                    ]
                    .into(),
                ),
                managed_fields: Some(vec![Default::default()]),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        annotations: Some([("dittofs.io/config-hash".into(), "c".into())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        keep_what_passes_read_of_a_stateful_set(&mut sts);
        assert!(sts.metadata.managed_fields.is_none());
        let annotations = sts.metadata.annotations.as_ref().expect("ours kept");
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            [APPLIED_HASH_ANNOTATION]
        );
        let template = sts.spec.as_ref().map(|s| &s.template).expect("template");
        assert!(template.spec.is_none(), "the pod spec is not kept");
        assert!(template.metadata.is_some(), "the config hash is kept");
    }
}
