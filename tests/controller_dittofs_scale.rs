//! Many running DittoServers, each with one share, through the real Controller
//! (watches, stores, scheduler, the drift poll) against the in-memory API server
//! and one fake DittoFS serving every server's REST API. Asserts correctness at
//! scale, and what each object costs: the requests to Kubernetes of its first pass
//! and of its server's configuration, the requests to DittoFS, and an idle window
//! with no write anywhere and about one read per server per poll interval.
//!
//! Sized to converge in about a minute of a debug build on two cores (1,000
//! servers: about 25 s of first passes, 25 s of server configuration).
//!
//! At this scale more servers are due per second than the poll reads at once:
//! they wait for a turn and are all read (`the_poll_reads_every_server_...` pins
//! it with a change made by hand on each).

mod dittofs_env;
mod fake_api;
mod fake_dittofs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dittofs_env::{Env, Options, host, minimal_sample_spec, sts_path, wait_for};
use fake_api::RequestRecord;

const SERVERS: usize = 1000;
const NS: &str = "scale";

fn name(i: usize) -> String {
    format!("s{i:04}")
}

/// What a request was about: verb and kind (`create secret`, `patch dittoserver
/// status`, ...).
fn kind_of(r: &RequestRecord) -> String {
    let parts: Vec<&str> = r.path.split('/').collect();
    let kind = match parts.iter().position(|p| *p == "namespaces") {
        Some(i) if parts.len() > i + 2 => {
            let mut kind = parts[i + 2].to_string();
            if parts.len() > i + 4 {
                kind = format!("{kind}/{}", parts[i + 4]);
            }
            kind
        }
        _ => r.path.clone(),
    };
    format!("{} {kind}", r.verb)
}

/// Requests per object, by verb and kind.
fn breakdown(requests: &[RequestRecord], objects: usize) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(kind_of(r)).or_insert(0.0) += 1.0 / objects as f64;
    }
    out
}

fn show(what: &str, counts: &BTreeMap<String, f64>) {
    let total: f64 = counts.values().sum();
    eprintln!("{what}: {total:.2} per object");
    for (k, v) in counts {
        eprintln!("  {v:6.2}  {k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_running_servers_converge_and_then_idle_without_a_write() {
    const POLL: Duration = Duration::from_secs(20);
    let env = Env::start(
        &[NS],
        Options {
            poll_interval: POLL,
            concurrency: 8,
            debounce: Duration::from_millis(200),
            ..Options::default()
        },
    )
    .await;
    env.api.set_watch_lag(Duration::from_millis(200));
    let started = Instant::now();

    // 1. The DittoServers; each first pass makes its children (no pod ready yet).
    env.api.clear_log();
    for i in 0..SERVERS {
        env.create(NS, &name(i), minimal_sample_spec()).await;
    }
    wait_for("every first pass", Duration::from_secs(120), || {
        let sts = env
            .api
            .list(&format!("/apis/apps/v1/namespaces/{NS}/statefulsets"))
            .len();
        let with_status = env
            .api
            .list(&dittofs_env::ds_collection(NS))
            .iter()
            .filter(|d| d["status"]["conditions"].is_array())
            .count();
        (sts == SERVERS && with_status == SERVERS).then_some(())
    })
    .await;
    env.settle(Duration::from_secs(2), Duration::from_secs(60))
        .await;
    let first: Vec<RequestRecord> = env
        .api
        .requests()
        .into_iter()
        .filter(|r| !(r.verb == "create" && r.path.ends_with("/dittoservers")))
        .collect();
    let first_writes: Vec<RequestRecord> = first.iter().filter(|r| r.is_write()).cloned().collect();
    show(
        "Kubernetes, first pass (writes)",
        &breakdown(&first_writes, SERVERS),
    );
    show(
        "Kubernetes, first pass (reads)",
        &breakdown(
            &first
                .iter()
                .filter(|r| !r.is_write())
                .cloned()
                .collect::<Vec<_>>(),
            SERVERS,
        ),
    );
    let writes_per_object = first_writes.len() as f64 / SERVERS as f64;
    // The 8 of issue 16 (2 Secrets, ConfigMap, 3 Services, StatefulSet, status),
    // and the server pod's NetworkPolicy that issue 18 turns on by default.
    assert!(
        writes_per_object <= 9.0,
        "{writes_per_object:.2} writes per object on the first pass"
    );
    eprintln!("first passes done after {:?}", started.elapsed());

    // 2. Every pod starts: its DittoFS server, then its StatefulSet ready.
    env.api.clear_log();
    let started_servers = Instant::now();
    let mut servers = Vec::new();
    for i in 0..SERVERS {
        let dfs = env.register_server(NS, &name(i)).await;
        assert!(env.api.make_statefulset_ready(&sts_path(NS, &name(i))));
        servers.push(dfs);
    }
    wait_for("every server configured", Duration::from_secs(180), || {
        (0..SERVERS)
            .all(|i| env.configured(NS, &name(i)))
            .then_some(())
    })
    .await;
    let took = started_servers.elapsed();
    eprintln!("{SERVERS} servers configured in {took:?}");
    // Past the read after a change (6 s), with nothing written for a while.
    env.settle(Duration::from_secs(7), Duration::from_secs(120))
        .await;
    assert_eq!(env.reconciles("error"), 0, "no failed pass");
    assert_eq!(
        env.api
            .event_reasons()
            .iter()
            .filter(|r| *r == "ReconcileFailed")
            .count(),
        0
    );
    let configuring = env.api.requests();
    let configuring_writes: Vec<RequestRecord> = configuring
        .iter()
        .filter(|r| r.is_write())
        .cloned()
        .collect();
    show(
        "Kubernetes, configuring the server (writes)",
        &breakdown(&configuring_writes, SERVERS),
    );
    // The account Secret made, then its refresh token kept; the status; the
    // ServerConfigured event.
    let per_object = configuring_writes.len() as f64 / SERVERS as f64;
    assert!(
        per_object <= 4.0,
        "{per_object:.2} writes per object while configuring its server"
    );

    // DittoFS: what each server was asked, and that every server holds its share.
    let mut calls: BTreeMap<String, f64> = BTreeMap::new();
    let mut reads = 0;
    for (i, dfs) in servers.iter().enumerate() {
        let requests = dfs.requests();
        // Account (login refused, admin login, create, login, own password), NFS
        // settings, the NFS adapter stopped and started, SMB off, two stores and
        // the share: 12 calls that are not reads.
        let changes = requests.iter().filter(|r| r.method != "GET").count();
        assert!(
            changes <= 12,
            "{}: {changes} calls that are not reads",
            name(i)
        );
        reads += requests.len() - changes;
        assert_eq!(dfs.host(), host(NS, &name(i)));
        assert_eq!(dfs.shares().len(), 1, "{}: one share", name(i));
        assert!(
            dfs.effective_nfs_settings()
                .is_some_and(|e| e.portmapper_enabled && e.portmapper_listening)
        );
        for r in &requests {
            let path =
                if r.path.starts_with("/api/v1/users/") && r.path != "/api/v1/users/me/password" {
                    "/api/v1/users/{name}".to_string()
                } else {
                    r.path.clone()
                };
            *calls
                .entry(format!("{} {path} {}", r.method, r.status))
                .or_insert(0.0) += 1.0 / SERVERS as f64;
        }
    }
    show("DittoFS, first contact and configuration", &calls);
    let db_writes = env.dfs.totals().db_writes as f64 / SERVERS as f64;
    eprintln!("DittoFS database writes: {db_writes:.2} per server");
    assert!(
        !calls.keys().any(|k| k.starts_with("DELETE")),
        "nothing deleted in DittoFS"
    );
    assert!(
        db_writes <= 11.0,
        "{db_writes:.2} database writes per server"
    );
    // Two reads of six views (the pass that configures, the one 6 s later; these
    // servers declare no snapshot policy and no identity provider, which are read
    // only then), and what the poll read meanwhile.
    let reads = reads as f64 / SERVERS as f64;
    assert!(reads <= 16.0, "{reads:.2} reads per server");

    // 3. Idle: no write anywhere, about one read per server per interval.
    env.api.clear_log();
    env.dfs.clear_requests();
    let db_before = env.dfs.totals().db_writes;
    const INTERVALS: u32 = 2;
    tokio::time::sleep(POLL * INTERVALS).await;
    let idle_writes: Vec<_> = env
        .api
        .requests()
        .into_iter()
        .filter(|r| r.is_write())
        .map(|r| (r.method, r.path))
        .collect();
    assert!(
        idle_writes.is_empty(),
        "no Kubernetes write while idle: {:?}",
        &idle_writes[..idle_writes.len().min(10)]
    );
    assert_eq!(
        env.dfs.totals().db_writes,
        db_before,
        "no DittoFS database write"
    );
    let idle = env.dfs.requests();
    let odd: Vec<_> = idle
        .iter()
        .filter(|r| !(r.method == "GET" || r.path == "/api/v1/auth/refresh"))
        .map(|r| format!("{} {} {}", r.host, r.method, r.path))
        .collect();
    assert!(
        odd.is_empty(),
        "only reads while idle: {:?}",
        &odd[..odd.len().min(10)]
    );
    let reads = idle.iter().filter(|r| r.method == "GET").count();
    let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &idle {
        *per_host.entry(r.host.as_str()).or_insert(0) += 1;
    }
    let unread = SERVERS - per_host.len();
    let busiest = per_host.values().max().copied().unwrap_or(0);
    let rate = reads as f64 / SERVERS as f64 / f64::from(INTERVALS);
    eprintln!(
        "idle over {INTERVALS} intervals of {POLL:?}: {reads} reads, {rate:.2} per server per interval, {unread} servers never read, busiest server {busiest} reads"
    );
    // Every server read, and never more than once per interval.
    assert_eq!(unread, 0, "servers never read while idle");
    assert!(
        (0.9..=1.05).contains(&rate),
        "about one read per server per interval: {rate:.2}"
    );
    assert!(
        busiest <= INTERVALS as usize + 1,
        "busiest server: {busiest} reads"
    );
    assert_eq!(env.reconciles("error"), 0, "no failed pass");
    env.stop().await;
}

/// More servers due in one second than the poll reads at once (16): each must
/// still be read about once per interval, and a change made by hand on any of them
/// noticed within a few intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_reads_every_server_even_when_more_are_due_than_it_reads_at_once() {
    const N: usize = 48;
    const POLL: Duration = Duration::from_secs(2);
    let env = Env::start(
        &[NS],
        Options {
            poll_interval: POLL,
            concurrency: 8,
            debounce: Duration::from_millis(100),
            ..Options::default()
        },
    )
    .await;
    for i in 0..N {
        env.create(NS, &name(i), minimal_sample_spec()).await;
    }
    let mut servers = Vec::new();
    for i in 0..N {
        let dfs = env.register_server(NS, &name(i)).await;
        assert!(env.api.make_statefulset_ready(&sts_path(NS, &name(i))));
        servers.push(dfs);
    }
    wait_for("every server configured", Duration::from_secs(60), || {
        (0..N).all(|i| env.configured(NS, &name(i))).then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), Duration::from_secs(60))
        .await;

    const INTERVALS: u32 = 3;
    env.dfs.clear_requests();
    tokio::time::sleep(POLL * INTERVALS).await;
    let read: Vec<usize> = servers.iter().map(|s| s.requests().len()).collect();
    let unread = read.iter().filter(|r| **r == 0).count();
    let rate = read.iter().sum::<usize>() as f64 / N as f64 / f64::from(INTERVALS);
    eprintln!(
        "{N} servers, {INTERVALS} intervals of {POLL:?}: {rate:.2} reads per server per interval, {unread} never read"
    );

    // A change by hand on each server the idle window did not read (or, should
    // every server have been read, on all): each is put back.
    let changed: Vec<&fake_dittofs::ServerHandle> = if unread > 0 {
        servers
            .iter()
            .zip(&read)
            .filter(|(_, r)| **r == 0)
            .map(|(s, _)| s)
            .collect()
    } else {
        servers.iter().collect()
    };
    for dfs in &changed {
        dfs.set_adapter("nfs", 13049, true);
    }
    let put_back = |dfs: &fake_dittofs::ServerHandle| {
        dfs.adapters()
            .iter()
            .any(|a| a.adapter_type == "nfs" && a.port == 12049)
    };
    tokio::time::sleep(POLL * 5).await;
    let missed: Vec<String> = changed
        .iter()
        .filter(|s| !put_back(s))
        .map(|s| s.host().to_string())
        .collect();
    eprintln!(
        "{} of the {} servers changed by hand not put back after 5 intervals",
        missed.len(),
        changed.len()
    );
    assert_eq!(unread, 0, "every server read while idle");
    assert!(
        rate >= 0.9,
        "about one read per server per interval: {rate:.2}"
    );
    assert!(missed.is_empty(), "drift never noticed on {missed:?}");
    env.stop().await;
}
