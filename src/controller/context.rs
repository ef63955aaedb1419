//! State shared by every reconcile: client, event recorder, lookups, leadership,
//! metrics and per-object backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::crd::DittoServer;

/// First retry delay after a failure; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Cap of the per-object backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Everything a reconcile needs besides the object.
pub struct Context<L> {
    pub client: Client,
    /// One recorder for all reconciles, so repeated events become series.
    pub recorder: Recorder,
    pub lookup: L,
    /// True while this replica holds the lease.
    pub leader: watch::Receiver<bool>,
    pub metrics: ControllerMetrics,
    failures: Mutex<HashMap<ObjectRef<DittoServer>, u32>>,
}

impl<L> Context<L> {
    pub fn new(
        client: Client,
        recorder: Recorder,
        lookup: L,
        leader: watch::Receiver<bool>,
        metrics: ControllerMetrics,
    ) -> Self {
        Self {
            client,
            recorder,
            lookup,
            leader,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Next retry delay for `ds` after one more failure: 5 s, 10 s, 20 s … 300 s.
    pub fn next_backoff(&self, ds: &DittoServer) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(ObjectRef::from(ds)).or_insert(0);
        *n = n.saturating_add(1);
        BACKOFF_BASE
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX))
            .min(BACKOFF_MAX)
    }

    /// A pass succeeded: start the backoff over.
    pub fn reset_backoff(&self, ds: &DittoServer) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&ObjectRef::from(ds));
    }
}

/// Reconcile metrics; labels are bounded (result and failing step, never names).
#[derive(Clone)]
pub struct ControllerMetrics {
    reconciles: Family<Vec<(String, String)>, Counter>,
    duration: Histogram,
}

impl ControllerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "controller_reconciles",
            "Reconcile passes by result (ok, error) and failing step",
            m.reconciles.clone(),
        );
        registry.register(
            "controller_reconcile_duration_seconds",
            "Duration of reconcile passes",
            m.duration.clone(),
        );
        m
    }

    pub fn unregistered() -> Self {
        Self {
            reconciles: Family::default(),
            duration: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        }
    }

    pub fn start_reconcile(&self) -> ReconcileTimer {
        ReconcileTimer {
            started: Instant::now(),
            histogram: self.duration.clone(),
        }
    }

    pub fn record(&self, result: &'static str, step: &'static str) {
        self.reconciles
            .get_or_create(&vec![
                ("result".into(), result.into()),
                ("step".into(), step.into()),
            ])
            .inc();
    }
}

/// Observes the pass duration when dropped.
pub struct ReconcileTimer {
    started: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}
