//! Reconciler at scale (`cargo bench --bench reconcile`), four parts:
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
//! 2. **The released binary with 1,000 running servers**: `samples/minimal.yaml`
//!    (stores and the `/export` share), one replica each, every pod's REST API
//!    served by the fake DittoFS of the tests, which the operator reaches by name
//!    through an `/etc/hosts` of its own (`unshare --mount`). Measured: time until
//!    every server is configured, Kubernetes and DittoFS requests per server, and
//!    what the drift poll costs once everything is converged.
//! 3. **Tenants**: 1,000 DittoServers and 2,000 unrelated Secrets in 10 namespaces,
//!    the released binary started with `--watch-namespaces` for 2 of them, then on the
//!    same cluster serving every namespace: memory, requests, and that nothing
//!    outside the 2 is read.
//! 4. **One idle pass** in-process (stores fed by hand): the CPU of a pass with
//!    nothing to do, the cost of a periodic resync.
//!
//! Run the load side on the other core: `taskset -c 1 cargo bench --bench reconcile`.

#[path = "../tests/fake_api/mod.rs"]
mod fake_api;
#[path = "../tests/fake_dittofs/mod.rs"]
mod fake_dittofs;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dittofs_operator::controller::reconcile::reconcile;
use dittofs_operator::controller::watches::{OptionalType, Stores, Writers};
use dittofs_operator::controller::{Context, ControllerMetrics, StoredServer};
use dittofs_operator::crd::DittoServer;
use fake_api::{AllFound, DS_PATH, FakeApi, over_http, start};
use fake_dittofs::FakeDittoFs;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
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
    // RECONCILE_PARTS=scale,live,tenants,idle (the default) picks the parts to run.
    let parts =
        std::env::var("RECONCILE_PARTS").unwrap_or_else(|_| "scale,live,tenants,idle".into());
    let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
    if parts.contains(&"scale") {
        scale().await;
    }
    if parts.contains(&"live") {
        running_servers().await;
    }
    if parts.contains(&"tenants") {
        tenants().await;
    }
    if parts.contains(&"idle") {
        idle_pass().await;
    }
}

// --- 1. the released binary at scale ---------------------------------------------

/// The operator process: CPU seconds and memory from /proc.
struct Operator {
    child: Child,
    probe: std::net::SocketAddr,
    ticks_per_second: f64,
    pinned: bool,
}

impl Operator {
    /// `dittofs-operator controller --leader-elect=false --concurrency 8 EXTRA…`,
    /// pinned to core 0 when `taskset` exists, its log in `dir/operator.log`. With
    /// `hosts`, it runs in a mount namespace of its own (`unshare --mount`) where
    /// that file is bind-mounted over `/etc/hosts`: the system resolver of the
    /// released binary then sends `<name>-api.<ns>.svc` where the file says.
    fn spawn(
        dir: &std::path::Path,
        kubeconfig: &std::path::Path,
        extra: &[&str],
        hosts: Option<&std::path::Path>,
    ) -> Operator {
        let probe = free_port();
        let binary = env!("CARGO_BIN_EXE_dittofs-operator");
        let pinned = Command::new("taskset").arg("--version").output().is_ok();
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if pinned {
            argv.extend(["taskset".into(), "-c".into(), "0".into()]);
        }
        argv.push(binary.into());
        argv.extend(
            ["controller", "--leader-elect=false", "--concurrency", "8"]
                .iter()
                .chain(extra)
                .map(Into::into),
        );
        argv.extend(["--probe-listen".into(), probe.to_string().into()]);
        let mut command = match hosts {
            Some(hosts) => {
                // unshare and sh exec in place: the PID measured is the operator's.
                let mut c = Command::new("unshare");
                c.args([
                    "--mount",
                    "sh",
                    "-c",
                    r#"mount --bind "$0" /etc/hosts && exec "$@""#,
                ])
                .arg(hosts)
                .args(&argv);
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        let log = std::fs::File::create(dir.join("operator.log")).expect("log");
        command
            .env("KUBECONFIG", kubeconfig)
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
        Operator {
            child: command.spawn().expect("start the operator"),
            probe,
            ticks_per_second,
            pinned,
        }
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Some((200, _)) = self.get("/readyz").await {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "operator never ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

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

/// Serve `api` over HTTP on loopback; a directory holding a kubeconfig for it.
async fn serve_over_http(api: &FakeApi) -> (tempfile::TempDir, std::path::PathBuf) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(over_http::serve(api.clone(), listener));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, over_http::kubeconfig(addr)).expect("kubeconfig");
    (dir, kubeconfig)
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

/// `requests` counted by verb and path, most frequent first: what they were.
fn by_path(requests: &[fake_api::RequestRecord]) -> String {
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for r in requests {
        *counts
            .entry((r.verb.to_string(), r.path.clone()))
            .or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
        .iter()
        .map(|((verb, path), n)| format!("; {n} × {verb} {path}"))
        .collect()
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
    let (dir, kubeconfig) = serve_over_http(&api).await;

    let operator = Operator::spawn(dir.path(), &kubeconfig, &[], None);
    let pinned = operator.pinned;
    let started = Instant::now();
    operator.wait_ready().await;
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
        "quiet 30 s once converged: {} requests, {quiet_writes} writes{}",
        quiet.len(),
        by_path(&quiet)
    );
    println!(
        "deleted: delete requests sent in {:.1} s, all released {} after the last; {:.1} requests per object; CPU {cpu_delete:.2} s; failed reconciles overall: {failed_after}",
        delete_all_sent.as_secs_f64(),
        secs(deleted),
        deletion.len() as f64 / SERVERS as f64
    );
    println!("operator peak RSS (VmHWM): {peak:.1} MiB");
}

// --- 2. the released binary with 1,000 running DittoFS servers -------------------

const LIVE_NS: &str = "live";
/// The drift poll of the bench: the production default.
const POLL_SECONDS: u64 = 60;

/// `samples/minimal.yaml` (badger store, fs block store, `/export`) with a
/// ClusterIP Service and its REST API at the fake DittoFS's port.
fn live_server(i: usize, dittofs_port: u16) -> DittoServer {
    let text = include_str!("../samples/minimal.yaml");
    let mut ds: serde_json::Value = serde_yaml_ng::from_str(text).expect("minimal.yaml");
    ds["metadata"] = json!({"name": format!("s{i:04}"), "namespace": LIVE_NS});
    ds["spec"]["service"] = json!({"type": "ClusterIP"});
    ds["spec"]["controlPlane"] = json!({"servicePort": dittofs_port});
    serde_json::from_value(ds).expect("DittoServer")
}

fn admin_password(api: &FakeApi, name: &str) -> Option<String> {
    let secret = api.get(&format!(
        "/api/v1/namespaces/{LIVE_NS}/secrets/{name}-admin-bootstrap-credentials"
    ))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["password"].as_str()?)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The kubelet and the pods: once a StatefulSet and its admin Secret exist, its
/// DittoFS server starts (first start, that admin password) and the pod becomes
/// ready. Checks every 200 ms, as pods come up at their own pace.
fn start_pods(api: FakeApi, dittofs: Arc<FakeDittoFs>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut started = std::collections::HashSet::new();
        loop {
            for sts in api.list(&format!("/apis/apps/v1/namespaces/{LIVE_NS}/statefulsets")) {
                let Some(name) = sts["metadata"]["name"].as_str() else {
                    continue;
                };
                if started.contains(name) {
                    continue;
                }
                let Some(password) = admin_password(&api, name) else {
                    continue;
                };
                dittofs.add_server(&format!("{name}-api.{LIVE_NS}.svc"), &password);
                if api.make_statefulset_ready(&format!(
                    "/apis/apps/v1/namespaces/{LIVE_NS}/statefulsets/{name}"
                )) {
                    started.insert(name.to_string());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn condition_true(ds: &serde_json::Value, type_: &str) -> bool {
    ds["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// DittoFS requests answered and the writes among them, over every server.
fn dittofs_counts(dittofs: &FakeDittoFs) -> (u64, usize) {
    let writes = dittofs
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    (dittofs.totals().requests, writes)
}

async fn running_servers() {
    if !Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        println!(
            "== running servers: skipped (needs `unshare --mount`, i.e. root or user namespaces)"
        );
        return;
    }
    let api = FakeApi::new();
    api.enable_garbage_collector();
    api.create_namespace(LIVE_NS);
    api.set_watch_lag(Duration::from_secs(1));
    api.set_watch_jitter(Duration::from_secs(2), 13);
    let dittofs = Arc::new(FakeDittoFs::start());
    let (dir, kubeconfig) = serve_over_http(&api).await;
    // What cluster DNS would answer: every server's API Service is the fake.
    let hosts = dir.path().join("hosts");
    let mut table = String::from("127.0.0.1 localhost\n");
    for i in 0..SERVERS {
        table.push_str(&format!("127.0.0.1 s{i:04}-api.{LIVE_NS}.svc\n"));
    }
    std::fs::write(&hosts, table).expect("hosts");

    let poll = format!("{POLL_SECONDS}s");
    let operator = Operator::spawn(
        dir.path(),
        &kubeconfig,
        &["--poll-interval", &poll],
        Some(&hosts),
    );
    operator.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pods = start_pods(api.clone(), dittofs.clone());

    let servers: Api<DittoServer> = Api::namespaced(api.client(), LIVE_NS);
    api.clear_log();
    let cpu_before = operator.cpu();
    let creating = Instant::now();
    for i in 0..SERVERS {
        servers
            .create(&PostParams::default(), &live_server(i, dittofs.port()))
            .await
            .expect("create");
    }
    let created_in = creating.elapsed();
    let collection =
        format!("/apis/dittofs.dittofs.com/v1alpha1/namespaces/{LIVE_NS}/dittoservers");
    let converge = wait_until(Duration::from_secs(900), || {
        let all = api.list(&collection);
        all.len() == SERVERS
            && all
                .iter()
                .all(|d| condition_true(d, "ServerConfigured") && condition_true(d, "Ready"))
    })
    .await;
    let cpu_converge = operator.cpu() - cpu_before;
    api.settle(Duration::from_secs(5), Duration::from_secs(120))
        .await;
    let first = operator_requests(&api);
    let first_writes = first.iter().filter(|r| r.is_write()).count();
    let (dfs_first, dfs_first_writes) = dittofs_counts(&dittofs);
    let exported = (0..SERVERS)
        .filter(|i| {
            dittofs
                .server(&format!("s{i:04}-api.{LIVE_NS}.svc"))
                .is_some_and(|s| s.shares().iter().any(|sh| sh.name == "/export"))
        })
        .count();
    let reconciles_ok = operator.reconciles("ok").await;
    let reconciles_failed = operator.reconciles("error").await;
    let converged_rss = operator.mib("VmRSS:");

    // Converged: two poll intervals and a bit, with nothing changing.
    let quiet_for = Duration::from_secs(2 * POLL_SECONDS + 10);
    api.clear_log();
    dittofs.clear_requests();
    let dfs_before = dittofs.totals();
    let cpu_before = operator.cpu();
    tokio::time::sleep(quiet_for).await;
    let cpu_quiet = operator.cpu() - cpu_before;
    let quiet = operator_requests(&api);
    let quiet_writes = quiet.iter().filter(|r| r.is_write()).count();
    let (dfs_quiet_total, dfs_quiet_writes) = dittofs_counts(&dittofs);
    let dfs_quiet = dfs_quiet_total - dfs_before.requests;
    let db_writes_quiet = dittofs.totals().db_writes - dfs_before.db_writes;
    let quiet_rss = operator.mib("VmRSS:");

    pods.abort();
    api.clear_log();
    for i in 0..SERVERS {
        servers
            .delete(&format!("s{i:04}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    let deleted = wait_until(Duration::from_secs(600), || {
        api.list(&collection).is_empty()
    })
    .await;
    let failed_after = operator.reconciles("error").await;
    let peak = operator.mib("VmHWM:");

    let secs = |d: Option<Duration>| {
        d.map_or("did not finish".to_string(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    let n = SERVERS as f64;
    println!(
        "== the released binary, {SERVERS} running DittoFS servers (samples/minimal.yaml: stores and /export), watches lagging 1–3 s, poll every {POLL_SECONDS} s"
    );
    println!(
        "created {SERVERS} in {:.1} s; every one ServerConfigured and Ready {} after the last create; /export on {exported} servers",
        created_in.as_secs_f64(),
        secs(converge)
    );
    println!(
        "reconciles: {:.2} per object, failed: {reconciles_failed}; Kubernetes requests: {:.1} per object ({:.1} writes); DittoFS requests: {:.1} per server ({:.1} writes)",
        (reconciles_ok + reconciles_failed) as f64 / n,
        first.len() as f64 / n,
        first_writes as f64 / n,
        dfs_first as f64 / n,
        dfs_first_writes as f64 / n
    );
    println!(
        "operator CPU to converge: {cpu_converge:.2} s = {:.2} ms per server; RSS converged {converged_rss:.1} MiB",
        cpu_converge * 1000.0 / n
    );
    println!(
        "quiet {} s once converged: Kubernetes {} requests, {quiet_writes} writes; DittoFS {dfs_quiet} requests ({:.1}/s, {:.2} per server per poll interval), {dfs_quiet_writes} writes, {db_writes_quiet} database writes; operator CPU {cpu_quiet:.2} s ({:.0} µs per poll read); RSS {quiet_rss:.1} MiB",
        quiet_for.as_secs(),
        quiet.len(),
        dfs_quiet as f64 / quiet_for.as_secs_f64(),
        dfs_quiet as f64 / n / (quiet_for.as_secs_f64() / POLL_SECONDS as f64),
        cpu_quiet * 1e6 / (dfs_quiet.max(1)) as f64
    );
    println!("  the Kubernetes requests{}", by_path(&quiet));
    println!(
        "deleted: all released {} after the last delete; failed reconciles overall: {failed_after}",
        secs(deleted)
    );
    println!("operator peak RSS (VmHWM): {peak:.1} MiB");
}

// --- 3. 1,000 DittoServers in 10 namespaces, 2 of them served ----------------------

const TENANTS: usize = 10;
const SERVED_TENANTS: usize = 2;

fn tenant(t: usize) -> String {
    format!("tenant-{t}")
}

/// Ten tenant namespaces, each with 100 DittoServers (`replicas: 0`) and 200
/// unrelated 50 KiB Secrets (half with the `kubectl apply` copy).
fn tenant_cluster() -> FakeApi {
    let api = FakeApi::new();
    api.enable_garbage_collector();
    for t in 0..TENANTS {
        api.create_namespace(&tenant(t));
    }
    for i in 0..UNRELATED_SECRETS {
        let ns = tenant(i % TENANTS);
        let mut secret = unrelated_secret(i);
        secret["metadata"]["namespace"] = json!(ns);
        if let Some(copy) = secret["metadata"]["annotations"]
            .get_mut("kubectl.kubernetes.io/last-applied-configuration")
        {
            *copy = json!(
                copy.as_str()
                    .unwrap_or_default()
                    .replace(&format!("other-{}", i % 20), &ns)
            );
        }
        api.put(&format!("/api/v1/namespaces/{ns}/secrets/blob-{i}"), secret);
    }
    for i in 0..SERVERS {
        let ns = tenant(i % TENANTS);
        let mut ds = serde_json::to_value(server(i)).expect("DittoServer");
        ds["metadata"]["namespace"] = json!(ns);
        api.put(
            &format!("/apis/dittofs.dittofs.com/v1alpha1/namespaces/{ns}/dittoservers/s{i:04}"),
            ds,
        );
    }
    api.set_watch_lag(Duration::from_secs(1));
    api.set_watch_jitter(Duration::from_secs(2), 17);
    api
}

/// One operator on a fresh tenant cluster, serving `served` namespaces (all when
/// empty): the figures of one row.
async fn tenants_run(served: &[String]) {
    let api = tenant_cluster();
    let (dir, kubeconfig) = serve_over_http(&api).await;
    let list = served.join(",");
    let extra: Vec<&str> = if served.is_empty() {
        Vec::new()
    } else {
        vec!["--watch-namespaces", &list]
    };
    let operator = Operator::spawn(dir.path(), &kubeconfig, &extra, None);
    let stopped = |api: &FakeApi, ns: &str| {
        api.list(&format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{ns}/dittoservers"
        ))
        .iter()
        .filter(|d| d["status"]["phase"] == "Stopped")
        .count()
    };
    let serving: Vec<String> = if served.is_empty() {
        (0..TENANTS).map(tenant).collect()
    } else {
        served.to_vec()
    };
    let expected = SERVERS / TENANTS * serving.len();
    let converge = wait_until(Duration::from_secs(600), || {
        serving.iter().map(|ns| stopped(&api, ns)).sum::<usize>() == expected
    })
    .await;
    api.settle(Duration::from_secs(5), Duration::from_secs(120))
        .await;
    let cpu = operator.cpu();
    let requests = api.requests();
    let outside = requests
        .iter()
        .filter(|r| {
            r.path.contains("/namespaces/")
                && !serving
                    .iter()
                    .any(|ns| r.path.contains(&format!("/namespaces/{ns}/")))
        })
        .count();
    let untouched = (0..TENANTS)
        .map(tenant)
        .filter(|ns| !serving.contains(ns))
        .map(|ns| stopped(&api, &ns))
        .sum::<usize>();
    let rss = operator.mib("VmRSS:");
    let peak = operator.mib("VmHWM:");
    let what = if served.is_empty() {
        "every namespace".to_string()
    } else {
        format!("--watch-namespaces {list}")
    };
    println!(
        "{what}: {expected} served converged {} after start (outside: {untouched} reconciled); {} requests ({:.1} per served object, {outside} outside the served namespaces); operator CPU {cpu:.2} s; RSS converged {rss:.1} MiB, peak {peak:.1} MiB",
        converge.map_or("never".to_string(), |d| format!(
            "{:.1} s",
            d.as_secs_f64() - 0.0
        )),
        requests.len(),
        requests.len() as f64 / expected as f64,
    );
}

async fn tenants() {
    println!(
        "== {SERVERS} DittoServers and {UNRELATED_SECRETS} unrelated {} KiB Secrets in {TENANTS} namespaces; the released binary from start, watches lagging 1–3 s",
        SECRET_BYTES / 1024
    );
    let served: Vec<String> = (0..SERVED_TENANTS).map(tenant).collect();
    tenants_run(&served).await;
    tenants_run(&[]).await;
}

// --- 4. one idle pass, in-process -------------------------------------------------

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
        &mut w.network_policies,
        api.list_as::<PartialObjectMeta<NetworkPolicy>>(
            "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies",
        ),
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
    stores.set_percona_type(OptionalType::Served);
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
