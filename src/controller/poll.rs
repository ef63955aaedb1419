//! The drift poll: a change made by hand in a DittoFS server (an adapter moved or
//! disabled with dfsctl, a share deleted) is noticed without any Kubernetes event.
//!
//! Each running, configured server is read once per `--poll-interval`, at a second
//! of the interval fixed by its uid, so 1,000 servers at 60 s make about 17 reads a
//! second, evenly. At most [`CONCURRENT_READS`] are in flight: the others of that
//! second wait for a turn, never skip theirs, and a server whose last read has not
//! ended is not read again. One read per visit, the adapter list and the share list taking
//! turns: a change of either is noticed within two intervals. A read that differs
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
use crate::dittofs::api::Adapter;
use crate::dittofs::{CallError, Server};
use crate::effective::EffectiveSpec;

use super::context::Context;
use super::memory::ServerSide;
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
            let Some((server, base)) = pollable(&ctx, &stored) else {
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
                    visit(&ctx, &triggers, &server, &base).await;
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

/// A server worth a read: running, its pod ready, configured by a completed pass
/// that is not due again anyway. Its reference and API address.
fn pollable<L>(
    ctx: &Context<L>,
    stored: &StoredServer,
) -> Option<(ServerRef, (String, String, i32))> {
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
    Some((server, (eff.name, eff.namespace, eff.ports.api.service)))
}

/// One read of one server; a difference triggers a pass.
async fn visit<L>(
    ctx: &Context<L>,
    triggers: &Triggers,
    server: &ServerRef,
    (name, namespace, port): &(String, String, i32),
) {
    let memory = ctx.memory();
    let side = memory.server_side(server);
    let (Some(session), Some(synced)) = (side.session.clone(), side.synced.clone()) else {
        return;
    };
    let api = Server::of(&ctx.dittofs, name, namespace, *port, side.tls.clone());
    let session = match renewed(&api, session).await {
        Ok(session) => session,
        Err(e) => return due(ctx, triggers, server, refused(&e)),
    };
    let differs = if side.poll_shares_next {
        api.shares(&session.access)
            .await
            .map(|shares| shares != synced.shares)
    } else {
        api.adapters(&session.access)
            .await
            .map(|adapters| fingerprint(&adapters) != fingerprint(&synced.adapters))
    };
    memory.update_server_side(server, |s| {
        s.session = Some(session.clone());
        s.poll_shares_next = !side.poll_shares_next;
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
