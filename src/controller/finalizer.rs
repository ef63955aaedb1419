//! Our finalizer (`dittofs.dittofs.com/finalizer`): added and removed.
//!
//! The finalizer is added and removed with JSON patches whose `test` operations
//! guard what they change (the whole list when adding, the one entry at its index
//! when removing), so nobody else's finalizer is ever lost. The object the
//! pass starts from may be stale (the watch cache trails the API server): when a
//! guard fails, the object is read again and the patch retried at once — a stale
//! cache costs one extra request, never a backoff.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::api_error::{self, is_guard_failure};
use crate::names::FINALIZER;

use super::error::ReconcileError;
use super::memory::Memory;
use super::stored::ServerRef;

/// Attempts of a guarded finalizer patch (a fresh read between attempts).
const ATTEMPTS: usize = 3;

/// Does the object carry our finalizer?
pub fn has_finalizer(meta: &ObjectMeta) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Our finalizer on the object while `needed`, off it otherwise.
pub async fn hold(
    api: &Api<DynamicObject>,
    meta: &ObjectMeta,
    needed: bool,
    memory: &Memory,
    server: &ServerRef,
) -> Result<(), ReconcileError> {
    if needed {
        add(api, meta, memory, server).await
    } else if has_finalizer(meta) {
        remove(api, meta).await
    } else {
        Ok(())
    }
}

/// Add our finalizer unless the object (or our memory of the last pass) has it.
/// `api` is `stored::raw_api`.
pub async fn add(
    api: &Api<DynamicObject>,
    meta: &ObjectMeta,
    memory: &Memory,
    server: &ServerRef,
) -> Result<(), ReconcileError> {
    if has_finalizer(meta) || memory.finalizer_added(server) {
        return Ok(());
    }
    let mut current = meta.clone();
    for attempt in 1..=ATTEMPTS {
        let ops = match current.finalizers.as_ref() {
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
        match json_patch(api, meta, ops).await {
            Ok(()) => {
                memory.finalizer_was_added(server, meta.uid.as_deref());
                return Ok(());
            }
            // Deleted meanwhile: nothing to guard.
            Err(e) if api_error::is_absent(&e) => return Ok(()),
            Err(e) if is_guard_failure(&e) && attempt < ATTEMPTS => {
                current = match fresh(api, meta).await? {
                    Some(meta) => meta,
                    None => return Ok(()),
                };
                // Being deleted: a finalizer can no longer be added (the deletion
                // pass takes over), or it is there already.
                if has_finalizer(&current) || current.deletion_timestamp.is_some() {
                    return Ok(());
                }
            }
            Err(e) => return Err(ReconcileError::Finalizer(e)),
        }
    }
    Ok(())
}

/// Remove our finalizer (no-op when absent). `api` is `stored::raw_api`.
pub async fn remove(api: &Api<DynamicObject>, meta: &ObjectMeta) -> Result<(), ReconcileError> {
    let mut current = meta.clone();
    for attempt in 1..=ATTEMPTS {
        let finalizers = current.finalizers.clone().unwrap_or_default();
        let Some(index) = finalizers.iter().position(|f| f == FINALIZER) else {
            return Ok(());
        };
        let path = format!("/metadata/finalizers/{index}");
        let ops = json!([
            {"op": "test", "path": path, "value": FINALIZER},
            {"op": "remove", "path": path},
        ]);
        match json_patch(api, meta, ops).await {
            Ok(()) => return Ok(()),
            // Already gone: the object is deleted, nothing left to release.
            Err(e) if api_error::is_absent(&e) => return Ok(()),
            Err(e) if is_guard_failure(&e) && attempt < ATTEMPTS => {
                current = match fresh(api, meta).await? {
                    Some(meta) => meta,
                    None => return Ok(()),
                };
            }
            Err(e) => return Err(ReconcileError::Finalizer(e)),
        }
    }
    Ok(())
}

/// The object's metadata as the API server has it now; `None` once it is gone
/// (or replaced by another object with the same name).
async fn fresh(
    api: &Api<DynamicObject>,
    meta: &ObjectMeta,
) -> Result<Option<ObjectMeta>, ReconcileError> {
    let name = meta.name.as_deref().unwrap_or_default();
    match api.get(name).await {
        Ok(obj) if obj.metadata.uid == meta.uid => Ok(Some(obj.metadata)),
        Ok(_) => Ok(None),
        Err(e) if api_error::is_absent(&e) => Ok(None),
        Err(e) => Err(ReconcileError::Finalizer(e)),
    }
}

async fn json_patch(
    api: &Api<DynamicObject>,
    meta: &ObjectMeta,
    ops: serde_json::Value,
) -> Result<(), kube::Error> {
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    let name = meta.name.as_deref().unwrap_or_default();
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map(|_| ())
}
