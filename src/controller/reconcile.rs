//! One reconcile pass, top to bottom:
//!
//! 1. **observe** — the DittoServer, its children and the Secrets it reads, from
//!    the watch-fed stores (`observe.rs`);
//! 2. **validate** — the resolved spec, once, with the webhook's rules; cluster
//!    questions answered from the observation (`lookup.rs`);
//! 3. **build** — every child, pure (`crate::resources`);
//! 4. **apply** — the cluster's objects, what is ours and changed, nothing that is
//!    not ours (`apply.rs`, with `percona.rs`); then the DittoFS server through its
//!    REST API, when its pod is ready and something may have changed (`server.rs`);
//! 5. **status** — computed from what was observed and done, whatever failed, and
//!    written only when it differs (`status.rs`).
//!
//! A DittoServer being deleted takes `deletion.rs` instead; one whose stored spec
//! this version cannot read, `unreadable.rs`.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;

use crate::crd::{DittoServer, ServerStatus};
use crate::effective::EffectiveSpec;
use crate::resources::{self, AccountValues, BuildInputs, Children};
use crate::validation::{ClusterLookup, validate_stored};

use super::apply;
use super::context::{Context, Pass};
use super::deletion;
use super::error::ReconcileError;
use super::events::Reason;
use super::finalizer;
use super::lookup::ObservedLookup;
use super::observe::{Observed, observe, pod_ready, stored_stateful_set};
use super::percona;
use super::server;
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

    // 1. Observe.
    let observed = match observe(&p.ctx.client, &p.ctx.stores, ds, eff).await {
        Ok(observed) => observed,
        Err(e) => return failed(facts, e),
    };
    facts.stateful_set = observed.stateful_set.as_ref().map(|(_, s)| s.clone());
    facts.percona_state = observed.percona.state();

    // The finalizer guards the one cleanup there is: a PerconaPGCluster to release
    // or delete. It is on while one may need it, and only then.
    let needed = percona::needs_cleanup(ds, eff, &observed.percona);
    if let Err(e) = finalizer::hold(&p.raw, &ds.metadata, needed, p.memory(), &p.server).await {
        return failed(facts, e);
    }

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

    // 3. Build, from the spec, what was observed, and the server as last read.
    let last_server = p
        .memory()
        .written_status(&p.server)
        .or_else(|| ds.status.clone())
        .and_then(|s| s.server);
    let children = match build(ds, eff, &observed, last_server.clone(), p) {
        Ok(children) => children,
        Err(e) => return failed(facts, e),
    };

    // 4. Apply: the cluster's objects, then the server's configuration.
    let waiting_for_percona =
        match apply::children(ds, eff, &children, &observed, p, &mut facts).await {
            Ok(waiting) => waiting,
            Err(e) => return failed(facts, e),
        };
    let server = server::configure(ds, eff, &observed, &children, last_server.as_ref(), p).await;
    let server_again = server.again_in;
    facts.server = Some(server);

    let next = if !facts.conflicts.is_empty() {
        CONFLICT_POLL
    } else if waiting_for_percona || (eff.percona.is_some() && !observed.percona.is_ready()) {
        PERCONA_POLL
    } else {
        RESYNC
    };
    let next = server_again.map_or(next, |again| again.min(next));
    (facts, Ok(Action::requeue(next)))
}

/// Step 3: every child, from the spec and what was observed (Secret data, the
/// managed values to keep), and the server as last read (`server`: the ports its
/// adapters listen on).
fn build<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    observed: &Observed,
    server: Option<ServerStatus>,
    p: &Pass<'_, L>,
) -> Result<Children, ReconcileError> {
    // The account Secret is made at the first contact with the server (its pod
    // ready), and kept from then on.
    let contact = observed.has_account_secret(eff)
        || observed
            .stateful_set
            .as_ref()
            .is_some_and(|(_, sts)| pod_ready(sts));
    let account = contact.then(|| AccountValues {
        refresh: p
            .memory()
            .server_side(&p.server)
            .refresh_to_keep
            .map(|(token, obtained)| (token.expose().to_string(), obtained))
            .or_else(|| observed.kept_refresh(eff)),
    });
    let inputs = BuildInputs {
        secrets: observed.secret_data(eff),
        managed: observed.managed_values(eff, resources::generate_managed_values()?),
        server,
        account,
    };
    Ok(resources::build_all(ds, eff, &inputs)?)
}
