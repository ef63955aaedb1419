//! One stored DittoServer that the current types cannot read (written under another
//! CRD version) among readable ones, through the real Controller (watches, stores,
//! scheduler) against the in-memory API server: the watch of all DittoServers keeps
//! working, the others converge, and the unreadable one gets a condition naming the
//! field (issue 8 §6).

mod fake_api;

use std::time::{Duration, Instant};

use dittofs_operator::controller::{ControllerArgs, ControllerMetrics};
use fake_api::FakeApi;
use serde_json::{Value, json};
use tokio::sync::watch;

const NS: &str = "mixed";
const GOOD: usize = 5;

fn path(name: &str) -> String {
    format!("/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers/{name}")
}

fn condition(api: &FakeApi, name: &str, type_: &str) -> Option<Value> {
    let ds = api.get(&path(name))?;
    ds["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreadable_object_does_not_stop_the_others() {
    let api = FakeApi::new();
    api.create_namespace(NS);
    api.set_watch_lag(Duration::from_millis(200));
    // Stored as another CRD version might have left it: `replicas` a string. Put
    // straight into storage (a schema would refuse it on create).
    api.put(
        &path("bad"),
        json!({"apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
               "metadata": {"name": "bad", "namespace": NS, "uid": "bad-uid", "generation": 1},
               "spec": {"replicas": "two", "storage": {"metadataSize": "1Gi"}}}),
    );
    for i in 0..GOOD {
        api.put(
            &path(&format!("good{i}")),
            json!({"apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
                   "metadata": {"name": format!("good{i}"), "namespace": NS, "uid": format!("good-{i}"), "generation": 1},
                   "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}}}),
        );
    }

    let (_leader_tx, leader) = watch::channel(true);
    let controller = fake_api::spawn_controller(
        &api,
        ControllerArgs {
            concurrency: 4,
            debounce: Duration::from_millis(100),
            reporter: "unreadable-test".into(),
            poll_interval: std::time::Duration::from_secs(60),
            scope: Default::default(),
        },
        ControllerMetrics::unregistered(),
        leader,
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let good_done = (0..GOOD).all(|i| {
            api.get(&format!(
                "/apis/apps/v1/namespaces/{NS}/statefulsets/good{i}"
            ))
            .is_some()
        });
        let bad_reported =
            condition(&api, "bad", "ConfigReady").is_some_and(|c| c["reason"] == "UnreadableSpec");
        if good_done && bad_reported {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good converged: {good_done}, unreadable reported: {bad_reported}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = condition(&api, "bad", "ConfigReady").expect("condition")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("replicas"), "names the field: {message}");
    assert!(
        api.get(&format!("/apis/apps/v1/namespaces/{NS}/statefulsets/bad"))
            .is_none(),
        "nothing is applied for an unreadable object"
    );
    assert!(api.event_reasons().iter().any(|r| r == "UnreadableSpec"));

    controller.stop().await;
}
