//! Reconciler cost (`cargo bench --bench reconcile`):
//! 1. CPU per reconcile pass of one DittoServer against the in-memory API server
//!    (the idle resync: reads only, no writes), and of the first pass (creates all);
//! 2. memory of the operator's DittoServer cache with 1,000 objects: the process RSS
//!    before and after filling a kube reflector store (what the Controller keeps).

#[path = "../tests/fake_api/mod.rs"]
mod fake_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dittofs_operator::controller::reconcile::reconcile;
use dittofs_operator::controller::watches::{PerconaType, Stores, Writers};
use dittofs_operator::controller::{Context, ControllerMetrics, StoredServer};
use dittofs_operator::crd::DittoServer;
use fake_api::{AllFound, DS_PATH, FakeApi, start};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;
use tokio::sync::watch;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn server(i: usize) -> DittoServer {
    serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": format!("server-{i}"), "namespace": format!("team-{}", i % 50), "uid": format!("uid-{i}"),
                     "generation": 3, "resourceVersion": format!("{}", 1000 + i),
                     "labels": {"team": "storage", "env": "prod"},
                     "finalizers": ["dittofs.dittofs.com/finalizer"]},
        "spec": {"storage": {"metadataSize": "10Gi", "contentSize": "100Gi", "cacheSize": "5Gi", "controlPlaneSize": "1Gi"},
                 "smb": {"enabled": true}, "metrics": {"enabled": true, "port": 9090},
                 "service": {"type": "LoadBalancer", "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}},
                 "s3": {"credentialsSecretRef": {"secretName": "s3"}, "region": "eu-west-1"}},
        "status": {"phase": "Running", "replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                   "configHash": "a".repeat(64), "observedGeneration": 3}
    }))
    .expect("fixture")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let idle_before = rss_kib("VmRSS:");

    // 1. CPU per pass.
    let api = FakeApi::new();
    api.create_namespace("ns");
    api.put(DS_PATH, json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid", "generation": 1},
        "spec": {"storage": {"metadataSize": "10Gi", "contentSize": "100Gi"}, "smb": {"enabled": true}, "metrics": {"enabled": true}}
    }));
    let client = start(&api);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "bench".into(),
            instance: None,
        },
    );
    let (_tx, rx) = watch::channel(true);
    let (stores, mut writers) = Stores::new();
    stores.set_percona_type(PerconaType::Served);
    let ctx = Arc::new(Context::new(
        client,
        recorder,
        AllFound,
        rx,
        stores.clone(),
        ControllerMetrics::unregistered(),
    ));
    let stored = |stores: &Stores| {
        stores
            .servers
            .get(&ObjectRef::new("d").within("ns"))
            .expect("in the store")
    };
    let first = Instant::now();
    sync(&api, &stores, &mut writers);
    reconcile(stored(&stores), ctx.clone())
        .await
        .expect("first pass");
    let first = first.elapsed();
    for _ in 0..2 {
        sync(&api, &stores, &mut writers);
        reconcile(stored(&stores), ctx.clone())
            .await
            .expect("second pass");
    }
    api.clear_log();
    let passes = 2_000;
    let mut times = Vec::with_capacity(passes);
    for _ in 0..passes {
        let ds = stored(&stores);
        let t = Instant::now();
        reconcile(ds, ctx.clone()).await.expect("idle pass");
        times.push(t.elapsed());
    }
    times.sort();
    let writes = api.writes().len();
    println!(
        "first pass (creates 9 objects + status + events): {:.0} µs",
        micros(first)
    );
    println!(
        "idle resync pass (reads only): p50 {:.0} µs, p99 {:.0} µs over {passes} passes; writes during these passes: {writes}",
        micros(times[passes / 2]),
        micros(times[passes * 99 / 100])
    );
    println!(
        "  (includes the in-process fake API server's work: JSON encode/decode of every request and response)"
    );

    // 2. Memory of 1,000 cached DittoServers.
    let before = rss_kib("VmRSS:");
    let mut writer: Writer<DittoServer> = Writer::default();
    let store = writer.as_reader();
    writer.apply_watcher_event(&Event::Init);
    for i in 0..1_000 {
        writer.apply_watcher_event(&Event::InitApply(server(i)));
    }
    writer.apply_watcher_event(&Event::InitDone);
    let after = rss_kib("VmRSS:");
    println!(
        "cache of {} DittoServers: RSS {:.1} MiB → {:.1} MiB (+{:.1} MiB); bench process idle RSS at start {:.1} MiB, peak {:.1} MiB",
        store.state().len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        idle_before as f64 / 1024.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
}

/// Feed the stores from the fake's objects (a watch that kept up).
fn sync(api: &FakeApi, stores: &Stores, w: &mut Writers) {
    fn list<K: serde::de::DeserializeOwned>(api: &FakeApi, collection: &str) -> Vec<K> {
        api.list_as::<K>(collection)
    }
    fn refill<K>(writer: &mut Writer<K>, objects: Vec<K>)
    where
        K: kube::runtime::reflector::Lookup + Clone,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        writer.apply_watcher_event(&Event::Init);
        for o in objects {
            writer.apply_watcher_event(&Event::InitApply(o));
        }
        writer.apply_watcher_event(&Event::InitDone);
    }
    let servers: Vec<StoredServer> = list(
        api,
        "/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/dittoservers",
    );
    for s in &servers {
        stores.on_server_event(&Event::Apply(s.clone()), &Default::default());
    }
    refill(&mut w.servers, servers);
    refill(
        &mut w.config_maps,
        list::<PartialObjectMeta<ConfigMap>>(api, "/api/v1/namespaces/ns/configmaps"),
    );
    refill(
        &mut w.services,
        list::<PartialObjectMeta<Service>>(api, "/api/v1/namespaces/ns/services"),
    );
    refill(
        &mut w.secrets,
        list::<PartialObjectMeta<Secret>>(api, "/api/v1/namespaces/ns/secrets"),
    );
    refill(
        &mut w.stateful_sets,
        list::<StatefulSet>(api, "/apis/apps/v1/namespaces/ns/statefulsets"),
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
