//! What to change in a DittoFS server, decided purely from the spec and the live
//! server: create what is missing; change in place only what the server's API
//! changes without losing data (adapter ports and states, a share's `readOnly` and
//! `defaultPermission`, a remote store's keys); report everything else that
//! differs as drift, never fixed by deleting and recreating; leave alone, and list,
//! what the spec does not declare. Snapshot policies hold no data: one that
//! differs is replaced, and one the operator created is removed with its entry.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::crd::{
    IdentityProviderStatus, ItemState, ShareStatus, SnapshotPolicyStatus, StoreStatus,
};
use crate::defaults::DEFAULT_SNAPSHOT_NAME_PREFIX;
use crate::duration::{parse_go_duration_nanos, parse_snapshot_interval};
use crate::effective::*;

use super::api::{
    Adapter, KerberosConfig, LdapConfig, NfsSettings, Share as LiveShare,
    SnapshotPolicy as LivePolicy, Store, UpdateAdapterRequest, UpsertSnapshotPolicyRequest,
};

mod identity;
pub use identity::{KERBEROS, LDAP, RESTARTING, unmanaged_provider};

/// How `status.server.unmanaged` names a snapshot policy: this, then its share.
pub const UNMANAGED_POLICY: &str = "snapshot policy ";

/// The server as read in one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    pub adapters: Vec<Adapter>,
    /// The stored NFS settings (the portmapper follows them at the adapter's start).
    pub nfs_settings: Option<NfsSettings>,
    pub metadata_stores: Vec<Store>,
    pub local_block_stores: Vec<Store>,
    pub remote_block_stores: Vec<Store>,
    pub shares: Vec<LiveShare>,
    pub snapshot_policies: Vec<LivePolicy>,
    /// The LDAP row (`None` inside: not configured); `None`: not read.
    pub ldap: Option<Option<LdapConfig>>,
    /// The Kerberos row, likewise.
    pub kerberos: Option<Option<KerberosConfig>>,
}

/// The data of the Secrets the stores read (name → key → value).
pub type SecretValues = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What the plan knows besides the spec and the live server.
#[derive(Clone, Copy, Debug)]
pub struct Known<'a> {
    /// The portmapper is known to run: the last status recorded it after the NFS
    /// adapter restarted with it on.
    pub portmapper_in_effect: bool,
    /// The data of the Secrets the stores read.
    pub secrets: &'a SecretValues,
    /// The resourceVersion of each of those Secrets.
    pub versions: &'a BTreeMap<String, String>,
    /// The stores as the last status recorded them: which version of its Secret
    /// each was given.
    pub stores: &'a [StoreStatus],
    /// The snapshot policies as the last status recorded them: which the operator
    /// created (`owned`).
    pub snapshot_policies: &'a [SnapshotPolicyStatus],
    /// The identity providers as the last status recorded them.
    pub identity: &'a [IdentityProviderStatus],
    /// The pod runs the StatefulSet's current template: no restart is under way.
    pub pod_current: bool,
}

/// One change, in the order the steps run.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Bring the portmapper to `enabled`: store the setting when it differs
    /// (`store`), and restart the NFS adapter so that it takes effect, unless an
    /// adapter update of this plan restarts it anyway.
    Portmapper {
        enabled: bool,
        store: bool,
        restart_nfs: bool,
    },
    Adapter {
        kind: &'static str,
        change: UpdateAdapterRequest,
    },
    CreateMetadataStore {
        name: String,
        kind: &'static str,
        config: Value,
    },
    /// `tier` is `local` or `remote`.
    CreateBlockStore {
        tier: &'static str,
        name: String,
        kind: &'static str,
        config: Value,
    },
    /// New S3 keys for an existing remote store.
    UpdateBlockStore {
        tier: &'static str,
        name: String,
        config: Value,
    },
    /// The whole LDAP row (applied live).
    PutLdap(LdapConfig),
    /// The whole Kerberos row (applied at the server's next start).
    PutKerberos(KerberosConfig),
    CreateShare(Share),
    UpdateShare {
        name: String,
        read_only: Option<bool>,
        default_permission: Option<String>,
    },
    /// Create or replace a share's snapshot policy; `creates` when the share has
    /// none (the operator then owns it).
    UpsertSnapshotPolicy {
        share: String,
        request: UpsertSnapshotPolicyRequest,
        creates: bool,
    },
    /// Remove a policy the operator created and the spec no longer declares.
    DeleteSnapshotPolicy {
        share: String,
    },
}

impl Step {
    /// The store or share this step is about, as its status names it.
    pub fn subject(&self) -> Option<Subject> {
        match self {
            Step::CreateMetadataStore { name, .. } => {
                Some(Subject::Store("metadata", name.clone()))
            }
            Step::CreateBlockStore { tier, name, .. }
            | Step::UpdateBlockStore { tier, name, .. } => Some(Subject::Store(tier, name.clone())),
            Step::CreateShare(share) => Some(Subject::Share(share.name.clone())),
            Step::UpdateShare { name, .. } => Some(Subject::Share(name.clone())),
            Step::UpsertSnapshotPolicy { share, .. } | Step::DeleteSnapshotPolicy { share } => {
                Some(Subject::SnapshotPolicy(share.clone()))
            }
            Step::PutLdap(_) => Some(Subject::IdentityProvider(LDAP)),
            Step::PutKerberos(_) => Some(Subject::IdentityProvider(KERBEROS)),
            Step::Portmapper { .. } | Step::Adapter { .. } => None,
        }
    }
}

/// A declared store (`metadata`, `local`, `remote`), share, a share's snapshot
/// policy, or an identity provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Store(&'static str, String),
    Share(String),
    SnapshotPolicy(String),
    /// `ldap` or `kerberos`.
    IdentityProvider(&'static str),
}

/// The steps, and each declared item's state if they all succeed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub stores: Vec<StoreStatus>,
    pub shares: Vec<ShareStatus>,
    pub snapshot_policies: Vec<SnapshotPolicyStatus>,
    /// Present in the server, not declared.
    pub unmanaged: Vec<String>,
    /// What differs and is left as it is, one line each.
    pub drift: Vec<String>,
    /// The identity providers the operator keeps, if the steps succeed.
    pub identity_providers: Vec<IdentityProviderStatus>,
}

/// Plan the server of `eff` from `live` and what else is `known`.
pub fn plan(eff: &EffectiveSpec, live: &Live, known: &Known<'_>) -> Plan {
    let portmapper_in_effect = known.portmapper_in_effect;
    let mut plan = Plan::default();
    let adapter_steps = adapters(eff, live);
    let nfs_restarts = adapter_steps
        .iter()
        .any(|s| matches!(s, Step::Adapter { kind: "nfs", change } if change.port.is_some() || change.enabled.is_some()));
    if let Some(settings) = &live.nfs_settings {
        let wanted = eff.server.portmapper;
        if settings.portmapper_enabled != wanted || portmapper_in_effect != wanted {
            plan.steps.push(Step::Portmapper {
                enabled: wanted,
                store: settings.portmapper_enabled != wanted,
                restart_nfs: !nfs_restarts,
            });
        }
    }
    plan.steps.extend(adapter_steps);
    stores(eff, live, known, &mut plan);
    shares(eff, live, &mut plan);
    unmanaged(eff, live, &mut plan);
    snapshot_policies(eff, live, known, &mut plan);
    identity::identity(eff, live, known, &mut plan);
    plan
}

/// The adapters as the spec wants them: NFS on `nfsAdapterPort`, always on; SMB on
/// `smb.adapterPort` when `smb.enabled`, off otherwise.
fn adapters(eff: &EffectiveSpec, live: &Live) -> Vec<Step> {
    let wanted = [
        ("nfs", true, eff.ports.nfs.container),
        (
            "smb",
            eff.ports.smb.is_some(),
            eff.ports.smb.map_or(0, |p| p.container),
        ),
    ];
    let mut steps = Vec::new();
    for (kind, enabled, port) in wanted {
        let Some(adapter) = live.adapters.iter().find(|a| a.kind == kind) else {
            // DittoFS creates both on every start (`store/adapters.go`,
            // `EnsureDefaultAdapters`); a deleted one comes back with the pod.
            continue;
        };
        let change = UpdateAdapterRequest {
            enabled: (adapter.enabled != enabled).then_some(enabled),
            port: (enabled && adapter.port != port).then_some(port),
        };
        if change.enabled.is_some() || change.port.is_some() {
            steps.push(Step::Adapter { kind, change });
        }
    }
    steps
}

fn stores(eff: &EffectiveSpec, live: &Live, known: &Known<'_>, plan: &mut Plan) {
    let secrets = known.secrets;
    for store in &eff.server.metadata_stores {
        let (kind, config) = match &store.kind {
            MetadataStoreKind::Memory => ("memory", Ok(json!({}))),
            MetadataStoreKind::Badger { path } => ("badger", Ok(json!({"path": path}))),
            MetadataStoreKind::Postgres { secret_name } => {
                ("postgres", postgres_config(secret_name, secrets))
            }
        };
        let existing = live.metadata_stores.iter().find(|s| s.name == store.name);
        let status = match (existing, config) {
            (Some(existing), config) => {
                let difference = differs(
                    existing,
                    kind,
                    config.as_ref().ok(),
                    &["path", "db_path", "host", "port", "database", "user"],
                );
                verdict("metadata store", &store.name, difference, plan)
            }
            (None, Ok(config)) => {
                plan.steps.push(Step::CreateMetadataStore {
                    name: store.name.clone(),
                    kind,
                    config,
                });
                (ItemState::Ready, None)
            }
            (None, Err(waiting)) => (ItemState::Pending, Some(waiting)),
        };
        plan.stores
            .push(store_status("metadata", &store.name, status));
    }
    for store in &eff.server.local_block_stores {
        let (kind, config) = match &store.kind {
            LocalBlockStoreKind::Memory => ("memory", json!({})),
            LocalBlockStoreKind::Fs { path } => ("fs", json!({"path": path})),
        };
        let existing = live
            .local_block_stores
            .iter()
            .find(|s| s.name == store.name);
        let status = match existing {
            Some(existing) => {
                let difference = differs(existing, kind, Some(&config), &["path"]);
                verdict("local block store", &store.name, difference, plan)
            }
            None => {
                plan.steps.push(Step::CreateBlockStore {
                    tier: "local",
                    name: store.name.clone(),
                    kind,
                    config,
                });
                (ItemState::Ready, None)
            }
        };
        plan.stores.push(store_status("local", &store.name, status));
    }
    for store in &eff.server.remote_block_stores {
        let (kind, config, secret) = match &store.kind {
            RemoteBlockStoreKind::Memory => ("memory", Ok(json!({})), None),
            RemoteBlockStoreKind::S3(s3) => ("s3", s3_config(s3, secrets), Some(&s3.secret_name)),
        };
        // The version of its Secret the store was last given, and the current one.
        let given = known
            .stores
            .iter()
            .find(|s| s.kind == "remote" && s.name == store.name)
            .and_then(|s| s.secret_version.clone());
        let current = secret.and_then(|name| known.versions.get(name).cloned());
        let existing = live
            .remote_block_stores
            .iter()
            .find(|s| s.name == store.name);
        let mut version = given.clone();
        let status = match (existing, config) {
            (Some(existing), config) => {
                let difference = differs(
                    existing,
                    kind,
                    config.as_ref().ok(),
                    &["bucket", "region", "endpoint", "prefix"],
                );
                // New keys: another access key id, or a Secret changed since the
                // store was last given it (a new secret key alone is not readable
                // back: DittoFS redacts it).
                let rotated = config.as_ref().ok().filter(|c| {
                    difference.is_none()
                        && (c.get("access_key_id") != existing.config.get("access_key_id")
                            || (kind == "s3" && given != current))
                });
                if let Some(config) = rotated {
                    plan.steps.push(Step::UpdateBlockStore {
                        tier: "remote",
                        name: store.name.clone(),
                        config: config.clone(),
                    });
                    version = current.clone();
                }
                verdict("remote block store", &store.name, difference, plan)
            }
            (None, Ok(config)) => {
                plan.steps.push(Step::CreateBlockStore {
                    tier: "remote",
                    name: store.name.clone(),
                    kind,
                    config,
                });
                version = current.clone();
                (ItemState::Ready, None)
            }
            (None, Err(waiting)) => (ItemState::Pending, Some(waiting)),
        };
        let mut status = store_status("remote", &store.name, status);
        status.secret_version = version;
        plan.stores.push(status);
    }
}

/// How an existing store differs from the declared one in what identifies its data
/// (its type and the `keys` of its config), if it does.
fn differs(existing: &Store, kind: &str, wanted: Option<&Value>, keys: &[&str]) -> Option<String> {
    if existing.kind != kind {
        return Some(format!(
            "is of type {} in DittoFS, not {kind}",
            existing.kind
        ));
    }
    let wanted = wanted?;
    let mut out = Vec::new();
    for key in keys {
        let Some(want) = wanted.get(*key) else {
            continue;
        };
        // badger's legacy key (`runtime/init.go`): `db_path` stands for `path`.
        let have = existing.config.get(*key).or_else(|| {
            (*key == "path")
                .then(|| existing.config.get("db_path"))
                .flatten()
        });
        if have != Some(want) {
            out.push(format!(
                "{key} is {} in DittoFS, not {want}",
                have.map_or_else(|| "unset".to_string(), Value::to_string)
            ));
        }
    }
    (!out.is_empty()).then(|| out.join(", "))
}

/// Ready, or Drifted with the difference (also one line of drift).
fn verdict(
    what: &str,
    name: &str,
    difference: Option<String>,
    plan: &mut Plan,
) -> (ItemState, Option<String>) {
    match difference {
        None => (ItemState::Ready, None),
        Some(difference) => {
            let message = format!(
                "{difference}: the operator does not change a store's data location; put the spec back, or move the data with dfsctl and recreate it"
            );
            plan.drift.push(format!("{what} {name} {difference}"));
            (ItemState::Drifted, Some(message))
        }
    }
}

fn store_status(
    kind: &str,
    name: &str,
    (state, message): (ItemState, Option<String>),
) -> StoreStatus {
    StoreStatus {
        kind: kind.to_string(),
        name: name.to_string(),
        state,
        message,
        secret_version: None,
    }
}

/// The data of Secret `name`, or what the plan waits for.
fn secret_of<'a>(
    secrets: &'a SecretValues,
    name: &str,
) -> Result<&'a BTreeMap<String, Vec<u8>>, String> {
    secrets
        .get(name)
        .ok_or_else(|| format!("waiting for Secret {name}"))
}

/// Key `key` of a Secret's data, as text.
fn text_of(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    data.get(key)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Key `key` of Secret `name`, as text, or what the plan waits for.
fn secret_text(secrets: &SecretValues, name: &str, key: &str) -> Result<String, String> {
    text_of(secret_of(secrets, name)?, key).ok_or_else(|| format!("Secret {name} has no key {key}"))
}

/// The connection of a `postgres` metadata store, from its Secret (the keys of the
/// database Secret); `port` as a JSON number, as the store reads it
/// (`runtime/init.go`, `CreateMetadataStoreFromConfig`: a string port is ignored).
fn postgres_config(secret: &str, secrets: &SecretValues) -> Result<Value, String> {
    let data = secret_of(secrets, secret)?;
    let text = |key: &str| text_of(data, key);
    let mut config = Map::new();
    for key in ["host", "database", "user", "password"] {
        let value = text(key).ok_or_else(|| format!("Secret {secret} has no key {key}"))?;
        config.insert(key.to_string(), Value::String(value));
    }
    if let Some(port) = text("port") {
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| format!("Secret {secret} key port is not a port number"))?;
        config.insert("port".into(), json!(port));
    }
    if let Some(sslmode) = text("sslmode") {
        config.insert("sslmode".into(), Value::String(sslmode));
    }
    Ok(Value::Object(config))
}

/// The config of an S3 store (`runtime/shares/service.go`,
/// `CreateRemoteStoreFromConfig`; keys checked by `runtime.ValidateBlockStoreConfig`).
fn s3_config(s3: &S3Store, secrets: &SecretValues) -> Result<Value, String> {
    let key = |key: &str| secret_text(secrets, &s3.secret_name, key);
    let mut config = Map::new();
    config.insert("bucket".into(), json!(s3.bucket));
    config.insert("region".into(), json!(s3.region));
    if let Some(endpoint) = &s3.endpoint {
        config.insert("endpoint".into(), json!(endpoint));
    }
    if let Some(prefix) = &s3.prefix {
        config.insert("prefix".into(), json!(prefix));
    }
    if let Some(path_style) = s3.force_path_style {
        config.insert("force_path_style".into(), json!(path_style));
    }
    if s3.allow_private_endpoint {
        config.insert("allow_private_endpoint".into(), json!(true));
    }
    config.insert("access_key_id".into(), json!(key(&s3.access_key_id_key)?));
    config.insert(
        "secret_access_key".into(),
        json!(key(&s3.secret_access_key_key)?),
    );
    Ok(Value::Object(config))
}

fn shares(eff: &EffectiveSpec, live: &Live, plan: &mut Plan) {
    // The id of a store, by tier and name, and whether it can carry a share now.
    let id_of =
        |stores: &[Store], name: &str| stores.iter().find(|s| s.name == name).map(|s| s.id.clone());
    let usable = |plan: &Plan, tier: &str, name: &str| {
        plan.stores
            .iter()
            .find(|s| s.kind == tier && s.name == name)
            .is_some_and(|s| s.state != ItemState::Pending && s.state != ItemState::Failed)
    };
    for share in &eff.server.shares {
        let existing = live.shares.iter().find(|s| s.name == share.name);
        let status = match existing {
            None => {
                let missing: Vec<String> = [
                    Some(("metadata", &share.metadata_store)),
                    Some(("local", &share.local_block_store)),
                    share.remote_block_store.as_ref().map(|r| ("remote", r)),
                ]
                .into_iter()
                .flatten()
                .filter(|(tier, name)| !usable(plan, tier, name))
                .map(|(tier, name)| format!("{tier} store {name}"))
                .collect();
                if missing.is_empty() {
                    plan.steps.push(Step::CreateShare(share.clone()));
                    (ItemState::Ready, None)
                } else {
                    (
                        ItemState::Pending,
                        Some(format!("waiting for {}", missing.join(", "))),
                    )
                }
            }
            Some(existing) => {
                let mut differences = Vec::new();
                let bindings = [
                    (
                        "metadata store",
                        Some(&share.metadata_store),
                        &live.metadata_stores,
                        Some(&existing.metadata_store_id),
                    ),
                    (
                        "local block store",
                        Some(&share.local_block_store),
                        &live.local_block_stores,
                        Some(&existing.local_block_store_id),
                    ),
                    (
                        "remote block store",
                        share.remote_block_store.as_ref(),
                        &live.remote_block_stores,
                        existing
                            .remote_block_store_id
                            .as_ref()
                            .filter(|id| !id.is_empty()),
                    ),
                ];
                for (what, wanted, stores, have) in bindings {
                    let wanted_id = wanted.and_then(|name| id_of(stores, name));
                    if wanted_id.as_ref() != have {
                        let name_of = |id: Option<&String>| {
                            id.map(|id| {
                                stores
                                    .iter()
                                    .find(|s| &s.id == id)
                                    .map_or_else(|| id.clone(), |s| s.name.clone())
                            })
                            .unwrap_or_else(|| "none".to_string())
                        };
                        differences.push(format!(
                            "uses {what} {} in DittoFS, not {}",
                            name_of(have),
                            wanted.map_or("none", String::as_str)
                        ));
                    }
                }
                if differences.is_empty() {
                    let read_only =
                        (existing.read_only != share.read_only).then_some(share.read_only);
                    let permission = share.default_permission.as_str();
                    let default_permission =
                        (existing.default_permission != permission).then(|| permission.to_string());
                    if read_only.is_some() || default_permission.is_some() {
                        plan.steps.push(Step::UpdateShare {
                            name: share.name.clone(),
                            read_only,
                            default_permission,
                        });
                    }
                    if existing.enabled {
                        (ItemState::Ready, None)
                    } else {
                        let difference =
                            "is disabled in DittoFS (dfsctl share disable)".to_string();
                        plan.drift
                            .push(format!("share {} {difference}", share.name));
                        (
                            ItemState::Drifted,
                            Some(format!(
                                "{difference}: enable it with `dfsctl share enable {}`",
                                share.name
                            )),
                        )
                    }
                } else {
                    let difference = differences.join(", ");
                    plan.drift
                        .push(format!("share {} {difference}", share.name));
                    (
                        ItemState::Drifted,
                        Some(format!(
                            "{difference}: the operator does not move a share between stores (its files stay where they are); put the spec back, or recreate the share with dfsctl"
                        )),
                    )
                }
            }
        };
        let (state, message) = status;
        plan.shares.push(ShareStatus {
            name: share.name.clone(),
            state,
            message,
        });
    }
}

fn unmanaged(eff: &EffectiveSpec, live: &Live, plan: &mut Plan) {
    let server = &eff.server;
    let lists: [(&str, &[Store], Vec<&str>); 3] = [
        (
            "metadata store",
            &live.metadata_stores,
            server
                .metadata_stores
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
        ),
        (
            "local block store",
            &live.local_block_stores,
            server
                .local_block_stores
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
        ),
        (
            "remote block store",
            &live.remote_block_stores,
            server
                .remote_block_stores
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
        ),
    ];
    for (what, stores, declared) in lists {
        for store in stores {
            if !declared.contains(&store.name.as_str()) {
                plan.unmanaged.push(format!("{what} {}", store.name));
            }
        }
    }
    for share in &live.shares {
        if !server.shares.iter().any(|s| s.name == share.name) {
            plan.unmanaged.push(format!("share {}", share.name));
        }
    }
}

/// Each declared policy made as declared, once its share exists (or is made by
/// this plan); each policy the operator created and the spec no longer declares
/// removed; every other policy listed as unmanaged.
fn snapshot_policies(eff: &EffectiveSpec, live: &Live, known: &Known<'_>, plan: &mut Plan) {
    let owned = |share: &str| {
        known
            .snapshot_policies
            .iter()
            .any(|p| p.owned && p.share == share)
    };
    let declared = &eff.server.snapshot_policies;
    for policy in declared {
        let existing = live
            .snapshot_policies
            .iter()
            .find(|p| p.share == policy.share);
        let share_made = live.shares.iter().any(|s| s.name == policy.share)
            || plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::CreateShare(share) if share.name == policy.share));
        let (state, message) = match existing {
            Some(existing) if same_policy(policy, existing) => (ItemState::Ready, None),
            _ if !share_made => (
                ItemState::Pending,
                Some(format!("waiting for share {}", policy.share)),
            ),
            existing => {
                plan.steps.push(Step::UpsertSnapshotPolicy {
                    share: policy.share.clone(),
                    request: upsert_request(policy),
                    creates: existing.is_none(),
                });
                (ItemState::Ready, None)
            }
        };
        plan.snapshot_policies.push(SnapshotPolicyStatus {
            share: policy.share.clone(),
            state,
            message,
            owned: owned(&policy.share),
        });
    }
    for existing in &live.snapshot_policies {
        if declared.iter().any(|p| p.share == existing.share) {
            continue;
        }
        if owned(&existing.share) {
            plan.steps.push(Step::DeleteSnapshotPolicy {
                share: existing.share.clone(),
            });
            // Recorded until removed, so that a pass cut short tries again.
            plan.snapshot_policies.push(SnapshotPolicyStatus {
                share: existing.share.clone(),
                state: ItemState::Pending,
                message: Some("no longer declared: being removed".into()),
                owned: true,
            });
        } else {
            plan.unmanaged
                .push(format!("{UNMANAGED_POLICY}{}", existing.share));
        }
    }
}

/// Does the live policy do what the declared one says? Durations compared as
/// durations (the server answers `24h0m0s` for `@daily`), an empty prefix as the
/// scheduler's default.
fn same_policy(want: &SnapshotPolicy, have: &LivePolicy) -> bool {
    let ttl = |text: Option<&str>| match text.filter(|t| !t.is_empty()) {
        None => Some(0),
        Some(text) => parse_go_duration_nanos(text),
    };
    // The live prefix is left out when empty; the declared one is resolved.
    let have_prefix = match have.name_prefix.as_str() {
        "" => DEFAULT_SNAPSHOT_NAME_PREFIX,
        p => p,
    };
    parse_snapshot_interval(&want.interval).ok() == parse_go_duration_nanos(&have.interval)
        && ttl(want.ttl.as_deref()) == ttl(Some(&have.ttl))
        && i64::from(want.keep_last) == have.keep_last
        && want.enabled == have.enabled
        && want.name_prefix == have_prefix
}

fn upsert_request(policy: &SnapshotPolicy) -> UpsertSnapshotPolicyRequest {
    UpsertSnapshotPolicyRequest {
        interval: policy.interval.clone(),
        keep_last: i64::from(policy.keep_last),
        ttl: policy.ttl.clone().unwrap_or_default(),
        enabled: policy.enabled,
        name_prefix: policy.name_prefix.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::DittoServer;
    use crate::dittofs::api::HealthReport;

    fn eff(spec: serde_json::Value) -> EffectiveSpec {
        let ds: DittoServer = serde_json::from_value(json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
            "metadata": {"name": "d", "namespace": "ns"}, "spec": spec,
        }))
        .expect("DittoServer");
        EffectiveSpec::resolve(&ds)
    }

    /// The spec of [`declared`].
    fn declared_spec() -> Value {
        json!({
            "storage": {"metadataSize": "1Gi", "contentSize": "1Gi"},
            "metadataStores": [{"name": "meta", "type": "badger"}],
            "localBlockStores": [{"name": "blocks", "type": "fs"}],
            "remoteBlockStores": [{"name": "s3", "type": "s3", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "keys"}}}],
            "shares": [{"name": "/export", "metadataStore": "meta", "localBlockStore": "blocks", "remoteBlockStore": "s3", "defaultPermission": "read-write"}],
        })
    }

    fn declared() -> EffectiveSpec {
        eff(declared_spec())
    }

    fn adapter(kind: &str, port: i32, enabled: bool) -> Adapter {
        Adapter {
            kind: kind.into(),
            enabled,
            running: enabled,
            port,
            status: HealthReport::default(),
        }
    }

    /// A server as v0.29 starts: both adapters on, the portmapper off, nothing else.
    fn fresh() -> Live {
        Live {
            adapters: vec![adapter("nfs", 12049, true), adapter("smb", 1445, true)],
            nfs_settings: Some(NfsSettings {
                portmapper_enabled: false,
                portmapper_port: 10111,
            }),
            ..Default::default()
        }
    }

    fn store(id: &str, name: &str, kind: &str, config: Value) -> Store {
        Store {
            id: id.into(),
            name: name.into(),
            kind: kind.into(),
            config,
        }
    }

    /// The plan with nothing known of earlier passes but the portmapper.
    fn plan_with(
        eff: &EffectiveSpec,
        live: &Live,
        in_effect: bool,
        secrets: &SecretValues,
    ) -> Plan {
        plan(
            eff,
            live,
            &Known {
                portmapper_in_effect: in_effect,
                secrets,
                versions: &BTreeMap::new(),
                stores: &[],
                snapshot_policies: &[],
                identity: &[],
                pod_current: true,
            },
        )
    }

    fn keys(id: &str) -> SecretValues {
        [(
            "keys".to_string(),
            [
                ("accessKeyId".to_string(), id.as_bytes().to_vec()),
                ("secretAccessKey".to_string(), b"secret".to_vec()),
            ]
            .into(),
        )]
        .into()
    }

    /// The server once everything declared exists as declared.
    fn converged() -> Live {
        Live {
            adapters: vec![adapter("nfs", 12049, true), adapter("smb", 1445, false)],
            nfs_settings: Some(NfsSettings {
                portmapper_enabled: true,
                portmapper_port: 10111,
            }),
            metadata_stores: vec![store(
                "m1",
                "meta",
                "badger",
                json!({"path": "/data/metadata"}),
            )],
            local_block_stores: vec![store(
                "l1",
                "blocks",
                "fs",
                json!({"path": "/data/content"}),
            )],
            remote_block_stores: vec![store(
                "r1",
                "s3",
                "s3",
                json!({"bucket": "b", "region": "us-east-1", "access_key_id": "AKIA1", "secret_access_key": "********"}),
            )],
            shares: vec![LiveShare {
                id: "s1".into(),
                name: "/export".into(),
                metadata_store_id: "m1".into(),
                local_block_store_id: "l1".into(),
                remote_block_store_id: Some("r1".into()),
                read_only: false,
                enabled: true,
                default_permission: "read-write".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_server_gets_everything_in_order() {
        let plan = plan_with(&declared(), &fresh(), false, &keys("AKIA1"));
        let kinds: Vec<String> = plan
            .steps
            .iter()
            .map(|s| match s {
                Step::Portmapper {
                    enabled,
                    store,
                    restart_nfs,
                } => format!("portmapper {enabled} {store} {restart_nfs}"),
                Step::Adapter { kind, change } => format!("adapter {kind} {change:?}"),
                Step::CreateMetadataStore { name, .. } => format!("metadata {name}"),
                Step::CreateBlockStore { tier, name, .. } => format!("{tier} {name}"),
                Step::UpdateBlockStore { name, .. } => format!("update {name}"),
                Step::CreateShare(s) => format!("share {}", s.name),
                Step::UpdateShare { name, .. } => format!("update share {name}"),
                Step::UpsertSnapshotPolicy { share, .. } => format!("policy {share}"),
                Step::DeleteSnapshotPolicy { share } => format!("remove policy {share}"),
                Step::PutLdap(_) => "ldap".into(),
                Step::PutKerberos(_) => "kerberos".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "portmapper true true true",
                "adapter smb UpdateAdapterRequest { enabled: Some(false), port: None }",
                "metadata meta",
                "local blocks",
                "remote s3",
                "share /export",
            ]
        );
        let Step::CreateBlockStore { config, .. } = &plan.steps[4] else {
            panic!("{:?}", plan.steps[4]);
        };
        assert_eq!(
            config,
            &json!({"bucket": "b", "region": "us-east-1", "access_key_id": "AKIA1", "secret_access_key": "secret"})
        );
        assert!(plan.drift.is_empty() && plan.unmanaged.is_empty());
        assert!(plan.shares.iter().all(|s| s.state == ItemState::Ready));
    }

    #[test]
    fn a_converged_server_needs_nothing() {
        let plan = plan_with(&declared(), &converged(), true, &keys("AKIA1"));
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert!(plan.drift.is_empty());
    }

    #[test]
    fn a_secret_that_moved_on_since_the_store_was_given_it_sends_the_keys_again() {
        let secrets = keys("AKIA1");
        let at = |version: &str| -> BTreeMap<String, String> {
            [("keys".to_string(), version.to_string())].into()
        };
        let given = |version: Option<&str>| StoreStatus {
            kind: "remote".into(),
            name: "s3".into(),
            state: ItemState::Ready,
            message: None,
            secret_version: version.map(str::to_string),
        };
        let plan_given = |versions: &BTreeMap<String, String>, stores: &[StoreStatus]| {
            plan(
                &declared(),
                &converged(),
                &Known {
                    portmapper_in_effect: true,
                    secrets: &secrets,
                    versions,
                    stores,
                    snapshot_policies: &[],
                    identity: &[],
                    pod_current: true,
                },
            )
        };
        // Given version 7 and still at 7: nothing (the secret key cannot be read
        // back to compare).
        let same = plan_given(&at("7"), &[given(Some("7"))]);
        assert!(same.steps.is_empty(), "{:?}", same.steps);
        assert_eq!(same.stores[2].secret_version.as_deref(), Some("7"));
        // The Secret is at 8 now: the keys are sent, and 8 is recorded.
        let rotated = plan_given(&at("8"), &[given(Some("7"))]);
        assert!(matches!(
            rotated.steps.as_slice(),
            [Step::UpdateBlockStore { tier: "remote", name, .. }] if name == "s3"
        ));
        assert_eq!(rotated.stores[2].secret_version.as_deref(), Some("8"));
    }

    #[test]
    fn a_moved_adapter_is_put_back_and_a_port_change_restarts_the_portmapper_with_it() {
        let mut live = converged();
        live.adapters[0].port = 13049;
        let plan = plan_with(&declared(), &live, true, &keys("AKIA1"));
        assert_eq!(
            plan.steps,
            [Step::Adapter {
                kind: "nfs",
                change: UpdateAdapterRequest {
                    enabled: None,
                    port: Some(12049)
                }
            }]
        );
        // The portmapper stored but not yet in effect: the port change restarts it.
        let mut live = converged();
        live.adapters[0].port = 13049;
        let plan = plan_with(&declared(), &live, false, &keys("AKIA1"));
        assert!(matches!(
            plan.steps[0],
            Step::Portmapper {
                enabled: true,
                store: false,
                restart_nfs: false
            }
        ));
    }

    #[test]
    fn in_place_changes_and_drift() {
        let mut live = converged();
        live.shares[0].read_only = true;
        live.shares[0].default_permission = "none".into();
        live.metadata_stores[0].config = json!({"db_path": "/data/metadata/other"});
        live.remote_block_stores[0].config["access_key_id"] = json!("AKIA0");
        let plan = plan_with(&declared(), &live, true, &keys("AKIA1"));
        assert!(plan.steps.contains(&Step::UpdateShare {
            name: "/export".into(),
            read_only: Some(false),
            default_permission: Some("read-write".into()),
        }));
        assert!(
            plan.steps
                .iter()
                .any(|s| matches!(s, Step::UpdateBlockStore { name, .. } if name == "s3")),
            "rotated keys are pushed"
        );
        assert_eq!(
            plan.drift,
            [
                "metadata store meta path is \"/data/metadata/other\" in DittoFS, not \"/data/metadata\""
            ]
        );
        let meta = &plan.stores[0];
        assert_eq!(meta.state, ItemState::Drifted);
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::CreateMetadataStore { .. })),
            "never recreated"
        );
    }

    #[test]
    fn a_share_on_other_stores_is_drift_and_undeclared_items_are_listed() {
        let mut live = converged();
        live.local_block_stores
            .push(store("l2", "other", "memory", json!({})));
        live.shares[0].local_block_store_id = "l2".into();
        live.shares.push(LiveShare {
            name: "/scratch".into(),
            id: "s2".into(),
            ..live.shares[0].clone()
        });
        let plan = plan_with(&declared(), &live, true, &keys("AKIA1"));
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert_eq!(plan.shares[0].state, ItemState::Drifted);
        assert!(
            plan.drift[0].contains("uses local block store other in DittoFS, not blocks"),
            "{:?}",
            plan.drift
        );
        assert_eq!(
            plan.unmanaged,
            ["local block store other", "share /scratch"]
        );
    }

    #[test]
    fn a_share_waits_for_a_store_that_waits_for_its_secret() {
        let plan = plan_with(&declared(), &fresh(), false, &SecretValues::new());
        assert_eq!(plan.stores[2].state, ItemState::Pending);
        assert_eq!(
            plan.stores[2].message.as_deref(),
            Some("waiting for Secret keys")
        );
        assert_eq!(plan.shares[0].state, ItemState::Pending);
        assert!(!plan.steps.iter().any(|s| matches!(s, Step::CreateShare(_))));
    }

    #[test]
    fn a_postgres_store_gets_its_port_as_a_number() {
        let secrets: SecretValues = [(
            "pg".to_string(),
            [
                ("host", "h"),
                ("port", "5433"),
                ("database", "d"),
                ("user", "u"),
                ("password", "p"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        )]
        .into();
        assert_eq!(
            postgres_config("pg", &secrets),
            Ok(json!({"host": "h", "port": 5433, "database": "d", "user": "u", "password": "p"}))
        );
    }

    // ------------------------------------------------------------ snapshot policies

    /// `declared()` with these snapshot policies.
    fn with_policies(policies: Value) -> EffectiveSpec {
        let mut spec = declared_spec();
        spec["snapshotPolicies"] = policies;
        eff(spec)
    }

    /// A policy as v0.29 lists it.
    fn live_policy(share: &str, interval: &str, keep_last: i64) -> LivePolicy {
        LivePolicy {
            share: share.into(),
            enabled: true,
            interval: interval.into(),
            keep_last,
            ttl: String::new(),
            name_prefix: String::new(),
        }
    }

    fn owned(share: &str) -> SnapshotPolicyStatus {
        SnapshotPolicyStatus {
            share: share.into(),
            state: ItemState::Ready,
            message: None,
            owned: true,
        }
    }

    fn plan_knowing(eff: &EffectiveSpec, live: &Live, policies: &[SnapshotPolicyStatus]) -> Plan {
        let secrets = keys("AKIA1");
        plan(
            eff,
            live,
            &Known {
                portmapper_in_effect: true,
                secrets: &secrets,
                versions: &BTreeMap::new(),
                stores: &[],
                snapshot_policies: policies,
                identity: &[],
                pod_current: true,
            },
        )
    }

    fn policy_steps(plan: &Plan) -> Vec<&Step> {
        plan.steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::UpsertSnapshotPolicy { .. } | Step::DeleteSnapshotPolicy { .. }
                )
            })
            .collect()
    }

    #[test]
    fn a_policy_is_made_after_its_share_and_its_request_is_the_spec() {
        let eff = with_policies(json!([{"share": "export", "interval": "@daily", "keepLast": 7}]));
        let plan = plan_knowing(&eff, &fresh(), &[]);
        let last = plan.steps.last().expect("steps");
        assert!(
            matches!(plan.steps[plan.steps.len() - 2], Step::CreateShare(ref s) if s.name == "/export"),
            "the share first: {:?}",
            plan.steps
        );
        assert_eq!(
            last,
            &Step::UpsertSnapshotPolicy {
                share: "/export".into(),
                request: UpsertSnapshotPolicyRequest {
                    interval: "@daily".into(),
                    keep_last: 7,
                    ttl: String::new(),
                    enabled: true,
                    name_prefix: "scheduled".into(),
                },
                creates: true,
            }
        );
        assert_eq!(
            plan.snapshot_policies,
            [SnapshotPolicyStatus {
                share: "/export".into(),
                state: ItemState::Ready,
                message: None,
                owned: false,
            }],
            "owned once the server accepted it, not before"
        );
    }

    #[test]
    fn a_converged_policy_needs_nothing_whatever_the_spelling() {
        let eff = with_policies(
            json!([{"share": "/export", "interval": "@DAILY", "ttl": "720h", "keepLast": 7}]),
        );
        let mut live = converged();
        let mut policy = live_policy("/export", "24h0m0s", 7);
        policy.ttl = "720h0m0s".into();
        live.snapshot_policies.push(policy);
        let plan = plan_knowing(&eff, &live, &[owned("/export")]);
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert_eq!(plan.snapshot_policies, [owned("/export")]);
        assert!(plan.unmanaged.is_empty());
        // An explicit prefix equal to the scheduler's default, a zero TTL: the same.
        let eff = with_policies(
            json!([{"share": "/export", "interval": "1440m", "ttl": "0", "keepLast": 7, "namePrefix": "scheduled"}]),
        );
        let mut live = converged();
        live.snapshot_policies
            .push(live_policy("/export", "24h0m0s", 7));
        assert!(plan_knowing(&eff, &live, &[]).steps.is_empty());
    }

    #[test]
    fn a_changed_policy_is_replaced() {
        let mut live = converged();
        live.snapshot_policies
            .push(live_policy("/export", "24h0m0s", 7));
        for change in [
            json!({"interval": "@hourly"}),
            json!({"keepLast": 3}),
            json!({"ttl": "1h"}),
            json!({"enabled": false}),
            json!({"namePrefix": "nightly"}),
        ] {
            let mut policy = json!({"share": "/export", "interval": "@daily", "keepLast": 7});
            for (k, v) in change.as_object().expect("object") {
                policy[k] = v.clone();
            }
            let plan = plan_knowing(&with_policies(json!([policy])), &live, &[owned("/export")]);
            assert!(
                matches!(
                    policy_steps(&plan).as_slice(),
                    [Step::UpsertSnapshotPolicy { share, creates: false, .. }] if share == "/export"
                ),
                "{change}: {:?}",
                plan.steps
            );
            assert!(plan.snapshot_policies[0].owned, "still owned");
        }
    }

    #[test]
    fn a_policy_the_operator_made_leaves_with_its_entry_and_others_stay() {
        let mut live = converged();
        live.shares.push(LiveShare {
            name: "/scratch".into(),
            id: "s2".into(),
            ..live.shares[0].clone()
        });
        live.snapshot_policies
            .push(live_policy("/export", "24h0m0s", 7));
        live.snapshot_policies
            .push(live_policy("/scratch", "1h0m0s", 0));
        // The spec declares no policy any more; the operator made /export's.
        let plan = plan_knowing(&declared(), &live, &[owned("/export")]);
        assert_eq!(
            policy_steps(&plan),
            [&Step::DeleteSnapshotPolicy {
                share: "/export".into()
            }]
        );
        assert_eq!(plan.snapshot_policies[0].share, "/export");
        assert_eq!(plan.snapshot_policies[0].state, ItemState::Pending);
        assert!(plan.snapshot_policies[0].owned);
        assert_eq!(
            plan.unmanaged,
            ["share /scratch", "snapshot policy /scratch"]
        );
        // Never removed when the operator did not make it (no status, or not owned).
        for known in [
            vec![],
            vec![SnapshotPolicyStatus {
                owned: false,
                ..owned("/export")
            }],
        ] {
            let plan = plan_knowing(&declared(), &live, &known);
            assert!(policy_steps(&plan).is_empty(), "{:?}", plan.steps);
            assert!(
                plan.unmanaged
                    .contains(&"snapshot policy /export".to_string())
            );
        }
        // Already gone from the server: nothing to do, and forgotten.
        let plan = plan_knowing(&declared(), &converged(), &[owned("/export")]);
        assert!(plan.steps.is_empty() && plan.snapshot_policies.is_empty());
    }

    #[test]
    fn a_policy_waits_for_a_share_that_waits() {
        let eff = with_policies(json!([{"share": "/export", "interval": "@daily"}]));
        // No keys for the S3 store: the store waits, so does the share, so does the policy.
        let plan = plan(
            &eff,
            &fresh(),
            &Known {
                portmapper_in_effect: false,
                secrets: &SecretValues::new(),
                versions: &BTreeMap::new(),
                stores: &[],
                snapshot_policies: &[],
                identity: &[],
                pod_current: true,
            },
        );
        assert!(policy_steps(&plan).is_empty());
        assert_eq!(plan.snapshot_policies[0].state, ItemState::Pending);
        assert_eq!(
            plan.snapshot_policies[0].message.as_deref(),
            Some("waiting for share /export")
        );
    }
}
