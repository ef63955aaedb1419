//! Step 4 of a pass: write the built children that are ours and changed.
//!
//! Secrets and the ConfigMap first, so a new pod finds them; the Services and the
//! NetworkPolicy that admits what they target; the PerconaPGCluster; the StatefulSet,
//! not at all while a child's name is taken or a first database is not ready yet;
//! then the optional ServiceMonitor, which never holds the StatefulSet back. Each
//! write is one call of
//! `write::apply`, which writes nothing when the child is unchanged and never
//! touches what is not ours.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::names;
use crate::resources::{CONFIG_HASH_ANNOTATION, Children, service_monitor};

use super::context::Pass;
use super::error::ReconcileError;
use super::events::Reason;
use super::memory::ChildKey;
use super::observe::Observed;
use super::percona;
use super::status::Facts;
use super::watches::CachedSecret;
use super::write::{Applied, Known, apply, delete_if_ours, release};

/// Apply `children`; what happened goes into `facts`. Returns whether the
/// StatefulSet waits for the database.
pub async fn children<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    children: &Children,
    observed: &Observed,
    p: &Pass<'_, L>,
    facts: &mut Facts,
) -> Result<bool, ReconcileError> {
    let client = &p.ctx.client;
    let memory = p.memory();
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
        if s.seen.is_ours() && release(&secrets, &key, ds, true).await? {
            p.events
                .publish(
                    Reason::Released,
                    format!("{key} is referenced by the spec now: it is yours, and is kept when this DittoServer is deleted"),
                )
                .await;
        }
    }
    let account = children.account_secret.as_ref();
    for secret in children.managed_secrets.iter().chain(account) {
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
        // The account Secret changes with its refresh token: not news.
        let mut ignored = Vec::new();
        let changes = if Some(secret) == account {
            &mut ignored
        } else {
            &mut changed
        };
        applied.note(&key, changes, &mut facts.conflicts);
    }
    if children.account_secret.is_some() {
        // The refresh token we meant to keep is in the Secret now (or was refused
        // with it): stop offering it.
        p.memory()
            .update_server_side(&p.server, |side| side.refresh_to_keep = None);
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
    applied.note(&key, &mut changed, &mut facts.conflicts);

    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for service in &children.services {
        let key = ChildKey::new("Service", ns, &service.name_any());
        let seen = observed.services.get(&key.name);
        let applied = apply(&services, &key, service.clone(), seen.into(), ds, memory).await?;
        applied.note(&key, &mut changed, &mut facts.conflicts);
    }
    if eff.metrics.is_none() {
        let key = ChildKey::new("Service", ns, &names::metrics_service(&eff.name));
        if delete_if_ours(&services, &key, observed.services.get(&key.name)).await? {
            changed.push(format!("{key} (deleted: metrics are off)"));
        }
    }

    // After the Services: the policy admits what they target.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let key = ChildKey::new("NetworkPolicy", ns, &names::network_policy(&eff.name));
    match &children.network_policy {
        Some(policy) => {
            let seen = observed.network_policy.as_ref();
            let applied = apply(&policies, &key, policy.clone(), seen.into(), ds, memory).await?;
            applied.note(&key, &mut changed, &mut facts.conflicts);
        }
        None => {
            if delete_if_ours(&policies, &key, observed.network_policy.as_ref()).await? {
                changed.push(format!("{key} (deleted: networkPolicy.enabled is false)"));
            }
        }
    }

    let waiting_for_percona =
        percona::apply_cluster(ds, eff, children, observed, p, facts, &mut changed).await?;

    if !facts.conflicts.is_empty() {
        p.events
            .publish(Reason::NameConflict, facts.conflicts.join("; "))
            .await;
    } else {
        p.events.resolved(Reason::NameConflict);
    }
    if !waiting_for_percona && facts.conflicts.is_empty() {
        stateful_set(ds, eff, children, observed, p, facts, &mut changed).await?;
    }

    // The ServiceMonitor, while its type is served (a CRD installed later brings a
    // pass to every DittoServer: `watches.rs`). After the StatefulSet: an optional
    // extra whose write fails (its CRD just removed) never holds the server back.
    if let Ok(seen) = &observed.service_monitor {
        let monitors: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &service_monitor::api_resource());
        let key = ChildKey::new("ServiceMonitor", ns, &names::metrics_service(&eff.name));
        match &children.service_monitor {
            Some(monitor) => {
                let applied = apply(
                    &monitors,
                    &key,
                    monitor.clone(),
                    seen.as_ref().into(),
                    ds,
                    memory,
                )
                .await?;
                applied.note(&key, &mut changed, &mut facts.conflicts);
            }
            None => {
                if delete_if_ours(&monitors, &key, seen.as_ref()).await? {
                    changed.push(format!("{key} (deleted: no ServiceMonitor is asked for)"));
                }
            }
        }
    }
    if !changed.is_empty() {
        p.events
            .publish(Reason::Updated, format!("Updated {}", changed.join(", ")))
            .await;
    }
    Ok(waiting_for_percona)
}

/// The StatefulSet, last: its event says whether the pod rolls, and why.
async fn stateful_set<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    children: &Children,
    observed: &Observed,
    p: &Pass<'_, L>,
    facts: &mut Facts,
    changed: &mut Vec<String>,
) -> Result<(), ReconcileError> {
    let ns = eff.namespace.as_str();
    let api: Api<StatefulSet> = Api::namespaced(p.ctx.client.clone(), ns);
    let key = ChildKey::new("StatefulSet", ns, &names::stateful_set(&eff.name));
    let seen = observed.stateful_set.as_ref().map(|(seen, _)| seen);
    let applied = apply(
        &api,
        &key,
        children.stateful_set.clone(),
        seen.into(),
        ds,
        p.memory(),
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
        // A first creation is no news to publish: the conditions follow it, and the
        // children it brings are not listed as changes either.
        Applied::Created(_) => changed.clear(),
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
    Ok(())
}

fn short(hash: Option<&str>) -> String {
    hash.map(|h| h.chars().take(12).collect())
        .unwrap_or_else(|| "none".into())
}
