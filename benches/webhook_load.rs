//! Admission webhook load test.
//!
//! Starts the real binary (`dittofs-operator webhook --self-signed --offline`) as a
//! child process, drives it with many concurrent keep-alive TLS connections sending a
//! mix of AdmissionReviews (valid UPDATE, warned, denied, mutated CREATE), then reports
//! throughput, latency percentiles and the server's peak RSS (VmHWM from
//! /proc/<pid>/status).
//!
//! `cargo bench --bench webhook_load` (release build). Knobs: BENCH_SECONDS (10),
//! BENCH_CONNECTIONS (64), BENCH_WARMUP_SECONDS (2).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Http1Conn, ditto_server, http1_config, review};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Metadata as the API server sends it (labels, annotations, managedFields).
fn realistic(mut object: Value) -> Value {
    object["metadata"] = json!({
        "name": "demo",
        "namespace": "default",
        "uid": "0f5a3c7e-2b7a-4f5e-9d7a-3b1c2d4e5f60",
        "resourceVersion": "123456",
        "generation": 3,
        "creationTimestamp": "2026-11-22T10:00:00Z",
        "labels": {"app.kubernetes.io/name": "dittofs", "app.kubernetes.io/instance": "demo"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": serde_json::to_string(&object["spec"]).unwrap_or_default()},
        "managedFields": [{
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "dittofs.dittofs.com/v1alpha1",
            "time": "2026-11-22T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {".": {}, "f:storage": {".": {}, "f:metadataSize": {}}, "f:service": {".": {}, "f:type": {}}}}
        }]
    });
    object
}

/// The request mix: (name, path, body).
fn mix() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let minimal = json!({"storage": {"metadataSize": "10Gi", "contentSize": "50Gi", "storageClassName": "standard"}, "service": {"type": "ClusterIP"}});
    // A fully defaulted object, as it reaches /validate after /mutate.
    let mut defaulted = ditto_server(minimal.clone());
    let raw = defaulted["spec"].clone();
    if let Ok(spec) = dittofs_operator::crd::parse_spec(&raw)
        && let Ok(patch) = dittofs_operator::defaults::spec_defaulting_patch(&raw, &spec)
    {
        let _ = json_patch::patch(&mut defaulted, &patch);
    }
    let mut old = defaulted.clone();
    old["spec"]["image"] = json!("marmos91c/dittofs:v0.28.0");
    let mut warned = defaulted.clone();
    warned["spec"]["nfsAdapterPort"] = json!(1000);
    let mut denied = defaulted.clone();
    denied["spec"]["smb"] = json!({"enabled": true, "port": 2049, "adapterPort": 1445});
    let to_bytes = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    vec![
        (
            "valid UPDATE",
            "/validate?timeout=10s",
            to_bytes(&review(
                "bench-valid",
                "UPDATE",
                Some(realistic(defaulted)),
                Some(realistic(old)),
            )),
        ),
        (
            "warned CREATE",
            "/validate?timeout=10s",
            to_bytes(&review(
                "bench-warned",
                "CREATE",
                Some(realistic(warned)),
                None,
            )),
        ),
        (
            "denied CREATE",
            "/validate?timeout=10s",
            to_bytes(&review(
                "bench-denied",
                "CREATE",
                Some(realistic(denied)),
                None,
            )),
        ),
        (
            "mutated CREATE",
            "/mutate?timeout=10s",
            to_bytes(&review(
                "bench-mutated",
                "CREATE",
                Some(realistic(ditto_server(minimal))),
                None,
            )),
        ),
    ]
}

struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    fn start(addr: SocketAddr, probe: SocketAddr, ca_out: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_dittofs-operator"))
            .args([
                "--log-format",
                "text",
                "webhook",
                "--self-signed",
                "--offline",
            ])
            .arg("--ca-out")
            .arg(ca_out)
            .args(["--listen", &addr.to_string()])
            .args(["--probe-listen", &probe.to_string()])
            .args(["--shutdown-delay", "0s"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dittofs-operator webhook");
        Self { child }
    }

    fn status_field(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn wait_ready(probe: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut tcp) = tokio::net::TcpStream::connect(probe).await {
            let _ = tcp
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut reply = Vec::new();
            let _ = tcp.read_to_end(&mut reply).await;
            if reply.starts_with(b"HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "webhook never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// What one load phase measured.
struct Phase {
    /// Service latency (request written → response read), µs.
    latency_us: Vec<u32>,
    /// Latency from the scheduled send time (paced phase; includes timer slack), µs.
    from_schedule_us: Vec<u32>,
    by_kind: Vec<u64>,
    errors: u64,
    seconds: u64,
}

/// Drive `connections` keep-alive connections for `warmup + seconds`. With `rate`,
/// each connection sends on a fixed schedule (open loop, `rate` reviews/s in total);
/// without, each sends its next request as soon as the previous one is answered.
async fn run_phase(
    addr: SocketAddr,
    ca: &str,
    mix: Arc<Vec<(&'static str, &'static str, Vec<u8>)>>,
    connections: usize,
    warmup: u64,
    seconds: u64,
    rate: Option<f64>,
) -> Phase {
    let config = http1_config(ca);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(warmup);
    let end = measure_from + Duration::from_secs(seconds);
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let config = config.clone();
        let mix = mix.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Http1Conn::open(addr, config).await.expect("connect");
            let mut latency = Vec::with_capacity(64 * 1024);
            let mut from_schedule = Vec::new();
            let mut by_kind = vec![0u64; mix.len()];
            let mut errors = 0u64;
            // Spread the connections' schedules evenly over one interval.
            let mut due = interval.map(|i| start + i.mul_f64(worker as f64 / connections as f64));
            let mut i = worker;
            loop {
                if let (Some(at), Some(step)) = (due.as_mut(), interval) {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(*at)).await;
                    *at += step;
                }
                let scheduled = due.zip(interval).map(|(next, step)| next - step);
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let kind = i % mix.len();
                let (_, path, body) = &mix[kind];
                i += 1;
                match conn.post(path, body).await {
                    Ok(res) if res.status == 200 => {
                        if sent >= measure_from {
                            let done = Instant::now();
                            latency.push((done - sent).as_micros() as u32);
                            if let Some(at) = scheduled {
                                from_schedule.push((done - at).as_micros() as u32);
                            }
                            by_kind[kind] += 1;
                        }
                    }
                    _ => errors += 1,
                }
            }
            (latency, from_schedule, by_kind, errors)
        }));
    }
    let mut phase = Phase {
        latency_us: Vec::new(),
        from_schedule_us: Vec::new(),
        by_kind: vec![0; mix.len()],
        errors: 0,
        seconds,
    };
    for task in tasks {
        let (latency, from_schedule, kinds, errors) = task.await.expect("load task");
        phase.latency_us.extend(latency);
        phase.from_schedule_us.extend(from_schedule);
        for (total, n) in phase.by_kind.iter_mut().zip(kinds) {
            *total += n;
        }
        phase.errors += errors;
    }
    phase.latency_us.sort_unstable();
    phase.from_schedule_us.sort_unstable();
    phase
}

fn report(name: &str, phase: &Phase, mix: &[(&'static str, &'static str, Vec<u8>)]) -> (f64, f64) {
    let throughput = phase.latency_us.len() as f64 / phase.seconds as f64;
    let lat = &phase.latency_us;
    println!("### {name}");
    for ((kind, _, _), n) in mix.iter().zip(&phase.by_kind) {
        println!("requests {kind}: {n}");
    }
    println!("errors: {}", phase.errors);
    println!("throughput: {throughput:.0} reviews/s");
    println!(
        "latency ms (send → response): p50 {:.3}, p99 {:.3}, p99.9 {:.3}, max {:.3}",
        percentile(lat, 50.0),
        percentile(lat, 99.0),
        percentile(lat, 99.9),
        percentile(lat, 100.0)
    );
    if !phase.from_schedule_us.is_empty() {
        let s = &phase.from_schedule_us;
        println!(
            "latency ms (scheduled → response, incl. ≤1 ms timer slack): p50 {:.3}, p99 {:.3}, p99.9 {:.3}",
            percentile(s, 50.0),
            percentile(s, 99.0),
            percentile(s, 99.9)
        );
    }
    (throughput, percentile(lat, 99.0))
}

fn main() {
    let seconds = env_u64("BENCH_SECONDS", 10);
    let warmup = env_u64("BENCH_WARMUP_SECONDS", 2);
    let connections = env_u64("BENCH_CONNECTIONS", 64) as usize;
    let rate = env_u64("BENCH_RATE", 5000) as f64;
    support::install_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_path = dir.path().join("ca.pem");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let probe: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = ServerProcess::start(addr, probe, &ca_path);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mix = Arc::new(mix());
    let (saturated, paced, outcomes) = runtime.block_on(async {
        wait_ready(probe).await;
        let ca = std::fs::read_to_string(&ca_path).expect("CA written");
        // Check the mix really does what it says (one request each, not timed).
        let mut conn = Http1Conn::open(addr, http1_config(&ca))
            .await
            .expect("connect");
        let mut outcomes = Vec::new();
        for (name, path, body) in mix.iter() {
            let res = conn.post(path, body).await.expect("request");
            let r = &res.json()["response"];
            outcomes.push(format!(
                "{name} ({} bytes): allowed={} warnings={} patch={}",
                body.len(),
                r["allowed"],
                r["warnings"].as_array().map_or(0, Vec::len),
                r.get("patch").is_some()
            ));
        }
        let saturated = run_phase(addr, &ca, mix.clone(), connections, warmup, seconds, None).await;
        let paced = run_phase(
            addr,
            &ca,
            mix.clone(),
            connections,
            warmup,
            seconds,
            Some(rate),
        )
        .await;
        (saturated, paced, outcomes)
    });

    let peak_rss_kib = server.status_field("VmHWM:");
    let rss_kib = server.status_field("VmRSS:");
    server.stop();

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## webhook_load");
    println!(
        "cores: {cores}, connections: {connections}, each phase: {seconds} s measured after {warmup} s warm-up"
    );
    for line in &outcomes {
        println!("mix: {line}");
    }
    let (max_throughput, _) = report("saturation (closed loop)", &saturated, &mix);
    let (paced_throughput, paced_p99) = report(
        &format!("paced at {rate:.0} reviews/s (open loop)"),
        &paced,
        &mix,
    );
    println!(
        "server RSS: peak (VmHWM) {:.1} MiB, at end {:.1} MiB",
        peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
        rss_kib.unwrap_or(0) as f64 / 1024.0
    );
    let targets = [
        ("max throughput >= 5000/s", max_throughput >= 5000.0),
        (
            "paced phase sustained >= 99% of its rate",
            paced_throughput >= 0.99 * rate,
        ),
        ("p99 < 5 ms at the paced rate", paced_p99 < 5.0),
        (
            "peak RSS < 30 MiB",
            peak_rss_kib.is_some_and(|k| k < 30 * 1024),
        ),
        ("no errors", saturated.errors == 0 && paced.errors == 0),
    ];
    for (name, ok) in targets {
        println!("target {name}: {}", if ok { "met" } else { "MISSED" });
    }
}
