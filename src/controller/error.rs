//! Reconcile errors: one variant per pipeline step, with what was being done.

use std::time::Duration;

use thiserror::Error;

use crate::resources::BuildError;

/// Why a reconcile pass failed.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// Reading a referenced or owned object failed.
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Building the desired objects failed.
    #[error("building objects: {0}")]
    Build(#[from] BuildError),
    /// Server-side apply of a child failed.
    #[error("applying {what}: {source}")]
    Apply {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a child that is no longer wanted failed.
    #[error("deleting {what}: {source}")]
    Delete {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Removing our owner reference from an object we hand over failed.
    #[error("releasing {what}: {source}")]
    Release {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Adding or removing our finalizer failed.
    #[error("updating the finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    /// Writing the status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Cleaning up the Percona cluster on deletion failed (retried until the bound).
    #[error("cleaning up the PerconaPGCluster: {0}")]
    Cleanup(#[source] kube::Error),
    /// A generated object could not be serialized (a bug, reported, not a panic).
    #[error("serializing {what}: {message}")]
    Serialize { what: String, message: String },
    /// The pass did not finish in time (a request hung); it is retried.
    #[error("the pass did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl ReconcileError {
    /// The failing step, a bounded label for metrics and event notes.
    pub fn step(&self) -> &'static str {
        match self {
            ReconcileError::Read { .. } => "observe",
            ReconcileError::Build(_) | ReconcileError::Serialize { .. } => "build",
            ReconcileError::Apply { .. } => "apply",
            ReconcileError::Delete { .. } => "prune",
            ReconcileError::Release { .. } => "release",
            ReconcileError::Finalizer(_) => "finalizer",
            ReconcileError::Status(_) => "status",
            ReconcileError::Cleanup(_) => "cleanup",
            ReconcileError::Timeout(_) => "timeout",
        }
    }

    fn source_error(&self) -> Option<&kube::Error> {
        match self {
            ReconcileError::Read { source, .. }
            | ReconcileError::Apply { source, .. }
            | ReconcileError::Delete { source, .. }
            | ReconcileError::Release { source, .. } => Some(source),
            ReconcileError::Finalizer(e)
            | ReconcileError::Status(e)
            | ReconcileError::Cleanup(e) => Some(e),
            _ => None,
        }
    }

    /// Someone wrote in between (409): retry at once with fresh reads, never back
    /// off. A guarded JSON patch whose `test` failed (422) on a stale view is already
    /// re-read and retried within the pass (`finalizer.rs`, `write::release`); a 422
    /// that outlasts those fresh reads, like any other 422, is a refusal and backs off.
    pub fn is_conflict(&self) -> bool {
        self.source_error()
            .is_some_and(crate::api_error::is_conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            Status::failure("refused", "Invalid")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn only_conflicts_skip_the_backoff() {
        // A 409 anywhere: a lost race.
        assert!(ReconcileError::Status(api(409)).is_conflict());
        assert!(ReconcileError::Finalizer(api(409)).is_conflict());
        // A 422 that reaches the error policy outlasted the in-pass re-reads (guards)
        // or is a refusal (apply, status): backed off, not retried every 200 ms
        // forever.
        assert!(!ReconcileError::Finalizer(api(422)).is_conflict());
        assert!(
            !ReconcileError::Release {
                what: "Secret ns/x".into(),
                source: api(422)
            }
            .is_conflict()
        );
        let refused = ReconcileError::Apply {
            what: "StatefulSet ns/x".into(),
            source: api(422),
        };
        assert!(!refused.is_conflict());
        assert!(!ReconcileError::Status(api(422)).is_conflict());
        assert!(!ReconcileError::Finalizer(api(500)).is_conflict());
    }
}
