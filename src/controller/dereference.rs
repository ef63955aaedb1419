//! Dereference: the only step that reads the cluster before building. Reads the
//! Secrets the pod uses (for the config hash), the managed Secrets' current values,
//! the Percona cluster's state and the live StatefulSet.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject};

use crate::defaults::ADMIN_PASSWORD_KEY;
use crate::effective::{Database, EffectiveSpec};
use crate::resources::percona::api_resource;
use crate::resources::{self, ManagedSecretValues, SecretData};

use super::error::ReconcileError;

/// What the cluster holds for one DittoServer.
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    /// Data of every existing Secret the pod reads (user and Percona pguser).
    pub secrets: SecretData,
    /// Values for the managed Secrets: existing ones kept, missing ones generated.
    pub managed: ManagedSecretValues,
    /// The PerconaPGCluster, when it exists.
    pub percona_cluster: Option<DynamicObject>,
    /// The live StatefulSet, when it exists.
    pub stateful_set: Option<StatefulSet>,
}

impl Dereferenced {
    /// `status.state` of the Percona cluster (`ready`, `initializing`, …).
    pub fn percona_state(&self) -> Option<String> {
        self.percona_cluster.as_ref().map(|c| {
            c.data
                .pointer("/status/state")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_string()
        })
    }
}

fn read_err(what: String) -> impl FnOnce(kube::Error) -> ReconcileError {
    move |source| ReconcileError::Read { what, source }
}

/// Read everything `eff` refers to. A missing Secret is not an error (its absence
/// is hashed, and its creation triggers a new pass); any other read error is, so a
/// transient failure never produces a different hash and a spurious rollout.
pub async fn dereference(
    client: &Client,
    eff: &EffectiveSpec,
) -> Result<Dereferenced, ReconcileError> {
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &eff.namespace);
    let mut out = Dereferenced::default();

    let mut wanted = eff.referenced_secrets();
    if let Database::Percona { secret_name } = &eff.database
        && !wanted.contains(secret_name)
    {
        wanted.push(secret_name.clone());
    }
    for name in wanted {
        let secret = secrets_api
            .get_opt(&name)
            .await
            .map_err(read_err(format!("Secret {name}")))?;
        if let Some(data) = secret.and_then(|s| s.data) {
            out.secrets
                .insert(name, data.into_iter().map(|(k, v)| (k, v.0)).collect());
        }
    }

    // Managed Secrets keep their value forever once created.
    let generated = resources::generate_managed_values()?;
    out.managed = ManagedSecretValues {
        jwt_secret: existing_value(
            &secrets_api,
            eff.jwt.secret.managed,
            &eff.jwt.secret.name,
            &eff.jwt.secret.key,
        )
        .await?
        .unwrap_or(generated.jwt_secret),
        admin_password: existing_value(
            &secrets_api,
            eff.admin.password.managed,
            &eff.admin.password.name,
            ADMIN_PASSWORD_KEY,
        )
        .await?
        .unwrap_or(generated.admin_password),
    };

    if let Some(p) = &eff.percona {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &eff.namespace, &api_resource());
        out.percona_cluster = match api.get_opt(&p.cluster_name).await {
            Ok(c) => c,
            // No CRD (yet): the same as no cluster; validation reports the CRD.
            Err(kube::Error::Api(s)) if s.is_not_found() => None,
            Err(e) => return Err(read_err(format!("PerconaPGCluster {}", p.cluster_name))(e)),
        };
    }

    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &eff.namespace);
    out.stateful_set = sts_api
        .get_opt(&eff.name)
        .await
        .map_err(read_err(format!("StatefulSet {}", eff.name)))?;
    Ok(out)
}

async fn existing_value(
    api: &Api<Secret>,
    managed: bool,
    name: &str,
    key: &str,
) -> Result<Option<String>, ReconcileError> {
    if !managed {
        return Ok(None);
    }
    let secret = api
        .get_opt(name)
        .await
        .map_err(read_err(format!("Secret {name}")))?;
    Ok(secret
        .and_then(|s| s.data)
        .and_then(|d| {
            d.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        })
        .filter(|v| !v.is_empty()))
}
