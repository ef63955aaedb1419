//! The reconciler: a kube-runtime `Controller` for DittoServers.
//!
//! The pass, in the order it runs:
//! - `reconcile.rs`: the driver of one pass, observe → validate → build → apply →
//!   status; `finalizer.rs` adds our finalizer first;
//! - `observe.rs` (what the cluster holds, judged by `ownership.rs`), `lookup.rs`
//!   (the validation core's cluster questions, answered from it), `apply.rs` (the
//!   children, through `write.rs`; the database through `percona.rs`), `status.rs`;
//! - `deletion.rs` and `unreadable.rs`: the passes of an object being deleted, and
//!   of one whose spec this version cannot read.
//!
//! What every pass shares: `context.rs` (the client, stores, metrics; a pass's own
//! `Pass`), `watches.rs` (the watch-fed stores, on every replica), `stored.rs` (a
//! DittoServer as the watch delivers it), `memory.rs` (our own recent writes the
//! stores may not show yet, backoff, events), `events.rs`, `error.rs`.
//!
//! Only the Lease holder reconciles. A leadership term runs a Controller over the
//! warm stores; losing the Lease drops it at once (in-flight passes are cancelled,
//! so no write of ours can follow a successor's); shutting down lets in-flight
//! passes finish, and only then is the Lease released.

pub mod apply;
pub mod context;
pub mod deletion;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod lookup;
pub mod memory;
pub mod observe;
pub mod ownership;
pub mod percona;
pub mod poll;
pub mod reconcile;
pub mod scoped;
pub mod server;
pub mod status;
pub mod stored;
pub mod unreadable;
pub mod watches;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::probes::ReadinessGate;
use crate::validation::ClusterLookup;

pub use context::{Context, ControllerMetrics};
pub use error::ReconcileError;
pub use stored::StoredServer;
pub use watches::{Stores, Triggers};

/// Name of our CRD, waited for before the Controller starts.
pub const CRD_NAME: &str = "dittoservers.dittofs.dittofs.com";
/// A failed pass of an object being deleted is retried this soon, whatever its
/// backoff was: deletion must never wait minutes.
pub const DELETION_RETRY: Duration = Duration::from_secs(2);
/// A guard that lost a race is retried this soon.
pub const PRECONDITION_RETRY: Duration = Duration::from_millis(200);

/// Command-line arguments of the reconciler (shared by `controller` and `run`).
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// DittoServers reconciled at the same time.
    #[arg(long, default_value_t = 8, env = "DITTOFS_CONCURRENCY")]
    pub concurrency: u16,
    /// Triggers for one DittoServer arriving within this window are merged into
    /// one pass (Go duration).
    #[arg(long, default_value = "500ms", value_parser = crate::duration::parse_duration_arg)]
    pub debounce: Duration,
    /// Name reported on events (the Deployment's name).
    #[arg(long, default_value = "dittofs-operator")]
    pub reporter: String,
    /// How often each running DittoFS server is read for changes made by hand (an
    /// adapter moved, a share deleted with dfsctl): one request per server per
    /// interval, spread over it (Go duration).
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse_duration_arg, env = "DITTOFS_POLL_INTERVAL")]
    pub poll_interval: Duration,
    #[command(flatten)]
    pub scope: crate::scope::ScopeArgs,
}

/// Run until `shutdown`. Reconciles only while `leader` is true. `stopped` is
/// cancelled once no pass can run any more (the Lease may then be released).
/// `dittofs` reaches the DittoFS servers (the system resolver in production).
#[allow(clippy::too_many_arguments)]
pub async fn run<L: ClusterLookup + 'static>(
    client: Client,
    dittofs: crate::dittofs::Client,
    args: ControllerArgs,
    lookup: L,
    leader: watch::Receiver<bool>,
    ready: ReadinessGate,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
    stopped: CancellationToken,
) {
    let _stopped = stopped.drop_guard();
    if !wait_for_crd(&client, &shutdown).await {
        return;
    }
    let triggers = Triggers::default();
    let scope = args.scope.scope();
    tracing::info!(scope = %scope.describe(), "serving DittoServers");
    let stores = Stores::start(&client, &scope, triggers.clone(), &shutdown);
    tokio::select! {
        () = stores.synced() => {}
        () = shutdown.cancelled() => return,
    }
    tracing::info!("watch caches synced");
    ready.set_ready(true);
    let reporter = Reporter {
        controller: args.reporter.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client,
        reporter,
        lookup,
        leader.clone(),
        stores,
        metrics,
        dittofs,
        args.poll_interval,
    ));
    let mut leader = leader;
    loop {
        tokio::select! {
            changed = leader.wait_for(|l| *l) => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
        tracing::info!("leading: starting the DittoServer controller");
        let mut lost = leader.clone();
        tokio::select! {
            () = run_term(ctx.clone(), &triggers, &args, shutdown.clone()) => {}
            _ = lost.wait_for(|l| !*l) => {
                // Dropping the term cancels every in-flight pass at its next await.
                tracing::warn!("lease lost: in-flight passes cancelled, controller stopped");
            }
        }
        triggers.unsubscribe();
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// One leadership term: reconcile everything once, then whatever the watches
/// trigger, until `shutdown` (in-flight passes finish first).
async fn run_term<L: ClusterLookup + 'static>(
    ctx: Arc<Context<L>>,
    triggers: &Triggers,
    args: &ControllerArgs,
    shutdown: CancellationToken,
) {
    let metrics = ctx.metrics.clone();
    let poll = poll::run(ctx.clone(), triggers.clone());
    let controller = Controller::for_stream(futures::stream::pending(), ctx.stores.servers.clone())
        .reconcile_all_on(futures::stream::once(async {}))
        .reconcile_on(triggers.subscribe())
        .with_config(
            controller::Config::default()
                .concurrency(args.concurrency)
                .debounce(args.debounce),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| {
            match result {
                Ok((obj, _)) => {
                    metrics.record("ok", "none");
                    tracing::debug!(object = %obj, "reconciled");
                }
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(object = %obj, step = e.step(), error = %e, "reconcile failed");
                }
                // A trigger for an object already gone, and the like.
                Err(e) => tracing::debug!(error = %e, "controller"),
            }
            futures::future::ready(())
        });
    // The poll runs as long as the term; it ends with the Controller.
    tokio::select! {
        () = controller => {}
        () = poll => {}
    }
}

/// Retry policy: a lost race at once; an object being deleted within
/// [`DELETION_RETRY`]; anything else with per-object exponential backoff (5 s … 5 min).
pub fn error_policy<L>(
    stored: Arc<StoredServer>,
    err: &ReconcileError,
    ctx: Arc<Context<L>>,
) -> Action {
    ctx.metrics.record("error", err.step());
    if err.is_conflict() {
        return Action::requeue(PRECONDITION_RETRY);
    }
    if stored.metadata.deletion_timestamp.is_some() {
        return Action::requeue(DELETION_RETRY);
    }
    Action::requeue(ctx.memory().next_backoff(&ObjectRef::from(&*stored)))
}

/// Wait until our CRD is established; false when shut down first.
async fn wait_for_crd(client: &Client, shutdown: &CancellationToken) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut logged = false;
    loop {
        let established = match api.get_opt(CRD_NAME).await {
            Ok(Some(crd)) => crd.status.and_then(|s| s.conditions).is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            }),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the DittoServer CRD");
                false
            }
        };
        if established {
            return true;
        }
        if !logged {
            tracing::info!(
                crd = CRD_NAME,
                "waiting for the CRD to be established (install it with `dittofs-operator crd | kubectl apply -f -`)"
            );
            logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = shutdown.cancelled() => return false,
        }
    }
}
