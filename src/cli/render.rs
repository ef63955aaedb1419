//! `dittofs-operator render`: every object the reconciler would apply.

use std::process::ExitCode;

use super::RenderArgs;

/// Run `render`.
pub fn run(args: &RenderArgs) -> ExitCode {
    let _ = args;
    eprintln!("error: render is being implemented");
    ExitCode::FAILURE
}
