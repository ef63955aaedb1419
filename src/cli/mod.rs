//! Command-line interface: one subcommand per job of the binary.

pub mod certs;
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
    /// Default and validate DittoServer manifests offline (cluster checks are skipped).
    Validate(ValidateArgs),
    /// Print every object the reconciler would apply for a DittoServer, as YAML.
    Render(RenderArgs),
    /// Serve the validating and defaulting admission webhook over HTTPS.
    Webhook(WebhookArgs),
    /// Create or repair the webhook's TLS Secret and the caBundle of its configurations
    /// (one idempotent pass; the bootstrap Job runs this).
    Certs(crate::certs::CertsArgs),
}

/// Arguments of `webhook`.
#[derive(clap::Args, Debug)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub server: crate::webhook::ServerArgs,
    /// Development: answer every cluster question (StorageClass, Secrets, Percona CRD)
    /// with "not checked" instead of asking a cluster.
    #[arg(long)]
    pub offline: bool,
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

/// `crd`: print the CRD YAML generated from the Rust types.
pub fn print_crd() -> std::process::ExitCode {
    match crate::crd::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot render the CRD: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
