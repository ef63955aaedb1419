//! Kubernetes events (events.k8s.io/v1), created through kube's `Recorder`. Reasons
//! are a stable vocabulary: dashboards and alerts may match on them.
//!
//! Warnings about a state (a failure, an invalid spec, a name conflict, waiting
//! for the database) are published when their note changes, not once per attempt:
//! a pass retried a hundred times for the same reason is one event.
//!
//! A `Recorder` is made per event rather than shared: a shared one keeps every
//! event it published for 6 minutes (to patch a repeat into a series), which after
//! 1,000 DittoServers converge is about 9 MiB held for nothing, since repeats of a
//! state are already suppressed here. Each event is therefore a create, never a
//! patch.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::memory::Memory;
use super::stored::ServerRef;

/// Every event reason the operator emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Something rolled or changed; the note says what and why.
    Updated,
    /// An object carrying this DittoServer's labels and no owner was taken over.
    Adopted,
    /// A managed Secret the spec now references was handed over to the user.
    Released,
    /// A reconcile step failed; the note names the step.
    ReconcileFailed,
    /// The spec failed the validation core (the object bypassed the webhook).
    ValidationFailed,
    /// The spec is valid but has warnings (the webhook's, and cluster facts that
    /// changed since admission, such as a deleted StorageClass).
    ValidationWarning,
    /// The stored spec cannot be read by this operator version.
    UnreadableSpec,
    /// An object with a child's name exists and is not ours.
    NameConflict,
    /// Waiting for the Percona cluster to become ready.
    PerconaNotReady,
    /// Deletion started.
    Deleting,
    /// Cleanup did not finish in time; the finalizer was released anyway.
    CleanupTimeout,
    /// The PerconaPGCluster was deleted (deleteWithServer: true).
    PerconaDeleted,
    /// The PerconaPGCluster was left in place (deleteWithServer: false).
    PerconaOrphaned,
    /// The DittoFS server holds every declared adapter, store and share.
    ServerConfigured,
    /// The DittoFS server refused a change (its words in the note).
    ServerRefused,
    /// The operator's DittoFS account cannot be used or made (the admin password
    /// does not log in, …).
    ServerAccount,
    /// The DittoFS server did not answer, or failed.
    ServerUnreachable,
    /// Declared stores or shares differ from the server's, in ways the operator
    /// does not change.
    ServerDrift,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Updated => "Updated",
            Reason::Adopted => "Adopted",
            Reason::Released => "Released",
            Reason::ReconcileFailed => "ReconcileFailed",
            Reason::ValidationFailed => "ValidationFailed",
            Reason::ValidationWarning => "ValidationWarning",
            Reason::UnreadableSpec => "UnreadableSpec",
            Reason::NameConflict => "NameConflict",
            Reason::PerconaNotReady => "PerconaNotReady",
            Reason::Deleting => "Deleting",
            Reason::CleanupTimeout => "CleanupTimeout",
            Reason::PerconaDeleted => "PerconaDeleted",
            Reason::PerconaOrphaned => "PerconaOrphaned",
            Reason::ServerConfigured => "ServerConfigured",
            Reason::ServerRefused => "ServerRefused",
            Reason::ServerAccount => "ServerAccount",
            Reason::ServerUnreachable => "ServerUnreachable",
            Reason::ServerDrift => "ServerDrift",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Reason::Updated
            | Reason::Adopted
            | Reason::Released
            | Reason::Deleting
            | Reason::PerconaOrphaned
            | Reason::ServerConfigured => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::Updated | Reason::Adopted | Reason::Released => "Apply",
            Reason::ReconcileFailed | Reason::NameConflict => "Reconcile",
            Reason::ValidationFailed | Reason::ValidationWarning | Reason::UnreadableSpec => {
                "Validate"
            }
            Reason::PerconaNotReady => "WaitForDatabase",
            Reason::Deleting | Reason::CleanupTimeout => "Delete",
            Reason::PerconaDeleted | Reason::PerconaOrphaned => "Cleanup",
            Reason::ServerConfigured
            | Reason::ServerRefused
            | Reason::ServerAccount
            | Reason::ServerUnreachable
            | Reason::ServerDrift => "ConfigureServer",
        }
    }

    /// A state rather than a step: published only when its note changes.
    fn is_state(self) -> bool {
        matches!(
            self,
            Reason::ReconcileFailed
                | Reason::ValidationFailed
                | Reason::ValidationWarning
                | Reason::CleanupTimeout
                | Reason::UnreadableSpec
                | Reason::NameConflict
                | Reason::PerconaNotReady
                | Reason::Deleting
                | Reason::ServerConfigured
                | Reason::ServerRefused
                | Reason::ServerAccount
                | Reason::ServerUnreachable
                | Reason::ServerDrift
        )
    }
}

/// Publishes events for one DittoServer.
pub struct Events<'a> {
    pub client: &'a Client,
    pub reporter: &'a Reporter,
    pub memory: &'a Memory,
    pub server: ServerRef,
    pub reference: ObjectReference,
}

impl Events<'_> {
    /// Publish; a state reason only when its note changed. A failure to record is
    /// logged, never fails the reconcile.
    pub async fn publish(&self, reason: Reason, note: String) {
        // The API caps notes at 1 kB.
        let note: String = note.chars().take(1000).collect();
        if reason.is_state()
            && !self
                .memory
                .event_is_new(&self.server, reason.as_str(), &note)
        {
            return;
        }
        let event = Event {
            type_: reason.event_type(),
            reason: reason.as_str().into(),
            note: Some(note),
            action: reason.action().into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&event, &self.reference).await {
            tracing::warn!(error = %e, reason = reason.as_str(), "cannot record event");
        }
    }

    /// The state behind `reason` is over; its next occurrence is published again.
    pub fn resolved(&self, reason: Reason) {
        self.memory.event_resolved(&self.server, reason.as_str());
    }
}
