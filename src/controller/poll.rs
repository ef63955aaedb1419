//! The drift poll: a change made by hand in a DittoFS server (an adapter moved or
//! disabled with dfsctl, a share deleted) is noticed without any Kubernetes event.
//!
//! Each running, configured server is read once per `--poll-interval`, at a second
//! of the interval fixed by its uid, so 1,000 servers at 60 s make about 17 reads a
//! second, evenly. At most [`CONCURRENT_READS`] are in flight: the others of that
//! second wait for a turn, never skip theirs, and a server whose last read has not
//! ended is not read again. One list per visit, in turn: the adapters, the shares
//! and, when the spec declares some, the snapshot policies and the identity
//! providers' rows (one read for each declared provider): a change of any is
//! noticed within two to four intervals. A read that differs
//! from what the last pass saw marks the server due and triggers a pass; the same
//! view costs nothing more. The poll never writes to the server (a session about to
//! expire is refreshed, which DittoFS does without a database write).

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;
use tokio::sync::Semaphore;

use crate::dittofs::account::{RENEW_MARGIN, Session};
use crate::dittofs::api::{Adapter, KerberosConfig, LdapConfig, SnapshotPolicy};
use crate::dittofs::plan;
use crate::dittofs::{CallError, Server};
use crate::effective::EffectiveSpec;

use super::context::Context;
use super::memory::{PollTurns, PollView, ServerSide, Synced};
use super::observe::pod_ready;
use super::stored::{ServerRef, StoredServer};
use super::watches::Triggers;

/// Reads in flight at once, across servers.
const CONCURRENT_READS: usize = 16;

/// Poll until dropped (the leadership term ends).
pub async fn run<L: Send + Sync + 'static>(ctx: Arc<Context<L>>, triggers: Triggers) {
    let slots = ctx.poll_interval.as_secs().max(1);
    let limit = Arc::new(Semaphore::new(CONCURRENT_READS));
    let in_flight: Arc<Mutex<HashSet<ServerRef>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut second: u64 = 0;
    loop {
        ticker.tick().await;
        for stored in ctx.stores.servers.state() {
            if slot(&stored, slots) != second % slots {
                continue;
            }
            let Some((server, target)) = pollable(&ctx, &stored) else {
                continue;
            };
            if !lock(&in_flight).insert(server.clone()) {
                continue;
            }
            let (ctx, triggers) = (ctx.clone(), triggers.clone());
            let (limit, in_flight) = (limit.clone(), in_flight.clone());
            tokio::spawn(async move {
                // Closed only if the semaphore were: never.
                if let Ok(_turn) = limit.acquire_owned().await {
                    visit(&ctx, &triggers, &server, &target).await;
                }
                lock(&in_flight).remove(&server);
            });
        }
        second = second.wrapping_add(1);
    }
}

/// The second of the interval at which `stored` is read.
fn slot(stored: &StoredServer, slots: u64) -> u64 {
    let mut hasher = DefaultHasher::new();
    stored.metadata.uid.hash(&mut hasher);
    hasher.finish() % slots
}

/// Where a visit reads, and what.
struct Target {
    name: String,
    namespace: String,
    /// The `<name>-api` Service port.
    port: i32,
    /// The optional lists the spec declares, which take a turn.
    turns: PollTurns,
    /// The identity providers it declares.
    ldap: bool,
    kerberos: bool,
}

/// A server worth a read: running, its pod ready, configured by a completed pass
/// that is not due again anyway. Its reference and what to read.
fn pollable<L>(ctx: &Context<L>, stored: &StoredServer) -> Option<(ServerRef, Target)> {
    if stored.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ds = stored.server().ok()?;
    let eff = EffectiveSpec::resolve(&ds);
    if eff.replicas == 0 {
        return None;
    }
    let sts = ctx
        .stores
        .stateful_sets
        .get(&ObjectRef::new(&eff.name).within(&eff.namespace))?;
    if !pod_ready(&sts) {
        return None;
    }
    let server = ObjectRef::from(stored);
    let side = ctx.memory().server_side(&server);
    if side.due || side.synced.is_none() || side.session.is_none() {
        return None;
    }
    let target = Target {
        turns: PollTurns {
            snapshot_policies: !eff.server.snapshot_policies.is_empty(),
            identity_providers: eff.ldap.is_some() || eff.kerberos.is_some(),
        },
        ldap: eff.ldap.is_some(),
        kerberos: eff.kerberos.is_some(),
        port: eff.ports.api.service,
        name: eff.name,
        namespace: eff.namespace,
    };
    Some((server, target))
}

/// One read of one server; a difference triggers a pass.
async fn visit<L>(ctx: &Context<L>, triggers: &Triggers, server: &ServerRef, target: &Target) {
    let memory = ctx.memory();
    let side = memory.server_side(server);
    let (Some(session), Some(synced)) = (side.session.clone(), side.synced.clone()) else {
        return;
    };
    let api = Server::of(
        &ctx.dittofs,
        &target.name,
        &target.namespace,
        target.port,
        side.tls.clone(),
    );
    let session = match renewed(&api, session).await {
        Ok(session) => session,
        Err(e) => return due(ctx, triggers, server, refused(&e)),
    };
    let differs = match side.poll_next {
        PollView::Adapters => api
            .adapters(&session.access)
            .await
            .map(|adapters| fingerprint(&adapters) != fingerprint(&synced.adapters)),
        PollView::Shares => api
            .shares(&session.access)
            .await
            .map(|shares| shares != synced.shares),
        PollView::SnapshotPolicies => api
            .snapshot_policies(&session.access)
            .await
            .map(|policies| by_share(policies) != by_share(synced.snapshot_policies.clone())),
        PollView::IdentityProviders => identity_rows_differ(&api, &session, target, &synced).await,
    };
    memory.update_server_side(server, |s| {
        s.session = Some(session.clone());
        s.poll_next = side.poll_next.next(target.turns);
    });
    match differs {
        Ok(false) => {}
        Ok(true) => due(ctx, triggers, server, false),
        // A server that stopped answering as it did: a pass looks. A token it
        // refuses (a new signing key, a changed account) is dropped: the pass logs in.
        Err(e) => due(ctx, triggers, server, refused(&e)),
    }
}

fn refused(e: &CallError) -> bool {
    matches!(e.status(), Some(401 | 403))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The session, refreshed when its access token is about to expire.
async fn renewed(api: &Server<'_>, session: Session) -> Result<Session, CallError> {
    if session.access_expires > Instant::now() + RENEW_MARGIN {
        return Ok(session);
    }
    let answer = api.refresh(&session.refresh).await?;
    let lifetime = Duration::from_secs(u64::try_from(answer.expires_in).unwrap_or(0));
    Ok(Session {
        access: answer.access_token,
        access_expires: Instant::now() + lifetime,
        refresh: answer.refresh_token,
    })
}

/// A pass should look at `server`; `drop_session` when its token was refused.
fn due<L>(ctx: &Context<L>, triggers: &Triggers, server: &ServerRef, drop_session: bool) {
    ctx.memory()
        .update_server_side(server, |side: &mut ServerSide| {
            side.due = true;
            if drop_session {
                side.session = None;
            }
        });
    triggers.send(server.clone());
}

/// Do the rows of the declared identity providers differ from the last pass's?
/// (The secrets read back redacted, so a row compares as a whole.)
async fn identity_rows_differ(
    api: &Server<'_>,
    session: &Session,
    target: &Target,
    synced: &Synced,
) -> Result<bool, CallError> {
    let ldap = async {
        match target.ldap {
            true => api
                .identity_provider::<LdapConfig>(&session.access, plan::LDAP)
                .await
                .map(|row| Some(row) != synced.ldap),
            false => Ok(false),
        }
    };
    let kerberos = async {
        match target.kerberos {
            true => api
                .identity_provider::<KerberosConfig>(&session.access, plan::KERBEROS)
                .await
                .map(|row| Some(row) != synced.kerberos),
            false => Ok(false),
        }
    };
    let (ldap, kerberos) = futures::try_join!(ldap, kerberos)?;
    Ok(ldap || kerberos)
}

/// Policies in share order, whatever order the server lists them in.
fn by_share(mut policies: Vec<SnapshotPolicy>) -> Vec<SnapshotPolicy> {
    policies.sort_by(|a, b| a.share.cmp(&b.share));
    policies
}

/// What of an adapter the Services and the status depend on.
fn fingerprint(adapters: &[Adapter]) -> Vec<(&str, i32, bool, bool)> {
    let mut out: Vec<_> = adapters
        .iter()
        .map(|a| {
            (
                a.kind.as_str(),
                a.port,
                a.enabled,
                a.running && a.status.status == "healthy",
            )
        })
        .collect();
    out.sort();
    out
}
