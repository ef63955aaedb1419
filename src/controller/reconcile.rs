//! One reconcile pass, top to bottom (after adding the finalizer, if missing):
//!
//! 1. **observe** — the DittoServer, its children and the Secrets it reads, from
//!    the watch-fed stores (`observe.rs`);
//! 2. **validate** — the resolved spec, once, with the webhook's rules; cluster
//!    questions answered from the observation (`lookup.rs`);
//! 3. **build** — every child, pure (`crate::resources`);
//! 4. **apply** — what is ours and changed; nothing that is not ours (`apply.rs`,
//!    with `percona.rs`);
//! 5. **status** — computed from what was observed and done, whatever failed, and
//!    written only when it differs (`status.rs`).
//!
//! A DittoServer being deleted takes `deletion.rs` instead; one whose stored spec
//! this version cannot read, `unreadable.rs`.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::resources::{self, BuildInputs, Children};
use crate::validation::{ClusterLookup, validate_stored};

use super::apply;
use super::context::{Context, Pass};
use super::deletion;
use super::error::ReconcileError;
use super::events::Reason;
use super::finalizer;
use super::lookup::ObservedLookup;
use super::observe::{Observed, observe, stored_stateful_set};
use super::percona;
use super::status::{self, Facts};
use super::stored::StoredServer;
use super::unreadable::unreadable;

/// Periodic resync of a healthy object.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How often to look again while waiting for Percona.
pub const PERCONA_POLL: Duration = Duration::from_secs(15);
/// How often to look again while a child's name is taken (the other object may
/// not be one we watch).
pub const CONFLICT_POLL: Duration = Duration::from_secs(30);
/// A pass that takes longer (a request that hangs) is abandoned and retried.
pub const PASS_TIMEOUT: Duration = Duration::from_secs(60);

/// Reconcile one DittoServer. Only the lease holder gets here (see `mod.rs`).
pub async fn reconcile<L: ClusterLookup>(
    stored: Arc<StoredServer>,
    ctx: Arc<Context<L>>,
) -> Result<Action, ReconcileError> {
    if !ctx.is_leader() {
        // Lost the lease since this pass was queued: do nothing, at once.
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.start_reconcile();
    match tokio::time::timeout(PASS_TIMEOUT, pass(&stored, &ctx)).await {
        Ok(result) => result,
        Err(_) => Err(ReconcileError::Timeout(PASS_TIMEOUT)),
    }
}

async fn pass<L: ClusterLookup>(
    stored: &StoredServer,
    ctx: &Context<L>,
) -> Result<Action, ReconcileError> {
    let p = Pass::new(stored, ctx);
    let ds = match stored.server() {
        Ok(ds) => ds,
        Err(why) => return unreadable(stored, why, &p).await,
    };
    let eff = EffectiveSpec::resolve(&ds);
    let result = if ds.metadata.deletion_timestamp.is_some() {
        deletion::delete(&ds, &eff, &p).await
    } else {
        let (facts, result) = converge(&ds, &eff, &p).await;
        // 5. The status says what was observed, also when a step failed.
        let status = status::record(&p, &ds, &eff, &facts).await;
        match (result, status) {
            (Ok(action), status) => status.map(|()| action),
            (Err(e), status) => {
                if let Err(status_error) = status {
                    tracing::warn!(error = %status_error, "cannot record the failure in status");
                }
                Err(e)
            }
        }
    };
    match result {
        Ok(action) => {
            p.events.resolved(Reason::ReconcileFailed);
            ctx.memory().reset_backoff(&p.server);
            Ok(action)
        }
        Err(e) => {
            p.events
                .publish(Reason::ReconcileFailed, format!("{} failed: {e}", e.step()))
                .await;
            Err(e)
        }
    }
}

/// Steps 1 to 4. Returns the facts for the status and what to do next.
async fn converge<L: ClusterLookup>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    p: &Pass<'_, L>,
) -> (Facts, Result<Action, ReconcileError>) {
    let mut facts = Facts {
        generation: ds.metadata.generation,
        stateful_set: stored_stateful_set(&p.ctx.stores, eff),
        ..Default::default()
    };
    let failed = |mut facts: Facts, e: ReconcileError| {
        facts.failed = Some(format!("{}: {e}", e.step()));
        (facts, Err(e))
    };
    if let Err(e) = finalizer::add(&p.raw, &ds.metadata, p.memory(), &p.server).await {
        return failed(facts, e);
    }

    // 1. Observe.
    let observed = match observe(&p.ctx.client, &p.ctx.stores, ds, eff).await {
        Ok(observed) => observed,
        Err(e) => return failed(facts, e),
    };
    facts.stateful_set = observed.stateful_set.as_ref().map(|(_, s)| s.clone());
    facts.percona_state = observed.percona.state();

    // 2. Validate, with the webhook's rules (as a stored object: what may no longer be
    // written, or a cluster fact that changed since, does not stop reconciling it).
    let lookup = ObservedLookup {
        observed: &observed,
        namespace: &eff.namespace,
        fallback: &p.ctx.lookup,
    };
    let report = validate_stored(&ds.spec, eff, &lookup).await;
    if !report.is_valid() {
        let message: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        let message = message.join("; ");
        p.events
            .publish(Reason::ValidationFailed, message.clone())
            .await;
        facts.invalid = Some(message);
        // Nothing is applied to an invalid spec, but a database that is no longer to be
        // deleted with the server is released now, not at deletion.
        if let Err(e) = percona::release_if_kept(ds, eff, &observed.percona, p).await {
            return failed(facts, e);
        }
        return (facts, Ok(Action::await_change()));
    }
    p.events.resolved(Reason::ValidationFailed);
    // Warnings are shown to whoever writes the object, at admission; GitOps tools do
    // not show them, and a cluster fact can change later (a deleted StorageClass), so
    // they are also an event, published when they change.
    if report.warnings.is_empty() {
        p.events.resolved(Reason::ValidationWarning);
    } else {
        let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
        p.events
            .publish(Reason::ValidationWarning, warnings.join("; "))
            .await;
    }

    // 3. Build.
    let children = match build(ds, eff, &observed) {
        Ok(children) => children,
        Err(e) => return failed(facts, e),
    };

    // 4. Apply.
    let waiting_for_percona =
        match apply::children(ds, eff, &children, &observed, p, &mut facts).await {
            Ok(waiting) => waiting,
            Err(e) => return failed(facts, e),
        };
    let next = if !facts.conflicts.is_empty() {
        Action::requeue(CONFLICT_POLL)
    } else if waiting_for_percona || (eff.percona.is_some() && !observed.percona.is_ready()) {
        Action::requeue(PERCONA_POLL)
    } else {
        Action::requeue(RESYNC)
    };
    (facts, Ok(next))
}

/// Step 3: every child, from the spec and what was observed (Secret data, and the
/// managed values to keep).
fn build(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    observed: &Observed,
) -> Result<Children, ReconcileError> {
    let inputs = BuildInputs {
        secrets: observed.secret_data(eff),
        managed: observed.managed_values(eff, resources::generate_managed_values()?),
    };
    Ok(resources::build_all(ds, eff, &inputs)?)
}
