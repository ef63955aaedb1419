//! `dittofs-operator controller` (reconciler only) and `dittofs-operator run`
//! (admission webhook + reconciler + certificate maintenance in one process).

use std::process::ExitCode;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::{ControllerCommandArgs, RunArgs};
use crate::certs::{self, CertsArgs};
use crate::controller::{self, ControllerMetrics};
use crate::leader::{self, LeaderError};
use crate::probes::{self, ProbeError, ProbeTask, Readiness};
use crate::webhook::{KubeLookup, Webhook, WebhookError, WebhookMetrics};

#[derive(Debug, thiserror::Error)]
enum OperatorError {
    #[error("cannot reach the cluster: {0}")]
    Client(kube::Error),
    #[error(transparent)]
    Leader(#[from] LeaderError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Probes(#[from] ProbeError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error("--cert-secret needs --webhook-service and at least one --webhook-config")]
    CertArgs,
}

/// Run `controller` until SIGTERM/SIGINT.
pub fn run_controller(args: &ControllerCommandArgs) -> ExitCode {
    super::run_async("controller", controller_only(args))
}

/// Run `run` until SIGTERM/SIGINT.
pub fn run_all(args: &RunArgs) -> ExitCode {
    super::run_async("operator", everything(args))
}

async fn controller_only(args: &ControllerCommandArgs) -> Result<(), OperatorError> {
    let readiness = Readiness::new();
    let mut registry = Registry::with_prefix("dittofs_operator");
    let metrics = ControllerMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    crate::shutdown::on_signal(
        shutdown.clone(),
        readiness.clone(),
        std::time::Duration::ZERO,
    );
    let probe_listener = probes::bind(args.probe_listen).await?;
    let config = kube::Config::infer()
        .await
        .map_err(|e| OperatorError::Client(kube::Error::InferConfig(e)))?;
    let client = kube::Client::try_from(config.clone()).map_err(OperatorError::Client)?;
    // The Lease is released only once the reconciler has stopped.
    let stopped = CancellationToken::new();
    let lease_client = leader::lease_client(config, &args.leader)?;
    let leading = leader::leadership(lease_client, &args.leader, stopped.clone()).await?;
    let lookup = KubeLookup::start(client.clone(), &readiness, shutdown.clone());
    let gate = readiness.gate("controller");
    let probes = ProbeTask::spawn(probe_listener, readiness, registry);
    controller::run(
        client,
        crate::dittofs::Client::new(crate::dittofs::Resolver::system()),
        args.controller.clone(),
        lookup,
        leading,
        gate,
        metrics,
        shutdown,
        stopped,
    )
    .await;
    probes.stop().await?;
    tracing::info!("controller stopped");
    Ok(())
}

async fn everything(args: &RunArgs) -> Result<(), OperatorError> {
    let cert_args = match (&args.cert_secret, &args.webhook_service) {
        (None, _) => None,
        (Some(secret), Some(service)) if !args.webhook_configs.is_empty() => Some(CertsArgs {
            namespace: args.leader.lease_namespace.clone(),
            secret: secret.clone(),
            service: service.clone(),
            webhook_configs: args.webhook_configs.clone(),
            cluster_domain: args.cluster_domain.clone(),
        }),
        _ => return Err(OperatorError::CertArgs),
    };
    if let Some(c) = &cert_args {
        c.validate()?;
    }

    let readiness = Readiness::new();
    let mut registry = Registry::with_prefix("dittofs_operator");
    let webhook_metrics = WebhookMetrics::register(&mut registry);
    let controller_metrics = ControllerMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    crate::shutdown::on_signal(
        shutdown.clone(),
        readiness.clone(),
        args.server.shutdown_delay,
    );
    let probe_listener = probes::bind(args.server.probe_listen).await?;
    let config = kube::Config::infer()
        .await
        .map_err(|e| OperatorError::Client(kube::Error::InferConfig(e)))?;
    let client = kube::Client::try_from(config.clone()).map_err(OperatorError::Client)?;

    // Certificates first: every replica keeps the Secret and caBundles right (all
    // runs converge on one CA), so a helm upgrade that resets caBundle is repaired.
    if let Some(c) = cert_args {
        let token = shutdown.clone();
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) =
                certs::maintain(client, c, certs::MAINTAIN_INTERVAL, token.cancelled_owned()).await
            {
                tracing::error!(error = %e, "certificate maintenance stopped");
            }
        });
    }

    let lookup = KubeLookup::start(client.clone(), &readiness, shutdown.clone());
    let webhook = Webhook::bind(
        &args.server,
        args.controller.scope.scope(),
        Arc::new(lookup.clone()),
        &readiness,
        webhook_metrics,
    )
    .await?;
    // The Lease is released only once the reconciler has stopped.
    let stopped = CancellationToken::new();
    let lease_client = leader::lease_client(config, &args.leader)?;
    let leading = leader::leadership(lease_client, &args.leader, stopped.clone()).await?;
    let gate = readiness.gate("controller");
    let probes = ProbeTask::spawn(probe_listener, readiness, registry);
    let reconciler = controller::run(
        client,
        crate::dittofs::Client::new(crate::dittofs::Resolver::system()),
        args.controller.clone(),
        lookup,
        leading,
        gate,
        controller_metrics,
        shutdown.clone(),
        stopped,
    );
    tokio::join!(webhook.run(shutdown.clone()), reconciler);
    probes.stop().await?;
    tracing::info!("operator stopped");
    Ok(())
}
