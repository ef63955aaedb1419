//! Pure builders: one module per generated object, no I/O.
//!
//! The reconciler (and `dittofs-operator render`) calls [`build_all`] with the
//! effective spec and the Secret data it read; everything returned is ready to be
//! server-side applied.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::DynamicObject;

/// Secret data by Secret name, then key. Bytes as stored in the Secret.
pub type SecretData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What the builders need beyond the spec.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    /// Data of every Secret the pod reads (user-referenced, operator-managed and
    /// Percona's pguser Secret), as far as they exist. Input of the config hash.
    pub secrets: SecretData,
    /// Values for the operator-managed Secrets: the existing ones when they exist,
    /// freshly generated otherwise (generation happens outside the builders).
    pub managed: ManagedSecretValues,
}

/// Values of the operator-managed Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedSecretValues {
    /// JWT signing secret (≥ 32 characters).
    pub jwt_secret: String,
    /// Initial admin password.
    pub admin_password: String,
}

/// Every object the operator applies for one DittoServer.
#[derive(Clone, Debug)]
pub struct Children {
    pub config_map: ConfigMap,
    /// Operator-managed Secrets (JWT, admin bootstrap) that the spec calls for.
    pub managed_secrets: Vec<Secret>,
    /// `<name>-file`, `<name>-api`, `<name>-headless`, and `<name>-metrics` when enabled.
    pub services: Vec<Service>,
    pub stateful_set: StatefulSet,
    /// `<name>-postgres` when Percona is enabled.
    pub percona_cluster: Option<DynamicObject>,
    /// The pod-template annotation `dittofs.io/config-hash`.
    pub config_hash: String,
}
