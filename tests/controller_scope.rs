//! `--watch-namespaces`: the real Controller (watches, stores, scheduler) against
//! the in-memory API server, serving two of three namespaces. Everything it reads or
//! writes is in those two; a DittoServer in the third is stored and left alone; one
//! namespace's watch expiring and re-listing keeps the other's objects.

mod fake_api;

use std::time::{Duration, Instant};

use dittofs_operator::controller::{ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::scope::ScopeArgs;
use fake_api::FakeApi;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;

const SERVED: [&str; 2] = ["team-a", "team-b"];
const OTHER: &str = "team-c";

fn server(ns: &str, name: &str) -> DittoServer {
    serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}, "service": {"type": "ClusterIP"}}
    }))
    .expect("DittoServer")
}

async fn wait(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ds_path(ns: &str, name: &str) -> String {
    format!("/apis/dittofs.dittofs.com/v1alpha1/namespaces/{ns}/dittoservers/{name}")
}

fn stopped(api: &FakeApi, ns: &str, name: &str) -> bool {
    api.get(&ds_path(ns, name))
        .is_some_and(|d| d["status"]["phase"] == "Stopped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_served_namespaces_are_watched_read_and_written() {
    let api = FakeApi::new();
    for ns in SERVED.iter().chain([&OTHER]) {
        api.create_namespace(ns);
    }
    // Watches trail the server, as a loaded API server's do.
    api.set_watch_lag(Duration::from_millis(300));
    // Unrelated Secrets in the namespace not served: never listed.
    api.put(
        &format!("/api/v1/namespaces/{OTHER}/secrets/db"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": OTHER}, "data": {"password": "cw=="}}),
    );
    for ns in SERVED.iter().chain([&OTHER]) {
        Api::<DittoServer>::namespaced(api.client(), ns)
            .create(&PostParams::default(), &server(ns, "first"))
            .await
            .expect("create");
    }

    // From here on, every request is the operator's (the test's own are in team-b).
    api.clear_log();
    let (_leader_tx, leader) = watch::channel(true);
    let controller = fake_api::spawn_controller(
        &api,
        ControllerArgs {
            concurrency: 4,
            debounce: Duration::from_millis(100),
            reporter: "scope-test".into(),
            poll_interval: Duration::from_secs(60),
            scope: ScopeArgs {
                // Given unsorted and twice: the scope is a set.
                watch_namespaces: vec!["team-b".into(), "team-a".into(), "team-b".into()],
            },
        },
        ControllerMetrics::unregistered(),
        leader,
    );

    wait(
        "both served namespaces converge",
        Duration::from_secs(60),
        || SERVED.iter().all(|ns| stopped(&api, ns, "first")),
    )
    .await;
    // Created after the start: picked up by the watch of its namespace.
    Api::<DittoServer>::namespaced(api.client(), "team-b")
        .create(&PostParams::default(), &server("team-b", "second"))
        .await
        .expect("create");
    wait(
        "a later DittoServer converges",
        Duration::from_secs(60),
        || stopped(&api, "team-b", "second"),
    )
    .await;

    // One namespace's watch history expires: its watches re-list (410 Gone), the
    // other namespace's objects stay in the stores, so editing one of them is seen.
    api.clear_log();
    api.compact_watch_history();
    api.remove("/api/v1/namespaces/team-a/configmaps/first-config");
    wait(
        "a child deleted while the history was compacted is made again",
        Duration::from_secs(60),
        || {
            api.get("/api/v1/namespaces/team-a/configmaps/first-config")
                .is_some()
        },
    )
    .await;
    let mut edited = api.get(&ds_path("team-b", "first")).expect("exists");
    edited["spec"]["image"] = json!("ghcr.io/marmos91/dittofs:v0.29.1");
    edited["metadata"]["generation"] = serde_json::Value::Null;
    api.put(&ds_path("team-b", "first"), edited);
    wait(
        "an edit in the other namespace is applied",
        Duration::from_secs(60),
        || {
            api.get("/apis/apps/v1/namespaces/team-b/statefulsets/first")
                .is_some_and(|s| s.to_string().contains("ghcr.io/marmos91/dittofs:v0.29.1"))
        },
    )
    .await;
    // Give a pass for team-c every chance to happen.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let untouched = api.get(&ds_path(OTHER, "first")).expect("still stored");
    assert!(
        untouched.get("status").is_none_or(|s| s.is_null()),
        "a namespace not served gets no status: {untouched}"
    );
    assert!(
        api.list(&format!("/apis/apps/v1/namespaces/{OTHER}/statefulsets"))
            .is_empty(),
        "nor children"
    );
    let requests = api.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let in_served = SERVED
            .iter()
            .any(|ns| r.path.contains(&format!("/namespaces/{ns}/")));
        let cluster_scoped_by_nature = r.path
            == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/dittoservers.dittofs.dittofs.com";
        assert!(
            in_served || cluster_scoped_by_nature,
            "{} {} {}?{} is outside the served namespaces",
            r.verb,
            r.method,
            r.path,
            r.query
        );
    }
    for ns in SERVED {
        assert!(
            requests
                .iter()
                .any(|r| r.verb == "watch" && r.path == format!("/api/v1/namespaces/{ns}/secrets")),
            "Secrets are watched per served namespace"
        );
    }

    controller.stop().await;
}
