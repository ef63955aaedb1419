//! Server-side apply of children, skipped when nothing changed.
//!
//! Each applied body carries `dittofs.io/applied-hash`, the SHA-256 of the body we
//! meant to apply. A pass whose desired body hashes to what the live object carries
//! sends no write at all, so a resync with nothing changed costs only reads.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::ReconcileError;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "dittofs-operator";
/// Annotation holding the hash of the last applied body.
pub const APPLIED_HASH_ANNOTATION: &str = "dittofs.io/applied-hash";

/// What an apply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// Apply `desired` (named `name`) unless the live object already carries its hash.
pub async fn apply<K>(api: &Api<K>, mut desired: K, what: &str) -> Result<Applied, ReconcileError>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.name_any();
    let body = serde_json::to_vec(&desired).map_err(|e| ReconcileError::Serialize {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    let hash = hex::encode(Sha256::digest(&body));
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());

    let live = api
        .get_opt(&name)
        .await
        .map_err(|source| ReconcileError::Read {
            what: what.to_string(),
            source,
        })?;
    if live
        .as_ref()
        .is_some_and(|l| l.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash))
    {
        return Ok(Applied::Unchanged);
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(|source| ReconcileError::Apply {
        what: what.to_string(),
        source,
    })?;
    Ok(if live.is_some() {
        Applied::Updated
    } else {
        Applied::Created
    })
}

/// Delete `name` if it exists and is controlled by the object with `owner_uid`;
/// objects we do not own are never touched. Returns whether it deleted.
pub async fn delete_if_owned<K>(
    api: &Api<K>,
    name: &str,
    owner_uid: &str,
    what: &str,
) -> Result<bool, ReconcileError>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let live = api
        .get_opt(name)
        .await
        .map_err(|source| ReconcileError::Read {
            what: what.to_string(),
            source,
        })?;
    let owned = live.is_some_and(|l| {
        l.owner_references()
            .iter()
            .any(|r| r.uid == owner_uid && r.controller == Some(true))
    });
    if !owned {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(false),
        Err(source) => Err(ReconcileError::Delete {
            what: what.to_string(),
            source,
        }),
    }
}
