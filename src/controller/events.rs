//! Kubernetes events, through one shared `Recorder` (events.k8s.io/v1). Reasons are
//! a stable vocabulary: dashboards and alerts may match on them.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

/// Every event reason the operator emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// First successful apply of the workloads.
    Created,
    /// Something rolled or changed; the note says what and why.
    Updated,
    /// A reconcile step failed; the note names the step.
    ReconcileFailed,
    /// The spec failed the validation core (the object bypassed the webhook).
    ValidationFailed,
    /// Waiting for the Percona cluster to become ready (emitted on transition only).
    PerconaNotReady,
    /// Deletion started.
    Deleting,
    /// Cleanup did not finish in time; the finalizer was released anyway.
    CleanupTimeout,
    /// The PerconaPGCluster was deleted (deleteWithServer: true).
    PerconaDeleted,
    /// The PerconaPGCluster was left in place (deleteWithServer: false).
    PerconaOrphaned,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Created => "Created",
            Reason::Updated => "Updated",
            Reason::ReconcileFailed => "ReconcileFailed",
            Reason::ValidationFailed => "ValidationFailed",
            Reason::PerconaNotReady => "PerconaNotReady",
            Reason::Deleting => "Deleting",
            Reason::CleanupTimeout => "CleanupTimeout",
            Reason::PerconaDeleted => "PerconaDeleted",
            Reason::PerconaOrphaned => "PerconaOrphaned",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Reason::Created | Reason::Updated | Reason::Deleting | Reason::PerconaOrphaned => {
                EventType::Normal
            }
            _ => EventType::Warning,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::Created | Reason::Updated => "Apply",
            Reason::ReconcileFailed => "Reconcile",
            Reason::ValidationFailed => "Validate",
            Reason::PerconaNotReady => "WaitForDatabase",
            Reason::Deleting | Reason::CleanupTimeout => "Delete",
            Reason::PerconaDeleted | Reason::PerconaOrphaned => "Cleanup",
        }
    }
}

/// Publish an event; a failure to record is logged, never fails the reconcile.
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    reason: Reason,
    note: String,
) {
    let event = Event {
        type_: reason.event_type(),
        reason: reason.as_str().into(),
        // The API caps notes at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: reason.action().into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason = reason.as_str(), "cannot record event");
    }
}
