//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager).
//!
//! Every replica serves admission; only the Lease holder reconciles. Leadership is
//! published on a `watch` channel: `true` while held, `false` the moment it is lost
//! or cannot be confirmed. The Lease is released (so a successor takes over without
//! waiting for it to expire) only once the caller says no pass of ours can run any
//! more; until then it is renewed.
//!
//! The Lease is renewed `lease_grace` seconds before it expires, through a client
//! whose requests time out after half that: a renewal that hangs turns into a loss
//! (`false`) before the Lease can expire and a successor can start.

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
    #[error("cannot build the Lease client: {0}")]
    Client(#[source] kube::Error),
}

/// Start leader election; the receiver says whether this replica leads now. The
/// Lease is released when `release_when` is cancelled (after the reconciler has
/// stopped). `client` should be a [`lease_client`].
pub async fn leadership(
    client: Client,
    args: &LeaderArgs,
    release_when: CancellationToken,
) -> Result<watch::Receiver<bool>, LeaderError> {
    if !args.leader_elect {
        return Ok(always_leader());
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
        // One field manager per replica: kube-lease-manager's lock relies on the
        // server-side apply conflict between two holders' managers.
        .with_field_manager(format!("dittofs-operator-lease-{identity}"))
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            source,
        })?;
    let (tx, rx) = watch::channel(false);
    tracing::info!(identity, lease = %args.lease_name, "leader election started");
    tokio::spawn(hold(manager, tx, release_when));
    Ok(rx)
}

/// A client for the Lease alone, whose requests give up after half the grace
/// period, so a hung renewal is noticed while the Lease is still ours.
pub fn lease_client(mut config: kube::Config, args: &LeaderArgs) -> Result<Client, LeaderError> {
    let timeout = (Duration::from_secs(args.lease_grace) / 2).max(Duration::from_millis(500));
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    Client::try_from(config).map_err(LeaderError::Client)
}

/// Track the Lease until `release_when`, then release it.
async fn hold(manager: LeaseManager, tx: watch::Sender<bool>, release_when: CancellationToken) {
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
                        () = release_when.cancelled() => {}
                    }
                }
            },
            () = release_when.cancelled() => {
                tx.send_replace(false);
                if let Err(e) = manager.release().await {
                    tracing::warn!(error = %e, "cannot release the Lease; it expires on its own");
                }
                return;
            }
        }
    }
}

/// Leader election disabled: lead for good (shutdown stops the reconciler
/// gracefully through its own token).
fn always_leader() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    // Keep the sender alive: a closed channel would read as "lost".
    tokio::spawn(async move {
        tx.closed().await;
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
    async fn disabled_election_always_leads() {
        let rx = always_leader();
        assert!(*rx.borrow());
        tokio::task::yield_now().await;
        assert!(rx.has_changed().is_ok(), "the channel stays open");
        assert!(*rx.borrow());
    }
}
