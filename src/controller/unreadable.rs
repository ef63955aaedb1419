//! A stored spec this version cannot read: the status and one event say so, and
//! nothing is applied. On deletion the finalizer is still released (and a Percona
//! cluster kept, since whether the user wanted it deleted cannot be read).

use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::crd::{DittoServer, SpecParseError};

use super::context::Pass;
use super::deletion::release_finalizer;
use super::error::ReconcileError;
use super::events::Reason;
use super::finalizer;
use super::observe::observe_percona;
use super::status;
use super::stored::StoredServer;

/// The pass of an object whose spec failed to parse with `why`.
pub async fn unreadable<L>(
    stored: &StoredServer,
    why: &SpecParseError,
    p: &Pass<'_, L>,
) -> Result<Action, ReconcileError> {
    let deleting = stored.metadata.deletion_timestamp.is_some();
    p.events
        .publish(
            Reason::UnreadableSpec,
            format!("the stored spec cannot be read by this operator version: {why}"),
        )
        .await;
    let written = status::write(p, &stored.metadata, stored.status.as_ref(), |old, now| {
        status::unreadable(
            old,
            stored.metadata.generation,
            &why.to_string(),
            deleting,
            now,
        )
    })
    .await;
    if deleting && finalizer::has_finalizer(&stored.metadata) {
        // Only the metadata is read from here on.
        let ds = DittoServer {
            metadata: stored.metadata.clone(),
            spec: Default::default(),
            status: None,
        };
        let ns = ds.namespace().unwrap_or_default();
        let percona = observe_percona(&p.ctx.client, &p.ctx.stores, &ds, &ns).await?;
        return release_finalizer(&ds, &percona, false, p).await;
    }
    written?;
    Ok(Action::await_change())
}
