//! `dittofs-operator certs`: one idempotent certificate bootstrap pass (the Job's command).

use std::process::ExitCode;

use crate::certs::{self, CertsArgs, SecretOutcome};

/// Run `certs`: ensure the TLS Secret and every named configuration's `caBundle`.
pub fn run(args: &CertsArgs) -> ExitCode {
    if let Err(e) = args.validate() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_async(args))
}

async fn run_async(args: &CertsArgs) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!(
                "error: cannot connect to the Kubernetes API (in-cluster config or KUBECONFIG): {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match certs::bootstrap_once(client, args).await {
        Ok(outcome) => {
            let secret = format!("{}/{}", args.namespace, args.secret);
            match &outcome.secret {
                SecretOutcome::Unchanged => println!("Secret {secret}: up to date"),
                other => println!("Secret {secret}: {other}"),
            }
            if outcome.patched.is_empty() {
                println!(
                    "caBundle already current in: {}",
                    args.webhook_configs.join(", ")
                );
            }
            for p in &outcome.patched {
                println!(
                    "caBundle set: {} {} webhook {}",
                    p.kind, p.config, p.webhook
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: certificate bootstrap failed: {e}");
            ExitCode::FAILURE
        }
    }
}
