//! Observe: everything one pass needs to know about the cluster, read once, at the
//! start of the pass, from the watch-fed stores (plus the reconciler's memory of
//! its own recent writes, which the stores may not show yet).
//!
//! The only requests here are GETs the stores cannot answer: the data of a Secret
//! the server reads whose resourceVersion moved since it was last read; a managed
//! Secret the store does not show — absence is confirmed with a GET before a new
//! value is generated, so a lagging store can never replace a key; and the
//! PerconaPGCluster while the Percona watch has not listed yet.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};

use crate::api_error::{self, Absent};
use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::names;
use crate::resources::percona::api_resource;
use crate::resources::service_monitor;
use crate::resources::{ManagedSecretValues, SecretData};

use super::error::ReconcileError;
use super::memory::{ChildKey, Memory};
use super::ownership::{Owner, Seen};
use super::watches::{CachedSecret, OptionalType, Stores};

/// A Secret as observed: ownership and (for the Secrets the pod reads) its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSeen {
    pub seen: Seen,
    pub data: Option<BTreeMap<String, Vec<u8>>>,
    /// The resourceVersion `data` was read at.
    pub data_version: Option<String>,
    /// The Secret's `type`, read with `data`.
    pub secret_type: Option<String>,
}

/// The PerconaPGCluster `<name>-postgres`, as observed.
#[derive(Clone, Debug)]
pub enum PerconaSeen {
    /// The Percona CRD is not installed: no cluster can exist.
    TypeAbsent,
    /// The type is served and the cluster does not exist.
    Absent,
    Present {
        seen: Seen,
        cluster: Box<DynamicObject>,
    },
}

impl PerconaSeen {
    /// `status.state` of an existing cluster (`ready`, `initializing`, …).
    pub fn state(&self) -> Option<String> {
        match self {
            PerconaSeen::Present { cluster, .. } => Some(
                cluster
                    .data
                    .pointer("/status/state")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state().as_deref() == Some("ready")
    }
}

/// What one pass knows about the cluster.
#[derive(Clone, Debug)]
pub struct Observed {
    pub config_map: Option<Seen>,
    /// Services that exist among the names we manage, by name.
    pub services: BTreeMap<String, Seen>,
    pub network_policy: Option<Seen>,
    /// The ServiceMonitor `<name>-metrics`; `None` inside when the type is served and
    /// it does not exist. `Err`: the ServiceMonitor type is not served (yet).
    pub service_monitor: Result<Option<Seen>, OptionalType>,
    /// Secrets that exist among those the pod reads and the managed names, by name.
    pub secrets: BTreeMap<String, SecretSeen>,
    /// Managed Secrets a fresh read found absent during this pass.
    pub secrets_absent: Vec<String>,
    pub stateful_set: Option<(Seen, StatefulSet)>,
    pub percona: PerconaSeen,
}

impl Observed {
    /// Data of every existing Secret the pod reads (input of the config hash).
    pub fn secret_data(&self, eff: &EffectiveSpec) -> SecretData {
        let mut names = eff.referenced_secrets();
        names.extend(
            [&eff.jwt.secret, &eff.admin.password]
                .into_iter()
                .filter(|s| s.managed)
                .map(|s| s.name.clone()),
        );
        names
            .into_iter()
            .filter_map(|n| {
                let data = self.secrets.get(&n)?.data.clone()?;
                Some((n, data))
            })
            .collect()
    }

    /// Values of the managed Secrets: what exists (ours) is kept forever,
    /// `generated` fills what does not exist yet.
    pub fn managed_values(
        &self,
        eff: &EffectiveSpec,
        generated: ManagedSecretValues,
    ) -> ManagedSecretValues {
        let existing = |name: &str, key: &str| {
            let s = self.secrets.get(name)?;
            if !s.seen.is_ours() {
                return None;
            }
            let v = s.data.as_ref()?.get(key)?;
            Some(String::from_utf8_lossy(v).into_owned()).filter(|v| !v.is_empty())
        };
        ManagedSecretValues {
            jwt_secret: existing(&eff.jwt.secret.name, &eff.jwt.secret.key)
                .unwrap_or(generated.jwt_secret),
            admin_password: existing(
                &eff.admin.password.name,
                crate::defaults::ADMIN_PASSWORD_KEY,
            )
            .unwrap_or(generated.admin_password),
            account_password: existing(
                &names::account_secret(&eff.name),
                crate::defaults::ACCOUNT_PASSWORD_KEY,
            )
            .unwrap_or(generated.account_password),
        }
    }

    /// The account Secret's refresh token and when it was obtained, if it keeps one.
    pub fn kept_refresh(&self, eff: &EffectiveSpec) -> Option<(String, String)> {
        let secret = self.secrets.get(&names::account_secret(&eff.name))?;
        let data = secret.data.as_ref().filter(|_| secret.seen.is_ours())?;
        let text = |key: &str| {
            data.get(key)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|v| !v.is_empty())
        };
        Some((
            text(crate::defaults::ACCOUNT_REFRESH_TOKEN_KEY)?,
            text(crate::defaults::ACCOUNT_REFRESH_OBTAINED_KEY)?,
        ))
    }

    /// Does the account Secret exist (ours)?
    pub fn has_account_secret(&self, eff: &EffectiveSpec) -> bool {
        self.secrets
            .get(&names::account_secret(&eff.name))
            .is_some_and(|s| s.seen.is_ours())
    }
}

/// Observe the cluster for `ds` (resolved into `eff`).
pub async fn observe(
    client: &Client,
    stores: &Stores,
    ds: &DittoServer,
    eff: &EffectiveSpec,
) -> Result<Observed, ReconcileError> {
    let ns = eff.namespace.as_str();
    let memory = &stores.memory;

    let config_map = seen_in(
        memory,
        "ConfigMap",
        ns,
        &names::config_map(&eff.name),
        stores
            .config_maps
            .get(&key(ns, &names::config_map(&eff.name)))
            .map(|c| Seen::of(&c.metadata, ds)),
    );

    let services = [
        names::file_service(&eff.name),
        names::api_service(&eff.name),
        names::headless_service(&eff.name),
        names::metrics_service(&eff.name),
    ]
    .into_iter()
    .filter_map(|name| {
        let in_store = stores
            .services
            .get(&key(ns, &name))
            .map(|s| Seen::of(&s.metadata, ds));
        let seen = seen_in(memory, "Service", ns, &name, in_store)?;
        Some((name, seen))
    })
    .collect();

    let network_policy = seen_in(
        memory,
        "NetworkPolicy",
        ns,
        &names::network_policy(&eff.name),
        stores
            .network_policies
            .get(&key(ns, &names::network_policy(&eff.name)))
            .map(|n| Seen::of(&n.metadata, ds)),
    );

    let service_monitor = match stores.service_monitor_type() {
        OptionalType::Served => Ok(seen_in(
            memory,
            "ServiceMonitor",
            ns,
            &names::metrics_service(&eff.name),
            stores
                .service_monitors
                .get(
                    &ObjectRef::new_with(
                        &names::metrics_service(&eff.name),
                        service_monitor::api_resource(),
                    )
                    .within(ns),
                )
                .map(|m| Seen::of(&m.metadata, ds)),
        )),
        other => Err(other),
    };

    let stateful_set = stores.stateful_sets.get(&key(ns, &eff.name)).map(|sts| {
        let seen = Seen::of(&sts.metadata, ds);
        let seen = with_written(memory, "StatefulSet", ns, &eff.name, seen);
        (seen, StatefulSet::clone(&sts))
    });

    // The account Secret is made at the first contact with the server: its absence
    // matters (and is confirmed) only once the server's pod is ready.
    let server_ready = stateful_set.as_ref().is_some_and(|(_, sts)| pod_ready(sts));
    let (secrets, secrets_absent) = observe_secrets(client, stores, ds, eff, server_ready).await?;
    let percona = observe_percona(client, stores, ds, ns).await?;
    Ok(Observed {
        config_map,
        services,
        network_policy,
        service_monitor,
        secrets,
        secrets_absent,
        stateful_set,
        percona,
    })
}

/// The StatefulSet as the store has it (the status input of a pass that fails
/// before it observes, and of a deletion).
pub fn stored_stateful_set(stores: &Stores, eff: &EffectiveSpec) -> Option<StatefulSet> {
    stores
        .stateful_sets
        .get(&key(&eff.namespace, &names::stateful_set(&eff.name)))
        .map(|s| StatefulSet::clone(&s))
}

fn key<K: Resource<DynamicType = ()>>(ns: &str, name: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(ns)
}

/// A child as the store shows it, or — when the store does not show it yet — as
/// we last wrote it (a store shows every write before any later deletion, so our
/// record is dropped on that deletion and cannot outlive the object).
fn seen_in(
    memory: &Memory,
    kind: &'static str,
    ns: &str,
    name: &str,
    in_store: Option<Seen>,
) -> Option<Seen> {
    match in_store {
        Some(seen) => Some(with_written(memory, kind, ns, name, seen)),
        None => memory
            .written(&ChildKey::new(kind, ns, name))
            .map(|w| Seen {
                uid: w.uid,
                owner: Owner::This,
                applied_hash: Some(w.applied_hash),
            }),
    }
}

/// Our own write is newer than a store that does not show it yet.
fn with_written(memory: &Memory, kind: &'static str, ns: &str, name: &str, mut seen: Seen) -> Seen {
    if let Some(w) = memory.written(&ChildKey::new(kind, ns, name))
        && w.uid == seen.uid
    {
        seen.applied_hash = Some(w.applied_hash);
    }
    seen
}

async fn observe_secrets(
    client: &Client,
    stores: &Stores,
    ds: &DittoServer,
    eff: &EffectiveSpec,
    server_ready: bool,
) -> Result<(BTreeMap<String, SecretSeen>, Vec<String>), ReconcileError> {
    let ns = eff.namespace.as_str();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    // Read: what the pod reads, what validation checks and the operator sends on,
    // and the managed Secrets. Watched only: the managed names, which may exist
    // without being read (released, or the user switched to their own Secret).
    let mut read = eff.referenced_secrets();
    read.extend(eff.checked_secrets());
    let mut managed = Vec::new();
    for s in [&eff.jwt.secret, &eff.admin.password] {
        if s.managed {
            managed.push(s.name.clone());
        }
    }
    let account = names::account_secret(&eff.name);
    if server_ready {
        managed.push(account.clone());
    } else {
        read.push(account.clone());
    }
    read.extend(managed.iter().cloned());
    let mut all = read.clone();
    all.extend([names::jwt_secret(&eff.name), names::admin_secret(&eff.name)]);
    all.sort();
    all.dedup();

    let mut out = BTreeMap::new();
    let mut absent = Vec::new();
    for name in all {
        let in_store = stores
            .secrets
            .get(&ObjectRef::new(&name).within(ns))
            .map(|s| s.metadata.clone());
        let written = stores.memory.written(&ChildKey::new("Secret", ns, &name));
        // The version whose data is wanted: the store's, or (not in the store yet)
        // whatever this process last wrote or read.
        let (seen, version) = match (in_store, written) {
            (Some(meta), _) => {
                let seen = with_written(&stores.memory, "Secret", ns, &name, Seen::of(&meta, ds));
                (seen, meta.resource_version)
            }
            (None, Some(w)) => (
                Seen {
                    uid: w.uid,
                    owner: Owner::This,
                    applied_hash: Some(w.applied_hash),
                },
                None,
            ),
            // Not in the store and not written by us: for a managed Secret, absence
            // is confirmed before a new value is generated over an existing one.
            (None, None) if managed.contains(&name) => {
                match read_secret(&api, stores, ns, &name).await? {
                    Some((meta, _)) => (Seen::of(&meta, ds), meta.resource_version),
                    None => {
                        absent.push(name);
                        continue;
                    }
                }
            }
            (None, None) => continue,
        };
        let read_data = if read.contains(&name) {
            let cached = match &version {
                Some(rv) => stores.secret_data.get(ns, &name, rv),
                None => stores.secret_data.any(ns, &name),
            };
            match cached {
                Some(c) => Some(c),
                None => read_secret(&api, stores, ns, &name).await?.map(|(_, c)| c),
            }
        } else {
            None
        };
        let (data, data_version, secret_type) = match read_data {
            Some(c) => (Some(c.data), Some(c.resource_version), Some(c.secret_type)),
            None => (None, None, None),
        };
        out.insert(
            name,
            SecretSeen {
                seen,
                data,
                data_version,
                secret_type,
            },
        );
    }
    Ok((out, absent))
}

/// Is the server's pod ready (the StatefulSet reports a ready replica)?
pub fn pod_ready(sts: &StatefulSet) -> bool {
    sts.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        > 0
}

/// GET a Secret and cache its data; `None` when it does not exist.
async fn read_secret(
    api: &Api<Secret>,
    stores: &Stores,
    ns: &str,
    name: &str,
) -> Result<Option<(ObjectMeta, CachedSecret)>, ReconcileError> {
    let secret = match api.get(name).await {
        Ok(s) => s,
        Err(e) if api_error::is_absent(&e) => {
            stores.secret_data.remove(ns, name);
            return Ok(None);
        }
        Err(source) => {
            return Err(ReconcileError::Read {
                what: format!("Secret {ns}/{name}"),
                source,
            });
        }
    };
    let cached = CachedSecret::of(&secret);
    stores.secret_data.put(ns, name, cached.clone());
    Ok(Some((secret.metadata, cached)))
}

/// The PerconaPGCluster of `ds`: from the store once it has listed, else one GET
/// (a 404 without a Status body means the CRD is not installed).
pub async fn observe_percona(
    client: &Client,
    stores: &Stores,
    ds: &DittoServer,
    ns: &str,
) -> Result<PerconaSeen, ReconcileError> {
    let name = names::percona_cluster(&ds.name_any());
    let present = |cluster: DynamicObject| {
        let seen = with_written(
            &stores.memory,
            "PerconaPGCluster",
            ns,
            &name,
            Seen::of(cluster.meta(), ds),
        );
        PerconaSeen::Present {
            seen,
            cluster: Box::new(cluster),
        }
    };
    match stores.percona_type() {
        OptionalType::Absent => return Ok(PerconaSeen::TypeAbsent),
        OptionalType::Served => {
            let key = ObjectRef::new_with(&name, api_resource()).within(ns);
            return Ok(match stores.percona.get(&key) {
                Some(c) => present(DynamicObject::clone(&c)),
                None => PerconaSeen::Absent,
            });
        }
        _ => {}
    }
    // The watch has not listed yet: ask once.
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource());
    match api.get(&name).await {
        Ok(c) => Ok(present(c)),
        Err(e) => match api_error::absent(&e) {
            Some(Absent::Type) => Ok(PerconaSeen::TypeAbsent),
            Some(Absent::Object) => Ok(PerconaSeen::Absent),
            None => Err(ReconcileError::Read {
                what: format!("PerconaPGCluster {ns}/{name}"),
                source: e,
            }),
        },
    }
}
