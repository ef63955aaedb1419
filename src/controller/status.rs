//! Status (step 5): phase and conditions computed purely from what a pass
//! observed and did, and written only when they differ.
//!
//! `lastTransitionTime` moves only when a condition's status flips, and nothing
//! else in the status depends on the clock, so a pass that changes nothing
//! computes an identical status — and writes nothing.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::crd::{DittoServer, DittoServerStatus, Endpoints, Phase};
use crate::effective::{Database, EffectiveSpec};
use crate::names;

use super::context::Pass;
use super::error::ReconcileError;
use super::server::{ServerFacts, ServerState};
use crate::dittofs::account::SessionError;

use crate::crd::condition::{
    AVAILABLE, CONFIG_READY, DATABASE_READY, DEGRADED, PROGRESSING, READY, SERVER_CONFIGURED,
};

/// What one pass observed and did: the only input of the status besides the
/// effective spec and the previous status.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub generation: Option<i64>,
    /// Validation errors, joined; the spec was not applied.
    pub invalid: Option<String>,
    /// A failed pipeline step (`step: error`).
    pub failed: Option<String>,
    /// Objects with a child's name that are not ours (what to do included).
    pub conflicts: Vec<String>,
    /// Percona cluster state (`status.state`), `None` if it does not exist yet.
    pub percona_state: Option<String>,
    /// The StatefulSet as observed (or as the API server returned our write).
    pub stateful_set: Option<StatefulSet>,
    pub config_hash: Option<String>,
    pub deleting: bool,
    /// What the server half found; `None` when the pass did not get there.
    pub server: Option<ServerFacts>,
}

struct Cond {
    type_: &'static str,
    ok: bool,
    reason: &'static str,
    message: String,
}

fn cond(type_: &'static str, ok: bool, reason: &'static str, message: impl Into<String>) -> Cond {
    Cond {
        type_,
        ok,
        reason,
        message: message.into(),
    }
}

/// Compute the status; `now` is used only for conditions whose status flips.
pub fn compute(
    old: Option<&DittoServerStatus>,
    eff: &EffectiveSpec,
    obs: &Facts,
    now: &Time,
) -> DittoServerStatus {
    let desired = eff.replicas;
    let sts_status = obs.stateful_set.as_ref().and_then(|s| s.status.as_ref());
    let ready = sts_status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = sts_status.and_then(|s| s.available_replicas).unwrap_or(0);

    let config = match &obs.invalid {
        Some(msg) => cond(CONFIG_READY, false, "InvalidSpec", msg.clone()),
        None => cond(
            CONFIG_READY,
            true,
            "ConfigApplied",
            // DittoFS v0.29 starts with no store and no share (`cmd/dfs/commands/start.go`):
            // say where they come from, since the volumes alone serve nothing.
            format!(
                "config.yaml is in ConfigMap {}. DittoFS keeps its stores and shares in its own database: a new server has none, and the volumes /data/metadata, /data/content and /data/cache hold data only for stores created at those paths with dfsctl against {} (see docs/stores.md)",
                names::config_map(&eff.name),
                names::api_service(&eff.name)
            ),
        ),
    };

    let database = match &eff.database {
        Database::Sqlite { path } => cond(
            DATABASE_READY,
            true,
            "SQLite",
            format!("SQLite at {path} on the control-plane volume"),
        ),
        Database::Postgres { secret_name } => cond(
            DATABASE_READY,
            true,
            "ExternalPostgres",
            format!("PostgreSQL connection from Secret {secret_name}"),
        ),
        Database::Percona { .. } => match obs.percona_state.as_deref() {
            Some("ready") => cond(
                DATABASE_READY,
                true,
                "PerconaReady",
                "PostgreSQL cluster is ready",
            ),
            Some(state) => cond(
                DATABASE_READY,
                false,
                "PerconaNotReady",
                format!(
                    "PostgreSQL cluster state: {}",
                    if state.is_empty() { "unknown" } else { state }
                ),
            ),
            None => cond(
                DATABASE_READY,
                false,
                "PerconaNotFound",
                format!(
                    "PerconaPGCluster {} does not exist yet",
                    names::percona_cluster(&eff.name)
                ),
            ),
        },
    };

    let available_cond = if desired == 0 {
        cond(
            AVAILABLE,
            true,
            "Stopped",
            "DittoServer is stopped (replicas=0)",
        )
    } else if available >= desired {
        cond(
            AVAILABLE,
            true,
            "MinimumReplicasAvailable",
            format!("{available}/{desired} replicas available"),
        )
    } else {
        cond(
            AVAILABLE,
            false,
            "NoReplicasAvailable",
            format!("Waiting for replicas: {ready}/{desired} ready"),
        )
    };

    let progressing = match (&obs.stateful_set, sts_status) {
        _ if obs.invalid.is_some() => cond(
            PROGRESSING,
            false,
            "InvalidSpec",
            "Not progressing until the spec is fixed",
        ),
        _ if !obs.conflicts.is_empty() => cond(
            PROGRESSING,
            false,
            "NameConflict",
            "Not progressing until the conflicting objects are removed; see Degraded",
        ),
        (None, _) => cond(
            PROGRESSING,
            true,
            "Creating",
            "StatefulSet is being created",
        ),
        (Some(sts), status) => {
            let generation = sts.metadata.generation.unwrap_or(0);
            let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
            let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
            let revisions_differ = status.is_some_and(|s| {
                s.update_revision.is_some() && s.current_revision != s.update_revision
            });
            if observed < generation || (desired > 0 && (updated < desired || revisions_differ)) {
                cond(
                    PROGRESSING,
                    true,
                    "RollingUpdate",
                    "StatefulSet is rolling out a new pod template",
                )
            } else if ready != desired {
                cond(
                    PROGRESSING,
                    true,
                    "ScalingReplicas",
                    format!("Scaling: {ready}/{desired} replicas ready"),
                )
            } else {
                cond(
                    PROGRESSING,
                    false,
                    "ReconcileComplete",
                    "All resources are up to date",
                )
            }
        }
    };

    let degraded = match (&obs.invalid, &obs.failed) {
        (Some(_), _) => cond(
            DEGRADED,
            true,
            "InvalidSpec",
            "The spec failed validation; see ConfigReady",
        ),
        (None, Some(step)) => cond(DEGRADED, true, "ReconcileFailed", step.clone()),
        (None, None) if !obs.conflicts.is_empty() => {
            cond(DEGRADED, true, "NameConflict", obs.conflicts.join("; "))
        }
        (None, None) => cond(DEGRADED, false, "AsExpected", "Reconciled without errors"),
    };

    let server = server_condition(old, obs);

    let mut not_met = Vec::new();
    for (c, what) in [
        (&config, "ConfigNotReady"),
        (&database, "DatabaseNotReady"),
        (&available_cond, "NotAvailable"),
    ] {
        if !c.ok {
            not_met.push(what);
        }
    }
    // A running server is ready once it holds what the spec declares.
    if desired > 0 && !server.ok {
        not_met.push("ServerNotConfigured");
    }
    if progressing.ok {
        not_met.push("StillProgressing");
    }
    if degraded.ok {
        not_met.push("Degraded");
    }
    let ready_cond = if not_met.is_empty() {
        cond(
            READY,
            true,
            "AllConditionsMet",
            "DittoServer is fully operational",
        )
    } else {
        cond(
            READY,
            false,
            "ConditionsNotMet",
            format!("Not ready: {}", not_met.join(", ")),
        )
    };

    let phase = if obs.deleting {
        Phase::Deleting
    } else if obs.invalid.is_some() {
        Phase::Failed
    } else if desired == 0 {
        Phase::Stopped
    } else if ready_cond.ok {
        Phase::Running
    } else {
        Phase::Pending
    };

    let conditions = [
        ready_cond,
        available_cond,
        progressing,
        degraded,
        config,
        database,
        server,
    ]
    .into_iter()
    .map(|c| to_condition(c, old, obs.generation, now))
    .collect();

    let ns = &eff.namespace;
    let file = names::file_service(&eff.name);
    DittoServerStatus {
        observed_generation: obs.generation,
        replicas: Some(desired),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        phase: Some(phase),
        config_hash: obs
            .config_hash
            .clone()
            .or_else(|| old.and_then(|o| o.config_hash.clone())),
        percona_cluster_name: eff.percona.as_ref().map(|p| p.cluster_name.clone()),
        server: obs
            .server
            .as_ref()
            .and_then(|s| s.status.clone())
            .or_else(|| old.and_then(|o| o.server.clone())),
        endpoints: Some(Endpoints {
            nfs: Some(format!("{file}.{ns}.svc:{}", eff.ports.nfs.service)),
            smb: eff
                .ports
                .smb
                .map(|p| format!("{file}.{ns}.svc:{}", p.service)),
            api: Some(format!(
                "{}.{ns}.svc:{}",
                names::api_service(&eff.name),
                eff.ports.api.service
            )),
        }),
        conditions,
    }
}

/// ServerConfigured: what the server half found, or (when it made no call) what
/// the previous status said.
fn server_condition(old: Option<&DittoServerStatus>, obs: &Facts) -> Cond {
    let previous = || {
        old.and_then(|o| o.conditions.iter().find(|c| c.type_ == SERVER_CONFIGURED))
            .map(|c| Cond {
                type_: SERVER_CONFIGURED,
                ok: c.status == "True",
                reason: known_reason(&c.reason),
                message: c.message.clone(),
            })
    };
    if obs.invalid.is_some() {
        return cond(
            SERVER_CONFIGURED,
            false,
            "InvalidSpec",
            "The server is not configured until the spec is fixed; see ConfigReady",
        );
    }
    let Some(server) = &obs.server else {
        return previous().unwrap_or_else(|| {
            cond(
                SERVER_CONFIGURED,
                false,
                "Pending",
                "The server has not been configured yet",
            )
        });
    };
    match &server.state {
        ServerState::Stopped => cond(
            SERVER_CONFIGURED,
            false,
            "Stopped",
            "replicas is 0: there is no server to configure",
        ),
        ServerState::NotReady => cond(
            SERVER_CONFIGURED,
            false,
            "ServerNotReady",
            "Waiting for the server's pod to be Ready; the operator calls its REST API only then",
        ),
        ServerState::Unchanged => previous().unwrap_or_else(|| {
            cond(
                SERVER_CONFIGURED,
                false,
                "Pending",
                "The server has not been configured yet",
            )
        }),
        ServerState::Configured => cond(
            SERVER_CONFIGURED,
            true,
            "Configured",
            "The server holds every declared adapter, store and share",
        ),
        ServerState::Waiting(why) => cond(SERVER_CONFIGURED, false, "Waiting", why.clone()),
        ServerState::Drifted(what) => cond(
            SERVER_CONFIGURED,
            false,
            "Drifted",
            format!("{what}; see status.server"),
        ),
        ServerState::Refused(what) => cond(
            SERVER_CONFIGURED,
            false,
            "ChangeRefused",
            format!("The server refused: {what}"),
        ),
        ServerState::Unreachable(what) => cond(
            SERVER_CONFIGURED,
            false,
            "ServerUnreachable",
            format!("{what}; retried with backoff"),
        ),
        ServerState::Account(e) => account_condition(e),
    }
}

fn account_condition(e: &SessionError) -> Cond {
    match e {
        SessionError::AdminRefused { secret, .. } => cond(
            SERVER_CONFIGURED,
            false,
            "AdminLoginFailed",
            format!(
                "{e}. DittoFS keeps its admin user, with the password it had at the server's first start, in its own database: put the admin's current password in Secret {secret} (or reset the admin's password with dfsctl and put the new one there). The operator tries again when the Secret changes, and with backoff."
            ),
        ),
        SessionError::AdminMustChangePassword { .. } => cond(
            SERVER_CONFIGURED,
            false,
            "AdminMustChangePassword",
            format!(
                "{e}: log in once with dfsctl as admin, set a new password, and put it in that Secret"
            ),
        ),
        SessionError::AdminPasswordUnknown { .. } => cond(
            SERVER_CONFIGURED,
            false,
            "AdminPasswordUnknown",
            e.to_string(),
        ),
        SessionError::RoleNotRestored => cond(
            SERVER_CONFIGURED,
            false,
            "AccountRoleLost",
            format!("{e}; retried with backoff"),
        ),
        SessionError::Call(call) => cond(
            SERVER_CONFIGURED,
            false,
            "ServerUnreachable",
            format!("{call}; retried with backoff"),
        ),
    }
}

/// A reason written by this operator, back as the static string (an unknown one,
/// written by another version, reads as Pending).
fn known_reason(reason: &str) -> &'static str {
    [
        "Configured",
        "Stopped",
        "ServerNotReady",
        "Waiting",
        "Drifted",
        "ChangeRefused",
        "ServerUnreachable",
        "AdminLoginFailed",
        "AdminMustChangePassword",
        "AdminPasswordUnknown",
        "AccountRoleLost",
        "InvalidSpec",
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or("Pending")
}

/// The status of an object whose stored spec this version cannot read: nothing is
/// applied, the reason is in ConfigReady and Degraded. Phase `Deleting` while it
/// is being deleted.
pub fn unreadable(
    old: Option<&DittoServerStatus>,
    generation: Option<i64>,
    why: &str,
    deleting: bool,
    now: &Time,
) -> DittoServerStatus {
    let message = format!(
        "the stored spec cannot be read by this operator version ({why}): fix the field, or run an operator version that knows it"
    );
    let conditions = [
        cond(
            READY,
            false,
            "ConditionsNotMet",
            "Not ready: ConfigNotReady",
        ),
        cond(DEGRADED, true, "UnreadableSpec", message.clone()),
        cond(CONFIG_READY, false, "UnreadableSpec", message),
    ]
    .into_iter()
    .map(|c| to_condition(c, old, generation, now))
    .collect();
    DittoServerStatus {
        observed_generation: generation,
        phase: Some(if deleting {
            Phase::Deleting
        } else {
            Phase::Failed
        }),
        conditions,
        ..old.cloned().unwrap_or_default()
    }
}

fn to_condition(
    c: Cond,
    old: Option<&DittoServerStatus>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if c.ok { "True" } else { "False" };
    let previous = old.and_then(|o| o.conditions.iter().find(|p| p.type_ == c.type_));
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => now.clone(),
    };
    Condition {
        type_: c.type_.into(),
        status: status.into(),
        reason: c.reason.into(),
        message: c.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Write the status computed from `facts` for `ds`.
pub async fn record<L>(
    p: &Pass<'_, L>,
    ds: &DittoServer,
    eff: &EffectiveSpec,
    facts: &Facts,
) -> Result<(), ReconcileError> {
    write(p, &ds.metadata, ds.status.as_ref(), |old, now| {
        compute(old, eff, facts, now)
    })
    .await
}

/// Compute the status from the freshest previous one we know (ours, if the store
/// does not show it yet) and patch it only when it differs: our own status writes
/// then never feed a reconcile loop.
pub async fn write<L>(
    p: &Pass<'_, L>,
    meta: &ObjectMeta,
    stored: Option<&DittoServerStatus>,
    compute: impl FnOnce(Option<&DittoServerStatus>, &Time) -> DittoServerStatus,
) -> Result<(), ReconcileError> {
    let memory = p.memory();
    let ours = memory.written_status(&p.server);
    let old = ours.as_ref().or(stored);
    let now = Time(jiff::Timestamp::now());
    let new = compute(old, &now);
    if old == Some(&new) {
        return Ok(());
    }
    let name = meta.name.as_deref().unwrap_or_default();
    // A merge patch keeps what it leaves out: a field that went away (the SMB
    // endpoint, the portmapper port) is sent as null.
    let value = serde_json::to_value(&new).map_err(|e| ReconcileError::Serialize {
        what: "the status".into(),
        message: e.to_string(),
    })?;
    let body = with_removals(
        value,
        [stored, ours.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| serde_json::to_value(s).ok()),
    );
    let written = p
        .raw
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": body })),
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

/// `new` as a JSON merge patch over any of `olds`: every object key an old value
/// has and `new` has not becomes null (removed), at every depth where both have an
/// object. Lists are replaced whole by a merge patch, so they need nothing.
fn with_removals(mut new: Value, olds: impl IntoIterator<Item = Value>) -> Value {
    fn null_out(new: &mut Value, old: &Value) {
        let (Value::Object(new), Value::Object(old)) = (new, old) else {
            return;
        };
        for (key, old_value) in old {
            match new.get_mut(key) {
                Some(new_value) => null_out(new_value, old_value),
                None => {
                    new.insert(key.clone(), Value::Null);
                }
            }
        }
    }
    for old in olds {
        null_out(&mut new, &old);
    }
    new
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// The current status of condition `type_`, if present.
    pub fn condition_status<'a>(
        status: Option<&'a DittoServerStatus>,
        type_: &str,
    ) -> Option<&'a str> {
        status?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.as_str())
    }

    #[test]
    fn a_field_that_went_away_is_sent_as_null() {
        let old = json!({"phase": "Running", "endpoints": {"nfs": "a:2049", "smb": "a:445"},
                         "server": {"portmapperPort": 10111, "adapters": [{"type": "smb"}]}});
        let ours = json!({"server": {"unmanaged": ["/old"]}});
        let new = json!({"phase": "Running", "endpoints": {"nfs": "a:2049"},
                         "server": {"adapters": []}});
        assert_eq!(
            with_removals(new, [old, ours]),
            json!({"phase": "Running", "endpoints": {"nfs": "a:2049", "smb": null},
                   "server": {"adapters": [], "portmapperPort": null, "unmanaged": null}})
        );
    }

    fn eff(spec: &str) -> EffectiveSpec {
        let ds: DittoServer = serde_yaml_ng::from_str(&format!(
            "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {{name: d, namespace: ns}}\nspec: {spec}\n"
        ))
        .expect("fixture");
        EffectiveSpec::resolve(&ds)
    }

    fn time(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).expect("time"))
    }

    fn sts(ready: i32, generation: i64, observed: i64) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            status: Some(StatefulSetStatus {
                replicas: 1,
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                updated_replicas: Some(1),
                observed_generation: Some(observed),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_when_the_pod_is_ready_and_times_are_stable() {
        let e = eff("{storage: {metadataSize: 1Gi}}");
        let waiting = Facts {
            generation: Some(1),
            stateful_set: Some(sts(0, 1, 1)),
            ..Default::default()
        };
        let first = compute(None, &e, &waiting, &time(100));
        assert_eq!(condition_status(Some(&first), READY), Some("False"));
        assert_eq!(first.phase, Some(Phase::Pending));

        let running = Facts {
            stateful_set: Some(sts(1, 1, 1)),
            server: Some(ServerFacts {
                state: ServerState::Configured,
                status: None,
                again_in: None,
            }),
            ..waiting.clone()
        };
        let second = compute(Some(&first), &e, &running, &time(200));
        assert_eq!(condition_status(Some(&second), READY), Some("True"));
        assert_eq!(second.phase, Some(Phase::Running));
        let t = |s: &DittoServerStatus, ty: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == ty)
                .map(|c| c.last_transition_time.clone())
        };
        assert_eq!(t(&second, READY), Some(time(200)), "flipped");
        assert_eq!(
            t(&second, CONFIG_READY),
            Some(time(100)),
            "unchanged keeps its time"
        );

        let third = compute(Some(&second), &e, &running, &time(300));
        assert_eq!(third, second, "nothing changed: identical status, no write");
    }

    fn server(state: ServerState) -> Option<ServerFacts> {
        Some(ServerFacts {
            state,
            status: None,
            again_in: None,
        })
    }

    #[test]
    fn server_configured_says_why_and_a_pass_without_calls_keeps_it() {
        let e = eff("{storage: {metadataSize: 1Gi}}");
        let ready = |state| Facts {
            stateful_set: Some(sts(1, 1, 1)),
            server: server(state),
            ..Default::default()
        };
        let reason = |s: &DittoServerStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == SERVER_CONFIGURED)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        let waiting = compute(None, &e, &ready(ServerState::NotReady), &time(1));
        assert_eq!(
            reason(&waiting),
            Some(("False".into(), "ServerNotReady".into()))
        );
        assert_eq!(condition_status(Some(&waiting), READY), Some("False"));
        let refused = compute(
            Some(&waiting),
            &e,
            &ready(ServerState::Account(SessionError::AdminRefused {
                secret: "d-admin-bootstrap-credentials".into(),
                detail: "401 Invalid username or password".into(),
            })),
            &time(2),
        );
        assert_eq!(
            reason(&refused),
            Some(("False".into(), "AdminLoginFailed".into()))
        );
        let message = &refused
            .conditions
            .iter()
            .find(|c| c.type_ == SERVER_CONFIGURED)
            .expect("condition")
            .message;
        assert!(
            message.contains(
                "put the admin's current password in Secret d-admin-bootstrap-credentials"
            ),
            "{message}"
        );
        let configured = compute(
            Some(&refused),
            &e,
            &ready(ServerState::Configured),
            &time(3),
        );
        assert_eq!(
            reason(&configured),
            Some(("True".into(), "Configured".into()))
        );
        assert_eq!(condition_status(Some(&configured), READY), Some("True"));
        // A pass that did not call the server keeps what the last one found.
        let kept = compute(
            Some(&configured),
            &e,
            &ready(ServerState::Unchanged),
            &time(4),
        );
        assert_eq!(kept, configured);
        // Stopped: nothing to configure, and not what makes it not ready.
        let stopped = eff("{replicas: 0, storage: {metadataSize: 1Gi}}");
        let s = compute(
            None,
            &stopped,
            &Facts {
                server: server(ServerState::Stopped),
                ..Default::default()
            },
            &time(5),
        );
        assert_eq!(reason(&s), Some(("False".into(), "Stopped".into())));
    }

    #[test]
    fn invalid_spec_fails_config_ready() {
        let e = eff("{storage: {metadataSize: 1Gi}}");
        let obs = Facts {
            invalid: Some("spec.replicas: bad".into()),
            ..Default::default()
        };
        let s = compute(None, &e, &obs, &time(1));
        assert_eq!(condition_status(Some(&s), CONFIG_READY), Some("False"));
        assert_eq!(condition_status(Some(&s), DEGRADED), Some("True"));
        assert_eq!(s.phase, Some(Phase::Failed));
    }

    #[test]
    fn percona_waiting_shows_database_not_ready() {
        let e = eff("{storage: {metadataSize: 1Gi}, percona: {enabled: true}}");
        let obs = Facts {
            percona_state: Some("initializing".into()),
            ..Default::default()
        };
        let s = compute(None, &e, &obs, &time(1));
        let db = s
            .conditions
            .iter()
            .find(|c| c.type_ == DATABASE_READY)
            .expect("DatabaseReady");
        assert_eq!(
            (db.status.as_str(), db.reason.as_str()),
            ("False", "PerconaNotReady")
        );
        assert_eq!(s.percona_cluster_name.as_deref(), Some("d-postgres"));
    }

    #[test]
    fn rollout_is_progressing_and_stopped_is_available() {
        let e = eff("{storage: {metadataSize: 1Gi}}");
        let rolling = Facts {
            stateful_set: Some(sts(1, 2, 1)),
            ..Default::default()
        };
        assert_eq!(
            condition_status(Some(&compute(None, &e, &rolling, &time(1))), PROGRESSING),
            Some("True")
        );
        let stopped = eff("{replicas: 0, storage: {metadataSize: 1Gi}}");
        let mut idle = sts(0, 1, 1);
        if let Some(s) = idle.status.as_mut() {
            s.updated_replicas = Some(0);
        }
        let s = compute(
            None,
            &stopped,
            &Facts {
                stateful_set: Some(idle),
                ..Default::default()
            },
            &time(1),
        );
        assert_eq!(s.phase, Some(Phase::Stopped));
        assert_eq!(condition_status(Some(&s), AVAILABLE), Some("True"));
    }

    #[test]
    fn endpoints_name_service_and_client_port() {
        let e = eff("{storage: {metadataSize: 1Gi}, smb: {enabled: true}}");
        let s = compute(None, &e, &Facts::default(), &time(1));
        let ep = s.endpoints.expect("endpoints");
        assert_eq!(ep.nfs.as_deref(), Some("d-file.ns.svc:2049"));
        assert_eq!(ep.smb.as_deref(), Some("d-file.ns.svc:445"));
        assert_eq!(ep.api.as_deref(), Some("d-api.ns.svc:8080"));
    }
}
