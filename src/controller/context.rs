//! State shared by every reconcile (client, who reports events, lookups,
//! leadership, the watch-fed stores with the reconciler's memory, metrics), and
//! what one pass adds to it ([`Pass`]).

use std::time::Instant;

use kube::api::{Api, DynamicObject};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::events::Events;
use super::memory::Memory;
use super::stored::{ServerRef, StoredServer, raw_api};
use super::watches::Stores;

/// Everything a reconcile needs besides the object.
pub struct Context<L> {
    pub client: Client,
    /// The client of the DittoFS servers' REST APIs.
    pub dittofs: crate::dittofs::Client,
    /// How often a converged server is looked at for changes made by hand.
    pub poll_interval: std::time::Duration,
    /// Who publishes the events (see `events.rs`).
    pub reporter: Reporter,
    /// Cluster facts the stores do not hold (StorageClasses).
    pub lookup: L,
    /// True while this replica holds the lease.
    pub leader: watch::Receiver<bool>,
    pub stores: Stores,
    pub metrics: ControllerMetrics,
}

impl<L> Context<L> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        reporter: Reporter,
        lookup: L,
        leader: watch::Receiver<bool>,
        stores: Stores,
        metrics: ControllerMetrics,
        dittofs: crate::dittofs::Client,
        poll_interval: std::time::Duration,
    ) -> Self {
        Self {
            client,
            dittofs,
            poll_interval,
            reporter,
            lookup,
            leader,
            stores,
            metrics,
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    pub fn memory(&self) -> &Memory {
        &self.stores.memory
    }
}

/// Everything one pass works with, besides the object.
pub struct Pass<'a, L> {
    pub ctx: &'a Context<L>,
    pub server: ServerRef,
    /// The DittoServers of the namespace, raw (see `stored::raw_api`).
    pub raw: Api<DynamicObject>,
    pub events: Events<'a>,
}

impl<'a, L> Pass<'a, L> {
    pub fn new(stored: &StoredServer, ctx: &'a Context<L>) -> Self {
        let server = ObjectRef::from(stored);
        let ns = stored.namespace().unwrap_or_else(|| "default".into());
        Pass {
            ctx,
            raw: raw_api(&ctx.client, &ns),
            events: Events {
                client: &ctx.client,
                reporter: &ctx.reporter,
                memory: ctx.memory(),
                server: server.clone(),
                reference: stored.object_ref(&()),
            },
            server,
        }
    }

    /// Our memory of recent writes, backoff and events.
    pub fn memory(&self) -> &'a Memory {
        self.ctx.memory()
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
