//! Deletion of a DittoServer: the Deleting status, the Percona cleanup per
//! `deleteWithServer`, then our finalizer — bounded, so an object is never stuck
//! Terminating, except while a database to be kept still carries our owner
//! reference (the garbage collector would take its data). Volumes are always kept.

use std::time::Duration;

use kube::runtime::controller::Action;

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;

use super::context::Pass;
use super::error::ReconcileError;
use super::events::Reason;
use super::finalizer;
use super::observe::{PerconaSeen, observe_percona, stored_stateful_set};
use super::percona::{self, Cleanup, owned_but_to_keep};
use super::status::{self, Facts};

/// After this long in deletion, the finalizer is released whatever cleanup says.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The deletion pass of a readable DittoServer: the Deleting status (same
/// computation as a live pass, written first: once the finalizer goes, so does the
/// object), then [`release_finalizer`].
pub async fn delete<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    p: &Pass<'_, L>,
) -> Result<Action, ReconcileError> {
    if !finalizer::has_finalizer(&ds.metadata) && !p.memory().finalizer_added(&p.server) {
        return Ok(Action::await_change());
    }
    let mut facts = Facts {
        generation: ds.metadata.generation,
        stateful_set: stored_stateful_set(&p.ctx.stores, eff),
        deleting: true,
        ..Default::default()
    };
    let percona = observe_percona(&p.ctx.client, &p.ctx.stores, ds, &eff.namespace).await;
    if let Ok(percona) = &percona {
        facts.percona_state = percona.state();
    }
    if let Err(e) = status::record(p, ds, eff, &facts).await {
        tracing::warn!(error = %e, "cannot write the Deleting status");
    }
    let result = match percona {
        Ok(percona) => release_finalizer(ds, &percona, percona::delete_with_server(eff), p).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        facts.failed = Some(format!("{}: {e}", e.step()));
        if let Err(status_error) = status::record(p, ds, eff, &facts).await {
            tracing::warn!(error = %status_error, "cannot record the failure in status");
        }
    }
    result
}

/// The cleanup of a DittoServer being deleted, readable or not: the Percona
/// cluster per `delete_with_server`, then the finalizer. A cleanup that keeps
/// failing is given up after [`CLEANUP_TIMEOUT`].
pub async fn release_finalizer<L>(
    ds: &DittoServer,
    percona: &PerconaSeen,
    delete_with_server: bool,
    p: &Pass<'_, L>,
) -> Result<Action, ReconcileError> {
    p.events
        .publish(
            Reason::Deleting,
            "DittoServer is being deleted; volumes are kept".into(),
        )
        .await;
    match percona::cleanup(&p.ctx.client, ds, percona, delete_with_server).await {
        Ok(Cleanup::Nothing) => {}
        Ok(Cleanup::Deleted(name)) => {
            p.events
                .publish(
                    Reason::PerconaDeleted,
                    format!("PerconaPGCluster {name} deleted (deleteWithServer: true)"),
                )
                .await;
        }
        Ok(Cleanup::Orphaned(name)) => {
            p.events
                .publish(
                    Reason::PerconaOrphaned,
                    format!(
                        "PerconaPGCluster {name} kept with its data (deleteWithServer is not true)"
                    ),
                )
                .await;
        }
        // Past the bound the finalizer goes, unless a cluster that must be kept still
        // carries our owner reference: the garbage collector would then delete the
        // database with us, so we keep retrying the release instead.
        Err(e)
            if deleting_for(ds) >= CLEANUP_TIMEOUT
                && owned_but_to_keep(ds, percona, delete_with_server) =>
        {
            p.events
                .publish(
                    Reason::CleanupTimeout,
                    // No error text: the note stays the same while this lasts, so it
                    // is one event (the error is in the ReconcileFailed event).
                    format!(
                        "Cleanup did not finish within {}s; the finalizer stays until our \
                         owner reference is removed from the PerconaPGCluster, so that the \
                         garbage collector cannot delete its data",
                        CLEANUP_TIMEOUT.as_secs()
                    ),
                )
                .await;
            return Err(e);
        }
        Err(e) if deleting_for(ds) >= CLEANUP_TIMEOUT => {
            p.events
                .publish(
                    Reason::CleanupTimeout,
                    format!(
                        "Cleanup did not finish within {}s ({e}); releasing the finalizer",
                        CLEANUP_TIMEOUT.as_secs()
                    ),
                )
                .await;
        }
        Err(e) => return Err(e),
    }
    finalizer::remove(&p.raw, &ds.metadata).await?;
    Ok(Action::await_change())
}

/// How long the object has been in deletion.
fn deleting_for(ds: &DittoServer) -> Duration {
    ds.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| jiff::Timestamp::now().duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default()
}
