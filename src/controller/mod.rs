//! The reconciler: a kube-runtime `Controller` for DittoServers.
//!
//! Pipeline per object (see `reconcile.rs`): dereference → validate (the shared
//! core) → build (pure builders) → apply (server-side apply, skipped when
//! unchanged) → status. Only the Lease holder reconciles; `run` stops the
//! Controller the moment leadership is lost and starts it again when regained.

pub mod apply;
pub mod context;
pub mod dereference;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod reconcile;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::probes::ReadinessGate;
use crate::resources::labels::MANAGED_BY;
use crate::resources::percona::api_resource;
use crate::validation::ClusterLookup;

pub use context::{Context, ControllerMetrics};
pub use error::ReconcileError;

/// Name of our CRD, waited for before the Controller starts.
pub const CRD_NAME: &str = "dittoservers.dittofs.dittofs.com";

/// Command-line arguments of the reconciler (shared by `controller` and `run`).
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// DittoServers reconciled at the same time.
    #[arg(long, default_value_t = 8, env = "DITTOFS_CONCURRENCY")]
    pub concurrency: u16,
    /// Name reported on events (the Deployment's name).
    #[arg(long, default_value = "dittofs-operator")]
    pub reporter: String,
}

/// Label selector of every child we create.
fn ours() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"))
}

/// Run until `shutdown`. Reconciles only while `leader` is true.
pub async fn run<L: ClusterLookup + 'static>(
    client: Client,
    args: ControllerArgs,
    lookup: L,
    leader: watch::Receiver<bool>,
    ready: ReadinessGate,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
) {
    if !wait_for_crd(&client, &shutdown).await {
        return;
    }
    ready.set_ready(true);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: args.reporter.clone(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        recorder,
        lookup,
        leader.clone(),
        metrics,
    ));
    let mut leader = leader;
    loop {
        tokio::select! {
            changed = leader.wait_for(|l| *l) => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
        tracing::info!("leading: starting the DittoServer controller");
        let mut lost = leader.clone();
        let stop_token = shutdown.clone();
        let stop = async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => tracing::warn!("lease lost: stopping the controller"),
                () = stop_token.cancelled() => {}
            }
        };
        run_controller(&client, &args, ctx.clone(), stop).await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

async fn run_controller<L: ClusterLookup + 'static>(
    client: &Client,
    args: &ControllerArgs,
    ctx: Arc<Context<L>>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let servers: Api<DittoServer> = Api::all(client.clone());
    let controller = Controller::new(servers, watcher::Config::default().any_semantic())
        .owns(Api::<ConfigMap>::all(client.clone()), ours())
        .owns(Api::<Service>::all(client.clone()), ours())
        .owns(Api::<StatefulSet>::all(client.clone()), ours())
        .owns(Api::<Secret>::all(client.clone()), ours())
        .with_config(controller::Config::default().concurrency(args.concurrency));
    let store = controller.store();
    let ctx_metrics = ctx.metrics.clone();
    controller
        // A referenced user Secret changed: reconcile every server that reads it.
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            move |secret| servers_reading(&store, &secret),
        )
        // Percona clusters we created (no owner reference unless deleteWithServer):
        // mapped back by label. Until the Percona CRD exists this watch retries
        // with backoff, so installing Percona later needs no operator restart.
        .watches_with(
            Api::<DynamicObject>::all_with(client.clone(), &api_resource()),
            api_resource(),
            ours(),
            |cluster| {
                let instance = cluster.labels().get("app.kubernetes.io/instance").cloned();
                let ns = cluster.namespace();
                instance
                    .zip(ns)
                    .map(|(name, ns)| ObjectRef::new(&name).within(&ns))
            },
        )
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| {
            match result {
                Ok((obj, _)) => {
                    ctx_metrics.record("ok", "none");
                    tracing::debug!(object = %obj, "reconciled");
                }
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(object = %obj, step = e.step(), error = %e, "reconcile failed");
                }
                // Watch errors (e.g. no Percona CRD yet) are retried with backoff.
                Err(e) => tracing::debug!(error = %e, "controller trigger error"),
            }
            futures::future::ready(())
        })
        .await;
}

/// DittoServers in the Secret's namespace that reference it.
fn servers_reading(store: &Store<DittoServer>, secret: &Secret) -> Vec<ObjectRef<DittoServer>> {
    let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|ds| ds.namespace().as_deref() == Some(ns.as_str()))
        .filter(|ds| {
            let eff = EffectiveSpec::resolve(ds);
            eff.referenced_secrets().contains(&name)
        })
        .map(|ds| ObjectRef::from(ds.as_ref()))
        .collect()
}

/// Retry policy: conflicts at once, deletions every 5 s (the cleanup bound is
/// 60 s), everything else with per-object exponential backoff capped at 5 min.
pub fn error_policy<L>(ds: Arc<DittoServer>, err: &ReconcileError, ctx: Arc<Context<L>>) -> Action {
    ctx.metrics.record("error", err.step());
    if err.is_conflict() {
        return Action::requeue(Duration::from_millis(200));
    }
    if ds.metadata.deletion_timestamp.is_some() {
        return Action::requeue(Duration::from_secs(5));
    }
    Action::requeue(ctx.next_backoff(&ds))
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
