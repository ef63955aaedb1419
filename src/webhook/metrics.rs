//! Webhook metrics. Every label has a fixed, small set of values (endpoint, result,
//! HTTP code); object names and namespaces never become labels.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which endpoint was called.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
    /// Any other path (404s, scanners).
    Other,
}

impl Endpoint {
    pub fn from_path(path: &str) -> Self {
        match path {
            "/validate" => Self::Validate,
            "/mutate" => Self::Mutate,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
            Self::Other => "other",
        }
    }
}

impl EncodeLabelValue for Endpoint {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// What the webhook answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    /// No admission decision: unreadable request, timeout, wrong method or path.
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Endpoint,
    result: Outcome,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    success: bool,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// Handles to the webhook's metrics (cheap to clone; all clones share the values).
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    reloads: Family<ReloadLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 250 µs … ~8 s: admission answers are sub-millisecond unless a lookup waits.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl WebhookMetrics {
    /// Register under `<registry prefix>_webhook_…`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("webhook");
        sub.register(
            "requests",
            "Admission HTTP requests by endpoint, result and HTTP status code",
            metrics.requests.clone(),
        );
        sub.register(
            "request_duration_seconds",
            "Time to answer an admission HTTP request",
            metrics.duration.clone(),
        );
        sub.register(
            "certificate_reloads",
            "Attempts to load a changed serving certificate, by success",
            metrics.reloads.clone(),
        );
        metrics
    }

    /// Metrics that are recorded but exported nowhere (tests, benches).
    pub fn unregistered() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            reloads: Family::default(),
        }
    }

    pub fn observe_request(&self, endpoint: Endpoint, result: Outcome, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                result,
                code,
            })
            .inc();
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    pub fn certificate_reloaded(&self, success: bool) {
        self.reloads.get_or_create(&ReloadLabels { success }).inc();
    }

    /// Requests counted so far with these labels (for the tests).
    #[cfg(feature = "test-support")]
    pub fn request_count(&self, endpoint: Endpoint, result: Outcome, code: u16) -> u64 {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                result,
                code,
            })
            .get()
    }
}
