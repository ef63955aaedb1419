//! ServiceMonitor `<name>-metrics` (`monitoring.coreos.com/v1`, the Prometheus
//! Operator's), as a DynamicObject: the operator needs no Prometheus Operator crate
//! and runs where its CRD is not installed.
//!
//! It selects the metrics Service by its labels, in its namespace only, and scrapes
//! its `metrics` port on the configured path, presenting the bearer token from the
//! same Secret key the server checks.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::crd::DittoServer;
use crate::effective::{EffectiveSpec, Metrics, ServiceMonitor};
use crate::names;

use super::labels::{labels, owner};
use super::service::{METRICS_COMPONENT, METRICS_PORT_NAME};

/// The ServiceMonitor API resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// Build the ServiceMonitor of `metrics`.
pub fn build_service_monitor(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    metrics: &Metrics,
    monitor: &ServiceMonitor,
) -> DynamicObject {
    let mut obj = DynamicObject::new(&names::metrics_service(&eff.name), &api_resource())
        .within(&eff.namespace);
    // The user's labels (for a Prometheus's serviceMonitorSelector), ours over them.
    let mut all: BTreeMap<String, String> = monitor.labels.clone();
    all.extend(labels(&eff.name, "service-monitor"));
    obj.metadata.labels = Some(all);
    obj.metadata.owner_references = owner(ds);
    let mut endpoint = json!({
        "port": METRICS_PORT_NAME,
        "path": metrics.path,
        "scheme": "http",
    });
    if let Some(interval) = &monitor.interval {
        endpoint["interval"] = json!(interval);
    }
    if let Some(token) = &metrics.token {
        endpoint["bearerTokenSecret"] = json!({"name": token.name, "key": token.key});
    }
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": labels(&eff.name, METRICS_COMPONENT)},
            "namespaceSelector": {"matchNames": [eff.namespace]},
            "endpoints": [endpoint],
        }
    });
    obj
}
