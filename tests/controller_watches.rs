//! The watches behind the reconciler's stores, against the test API server: a
//! failing watch backs off instead of retrying in a loop, and a type installed
//! later (the Percona CRD) is served to the passes within seconds.

mod fake_api;

use std::time::{Duration, Instant};

use dittofs_operator::controller::watches::OptionalType;
use dittofs_operator::controller::{Stores, Triggers};
use dittofs_operator::scope::WatchScope;
use fake_api::FakeApi;
use tokio_util::sync::CancellationToken;

fn percona_lists(api: &FakeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.path.contains("/perconapgclusters"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_type_is_retried_with_backoff_and_seen_within_seconds_once_installed() {
    let api = FakeApi::new();
    api.create_namespace("ns");
    api.uninstall_percona_crd();
    let shutdown = CancellationToken::new();
    let stores = Stores::start(
        &api.client(),
        &WatchScope::Cluster,
        Triggers::default(),
        &shutdown,
    );
    absent_then_installed(&api, &stores).await;
    shutdown.cancel();
}

/// The same when each served namespace has its own watch, merged into one store
/// (where a re-list shows only as changes, and an empty one not at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_type_installed_later_is_seen_by_a_namespace_scoped_operator() {
    let api = FakeApi::new();
    for ns in ["a", "b"] {
        api.create_namespace(ns);
    }
    api.uninstall_percona_crd();
    let shutdown = CancellationToken::new();
    let stores = Stores::start(
        &api.client(),
        &WatchScope::Namespaces(vec!["a".into(), "b".into()]),
        Triggers::default(),
        &shutdown,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stores.percona_type(), OptionalType::Absent);
    let installed = Instant::now();
    api.install_percona_crd();
    while stores.percona_type() != OptionalType::Served {
        assert!(
            installed.elapsed() < Duration::from_secs(8),
            "seen within the 5 s retry cap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
}

async fn absent_then_installed(api: &FakeApi, stores: &Stores) {
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(stores.percona_type(), OptionalType::Absent);
    // 0.8 s doubling to 5 s (lists at 0, 0.8, 2.4, 5.6, 10.6 s): a handful in 12 s,
    // not a loop, and not every 0.8 s either (each new list's Init event must not
    // start the backoff over).
    let lists = percona_lists(api);
    assert!(
        (4..=6).contains(&lists),
        "{lists} lists of an absent type in 12 s"
    );
    // Every other store listed once and keeps watching: no retry at all.
    let configmap_lists = api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/configmaps") && r.verb == "list")
        .count();
    assert_eq!(configmap_lists, 1);

    let installed = Instant::now();
    api.install_percona_crd();
    while stores.percona_type() != OptionalType::Served {
        assert!(
            installed.elapsed() < Duration::from_secs(8),
            "a Percona CRD installed later is seen within the 5 s retry cap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A DittoServer asking for a ServiceMonitor before the Prometheus Operator is
/// installed gets it within seconds of the CRD's arrival, with no change to the
/// DittoServer (the type's watch brings a pass to every DittoServer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_monitor_crd_installed_later_brings_the_service_monitor() {
    use dittofs_operator::controller::{ControllerArgs, ControllerMetrics};
    use dittofs_operator::crd::DittoServer;
    use kube::api::{Api, PostParams};
    use serde_json::json;
    use tokio::sync::watch;

    let api = FakeApi::new();
    api.create_namespace("ns");
    let ds: DittoServer = serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}, "service": {"type": "ClusterIP"},
                 "metrics": {"enabled": true, "serviceMonitor": {"enabled": true}}}
    }))
    .expect("DittoServer");
    Api::<DittoServer>::namespaced(api.client(), "ns")
        .create(&PostParams::default(), &ds)
        .await
        .expect("create");
    let (_leader_tx, leader) = watch::channel(true);
    let controller = fake_api::spawn_controller(
        &api,
        ControllerArgs {
            concurrency: 2,
            debounce: Duration::from_millis(100),
            reporter: "watch-test".into(),
            poll_interval: Duration::from_secs(60),
            scope: Default::default(),
        },
        ControllerMetrics::unregistered(),
        leader,
    );
    let started = Instant::now();
    while api
        .get("/apis/apps/v1/namespaces/ns/statefulsets/d")
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(30), "converged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let installed = Instant::now();
    api.install_service_monitor_crd();
    while api
        .get("/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/d-metrics")
        .is_none()
    {
        assert!(
            installed.elapsed() < Duration::from_secs(10),
            "the ServiceMonitor follows its CRD within seconds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.stop().await;
}
