//! Process shutdown: SIGTERM/SIGINT → not ready → (delay) → drain.
//!
//! One [`CancellationToken`] is shared by every long-running part (webhook, controller,
//! background refreshers); the probe server gets its own token, cancelled last.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::probes::Readiness;

/// Spawn the signal watcher. On the first SIGTERM or SIGINT: readiness turns false at
/// once, then after `delay` (time for endpoints to drop this pod, so the API server
/// stops sending it admission requests) `token` is cancelled and the servers drain.
/// A second signal exits immediately.
pub fn on_signal(token: CancellationToken, readiness: Readiness, delay: Duration) {
    tokio::spawn(async move {
        if let Err(e) = wait_for_signal().await {
            tracing::error!(error = %e, "cannot listen for shutdown signals; shutting down");
        }
        readiness.begin_shutdown();
        tracing::info!(
            delay_seconds = delay.as_secs_f64(),
            "shutdown signal received: no longer ready, draining after the delay"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            result = wait_for_signal() => {
                let _ = result;
                tracing::warn!("second shutdown signal: exiting now");
                std::process::exit(130);
            }
        }
        token.cancel();
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second shutdown signal: exiting now");
            std::process::exit(130);
        }
    });
}

/// Wait for SIGTERM or SIGINT.
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
