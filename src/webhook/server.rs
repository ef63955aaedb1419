//! The HTTPS accept loop: TCP → TLS (tokio-rustls) → HTTP/1.1 or HTTP/2 (hyper-util
//! `auto`) → the axum router, bounded against slow and hostile clients, with a
//! graceful drain on shutdown.
//!
//! Every limit is in [`Limits`]; `docs/security.md` gives the reason for each value.
//! The idea: a connection costs little while it exists, and exists only while it is
//! useful. A connection that has not yet answered a request successfully is
//! *unproven*: it must do so within [`FIRST_REQUEST_TIMEOUT`]. At the connection cap a
//! new connection takes the place of the oldest unproven one or, if all are proven,
//! of the one idle the longest, so clients holding connections (slowly, or by
//! sending a review now and then) never lock out the API server, whose connections
//! prove themselves on their first review and stay busy.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Largest accepted request body: an UPDATE review carries the object twice (object
/// and oldObject, each up to the API server's 1.5 MiB object limit in etcd) plus the
/// envelope (uid, kinds, userInfo, options: a few KiB). 3 MiB + 64 KiB.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024 + 64 * 1024;

/// A client must finish the TLS handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An HTTP/1 client must send a request's headers within this time (slowloris
/// guard). hyper also applies it between keep-alive requests, so an HTTP/1 connection
/// idle this long is closed. The API server negotiates h2 (see
/// [`super::tls::ALPN_PROTOCOLS`]), where this does not apply; HTTP/1 clients (curl,
/// an API server with HTTP/2 disabled) simply reconnect.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The body must arrive whole within this time after the headers (the API server
/// sends a review in one go; 3 MiB take milliseconds on a cluster network). With
/// [`HEADER_READ_TIMEOUT`], a whole HTTP/1 request is read within 10 s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A new connection must answer its first request successfully within this time
/// after accept, else it is closed as soon as no request is in flight: bounds
/// connections that never send a request (an HTTP/2 connection has no header
/// timeout) or only send failing ones (each bounded by the body deadline).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// A proven connection with no request in flight for this long is closed (HTTP/2:
/// GOAWAY, so the client knows no request was lost).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After a graceful close (GOAWAY, or `Connection: close` once the response is out),
/// a connection gets this long to finish before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// In-flight requests get this long to finish once shutdown begins (above the API
/// server's 10 s default webhook timeout would be pointless: it has given up by then).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection. The API server multiplexes reviews over
/// few connections; 32 concurrent reviews per connection is far above what one
/// DittoServer workload produces and bounds what one connection can buffer.
pub const MAX_CONCURRENT_STREAMS: u32 = 32;
/// Open connections at once: bounds the memory of held connections (TLS state and
/// buffers, HTTP state, the task; see docs/benchmarks.md for the measured figure),
/// far above what the API server opens. At the cap a new connection takes the place
/// of the oldest unproven one, else of the proven one idle the longest.
pub const MAX_CONNECTIONS: usize = 512;
/// TLS handshakes in progress at once. A handshake is the most CPU a client can make
/// the server spend (key exchange and signature, ~0.3 ms); all of them queued at once
/// in front of the reviews of established connections would delay those by the whole
/// queue. More handshakes wait for their turn within [`TLS_HANDSHAKE_TIMEOUT`].
pub const MAX_CONCURRENT_HANDSHAKES: usize = 16;
/// Request bodies buffered at once, all requests together (the body of a request
/// counts from its first byte until its answer is sent). Ten of the largest
/// reviews, or thousands of real ones.
pub const BODY_BUDGET_BYTES: usize = 32 * 1024 * 1024;

/// The limits the server enforces (see the constants for the reasons).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_concurrent_handshakes: usize,
    pub tls_handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub first_request_timeout: Duration,
    pub idle_timeout: Duration,
    pub close_grace: Duration,
    pub max_concurrent_streams: u32,
    pub max_body_bytes: usize,
    pub body_budget_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_concurrent_handshakes: MAX_CONCURRENT_HANDSHAKES,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            close_grace: CLOSE_GRACE,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            max_body_bytes: MAX_BODY_BYTES,
            body_budget_bytes: BODY_BUDGET_BYTES,
        }
    }
}

/// Serve `router` over TLS on `listener` until `shutdown`, then stop accepting and
/// drain open connections (bounded by [`DRAIN_TIMEOUT`]).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams);
    let connections = Arc::new(Connections::new(limits.max_connections));
    let server = Arc::new(Server {
        acceptor,
        builder,
        router,
        handshakes: Semaphore::new(limits.max_concurrent_handshakes.max(1)),
        limits,
        shutdown: shutdown.clone(),
    });

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = connections.admit() else {
            // Every connection is proven and busy: refuse rather than cut a review short.
            tracing::warn!(%peer, max = server.limits.max_connections, "connection cap reached; new connection refused");
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "cannot set TCP_NODELAY");
        }
        tokio::spawn(serve_connection(server.clone(), stream, slot));
    }

    drop(listener);
    tracing::info!(connections = connections.open(), "webhook draining");
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.all_closed())
        .await
        .is_err()
    {
        tracing::warn!("webhook drain timed out; closing the remaining connections");
    }
}

/// What every connection task shares.
struct Server {
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    limits: Limits,
    handshakes: Semaphore,
    shutdown: CancellationToken,
}

async fn serve_connection(server: Arc<Server>, stream: TcpStream, slot: Slot) {
    let Server {
        acceptor,
        builder,
        router,
        limits,
        handshakes,
        shutdown,
    } = &*server;
    // The handshake timeout covers the wait for a turn too.
    let handshake = async {
        let _turn = handshakes.acquire().await;
        acceptor.accept(stream).await
    };
    let handshake = tokio::select! {
        () = slot.evicted.cancelled() => return,
        handshake = tokio::time::timeout(limits.tls_handshake_timeout, handshake) => handshake,
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let activity = slot.activity.clone();
    let service = {
        let activity = activity.clone();
        let slot = slot.0.clone();
        hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let request_guard = activity.start();
            let slot = slot.clone();
            let response = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = match response.await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if response.status().is_success() {
                    slot.prove();
                }
                drop(request_guard);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    loop {
        // Registered before reading the state, so no change is missed.
        let changed = activity.changed.notified();
        let deadline = activity.idle_deadline(limits, slot.is_proven());
        let closing = tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = slot.evicted.cancelled() => {
                tracing::debug!("connection closed to admit a new one at the cap");
                return;
            }
            () = shutdown.cancelled() => "shutdown",
            () = sleep_until_some(deadline) => "idle",
            () = changed => continue,
        };
        tracing::debug!(reason = closing, "closing connection");
        connection.as_mut().graceful_shutdown();
        break;
    }
    let grace = if shutdown.is_cancelled() {
        DRAIN_TIMEOUT
    } else {
        limits.close_grace
    };
    let _ = tokio::time::timeout(grace, connection).await;
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on one connection, and since when it has been idle.
struct Activity {
    in_flight: AtomicUsize,
    accepted: Instant,
    idle_since: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            accepted,
            idle_since: Mutex::new(accepted),
            changed: Notify::new(),
        }
    }

    fn start(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        RequestGuard(self.clone())
    }

    /// Since when nothing has been in flight; `None` while a request is.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(
            *self
                .idle_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// When the connection is to be closed if nothing happens: never while a request
    /// is in flight (the body deadline and the review budget bound those). An
    /// unproven connection counts from accept, so failing requests do not extend it.
    fn idle_deadline(&self, limits: &Limits, proven: bool) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if !proven {
            return Some(self.accepted + limits.first_request_timeout);
        }
        let since = *self
            .idle_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(since + limits.idle_timeout)
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *activity
                .idle_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        }
        activity.changed.notify_one();
    }
}

/// The open connections, in accept order, under a cap.
struct Connections {
    max: usize,
    state: Mutex<ConnectionsState>,
    closed: Notify,
}

#[derive(Default)]
struct ConnectionsState {
    next_id: u64,
    /// Open connections by accept order (oldest first). An evicted connection leaves
    /// at once: its slot is handed over before its task has ended.
    open: BTreeMap<u64, Arc<SlotInner>>,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            max,
            state: Mutex::new(ConnectionsState::default()),
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionsState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// A slot for a new connection. At the cap one connection makes room: the oldest
    /// unproven one (a slow or failing client, or one still in its handshake), else
    /// the proven one idle the longest with nothing in flight. `None` when every open
    /// connection is proven and busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.lock();
        if state.open.len() >= self.max {
            let victim = state
                .open
                .iter()
                .find(|(_, slot)| !slot.is_proven())
                .or_else(|| {
                    state
                        .open
                        .iter()
                        .filter_map(|entry| entry.1.activity.idle_since().map(|t| (t, entry)))
                        .min_by_key(|(since, _)| *since)
                        .map(|(_, entry)| entry)
                })
                .map(|(id, _)| *id)?;
            if let Some(slot) = state.open.remove(&victim) {
                slot.evicted.cancel();
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let slot = Arc::new(SlotInner {
            id,
            connections: Arc::downgrade(self),
            evicted: CancellationToken::new(),
            proven: AtomicBool::new(false),
            activity: Arc::new(Activity::new(Instant::now())),
        });
        state.open.insert(id, slot.clone());
        Some(Slot(slot))
    }

    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// One connection's place under the cap, owned by its task and released when the
/// task ends (request futures that outlive it only hold the [`SlotInner`]).
struct Slot(Arc<SlotInner>);

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(connections) = self.0.connections.upgrade() else {
            return;
        };
        let mut state = connections.lock();
        // An evicted connection left the registry already (its place was handed over).
        if state
            .open
            .get(&self.0.id)
            .is_some_and(|slot| Arc::ptr_eq(slot, &self.0))
        {
            state.open.remove(&self.0.id);
        }
        drop(state);
        connections.closed.notify_waiters();
    }
}

struct SlotInner {
    id: u64,
    connections: std::sync::Weak<Connections>,
    evicted: CancellationToken,
    proven: AtomicBool,
    activity: Arc<Activity>,
}

impl std::ops::Deref for Slot {
    type Target = SlotInner;
    fn deref(&self) -> &SlotInner {
        &self.0
    }
}

impl SlotInner {
    fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// The connection answered a request successfully: from now on it is evicted only
    /// when idle, and only if no unproven connection can make room instead.
    fn prove(&self) {
        self.proven.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_oldest_unproven_connection_makes_room() {
        let connections = Arc::new(Connections::new(2));
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        first.prove();
        // The cap is reached: the oldest unproven (second) is evicted for the third.
        let third = connections.admit().unwrap();
        assert!(second.evicted.is_cancelled());
        assert!(!first.evicted.is_cancelled());
        assert_eq!(connections.open(), 2);
        drop(second);
        assert_eq!(connections.open(), 2, "the evicted slot was handed over");
        third.prove();
        // Every connection is proven: the one idle the longest (first) makes room.
        let fourth = connections.admit().unwrap();
        assert!(first.evicted.is_cancelled());
        assert!(!third.evicted.is_cancelled());
        // Proven and busy: nothing can make room.
        fourth.prove();
        let _busy_third = third.activity.start();
        let _busy_fourth = fourth.activity.start();
        assert!(connections.admit().is_none());
        assert_eq!(connections.open(), 2);
        drop(third);
        drop(_busy_third);
        assert_eq!(connections.open(), 1, "a closed connection leaves");
        assert!(connections.admit().is_some());
    }
}
