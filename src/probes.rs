//! Plain-HTTP probe and metrics server (`--probe-listen`): `/healthz`, `/readyz`,
//! `/metrics`.
//!
//! Readiness is shared: each component (webhook certificate, lookup caches, the
//! controller) registers a [`ReadinessGate`] and flips it when it is ready; the
//! process is ready when every gate is, and never again once shutdown begins, so the
//! Service stops routing admission requests to a pod that is draining.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Errors of the probe server.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot listen for probes on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("probe server failed: {0}")]
    Serve(std::io::Error),
}

/// Process readiness: the conjunction of named gates, false once shutdown begins.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    gates: Mutex<Vec<Arc<GateState>>>,
    shutting_down: AtomicBool,
}

#[derive(Debug)]
struct GateState {
    name: &'static str,
    ready: AtomicBool,
}

/// One component's readiness; starts not ready.
#[derive(Clone, Debug)]
pub struct ReadinessGate {
    state: Arc<GateState>,
}

impl ReadinessGate {
    /// Mark this component ready (or not ready again).
    pub fn set_ready(&self, ready: bool) {
        self.state.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a component that must be ready before the process is. `name`
    /// appears in the `/readyz` body while the gate is closed.
    pub fn gate(&self, name: &'static str) -> ReadinessGate {
        let state = Arc::new(GateState {
            name,
            ready: AtomicBool::new(false),
        });
        self.lock_gates().push(state.clone());
        ReadinessGate { state }
    }

    /// Shutdown has begun: not ready from now on, whatever the gates say.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Ready when not shutting down and every gate is open.
    pub fn is_ready(&self) -> bool {
        !self.is_shutting_down() && self.pending().is_empty()
    }

    /// Names of the gates still closed.
    pub fn pending(&self) -> Vec<&'static str> {
        self.lock_gates()
            .iter()
            .filter(|g| !g.ready.load(Ordering::Acquire))
            .map(|g| g.name)
            .collect()
    }

    fn lock_gates(&self) -> std::sync::MutexGuard<'_, Vec<Arc<GateState>>> {
        // The list is only pushed to and read; a panic elsewhere cannot leave it torn.
        self.inner
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct ProbeState {
    readiness: Readiness,
    registry: Arc<Registry>,
}

/// The probe router (exposed for tests and for composition).
pub fn router(readiness: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ProbeState {
            readiness,
            registry,
        })
}

/// Bind the probe port (fail fast at start-up).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ProbeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProbeError::Bind { addr, source })
}

/// Serve probes until `shutdown` is cancelled. Cancel it last, after the webhook and
/// controller have drained, so `/readyz` keeps answering 503 meanwhile.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> Result<(), ProbeError> {
    axum::serve(listener, router(readiness, registry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(ProbeError::Serve)
}

/// The probe server running in the background; stop it last.
pub struct ProbeTask {
    task: tokio::task::JoinHandle<Result<(), ProbeError>>,
    shutdown: CancellationToken,
}

impl ProbeTask {
    /// Start serving probes on `listener` (bound earlier with [`bind`]).
    pub fn spawn(listener: TcpListener, readiness: Readiness, registry: Registry) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            readiness,
            Arc::new(registry),
            shutdown.clone(),
        ));
        Self { task, shutdown }
    }

    /// Stop after everything else has drained, so `/readyz` answered 503 meanwhile.
    pub async fn stop(self) -> Result<(), ProbeError> {
        self.shutdown.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "probe server task failed");
                Ok(())
            }
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ProbeState>) -> Response {
    if state.readiness.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let pending = state.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body = format!("waiting for: {}\n", pending.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(state): State<ProbeState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_gate_is_open_and_not_after_shutdown() {
        let readiness = Readiness::new();
        assert!(readiness.is_ready(), "no gates: ready");
        let cert = readiness.gate("certificate");
        let cache = readiness.gate("storageclass-cache");
        assert!(!readiness.is_ready());
        assert_eq!(
            readiness.pending(),
            vec!["certificate", "storageclass-cache"]
        );
        cert.set_ready(true);
        assert_eq!(readiness.pending(), vec!["storageclass-cache"]);
        cache.set_ready(true);
        assert!(readiness.is_ready());
        readiness.begin_shutdown();
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn readyz_reports_closed_gates_and_shutdown() {
        use tower::ServiceExt;
        let readiness = Readiness::new();
        let gate = readiness.gate("certificate");
        let app = router(readiness.clone(), Arc::new(Registry::default()));
        let call = |app: Router, path: &'static str| async move {
            let res = app
                .oneshot(
                    axum::http::Request::get(path)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = res.status();
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        let (status, body) = call(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("certificate"), "{body}");
        gate.set_ready(true);
        assert_eq!(call(app.clone(), "/readyz").await.0, StatusCode::OK);
        assert_eq!(call(app.clone(), "/healthz").await.0, StatusCode::OK);
        readiness.begin_shutdown();
        let (status, body) = call(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"));
        let (status, body) = call(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
