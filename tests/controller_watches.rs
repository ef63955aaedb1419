//! The watches behind the reconciler's stores, against the test API server: a
//! failing watch backs off instead of retrying in a loop, and a type installed
//! later (the Percona CRD) is served to the passes within seconds.

mod fake_api;

use std::time::{Duration, Instant};

use dittofs_operator::controller::watches::PerconaType;
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
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stores.percona_type(), PerconaType::Absent);
    // 0.8 s doubling to 5 s: a handful of lists in 4 s, not a loop.
    let lists = percona_lists(&api);
    assert!(
        (2..=8).contains(&lists),
        "{lists} lists of an absent type in 4 s"
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
    while stores.percona_type() != PerconaType::Served {
        assert!(
            installed.elapsed() < Duration::from_secs(8),
            "a Percona CRD installed later is seen within the 5 s retry cap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
}
