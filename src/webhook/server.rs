//! The HTTPS accept loop: TCP → TLS (tokio-rustls) → HTTP/1.1 or HTTP/2 (hyper-util
//! `auto`) → the axum router, with handshake and header-read timeouts and a graceful
//! drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A client must finish the TLS handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An HTTP/1 client must send a request's headers within this time (slowloris
/// guard). hyper also applies it between keep-alive requests, so an HTTP/1 connection
/// idle this long is closed. The API server negotiates h2 (see
/// [`super::tls::ALPN_PROTOCOLS`]), where this does not apply; HTTP/1 clients (curl,
/// an API server with HTTP/2 disabled) simply reconnect.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// In-flight requests get this long to finish once shutdown begins (above the API
/// server's 10 s default webhook timeout would be pointless: it has given up by then).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Serve `router` over TLS on `listener` until `shutdown`, then stop accepting and
/// drain open connections (bounded by [`DRAIN_TIMEOUT`]).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();

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
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = TowerToHyperService::new(router);
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(connections = graceful.count(), "webhook draining");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("webhook drain timed out; closing the remaining connections");
    }
}
