//! The one validation core, shared by the validating webhook, the reconciler and
//! the offline CLI.
//!
//! Pure rules judge the [`EffectiveSpec`] (and the old object on UPDATE); cluster
//! facts come through [`ClusterLookup`], whose answers may be "unknown" (turned into
//! warnings) or "skipped" (offline CLI), never a hang.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use crate::crd::{DittoServer, DittoServerSpec};
use crate::effective::EffectiveSpec;

mod cluster;
pub mod immutable;
pub(crate) mod pod_security;
mod rules;
mod server;
#[cfg(test)]
mod tests;

pub use cluster::{MIN_JWT_SECRET_BYTES, POSTGRES_SECRET_KEYS};
pub use rules::{CONTROL_PLANE_DIR, is_valid_size};

/// One finding: the field path it is about, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// JSON-ish field path, e.g. `spec.storage.metadataSize`.
    pub field: String,
    /// Human message naming the problem and the fix.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects findings in order.
#[derive(Default)]
pub(crate) struct Findings {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Findings {
    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(Finding::new(field, message));
    }
    pub(crate) fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.warnings.push(Finding::new(field, message));
    }
}

impl Finding {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Finding {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// The outcome of validation. Errors reject; warnings are reported but allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// Cluster checks that could not run (offline CLI), as field paths + what was skipped.
    pub skipped: Vec<Finding>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The answer to one cluster question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The fact is known.
    Found(T),
    /// The object does not exist.
    NotFound,
    /// The question could not be answered (timeout, forbidden, API error): the reason.
    Unknown(String),
    /// No cluster to ask (offline CLI).
    Skipped,
}

/// What the rules may know of a Secret: each key and the length in bytes of its
/// value. Never the value itself, so no finding can leak it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretFacts {
    pub value_lengths: BTreeMap<String, usize>,
    /// The Secret's `type` (`Opaque` when it has none); `None` when not known.
    pub secret_type: Option<String>,
}

impl SecretFacts {
    /// Facts from a Secret's `data` (and `stringData`, as a CREATE may carry it).
    pub fn of(secret: &k8s_openapi::api::core::v1::Secret) -> Self {
        let mut value_lengths: BTreeMap<String, usize> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.len()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            value_lengths.insert(k.clone(), v.len());
        }
        Self {
            value_lengths,
            secret_type: Some(secret.type_.clone().unwrap_or_else(|| "Opaque".into())),
        }
    }

    pub fn has_key(&self, key: &str) -> bool {
        self.value_lengths.contains_key(key)
    }
}

/// Cluster facts the rules need. Implementations must answer promptly (from a
/// cache, or bounded by a short timeout).
pub trait ClusterLookup: Send + Sync {
    /// Does StorageClass `name` exist?
    fn storage_class(&self, name: &str) -> impl Future<Output = Lookup<()>> + Send;
    /// What may be known of Secret `namespace/name`: its keys and value lengths.
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Lookup<SecretFacts>> + Send;
    /// Is the PerconaPGCluster CRD (`pgv2.percona.com/v2`) served?
    fn percona_crd(&self) -> impl Future<Output = Lookup<()>> + Send;
    /// Is the Prometheus Operator's ServiceMonitor CRD (`monitoring.coreos.com/v1`)
    /// served?
    fn service_monitor_crd(&self) -> impl Future<Output = Lookup<()>> + Send;
}

/// A lookup with no cluster: every question is skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offline;

impl ClusterLookup for Offline {
    async fn storage_class(&self, _name: &str) -> Lookup<()> {
        Lookup::Skipped
    }
    async fn secret(&self, _namespace: &str, _name: &str) -> Lookup<SecretFacts> {
        Lookup::Skipped
    }
    async fn percona_crd(&self) -> Lookup<()> {
        Lookup::Skipped
    }
    async fn service_monitor_crd(&self) -> Lookup<()> {
        Lookup::Skipped
    }
}

/// What is being judged. Most rules do not care; the ones that do are those about
/// a value being written (refused when written, tolerated when already stored) and
/// the cluster lookups (only for what an UPDATE changes).
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// A new object: admission CREATE, or a file checked offline. Every rule and
    /// every cluster lookup.
    Create,
    /// An admission UPDATE from `old` (resolved): the transition rules too; cluster
    /// lookups only for the fields that changed, so a fact that changed in the
    /// cluster since (a deleted StorageClass) never blocks an unrelated edit.
    Update(&'a EffectiveSpec),
    /// An object already stored, judged by the reconciler: every rule and lookup, but
    /// a value that may no longer be written yet must not make an existing object
    /// unreconcilable (`identity.admin.username`) is a warning.
    Stored,
}

/// Validate `new` (and the transition from `old` on UPDATE).
pub async fn validate<L: ClusterLookup>(
    new: &DittoServer,
    old: Option<&DittoServer>,
    lookup: &L,
) -> Report {
    let eff = EffectiveSpec::resolve(new);
    let old = old.map(EffectiveSpec::resolve);
    validate_effective(&new.spec, &eff, old.as_ref(), lookup).await
}

/// Validate a spec already resolved into `eff` (and the transition from `old`, the
/// resolved old object, on UPDATE; `None` is a CREATE). For callers that resolve
/// once and reuse it.
pub async fn validate_effective<L: ClusterLookup>(
    spec: &DittoServerSpec,
    eff: &EffectiveSpec,
    old: Option<&EffectiveSpec>,
    lookup: &L,
) -> Report {
    let subject = match old {
        Some(old) => Subject::Update(old),
        None => Subject::Create,
    };
    judge(spec, eff, subject, lookup).await
}

/// Validate an object that is already stored (the reconciler's view): like a
/// CREATE, except that values an existing object may keep are warnings.
pub async fn validate_stored<L: ClusterLookup>(
    spec: &DittoServerSpec,
    eff: &EffectiveSpec,
    lookup: &L,
) -> Report {
    judge(spec, eff, Subject::Stored, lookup).await
}

/// Every rule for `subject`.
pub async fn judge<L: ClusterLookup>(
    spec: &DittoServerSpec,
    eff: &EffectiveSpec,
    subject: Subject<'_>,
    lookup: &L,
) -> Report {
    let mut findings = Findings::default();
    rules::check_spec(spec, eff, &mut findings);
    server::check(spec, eff, &mut findings);
    pod_security::check(eff, &mut findings);
    rules::check_grace_period(eff, &mut findings);
    rules::check_written(eff, subject, &mut findings);
    if let Subject::Update(old) = subject {
        immutable::check(eff, old, &mut findings);
    }
    let mut skipped = Vec::new();
    cluster::check_cluster(eff, subject, lookup, &mut findings, &mut skipped).await;
    Report {
        errors: findings.errors,
        warnings: findings.warnings,
        skipped,
    }
}
