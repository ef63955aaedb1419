//! What the reconciler remembers between passes, per DittoServer and per child:
//! its own writes the stores may not show yet, the backoff, and the events it
//! published. Everything about a DittoServer is forgotten when it is deleted.
//!
//! Why remember our own writes: the stores trail the API server (seconds to minutes
//! under load). A pass that ran on a store that does not yet show the previous
//! pass's write would write again — or, worse, fail a precondition and back off.
//! Each entry is dropped as soon as the store catches up with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::crd::DittoServerStatus;
use crate::dittofs::Sensitive;
use crate::dittofs::account::Session;
use crate::dittofs::api::{Adapter, KerberosConfig, LdapConfig, Share, SnapshotPolicy};
use crate::dittofs::tls::ClientTls;
use crate::names::{APPLIED_HASH_ANNOTATION, FINALIZER};

use super::stored::{ServerRef, StoredServer};

/// First retry delay after a failure; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Cap of the per-object backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A child object, by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl ChildKey {
    pub fn new(kind: &'static str, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ChildKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A child as we last wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub uid: String,
    pub applied_hash: String,
}

/// What triggers a pass: a change of spec, deletion or finalizers. Our own status
/// writes change none of these.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    uid: Option<String>,
    generation: Option<i64>,
    deleting: bool,
    finalizer: bool,
}

#[derive(Default)]
struct ServerMemory {
    uid: Option<String>,
    fingerprint: Option<Fingerprint>,
    failures: u32,
    /// Last note published per event reason.
    events: HashMap<&'static str, String>,
    /// The last status we wrote, until the store shows it.
    status: Option<DittoServerStatus>,
    /// We added our finalizer, until the store shows it.
    finalizer_added: bool,
    /// What we know of its DittoFS server.
    server: ServerSide,
}

/// What the reconciler knows of one DittoServer's DittoFS server between passes.
#[derive(Clone, Debug, Default)]
pub struct ServerSide {
    /// The session with the operator's account.
    pub session: Option<Session>,
    /// How to reach the REST API over HTTPS, as the last pass set it up, and the
    /// resourceVersion of the certificate Secret it was set up from.
    pub tls: Option<ClientTls>,
    pub tls_cert_version: Option<String>,
    /// A refresh token to keep in the account Secret, and when it was obtained,
    /// until the Secret holds it.
    pub refresh_to_keep: Option<(Sensitive, String)>,
    /// The last completed read of the server.
    pub synced: Option<Synced>,
    /// Read the server again at the next pass: the poll saw a change, or the last
    /// pass changed something or did not finish.
    pub due: bool,
    /// The list the next poll reads (they take turns).
    pub poll_next: PollView,
    /// Consecutive passes that failed to configure the server (its retry backoff).
    pub failures: u32,
    /// After a failure: no new attempt before then, unless the spec or a Secret
    /// the calls depend on moved.
    pub retry_at: Option<std::time::Instant>,
}

/// What a completed read of the server saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Synced {
    /// The DittoServer generation it was read for.
    pub generation: Option<i64>,
    /// The resourceVersion of each Secret the stores read, at that read.
    pub secret_versions: std::collections::BTreeMap<String, String>,
    pub adapters: Vec<Adapter>,
    pub shares: Vec<Share>,
    pub snapshot_policies: Vec<SnapshotPolicy>,
    /// The identity-provider rows as read (`None`: not read in that pass).
    pub ldap: Option<Option<LdapConfig>>,
    pub kerberos: Option<Option<KerberosConfig>>,
}

/// The list the drift poll reads at a visit: one per visit, in turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PollView {
    #[default]
    Adapters,
    Shares,
    SnapshotPolicies,
    /// The rows of the identity providers the spec declares.
    IdentityProviders,
}

/// Which of the optional lists take a turn: only what the spec declares (nothing
/// else of them is the operator's to put back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollTurns {
    pub snapshot_policies: bool,
    pub identity_providers: bool,
}

impl PollView {
    const ORDER: [PollView; 4] = [
        PollView::Adapters,
        PollView::Shares,
        PollView::SnapshotPolicies,
        PollView::IdentityProviders,
    ];

    /// The view after this one, skipping the lists that take no turn.
    pub fn next(self, turns: PollTurns) -> Self {
        let takes_turn = |view: &PollView| match view {
            PollView::Adapters | PollView::Shares => true,
            PollView::SnapshotPolicies => turns.snapshot_policies,
            PollView::IdentityProviders => turns.identity_providers,
        };
        let at = Self::ORDER.iter().position(|v| *v == self).unwrap_or(0);
        (1..=Self::ORDER.len())
            .map(|i| Self::ORDER[(at + i) % Self::ORDER.len()])
            .find(takes_turn)
            .unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Memory {
    servers: Mutex<HashMap<ServerRef, ServerMemory>>,
    written: Mutex<HashMap<ChildKey, Written>>,
}

impl Memory {
    /// The memory of `server`, created: only for an event showing it exists.
    fn with<T>(&self, server: &ServerRef, f: impl FnOnce(&mut ServerMemory) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        f(servers.entry(server.clone()).or_default())
    }

    /// A DittoServer event arrived (after the store applied it). Returns whether a
    /// pass is due: the spec, deletion or finalizers changed.
    pub fn server_changed(&self, server: &ServerRef, stored: &StoredServer) -> bool {
        let fingerprint = Fingerprint {
            uid: stored.metadata.uid.clone(),
            generation: stored.metadata.generation,
            deleting: stored.metadata.deletion_timestamp.is_some(),
            finalizer: stored.finalizers().iter().any(|f| f == FINALIZER),
        };
        self.with(server, |m| {
            if m.uid != stored.metadata.uid {
                *m = ServerMemory {
                    uid: stored.metadata.uid.clone(),
                    ..Default::default()
                };
            }
            if m.status.is_some() && m.status == stored.status {
                m.status = None;
            }
            if fingerprint.finalizer {
                m.finalizer_added = false;
            }
            let changed = m.fingerprint.as_ref() != Some(&fingerprint);
            m.fingerprint = Some(fingerprint);
            changed
        })
    }

    /// The memory of a DittoServer still remembered, or `None`: a pass that ends
    /// after the delete event must not bring back what it forgot.
    fn with_existing<T>(
        &self,
        server: &ServerRef,
        f: impl FnOnce(&mut ServerMemory) -> T,
    ) -> Option<T> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.get_mut(server).map(f)
    }

    /// Keep only the DittoServers for which `live` holds (after a re-list: objects
    /// deleted while the watch was down never sent a delete event).
    pub fn retain_servers(&self, live: impl Fn(&ServerRef) -> bool) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.retain(|r, _| live(r));
    }

    /// Forget everything about a deleted DittoServer.
    pub fn forget(&self, server: &ServerRef) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.remove(server);
    }

    /// How many DittoServers are remembered (for the tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn servers_remembered(&self) -> usize {
        self.servers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Next retry delay after one more failure: 5 s, 10 s, 20 s … 300 s.
    pub fn next_backoff(&self, server: &ServerRef) -> Duration {
        self.with_existing(server, |m| {
            m.failures = m.failures.saturating_add(1);
            BACKOFF_BASE
                .saturating_mul(1u32.checked_shl(m.failures - 1).unwrap_or(u32::MAX))
                .min(BACKOFF_MAX)
        })
        .unwrap_or(BACKOFF_BASE)
    }

    /// A pass succeeded: start the backoff over.
    pub fn reset_backoff(&self, server: &ServerRef) {
        self.with_existing(server, |m| m.failures = 0);
    }

    /// Whether to publish `note` under `reason`: only when it differs from what was
    /// last published under that reason, so a repeated failure is one event.
    pub fn event_is_new(&self, server: &ServerRef, reason: &'static str, note: &str) -> bool {
        self.with_existing(server, |m| {
            if m.events.get(reason).map(String::as_str) == Some(note) {
                return false;
            }
            m.events.insert(reason, note.to_string());
            true
        })
        .unwrap_or(true)
    }

    /// The condition behind `reason` is over: a later recurrence is news again.
    pub fn event_resolved(&self, server: &ServerRef, reason: &'static str) {
        self.with_existing(server, |m| {
            m.events.remove(reason);
        });
    }

    /// The status we last wrote, if the store does not show it yet.
    pub fn written_status(&self, server: &ServerRef) -> Option<DittoServerStatus> {
        self.with_existing(server, |m| m.status.clone()).flatten()
    }

    /// Record the status written to the object `uid` (not to a namesake that
    /// replaced it meanwhile).
    pub fn status_written(&self, server: &ServerRef, uid: Option<&str>, status: DittoServerStatus) {
        self.with_existing(server, |m| {
            if m.uid.as_deref() == uid {
                m.status = Some(status);
            }
        });
    }

    /// Did we add our finalizer while the store does not show it yet?
    pub fn finalizer_added(&self, server: &ServerRef) -> bool {
        self.with_existing(server, |m| m.finalizer_added)
            .unwrap_or(false)
    }

    /// Record that the finalizer was added to the object `uid` (not to a namesake
    /// that replaced it meanwhile: it would then never get one).
    pub fn finalizer_was_added(&self, server: &ServerRef, uid: Option<&str>) {
        self.with_existing(server, |m| {
            if m.uid.as_deref() == uid {
                m.finalizer_added = true;
            }
        });
    }

    /// What we know of the DittoFS server of `server` (nothing for a DittoServer
    /// no event has shown).
    pub fn server_side(&self, server: &ServerRef) -> ServerSide {
        self.with_existing(server, |m| m.server.clone())
            .unwrap_or_default()
    }

    /// Change what we know of the DittoFS server of `server`.
    pub fn update_server_side(&self, server: &ServerRef, f: impl FnOnce(&mut ServerSide)) {
        self.with_existing(server, |m| f(&mut m.server));
    }

    /// What we last wrote to `child`, if the store does not show it yet.
    pub fn written(&self, child: &ChildKey) -> Option<Written> {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.get(child).cloned()
    }

    pub fn child_written(&self, child: ChildKey, written: Written) {
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(child, written);
    }

    /// A child event arrived: drop our record once the store shows that write, or
    /// shows the object deleted or replaced.
    pub fn child_seen(&self, kind: &'static str, meta: &ObjectMeta, deleted: bool) {
        let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            return;
        };
        let key = ChildKey::new(kind, ns, name);
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = map.get(&key) else {
            return;
        };
        let same_object = meta.uid.as_deref() == Some(w.uid.as_str());
        let hash = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH_ANNOTATION));
        if deleted || !same_object || hash == Some(&w.applied_hash) {
            map.remove(&key);
        }
    }

    /// Forget a child record (the object was found deleted or foreign).
    pub fn child_forgotten(&self, child: &ChildKey) {
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_reads_the_optional_lists_in_turn_only_when_declared() {
        let turns = |snapshot_policies: bool, identity_providers: bool| {
            let turns = PollTurns {
                snapshot_policies,
                identity_providers,
            };
            std::iter::successors(Some(PollView::default()), |v| Some(v.next(turns)))
                .take(5)
                .collect::<Vec<_>>()
        };
        use PollView::*;
        assert_eq!(
            turns(false, false),
            [Adapters, Shares, Adapters, Shares, Adapters]
        );
        assert_eq!(
            turns(true, false),
            [Adapters, Shares, SnapshotPolicies, Adapters, Shares]
        );
        assert_eq!(
            turns(false, true),
            [Adapters, Shares, IdentityProviders, Adapters, Shares]
        );
        assert_eq!(
            turns(true, true),
            [
                Adapters,
                Shares,
                SnapshotPolicies,
                IdentityProviders,
                Adapters
            ]
        );
        // Declared no more: the next turn is the adapters'.
        assert_eq!(SnapshotPolicies.next(PollTurns::default()), Adapters);
    }

    #[test]
    fn what_a_finished_pass_resets_does_not_bring_back_a_forgotten_server() {
        let memory = Memory::default();
        let server = ServerRef::new("d").within("ns");
        // Only an event showing the object creates its memory.
        memory.finalizer_was_added(&server, Some("u"));
        assert_eq!(memory.servers_remembered(), 0);
        let stored: StoredServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
            "metadata": {"name": "d", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        memory.server_changed(&server, &stored);
        // A late pass of a deleted namesake does not write into this object's memory.
        memory.finalizer_was_added(&server, Some("the-old-uid"));
        assert!(!memory.finalizer_added(&server));
        memory.finalizer_was_added(&server, Some("u"));
        assert!(memory.finalizer_added(&server));
        assert_eq!(memory.next_backoff(&server), BACKOFF_BASE);
        assert_eq!(memory.next_backoff(&server), 2 * BACKOFF_BASE);
        assert!(memory.event_is_new(&server, "ReconcileFailed", "apply failed"));
        assert!(!memory.event_is_new(&server, "ReconcileFailed", "apply failed"));
        // The delete event can arrive while the last pass is still finishing: what
        // the pass does afterwards must not bring the memory back.
        memory.forget(&server);
        memory.reset_backoff(&server);
        memory.event_resolved(&server, "ReconcileFailed");
        memory.finalizer_was_added(&server, Some("u"));
        memory.next_backoff(&server);
        memory.event_is_new(&server, "ReconcileFailed", "apply failed");
        assert_eq!(memory.servers_remembered(), 0);
    }
}
