//! 1,000 DittoServers through the real Controller (watches, stores, scheduler,
//! leadership) against the in-memory API server with lagging watches — what a
//! loaded real API server does to every cache. Asserts correctness at scale, not
//! speed: no failed pass, every object converged and then deleted (within generous
//! bounds for a debug build on a busy machine), and the requests one object costs
//! on its first pass and on a resync with nothing to do.
//!
//! The same scenario with the release binary, timings and memory is the
//! `reconcile` benchmark (`docs/benchmarks.md`).

mod fake_api;

use std::time::{Duration, Instant};

use dittofs_operator::controller::{ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use fake_api::FakeApi;
use kube::api::{Api, DeleteParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::watch;

const SERVERS: usize = 1_000;
const NS: &str = "scale";

fn server(i: usize) -> DittoServer {
    serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": format!("s{i:04}"), "namespace": NS},
        "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}, "service": {"type": "ClusterIP"}}
    }))
    .expect("DittoServer")
}

/// `controller_reconciles_total` by result, from the metrics text.
fn reconciles(registry: &Registry, result: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .filter(|l| {
            l.starts_with("controller_reconciles_total{")
                && l.contains(&format!("result=\"{result}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn wait(what: &str, bound: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < bound,
            "{what}: not done within {} s",
            bound.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_servers_converge_and_delete_on_lagging_watches() {
    let api = FakeApi::new();
    api.create_namespace(NS);
    api.enable_garbage_collector();
    // Every watch trails the server by 1–3 s; GET and LIST are current.
    api.set_watch_lag(Duration::from_secs(1));
    api.set_watch_jitter(Duration::from_secs(2), 7);

    let mut registry = Registry::default();
    let metrics = ControllerMetrics::register(&mut registry);
    let (leader_tx, leader) = watch::channel(true);
    let controller = fake_api::spawn_controller(
        &api,
        ControllerArgs {
            concurrency: 8,
            debounce: Duration::from_millis(200),
            reporter: "scale-test".into(),
            poll_interval: std::time::Duration::from_secs(60),
            scope: Default::default(),
        },
        metrics,
        leader,
    );

    let servers: Api<DittoServer> = Api::namespaced(api.client(), NS);
    // Cleared before the creates, so that passes starting while they are still being
    // sent are counted; the test's own creates are left out below.
    api.clear_log();
    for i in 0..SERVERS {
        servers
            .create(&PostParams::default(), &server(i))
            .await
            .expect("create");
    }

    // Converged: every child exists, and every status says so.
    let converged = || {
        let sts = api
            .list(&format!("/apis/apps/v1/namespaces/{NS}/statefulsets"))
            .len();
        let cms = api
            .list(&format!("/api/v1/namespaces/{NS}/configmaps"))
            .len();
        let stopped = api
            .list(&format!(
                "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers"
            ))
            .iter()
            .filter(|d| d["status"]["phase"] == "Stopped")
            .count();
        sts == SERVERS && cms == SERVERS && stopped == SERVERS
    };
    let took = wait("convergence", Duration::from_secs(240), converged).await;
    assert!(
        api.settle(Duration::from_secs(5), Duration::from_secs(120))
            .await,
        "writes stop"
    );
    let requests: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| !(r.path.contains("/dittoservers") && r.verb == "create"))
        .collect();
    let first_pass = requests.len() as f64 / SERVERS as f64;
    let writes = requests.iter().filter(|r| r.is_write()).count() as f64 / SERVERS as f64;
    eprintln!("converged in {took:?}: {first_pass:.1} requests ({writes:.1} writes) per object");
    assert_eq!(reconciles(&registry, "error"), 0, "no pass failed");
    assert_eq!(
        api.event_reasons()
            .iter()
            .filter(|r| *r == "ReconcileFailed")
            .count(),
        0
    );
    // Eight children (2 Secrets, ConfigMap, 3 Services, NetworkPolicy, StatefulSet:
    // a read before each create, then the apply) and the status: 17, and a little
    // room for a guard that meets a stale cache. No finalizer (only a Percona
    // cluster needs one).
    assert!(first_pass <= 18.0, "{first_pass:.1} requests per object");

    // A resync of everything with nothing to do (a new leadership term reconciles
    // every object): answered by the stores and the memory of our own writes.
    leader_tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reconciles(&registry, "ok");
    api.clear_log();
    leader_tx.send_replace(true);
    wait("the resync", Duration::from_secs(120), || {
        reconciles(&registry, "ok") >= before + SERVERS as u64
    })
    .await;
    // The ServiceMonitor type is not installed here: its watch lists it again every
    // few seconds (so that a Prometheus Operator installed later is seen), which is
    // not a request of the passes.
    let idle: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path != "/apis/monitoring.coreos.com/v1/servicemonitors")
        .map(|r| (r.method, r.path))
        .collect();
    assert!(
        idle.is_empty(),
        "an idle resync makes no request: {:?}",
        &idle[..idle.len().min(10)]
    );

    // Delete everything: every object released, none left Terminating.
    api.clear_log();
    for i in 0..SERVERS {
        servers
            .delete(&format!("s{i:04}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    let took = wait("deletion", Duration::from_secs(180), || {
        api.list(&format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers"
        ))
        .is_empty()
    })
    .await;
    eprintln!("all deleted in {took:?}");
    assert_eq!(reconciles(&registry, "error"), 0, "no pass failed");

    controller.stop().await;
}
