//! Slow-client load generator: the webhook under thousands of TLS connections that
//! send a request's headers and then trickle the body one byte at a time, while
//! normal reviews keep coming.
//!
//! Starts the real binary (`dittofs-operator webhook --self-signed --offline`, or
//! `SLOW_BIN`) as a child process and reports:
//! - for the slow connections: how many were opened, how many the server closed, and
//!   the time from connect to close (max, p99) — the target is every one within 10 s;
//! - the server's peak RSS (VmHWM, and VmRSS sampled every 100 ms) — target < 48 MiB;
//! - normal reviews meanwhile, over connections opened before the attack (as the API
//!   server keeps its pool) and over a fresh connection each second (a new API server
//!   connection arriving during the attack): latency p50/p99 (target p99 < 5 ms) and
//!   errors.
//!
//! `cargo bench --bench slow_clients`. Knobs: SLOW_CONNECTIONS (4000), SLOW_SECONDS
//! (20, how long the attack lasts), SLOW_TRICKLE_MS (1000, one byte per connection
//! this often), SLOW_CONTENT_LENGTH (1000000, announced), NORMAL_RATE (200 reviews/s).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Http1Conn, ditto_server, http1_config, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

struct Server {
    child: Child,
}

impl Server {
    fn start(addr: SocketAddr, probe: SocketAddr, ca_out: &Path) -> Self {
        let bin = std::env::var("SLOW_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_dittofs-operator").to_string());
        let child = Command::new(bin)
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
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dittofs-operator webhook");
        Self { child }
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
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
    let deadline = Instant::now() + Duration::from_secs(30);
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

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What happened to one slow connection.
enum SlowOutcome {
    /// The server closed it this long after the TCP connect.
    Closed(Duration),
    /// Still open when the attack ended.
    Open,
    /// Could not connect or complete the TLS handshake.
    Refused,
}

/// Connect, send headers announcing `content_length`, then one byte every `trickle`
/// until the server closes the connection or `until`.
async fn slow_connection(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    content_length: u64,
    trickle: Duration,
    until: Instant,
) -> SlowOutcome {
    let connected = Instant::now();
    let Ok(mut tls) = support::connect(addr, config).await else {
        return SlowOutcome::Refused;
    };
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    );
    if tls.write_all(head.as_bytes()).await.is_err() || tls.flush().await.is_err() {
        return SlowOutcome::Closed(connected.elapsed());
    }
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= until {
            return SlowOutcome::Open;
        }
        let next = (now + trickle).min(until);
        tokio::select! {
            read = tls.read(&mut buf) => match read {
                // An answer (408) or the close itself: keep reading until EOF.
                Ok(n) if n > 0 => continue,
                _ => return SlowOutcome::Closed(connected.elapsed()),
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {
                if tls.write_all(b" ").await.is_err() || tls.flush().await.is_err() {
                    return SlowOutcome::Closed(connected.elapsed());
                }
            }
        }
    }
}

#[derive(Default)]
struct NormalStats {
    latency_us: Vec<u64>,
    errors: u64,
}

/// Paced normal reviews over one keep-alive connection (opened before the attack).
async fn normal_reviewer(
    mut conn: Http1Conn,
    body: Arc<Vec<u8>>,
    interval: Duration,
    until: Instant,
) -> NormalStats {
    let mut stats = NormalStats::default();
    let mut next = Instant::now();
    while next < until {
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        next += interval;
        let sent = Instant::now();
        match conn.post("/validate", &body).await {
            Ok(res) if res.status == 200 => {
                stats.latency_us.push(sent.elapsed().as_micros() as u64)
            }
            _ => stats.errors += 1,
        }
    }
    stats
}

/// Once a second: a fresh connection (handshake included) and one review.
async fn newcomer(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    body: Arc<Vec<u8>>,
    until: Instant,
) -> NormalStats {
    let mut stats = NormalStats::default();
    while Instant::now() < until {
        let sent = Instant::now();
        let result = async {
            let mut conn = Http1Conn::open(addr, config.clone()).await?;
            conn.post("/validate", &body).await
        };
        match tokio::time::timeout(Duration::from_secs(10), result).await {
            Ok(Ok(res)) if res.status == 200 => {
                stats.latency_us.push(sent.elapsed().as_micros() as u64)
            }
            _ => stats.errors += 1,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stats
}

fn main() {
    let slow = env_u64("SLOW_CONNECTIONS", 4000) as usize;
    let seconds = env_u64("SLOW_SECONDS", 20);
    let trickle = Duration::from_millis(env_u64("SLOW_TRICKLE_MS", 1000));
    let content_length = env_u64("SLOW_CONTENT_LENGTH", 1_000_000);
    let normal_rate = env_u64("NORMAL_RATE", 200) as f64;
    const NORMAL_CONNECTIONS: usize = 4;

    support::install_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_path = dir.path().join("ca.pem");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let probe: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = Server::start(addr, probe, &ca_path);
    let server = Arc::new(std::sync::Mutex::new(Some(server)));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let peak_sampled = Arc::new(AtomicU64::new(0));
    runtime.block_on(wait_ready(probe));
    let ca = std::fs::read_to_string(&ca_path).expect("CA written");
    let config = http1_config(&ca);
    let body = Arc::new(
        serde_json::to_vec(&review(
            "normal",
            "CREATE",
            Some(ditto_server(json!({"storage": {"metadataSize": "1Gi"}}))),
            None,
        ))
        .expect("review"),
    );

    // The API server: its own thread and runtime (it is another process; sharing the
    // attack's runtime would measure the generator's own queue of handshakes).
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<Instant>();
    let api_server = {
        let config = config.clone();
        let body = body.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                // Its pool: opened and used before the attack starts.
                let mut pool = Vec::new();
                for _ in 0..NORMAL_CONNECTIONS {
                    let mut conn = Http1Conn::open(addr, config.clone())
                        .await
                        .expect("connect");
                    let res = conn.post("/validate", &body).await.expect("first review");
                    assert_eq!(res.status, 200);
                    pool.push(conn);
                }
                let _ = ready_tx.send(());
                let until = go_rx.recv().expect("start signal");
                let interval = Duration::from_secs_f64(NORMAL_CONNECTIONS as f64 / normal_rate);
                let normal: Vec<_> = pool
                    .into_iter()
                    .map(|conn| tokio::spawn(normal_reviewer(conn, body.clone(), interval, until)))
                    .collect();
                let newcomers = tokio::spawn(newcomer(addr, config, body, until));
                let mut normal_stats = NormalStats::default();
                for task in normal {
                    let s = task.await.unwrap_or_default();
                    normal_stats.latency_us.extend(s.latency_us);
                    normal_stats.errors += s.errors;
                }
                (normal_stats, newcomers.await.unwrap_or_default())
            })
        })
    };
    ready_rx.recv().expect("API server pool ready");
    let rss_before = server
        .lock()
        .ok()
        .and_then(|s| s.as_ref().and_then(|s| s.status_kib("VmRSS:")));
    let until = Instant::now() + Duration::from_secs(seconds);
    go_tx.send(until).expect("start");

    let outcomes = runtime.block_on(async {
        let sampler = {
            let server = server.clone();
            let peak = peak_sampled.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let rss = server
                        .lock()
                        .ok()
                        .and_then(|s| s.as_ref().and_then(|s| s.status_kib("VmRSS:")));
                    peak.fetch_max(rss.unwrap_or(0), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        // Open the slow connections as fast as handshakes allow (256 at a time).
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let mut slow_tasks = Vec::with_capacity(slow);
        for _ in 0..slow {
            let permit = gate.clone().acquire_owned().await.expect("gate");
            let config = config.clone();
            slow_tasks.push(tokio::spawn(async move {
                let connect = slow_connection(addr, config, content_length, trickle, until);
                // Release the gate once connected (the handshake is the costly part).
                tokio::pin!(connect);
                tokio::select! {
                    outcome = &mut connect => return outcome,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                drop(permit);
                connect.await
            }));
        }
        let mut outcomes = Vec::with_capacity(slow);
        for task in slow_tasks {
            outcomes.push(task.await.unwrap_or(SlowOutcome::Refused));
        }
        let _ = sampler.await;
        outcomes
    });
    let (normal, newcomers) = api_server.join().expect("API server thread");

    let server = server.lock().ok().and_then(|mut s| s.take());
    let peak_hwm = server.as_ref().and_then(|s| s.status_kib("VmHWM:"));
    if let Some(server) = server {
        server.stop();
    }

    let mut closed: Vec<u64> = Vec::new();
    let (mut open, mut refused) = (0, 0);
    for outcome in &outcomes {
        match outcome {
            SlowOutcome::Closed(d) => closed.push(d.as_millis() as u64),
            SlowOutcome::Open => open += 1,
            SlowOutcome::Refused => refused += 1,
        }
    }
    closed.sort_unstable();
    let mut normal_lat = normal.latency_us;
    normal_lat.sort_unstable();
    let mut newcomer_lat = newcomers.latency_us;
    newcomer_lat.sort_unstable();
    let mib = |kib: u64| kib as f64 / 1024.0;

    println!("## slow_clients");
    println!(
        "slow connections: {slow} (headers announcing {content_length} bytes, then 1 byte every {} ms), attack {seconds} s",
        trickle.as_millis()
    );
    println!(
        "closed by the server: {} (p50 {} ms, p99 {} ms, max {} ms after connect); still open at the end: {open}; refused at connect/handshake: {refused}",
        closed.len(),
        percentile(&closed, 50.0),
        percentile(&closed, 99.0),
        percentile(&closed, 100.0)
    );
    println!(
        "closed within 10 s: {} of {}",
        closed.iter().filter(|&&ms| ms <= 10_000).count() + refused,
        slow
    );
    println!(
        "server RSS: before the attack {:.1} MiB, peak sampled {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss_before.unwrap_or(0)),
        mib(peak_sampled.load(Ordering::Relaxed)),
        mib(peak_hwm.unwrap_or(0))
    );
    println!(
        "normal reviews on pooled connections ({normal_rate:.0}/s): {} ok, {} errors, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        normal_lat.len(),
        normal.errors,
        percentile(&normal_lat, 50.0) as f64 / 1000.0,
        percentile(&normal_lat, 99.0) as f64 / 1000.0,
        percentile(&normal_lat, 100.0) as f64 / 1000.0
    );
    println!(
        "new connection + review each second: {} ok, {} errors, p50 {:.3} ms, max {:.3} ms",
        newcomer_lat.len(),
        newcomers.errors,
        percentile(&newcomer_lat, 50.0) as f64 / 1000.0,
        percentile(&newcomer_lat, 100.0) as f64 / 1000.0
    );
    let every_closed = open == 0 && closed.iter().all(|&ms| ms <= 10_000);
    let targets = [
        ("every slow connection closed within 10 s", every_closed),
        ("peak RSS < 48 MiB", peak_hwm.is_some_and(|k| k < 48 * 1024)),
        (
            "normal p99 < 5 ms, no errors",
            percentile(&normal_lat, 99.0) < 5_000 && normal.errors == 0,
        ),
        ("new connections served", newcomers.errors == 0),
    ];
    for (name, ok) in targets {
        println!("target {name}: {}", if ok { "met" } else { "MISSED" });
    }
}
