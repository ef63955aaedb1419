//! Command-line interface: one subcommand per job of the binary.

pub mod certs;
pub mod operator;
pub mod render;
pub mod validate;
pub mod webhook;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Kubernetes operator for DittoFS: admission webhook, reconciler and offline tools.
#[derive(Parser, Debug)]
#[command(name = "dittofs-operator", version, about)]
pub struct Cli {
    /// Log format: `json` (default, for clusters) or `text`.
    #[arg(
        long,
        global = true,
        default_value = "json",
        env = "DITTOFS_OPERATOR_LOG_FORMAT"
    )]
    pub log_format: crate::telemetry::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the DittoServer CustomResourceDefinition as YAML.
    Crd,
    /// Print the operator's ClusterRole and Roles (least privilege) as YAML; with
    /// --watch-namespaces, the ClusterRole keeps only cluster-scoped objects and each
    /// listed namespace gets a Role and its RoleBinding.
    Rbac(RbacArgs),
    /// Print the ValidatingAdmissionPolicies (and bindings) that let the operator's
    /// ServiceAccounts write only the Secrets and the StatefulSets it manages.
    Policy,
    /// Default and validate DittoServer manifests offline (cluster checks are skipped).
    Validate(ValidateArgs),
    /// Print every object the reconciler would apply for a DittoServer, as YAML.
    Render(RenderArgs),
    /// Serve the validating and defaulting admission webhook over HTTPS.
    Webhook(WebhookArgs),
    /// Create or repair the webhook's TLS Secret and the caBundle of its configurations
    /// (one idempotent pass; the bootstrap Job runs this).
    Certs(crate::certs::CertsArgs),
    /// Run the reconciler alone (leader-elected), with probes and metrics.
    Controller(ControllerCommandArgs),
    /// Run everything: admission webhook, reconciler and certificate maintenance.
    Run(Box<RunArgs>),
}

/// Arguments of `controller`.
#[derive(clap::Args, Debug)]
pub struct ControllerCommandArgs {
    #[command(flatten)]
    pub controller: crate::controller::ControllerArgs,
    #[command(flatten)]
    pub leader: crate::leader::LeaderArgs,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8081", env = "DITTOFS_PROBE_LISTEN")]
    pub probe_listen: std::net::SocketAddr,
}

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: crate::webhook::ServerArgs,
    #[command(flatten)]
    pub controller: crate::controller::ControllerArgs,
    #[command(flatten)]
    pub leader: crate::leader::LeaderArgs,
    /// Keep this `kubernetes.io/tls` Secret (in the operator's namespace) and the
    /// webhook configurations' caBundle in order, every 30 s. Needs
    /// --webhook-service and --webhook-config.
    #[arg(long)]
    pub cert_secret: Option<String>,
    /// The webhook Service the certificate is issued for.
    #[arg(long)]
    pub webhook_service: Option<String>,
    /// Validating/Mutating WebhookConfiguration whose caBundle is maintained (repeatable).
    #[arg(long = "webhook-config", value_name = "NAME")]
    pub webhook_configs: Vec<String>,
    /// Cluster DNS domain, for the fully qualified Service name.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
}

/// Arguments of `webhook`.
#[derive(clap::Args, Debug)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub server: crate::webhook::ServerArgs,
    #[command(flatten)]
    pub scope: crate::scope::ScopeArgs,
    /// Development: answer every cluster question (StorageClass, Secrets, Percona CRD)
    /// with "not checked" instead of asking a cluster.
    #[arg(long)]
    pub offline: bool,
}

/// Arguments of `rbac`.
#[derive(clap::Args, Debug)]
pub struct RbacArgs {
    #[command(flatten)]
    pub scope: crate::scope::ScopeArgs,
}

/// Arguments of `validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// DittoServer manifest(s) (YAML, multi-document allowed; `-` for stdin).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// DittoServer manifest (YAML; `-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Secret manifest(s) the DittoServer references, to compute the config hash
    /// as the reconciler would.
    #[arg(long = "secret")]
    pub secrets: Vec<PathBuf>,
}

/// `rbac`: print the generated ClusterRole and Roles.
pub fn print_rbac(args: &RbacArgs) -> std::process::ExitCode {
    match crate::rbac::rbac_yaml(&args.scope.scope()) {
        Ok(yaml) => write_stdout(&yaml),
        Err(e) => {
            eprintln!("error: cannot render the ClusterRole: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `policy`: print the generated admission policies and their bindings.
pub fn print_policy() -> std::process::ExitCode {
    match crate::policy::policy_yaml(&crate::rbac::Install::plain()) {
        Ok(yaml) => write_stdout(&yaml),
        Err(e) => {
            eprintln!("error: cannot render the admission policy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `crd`: print the CRD YAML generated from the Rust types.
pub fn print_crd() -> std::process::ExitCode {
    match crate::schema::crd_yaml() {
        Ok(yaml) => write_stdout(&yaml),
        Err(e) => {
            eprintln!("error: cannot render the CRD: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Write command output; a closed pipe (`| head`) ends quietly instead of panicking.
pub fn write_stdout(text: &str) -> std::process::ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Run a long-lived command on a multi-threaded runtime; an error is logged and
/// printed, and becomes exit code 1.
pub fn run_async<E: std::fmt::Display>(
    what: &str,
    command: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{what} failed");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
