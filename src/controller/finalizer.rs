//! Finalizer `dittofs.dittofs.com/finalizer` and the bounded deletion cleanup.
//!
//! The finalizer is added and removed with JSON patches whose `test` operations
//! guard the exact list entry, not the resourceVersion: a status write in between
//! can never make the removal fail forever (the Go operator's stuck-Terminating bug).

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::crd::DittoServer;
use crate::names;
use crate::resources::labels::MANAGED_BY;
use crate::resources::percona::api_resource;

use super::error::ReconcileError;

/// Our finalizer.
pub const FINALIZER: &str = "dittofs.dittofs.com/finalizer";
/// After this long in deletion, the finalizer is released whatever cleanup says.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Does the object carry our finalizer?
pub fn has_finalizer(ds: &DittoServer) -> bool {
    ds.finalizers().iter().any(|f| f == FINALIZER)
}

/// Add our finalizer (no-op when present).
pub async fn add(api: &Api<DittoServer>, ds: &DittoServer) -> Result<(), ReconcileError> {
    if has_finalizer(ds) {
        return Ok(());
    }
    let ops = match ds.meta().finalizers.as_ref() {
        // `test` against null: nobody added a list since we looked.
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        Some(list) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    json_patch(api, &ds.name_any(), ops)
        .await
        .map_err(ReconcileError::Finalizer)
}

/// Remove our finalizer (no-op when absent).
pub async fn remove(api: &Api<DittoServer>, ds: &DittoServer) -> Result<(), ReconcileError> {
    let Some(index) = ds.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let ops = json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    match json_patch(api, &ds.name_any(), ops).await {
        Ok(()) => Ok(()),
        // Already gone: the object is deleted, nothing left to release.
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(ReconcileError::Finalizer(e)),
    }
}

async fn json_patch(
    api: &Api<DittoServer>,
    name: &str,
    ops: serde_json::Value,
) -> Result<(), kube::Error> {
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map(|_| ())
}

/// What the Percona cleanup did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerconaCleanup {
    /// No cluster of ours exists.
    Nothing,
    /// Deleted (`deleteWithServer: true`).
    Deleted(String),
    /// Left in place with no owner reference of ours (`deleteWithServer: false`).
    Orphaned(String),
}

/// Delete or orphan the PerconaPGCluster we created, per `deleteWithServer`. Runs
/// whether or not Percona is still enabled, so disabling it first cannot hand the
/// database to the garbage collector. A cluster we did not create is never touched.
pub async fn cleanup_percona(
    client: &kube::Client,
    ds: &DittoServer,
) -> Result<PerconaCleanup, ReconcileError> {
    let ns = ds.namespace().unwrap_or_else(|| "default".into());
    let name = names::percona_cluster(&ds.name_any());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    let cluster = match api.get_opt(&name).await {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(PerconaCleanup::Nothing),
        // No Percona CRD: nothing of ours can exist.
        Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(PerconaCleanup::Nothing),
        Err(e) => return Err(ReconcileError::Cleanup(e)),
    };
    let labels = cluster.labels();
    let ours = labels
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some(MANAGED_BY)
        && labels.get("app.kubernetes.io/instance") == Some(&ds.name_any());
    if !ours {
        return Ok(PerconaCleanup::Nothing);
    }
    let percona = ds.spec.percona.clone().unwrap_or_default();
    let delete = percona.enabled == Some(true) && percona.delete_with_server == Some(true);
    if delete {
        return match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(PerconaCleanup::Deleted(name)),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(PerconaCleanup::Deleted(name)),
            Err(e) => Err(ReconcileError::Cleanup(e)),
        };
    }
    let uid = ds.uid().unwrap_or_default();
    let refs = cluster.owner_references();
    if refs.iter().any(|r| r.uid == uid) {
        let kept: Vec<_> = refs.iter().filter(|r| r.uid != uid).cloned().collect();
        let ops = json!([
            {"op": "test", "path": "/metadata/ownerReferences", "value": refs},
            {"op": "replace", "path": "/metadata/ownerReferences", "value": kept},
        ]);
        let patch: json_patch::Patch =
            serde_json::from_value(ops).map_err(|e| ReconcileError::Serialize {
                what: "owner reference patch".into(),
                message: e.to_string(),
            })?;
        api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(ReconcileError::Cleanup)?;
    }
    Ok(PerconaCleanup::Orphaned(name))
}
