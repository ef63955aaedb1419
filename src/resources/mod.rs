//! Pure builders: one module per generated object, no I/O.
//!
//! The reconciler (and `dittofs-operator render`) calls [`build_all`] with the
//! effective spec and the Secret data it read; everything returned is ready to be
//! server-side applied.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use thiserror::Error;

use crate::crd::{DittoServer, ServerStatus};
use crate::effective::EffectiveSpec;

pub mod configmap;
pub mod hash;
pub mod labels;
pub mod network_policy;
pub mod percona;
pub mod secrets;
pub mod service;
pub mod service_monitor;
pub mod statefulset;
#[cfg(test)]
mod tests;

pub use secrets::generate_managed_values;
pub use statefulset::CONFIG_HASH_ANNOTATION;

/// Why the objects could not be built.
#[derive(Debug, Error)]
pub enum BuildError {
    /// Serializing a generated object failed.
    #[error("cannot serialize {object}: {message}")]
    Serialize {
        object: &'static str,
        message: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

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
    /// The DittoFS server as last read (`status.server`): the ports its adapters
    /// listen on. `None` before it was first read.
    pub server: Option<ServerStatus>,
    /// The operator account's Secret, from the first contact with the server on.
    pub account: Option<AccountValues>,
}

/// Values of the operator-managed Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedSecretValues {
    /// JWT signing secret (≥ 32 characters).
    pub jwt_secret: String,
    /// Initial admin password.
    pub admin_password: String,
    /// The password of the operator's DittoFS account.
    pub account_password: String,
}

/// What the account Secret keeps besides its password.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountValues {
    /// A refresh token and when it was obtained (RFC 3339), once one was kept.
    pub refresh: Option<(String, String)>,
}

/// Every object the operator applies for one DittoServer.
#[derive(Clone, Debug)]
pub struct Children {
    pub config_map: ConfigMap,
    /// Operator-managed Secrets the pod reads (JWT, admin bootstrap) that the spec
    /// calls for.
    pub managed_secrets: Vec<Secret>,
    /// The operator's account Secret (not read by the pod), once the server was
    /// reached.
    pub account_secret: Option<Secret>,
    /// `<name>-file`, `<name>-api`, `<name>-headless`, and `<name>-metrics` when enabled.
    pub services: Vec<Service>,
    /// `<name>-ingress`, unless `networkPolicy.enabled` is false: ingress to the
    /// server pod on the ports the Services target.
    pub network_policy: Option<NetworkPolicy>,
    pub stateful_set: StatefulSet,
    /// `<name>-metrics` (a Prometheus Operator ServiceMonitor) when metrics and
    /// `metrics.serviceMonitor.enabled` are on.
    pub service_monitor: Option<DynamicObject>,
    /// `<name>-postgres` when Percona is enabled.
    pub percona_cluster: Option<DynamicObject>,
    /// The pod-template annotation `dittofs.io/config-hash`.
    pub config_hash: String,
}

/// The digest of the Kerberos settings the operator last wrote to the server, as
/// the status records it: while the operator keeps Kerberos in the server
/// (enabled, or turned off by it), the pod template carries it.
pub fn kerberos_written(server: Option<&ServerStatus>) -> Option<&str> {
    server?
        .identity_providers
        .iter()
        .find(|p| p.provider_type == crate::crd::IdentityProviderStatus::KERBEROS)?
        .written_digest
        .as_deref()
}

/// Build every object for one DittoServer. Pure: the same inputs give the same
/// objects, byte for byte.
pub fn build_all(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    inputs: &BuildInputs,
) -> Result<Children, BuildError> {
    let config_yaml = configmap::render_config(eff)?;
    let config_map = configmap::build_config_map(ds, eff, &config_yaml);
    let managed_secrets = secrets::build_managed_secrets(eff, &inputs.managed);

    // Hash the Secret data the pod will really see: what exists, with the managed
    // Secrets as we are about to apply them.
    let mut hashed = inputs.secrets.clone();
    for s in &managed_secrets {
        if let (Some(name), Some(data)) = (&s.metadata.name, &s.data) {
            hashed.insert(
                name.clone(),
                data.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
            );
        }
    }
    let kerberos_written = kerberos_written(inputs.server.as_ref());
    let unhashed = statefulset::build_stateful_set(ds, eff, "", kerberos_written);
    let template =
        serde_json::to_vec(&unhashed.spec.as_ref().map(|s| &s.template)).map_err(|e| {
            BuildError::Serialize {
                object: "pod template",
                message: e.to_string(),
            }
        })?;
    let hashed_config = configmap::hashed_config(eff)?;
    let config_hash = hash::config_hash(
        hashed_config.as_deref().unwrap_or(&config_yaml),
        &hashed,
        &template,
    );
    let services = service::build_services(ds, eff, inputs.server.as_ref());

    Ok(Children {
        config_map,
        managed_secrets,
        account_secret: inputs
            .account
            .as_ref()
            .map(|account| secrets::build_account_secret(eff, &inputs.managed, account)),
        network_policy: eff
            .network_policy
            .then(|| network_policy::build_network_policy(ds, eff, &services)),
        services,
        service_monitor: eff.metrics.as_ref().and_then(|m| {
            m.service_monitor
                .as_ref()
                .map(|monitor| service_monitor::build_service_monitor(ds, eff, m, monitor))
        }),
        stateful_set: statefulset::build_stateful_set(ds, eff, &config_hash, kerberos_written),
        percona_cluster: eff
            .percona
            .as_ref()
            .map(|p| percona::build_percona_cluster(ds, eff, p)),
        config_hash,
    })
}
