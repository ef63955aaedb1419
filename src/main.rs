//! The `dittofs-operator` binary: parse the command line and hand over.

use std::process::ExitCode;

use clap::Parser;
use dittofs_operator::cli::{Cli, Command};

fn main() -> ExitCode {
    // ring is the only TLS provider compiled in; install it explicitly before any TLS use.
    // An error only means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    dittofs_operator::telemetry::init(cli.log_format);
    match cli.command {
        Command::Crd => dittofs_operator::cli::print_crd(),
        Command::Rbac(args) => dittofs_operator::cli::print_rbac(&args),
        Command::Policy => dittofs_operator::cli::print_policy(),
        Command::Validate(args) => dittofs_operator::cli::validate::run(&args),
        Command::Render(args) => dittofs_operator::cli::render::run(&args),
        Command::Webhook(args) => dittofs_operator::cli::webhook::run(&args),
        Command::Certs(args) => dittofs_operator::cli::certs::run(&args),
        Command::Controller(args) => dittofs_operator::cli::operator::run_controller(&args),
        Command::Run(args) => dittofs_operator::cli::operator::run_all(&args),
    }
}
