//! The `dittofs-operator` binary: parse the command line and hand over.

use std::process::ExitCode;

use clap::Parser;
use dittofs_operator::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // ring is the only provider compiled in; installing it explicitly keeps every
    // rustls user (kube client, webhook server) on it. An error only means it is
    // already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    dittofs_operator::telemetry::init(cli.log_format);
    match cli.command {
        Command::Crd => dittofs_operator::cli::print_crd(),
        Command::Validate(args) => dittofs_operator::cli::validate::run(&args),
        Command::Render(args) => dittofs_operator::cli::render::run(&args),
        Command::Webhook(args) => dittofs_operator::cli::webhook::run(&args),
    }
}
