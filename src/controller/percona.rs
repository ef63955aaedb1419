//! The PerconaPGCluster `<name>-postgres`: kept in line while Percona is enabled,
//! and kept with its data unless the spec says to delete it with the server.
//!
//! It carries our owner reference only while both `percona.enabled` and
//! `deleteWithServer` are true: otherwise nothing (no garbage collection, no
//! foreground deletion) can ever take the database with the DittoServer. Every
//! path that finds our reference on a cluster to be kept removes it, also while
//! the spec is invalid, and at deletion.

use kube::api::{Api, DeleteParams, DynamicObject, Preconditions};
use kube::{Resource, ResourceExt};

use crate::api_error;
use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::names;
use crate::resources::Children;
use crate::resources::percona::api_resource;

use super::context::Pass;
use super::error::ReconcileError;
use super::events::Reason;
use super::memory::ChildKey;
use super::observe::{Observed, PerconaSeen};
use super::ownership::owned_by;
use super::status::Facts;
use super::write::{Known, apply, release};

/// Keep the PerconaPGCluster in line (step 4, before the StatefulSet). Returns
/// whether the StatefulSet must wait for the database.
pub async fn apply_cluster<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    children: &Children,
    observed: &Observed,
    p: &Pass<'_, L>,
    facts: &mut Facts,
    changed: &mut Vec<String>,
) -> Result<bool, ReconcileError> {
    let ns = eff.namespace.as_str();
    let name = names::percona_cluster(&eff.name);
    let key = ChildKey::new("PerconaPGCluster", ns, &name);
    let api: Api<DynamicObject> = Api::namespaced_with(p.ctx.client.clone(), ns, &api_resource());

    let Some(desired) = children.percona_cluster.clone() else {
        // Percona turned off: a cluster we created stays, and is no longer ours to
        // delete.
        if release_if_kept(ds, eff, &observed.percona, p).await? {
            changed.push(format!(
                "{key} (kept with its data; no longer owned: percona is off)"
            ));
        }
        return Ok(false);
    };

    let known = match &observed.percona {
        PerconaSeen::Present { seen, .. } => Known::Exists(seen),
        // The store (or a fresh read) of a served type says it does not exist.
        PerconaSeen::Absent | PerconaSeen::TypeAbsent => Known::NotInStore,
    };
    let applied = apply(&api, &key, desired, known, ds, p.memory()).await?;
    applied.note(&key, changed, &mut facts.conflicts);
    let live = applied.live().cloned().or_else(|| match &observed.percona {
        PerconaSeen::Present { cluster, .. } => Some(DynamicObject::clone(cluster)),
        _ => None,
    });
    if let Some(live) = &live
        && !delete_with_server(eff)
        && owned_by(live.meta(), ds)
    {
        release(&api, &key, ds, false).await?;
    }

    let state = live.as_ref().and_then(|c| {
        c.data
            .pointer("/status/state")
            .and_then(|s| s.as_str())
            .map(str::to_string)
    });
    facts.percona_state = live.as_ref().map(|_| state.clone().unwrap_or_default());
    if state.as_deref() == Some("ready") {
        p.events.resolved(Reason::PerconaNotReady);
        return Ok(false);
    }
    p.events
        .publish(
            Reason::PerconaNotReady,
            format!(
                "Waiting for PostgreSQL cluster {name} (state: {})",
                state.unwrap_or_else(|| "not created yet".into())
            ),
        )
        .await;
    // A running server keeps running; only a first creation waits.
    Ok(observed.stateful_set.is_none())
}

/// Remove our owner reference from a PerconaPGCluster of ours that is not to be
/// deleted with the server (`deleteWithServer` not true, or Percona turned off).
/// Returns whether it was released.
pub async fn release_if_kept<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    percona: &PerconaSeen,
    p: &Pass<'_, L>,
) -> Result<bool, ReconcileError> {
    if !owned_but_to_keep(ds, percona, delete_with_server(eff)) {
        return Ok(false);
    }
    let ns = eff.namespace.as_str();
    let key = ChildKey::new("PerconaPGCluster", ns, &names::percona_cluster(&eff.name));
    let api: Api<DynamicObject> = Api::namespaced_with(p.ctx.client.clone(), ns, &api_resource());
    release(&api, &key, ds, false).await
}

/// Is there a PerconaPGCluster that a deletion must clean up (delete, or release
/// from our owner reference)? Percona enabled, or a cluster carrying our owner
/// reference: only then does the DittoServer need our finalizer.
pub fn needs_cleanup(ds: &DittoServer, eff: &EffectiveSpec, percona: &PerconaSeen) -> bool {
    eff.percona.is_some()
        || matches!(percona, PerconaSeen::Present { seen, cluster }
            if seen.is_ours() && owned_by(cluster.meta(), ds))
}

/// Is the cluster to be deleted with the server? Only with Percona enabled and
/// `deleteWithServer: true`.
pub fn delete_with_server(eff: &EffectiveSpec) -> bool {
    eff.percona.as_ref().is_some_and(|p| p.delete_with_server)
}

/// A PerconaPGCluster that is to be kept (`deleteWithServer` not true) but still
/// carries our owner reference, as last observed.
pub fn owned_but_to_keep(
    ds: &DittoServer,
    percona: &PerconaSeen,
    delete_with_server: bool,
) -> bool {
    !delete_with_server
        && matches!(percona, PerconaSeen::Present { seen, cluster }
            if seen.is_ours() && owned_by(cluster.meta(), ds))
}

/// What the deletion cleanup did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// No cluster of ours exists.
    Nothing,
    /// Deleted (`deleteWithServer: true`).
    Deleted(String),
    /// Left in place with no owner reference of ours.
    Orphaned(String),
}

/// At deletion, delete or keep the PerconaPGCluster we created. It is deleted only
/// when the spec says so (`delete_with_server`); in every other case — including a
/// spec this version cannot read — it is kept, without our owner reference. A
/// cluster that is not ours is never touched.
pub async fn cleanup(
    client: &kube::Client,
    ds: &DittoServer,
    percona: &PerconaSeen,
    delete_with_server: bool,
) -> Result<Cleanup, ReconcileError> {
    let PerconaSeen::Present { seen, cluster } = percona else {
        return Ok(Cleanup::Nothing);
    };
    if !seen.is_ours() {
        return Ok(Cleanup::Nothing);
    }
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    if delete_with_server {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(seen.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        return match api.delete(&name, &params).await {
            Ok(_) => Ok(Cleanup::Deleted(name)),
            Err(e) if api_error::is_absent(&e) => Ok(Cleanup::Deleted(name)),
            Err(e) => Err(ReconcileError::Cleanup(e)),
        };
    }
    let key = ChildKey::new("PerconaPGCluster", &ns, &name);
    release(&api, &key, ds, false).await?;
    Ok(Cleanup::Orphaned(name))
}
