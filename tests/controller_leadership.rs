//! Leadership and the reconciler, against the in-memory API server: a replica that
//! loses the Lease cancels its in-flight passes (none of their writes lands), and
//! the Lease is released only once the reconciler has stopped.

mod fake_api;

use std::time::{Duration, Instant};

use dittofs_operator::controller::{self, ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::leader::{LeaderArgs, leadership};
use dittofs_operator::probes::Readiness;
use fake_api::{AllFound, FakeApi};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

async fn eventually(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn losing_the_lease_cancels_in_flight_passes() {
    let api = FakeApi::new();
    api.create_namespace("ns");
    let (leader_tx, leader) = watch::channel(true);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(controller::run(
        api.client(),
        dittofs_operator::dittofs::Client::new(dittofs_operator::dittofs::Resolver::everything_to(
            std::net::Ipv4Addr::LOCALHOST.into(),
        )),
        ControllerArgs {
            concurrency: 2,
            debounce: Duration::ZERO,
            reporter: "test".into(),
            poll_interval: std::time::Duration::from_secs(60),
            scope: Default::default(),
        },
        AllFound,
        leader,
        Readiness::new().gate("controller"),
        ControllerMetrics::unregistered(),
        shutdown.clone(),
        CancellationToken::new(),
    ));
    // Let the stores sync, then make every request slow.
    eventually("the watches", Duration::from_secs(10), || {
        api.open_watches() >= 6
    })
    .await;
    let servers: Api<DittoServer> = Api::namespaced(api.client(), "ns");
    api.set_request_delay(Duration::from_secs(2));
    api.clear_log();
    servers
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "d"}, "spec": {"storage": {"metadataSize": "1Gi"}}}),
            )
            .expect("DittoServer"),
        )
        .await
        .expect("create");
    // A pass has started: its first write (the finalizer) is in flight.
    eventually("a pass in flight", Duration::from_secs(10), || {
        api.in_flight() > 0
    })
    .await;
    leader_tx.send_replace(false);
    eventually("the pass cancelled", Duration::from_secs(1), || {
        api.in_flight() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|(_, path)| !path.ends_with("/dittoservers"))
        .collect();
    assert!(
        writes.is_empty(),
        "no write of the cancelled pass may land after the Lease is lost: {writes:?}"
    );
    // Leading again: the object is reconciled from the start.
    api.set_request_delay(Duration::ZERO);
    leader_tx.send_replace(true);
    eventually("the StatefulSet", Duration::from_secs(20), || {
        api.get("/apis/apps/v1/namespaces/ns/statefulsets/d")
            .is_some()
    })
    .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

#[tokio::test]
async fn the_lease_is_released_only_once_the_reconciler_has_stopped() {
    let api = FakeApi::new();
    api.create_namespace("dittofs-system");
    let args = LeaderArgs {
        leader_elect: true,
        lease_name: "dittofs-operator".into(),
        lease_namespace: "dittofs-system".into(),
        identity: Some("pod-a".into()),
        lease_duration: 4,
        lease_grace: 1,
    };
    let stopped = CancellationToken::new();
    let mut leading = leadership(api.client(), &args, stopped.clone())
        .await
        .expect("election starts");
    tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| *l))
        .await
        .expect("leads in time")
        .expect("alive");
    let leases: Api<Lease> = Api::namespaced(api.client(), "dittofs-system");
    let holder = || async {
        leases
            .get("dittofs-operator")
            .await
            .ok()
            .and_then(|l| l.spec?.holder_identity)
    };
    // Longer than the Lease lasts: it is renewed while the reconciler still runs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        holder().await.as_deref(),
        Some("pod-a"),
        "held until released"
    );
    assert!(*leading.borrow());
    stopped.cancel();
    let started = Instant::now();
    loop {
        if holder().await.is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "released once stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
