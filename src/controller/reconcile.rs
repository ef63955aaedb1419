//! One reconcile pass, top to bottom (after adding the finalizer, if missing):
//!
//! 1. **observe** — the DittoServer, its children and the Secrets it reads, from
//!    the watch-fed stores (`observe.rs`);
//! 2. **validate** — the resolved spec, once, with the webhook's rules; cluster
//!    questions answered from the observation (`lookup.rs`);
//! 3. **build** — every child, pure (`crate::resources`);
//! 4. **apply** — what is ours and changed; nothing that is not ours (`apply.rs`);
//! 5. **status** — computed from what was observed and done, whatever failed
//!    (`status.rs`), written only when it differs.
//!
//! Deletion reads the StatefulSet and the PerconaPGCluster from the stores, writes
//! the status with the same computation, then runs the Percona cleanup and removes
//! the finalizer (`finalizer.rs`). A spec this version cannot read gets a status
//! and an event, and is still released on deletion.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::crd::{DittoServer, DittoServerStatus};
use crate::effective::EffectiveSpec;
use crate::names;
use crate::resources::percona::api_resource;
use crate::resources::{self, BuildInputs, CONFIG_HASH_ANNOTATION, Children};
use crate::validation::{ClusterLookup, validate_stored};

use super::apply::{Applied, Known, apply, delete_if_ours, release};
use super::context::Context;
use super::error::ReconcileError;
use super::events::{Events, Reason};
use super::finalizer::{self, CLEANUP_TIMEOUT, PerconaCleanup};
use super::lookup::ObservedLookup;
use super::memory::ChildKey;
use super::observe::{Observed, Owner, PerconaSeen, observe, observe_percona};
use super::status::{self, Facts};
use super::stored::{StoredServer, Unreadable};
use super::watches::{CachedSecret, ServerRef};

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

/// Everything one pass works with, besides the object.
struct Pass<'a, L> {
    ctx: &'a Context<L>,
    server: ServerRef,
    /// The DittoServers of the namespace, raw (see `finalizer::raw_api`).
    raw: Api<DynamicObject>,
    events: Events<'a>,
}

async fn pass<L: ClusterLookup>(
    stored: &StoredServer,
    ctx: &Context<L>,
) -> Result<Action, ReconcileError> {
    let server = ObjectRef::from(stored);
    let ns = stored.namespace().unwrap_or_else(|| "default".into());
    let p = Pass {
        ctx,
        raw: finalizer::raw_api(&ctx.client, &ns),
        events: Events {
            client: &ctx.client,
            reporter: &ctx.reporter,
            memory: ctx.memory(),
            server: &server,
            reference: stored.object_ref(&()),
        },
        server: server.clone(),
    };
    let ds = match stored.server() {
        Ok(ds) => ds,
        Err(why) => return unreadable(stored, why, &p).await,
    };
    let eff = EffectiveSpec::resolve(&ds);
    let result = if ds.metadata.deletion_timestamp.is_some() {
        delete(&ds, &eff, &p).await
    } else {
        let (facts, result) = converge(&ds, &eff, &p).await;
        // The status says what was observed, also when a step failed.
        let status = record(&p, &ds, &eff, &facts).await;
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
            ctx.memory().reset_backoff(&server);
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

/// Write the status computed from `facts` (step 5; also the deletion's status).
async fn record<L>(
    p: &Pass<'_, L>,
    ds: &DittoServer,
    eff: &EffectiveSpec,
    facts: &Facts,
) -> Result<(), ReconcileError> {
    write_status(p, &ds.metadata, ds.status.as_ref(), |old, now| {
        status::compute(old, eff, facts, now)
    })
    .await
}

/// Bring the children in line with the spec. Returns the facts for the status
/// and what to do next.
async fn converge<L: ClusterLookup>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    p: &Pass<'_, L>,
) -> (Facts, Result<Action, ReconcileError>) {
    let mut facts = Facts {
        generation: ds.metadata.generation,
        stateful_set: stored_stateful_set(p, eff),
        ..Default::default()
    };
    if let Err(e) = finalizer::add(&p.raw, &ds.metadata, p.ctx.memory(), &p.server).await {
        facts.failed = Some(format!("{}: {e}", e.step()));
        return (facts, Err(e));
    }

    // 1. Observe.
    let observed = match observe(&p.ctx.client, &p.ctx.stores, ds, eff).await {
        Ok(observed) => observed,
        Err(e) => {
            facts.failed = Some(format!("{}: {e}", e.step()));
            return (facts, Err(e));
        }
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
        if let Err(e) = release_unwanted_percona_owner(ds, eff, &observed.percona, p).await {
            facts.failed = Some(format!("{}: {e}", e.step()));
            return (facts, Err(e));
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
        Err(e) => {
            facts.failed = Some(format!("{}: {e}", e.step()));
            return (facts, Err(e));
        }
    };

    // 4. Apply.
    let result = apply_children(ds, eff, &children, &observed, p, &mut facts).await;
    if let Err(e) = &result {
        facts.failed = Some(format!("{}: {e}", e.step()));
    }
    (facts, result)
}

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

/// The StatefulSet as the store has it (status input when a pass fails early).
fn stored_stateful_set<L>(p: &Pass<'_, L>, eff: &EffectiveSpec) -> Option<StatefulSet> {
    let key = ObjectRef::new(&names::stateful_set(&eff.name)).within(&eff.namespace);
    p.ctx
        .stores
        .stateful_sets
        .get(&key)
        .map(|s| StatefulSet::clone(&s))
}

/// Step 4: Secrets and ConfigMap before the StatefulSet, so a new pod finds them;
/// the StatefulSet last, and not at all while a child's name is taken or the
/// database is not ready yet.
async fn apply_children<L: ClusterLookup>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    children: &Children,
    observed: &Observed,
    p: &Pass<'_, L>,
    facts: &mut Facts,
) -> Result<Action, ReconcileError> {
    let client = &p.ctx.client;
    let memory = p.ctx.memory();
    let ns = eff.namespace.as_str();
    let mut changed: Vec<String> = Vec::new();

    // A Secret we generated that the spec now references is the user's: hand it
    // over (our owner reference and label removed) so it is never garbage
    // collected with this DittoServer.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in eff.referenced_secrets() {
        let Some(s) = observed.secrets.get(&name) else {
            continue;
        };
        let key = ChildKey::new("Secret", ns, &name);
        if s.seen.owner == Owner::This && release(&secrets, &key, ds, true).await? {
            p.events
                .publish(
                    Reason::Released,
                    format!("{key} is referenced by the spec now: it is yours, and is kept when this DittoServer is deleted"),
                )
                .await;
        }
    }
    for secret in &children.managed_secrets {
        let key = ChildKey::new("Secret", ns, &secret.name_any());
        let known = match observed.secrets.get(&key.name) {
            Some(s) => Known::Exists(&s.seen),
            None if observed.secrets_absent.contains(&key.name) => Known::Absent,
            None => Known::NotInStore,
        };
        let applied = apply(&secrets, &key, secret.clone(), known, ds, memory).await?;
        if let Some(live) = applied.live() {
            // What we wrote is the data the next pass reads, before the store shows it.
            p.ctx
                .stores
                .secret_data
                .put(ns, &key.name, CachedSecret::of(live));
        }
        note(&key, &applied, &mut changed, facts);
    }

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let key = ChildKey::new("ConfigMap", ns, &names::config_map(&eff.name));
    let applied = apply(
        &config_maps,
        &key,
        children.config_map.clone(),
        observed.config_map.as_ref().into(),
        ds,
        memory,
    )
    .await?;
    note(&key, &applied, &mut changed, facts);

    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for service in &children.services {
        let key = ChildKey::new("Service", ns, &service.name_any());
        let seen = observed.services.get(&key.name);
        let applied = apply(&services, &key, service.clone(), seen.into(), ds, memory).await?;
        note(&key, &applied, &mut changed, facts);
    }
    if eff.metrics_port.is_none() {
        let key = ChildKey::new("Service", ns, &names::metrics_service(&eff.name));
        if delete_if_ours(&services, &key, observed.services.get(&key.name)).await? {
            changed.push(format!("{key} (deleted: metrics are off)"));
        }
    }

    let waiting_for_percona =
        apply_percona(ds, eff, children, observed, p, facts, &mut changed).await?;

    if !facts.conflicts.is_empty() {
        p.events
            .publish(Reason::NameConflict, facts.conflicts.join("; "))
            .await;
    } else {
        p.events.resolved(Reason::NameConflict);
    }
    let hold_back = waiting_for_percona || !facts.conflicts.is_empty();
    if !hold_back {
        let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        let key = ChildKey::new("StatefulSet", ns, &names::stateful_set(&eff.name));
        let seen = observed.stateful_set.as_ref().map(|(seen, _)| seen);
        let applied = apply(
            &sts_api,
            &key,
            children.stateful_set.clone(),
            seen.into(),
            ds,
            memory,
        )
        .await?;
        let old_hash = observed
            .stateful_set
            .as_ref()
            .and_then(|(_, s)| s.spec.as_ref())
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned());
        match &applied {
            Applied::Created(_) => {
                p.events
                    .publish(
                        Reason::Created,
                        format!(
                            "Created StatefulSet {} and its Services, ConfigMap and Secrets",
                            eff.name
                        ),
                    )
                    .await;
                changed.clear();
            }
            Applied::Updated(_) | Applied::Adopted(_) => {
                let why = if old_hash.as_deref() != Some(children.config_hash.as_str()) {
                    format!(
                        "pod rolls: configuration or referenced Secrets changed (config hash {} → {})",
                        short(old_hash.as_deref()),
                        short(Some(&children.config_hash))
                    )
                } else {
                    "without a pod restart".into()
                };
                changed.push(format!("{key} ({why})"));
            }
            Applied::Conflict(message) => facts.conflicts.push(message.clone()),
            Applied::Unchanged(_) => {}
        }
        if let Some(live) = applied.live() {
            facts.stateful_set = Some(live.clone());
        }
        if matches!(applied, Applied::Conflict(_)) {
            p.events
                .publish(Reason::NameConflict, facts.conflicts.join("; "))
                .await;
        } else {
            facts.config_hash = Some(children.config_hash.clone());
        }
    }
    if !changed.is_empty() {
        p.events
            .publish(Reason::Updated, format!("Updated {}", changed.join(", ")))
            .await;
    }

    Ok(if !facts.conflicts.is_empty() {
        Action::requeue(CONFLICT_POLL)
    } else if waiting_for_percona || (eff.percona.is_some() && !observed.percona.is_ready()) {
        Action::requeue(PERCONA_POLL)
    } else {
        Action::requeue(RESYNC)
    })
}

/// Remove our owner reference from a PerconaPGCluster of ours that is not to be
/// deleted with the server (`deleteWithServer` not true, or Percona turned off).
/// Returns whether it was released.
async fn release_unwanted_percona_owner<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    percona: &PerconaSeen,
    p: &Pass<'_, L>,
) -> Result<bool, ReconcileError> {
    let delete_with_server = eff.percona.as_ref().is_some_and(|p| p.delete_with_server);
    if !owned_but_to_keep(ds, percona, delete_with_server) {
        return Ok(false);
    }
    let ns = eff.namespace.as_str();
    let key = ChildKey::new("PerconaPGCluster", ns, &names::percona_cluster(&eff.name));
    let api: Api<DynamicObject> = Api::namespaced_with(p.ctx.client.clone(), ns, &api_resource());
    release(&api, &key, ds, false).await
}

/// Keep the PerconaPGCluster in line. It carries our owner reference only while
/// both `percona.enabled` and `deleteWithServer` are true: otherwise nothing (no
/// garbage collection, no foreground deletion) can ever take the database with the
/// DittoServer. Returns whether the StatefulSet must wait for the database.
async fn apply_percona<L: ClusterLookup>(
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
    let keep_owner = eff.percona.as_ref().is_some_and(|p| p.delete_with_server);

    let Some(desired) = children.percona_cluster.clone() else {
        // Percona turned off: a cluster we created stays, and is no longer ours to
        // delete.
        if release_unwanted_percona_owner(ds, eff, &observed.percona, p).await? {
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
    let applied = apply(&api, &key, desired, known, ds, p.ctx.memory()).await?;
    note(&key, &applied, changed, facts);
    let live = applied.live().cloned().or_else(|| match &observed.percona {
        PerconaSeen::Present { cluster, .. } => Some(DynamicObject::clone(cluster)),
        _ => None,
    });
    if let Some(live) = &live
        && !keep_owner
        && finalizer::owned_by(live, ds)
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

/// Record what an apply did: a change for the Updated event, a conflict for the
/// status.
fn note<K>(key: &ChildKey, applied: &Applied<K>, changed: &mut Vec<String>, facts: &mut Facts) {
    match applied {
        Applied::Created(_) | Applied::Updated(_) => changed.push(key.to_string()),
        Applied::Adopted(_) => changed.push(format!(
            "{key} (adopted: it carried this DittoServer's labels and no owner)"
        )),
        Applied::Conflict(message) => facts.conflicts.push(message.clone()),
        Applied::Unchanged(_) => {}
    }
}

fn short(hash: Option<&str>) -> String {
    hash.map(|h| h.chars().take(12).collect())
        .unwrap_or_else(|| "none".into())
}

/// Deletion: the Deleting status (same computation, written first: once the
/// finalizer goes, so does the object), the Percona cleanup per
/// `deleteWithServer`, then the finalizer — after at most `CLEANUP_TIMEOUT`.
async fn delete<L: ClusterLookup>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    p: &Pass<'_, L>,
) -> Result<Action, ReconcileError> {
    if !finalizer::has_finalizer(&ds.metadata) && !p.ctx.memory().finalizer_added(&p.server) {
        return Ok(Action::await_change());
    }
    let mut facts = Facts {
        generation: ds.metadata.generation,
        stateful_set: stored_stateful_set(p, eff),
        deleting: true,
        ..Default::default()
    };
    let ns = eff.namespace.as_str();
    let percona = observe_percona(&p.ctx.client, &p.ctx.stores, ds, ns).await;
    if let Ok(percona) = &percona {
        facts.percona_state = percona.state();
    }
    if let Err(e) = record(p, ds, eff, &facts).await {
        tracing::warn!(error = %e, "cannot write the Deleting status");
    }
    let delete_with_server = eff.percona.as_ref().is_some_and(|p| p.delete_with_server);
    let result = match percona {
        Ok(percona) => release_finalizer(ds, &percona, delete_with_server, p).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        facts.failed = Some(format!("{}: {e}", e.step()));
        if let Err(status_error) = record(p, ds, eff, &facts).await {
            tracing::warn!(error = %status_error, "cannot record the failure in status");
        }
    }
    result
}

/// The cleanup of a DittoServer being deleted, readable or not: the Percona
/// cluster per `delete_with_server`, then the finalizer. A cleanup that keeps
/// failing is given up after `CLEANUP_TIMEOUT`.
async fn release_finalizer<L: ClusterLookup>(
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
    match finalizer::cleanup_percona(&p.ctx.client, ds, percona, delete_with_server).await {
        Ok(PerconaCleanup::Nothing) => {}
        Ok(PerconaCleanup::Deleted(name)) => {
            p.events
                .publish(
                    Reason::PerconaDeleted,
                    format!("PerconaPGCluster {name} deleted (deleteWithServer: true)"),
                )
                .await;
        }
        Ok(PerconaCleanup::Orphaned(name)) => {
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

/// A PerconaPGCluster that is to be kept (`deleteWithServer` not true) but still
/// carries our owner reference, as last observed.
fn owned_but_to_keep(ds: &DittoServer, percona: &PerconaSeen, delete_with_server: bool) -> bool {
    !delete_with_server
        && matches!(percona, PerconaSeen::Present { seen, cluster }
            if seen.is_ours() && finalizer::owned_by(cluster, ds))
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

/// A stored spec this version cannot read: say so on the object; nothing is
/// applied; on deletion the finalizer is still released (and a Percona cluster
/// kept, since whether the user wanted it deleted cannot be read).
async fn unreadable<L: ClusterLookup>(
    stored: &StoredServer,
    why: &Unreadable,
    p: &Pass<'_, L>,
) -> Result<Action, ReconcileError> {
    let deleting = stored.metadata.deletion_timestamp.is_some();
    p.events
        .publish(
            Reason::UnreadableSpec,
            format!("the stored spec cannot be read by this operator version: {why}"),
        )
        .await;
    let status = write_status(p, &stored.metadata, stored.status.as_ref(), |old, now| {
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
        let ds = DittoServer {
            metadata: stored.metadata.clone(),
            spec: Default::default(),
            status: None,
        };
        let ns = ds.namespace().unwrap_or_default();
        let percona = observe_percona(&p.ctx.client, &p.ctx.stores, &ds, &ns).await?;
        return release_finalizer(&ds, &percona, false, p).await;
    }
    status?;
    Ok(Action::await_change())
}

/// Compute the status from the freshest previous one we know (ours, if the store
/// does not show it yet) and patch it only when it differs: our own status writes
/// then never feed a reconcile loop.
async fn write_status<L>(
    p: &Pass<'_, L>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    stored: Option<&DittoServerStatus>,
    compute: impl FnOnce(Option<&DittoServerStatus>, &Time) -> DittoServerStatus,
) -> Result<(), ReconcileError> {
    let memory = p.ctx.memory();
    let ours = memory.written_status(&p.server);
    let old = ours.as_ref().or(stored);
    let now = Time(jiff::Timestamp::now());
    let new = compute(old, &now);
    if old == Some(&new) {
        return Ok(());
    }
    let name = meta.name.as_deref().unwrap_or_default();
    let written = p
        .raw
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": new })),
        )
        .await;
    match written {
        Ok(_) => {
            memory.status_written(&p.server, meta.uid.as_deref(), new);
            Ok(())
        }
        // Gone meanwhile (its last finalizer released): nothing left to report on.
        Err(e) if crate::api_error::is_absent(&e) => Ok(()),
        Err(e) => Err(ReconcileError::Status(e)),
    }
}
