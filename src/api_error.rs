//! What an API error means for the operator: "this object does not exist" and
//! "this resource type does not exist" are answers, not failures; a lost race is
//! retried at once.
//!
//! A real API server answers a request under a group or resource it does not serve
//! (a CRD that is not installed) with HTTP 404 and the plain-text body
//! `404 page not found`, not a `Status` object; kube-client turns that into a
//! `Status` with reason `Failed to parse error data` and code 404, which
//! `Status::is_not_found` does not recognise. A missing object of a served type is
//! a 404 `Status` with reason `NotFound`. Discovery reports a missing group or
//! resource as a `DiscoveryError`.

use kube::error::DiscoveryError;

/// Which thing is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absent {
    /// The type is served, the object does not exist.
    Object,
    /// The resource type is not served at all (CRD not installed, group unknown).
    Type,
}

/// Classify `err` as an absence, or `None` for any other failure.
pub fn absent(err: &kube::Error) -> Option<Absent> {
    match err {
        kube::Error::Api(status) if status.code == 404 => Some(if status.reason == "NotFound" {
            Absent::Object
        } else {
            // No Status body (plain text), or a Status without reason NotFound:
            // the path itself is unknown to the server.
            Absent::Type
        }),
        kube::Error::Api(status) if status.is_not_found() => Some(Absent::Object),
        kube::Error::Discovery(
            DiscoveryError::MissingApiGroup(_)
            | DiscoveryError::MissingResource(_)
            | DiscoveryError::MissingKind(_)
            | DiscoveryError::EmptyApiGroup(_),
        ) => Some(Absent::Type),
        _ => None,
    }
}

/// Is `err` any kind of "does not exist" (object or type)?
pub fn is_absent(err: &kube::Error) -> bool {
    absent(err).is_some()
}

/// Someone else wrote in between (409 Conflict): the pass is retried at once with
/// fresh reads, never backed off. A 422 is an object the server refuses, and backs
/// off like any other failure.
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

/// A guarded JSON patch lost a race: its `test` failed (422) or an optimistic
/// concurrency check did (409). The guarded patches (finalizer, release) re-read
/// and retry within the pass; what outlasts that goes to the error policy, where
/// only [`is_conflict`] skips the backoff.
pub fn is_guard_failure(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 || s.code == 422)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(status: Status) -> kube::Error {
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_missing_object_is_an_absent_object() {
        let err = api(Status::failure("dittoservers \"x\" not found", "NotFound").with_code(404));
        assert_eq!(absent(&err), Some(Absent::Object));
    }

    #[test]
    fn a_plain_text_404_is_an_absent_type() {
        // What kube-client builds from the body `404 page not found`.
        let err =
            api(Status::failure("404 page not found", "Failed to parse error data").with_code(404));
        assert_eq!(absent(&err), Some(Absent::Type));
        assert!(is_absent(&err));
    }

    #[test]
    fn discovery_misses_are_absent_types() {
        let err =
            kube::Error::Discovery(DiscoveryError::MissingApiGroup("pgv2.percona.com".into()));
        assert_eq!(absent(&err), Some(Absent::Type));
        let err = kube::Error::Discovery(DiscoveryError::MissingKind("PerconaPGCluster".into()));
        assert_eq!(absent(&err), Some(Absent::Type));
    }

    #[test]
    fn other_failures_are_not_absences() {
        for (code, reason) in [
            (403, "Forbidden"),
            (409, "Conflict"),
            (500, "InternalError"),
            (422, "Invalid"),
        ] {
            let err = api(Status::failure("no", reason).with_code(code));
            assert_eq!(absent(&err), None, "{code} {reason}");
        }
    }
}
