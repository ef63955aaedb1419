//! Watches, served from each type's event history with a configurable lag.
//!
//! Stands for kube-apiserver's watch cache: a watch from resourceVersion N gets
//! every event after N, in order; a watch without one (or `0`, or with
//! `sendInitialEvents=true`) first gets the current objects as ADDED events. A
//! resourceVersion older than the kept history gets a single ERROR event with a
//! 410 `Expired` Status. Label-selected watches see an object that stops matching
//! as DELETED and one that starts matching as ADDED. BOOKMARK events are sent
//! every bookmark interval when the client allows them.
//!
//! Lag: an event is delivered `lag(rv)` after its write, where the lag is the
//! configured base (per resource, or global) plus a seeded pseudo-random jitter.
//! Events of one type stay in order for every watcher (a later event with less
//! jitter waits for the one before it), so every client's cache trails the
//! store the way a loaded cluster's watch caches trail etcd. The initial events
//! of a watch come from the current state (like the LIST a watch starts after).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::Shared;
use super::errors::{self, ApiError};
use super::handlers::{Request, View, is_true, selectors};
use super::registry::{ResourceRoute, TypeInfo};
use super::render;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventKind, Record};

/// How late watch events arrive.
#[derive(Clone, Debug, Default)]
pub struct LagConfig {
    /// Lag of every event (unless its resource has its own).
    pub base: Duration,
    /// Up to this much more, pseudo-random per event.
    pub jitter: Duration,
    /// Seed of the jitter.
    pub seed: u64,
    /// Lag of the events of one resource (plural name, e.g. `statefulsets`).
    pub per_resource: HashMap<String, Duration>,
}

impl LagConfig {
    pub fn delay(&self, resource: &str, rv: u64) -> Duration {
        let base = self
            .per_resource
            .get(resource)
            .copied()
            .unwrap_or(self.base);
        if self.jitter.is_zero() {
            return base;
        }
        let mut z = rv ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let fraction = (z % 1_000_001) as f64 / 1_000_000.0;
        base + self.jitter.mul_f64(fraction)
    }
}

struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches(&obj["metadata"]["labels"])
            && self.fields.matches(obj)
    }

    /// The event a watcher with this filter sees for `record`, if any.
    fn event(&self, record: &Record) -> Option<EventKind> {
        let now = self.matches(&record.object);
        let before = record.previous.as_deref().is_some_and(|p| self.matches(p));
        match record.kind {
            EventKind::Added => now.then_some(EventKind::Added),
            EventKind::Deleted => (now || before).then_some(EventKind::Deleted),
            EventKind::Modified => match (before, now) {
                (true, true) => Some(EventKind::Modified),
                (false, true) => Some(EventKind::Added),
                (true, false) => Some(EventKind::Deleted),
                (false, false) => None,
            },
        }
    }
}

struct Watcher {
    shared: Arc<Shared>,
    ty: usize,
    info: Arc<TypeInfo>,
    version: String,
    view: View,
    filter: Filter,
    bookmarks: bool,
    /// The last resourceVersion this watcher is done with.
    cursor: u64,
    deadline: Instant,
    out: mpsc::Sender<Bytes>,
}

/// Start a watch; the returned channel carries the stream's lines.
pub fn start(
    shared: &Arc<Shared>,
    route: &ResourceRoute,
    req: &Request,
    view: View,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let (labels, fields) = selectors(&req.query)?;
    let filter = Filter {
        namespace: route.namespace.clone(),
        labels,
        fields,
    };
    let send_initial = is_true(req.query.get("sendInitialEvents"));
    let bookmarks = is_true(req.query.get("allowWatchBookmarks"));
    if send_initial && !bookmarks {
        return Err(errors::bad_request(
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and allowWatchBookmarks is set",
        ));
    }
    let requested = match req.query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| errors::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        // The server's default: --min-request-timeout (1800 s).
        .unwrap_or(Duration::from_secs(1800));
    let (tx, rx) = mpsc::channel(256);
    let state = shared.state();
    let type_state = state.type_state(route.ty).ok_or(ApiError::PlainNotFound)?;
    let info = type_state.info.clone();
    let mut initial = Vec::new();
    let cursor = match requested {
        Some(rv) if !send_initial => {
            if rv < type_state.compacted {
                let expired = errors::expired(rv, type_state.compacted + 1);
                if let ApiError::Status(_, status) = expired {
                    let _ = tx.try_send(Bytes::from(render::event("ERROR", &status)));
                }
                return Ok(rx);
            }
            rv
        }
        _ => {
            for (_, obj) in type_state.range(filter.namespace.as_deref(), None) {
                if filter.matches(obj) {
                    initial.push(obj.clone());
                }
            }
            state.rv
        }
    };
    drop(state);
    let watcher = Watcher {
        shared: shared.clone(),
        ty: route.ty,
        info,
        version: route.version.clone(),
        view,
        filter,
        bookmarks,
        cursor,
        deadline: Instant::now() + timeout,
        out: tx,
    };
    tokio::spawn(watcher.run(initial, send_initial));
    Ok(rx)
}

impl Watcher {
    async fn send(&self, kind: &str, obj: &Value) -> bool {
        let line = render::event(
            kind,
            &render::object(obj, &self.info, &self.version, self.view),
        );
        self.out.send(Bytes::from(line)).await.is_ok()
    }

    async fn bookmark(&self, initial_end: bool) -> bool {
        let obj = render::bookmark(
            &self.info,
            &self.version,
            self.view,
            self.cursor,
            initial_end,
        );
        self.out
            .send(Bytes::from(render::event("BOOKMARK", &obj)))
            .await
            .is_ok()
    }

    async fn run(mut self, initial: Vec<Arc<Value>>, send_initial: bool) {
        /// Counts the stream as open until the task ends, however it ends.
        struct Open(Arc<Shared>);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.open_watches.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.shared.open_watches.fetch_add(1, Ordering::Relaxed);
        let _open = Open(self.shared.clone());
        for obj in &initial {
            if !self.send("ADDED", obj).await {
                return;
            }
        }
        if send_initial && !self.bookmark(true).await {
            return;
        }
        let (mut latest, mut lag) = {
            let state = self.shared.state();
            let Some(t) = state.type_state(self.ty) else {
                return;
            };
            (t.latest.subscribe(), self.shared.lag.subscribe())
        };
        let interval = self.shared.bookmark_interval();
        let mut next_bookmark = Instant::now() + interval;
        loop {
            let now = Instant::now();
            let (due, next_due, expired) = match self.collect(now, lag.borrow().clone()) {
                Some(x) => x,
                // The type is no longer served.
                None => return,
            };
            if let Some(oldest) = expired {
                let status = errors::expired(self.cursor, oldest);
                if let ApiError::Status(_, status) = status {
                    let _ = self.send("ERROR", &status).await;
                }
                return;
            }
            for (kind, obj) in &due {
                if !self.send(kind.as_str(), obj).await {
                    return;
                }
            }
            if !due.is_empty() {
                continue;
            }
            let wake = next_due.unwrap_or(self.deadline).min(self.deadline);
            tokio::select! {
                changed = latest.changed() => if changed.is_err() { return },
                _ = lag.changed() => {}
                () = sleep_until(wake) => {
                    if Instant::now() >= self.deadline {
                        return;
                    }
                }
                () = sleep_until(next_bookmark), if self.bookmarks => {
                    self.catch_up_bookmark();
                    if !self.bookmark(false).await {
                        return;
                    }
                    next_bookmark = Instant::now() + interval;
                }
                () = self.out.closed() => return,
            }
        }
    }

    /// Events that are due now (advancing the cursor past them), when the next
    /// one will be, and the oldest kept resourceVersion if the cursor fell out of
    /// history. `None` when the type is gone.
    #[allow(clippy::type_complexity)]
    fn collect(
        &mut self,
        now: Instant,
        lag: LagConfig,
    ) -> Option<(Vec<(EventKind, Arc<Value>)>, Option<Instant>, Option<u64>)> {
        let state = self.shared.state();
        let t = state.type_state(self.ty)?;
        if self.cursor < t.compacted {
            return Some((Vec::new(), None, Some(t.compacted + 1)));
        }
        let start = t.history.partition_point(|r| r.rv <= self.cursor);
        let mut due = Vec::new();
        let mut next_due = None;
        for record in t.history.range(start..) {
            let at = record.at + lag.delay(&self.info.resource, record.rv);
            if at > now {
                next_due = Some(at);
                break;
            }
            self.cursor = record.rv;
            if let Some(kind) = self.filter.event(record) {
                due.push((kind, record.object.clone()));
            }
        }
        Some((due, next_due, None))
    }

    /// A bookmark may claim the store's resourceVersion when nothing of this type
    /// is still waiting to be delivered.
    fn catch_up_bookmark(&mut self) {
        let state = self.shared.state();
        if let Some(t) = state.type_state(self.ty)
            && t.history.back().is_none_or(|r| r.rv <= self.cursor)
        {
            self.cursor = self.cursor.max(state.rv);
        }
    }
}
