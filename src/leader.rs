//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager).
//!
//! Every replica serves admission; only the Lease holder reconciles. Leadership is
//! published on a `watch` channel: `true` while held, `false` the moment it is lost
//! (or cannot be confirmed), and the Lease is released on shutdown so a successor
//! takes over without waiting for it to expire.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Leader-election arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderArgs {
    /// Elect one reconciling replica through a Lease. Disable (`--leader-elect=false`)
    /// only for a single replica, e.g. local development.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "DITTOFS_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "dittofs-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "dittofs-system")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Seconds before expiry at which the holder renews.
    #[arg(long, default_value_t = 5)]
    pub lease_grace: u64,
}

/// Why leader election could not start.
#[derive(Debug, Error)]
pub enum LeaderError {
    #[error("cannot set up the Lease {namespace}/{name}: {source}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("--lease-grace ({grace}s) must be shorter than --lease-duration ({duration}s)")]
    Timing { grace: u64, duration: u64 },
}

/// Start leader election; the receiver says whether this replica leads now.
pub async fn leadership(
    client: Client,
    args: &LeaderArgs,
    shutdown: CancellationToken,
) -> Result<watch::Receiver<bool>, LeaderError> {
    if !args.leader_elect {
        return Ok(always_leader(shutdown));
    }
    if args.lease_grace >= args.lease_duration {
        return Err(LeaderError::Timing {
            grace: args.lease_grace,
            duration: args.lease_duration,
        });
    }
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let manager = LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration)
        .with_grace(args.lease_grace)
        .with_field_manager("dittofs-operator-lease")
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            source,
        })?;
    let (tx, rx) = watch::channel(false);
    tracing::info!(identity, lease = %args.lease_name, "leader election started");
    tokio::spawn(hold(manager, tx, shutdown));
    Ok(rx)
}

/// Track the Lease until shutdown, then release it.
async fn hold(manager: LeaseManager, tx: watch::Sender<bool>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            changed = manager.changed() => match changed {
                Ok(leading) => {
                    if tx.send_replace(leading) != leading {
                        tracing::info!(leading, "leadership changed");
                    }
                }
                Err(e) => {
                    // Cannot confirm the Lease: stop reconciling until we can.
                    if tx.send_replace(false) {
                        tracing::warn!(error = %e, "lease state unknown: no longer leading");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            },
            () = shutdown.cancelled() => {
                tx.send_replace(false);
                if let Err(e) = manager.release().await {
                    tracing::warn!(error = %e, "cannot release the Lease; it expires on its own");
                }
                return;
            }
        }
    }
}

/// Leader election disabled: lead until shutdown.
fn always_leader(shutdown: CancellationToken) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    tokio::spawn(async move {
        shutdown.cancelled().await;
        tx.send_replace(false);
    });
    rx
}

/// The pod name when running in a pod (hostname), else a unique fallback.
fn default_identity() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("dittofs-operator-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disabled_election_leads_until_shutdown() {
        let token = CancellationToken::new();
        let mut rx = always_leader(token.clone());
        assert!(*rx.borrow());
        token.cancel();
        rx.changed().await.expect("sender alive until it sends");
        assert!(!*rx.borrow());
    }
}
