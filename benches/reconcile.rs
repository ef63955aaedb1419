//! Reconciler at scale (`cargo bench --bench reconcile`), two parts:
//!
//! 1. **The released binary** (`dittofs-operator controller --leader-elect=false`,
//!    its own process, pinned to core 0 when `taskset` exists) against the in-memory
//!    API server of the tests, served over HTTP by this process, with every watch
//!    lagging 1–3 s. The cluster holds 2,000 unrelated 50 KiB Secrets in 20 other
//!    namespaces (half with the `kubectl apply` annotation that copies their data).
//!    1,000 DittoServers (`replicas: 0`, ClusterIP) are created, then deleted.
//!    Measured: time to converge and to delete, failed and total reconciles per
//!    object (from the operator's /metrics), requests per object, writes once
//!    converged, the operator's CPU per object and its memory (VmRSS, VmHWM).
//! 2. **One idle pass** in-process (stores fed by hand): the CPU of a pass with
//!    nothing to do, the cost of a periodic resync.
//!
//! Run the load side on the other core: `taskset -c 1 cargo bench --bench reconcile`.

#[path = "../tests/fake_api/mod.rs"]
mod fake_api;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dittofs_operator::controller::reconcile::reconcile;
use dittofs_operator::controller::watches::{PerconaType, Stores, Writers};
use dittofs_operator::controller::{Context, ControllerMetrics, StoredServer};
use dittofs_operator::crd::DittoServer;
use fake_api::{AllFound, DS_PATH, FakeApi, over_http, start};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;
use tokio::sync::watch;

const SERVERS: usize = 1_000;
const UNRELATED_SECRETS: usize = 2_000;
const SECRET_BYTES: usize = 50 * 1024;
const NS: &str = "load";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    scale().await;
    idle_pass().await;
}

// --- 1. the released binary at scale ---------------------------------------------

/// The operator process: CPU seconds and memory from /proc.
struct Operator {
    child: Child,
    probe: std::net::SocketAddr,
    ticks_per_second: f64,
}

impl Operator {
    fn stat(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may contain spaces) in parentheses.
        let rest = text.rsplit_once(')')?.1;
        Some(rest.split_whitespace().map(str::to_string).collect())
    }

    /// utime + stime, in seconds.
    fn cpu(&self) -> f64 {
        self.stat()
            .map(|f| {
                let ticks: u64 =
                    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
                ticks as f64 / self.ticks_per_second
            })
            .unwrap_or(0.0)
    }

    /// A `/proc/PID/status` field in MiB (VmRSS, VmHWM).
    fn mib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
            / 1024.0
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.probe).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        let code = body.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body))
    }

    /// `dittofs_operator_controller_reconciles_total` for `result`.
    async fn reconciles(&self, result: &str) -> u64 {
        let Some((_, text)) = self.get("/metrics").await else {
            return 0;
        };
        text.lines()
            .filter(|l| {
                l.starts_with("dittofs_operator_controller_reconciles_total{")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn unrelated_secret(i: usize) -> serde_json::Value {
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; SECRET_BYTES]);
    let mut secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("blob-{i}"), "namespace": format!("other-{}", i % 20)},
        "type": "Opaque",
        "data": {"blob": payload},
    });
    if i.is_multiple_of(2) {
        // What `kubectl apply` leaves: the whole object again, in an annotation.
        secret["metadata"]["annotations"] = json!({
            "kubectl.kubernetes.io/last-applied-configuration": secret.to_string()
        });
    }
    secret
}

fn server(i: usize) -> DittoServer {
    serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": format!("s{i:04}"), "namespace": NS},
        "spec": {"replicas": 0, "storage": {"metadataSize": "1Gi"}, "service": {"type": "ClusterIP"}}
    }))
    .expect("DittoServer")
}

async fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(started.elapsed())
}

fn operator_requests(api: &FakeApi) -> Vec<fake_api::RequestRecord> {
    // Everything but this benchmark's own creates and deletes of DittoServers.
    api.requests()
        .into_iter()
        .filter(|r| {
            !(r.path.contains("/dittoservers") && (r.verb == "create" || r.verb == "delete"))
        })
        .collect()
}

async fn scale() {
    let api = FakeApi::new();
    api.enable_garbage_collector();
    api.create_namespace(NS);
    for i in 0..20 {
        api.create_namespace(&format!("other-{i}"));
    }
    for i in 0..UNRELATED_SECRETS {
        api.put(
            &format!("/api/v1/namespaces/other-{}/secrets/blob-{i}", i % 20),
            unrelated_secret(i),
        );
    }
    api.set_watch_lag(Duration::from_secs(1));
    api.set_watch_jitter(Duration::from_secs(2), 11);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(over_http::serve(api.clone(), listener));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, over_http::kubeconfig(addr)).expect("kubeconfig");

    let probe = free_port();
    let binary = env!("CARGO_BIN_EXE_dittofs-operator");
    let pinned = Command::new("taskset").arg("--version").output().is_ok();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", binary]);
        c
    } else {
        Command::new(binary)
    };
    let log = std::fs::File::create(dir.path().join("operator.log")).expect("log");
    command
        .args(["controller", "--leader-elect=false", "--concurrency", "8"])
        .arg("--probe-listen")
        .arg(probe.to_string())
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    let ticks_per_second = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let operator = Operator {
        child: command.spawn().expect("start the operator"),
        probe,
        ticks_per_second,
    };
    let started = Instant::now();
    loop {
        if let Some((200, _)) = operator.get("/readyz").await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "operator never ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ready_after = started.elapsed();
    let idle_rss = operator.mib("VmRSS:");
    let idle_hwm = operator.mib("VmHWM:");

    let servers: Api<DittoServer> = Api::namespaced(api.client(), NS);
    api.clear_log();
    let cpu_before = operator.cpu();
    let creating = Instant::now();
    for i in 0..SERVERS {
        servers
            .create(&PostParams::default(), &server(i))
            .await
            .expect("create");
    }
    let created_in = creating.elapsed();
    let converged = || {
        api.list(&format!("/apis/apps/v1/namespaces/{NS}/statefulsets"))
            .len()
            == SERVERS
            && api
                .list(&format!("/api/v1/namespaces/{NS}/configmaps"))
                .len()
                == SERVERS
            && api
                .list(&format!(
                    "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers"
                ))
                .iter()
                .all(|d| d["status"]["phase"] == "Stopped")
    };
    let converge = wait_until(Duration::from_secs(600), converged).await;
    let cpu_converge = operator.cpu() - cpu_before;
    api.settle(Duration::from_secs(5), Duration::from_secs(120))
        .await;
    let first = operator_requests(&api);
    let first_writes = first.iter().filter(|r| r.is_write()).count();
    let reconciles_ok = operator.reconciles("ok").await;
    let reconciles_failed = operator.reconciles("error").await;
    let converged_rss = operator.mib("VmRSS:");

    // Once converged: a quiet window must see no write at all.
    api.clear_log();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let quiet = operator_requests(&api);
    let quiet_writes = quiet.iter().filter(|r| r.is_write()).count();

    api.clear_log();
    let cpu_before = operator.cpu();
    let deleting = Instant::now();
    for i in 0..SERVERS {
        servers
            .delete(&format!("s{i:04}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    let delete_all_sent = deleting.elapsed();
    let deleted = wait_until(Duration::from_secs(600), || {
        api.list(&format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers"
        ))
        .is_empty()
    })
    .await;
    let cpu_delete = operator.cpu() - cpu_before;
    let deletion = operator_requests(&api);
    let failed_after = operator.reconciles("error").await;
    let peak = operator.mib("VmHWM:");

    let secs = |d: Option<Duration>| {
        d.map_or("did not finish".to_string(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    println!(
        "== the released binary, {SERVERS} DittoServers, watches lagging 1–3 s, {UNRELATED_SECRETS} unrelated {} KiB Secrets",
        SECRET_BYTES / 1024
    );
    println!(
        "operator pinned to core 0: {pinned}; ready after {:.1} s",
        ready_after.as_secs_f64()
    );
    println!(
        "idle with the unrelated Secrets: RSS {idle_rss:.1} MiB (peak so far {idle_hwm:.1} MiB)"
    );
    println!(
        "created {SERVERS} in {:.1} s; converged {} after the last create",
        created_in.as_secs_f64(),
        secs(converge)
    );
    println!(
        "reconciles: {:.2} per object, failed: {reconciles_failed}; requests: {:.1} per object ({:.1} writes)",
        (reconciles_ok + reconciles_failed) as f64 / SERVERS as f64,
        first.len() as f64 / SERVERS as f64,
        first_writes as f64 / SERVERS as f64
    );
    println!(
        "operator CPU to converge: {cpu_converge:.2} s = {:.2} ms per object; RSS converged {converged_rss:.1} MiB",
        cpu_converge * 1000.0 / SERVERS as f64
    );
    println!(
        "quiet 30 s once converged: {} requests, {quiet_writes} writes",
        quiet.len()
    );
    println!(
        "deleted: delete requests sent in {:.1} s, all released {} after the last; {:.1} requests per object; CPU {cpu_delete:.2} s; failed reconciles overall: {failed_after}",
        delete_all_sent.as_secs_f64(),
        secs(deleted),
        deletion.len() as f64 / SERVERS as f64
    );
    println!("operator peak RSS (VmHWM): {peak:.1} MiB");
}

// --- 2. one idle pass, in-process -------------------------------------------------

/// Feed the stores from the fake's objects (a watch that kept up).
fn sync(api: &FakeApi, stores: &Stores, w: &mut Writers) {
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
    let servers: Vec<StoredServer> =
        api.list_as("/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/dittoservers");
    for s in &servers {
        stores.on_server_event(&Event::Apply(s.clone()), &Default::default());
    }
    refill(&mut w.servers, servers);
    refill(
        &mut w.config_maps,
        api.list_as::<PartialObjectMeta<ConfigMap>>("/api/v1/namespaces/ns/configmaps"),
    );
    refill(
        &mut w.services,
        api.list_as::<PartialObjectMeta<Service>>("/api/v1/namespaces/ns/services"),
    );
    refill(
        &mut w.secrets,
        api.list_as::<PartialObjectMeta<Secret>>("/api/v1/namespaces/ns/secrets"),
    );
    refill(
        &mut w.stateful_sets,
        api.list_as::<StatefulSet>("/apis/apps/v1/namespaces/ns/statefulsets"),
    );
}

async fn idle_pass() {
    let api = FakeApi::new();
    api.create_namespace("ns");
    api.put(DS_PATH, json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"storage": {"metadataSize": "10Gi", "contentSize": "100Gi"}, "smb": {"enabled": true}, "metrics": {"enabled": true}}
    }));
    let client = start(&api);
    let reporter = Reporter {
        controller: "bench".into(),
        instance: None,
    };
    let (_tx, rx) = watch::channel(true);
    let (stores, mut writers) = Stores::new();
    stores.set_percona_type(PerconaType::Served);
    let ctx = Arc::new(Context::new(
        client,
        reporter,
        AllFound,
        rx,
        stores.clone(),
        ControllerMetrics::unregistered(),
        dittofs_operator::dittofs::Client::new(dittofs_operator::dittofs::Resolver::everything_to(
            std::net::Ipv4Addr::LOCALHOST.into(),
        )),
        std::time::Duration::from_secs(60),
    ));
    let stored = |stores: &Stores| {
        stores
            .servers
            .get(&ObjectRef::new("d").within("ns"))
            .expect("in the store")
    };
    for _ in 0..3 {
        sync(&api, &stores, &mut writers);
        reconcile(stored(&stores), ctx.clone()).await.expect("pass");
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
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!("== one idle pass (stores fed by hand, nothing to do)");
    println!(
        "p50 {:.0} µs, p99 {:.0} µs over {passes} passes; requests during these passes: {}",
        micros(times[passes / 2]),
        micros(times[passes * 99 / 100]),
        api.requests().len()
    );
}
