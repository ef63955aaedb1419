//! The server half of a pass: the DittoFS server brought in line with the spec
//! through its REST API, after the cluster half applied the children.
//!
//! 1. **when** — only for a running, ready pod (a dead server is not polled: the
//!    StatefulSet's next event brings the next pass), and only when something may
//!    have changed: a new generation, a change the poll saw (`poll.rs`), or a last
//!    pass that changed the server or failed. A converged DittoServer costs no
//!    request.
//! 2. **session** — the operator's own account (`dittofs::account`);
//! 3. **observe** — adapters, NFS settings, stores, shares and snapshot policies;
//! 4. **plan** — pure (`dittofs::plan`);
//! 5. **apply** — each step; a refusal fails that item only, a server that stops
//!    answering ends the pass.
//!
//! What it found becomes `status.server` and the ServerConfigured condition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::crd::{
    AdapterStatus, DittoServer, IdentityProviderStatus, ItemState, ServerStatus,
    SnapshotPolicyStatus,
};
use crate::defaults::{
    ACCOUNT_PASSWORD_KEY, ACCOUNT_REFRESH_OBTAINED_KEY, ACCOUNT_REFRESH_TOKEN_KEY,
    ADMIN_PASSWORD_KEY,
};
use crate::dittofs::account::{self, Credentials, Obtained, Session, SessionError};
use crate::dittofs::api::{
    self, CreateShareRequest, CreateStoreRequest, PatchNfsSettingsRequest, UpdateAdapterRequest,
    UpdateShareRequest, UpdateStoreRequest,
};
use crate::dittofs::plan::{self, Live, Plan, Step, Subject};
use crate::dittofs::{CallError, Sensitive, Server, tls};
use crate::effective::{ApiTls, EffectiveSpec};
use crate::resources::Children;

use super::context::Pass;
use super::events::Reason;
use super::memory::Synced;
use super::observe::{Observed, pod_ready};

/// After a pass changed the server, read it again this soon, to see the changes
/// take effect (an adapter restarting, a share being served): past the 5 s the
/// server caches its status reports (`runtime/checkers.go`, `StatusCacheTTL`).
pub const AGAIN_SOON: Duration = Duration::from_secs(6);
/// The server half's own bound within a pass (under the pass's 60 s): past it the
/// pass still records what happened, and what the server answered stays done.
pub const SERVER_BUDGET: Duration = Duration::from_secs(45);
/// First retry delay after a failure to configure the server; doubles to 5 min.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// What the server half found.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerState {
    /// `replicas: 0`: no server to talk to.
    Stopped,
    /// The pod is not ready (yet): no call.
    NotReady,
    /// Nothing may have changed since the last pass: no call, the status stands.
    Unchanged,
    /// Everything declared exists as declared.
    Configured,
    /// Waiting for something the operator cannot make (a Secret, a key).
    Waiting(String),
    /// Declared items differ in ways the operator does not change.
    Drifted(String),
    /// The server refused a change; its words.
    Refused(String),
    /// The operator's account cannot be used or made.
    Account(SessionError),
    /// The server did not answer, or failed.
    Unreachable(String),
}

/// What the status records of the server half.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    pub state: ServerState,
    /// The server as read in this pass (`None`: keep what the status says).
    pub status: Option<ServerStatus>,
    /// When to look again: soon after a change, later after a failure.
    pub again_in: Option<Duration>,
}

impl ServerFacts {
    fn only(state: ServerState) -> Self {
        Self {
            state,
            status: None,
            again_in: None,
        }
    }
}

/// Bring the server of `ds` in line with `eff`. `children` are the objects the
/// cluster half just applied (the account's password, the admin's).
pub async fn configure<L>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    observed: &Observed,
    children: &Children,
    last: Option<&ServerStatus>,
    p: &Pass<'_, L>,
) -> ServerFacts {
    let memory = p.memory();
    if eff.replicas == 0 {
        // Whatever starts next is read afresh.
        memory.update_server_side(&p.server, |side| side.due = true);
        return ServerFacts::only(ServerState::Stopped);
    }
    if !observed
        .stateful_set
        .as_ref()
        .is_some_and(|(_, sts)| pod_ready(sts))
    {
        // The pod restarts (a roll, a new node, maybe an empty database): it is
        // read again once ready.
        memory.update_server_side(&p.server, |side| side.due = true);
        return ServerFacts::only(ServerState::NotReady);
    }
    let side = memory.server_side(&p.server);
    let rollout = Rollout::of(eff, observed, children);
    // Since this process last talked to the server, its certificate Secret moved on
    // (or HTTPS was turned on or off), and the pod has not rolled for it yet.
    if side.synced.is_some()
        && side.tls_cert_version != rollout.cert_version
        && !rollout.pod_current
    {
        // A renewed REST API certificate (or HTTPS turned on or off) rolls the pod;
        // until then the pod that answers serves the old one, which a setting pinned
        // to the new tls.crt no longer trusts. No call before the roll: the pod is as
        // good as not ready.
        memory.update_server_side(&p.server, |side| side.due = true);
        return ServerFacts::only(ServerState::NotReady);
    }
    let generation = ds.metadata.generation;
    let versions = secret_versions(eff, observed);
    // The spec, or a Secret the calls depend on, moved since the last complete read.
    let inputs_moved = side
        .synced
        .as_ref()
        .is_none_or(|s| s.generation != generation || s.secret_versions != versions);
    if !(side.due || last.is_none() || inputs_moved) {
        return ServerFacts::only(ServerState::Unchanged);
    }
    // After a failure the retry waits for its backoff, whatever else triggered this
    // pass (our own Secret writes, a child's event), unless the inputs moved.
    if !inputs_moved
        && let Some(at) = side.retry_at
        && let Some(wait) = at.checked_duration_since(Instant::now())
        && !wait.is_zero()
    {
        return ServerFacts {
            state: ServerState::Unchanged,
            status: None,
            again_in: Some(wait),
        };
    }

    let outcome = match tokio::time::timeout(
        SERVER_BUDGET,
        sync(
            eff,
            observed,
            children,
            &rollout,
            last,
            side.session.as_ref(),
            p,
        ),
    )
    .await
    {
        Ok(outcome) => outcome,
        // What was answered stays done in the server, and the session is kept
        // (`sync` records it as soon as it has one): the next pass goes on.
        Err(_) => Outcome::failed(ServerState::Unreachable(format!(
            "the server did not finish answering within {} s",
            SERVER_BUDGET.as_secs()
        ))),
    };
    let failed = !matches!(
        outcome.state,
        ServerState::Configured | ServerState::Drifted(_) | ServerState::Waiting(_)
    );
    let mut again_in = None;
    memory.update_server_side(&p.server, |side| {
        if let Some(session) = &outcome.session {
            side.session = Some(session.clone());
        }
        if let Some(keep) = &outcome.keep_refresh {
            side.refresh_to_keep = Some(keep.clone());
        }
        if let Some(live) = &outcome.live {
            side.synced = Some(Synced {
                generation,
                secret_versions: versions.clone(),
                adapters: live.adapters.clone(),
                shares: live.shares.clone(),
                snapshot_policies: live.snapshot_policies.clone(),
                ldap: live.ldap.clone(),
                kerberos: live.kerberos.clone(),
            });
        }
        side.due = outcome.changed || failed;
        if failed {
            side.failures = side.failures.saturating_add(1);
            let wait = RETRY_BASE
                .saturating_mul(1u32.checked_shl(side.failures - 1).unwrap_or(u32::MAX))
                .min(RETRY_MAX);
            side.retry_at = Some(Instant::now() + wait);
            again_in = Some(wait);
        } else {
            side.failures = 0;
            side.retry_at = None;
            again_in = outcome.changed.then_some(AGAIN_SOON);
        }
    });
    publish(&outcome.state, outcome.drift.as_deref(), ds, p).await;
    ServerFacts {
        state: outcome.state,
        status: outcome.status,
        again_in,
    }
}

/// The resourceVersion of each Secret the calls depend on, as observed: those the
/// stores read, and those HTTPS to the API is set up from.
fn secret_versions(eff: &EffectiveSpec, observed: &Observed) -> BTreeMap<String, String> {
    eff.server_secrets()
        .into_iter()
        .chain(eff.api_tls.iter().flat_map(ApiTls::operator_reads))
        .filter_map(|name| {
            let version = observed.secrets.get(&name)?.data_version.clone()?;
            Some((name, version))
        })
        .collect()
}

/// What one sync did.
struct Outcome {
    state: ServerState,
    status: Option<ServerStatus>,
    session: Option<Session>,
    keep_refresh: Option<(Sensitive, String)>,
    live: Option<Live>,
    changed: bool,
    drift: Option<String>,
}

impl Outcome {
    fn failed(state: ServerState) -> Self {
        Self {
            state,
            status: None,
            session: None,
            keep_refresh: None,
            live: None,
            changed: false,
            drift: None,
        }
    }
}

async fn sync<L>(
    eff: &EffectiveSpec,
    observed: &Observed,
    children: &Children,
    rollout: &Rollout,
    last: Option<&ServerStatus>,
    current: Option<&Session>,
    p: &Pass<'_, L>,
) -> Outcome {
    let Some(password) = children
        .account_secret
        .as_ref()
        .and_then(|s| secret_value(s.data.as_ref(), ACCOUNT_PASSWORD_KEY))
    else {
        return Outcome::failed(ServerState::Waiting(
            "the operator's account Secret is not built yet".into(),
        ));
    };
    let admin_password = admin_password(eff, observed, children);
    // What the account Secret holds now: as this pass applied it.
    let stored_refresh = children
        .account_secret
        .as_ref()
        .and_then(|s| kept_refresh(s.data.as_ref()));
    let stored_token = stored_refresh
        .as_ref()
        .map(|(token, _)| Sensitive::new(token.clone()));
    let credentials = Credentials {
        admin_username: &eff.admin.username,
        admin_password: admin_password.as_ref(),
        password: &password,
        password_is_new: !observed.has_account_secret(eff),
        stored_refresh: stored_token.as_ref(),
    };
    let tls = match &eff.api_tls {
        None => None,
        Some(api_tls) => {
            let data = |name: &str| observed.secrets.get(name).and_then(|s| s.data.as_ref());
            let current = p.memory().server_side(&p.server).tls;
            match tls::client_tls(api_tls, &data, current.as_ref()) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    return Outcome::failed(ServerState::Waiting(format!(
                        "HTTPS to the REST API cannot be set up: {e}"
                    )));
                }
            }
        }
    };
    p.memory().update_server_side(&p.server, |side| {
        side.tls = tls.clone();
        side.tls_cert_version = rollout.cert_version.clone();
    });
    let server = Server::of(
        &p.ctx.dittofs,
        &eff.name,
        &eff.namespace,
        eff.ports.api.service,
        tls,
    );
    let admin_secret = &eff.admin.password.name;
    let (mut session, mut obtained) =
        match account::session(&server, &credentials, current, admin_secret).await {
            Ok(session) => session,
            Err(SessionError::Call(e)) => return Outcome::failed(unreachable_or_refused(e)),
            Err(e) => return Outcome::failed(ServerState::Account(e)),
        };
    remember_session(p, &session);
    let views = Views::of(eff, last);
    let mut live = read(&server, &session.access, views).await;
    if let Err(e) = &live
        && matches!(e.status(), Some(401 | 403))
        && matches!(obtained, Obtained::Kept | Obtained::Refreshed)
    {
        // The token was refused: the pod restarted with another signing key, or
        // the account lost its role. A new session logs in (and gives the role
        // back).
        let again = Credentials {
            stored_refresh: None,
            ..credentials
        };
        (session, obtained) = match account::session(&server, &again, None, admin_secret).await {
            Ok(session) => session,
            Err(SessionError::Call(e)) => return Outcome::failed(unreachable_or_refused(e)),
            Err(e) => return Outcome::failed(ServerState::Account(e)),
        };
        remember_session(p, &session);
        live = read(&server, &session.access, views).await;
    }
    let keep_refresh = keep_refresh(eff, &session, obtained, stored_refresh.as_ref());
    let token = &session.access;

    let live = match live {
        Ok(live) => live,
        Err(e) => {
            let mut outcome = Outcome::failed(unreachable_or_refused(e));
            outcome.session = Some(session);
            outcome.keep_refresh = keep_refresh;
            return outcome;
        }
    };
    let secrets = server_secret_values(eff, observed);
    let versions = secret_versions(eff, observed);
    let in_effect = last.is_some_and(|s| s.portmapper_port.is_some());
    let last_identity = last.map_or(&[][..], |s| s.identity_providers.as_slice());
    let known = plan::Known {
        portmapper_in_effect: in_effect,
        secrets: &secrets,
        versions: &versions,
        stores: last.map_or(&[], |s| s.stores.as_slice()),
        snapshot_policies: last.map_or(&[], |s| s.snapshot_policies.as_slice()),
        identity: last_identity,
        pod_current: rollout.pod_current,
    };
    let plan = plan::plan(eff, &live, &known);
    // A Kerberos write waits for a restart under way: look again soon.
    let restarting = plan
        .identity_providers
        .iter()
        .any(|p| p.state == ItemState::Pending && p.message.as_deref() == Some(plan::RESTARTING));
    let mut applied = apply(&server, token, eff, plan, live, in_effect, last_identity).await;
    applied.changed |= restarting;

    let state = if let Some(stopped) = applied.stopped {
        unreachable_or_refused(stopped)
    } else if !applied.refusals.is_empty() {
        ServerState::Refused(applied.refusals.join("; "))
    } else if !applied.plan.drift.is_empty() {
        ServerState::Drifted(applied.plan.drift.join("; "))
    } else if let Some(waiting) = applied.waiting() {
        ServerState::Waiting(waiting)
    } else {
        ServerState::Configured
    };
    let drift = (!applied.plan.drift.is_empty()).then(|| applied.plan.drift.join("; "));
    let status = ServerStatus {
        adapters: applied
            .live
            .adapters
            .iter()
            .map(|a| AdapterStatus {
                adapter_type: a.kind.clone(),
                port: a.port,
                enabled: a.enabled,
                running: a.running && a.status.status == "healthy",
            })
            .collect(),
        portmapper_port: applied.portmapper_port,
        stores: applied.plan.stores.clone(),
        shares: applied.plan.shares.clone(),
        snapshot_policies: applied.plan.snapshot_policies.clone(),
        unmanaged: applied.plan.unmanaged.clone(),
        identity_providers: applied.plan.identity_providers.clone(),
    };
    Outcome {
        state,
        status: Some(status),
        session: Some(session),
        keep_refresh,
        live: Some(applied.live),
        changed: applied.changed,
        drift,
    }
}

/// Keep the session as soon as there is one: a pass cut short by its budget must
/// not cost the next one a new login.
fn remember_session<L>(p: &Pass<'_, L>, session: &Session) {
    p.memory()
        .update_server_side(&p.server, |side| side.session = Some(session.clone()));
}

/// The admin password the pod starts with: the managed Secret as just built, or
/// the user's Secret as observed.
fn admin_password(
    eff: &EffectiveSpec,
    observed: &Observed,
    children: &Children,
) -> Option<Sensitive> {
    let secret = &eff.admin.password;
    if secret.managed {
        return children
            .managed_secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(secret.name.as_str()))
            .and_then(|s| secret_value(s.data.as_ref(), ADMIN_PASSWORD_KEY));
    }
    observed
        .secrets
        .get(&secret.name)
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(&secret.key))
        .map(|v| Sensitive::new(String::from_utf8_lossy(v).into_owned()))
}

fn secret_value(
    data: Option<&BTreeMap<String, k8s_openapi::ByteString>>,
    key: &str,
) -> Option<Sensitive> {
    data?
        .get(key)
        .map(|v| Sensitive::new(String::from_utf8_lossy(&v.0).into_owned()))
        .filter(|v| !v.is_empty())
}

/// The refresh token an account Secret keeps, and when it was obtained.
fn kept_refresh(
    data: Option<&BTreeMap<String, k8s_openapi::ByteString>>,
) -> Option<(String, String)> {
    let text = |key: &str| secret_value(data, key).map(|v| v.expose().to_string());
    Some((
        text(ACCOUNT_REFRESH_TOKEN_KEY)?,
        text(ACCOUNT_REFRESH_OBTAINED_KEY)?,
    ))
}

/// The data of the Secrets the stores read, as observed.
fn server_secret_values(eff: &EffectiveSpec, observed: &Observed) -> plan::SecretValues {
    eff.server_secrets()
        .into_iter()
        .filter_map(|name| {
            let data = observed.secrets.get(&name)?.data.clone()?;
            Some((name, data))
        })
        .collect()
}

/// A refresh token to keep in the account Secret: when none is kept, when the kept
/// one did not work (the session had to log in), or when it is past half its life
/// (`spec.identity.jwt.refreshTokenDuration`). Otherwise none: a converged
/// DittoServer writes nothing.
fn keep_refresh(
    eff: &EffectiveSpec,
    session: &Session,
    obtained: Obtained,
    stored: Option<&(String, String)>,
) -> Option<(Sensitive, String)> {
    let now = jiff::Timestamp::now();
    let keep = || Some((session.refresh.clone(), now.to_string()));
    let Some((_, obtained_at)) = stored else {
        return keep();
    };
    if matches!(obtained, Obtained::LoggedIn | Obtained::Provisioned) {
        return keep();
    }
    let lifetime =
        crate::duration::parse_go_duration_secs(&eff.jwt.refresh_token_duration).unwrap_or(0.0);
    let age = obtained_at
        .parse::<jiff::Timestamp>()
        .map(|t| now.duration_since(t).as_secs_f64())
        .unwrap_or(f64::MAX);
    if age > lifetime / 2.0 { keep() } else { None }
}

/// Which of the optional views a pass reads: the snapshot policies and each
/// identity provider's row, only while the spec declares some or the last status
/// still lists one (kept by the operator, or left alone and listed as unmanaged).
/// A server that never had them costs the six reads it always did.
#[derive(Clone, Copy, Debug)]
struct Views {
    snapshot_policies: bool,
    ldap: bool,
    kerberos: bool,
}

impl Views {
    fn of(eff: &EffectiveSpec, last: Option<&ServerStatus>) -> Self {
        let unmanaged =
            |prefix: &str| last.is_some_and(|s| s.unmanaged.iter().any(|u| u.starts_with(prefix)));
        let provider = |kind: &str| {
            last.is_some_and(|s| s.identity_providers.iter().any(|p| p.provider_type == kind))
                || unmanaged(&plan::unmanaged_provider(kind))
        };
        Self {
            snapshot_policies: !eff.server.snapshot_policies.is_empty()
                || last.is_some_and(|s| !s.snapshot_policies.is_empty())
                || unmanaged(plan::UNMANAGED_POLICY),
            ldap: eff.ldap.is_some() || provider(plan::LDAP),
            kerberos: eff.kerberos.is_some() || provider(plan::KERBEROS),
        }
    }
}

/// Every view the plan needs, sent together (a slow server costs one answer's
/// time, not one per view).
async fn read(server: &Server<'_>, token: &Sensitive, views: Views) -> Result<Live, CallError> {
    let policies = async {
        match views.snapshot_policies {
            true => server.snapshot_policies(token).await,
            false => Ok(Vec::new()),
        }
    };
    let ldap = async {
        match views.ldap {
            true => server.identity_provider(token, plan::LDAP).await.map(Some),
            false => Ok(None),
        }
    };
    let kerberos = async {
        match views.kerberos {
            true => server
                .identity_provider(token, plan::KERBEROS)
                .await
                .map(Some),
            false => Ok(None),
        }
    };
    let (
        adapters,
        nfs_settings,
        metadata_stores,
        local_block_stores,
        remote_block_stores,
        shares,
        snapshot_policies,
        ldap,
        kerberos,
    ) = futures::try_join!(
        server.adapters(token),
        server.nfs_settings(token),
        server.metadata_stores(token),
        server.block_stores(token, "local"),
        server.block_stores(token, "remote"),
        server.shares(token),
        policies,
        ldap,
        kerberos,
    )?;
    Ok(Live {
        adapters,
        nfs_settings: Some(nfs_settings),
        metadata_stores,
        local_block_stores,
        remote_block_stores,
        shares,
        snapshot_policies,
        ldap,
        kerberos,
    })
}

/// Where the pod stands against this pass's template, read once per pass.
struct Rollout {
    /// The pod runs the template this pass applied, rolled out.
    pod_current: bool,
    /// The resourceVersion of the REST API's certificate Secret, as observed.
    cert_version: Option<String>,
}

impl Rollout {
    fn of(eff: &EffectiveSpec, observed: &Observed, children: &Children) -> Self {
        Self {
            pod_current: pod_current(observed, children),
            cert_version: eff
                .api_tls
                .as_ref()
                .and_then(|tls| observed.secrets.get(&tls.cert_secret)?.data_version.clone()),
        }
    }
}

/// Does the pod run the template this pass applied, rolled out? A Kerberos write
/// waits for that: written during a restart, it would cost a second one.
fn pod_current(observed: &Observed, children: &Children) -> bool {
    use crate::resources::statefulset::KERBEROS_WRITTEN_ANNOTATION;
    let Some((_, sts)) = &observed.stateful_set else {
        return false;
    };
    let annotations = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        s.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default()
    };
    let (have, want) = (annotations(sts), annotations(&children.stateful_set));
    let same = [
        crate::resources::CONFIG_HASH_ANNOTATION,
        KERBEROS_WRITTEN_ANNOTATION,
    ]
    .iter()
    .all(|k| have.get(*k) == want.get(*k));
    let rolled = sts.status.as_ref().is_some_and(|st| {
        st.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0)
            && (st.update_revision.is_none() || st.current_revision == st.update_revision)
    });
    same && rolled
}

fn unreachable_or_refused(e: CallError) -> ServerState {
    if e.is_transient() {
        ServerState::Unreachable(e.to_string())
    } else {
        ServerState::Refused(e.to_string())
    }
}

/// What applying a plan did.
struct Applied {
    plan: Plan,
    /// The server as it is after the changes (adapters as their updates answered).
    live: Live,
    portmapper_port: Option<i32>,
    changed: bool,
    refusals: Vec<String>,
    /// A call that failed in a way that ends the pass (no answer, 5xx).
    stopped: Option<CallError>,
    /// The identity providers as the last status recorded them.
    last_identity: Vec<IdentityProviderStatus>,
}

impl Applied {
    /// What the declared items wait for, if any.
    fn waiting(&self) -> Option<String> {
        let plan = &self.plan;
        let items = plan
            .stores
            .iter()
            .map(|s| (format!("{} store {}", s.kind, s.name), s.state, &s.message))
            .chain(
                plan.shares
                    .iter()
                    .map(|s| (format!("share {}", s.name), s.state, &s.message)),
            )
            .chain(plan.snapshot_policies.iter().map(|p| {
                (
                    format!("snapshot policy of {}", p.share),
                    p.state,
                    &p.message,
                )
            }))
            .chain(plan.identity_providers.iter().map(|p| {
                (
                    format!("identity provider {}", p.provider_type),
                    p.state,
                    &p.message,
                )
            }));
        let waits: Vec<String> = items
            .filter(|(_, state, _)| *state == ItemState::Pending)
            .map(|(what, _, message)| format!("{what}: {}", message.as_deref().unwrap_or_default()))
            .collect();
        (!waits.is_empty()).then(|| waits.join("; "))
    }

    /// Mark the item of `step` failed with the server's words.
    fn refused(&mut self, step: &Step, e: &CallError) {
        let message = e.to_string();
        match step.subject() {
            Some(Subject::Store(kind, name)) => {
                if let Some(s) = self
                    .plan
                    .stores
                    .iter_mut()
                    .find(|s| s.kind == kind && s.name == name)
                {
                    s.state = ItemState::Failed;
                    s.message = Some(message.clone());
                    // Not given its keys: sent again at the next try.
                    s.secret_version = None;
                }
                // A share to be made on a store that could not be made waits for it.
                let waiting: Vec<String> = self
                    .plan
                    .steps
                    .iter()
                    .filter_map(|st| match st {
                        Step::CreateShare(share) if uses(share, kind, &name) => {
                            Some(share.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                for share in &mut self.plan.shares {
                    if waiting.contains(&share.name) {
                        share.state = ItemState::Pending;
                        share.message = Some(format!("waiting for {kind} store {name}"));
                    }
                }
            }
            Some(Subject::Share(name)) => {
                if let Some(s) = self.plan.shares.iter_mut().find(|s| s.name == name) {
                    s.state = ItemState::Failed;
                    s.message = Some(message.clone());
                }
            }
            Some(Subject::SnapshotPolicy(share)) => {
                if let Some(p) = self.policy(&share) {
                    p.state = ItemState::Failed;
                    p.message = Some(message.clone());
                }
            }
            Some(Subject::IdentityProvider(kind)) => {
                let last = self.last_identity.iter().find(|p| p.provider_type == kind);
                if let Some(p) = self
                    .plan
                    .identity_providers
                    .iter_mut()
                    .find(|p| p.provider_type == kind)
                {
                    p.state = ItemState::Failed;
                    p.message = Some(message.clone());
                    // Not given its password: sent again at the next try. Nothing
                    // new written: no restart for it.
                    p.secret_version = None;
                    p.written_digest = last.and_then(|l| l.written_digest.clone());
                    p.enabled = last.map_or(p.enabled, |l| l.enabled);
                }
            }
            None => {}
        }
        self.refusals.push(message);
    }
}

impl Applied {
    fn policy(&mut self, share: &str) -> Option<&mut SnapshotPolicyStatus> {
        self.plan
            .snapshot_policies
            .iter_mut()
            .find(|p| p.share == share)
    }

    /// A policy of a share that is neither in the server nor made in this pass
    /// (its store or its creation failed): marked waiting, and not sent.
    fn policy_waits(&mut self, share: &str) -> bool {
        let share_missing = !self.live.shares.iter().any(|s| s.name == share)
            && self
                .plan
                .shares
                .iter()
                .any(|s| s.name == share && s.state != ItemState::Ready);
        if share_missing && let Some(p) = self.policy(share) {
            p.state = ItemState::Pending;
            p.message = Some(format!("waiting for share {share}"));
        }
        share_missing
    }
}

fn uses(share: &crate::effective::Share, kind: &str, name: &str) -> bool {
    match kind {
        "metadata" => share.metadata_store == name,
        "local" => share.local_block_store == name,
        _ => share.remote_block_store.as_deref() == Some(name),
    }
}

/// Run the plan's steps in order.
async fn apply(
    server: &Server<'_>,
    token: &Sensitive,
    eff: &EffectiveSpec,
    plan: Plan,
    live: Live,
    portmapper_in_effect: bool,
    last_identity: &[IdentityProviderStatus],
) -> Applied {
    let portmapper_port = live
        .nfs_settings
        .as_ref()
        .map(|s| s.portmapper_port)
        .filter(|_| portmapper_in_effect && eff.server.portmapper);
    let steps = plan.steps.clone();
    let mut applied = Applied {
        plan,
        live,
        portmapper_port,
        changed: false,
        refusals: Vec::new(),
        stopped: None,
        last_identity: last_identity.to_vec(),
    };
    for step in &steps {
        // Shares wait for the stores that failed in this pass.
        if let Step::CreateShare(share) = step
            && applied
                .plan
                .shares
                .iter()
                .any(|s| s.name == share.name && s.state == ItemState::Pending)
        {
            continue;
        }
        if let Step::UpsertSnapshotPolicy { share, .. } = step
            && applied.policy_waits(share)
        {
            continue;
        }
        match run(server, token, eff, step, &mut applied).await {
            Ok(()) => {
                applied.changed = true;
                match step {
                    // The server had none: this one is the operator's.
                    Step::UpsertSnapshotPolicy {
                        share,
                        creates: true,
                        ..
                    } => {
                        if let Some(p) = applied.policy(share) {
                            p.owned = true;
                        }
                    }
                    Step::DeleteSnapshotPolicy { share } => {
                        applied.plan.snapshot_policies.retain(|p| &p.share != share)
                    }
                    _ => {}
                }
            }
            Err(e) if e.is_transient() => {
                applied.stopped = Some(e);
                break;
            }
            Err(e) => applied.refused(step, &e),
        }
    }
    applied
}

async fn run(
    server: &Server<'_>,
    token: &Sensitive,
    eff: &EffectiveSpec,
    step: &Step,
    applied: &mut Applied,
) -> Result<(), CallError> {
    match step {
        Step::Portmapper {
            enabled,
            store,
            restart_nfs,
        } => {
            let mut port = applied
                .live
                .nfs_settings
                .as_ref()
                .map(|s| s.portmapper_port);
            if *store {
                let settings = server
                    .patch_nfs_settings(
                        token,
                        &PatchNfsSettingsRequest {
                            portmapper_enabled: *enabled,
                        },
                    )
                    .await?;
                port = Some(settings.portmapper_port);
                applied.live.nfs_settings = Some(settings);
            }
            if *restart_nfs {
                // The setting takes effect when the adapter starts
                // (`pkg/adapter/nfs/settings.go`): stop it and start it again.
                for enabled in [false, true] {
                    let answer = server
                        .update_adapter(
                            token,
                            "nfs",
                            &UpdateAdapterRequest {
                                enabled: Some(enabled),
                                port: None,
                            },
                        )
                        .await?;
                    replace_adapter(&mut applied.live, answer);
                }
            }
            applied.portmapper_port = port.filter(|_| *enabled);
        }
        Step::Adapter { kind, change } => {
            let answer = server.update_adapter(token, kind, change).await?;
            replace_adapter(&mut applied.live, answer);
            // A restart of the NFS adapter also starts the portmapper as stored.
            if *kind == "nfs" && eff.server.portmapper {
                applied.portmapper_port = applied
                    .live
                    .nfs_settings
                    .as_ref()
                    .filter(|s| s.portmapper_enabled)
                    .map(|s| s.portmapper_port);
            }
        }
        Step::CreateMetadataStore { name, kind, config } => {
            server
                .create_metadata_store(
                    token,
                    &CreateStoreRequest {
                        name,
                        kind,
                        config: config.to_string(),
                    },
                )
                .await?;
        }
        Step::CreateBlockStore {
            tier,
            name,
            kind,
            config,
        } => {
            server
                .create_block_store(
                    token,
                    tier,
                    &CreateStoreRequest {
                        name,
                        kind,
                        config: config.to_string(),
                    },
                )
                .await?;
        }
        Step::UpdateBlockStore { tier, name, config } => {
            server
                .update_block_store(
                    token,
                    tier,
                    name,
                    &UpdateStoreRequest {
                        config: config.to_string(),
                    },
                )
                .await?;
        }
        Step::PutLdap(config) => {
            server
                .put_identity_provider(token, plan::LDAP, config)
                .await?;
        }
        Step::PutKerberos(config) => {
            server
                .put_identity_provider(token, plan::KERBEROS, config)
                .await?;
        }
        Step::CreateShare(share) => {
            server
                .create_share(
                    token,
                    &CreateShareRequest {
                        name: &share.name,
                        metadata_store_id: &share.metadata_store,
                        local_block_store: &share.local_block_store,
                        remote_block_store: share.remote_block_store.as_deref(),
                        read_only: share.read_only,
                        default_permission: share.default_permission.as_str(),
                    },
                )
                .await?;
        }
        Step::UpdateShare {
            name,
            read_only,
            default_permission,
        } => {
            server
                .update_share(
                    token,
                    name,
                    &UpdateShareRequest {
                        read_only: *read_only,
                        default_permission: default_permission.clone(),
                    },
                )
                .await?;
        }
        Step::UpsertSnapshotPolicy { share, request, .. } => {
            server.upsert_snapshot_policy(token, share, request).await?;
        }
        Step::DeleteSnapshotPolicy { share } => {
            match server.delete_snapshot_policy(token, share).await {
                // Removed meanwhile (by hand, or with its share): done.
                Err(e) if e.status() == Some(404) => {}
                other => other?,
            }
        }
    }
    Ok(())
}

fn replace_adapter(live: &mut Live, answer: api::Adapter) {
    match live.adapters.iter_mut().find(|a| a.kind == answer.kind) {
        Some(adapter) => *adapter = answer,
        None => live.adapters.push(answer),
    }
}

/// One event per state: published when its note changes, resolved when it ends.
/// A server the status already calls configured (a restarted operator reading it
/// again) gets no second ServerConfigured event.
async fn publish<L>(state: &ServerState, drift: Option<&str>, ds: &DittoServer, p: &Pass<'_, L>) {
    let (reason, note) = match state {
        ServerState::Configured => (
            Reason::ServerConfigured,
            "the server holds every declared adapter, store and share".to_string(),
        ),
        ServerState::Refused(message) => (Reason::ServerRefused, message.clone()),
        ServerState::Account(e) => (Reason::ServerAccount, e.to_string()),
        ServerState::Unreachable(message) => (Reason::ServerUnreachable, message.clone()),
        _ => (Reason::ServerDrift, String::new()),
    };
    for other in [
        Reason::ServerConfigured,
        Reason::ServerRefused,
        Reason::ServerAccount,
        Reason::ServerUnreachable,
    ] {
        if other != reason {
            p.events.resolved(other);
        }
    }
    let was_configured = p
        .memory()
        .written_status(&p.server)
        .as_ref()
        .or(ds.status.as_ref())
        .is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == crate::crd::condition::SERVER_CONFIGURED && c.status == "True")
        });
    let repeat = reason == Reason::ServerConfigured && was_configured;
    if !note.is_empty() && !repeat {
        p.events.publish(reason, note).await;
    }
    match drift {
        Some(drift) => {
            p.events
                .publish(Reason::ServerDrift, drift.to_string())
                .await
        }
        None => p.events.resolved(Reason::ServerDrift),
    }
}
