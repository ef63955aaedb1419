//! `dittofs-operator webhook`: the admission server alone.

use std::process::ExitCode;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::WebhookArgs;
use crate::probes::{self, ProbeError, ProbeTask, Readiness};
use crate::validation::Offline;
use crate::webhook::{KubeLookup, Webhook, WebhookError, WebhookMetrics};

#[derive(Debug, thiserror::Error)]
enum WebhookCommandError {
    #[error("cannot reach the cluster (use --offline to skip cluster checks): {0}")]
    Client(kube::Error),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Probes(#[from] ProbeError),
}

/// Run `webhook` until SIGTERM/SIGINT.
pub fn run(args: &WebhookArgs) -> ExitCode {
    super::run_async("webhook", serve(args))
}

async fn serve(args: &WebhookArgs) -> Result<(), WebhookCommandError> {
    let readiness = Readiness::new();
    let mut registry = Registry::with_prefix("dittofs_operator");
    let metrics = WebhookMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    crate::shutdown::on_signal(
        shutdown.clone(),
        readiness.clone(),
        args.server.shutdown_delay,
    );

    let probe_listener = probes::bind(args.server.probe_listen).await?;
    let webhook = if args.offline {
        tracing::warn!(
            "--offline: cluster checks (StorageClass, Secrets, Percona CRD) are skipped"
        );
        Webhook::bind(
            &args.server,
            args.scope.scope(),
            Arc::new(Offline),
            &readiness,
            metrics,
        )
        .await?
    } else {
        let client = kube::Client::try_default()
            .await
            .map_err(WebhookCommandError::Client)?;
        let lookup = KubeLookup::start(client, &readiness, shutdown.clone());
        Webhook::bind(
            &args.server,
            args.scope.scope(),
            Arc::new(lookup),
            &readiness,
            metrics,
        )
        .await?
    };
    let probes = ProbeTask::spawn(probe_listener, readiness, registry);
    webhook.run(shutdown).await;
    probes.stop().await?;
    tracing::info!("webhook stopped");
    Ok(())
}
