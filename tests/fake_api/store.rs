//! The object store: etcd plus the watch cache's event history.
//!
//! One cluster-wide resourceVersion counter, bumped by every write (like etcd's
//! revision). Objects are kept per type, ordered by (namespace, name) as etcd keys
//! are; every write appends to the type's event history, from which watches are
//! served. History is bounded: a watch from a resourceVersion older than the
//! oldest kept event gets `410 Expired`, as from a real watch cache.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::registry::{TypeInfo, TypeLookup};

/// Where an object lives: type index, namespace (`""` when cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    pub ty: usize,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One write, as the watch cache keeps it.
#[derive(Clone, Debug)]
pub struct Record {
    pub rv: u64,
    pub kind: EventKind,
    /// The object after the write (for a deletion: its last state, carrying the
    /// deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the write, so a label-selected watch can turn a
    /// MODIFIED into ADDED or DELETED when the object enters or leaves the selection.
    pub previous: Option<Arc<Value>>,
    /// When the write happened; watch lag counts from here.
    pub at: Instant,
}

pub struct TypeState {
    pub info: Arc<TypeInfo>,
    pub objects: BTreeMap<(String, String), Arc<Value>>,
    pub history: VecDeque<Record>,
    /// Events with a resourceVersion up to this one were dropped from history.
    pub compacted: u64,
    /// The resourceVersion of this type's latest write; watches wait on it. Dropped
    /// with the type (CRD deleted), which ends every watch of it.
    pub latest: watch::Sender<u64>,
}

impl TypeState {
    pub fn new(info: TypeInfo, rv: u64) -> Self {
        let (latest, _) = watch::channel(rv);
        Self {
            info: Arc::new(info),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: rv,
            latest,
        }
    }

    /// Objects in `namespace` (all namespaces when `None`), in key order, starting
    /// after `after` (a `(namespace, name)` key) when given.
    pub fn range<'a>(
        &'a self,
        namespace: Option<&'a str>,
        after: Option<(String, String)>,
    ) -> impl Iterator<Item = (&'a (String, String), &'a Arc<Value>)> + 'a {
        use std::ops::Bound;
        let start = match (&after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
    }
}

/// Tunables of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Events kept per type for watches to resume from.
    pub history_limit: usize,
    /// Objects may be created only in existing namespaces (NamespaceLifecycle).
    pub require_namespaces: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            require_namespaces: true,
        }
    }
}

/// Work queued for kube-controller-manager's stand-ins.
#[derive(Default)]
pub struct ControllerQueues {
    /// Dependents whose owners must be checked.
    pub gc_dependents: BTreeSet<Addr>,
    /// Objects being deleted with the `orphan` or `foregroundDeletion` finalizer.
    pub gc_owners: BTreeSet<Addr>,
    /// Namespaces being deleted.
    pub namespaces: BTreeSet<String>,
    /// The StatefulSet controller runs.
    pub sts_enabled: bool,
    pub statefulsets: BTreeSet<Addr>,
}

pub struct State {
    pub rv: u64,
    pub types: Vec<Option<TypeState>>,
    /// (group, resource) → index in `types`.
    pub routes: HashMap<(String, String), usize>,
    /// uid → object, for owner lookups.
    pub uids: HashMap<String, Addr>,
    /// owner uid → objects that name it in an owner reference.
    pub dependents: HashMap<String, BTreeSet<Addr>>,
    pub config: StoreConfig,
    pub queues: ControllerQueues,
    /// The resourceVersion of the latest write; the controllers wait on it.
    pub changes: watch::Sender<u64>,
    rng: u64,
}

impl TypeLookup for State {
    fn lookup(&self, group: &str, resource: &str) -> Option<(usize, Arc<TypeInfo>)> {
        let ty = *self
            .routes
            .get(&(group.to_string(), resource.to_string()))?;
        let info = self.types.get(ty)?.as_ref()?.info.clone();
        Some((ty, info))
    }

    fn group_served(&self, group: &str) -> bool {
        self.routes.keys().any(|(g, _)| g == group)
    }

    fn group_version_served(&self, group: &str, version: &str) -> bool {
        self.served_types()
            .any(|(_, t)| t.info.group == group && t.info.versions.iter().any(|v| v == version))
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `(namespace, name)` of an object, `""` for a missing namespace.
pub fn key_of(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

pub fn uid_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["uid"].as_str().filter(|s| !s.is_empty())
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

impl State {
    pub fn new(config: StoreConfig, seed: u64) -> Self {
        let mut state = Self {
            rv: 1,
            types: Vec::new(),
            routes: HashMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            config,
            queues: ControllerQueues::default(),
            changes: watch::channel(1).0,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
        };
        for info in super::registry::builtin_types() {
            state.serve(info);
        }
        state
    }

    pub fn served_types(&self) -> impl Iterator<Item = (usize, &TypeState)> {
        self.types
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
    }

    pub fn type_state(&self, ty: usize) -> Option<&TypeState> {
        self.types.get(ty).and_then(Option::as_ref)
    }

    pub fn type_state_mut(&mut self, ty: usize) -> Option<&mut TypeState> {
        self.types.get_mut(ty).and_then(Option::as_mut)
    }

    pub fn info(&self, ty: usize) -> Option<Arc<TypeInfo>> {
        self.type_state(ty).map(|t| t.info.clone())
    }

    /// Start serving `info`; a type already served under the same (group, resource)
    /// keeps its objects and gets the new definition.
    pub fn serve(&mut self, info: TypeInfo) -> usize {
        let key = (info.group.clone(), info.resource.clone());
        if let Some(&ty) = self.routes.get(&key)
            && let Some(state) = self.type_state_mut(ty)
        {
            state.info = Arc::new(info);
            return ty;
        }
        let ty = self.types.len();
        self.types.push(Some(TypeState::new(info, self.rv)));
        self.routes.insert(key, ty);
        ty
    }

    /// Stop serving a type: its objects are gone and its watches end.
    pub fn unserve(&mut self, group: &str, resource: &str) {
        let Some(ty) = self
            .routes
            .remove(&(group.to_string(), resource.to_string()))
        else {
            return;
        };
        if let Some(state) = self.types.get_mut(ty).and_then(Option::take) {
            for obj in state.objects.values() {
                if let Some(uid) = uid_of(obj) {
                    self.uids.remove(uid);
                    let deps = self.dependents.get(uid).cloned().unwrap_or_default();
                    self.queues.gc_dependents.extend(deps);
                }
                for owner in owner_uids(obj) {
                    if let Some(set) = self.dependents.get_mut(&owner) {
                        set.retain(|a| a.ty != ty);
                    }
                }
            }
            // Dropping `state.latest` ends the type's watches.
        }
    }

    pub fn addr_of(&self, ty: usize, obj: &Value) -> Addr {
        let (namespace, name) = key_of(obj);
        Addr {
            ty,
            namespace,
            name,
        }
    }

    pub fn get(&self, addr: &Addr) -> Option<&Arc<Value>> {
        self.type_state(addr.ty)?
            .objects
            .get(&(addr.namespace.clone(), addr.name.clone()))
    }

    /// A pseudo-random number (splitmix64), for uids and generated names.
    pub fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn new_uid(&mut self) -> String {
        let a = self.random();
        let b = self.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// `generateName` + 5 characters, from the same alphabet as the real server.
    pub fn generated_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut r = self.random();
        let mut name = prefix.to_string();
        for _ in 0..5 {
            name.push(ALPHABET[(r % ALPHABET.len() as u64) as usize] as char);
            r /= ALPHABET.len() as u64;
        }
        name
    }

    /// Store `object` at `addr` (or delete it with `None`): bump the
    /// resourceVersion, append to the type's history, update indexes and controller
    /// queues, wake watches. Returns the stored object (the last state for a deletion).
    pub fn commit(&mut self, addr: &Addr, object: Option<Value>) -> Option<Arc<Value>> {
        let history_limit = self.config.history_limit;
        let key = (addr.namespace.clone(), addr.name.clone());
        let previous = self.type_state(addr.ty)?.objects.get(&key).cloned();
        if object.is_none() && previous.is_none() {
            return None;
        }
        self.rv += 1;
        let rv = self.rv;
        let (kind, stored) = match object {
            Some(mut obj) => {
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                let kind = if previous.is_some() {
                    EventKind::Modified
                } else {
                    EventKind::Added
                };
                (kind, Arc::new(obj))
            }
            None => {
                let mut last = previous.as_deref().cloned().unwrap_or_default();
                last["metadata"]["resourceVersion"] = json!(rv.to_string());
                (EventKind::Deleted, Arc::new(last))
            }
        };
        self.index(addr, previous.as_deref(), kind, &stored);
        let state = self.type_state_mut(addr.ty)?;
        if kind == EventKind::Deleted {
            state.objects.remove(&key);
        } else {
            state.objects.insert(key, stored.clone());
        }
        state.history.push_back(Record {
            rv,
            kind,
            object: stored.clone(),
            previous,
            at: Instant::now(),
        });
        while state.history.len() > history_limit {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted = dropped.rv;
            }
        }
        state.latest.send_replace(rv);
        self.changes.send_replace(rv);
        Some(stored)
    }

    /// Keep the uid and owner indexes and the controllers' queues in step with a write.
    fn index(&mut self, addr: &Addr, previous: Option<&Value>, kind: EventKind, stored: &Value) {
        let old_owners = previous.map(owner_uids).unwrap_or_default();
        let new_owners = if kind == EventKind::Deleted {
            Vec::new()
        } else {
            owner_uids(stored)
        };
        for uid in &old_owners {
            if !new_owners.contains(uid)
                && let Some(set) = self.dependents.get_mut(uid)
            {
                set.remove(addr);
                if set.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
        for uid in &new_owners {
            self.dependents
                .entry(uid.clone())
                .or_default()
                .insert(addr.clone());
        }
        let uid = uid_of(stored).map(str::to_string);
        if let Some(uid) = &uid {
            if kind == EventKind::Deleted {
                self.uids.remove(uid);
            } else {
                self.uids.insert(uid.clone(), addr.clone());
            }
        }
        let info = self.info(addr.ty);
        let resource = info
            .as_ref()
            .map(|i| (i.group.as_str(), i.resource.as_str()));
        // Queued whether or not a garbage collector runs: it catches up when it starts.
        {
            if kind != EventKind::Deleted && !new_owners.is_empty() {
                self.queues.gc_dependents.insert(addr.clone());
            }
            if let Some(uid) = &uid {
                if kind == EventKind::Deleted {
                    let deps = self.dependents.get(uid).cloned().unwrap_or_default();
                    self.queues.gc_dependents.extend(deps);
                } else if is_deleting(stored) {
                    let f = finalizers(stored);
                    if f.iter().any(|f| f == "orphan" || f == "foregroundDeletion") {
                        self.queues.gc_owners.insert(addr.clone());
                    }
                }
            }
            if kind == EventKind::Deleted {
                // A dependent is gone: an owner deleting in the foreground may finish.
                for owner in &old_owners {
                    if let Some(owner_addr) = self.uids.get(owner) {
                        self.queues.gc_owners.insert(owner_addr.clone());
                    }
                }
            }
            if resource == Some(("", "namespaces"))
                && kind != EventKind::Deleted
                && is_deleting(stored)
            {
                self.queues.namespaces.insert(addr.name.clone());
            }
            if kind == EventKind::Deleted && !addr.namespace.is_empty() {
                // The namespace controller waits for the namespace to empty.
                if self
                    .namespace_object(&addr.namespace)
                    .is_some_and(|ns| is_deleting(ns))
                {
                    self.queues.namespaces.insert(addr.namespace.clone());
                }
            }
        }
        if self.queues.sts_enabled
            && resource == Some(("apps", "statefulsets"))
            && kind != EventKind::Deleted
        {
            self.queues.statefulsets.insert(addr.clone());
        }
    }

    pub fn namespace_type(&self) -> Option<usize> {
        self.routes
            .get(&(String::new(), "namespaces".to_string()))
            .copied()
    }

    pub fn namespace_object(&self, name: &str) -> Option<&Arc<Value>> {
        let ty = self.namespace_type()?;
        self.get(&Addr {
            ty,
            namespace: String::new(),
            name: name.to_string(),
        })
    }
}
