//! The admission webhook server: HTTPS (rustls/ring) serving `POST /validate` and
//! `POST /mutate` for DittoServers, backed by the one validation core.
//!
//! Composition (what `webhook` and `run` do):
//! ```text
//! let readiness = probes::Readiness::new();
//! let mut registry = Registry::with_prefix("dittofs_operator");
//! let metrics = webhook::WebhookMetrics::register(&mut registry);
//! let lookup = Arc::new(webhook::KubeLookup::start(client, &readiness, shutdown.clone()));
//! let server = webhook::Webhook::bind(&args, scope, lookup, &readiness, metrics).await?;
//! // probes::serve(probe_listener, readiness, Arc::new(registry), probe_shutdown)
//! server.run(shutdown).await;
//! ```

pub mod admission;
pub mod body;
pub mod lookups;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::scope::WatchScope;
use tokio_util::sync::CancellationToken;

pub use self::lookups::KubeLookup;
pub use self::metrics::WebhookMetrics;
pub use self::server::Limits;
pub use self::tls::{CertStore, FileCertSource, SelfSigned, TlsError};
use crate::probes::{Readiness, ReadinessGate};
use crate::validation::ClusterLookup;

/// Command-line arguments of the admission server (shared by `webhook` and `run`).
#[derive(clap::Args, Debug, Clone)]
#[command(group(
    clap::ArgGroup::new("certificate")
        .required(true)
        .args(["tls_cert_file", "self_signed"])
))]
pub struct ServerArgs {
    /// HTTPS address of the admission endpoints.
    #[arg(long, default_value = "0.0.0.0:9443", env = "DITTOFS_WEBHOOK_LISTEN")]
    pub listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8081", env = "DITTOFS_PROBE_LISTEN")]
    pub probe_listen: SocketAddr,
    /// PEM certificate chain (e.g. `tls.crt` of a mounted kubernetes.io/tls Secret);
    /// re-read when it changes.
    #[arg(long, requires = "tls_key_file", env = "DITTOFS_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key matching `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file", env = "DITTOFS_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Development: serve an in-memory certificate for localhost and 127.0.0.1, signed
    /// by a fresh CA written to `--ca-out`.
    #[arg(long, requires = "ca_out", conflicts_with_all = ["tls_cert_file", "tls_key_file"])]
    pub self_signed: bool,
    /// Where `--self-signed` writes its CA certificate (PEM), for `curl --cacert` or a
    /// webhook configuration's caBundle.
    #[arg(long, requires = "self_signed")]
    pub ca_out: Option<PathBuf>,
    /// How often the certificate files are checked for a change (Go duration). They
    /// are polled: a kubelet-updated Secret volume changes by a symlink swap that
    /// watches on the files miss.
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse_duration_arg)]
    pub tls_reload_interval: Duration,
    /// After SIGTERM, keep serving (while not ready) this long before draining, so the
    /// API server stops routing to this pod first (Go duration).
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse_duration_arg)]
    pub shutdown_delay: Duration,
}

/// Errors of the webhook server.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("no certificate source: pass --tls-cert-file and --tls-key-file, or --self-signed")]
    NoCertificate,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where the serving certificate comes from.
enum CertSource {
    Files(FileCertSource),
    /// Installed once at bind time (self-signed), or pushed by another component
    /// through [`Webhook::cert_store`].
    Fixed,
}

/// A bound, not yet running admission server.
pub struct Webhook {
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    certs: Arc<CertStore>,
    source: CertSource,
    reload_interval: Duration,
    cert_gate: ReadinessGate,
    router: axum::Router,
    metrics: WebhookMetrics,
    limits: Limits,
}

impl Webhook {
    /// Load (or generate) the certificate, bind `args.listen` and build the router.
    /// Registers the readiness gate `webhook-certificate`, open once a certificate is
    /// served. Missing or invalid certificate files are not fatal: the server waits
    /// for them (a Secret being created by the bootstrap Job) and is not ready meanwhile.
    pub async fn bind<L: ClusterLookup + 'static>(
        args: &ServerArgs,
        scope: WatchScope,
        lookup: Arc<L>,
        readiness: &Readiness,
        metrics: WebhookMetrics,
    ) -> Result<Self, WebhookError> {
        Self::bind_with_limits(args, scope, lookup, readiness, metrics, Limits::default()).await
    }

    /// [`Webhook::bind`] with other [`Limits`] than the defaults (tests).
    pub async fn bind_with_limits<L: ClusterLookup + 'static>(
        args: &ServerArgs,
        scope: WatchScope,
        lookup: Arc<L>,
        readiness: &Readiness,
        metrics: WebhookMetrics,
        limits: Limits,
    ) -> Result<Self, WebhookError> {
        let certs = Arc::new(CertStore::new());
        let cert_gate = readiness.gate("webhook-certificate");
        let source = match (&args.tls_cert_file, &args.tls_key_file) {
            (Some(cert), Some(key)) => {
                let mut files = FileCertSource::new(cert.clone(), key.clone());
                match files.reload(&certs) {
                    Ok(_) => {
                        metrics.certificate_reloaded(true);
                        cert_gate.set_ready(true);
                    }
                    Err(e) => {
                        metrics.certificate_reloaded(false);
                        tracing::warn!(error = %e, "no valid certificate yet; waiting for the files");
                    }
                }
                CertSource::Files(files)
            }
            _ if args.self_signed => {
                let pair = SelfSigned::generate(&tls::SELF_SIGNED_NAMES)?;
                certs.replace(pair.certified_key()?);
                if let Some(path) = &args.ca_out {
                    pair.write_ca(path)?;
                    tracing::info!(ca = %path.display(), "self-signed certificate for localhost/127.0.0.1; CA written");
                }
                cert_gate.set_ready(true);
                CertSource::Fixed
            }
            _ => return Err(WebhookError::NoCertificate),
        };
        let tls = Arc::new(tls::server_config(certs.clone())?);
        let listener =
            TcpListener::bind(args.listen)
                .await
                .map_err(|source| WebhookError::Bind {
                    addr: args.listen,
                    source,
                })?;
        let router = admission::router(lookup, metrics.clone(), &limits, scope);
        Ok(Self {
            listener,
            tls,
            certs,
            source,
            reload_interval: args.tls_reload_interval,
            cert_gate,
            router,
            metrics,
            limits,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The served certificate; another component (e.g. a Secret watcher) may
    /// [`CertStore::replace`] it.
    pub fn cert_store(&self) -> Arc<CertStore> {
        self.certs.clone()
    }

    /// Serve until `shutdown` is cancelled, then drain.
    pub async fn run(self, shutdown: CancellationToken) {
        if let CertSource::Files(files) = self.source {
            tokio::spawn(files.watch(
                self.certs.clone(),
                self.reload_interval,
                self.cert_gate.clone(),
                self.metrics.clone(),
                shutdown.child_token(),
            ));
        }
        tracing::info!(addr = ?self.listener.local_addr().ok(), "webhook serving");
        server::serve_tls(self.listener, self.tls, self.router, self.limits, shutdown).await;
    }
}

/// Bind and run in one call (see [`Webhook::bind`] and [`Webhook::run`]).
pub async fn serve<L: ClusterLookup + 'static>(
    args: &ServerArgs,
    scope: WatchScope,
    lookup: Arc<L>,
    shutdown: CancellationToken,
    readiness: &Readiness,
    metrics: WebhookMetrics,
) -> Result<(), WebhookError> {
    Webhook::bind(args, scope, lookup, readiness, metrics)
        .await?
        .run(shutdown)
        .await;
    Ok(())
}
