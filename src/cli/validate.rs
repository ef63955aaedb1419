//! `dittofs-operator validate`: defaulting + validation with no cluster.

use std::process::ExitCode;

use super::ValidateArgs;

/// Run `validate`.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let _ = args;
    eprintln!("error: validate is being implemented");
    ExitCode::FAILURE
}
