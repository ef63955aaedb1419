//! One reconcile pass: dereference → validate → build → apply → status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::crd::{DittoServer, DittoServerStatus, Phase};
use crate::effective::EffectiveSpec;
use crate::names;
use crate::resources::percona::api_resource;
use crate::resources::{self, BuildInputs, CONFIG_HASH_ANNOTATION};
use crate::validation::{ClusterLookup, validate};

use super::apply::{Applied, apply, delete_if_owned};
use super::context::Context;
use super::dereference::dereference;
use super::error::ReconcileError;
use super::events::{Reason, publish};
use super::finalizer::{self, CLEANUP_TIMEOUT, PerconaCleanup};
use super::status::{self, Observed};

/// Periodic resync of a healthy object.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How often to look again while waiting for Percona.
pub const PERCONA_POLL: Duration = Duration::from_secs(15);

/// Reconcile one DittoServer. Only the lease holder gets here (see `mod.rs`).
pub async fn reconcile<L: ClusterLookup>(
    ds: Arc<DittoServer>,
    ctx: Arc<Context<L>>,
) -> Result<Action, ReconcileError> {
    if !ctx.is_leader() {
        // Lost the lease since this pass was queued: do nothing, at once.
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.start_reconcile();
    let ns = ds.namespace().unwrap_or_else(|| "default".into());
    let api: Api<DittoServer> = Api::namespaced(ctx.client.clone(), &ns);

    if ds.meta().deletion_timestamp.is_some() {
        return cleanup(&ds, &ctx, &api).await;
    }
    finalizer::add(&api, &ds).await?;

    match apply_all(&ds, &ctx, &api).await {
        Ok(action) => {
            ctx.reset_backoff(&ds);
            Ok(action)
        }
        Err(e) => {
            publish(
                &ctx.recorder,
                &ds.object_ref(&()),
                Reason::ReconcileFailed,
                format!("{} failed: {e}", e.step()),
            )
            .await;
            // Best effort: show the failure in status (Degraded) before retrying.
            let eff = EffectiveSpec::resolve(&ds);
            let obs = Observed {
                generation: ds.meta().generation,
                failed: Some(format!("{}: {e}", e.step())),
                stateful_set: None,
                ..Default::default()
            };
            if let Err(status_err) = write_status(&api, &ds, &eff, &obs).await {
                tracing::warn!(error = %status_err, "cannot record the failure in status");
            }
            Err(e)
        }
    }
}

async fn apply_all<L: ClusterLookup>(
    ds: &DittoServer,
    ctx: &Context<L>,
    api: &Api<DittoServer>,
) -> Result<Action, ReconcileError> {
    let eff = EffectiveSpec::resolve(ds);
    let reference = ds.object_ref(&());
    let old_status = ds.status.as_ref();

    // Validate with the same core as the webhook: an object that bypassed the
    // webhook is reported and left alone (no child touched).
    let report = validate(ds, None, &ctx.lookup).await;
    if !report.is_valid() {
        let message: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        let message = message.join("; ");
        let already = old_status
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == status::CONFIG_READY)
            })
            .is_some_and(|c| c.status == "False" && c.message == message);
        if !already {
            publish(
                &ctx.recorder,
                &reference,
                Reason::ValidationFailed,
                message.clone(),
            )
            .await;
        }
        let obs = Observed {
            generation: ds.meta().generation,
            invalid: Some(message),
            ..Default::default()
        };
        write_status(api, ds, &eff, &obs).await?;
        return Ok(Action::await_change());
    }

    let deref = dereference(&ctx.client, &eff).await?;
    let inputs = BuildInputs {
        secrets: deref.secrets.clone(),
        managed: deref.managed.clone(),
    };
    let children = resources::build_all(ds, &eff, &inputs)?;
    let client = &ctx.client;
    let ns = &eff.namespace;
    let mut changed: Vec<String> = Vec::new();
    fn note(changed: &mut Vec<String>, what: String, result: Applied) {
        if result != Applied::Unchanged {
            changed.push(what);
        }
    }

    // Secrets and ConfigMap before the StatefulSet, so a new pod finds them.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for s in children.managed_secrets.clone() {
        let what = format!("Secret {}", s.name_any());
        note(&mut changed, what.clone(), apply(&secrets, s, &what).await?);
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let what = format!("ConfigMap {}", names::config_map(&eff.name));
    note(
        &mut changed,
        what.clone(),
        apply(&config_maps, children.config_map.clone(), &what).await?,
    );
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for s in children.services.clone() {
        let what = format!("Service {}", s.name_any());
        note(
            &mut changed,
            what.clone(),
            apply(&services, s, &what).await?,
        );
    }

    // Optional children that are no longer wanted: removed only if ours.
    let uid = ds.uid().unwrap_or_default();
    if eff.metrics_port.is_none() {
        let name = names::metrics_service(&eff.name);
        if delete_if_owned(&services, &name, &uid, &format!("Service {name}")).await? {
            changed.push(format!("Service {name} (deleted)"));
        }
    }
    for (managed, name) in [
        (eff.jwt.secret.managed, names::jwt_secret(&eff.name)),
        (eff.admin.password.managed, names::admin_secret(&eff.name)),
    ] {
        if !managed && delete_if_owned(&secrets, &name, &uid, &format!("Secret {name}")).await? {
            changed.push(format!("Secret {name} (deleted)"));
        }
    }

    // Percona: keep the cluster in line; hold back the StatefulSet's creation
    // until the database is ready.
    let mut waiting_for_percona = false;
    if let Some(cluster) = children.percona_cluster.clone() {
        let percona_api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &api_resource());
        let what = format!("PerconaPGCluster {}", cluster.name_any());
        note(
            &mut changed,
            what.clone(),
            apply(&percona_api, cluster, &what).await?,
        );
        let ready = deref.percona_state().as_deref() == Some("ready");
        if !ready {
            let was_waiting = old_status
                .and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == status::DATABASE_READY)
                })
                .is_some_and(|c| c.status == "False");
            if !was_waiting {
                publish(
                    &ctx.recorder,
                    &reference,
                    Reason::PerconaNotReady,
                    format!(
                        "Waiting for PostgreSQL cluster {} (state: {})",
                        names::percona_cluster(&eff.name),
                        deref
                            .percona_state()
                            .unwrap_or_else(|| "not created yet".into())
                    ),
                )
                .await;
            }
            waiting_for_percona = deref.stateful_set.is_none();
        }
    }

    let mut stateful_set = deref.stateful_set.clone();
    if !waiting_for_percona {
        let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        let what = format!("StatefulSet {}", eff.name);
        let result = apply(&sts_api, children.stateful_set.clone(), &what).await?;
        let old_hash = deref
            .stateful_set
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned());
        match result {
            Applied::Created => {
                publish(
                    &ctx.recorder,
                    &reference,
                    Reason::Created,
                    format!(
                        "Created StatefulSet {} and its Services, ConfigMap and Secrets",
                        eff.name
                    ),
                )
                .await;
                changed.clear();
            }
            Applied::Updated => {
                let why = if old_hash.as_deref() != Some(children.config_hash.as_str()) {
                    format!(
                        "pod rolls: configuration or referenced Secrets changed (config hash {} → {})",
                        short(old_hash.as_deref()),
                        short(Some(&children.config_hash))
                    )
                } else {
                    "StatefulSet updated without a pod restart".into()
                };
                changed.push(format!("StatefulSet {} ({why})", eff.name));
            }
            Applied::Unchanged => {}
        }
        if result != Applied::Unchanged {
            stateful_set =
                sts_api
                    .get_opt(&eff.name)
                    .await
                    .map_err(|source| ReconcileError::Read {
                        what: format!("StatefulSet {}", eff.name),
                        source,
                    })?;
        }
    }
    if !changed.is_empty() {
        publish(
            &ctx.recorder,
            &reference,
            Reason::Updated,
            format!("Updated {}", changed.join(", ")),
        )
        .await;
    }

    let obs = Observed {
        generation: ds.meta().generation,
        percona_state: deref.percona_state(),
        stateful_set,
        config_hash: (!waiting_for_percona || deref.stateful_set.is_some())
            .then(|| children.config_hash.clone()),
        ..Default::default()
    };
    write_status(api, ds, &eff, &obs).await?;
    Ok(
        if eff.percona.is_some() && deref.percona_state().as_deref() != Some("ready") {
            Action::requeue(PERCONA_POLL)
        } else {
            Action::requeue(RESYNC)
        },
    )
}

fn short(hash: Option<&str>) -> String {
    hash.map(|h| h.chars().take(12).collect())
        .unwrap_or_else(|| "none".into())
}

/// Patch the status only when it differs from what is stored: our own status
/// writes then never feed a reconcile loop.
async fn write_status(
    api: &Api<DittoServer>,
    ds: &DittoServer,
    eff: &EffectiveSpec,
    obs: &Observed,
) -> Result<(), ReconcileError> {
    let now = Time(jiff::Timestamp::now());
    let new = status::compute(ds.status.as_ref(), eff, obs, &now);
    if ds.status.as_ref() == Some(&new) {
        return Ok(());
    }
    patch_status(api, ds, &new).await
}

async fn patch_status(
    api: &Api<DittoServer>,
    ds: &DittoServer,
    status: &DittoServerStatus,
) -> Result<(), ReconcileError> {
    api.patch_status(
        &ds.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
    .map_err(ReconcileError::Status)
}

/// Deletion: write the Deleting phase once, clean up Percona per
/// `deleteWithServer`, release the finalizer — after at most `CLEANUP_TIMEOUT`.
async fn cleanup<L: ClusterLookup>(
    ds: &DittoServer,
    ctx: &Context<L>,
    api: &Api<DittoServer>,
) -> Result<Action, ReconcileError> {
    if !finalizer::has_finalizer(ds) {
        return Ok(Action::await_change());
    }
    let reference = ds.object_ref(&());
    if ds.status.as_ref().and_then(|s| s.phase) != Some(Phase::Deleting) {
        publish(
            &ctx.recorder,
            &reference,
            Reason::Deleting,
            "DittoServer is being deleted; volumes are kept".into(),
        )
        .await;
        let mut status = ds.status.clone().unwrap_or_default();
        status.phase = Some(Phase::Deleting);
        // A failed status write must not block deletion.
        if let Err(e) = patch_status(api, ds, &status).await {
            tracing::warn!(error = %e, "cannot write the Deleting phase");
        }
    }
    let elapsed = ds
        .meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| jiff::Timestamp::now().duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default();
    match finalizer::cleanup_percona(&ctx.client, ds).await {
        Ok(done) => {
            match done {
                PerconaCleanup::Nothing => {}
                PerconaCleanup::Deleted(name) => {
                    publish(
                        &ctx.recorder,
                        &reference,
                        Reason::PerconaDeleted,
                        format!("PerconaPGCluster {name} deleted (deleteWithServer: true)"),
                    )
                    .await;
                }
                PerconaCleanup::Orphaned(name) => {
                    publish(
                        &ctx.recorder,
                        &reference,
                        Reason::PerconaOrphaned,
                        format!(
                            "PerconaPGCluster {name} kept with its data (deleteWithServer: false)"
                        ),
                    )
                    .await;
                }
            }
            finalizer::remove(api, ds).await?;
            Ok(Action::await_change())
        }
        Err(e) if elapsed >= CLEANUP_TIMEOUT => {
            publish(
                &ctx.recorder,
                &reference,
                Reason::CleanupTimeout,
                format!(
                    "Cleanup did not finish within {}s ({e}); releasing the finalizer",
                    CLEANUP_TIMEOUT.as_secs()
                ),
            )
            .await;
            finalizer::remove(api, ds).await?;
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}
