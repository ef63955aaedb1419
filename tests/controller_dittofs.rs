//! The operator end to end against DittoFS: the real `controller::run` (watches,
//! stores, scheduler, the drift poll) against the in-memory API server and the fake
//! DittoFS v0.29 (`tests/fake_dittofs`), one server per DittoServer's pod. What a
//! user sees: the declared share served, changes made by hand put back or reported,
//! failures of the server reported with its words and retried with backoff, nothing
//! in DittoFS ever deleted, and an idle operator that costs nothing.
//!
//! Every wait is bounded (a wait-until loop); the poll runs every 2 s.
//!
//! The scenarios, in file order: a fresh `samples/minimal.yaml` server; an adapter
//! moved by hand, and by the spec; a share deleted by hand, and one made by hand; the
//! admin password changed before the first contact; a server answering 500, timing
//! out, refusing a store; an idle operator; deletion and a new apply; a new JWT
//! secret; the operator's account demoted; a restarted operator; spec edits in
//! place; stale status fields; a slow server; a store waiting for its Secret;
//! rotated S3 keys; a restarted pod; the REST API over mutual TLS; snapshot
//! policies. The scale test is
//! `controller_dittofs_scale.rs`.

mod dittofs_env;
mod fake_api;
mod fake_dittofs;

use std::time::{Duration, Instant};

use dittofs_env::{
    Env, Options, TestPki, assert_nothing_deleted, dittofs_client, host, minimal_sample_spec,
    secret_path, sts_path, wait_for,
};
use serde_json::{Value, json};

const POLL: Duration = Duration::from_secs(2);
/// Long enough for anything a few passes and poll rounds do.
const BOUND: Duration = Duration::from_secs(30);

fn options() -> Options {
    Options {
        poll_interval: POLL,
        ..Options::default()
    }
}

/// The `state` of every entry of a `status.server` list.
fn states(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_string(),
                i["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Scenario 1: the spec of `samples/minimal.yaml` on a fresh server ends with
/// `/export` served, the portmapper on and in effect, SMB off, the operator's own
/// admin account, and the Service pointing at the live adapter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_ends_with_the_declared_share_served() {
    let env = Env::start(&["team"], options()).await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.start_server("team", "minimal").await;
    env.wait_configured("team", "minimal", BOUND).await;
    env.wait_condition(
        "team",
        "minimal",
        "Ready",
        "True",
        Some("AllConditionsMet"),
        BOUND,
    )
    .await;

    // The stores and the share, as declared.
    let meta = dfs.metadata_stores();
    assert_eq!(meta.len(), 1, "{meta:?}");
    assert_eq!(
        (meta[0].name.as_str(), meta[0].store_type.as_str()),
        ("meta", "badger")
    );
    let local = dfs.block_stores("local");
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(
        (local[0].name.as_str(), local[0].store_type.as_str()),
        ("content", "fs")
    );
    let config: Value = serde_json::from_str(&local[0].config).expect("fs config");
    assert_eq!(config["path"], "/data/content", "{config}");
    let shares = dfs.shares();
    assert_eq!(shares.len(), 1, "{shares:?}");
    let export = &shares[0];
    assert_eq!(export.name, "/export");
    assert_eq!(export.metadata_store_id, meta[0].id, "on store meta");
    assert_eq!(export.local_block_store_id, local[0].id, "on store content");
    assert!(!export.read_only && export.enabled);
    assert_eq!(export.default_permission, "read-write");

    // The portmapper stored on and in effect (the NFS adapter restarted with it);
    // SMB disabled (smb.enabled defaults to false).
    assert_eq!(dfs.nfs_settings()["portmapper_enabled"], true);
    let effective = dfs.effective_nfs_settings().expect("NFS adapter running");
    assert!(
        effective.portmapper_enabled && effective.portmapper_listening,
        "{effective:?}"
    );
    assert_eq!(effective.adapter_port, 12049);
    let adapters = dfs.adapters();
    let adapter = |kind: &str| {
        adapters
            .iter()
            .find(|a| a.adapter_type == kind)
            .unwrap_or_else(|| panic!("adapter {kind}: {adapters:?}"))
    };
    assert!(adapter("nfs").enabled && adapter("nfs").running && adapter("nfs").listening);
    assert!(
        !adapter("smb").enabled && !adapter("smb").running,
        "{:?}",
        adapter("smb")
    );

    // The operator's own account: an admin, its password set (no must-change).
    let users = dfs.users();
    let account = users
        .iter()
        .find(|u| u.username == "dittofs-operator")
        .unwrap_or_else(|| panic!("the operator's account: {users:?}"));
    assert_eq!(account.role, "admin");
    assert!(
        account.enabled && !account.must_change_password,
        "{account:?}"
    );

    // Its Secret: password and refresh token, retained (no owner reference).
    let secret = wait_for("the refresh token kept", BOUND, || {
        let s = env
            .api
            .get(&secret_path("team", "minimal-operator-credentials"))?;
        s["data"]["refresh-token"].is_string().then_some(s)
    })
    .await;
    assert!(secret["data"]["password"].is_string(), "{secret}");
    assert!(secret["metadata"]["ownerReferences"].is_null(), "{secret}");
    assert_eq!(
        env.secret_value("team", "minimal-operator-credentials", "password")
            .as_deref(),
        Some(account.password.as_str()),
        "the Secret holds the account's password"
    );

    // status.server: the adapters as they run, every declared item Ready.
    let server = env.server_status("team", "minimal");
    let nfs = server["adapters"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "nfs"))
        .cloned()
        .unwrap_or_else(|| panic!("nfs in {server}"));
    assert_eq!(
        nfs,
        json!({"type": "nfs", "port": 12049, "enabled": true, "running": true})
    );
    let smb = server["adapters"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "smb"))
        .cloned()
        .unwrap_or_else(|| panic!("smb in {server}"));
    assert_eq!(smb["enabled"], false, "{server}");
    assert_eq!(server["portmapperPort"], 10111, "{server}");
    assert_eq!(
        states(&server["stores"]),
        [
            ("meta".into(), "Ready".into()),
            ("content".into(), "Ready".into())
        ],
        "{server}"
    );
    assert_eq!(
        states(&server["shares"]),
        [("/export".into(), "Ready".into())],
        "{server}"
    );
    assert!(server["unmanaged"].is_null(), "{server}");

    // The file Service: 2049 → the live adapter port by number, 111 TCP and UDP to
    // the portmapper, and the adapter's own port for NFSv3 clients.
    let port = |name: &str| {
        env.file_service_port("team", "minimal", name)
            .unwrap_or_else(|| panic!("port {name} of minimal-file"))
    };
    assert_eq!(port("nfs")["port"], 2049);
    assert_eq!(port("nfs")["targetPort"], 12049);
    assert_eq!(port("nfs-adapter")["port"], 12049);
    assert_eq!(port("nfs-adapter")["targetPort"], 12049);
    for (name, protocol) in [("portmap-tcp", "TCP"), ("portmap-udp", "UDP")] {
        assert_eq!(port(name)["port"], 111);
        assert_eq!(port(name)["protocol"], protocol);
        assert_eq!(port(name)["targetPort"], 10111);
    }
    assert!(
        env.file_service_port("team", "minimal", "smb").is_none(),
        "no SMB port while SMB is off"
    );
    assert_eq!(env.reconciles("error"), 0, "no failed pass");
    assert_nothing_deleted(&dfs);
    // Nothing declared of snapshot policies or identity providers: never read.
    let optional: Vec<String> = dfs
        .requests()
        .iter()
        .filter(|r| r.path.contains("snapshot-polic") || r.path.contains("identity-providers"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(optional.is_empty(), "{optional:?}");
    env.stop().await;
}

/// A minimal.yaml DittoServer `ns/name`, its pod started, configured, and settled
/// (the pass that reads the server again after changing it included).
async fn converged(env: &Env, ns: &str, name: &str) -> fake_dittofs::ServerHandle {
    env.create(ns, name, minimal_sample_spec()).await;
    let dfs = env.start_server(ns, name).await;
    env.wait_condition(ns, name, "Ready", "True", None, BOUND)
        .await;
    // Past the read after a change (6 s), with nothing written for a while.
    env.settle(Duration::from_secs(7), BOUND).await;
    dfs
}

fn nfs_port(dfs: &fake_dittofs::ServerHandle) -> i64 {
    dfs.adapters()
        .iter()
        .find(|a| a.adapter_type == "nfs")
        .map(|a| a.port)
        .expect("nfs adapter")
}

/// Scenario 2: an adapter moved with dfsctl is put back on the spec's port within a
/// few poll intervals; a new `nfsAdapterPort` moves the live adapter and the
/// Service's target, and does not roll the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_moved_by_hand_is_put_back_and_a_new_spec_port_moves_it_without_a_pod_roll() {
    let env = Env::start(&["team"], options()).await;
    let dfs = converged(&env, "team", "minimal").await;
    let starts = |dfs: &fake_dittofs::ServerHandle| {
        dfs.adapters()
            .iter()
            .find(|a| a.adapter_type == "nfs")
            .map(|a| a.starts)
            .expect("nfs")
    };

    // dfsctl adapter edit nfs --port 13049
    dfs.set_adapter("nfs", 13049, true);
    let moved = Instant::now();
    let before = starts(&dfs);
    wait_for("the NFS adapter back on 12049", BOUND, || {
        (nfs_port(&dfs) == 12049 && starts(&dfs) > before).then_some(())
    })
    .await;
    let took = moved.elapsed();
    eprintln!("adapter put back after {took:?}");
    assert!(
        took <= POLL * 3 + Duration::from_secs(2),
        "put back within a few poll intervals: {took:?}"
    );
    let adapter = dfs
        .adapters()
        .into_iter()
        .find(|a| a.adapter_type == "nfs")
        .expect("nfs");
    assert!(
        adapter.enabled && adapter.running && adapter.listening,
        "{adapter:?}"
    );
    assert_eq!(
        env.file_service_port("team", "minimal", "nfs")
            .expect("nfs")["targetPort"],
        12049
    );
    // The portmapper still runs with the adapter it was restarted with.
    let effective = dfs.effective_nfs_settings().expect("running");
    assert!(effective.portmapper_enabled && effective.portmapper_listening);
    env.settle(Duration::from_secs(7), BOUND).await;

    // A new spec port: the live adapter and the Service move, the pod does not.
    let sts_before = env.api.get(&sts_path("team", "minimal")).expect("sts");
    env.edit_spec("team", "minimal", |spec| {
        spec["nfsAdapterPort"] = json!(13049)
    });
    wait_for("the adapter and the Service on 13049", BOUND, || {
        let target = env.file_service_port("team", "minimal", "nfs")?["targetPort"].clone();
        let direct = env.file_service_port("team", "minimal", "nfs-adapter")?;
        (nfs_port(&dfs) == 13049
            && target == 13049
            && direct["port"] == 13049
            && direct["targetPort"] == 13049)
            .then_some(())
    })
    .await;
    env.wait_condition("team", "minimal", "ServerConfigured", "True", None, BOUND)
        .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    let sts_after = env.api.get(&sts_path("team", "minimal")).expect("sts");
    assert_eq!(
        sts_after["spec"]["template"]["metadata"]["annotations"]["dittofs.io/config-hash"],
        sts_before["spec"]["template"]["metadata"]["annotations"]["dittofs.io/config-hash"],
        "same config hash"
    );
    assert_eq!(
        sts_after["spec"]["template"], sts_before["spec"]["template"],
        "same pod template: no roll"
    );
    assert_eq!(
        sts_after["metadata"]["generation"],
        sts_before["metadata"]["generation"]
    );
    let nfs = env.server_status("team", "minimal")["adapters"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "nfs").cloned())
        .expect("nfs in status");
    assert_eq!(nfs["port"], 13049);
    assert_eq!(nfs_port(&dfs), 13049, "stays where the spec says");
    assert_eq!(env.reconciles("error"), 0);
    env.stop().await;
}

/// Scenario 3: a declared share deleted with dfsctl is made again; a share created
/// by hand is listed as unmanaged and never deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_share_is_recreated_and_a_share_made_by_hand_is_left_alone() {
    let env = Env::start(&["team"], options()).await;
    let dfs = converged(&env, "team", "minimal").await;

    assert!(dfs.delete_share("/export"));
    let deleted = Instant::now();
    wait_for("/export made again", BOUND, || {
        dfs.shares()
            .iter()
            .any(|s| s.name == "/export")
            .then_some(())
    })
    .await;
    let took = deleted.elapsed();
    eprintln!("share recreated after {took:?}");
    assert!(took <= POLL * 3 + Duration::from_secs(2), "{took:?}");
    let export = dfs
        .shares()
        .into_iter()
        .find(|s| s.name == "/export")
        .expect("share");
    let meta = &dfs.metadata_stores()[0];
    assert_eq!(export.metadata_store_id, meta.id);
    assert_eq!(export.default_permission, "read-write");
    env.settle(Duration::from_secs(7), BOUND).await;

    // An admin makes a share of their own, through the REST API.
    let admin = env.by_hand("team", "minimal").await;
    admin.create_share("/scratch").await;
    wait_for("/scratch listed as unmanaged", BOUND, || {
        let server = env.server_status("team", "minimal");
        server["unmanaged"]
            .as_array()?
            .iter()
            .any(|u| u == "share /scratch")
            .then_some(())
    })
    .await;
    // A few poll rounds and passes later, it is still there.
    dfs.clear_requests();
    tokio::time::sleep(POLL * 3).await;
    env.settle(Duration::from_secs(7), BOUND).await;
    let names: Vec<String> = dfs.shares().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["/export", "/scratch"]);
    assert_nothing_deleted(&dfs);
    let (status, reason, _) = env
        .condition("team", "minimal", "ServerConfigured")
        .expect("condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Configured"),
        "an unmanaged share is no failure"
    );
    assert_eq!(
        states(&env.server_status("team", "minimal")["shares"]),
        [("/export".into(), "Ready".into())]
    );
    assert_eq!(env.reconciles("error"), 0);
    env.stop().await;
}

/// Requests to `path` (any method) the server answered so far.
fn hits(dfs: &fake_dittofs::ServerHandle, method: &str, path: &str) -> usize {
    dfs.requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

/// How many of the server's requests arrive during `window`.
async fn requests_during(dfs: &fake_dittofs::ServerHandle, window: Duration) -> u64 {
    let before = dfs.request_count();
    tokio::time::sleep(window).await;
    dfs.request_count() - before
}

/// Scenario 4: the admin password was changed with dfsctl before the operator's
/// first contact. The condition names the Secret and the fix, the operator does not
/// hammer the server, and it recovers as soon as the Secret holds the new password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_admin_password_is_reported_retried_with_backoff_and_recovered_from_the_secret() {
    use base64::Engine;

    let env = Env::start(&["team"], options()).await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.register_server("team", "minimal").await;
    dfs.set_admin_password("changed-with-dfsctl");
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));

    let message = env
        .wait_server_state("team", "minimal", "AdminLoginFailed", BOUND)
        .await;
    eprintln!("AdminLoginFailed: {message}");
    assert!(
        message.contains("Secret minimal-admin-bootstrap-credentials"),
        "names the Secret: {message}"
    );
    assert!(
        message.contains("put the admin's current password in Secret")
            && message.contains("dfsctl"),
        "says how to fix it: {message}"
    );
    assert!(
        message.contains("401"),
        "carries the server's answer: {message}"
    );
    assert_eq!(
        env.condition("team", "minimal", "Ready").map(|c| c.0),
        Some("False".into())
    );

    // No hot loop: the retries follow the server half's backoff (5 s, 10 s, ...).
    let login = "/api/v1/auth/login";
    let before = hits(&dfs, "POST", login);
    let during = requests_during(&dfs, Duration::from_secs(8)).await;
    let logins = hits(&dfs, "POST", login) - before;
    eprintln!("over 8 s: {logins} logins, {during} requests");
    // An attempt is two logins (the account's, then the admin's); at most two
    // attempts fit in 8 s of a 5 s, 10 s backoff.
    assert!(logins <= 4, "{logins} logins in 8 s");
    assert!(
        !dfs.users().iter().any(|u| u.username == "dittofs-operator"),
        "no account without the admin"
    );

    // The user puts the admin's current password in the Secret.
    let path = secret_path("team", "minimal-admin-bootstrap-credentials");
    let mut secret = env.api.get(&path).expect("admin Secret");
    secret["data"]["password"] =
        json!(base64::engine::general_purpose::STANDARD.encode("changed-with-dfsctl"));
    secret["metadata"]["resourceVersion"] = Value::Null;
    let changed = Instant::now();
    env.api.put(&path, secret);
    env.wait_configured("team", "minimal", BOUND).await;
    let took = changed.elapsed();
    eprintln!("configured {took:?} after the Secret changed");
    assert!(
        took < Duration::from_secs(5),
        "the Secret's change brings the retry, not the backoff: {took:?}"
    );
    assert_eq!(
        env.secret_value("team", "minimal-admin-bootstrap-credentials", "password")
            .as_deref(),
        Some("changed-with-dfsctl"),
        "the user's password is kept, not regenerated"
    );
    let account = dfs
        .users()
        .into_iter()
        .find(|u| u.username == "dittofs-operator")
        .expect("account made with the new admin password");
    assert!(account.role == "admin" && !account.must_change_password);
    assert!(dfs.shares().iter().any(|s| s.name == "/export"));
    env.stop().await;
}

/// Scenario 5a: a server answering 500. ServerUnreachable with its words, retries
/// with backoff, recovery once it answers; nothing deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_500_is_unreachable_retried_with_backoff_and_recovers() {
    let env = Env::start(&["team"], options()).await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.register_server("team", "minimal").await;
    dfs.fail_next(1_000, 500);
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    let message = env
        .wait_server_state("team", "minimal", "ServerUnreachable", BOUND)
        .await;
    eprintln!("ServerUnreachable: {message}");
    assert!(
        message.contains("500") && message.contains("injected failure (fake DittoFS)"),
        "the server's words: {message}"
    );
    assert!(message.contains("retried with backoff"), "{message}");
    let during = requests_during(&dfs, Duration::from_secs(8)).await;
    eprintln!("{during} requests in 8 s of 500s");
    assert!(during <= 2, "bounded retries: {during} requests in 8 s");

    dfs.fail_next(0, 500);
    env.wait_configured("team", "minimal", Duration::from_secs(45))
        .await;
    assert!(dfs.shares().iter().any(|s| s.name == "/export"));
    assert_nothing_deleted(&dfs);
    env.stop().await;
}

/// Scenario 5b: a server that does not answer in time (the client's bound is 1 s
/// here, the server answers after 3 s). ServerUnreachable naming the timeout,
/// bounded retries, recovery; nothing deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_times_out_is_unreachable_retried_with_backoff_and_recovers() {
    let env = Env::start(
        &["team"],
        Options {
            call_timeout: Some(Duration::from_secs(1)),
            ..options()
        },
    )
    .await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.register_server("team", "minimal").await;
    dfs.set_delay(Duration::from_secs(3));
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    let message = env
        .wait_server_state("team", "minimal", "ServerUnreachable", BOUND)
        .await;
    eprintln!("ServerUnreachable: {message}");
    assert!(message.contains("no answer within 1 s"), "{message}");
    let during = requests_during(&dfs, Duration::from_secs(8)).await;
    eprintln!("{during} requests in 8 s of timeouts");
    assert!(during <= 2, "bounded retries: {during} requests in 8 s");

    dfs.set_delay(Duration::ZERO);
    env.wait_configured("team", "minimal", Duration::from_secs(45))
        .await;
    assert!(dfs.shares().iter().any(|s| s.name == "/export"));
    assert_nothing_deleted(&dfs);
    env.stop().await;
}

/// Scenario 5c: the server refuses to create a store. ChangeRefused with its words,
/// the store Failed and its share Pending, the rest made, bounded retries, and
/// recovery once the store can be made; nothing deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_store_is_reported_with_the_server_words_retried_and_recovered() {
    use fake_dittofs::StoreTarget;

    let env = Env::start(&["team"], options()).await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.register_server("team", "minimal").await;
    dfs.refuse_store(
        StoreTarget::Metadata,
        Some("open /data/metadata: permission denied"),
    );
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    let message = env
        .wait_server_state("team", "minimal", "ChangeRefused", BOUND)
        .await;
    eprintln!("ChangeRefused: {message}");
    assert!(
        message.contains("open /data/metadata: permission denied"),
        "the server's words: {message}"
    );
    let server = env.server_status("team", "minimal");
    let stores = server["stores"].as_array().cloned().unwrap_or_default();
    let meta = stores
        .iter()
        .find(|s| s["name"] == "meta")
        .unwrap_or_else(|| panic!("{server}"));
    assert_eq!(meta["state"], "Failed", "{server}");
    assert!(
        meta["message"]
            .as_str()
            .is_some_and(|m| m.contains("permission denied")),
        "{server}"
    );
    assert_eq!(
        states(&server["shares"]),
        [("/export".into(), "Pending".into())],
        "{server}"
    );
    assert_eq!(
        dfs.block_stores("local").len(),
        1,
        "the other store is made"
    );
    assert!(dfs.shares().is_empty());

    let creates = || hits(&dfs, "POST", "/api/v1/store/metadata");
    let before = creates();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let retries = creates() - before;
    eprintln!("{retries} store creations in 8 s");
    assert!(retries <= 2, "bounded retries: {retries} in 8 s");

    dfs.refuse_store(StoreTarget::Metadata, None);
    env.wait_configured("team", "minimal", Duration::from_secs(45))
        .await;
    assert_eq!(dfs.metadata_stores().len(), 1);
    assert!(dfs.shares().iter().any(|s| s.name == "/export"));
    assert_nothing_deleted(&dfs);
    env.stop().await;
}

/// Scenario 6: once several DittoServers converged, an idle operator writes nothing
/// to Kubernetes (events included) nor to any DittoFS database, and reads each
/// server about once per poll interval (GETs; refreshes for short-lived tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_operator_writes_nothing_and_reads_each_server_once_per_interval() {
    let env = Env::start(&["team", "other"], options()).await;
    let names = [("team", "a"), ("team", "b"), ("team", "c"), ("other", "d")];
    for (ns, name) in names {
        env.create(ns, name, minimal_sample_spec()).await;
    }
    let mut servers = Vec::new();
    for (ns, name) in names {
        let dfs = env.register_server(ns, name).await;
        if name == "d" {
            // Access tokens shorter than the operator's renewal margin (60 s): every
            // use of the session refreshes it first.
            dfs.set_token_lifetimes(Duration::from_secs(30), Duration::from_secs(3600));
        }
        assert!(env.api.make_statefulset_ready(&sts_path(ns, name)));
        servers.push(dfs);
    }
    for (ns, name) in names {
        env.wait_condition(ns, name, "Ready", "True", None, BOUND)
            .await;
    }
    env.settle(Duration::from_secs(7), Duration::from_secs(60))
        .await;

    const INTERVALS: u32 = 4;
    env.api.clear_log();
    env.dfs.clear_requests();
    let db_writes = env.dfs.totals().db_writes;
    let events = env.api.event_reasons().len();
    tokio::time::sleep(POLL * INTERVALS).await;

    let k8s = env.api.requests();
    let writes: Vec<_> = k8s
        .iter()
        .filter(|r| r.is_write())
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(writes, Vec::new(), "no write to Kubernetes while idle");
    assert_eq!(env.api.event_reasons().len(), events, "no event");
    eprintln!(
        "Kubernetes while idle: {} requests ({:?})",
        k8s.len(),
        env.api.counts_by_verb()
    );
    assert_eq!(
        env.dfs.totals().db_writes,
        db_writes,
        "no DittoFS database write while idle"
    );
    for ((ns, name), dfs) in names.iter().zip(&servers) {
        let requests = dfs.requests();
        let odd: Vec<_> = requests
            .iter()
            .filter(|r| {
                !(r.method == "GET" || (r.method == "POST" && r.path == "/api/v1/auth/refresh"))
            })
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect();
        assert_eq!(odd, Vec::<String>::new(), "{ns}/{name}: only reads");
        let gets = requests.iter().filter(|r| r.method == "GET").count() as u32;
        let refreshes = requests.len() as u32 - gets;
        eprintln!("{ns}/{name}: {gets} reads, {refreshes} refreshes in {INTERVALS} intervals");
        assert!(
            (INTERVALS - 1..=INTERVALS + 1).contains(&gets),
            "{ns}/{name}: about one read per interval: {gets} in {INTERVALS}"
        );
        assert!(
            requests.iter().all(|r| r.status == 200),
            "{ns}/{name}: {requests:?}"
        );
        if *name == "d" {
            assert_eq!(refreshes, gets, "{ns}/{name}: a refresh before each read");
        } else {
            assert_eq!(
                refreshes, 0,
                "{ns}/{name}: no refresh of a long-lived token"
            );
        }
    }
    assert_eq!(env.reconciles("error"), 0);
    env.stop().await;
}

/// Scenario 7: deleting a DittoServer deletes nothing in DittoFS and keeps the
/// credential Secrets; the same DittoServer applied again adopts them: same admin
/// password, the account still works, no user created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_keeps_dittofs_and_the_credentials_and_a_new_apply_adopts_them() {
    use dittofs_operator::crd::DittoServer;
    use kube::api::{Api, DeleteParams};

    let env = Env::start(&["team"], options()).await;
    env.api.enable_garbage_collector();
    let dfs = converged(&env, "team", "minimal").await;
    let secrets = [
        "minimal-admin-bootstrap-credentials",
        "minimal-jwt-secret",
        "minimal-operator-credentials",
    ];
    let before: Vec<Value> = secrets
        .iter()
        .map(|s| env.api.get(&secret_path("team", s)).expect("Secret")["data"].clone())
        .collect();
    let shares = dfs.shares();
    let users = dfs.users().len();

    dfs.clear_requests();
    Api::<DittoServer>::namespaced(env.api.client(), "team")
        .delete("minimal", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the DittoServer and its StatefulSet gone", BOUND, || {
        (env.ds("team", "minimal").is_none() && env.api.get(&sts_path("team", "minimal")).is_none())
            .then_some(())
    })
    .await;
    // A few poll intervals with the server still running, unmanaged now.
    let gone = dfs.request_count();
    tokio::time::sleep(POLL * 3).await;
    assert_nothing_deleted(&dfs);
    assert_eq!(
        dfs.request_count(),
        gone,
        "a deleted DittoServer's server is not polled any more"
    );
    assert_eq!(dfs.shares(), shares, "the share and its data stay");
    assert_eq!(dfs.metadata_stores().len(), 1);
    assert_eq!(dfs.block_stores("local").len(), 1);
    assert_eq!(dfs.users().len(), users, "the account stays");
    for (name, data) in secrets.iter().zip(&before) {
        let secret = env
            .api
            .get(&secret_path("team", name))
            .unwrap_or_else(|| panic!("Secret {name} retained"));
        assert_eq!(&secret["data"], data, "{name} unchanged");
    }

    // The same DittoServer again; its pod starts with the database it had.
    dfs.clear_requests();
    dfs.restart();
    env.create("team", "minimal", minimal_sample_spec()).await;
    wait_for("the StatefulSet made again", BOUND, || {
        env.api.get(&sts_path("team", "minimal"))
    })
    .await;
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    env.wait_configured("team", "minimal", BOUND).await;
    env.wait_condition("team", "minimal", "Ready", "True", None, BOUND)
        .await;
    for (name, data) in secrets.iter().zip(&before) {
        let secret = env.api.get(&secret_path("team", name)).expect("Secret");
        if *name == "minimal-operator-credentials" {
            assert_eq!(
                secret["data"]["password"], data["password"],
                "{name}: the same account password"
            );
        } else {
            assert_eq!(&secret["data"], data, "{name}: adopted unchanged");
        }
    }
    let requests: Vec<String> = dfs
        .requests()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    eprintln!("after the new apply: {requests:?}");
    assert!(
        !requests.iter().any(|r| r.starts_with("POST /api/v1/users")),
        "no user created: {requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.starts_with("DELETE")),
        "{requests:?}"
    );
    assert_eq!(dfs.shares().len(), 1, "the share as it was");
    assert_eq!(dfs.users().len(), users, "no user created");

    // The account still logs in with the password kept in its Secret.
    let password = env
        .secret_value("team", "minimal-operator-credentials", "password")
        .expect("account password");
    let client = dittofs_client();
    let server = dittofs_operator::dittofs::Server::of(
        &client,
        "minimal",
        "team",
        i32::from(env.dfs.port()),
        None,
    );
    let login = server
        .login(
            "dittofs-operator",
            &dittofs_operator::dittofs::Sensitive::new(password),
        )
        .await
        .expect("the account logs in");
    assert!(!login.user.must_change_password);
    assert_eq!(env.reconciles("error"), 0);
    env.stop().await;
}

/// A new JWT signing secret (the user rotates `<name>-jwt-secret`): the pod rolls,
/// DittoFS refuses every token signed with the old key, and the operator logs in
/// again at once — its account and password are unchanged — and keeps the server
/// in line (an adapter moved by hand after the restart is put back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_new_jwt_secret_the_operator_logs_in_again_at_once() {
    use base64::Engine;

    let env = Env::start(&["team"], options()).await;
    let dfs = converged(&env, "team", "minimal").await;
    let hash = |env: &Env| {
        env.api.get(&sts_path("team", "minimal")).expect("sts")["spec"]["template"]["metadata"]
            ["annotations"]["dittofs.io/config-hash"]
            .clone()
    };
    let before = hash(&env);

    // The user rotates the JWT secret; the operator rolls the pod.
    let path = secret_path("team", "minimal-jwt-secret");
    let mut secret = env.api.get(&path).expect("JWT Secret");
    let key = secret["data"]
        .as_object()
        .and_then(|d| d.keys().next().cloned())
        .expect("a key");
    secret["data"][&key] = json!(
        base64::engine::general_purpose::STANDARD
            .encode("a-new-jwt-signing-secret-of-48-characters-000000")
    );
    secret["metadata"]["resourceVersion"] = Value::Null;
    env.api.put(&path, secret);
    wait_for("the pod template's new config hash", BOUND, || {
        (hash(&env) != before).then_some(())
    })
    .await;
    // The new pod: the same database, a new signing key.
    dfs.restart_with_new_jwt_secret();
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));

    // Something for the operator to do on the restarted server.
    dfs.set_adapter("nfs", 13049, true);
    let changed = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if nfs_port(&dfs) == 12049 && env.configured("team", "minimal") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let refused: Vec<String> = dfs
        .requests()
        .iter()
        .filter(|r| r.status == 401 || r.status == 403)
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert!(
        result.is_ok(),
        "not back in line {:?} after the restart: adapter on {}, ServerConfigured {:?}; refused: {refused:?}",
        changed.elapsed(),
        nfs_port(&dfs),
        env.condition("team", "minimal", "ServerConfigured")
    );
    env.stop().await;
}

/// The operator's account demoted by hand (`dfsctl user edit dittofs-operator
/// --role user`): every change it makes needs `admin`, so it makes the account
/// admin again with the administrator's password, as it does when the account's
/// password was changed. Access tokens live 30 s here so that the session is
/// refreshed (and the new role seen) at once rather than after 15 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_account_demoted_by_hand_is_made_admin_again() {
    use dittofs_operator::dittofs::api::{Role, UpdateUserRequest};

    let env = Env::start(&["team"], options()).await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.register_server("team", "minimal").await;
    dfs.set_token_lifetimes(Duration::from_secs(30), Duration::from_secs(3600));
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    env.wait_condition("team", "minimal", "Ready", "True", None, BOUND)
        .await;
    env.settle(Duration::from_secs(7), BOUND).await;

    let admin = env.by_hand("team", "minimal").await;

    admin
        .server()
        .update_user(
            &admin.token,
            "dittofs-operator",
            &UpdateUserRequest {
                role: Role::User,
                enabled: true,
            },
        )
        .await
        .expect("demoted");
    dfs.set_adapter("nfs", 13049, true);
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let admin_again = dfs
                .users()
                .iter()
                .any(|u| u.username == "dittofs-operator" && u.role == "admin");
            if admin_again && nfs_port(&dfs) == 12049 && env.configured("team", "minimal") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "account role {:?}, adapter on {}, ServerConfigured {:?}",
        dfs.users()
            .iter()
            .find(|u| u.username == "dittofs-operator")
            .map(|u| u.role.clone()),
        nfs_port(&dfs),
        env.condition("team", "minimal", "ServerConfigured")
    );
    env.stop().await;
}

/// A new operator process (an upgrade, a failover to another replica) finds every
/// server converged: it reads each once (its session from the refresh token kept in
/// the account Secret), and writes nothing — no Kubernetes write, no event, no
/// DittoFS database write, no adapter restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_reads_each_converged_server_once_and_writes_nothing() {
    let mut env = Env::start(&["team"], options()).await;
    let names = ["a", "b"];
    for name in names {
        env.create("team", name, minimal_sample_spec()).await;
    }
    let mut servers = Vec::new();
    for name in names {
        servers.push(env.start_server("team", name).await);
    }
    for name in names {
        env.wait_condition("team", name, "Ready", "True", None, BOUND)
            .await;
    }
    env.settle(Duration::from_secs(7), BOUND).await;

    env.api.clear_log();
    env.dfs.clear_requests();
    let db_writes = env.dfs.totals().db_writes;
    env.restart_operator().await;
    // Its first passes, then a poll round.
    env.settle(Duration::from_secs(7), BOUND).await;
    tokio::time::sleep(POLL).await;

    let writes: Vec<String> = env
        .api
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let calls: Vec<Vec<String>> = servers
        .iter()
        .map(|s| {
            s.requests()
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.path, r.status))
                .collect()
        })
        .collect();
    eprintln!("after the restart: Kubernetes writes {writes:?}; DittoFS {calls:?}");
    assert_eq!(
        env.dfs.totals().db_writes,
        db_writes,
        "no DittoFS database write"
    );
    for (name, calls) in names.iter().zip(&calls) {
        assert!(
            calls
                .iter()
                .all(|c| c.starts_with("GET ") || c.starts_with("POST /api/v1/auth/refresh ")),
            "{name}: only reads: {calls:?}"
        );
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("POST /api/v1/auth/login")),
            "{name}: the kept refresh token, no login"
        );
    }
    for name in names {
        assert!(env.configured("team", name), "{name} still configured");
    }
    let reasons: Vec<String> = env
        .api
        .requests()
        .iter()
        .filter(|r| r.is_write() && r.path.ends_with("/events"))
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).map_or_else(
                |_| "?".to_string(),
                |e| format!("{} {}", e["reason"], e["note"]),
            )
        })
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "no Kubernetes write; events: {reasons:?}"
    );
    env.stop().await;
}

fn adapter(dfs: &fake_dittofs::ServerHandle, kind: &str) -> fake_dittofs::AdapterView {
    dfs.adapters()
        .into_iter()
        .find(|a| a.adapter_type == kind)
        .unwrap_or_else(|| panic!("adapter {kind}"))
}

/// Spec edits reach the running server in place: SMB turned on (adapter enabled,
/// Service port 445 → its port) and off again, a share made read-only, the
/// portmapper turned off (stored, in effect, and port 111 gone from the Service);
/// the NFS adapter restarts only for the portmapper. A share made writable again by
/// hand is put back to read-only by the poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_edits_reach_the_running_server_in_place() {
    let env = Env::start(&["team"], options()).await;
    let dfs = converged(&env, "team", "minimal").await;
    let nfs_starts = adapter(&dfs, "nfs").starts;
    let hash = env.api.get(&sts_path("team", "minimal")).expect("sts")["spec"]["template"].clone();

    // SMB on.
    env.edit_spec("team", "minimal", |spec| {
        spec["smb"] = json!({"enabled": true})
    });
    wait_for("SMB enabled and on the Service", BOUND, || {
        let smb = adapter(&dfs, "smb");
        let port = env.file_service_port("team", "minimal", "smb")?;
        (smb.enabled
            && smb.running
            && smb.port == 1445
            && port["port"] == 445
            && port["targetPort"] == 1445)
            .then_some(())
    })
    .await;
    env.wait_condition("team", "minimal", "ServerConfigured", "True", None, BOUND)
        .await;
    assert_eq!(
        adapter(&dfs, "nfs").starts,
        nfs_starts,
        "NFS not restarted for SMB"
    );

    // A share made read-only.
    env.edit_spec("team", "minimal", |spec| {
        spec["shares"][0]["readOnly"] = json!(true);
    });
    wait_for("/export read-only", BOUND, || {
        dfs.shares()
            .iter()
            .any(|s| s.name == "/export" && s.read_only)
            .then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    // Made writable again by hand: put back.
    {
        use dittofs_operator::dittofs::api::UpdateShareRequest;
        let admin = env.by_hand("team", "minimal").await;
        admin
            .server()
            .update_share(
                &admin.token,
                "/export",
                &UpdateShareRequest {
                    read_only: Some(false),
                    default_permission: None,
                },
            )
            .await
            .expect("share updated by hand");
    }
    assert!(
        dfs.shares()
            .iter()
            .any(|s| s.name == "/export" && !s.read_only)
    );
    wait_for("/export read-only again", BOUND, || {
        dfs.shares()
            .iter()
            .any(|s| s.name == "/export" && s.read_only)
            .then_some(())
    })
    .await;

    // SMB off again.
    env.edit_spec("team", "minimal", |spec| {
        spec["smb"] = json!({"enabled": false})
    });
    wait_for("SMB disabled and off the Service", BOUND, || {
        let smb = adapter(&dfs, "smb");
        (!smb.enabled && !smb.running && env.file_service_port("team", "minimal", "smb").is_none())
            .then_some(())
    })
    .await;
    assert_eq!(
        adapter(&dfs, "nfs").starts,
        nfs_starts,
        "NFS not restarted for SMB"
    );

    // The portmapper off: stored, in effect after an NFS restart, 111 off the Service.
    env.edit_spec("team", "minimal", |spec| {
        spec["nfsPortmapper"] = json!(false)
    });
    wait_for("the portmapper off", BOUND, || {
        let effective = dfs.effective_nfs_settings()?;
        (dfs.nfs_settings()["portmapper_enabled"] == false
            && !effective.portmapper_enabled
            && env
                .file_service_port("team", "minimal", "portmap-tcp")
                .is_none()
            && env
                .file_service_port("team", "minimal", "portmap-udp")
                .is_none()
            && env
                .file_service_port("team", "minimal", "nfs-adapter")
                .is_none())
        .then_some(())
    })
    .await;
    env.wait_condition("team", "minimal", "ServerConfigured", "True", None, BOUND)
        .await;
    assert!(adapter(&dfs, "nfs").running && adapter(&dfs, "nfs").listening);
    assert!(
        adapter(&dfs, "nfs").starts > nfs_starts,
        "restarted for the portmapper"
    );
    env.settle(Duration::from_secs(7), BOUND).await;
    assert_eq!(
        env.api.get(&sts_path("team", "minimal")).expect("sts")["spec"]["template"],
        hash,
        "no pod roll for any of it"
    );
    assert_nothing_deleted(&dfs);
    assert_eq!(env.reconciles("error"), 0);
    env.stop().await;
}

/// What is gone from the server or the spec is gone from the status too: the SMB
/// endpoint once SMB is off, `portmapperPort` once the portmapper is off, the
/// unmanaged share once it is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_forgets_what_is_gone() {
    let env = Env::start(&["team"], options()).await;
    let mut spec = minimal_sample_spec();
    spec["smb"] = json!({"enabled": true});
    env.create("team", "minimal", spec).await;
    let dfs = env.start_server("team", "minimal").await;
    env.wait_condition("team", "minimal", "Ready", "True", None, BOUND)
        .await;
    let admin = env.by_hand("team", "minimal").await;
    admin.create_share("/scratch").await;
    wait_for("the status with all three", BOUND, || {
        let ds = env.ds("team", "minimal")?;
        let status = &ds["status"];
        (status["endpoints"]["smb"].is_string()
            && status["server"]["portmapperPort"].is_number()
            && status["server"]["unmanaged"] == json!(["share /scratch"]))
        .then_some(())
    })
    .await;

    env.edit_spec("team", "minimal", |spec| {
        spec["smb"] = json!({"enabled": false});
        spec["nfsPortmapper"] = json!(false);
    });
    assert!(dfs.delete_share("/scratch"));
    wait_for("SMB and the portmapper off, /scratch gone", BOUND, || {
        let smb = adapter(&dfs, "smb");
        let effective = dfs.effective_nfs_settings()?;
        (!smb.enabled && !effective.portmapper_enabled && dfs.shares().len() == 1).then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    tokio::time::sleep(POLL * 2).await;
    env.settle(Duration::from_secs(7), BOUND).await;
    env.wait_condition("team", "minimal", "ServerConfigured", "True", None, BOUND)
        .await;
    let status = env.ds("team", "minimal").expect("ds")["status"].clone();
    let stale: Vec<String> = [
        ("status.endpoints.smb", &status["endpoints"]["smb"]),
        (
            "status.server.portmapperPort",
            &status["server"]["portmapperPort"],
        ),
        ("status.server.unmanaged", &status["server"]["unmanaged"]),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_null())
    .map(|(field, v)| format!("{field}: {v}"))
    .collect();
    assert_eq!(stale, Vec::<String>::new(), "stale status fields");
    env.stop().await;
}

/// A slow server: every answer takes 12 s, well within the client's 35 s bound per
/// call, but a first configuration is some fifteen calls and a pass is abandoned
/// after 60 s. Whatever the operator does about it, the status must say something
/// about the server once its pod is ready, not stay at "waiting for the pod".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_is_reported_not_left_as_waiting_for_its_pod() {
    let env = Env::start(
        &["team"],
        Options {
            call_timeout: None,
            ..options()
        },
    )
    .await;
    env.create("team", "minimal", minimal_sample_spec()).await;
    let dfs = env.register_server("team", "minimal").await;
    dfs.set_delay(Duration::from_secs(12));
    env.wait_server_state("team", "minimal", "ServerNotReady", BOUND)
        .await;
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    let ready = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(150), async {
        loop {
            let c = env.condition("team", "minimal", "ServerConfigured");
            let degraded = env.condition("team", "minimal", "Degraded");
            if c.as_ref().is_some_and(|c| c.1 != "ServerNotReady")
                || degraded.as_ref().is_some_and(|d| d.0 == "True")
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    eprintln!(
        "after {:?}: {:?}; Degraded {:?}; {} requests, {} errors, events {:?}",
        ready.elapsed(),
        env.condition("team", "minimal", "ServerConfigured"),
        env.condition("team", "minimal", "Degraded"),
        dfs.request_count(),
        env.reconciles("error"),
        env.api.event_reasons()
    );
    assert!(result.is_ok(), "the status still waits for the pod");
    env.stop().await;
}

/// A store whose connection Secret does not exist yet waits for it (Pending, the
/// share on it too, ServerConfigured Waiting); once the user creates the Secret the
/// store and the share are made, without any other change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_waiting_for_its_secret_is_made_once_the_secret_exists() {
    let env = Env::start(&["team"], options()).await;
    let mut spec = minimal_sample_spec();
    spec["metadataStores"]
        .as_array_mut()
        .expect("stores")
        .push(json!({"name": "pgmeta", "type": "postgres", "postgres": {"secretRef": {"name": "pg-conn"}}}));
    spec["shares"].as_array_mut().expect("shares").push(json!({
        "name": "/db", "metadataStore": "pgmeta", "localBlockStore": "content",
        "defaultPermission": "read-write"
    }));
    env.create("team", "minimal", spec).await;
    let dfs = env.start_server("team", "minimal").await;
    let message = env
        .wait_server_state("team", "minimal", "Waiting", BOUND)
        .await;
    eprintln!("Waiting: {message}");
    assert!(message.contains("pg-conn"), "{message}");
    wait_for("/export made", BOUND, || {
        dfs.shares()
            .iter()
            .any(|s| s.name == "/export")
            .then_some(())
    })
    .await;
    // Past the read after the first changes.
    env.settle(Duration::from_secs(7), BOUND).await;
    assert_eq!(dfs.metadata_stores().len(), 1, "pgmeta waits");

    let b64 = |v: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v)
    };
    env.api.put(
        &secret_path("team", "pg-conn"),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "data": {"host": b64("pg.team.svc"), "port": b64("5432"), "database": b64("dittofs"),
                        "user": b64("dittofs"), "password": b64("s3cret-pw")}}),
    );
    let created = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if dfs.shares().iter().any(|s| s.name == "/db") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if result.is_err() {
        let stores: Vec<String> = dfs.metadata_stores().into_iter().map(|s| s.name).collect();
        let condition = env.condition("team", "minimal", "ServerConfigured");
        // Any spec change (a new generation) makes the server due: then it is made.
        env.edit_spec("team", "minimal", |spec| spec["nfsPort"] = json!(2050));
        let after_edit = tokio::time::timeout(Duration::from_secs(15), async {
            while !dfs.shares().iter().any(|s| s.name == "/db") {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .is_ok();
        panic!(
            "/db not made {:?} after its Secret appeared: stores {stores:?}, ServerConfigured {condition:?}; made after an unrelated spec edit: {after_edit}",
            created.elapsed()
        );
    }
    let pg = dfs
        .metadata_stores()
        .into_iter()
        .find(|s| s.name == "pgmeta")
        .expect("pgmeta");
    let config: Value = serde_json::from_str(&pg.config).expect("config");
    assert_eq!(config["host"], "pg.team.svc");
    assert_eq!(config["port"], 5432);
    env.wait_configured("team", "minimal", BOUND).await;
    env.stop().await;
}

/// S3 keys rotated in their Secret are pushed to the remote store in place
/// (`spec.remoteBlockStores`: "S3 keys rotated in their Secret are pushed to the
/// store in place").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_s3_keys_are_pushed_to_the_remote_store() {
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let keys = |id: &str, secret: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "data": {"accessKeyId": b64(id), "secretAccessKey": b64(secret)}})
    };
    let env = Env::start(&["team"], options()).await;
    env.api.put(
        &secret_path("team", "s3-keys"),
        keys("AKIAOLDKEY000001", "old-secret-key"),
    );
    let mut spec = minimal_sample_spec();
    spec["remoteBlockStores"] = json!([{"name": "bucket", "type": "s3",
        "s3": {"bucket": "dittofs-data", "region": "eu-west-1",
               "credentialsSecretRef": {"name": "s3-keys"}}}]);
    env.create("team", "minimal", spec).await;
    let dfs = env.start_server("team", "minimal").await;
    env.wait_configured("team", "minimal", BOUND).await;
    let access_key = |dfs: &fake_dittofs::ServerHandle| {
        dfs.block_stores("remote").first().map(|s| {
            let config: Value = serde_json::from_str(&s.config).expect("config");
            config["access_key_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    assert_eq!(access_key(&dfs).as_deref(), Some("AKIAOLDKEY000001"));
    env.settle(Duration::from_secs(7), BOUND).await;

    env.api.put(
        &secret_path("team", "s3-keys"),
        keys("AKIANEWKEY000002", "new-secret-key"),
    );
    let rotated = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        while access_key(&dfs).as_deref() != Some("AKIANEWKEY000002") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if result.is_err() {
        let seen = access_key(&dfs);
        // Any spec change (a new generation) makes the server due: then they are.
        env.edit_spec("team", "minimal", |spec| spec["nfsPort"] = json!(2050));
        let after_edit = tokio::time::timeout(Duration::from_secs(15), async {
            while access_key(&dfs).as_deref() != Some("AKIANEWKEY000002") {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .is_ok();
        panic!(
            "new keys not in the store {:?} after the rotation: {seen:?}; pushed after an unrelated spec edit: {after_edit}",
            rotated.elapsed()
        );
    }
    let config: Value =
        serde_json::from_str(&dfs.block_stores("remote")[0].config).expect("config");
    assert_eq!(config["secret_access_key"], "new-secret-key");
    env.stop().await;
}

/// The pod restarts (a node drained, a crash, a rolling update): ServerConfigured
/// and Ready go False while it is not ready, and come back once it is ready again
/// and the server holds what it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_pod_is_ready_and_configured_again() {
    let env = Env::start(&["team"], options()).await;
    let dfs = converged(&env, "team", "minimal").await;
    let path = sts_path("team", "minimal");
    let mut sts = env.api.get(&path).expect("sts");
    sts["status"]["readyReplicas"] = json!(0);
    sts["status"]["availableReplicas"] = json!(0);
    env.api.put(&path, sts);
    env.wait_server_state("team", "minimal", "ServerNotReady", BOUND)
        .await;
    dfs.restart();
    assert!(env.api.make_statefulset_ready(&path));
    let back = Instant::now();
    let result = tokio::time::timeout(POLL * 5, async {
        while !env.configured("team", "minimal") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "{:?} after the pod is ready again: ServerConfigured {:?}, Ready {:?}; DittoFS calls {:?}",
        back.elapsed(),
        env.condition("team", "minimal", "ServerConfigured"),
        env.condition("team", "minimal", "Ready"),
        dfs.requests().len()
    );
    env.stop().await;
}

/// The REST API over mutual TLS (`samples/tls.yaml`'s shape): the operator dials
/// HTTPS, trusts the CA of the certificate Secret, presents its own certificate
/// and configures the server; the kubelet's probes only connect. A certificate the
/// server does not trust is reported with the handshake's words, and the right one
/// brings the server back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_the_operator_presents_its_own_certificate() {
    let pki = TestPki::new(&host("team", "minimal"));
    let env = Env::start_with(
        &["team"],
        options(),
        fake_dittofs::FakeDittoFs::start_tls(pki.server_config(true)),
    )
    .await;
    let tls = "kubernetes.io/tls";
    // The server's certificate Secret, with this CA bundle.
    let put_api_tls = |ca: &str| {
        env.put_secret(
            "team",
            "api-tls",
            tls,
            &[
                ("tls.crt", &pki.server_cert),
                ("tls.key", &pki.server_key),
                ("ca.crt", ca),
            ],
        )
    };
    put_api_tls(&pki.server_ca);
    env.put_secret("team", "client-ca", "Opaque", &[("ca.crt", &pki.client_ca)]);
    let operator_cert = [
        ("tls.crt", pki.operator_cert.as_str()),
        ("tls.key", pki.operator_key.as_str()),
    ];
    env.put_secret("team", "operator-cert", tls, &operator_cert);
    let mut spec = minimal_sample_spec();
    spec["controlPlane"] = json!({
        "certSecretName": "api-tls",
        "clientCASecretName": "client-ca",
        "operatorCertSecretName": "operator-cert",
    });
    env.create("team", "minimal", spec).await;
    let dfs = env.start_server("team", "minimal").await;
    env.wait_configured("team", "minimal", BOUND).await;
    assert!(
        dfs.shares().iter().any(|s| s.name == "/export"),
        "{:?}",
        dfs.shares()
    );
    let sts = env
        .api
        .get(&sts_path("team", "minimal"))
        .expect("StatefulSet");
    let probe = &sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["tcpSocket"]["port"], "api", "{probe}");

    // The listener speaks only TLS: plain HTTP gets no answer.
    let plain = dittofs_client();
    let login = dittofs_operator::dittofs::Server::of(
        &plain,
        "minimal",
        "team",
        i32::from(env.dfs.port()),
        None,
    )
    .login("admin", &dittofs_operator::dittofs::Sensitive::new("x"))
    .await;
    assert!(
        matches!(
            login,
            Err(dittofs_operator::dittofs::CallError::Unreachable { .. })
        ),
        "{login:?}"
    );

    // A certificate from a CA the server does not trust: refused, and said.
    let requests = dfs.requests().len();
    env.put_secret(
        "team",
        "operator-cert",
        tls,
        &[
            ("tls.crt", &pki.stranger_cert),
            ("tls.key", &pki.stranger_key),
        ],
    );
    let message = env
        .wait_server_state("team", "minimal", "ServerUnreachable", BOUND)
        .await;
    eprintln!("ServerUnreachable: {message}");
    assert!(message.contains("cannot reach the server"), "{message}");
    assert_eq!(
        dfs.requests().len(),
        requests,
        "no request passed the handshake"
    );

    // The right certificate again: configured again.
    env.put_secret("team", "operator-cert", tls, &operator_cert);
    env.wait_configured("team", "minimal", Duration::from_secs(60))
        .await;

    // The server's certificate renewed (here: a new ca.crt bundle): the pod rolls for
    // it, and until it has, the pod that answers may serve the old certificate, so
    // the operator does not call it.
    let template = |env: &Env| {
        env.api.get(&sts_path("team", "minimal")).expect("StatefulSet")["spec"]["template"]
            ["metadata"]["annotations"]["dittofs.io/config-hash"]
            .clone()
    };
    let hash = template(&env);
    put_api_tls(&format!("{}\n{}", pki.server_ca, pki.client_ca));
    let message = env
        .wait_server_state("team", "minimal", "ServerNotReady", BOUND)
        .await;
    assert_ne!(template(&env), hash, "the pod rolls: {message}");
    let requests = dfs.requests().len();
    tokio::time::sleep(2 * POLL).await;
    assert_eq!(dfs.requests().len(), requests, "no call before the roll");
    // Rolled: called again, with the new setting.
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    env.wait_configured("team", "minimal", BOUND).await;
    assert_eq!(env.reconciles("error"), 0, "no failed pass");
    env.stop().await;
}

/// Snapshot policies: the declared one is made in the server and a converged
/// server gets no write; one made by hand is listed and left alone; the operator's
/// own is removed when its entry leaves the spec, and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_policies_are_kept_and_only_the_operators_own_are_removed() {
    use dittofs_operator::dittofs::api::UpsertSnapshotPolicyRequest;
    const DAY_NS: i64 = 24 * 3_600_000_000_000;

    let env = Env::start(&["team"], options()).await;
    let mut spec = minimal_sample_spec();
    spec["snapshotPolicies"] = json!([{"share": "/export", "interval": "@daily", "keepLast": 7}]);
    env.create("team", "snap", spec).await;
    let dfs = env.start_server("team", "snap").await;
    env.wait_condition("team", "snap", "Ready", "True", None, BOUND)
        .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    let policies = dfs.snapshot_policies();
    assert_eq!(policies.len(), 1, "{policies:?}");
    let export = &policies[0];
    assert_eq!(
        (
            export.share_name.as_str(),
            export.interval_ns,
            export.keep_last,
            export.enabled,
            export.name_prefix.as_str()
        ),
        ("/export", DAY_NS, 7, true, "scheduled")
    );
    assert_eq!(
        env.server_status("team", "snap")["snapshotPolicies"],
        json!([{"share": "/export", "state": "Ready", "owned": true}])
    );
    assert_eq!(
        hits(&dfs, "PUT", "/api/v1/shares/export/snapshot-policy"),
        1
    );

    // A pass over the converged server (a new generation) reads the policies and
    // writes nothing.
    let writes = dfs.db_writes();
    let lists = hits(&dfs, "GET", "/api/v1/snapshot-policies");
    env.edit_spec("team", "snap", |spec| {
        spec["service"]["annotations"] = json!({"team": "a"})
    });
    wait_for("a pass that reads the server", BOUND, || {
        (hits(&dfs, "GET", "/api/v1/snapshot-policies") > lists).then_some(())
    })
    .await;
    env.settle(Duration::from_secs(3), BOUND).await;
    assert_eq!(
        dfs.db_writes(),
        writes,
        "no DittoFS write for a converged server"
    );

    // An admin changes the declared policy by hand: the poll notices it (the
    // policies take a turn while the spec declares some) and it is put back.
    let admin = env.by_hand("team", "snap").await;
    admin
        .server()
        .upsert_snapshot_policy(
            &admin.token,
            "/export",
            &UpsertSnapshotPolicyRequest {
                interval: "1h".into(),
                keep_last: 1,
                ttl: String::new(),
                enabled: true,
                name_prefix: String::new(),
            },
        )
        .await
        .expect("policy changed by hand");
    wait_for("the declared policy put back", BOUND, || {
        dfs.snapshot_policies()
            .iter()
            .any(|p| p.share_name == "/export" && p.keep_last == 7 && p.interval_ns == DAY_NS)
            .then_some(())
    })
    .await;

    // An admin makes a share and its policy by hand.
    admin.create_share("/scratch").await;
    admin
        .server()
        .upsert_snapshot_policy(
            &admin.token,
            "/scratch",
            &UpsertSnapshotPolicyRequest {
                interval: "1h".into(),
                keep_last: 0,
                ttl: String::new(),
                enabled: true,
                name_prefix: String::new(),
            },
        )
        .await
        .expect("policy made by hand");

    // The spec's policy removed: the operator's goes, the hand-made one stays.
    env.edit_spec("team", "snap", |spec| {
        spec.as_object_mut().map(|s| s.remove("snapshotPolicies"));
    });
    wait_for(
        "the operator's policy removed, the other listed",
        BOUND,
        || {
            let server = env.server_status("team", "snap");
            let listed = server["unmanaged"]
                .as_array()?
                .iter()
                .any(|u| u == "snapshot policy /scratch");
            let shares: Vec<String> = dfs
                .snapshot_policies()
                .into_iter()
                .map(|p| p.share_name)
                .collect();
            (listed && shares == ["/scratch"] && server.get("snapshotPolicies").is_none())
                .then_some(())
        },
    )
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    let deletes: Vec<String> = dfs
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| format!("{} {}", r.path, r.status))
        .collect();
    assert_eq!(deletes, ["/api/v1/shares/export/snapshot-policy 204"]);
    assert_eq!(dfs.snapshot_policies().len(), 1, "the hand-made one stays");
    env.wait_condition("team", "snap", "ServerConfigured", "True", None, BOUND)
        .await;
    assert_eq!(env.reconciles("error"), 0);
    env.stop().await;
}

/// LDAP and Kerberos reach the server's database, not only its config file:
/// DittoFS v0.29 takes them from the file only at the first start
/// (`resolveIdentityProviders`). A converged server gets no write; a spec edit is
/// written (LDAP live, with no roll; Kerberos once the pod runs the current template,
/// and the pod template then carries the digest that restarts it once); a rotated
/// bind password is sent without a roll; LDAP dropped from the spec is turned off;
/// one enabled again by hand afterwards is someone else's and left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_providers_are_kept_in_the_servers_database() {
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let secret = |key: &str, value: &str| json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {key: b64(value)}});
    let env = Env::start(&["team"], options()).await;
    env.api.put(
        &secret_path("team", "ldap-bind"),
        secret("password", "bind-1"),
    );
    env.api.put(
        &secret_path("team", "keytab"),
        secret("keytab", "\u{5}\u{2}"),
    );
    env.api.put(
        &secret_path("team", "machine"),
        secret("secret", "machine-1"),
    );
    let mut spec = minimal_sample_spec();
    spec["identity"] = json!({
        "ldap": {"enabled": true, "url": "ldaps://dc.corp.example.com", "baseDN": "dc=corp,dc=example,dc=com",
            "bindDN": "cn=dittofs,dc=corp,dc=example,dc=com",
            "bindPasswordSecretRef": {"name": "ldap-bind", "key": "password"}},
        "kerberos": {"enabled": true, "servicePrincipal": "nfs/files.corp.example.com@CORP.EXAMPLE.COM",
            "netbiosDomain": "CORP", "keytabSecretRef": {"name": "keytab", "key": "keytab"},
            "machineAccount": {"enabled": true, "accountName": "DITTOFS$",
                "secretRef": {"name": "machine", "key": "secret"}}},
    });
    env.create("team", "minimal", spec).await;
    // The first start seeds the database from the rendered config.yaml.
    let dfs = env.register_server("team", "minimal").await;
    let config = env
        .api
        .get(&dittofs_env::config_map_path("team", "minimal-config"))
        .expect("ConfigMap");
    dfs.seed_identity(
        config["data"]["config.yaml"].as_str().expect("config.yaml"),
        "bind-1",
        "machine-1",
    );
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    env.wait_configured("team", "minimal", BOUND).await;
    env.settle(Duration::from_secs(7), BOUND).await;
    let providers = |env: &Env| env.server_status("team", "minimal")["identityProviders"].clone();
    let listed = providers(&env);
    assert_eq!(listed[0]["type"], "ldap", "{listed}");
    assert_eq!(
        (listed[0]["state"].as_str(), listed[1]["state"].as_str()),
        (Some("Ready"), Some("Ready")),
        "{listed}"
    );
    assert!(
        listed[1]["writtenDigest"].is_null(),
        "seeded as declared: no restart {listed}"
    );

    // Converged: another pass (a poll round) writes nothing.
    let writes = dfs.db_writes();
    dfs.clear_requests();
    env.edit_spec("team", "minimal", |spec| spec["nfsPort"] = json!(2050));
    env.settle(Duration::from_secs(7), BOUND).await;
    tokio::time::sleep(POLL).await;
    assert_eq!(
        dfs.db_writes(),
        writes,
        "no write: {:?}",
        hits(&dfs, "PUT", "/api/v1/identity-providers/ldap/config")
    );

    let sts_annotations = |env: &Env| {
        env.api.get(&sts_path("team", "minimal")).expect("sts")["spec"]["template"]["metadata"]["annotations"].clone()
    };
    let before = sts_annotations(&env);
    // An LDAP edit is written and applies live; a Kerberos edit is written and
    // rolls the pod once through the digest.
    env.edit_spec("team", "minimal", |spec| {
        spec["identity"]["ldap"]["nestedGroups"] = json!(true);
        spec["identity"]["kerberos"]["dnsDomain"] = json!("files.corp.example.com");
    });
    wait_for("the edits in the database", BOUND, || {
        let ldap = dfs.identity_provider("ldap")?;
        let krb = dfs.identity_provider("kerberos")?;
        (ldap["nested_groups"] == true && krb["dns_domain"] == "files.corp.example.com")
            .then_some(())
    })
    .await;
    let digest = wait_for("the Kerberos digest in the pod template", BOUND, || {
        let digest = providers(&env)[1]["writtenDigest"].as_str()?.to_string();
        (sts_annotations(&env)["dittofs.io/kerberos-settings"] == digest.as_str()).then_some(digest)
    })
    .await;
    let after = sts_annotations(&env);
    assert_ne!(
        before["dittofs.io/config-hash"], after["dittofs.io/config-hash"],
        "one roll"
    );
    let krb = dfs.identity_provider("kerberos").expect("row");
    assert_eq!(
        (
            krb["realm"].as_str(),
            krb["machine_account"]["secret"].as_str()
        ),
        (Some("CORP.EXAMPLE.COM"), Some("machine-1"))
    );
    assert_eq!(
        dfs.identity_provider("ldap").expect("row")["bind_password"],
        "bind-1"
    );
    // The pod restarts with it, and nothing more is written or rolled.
    dfs.restart();
    assert!(env.api.make_statefulset_ready(&sts_path("team", "minimal")));
    env.settle(Duration::from_secs(7), BOUND).await;
    let writes = dfs.db_writes();
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(dfs.db_writes(), writes);
    assert_eq!(sts_annotations(&env), after);
    assert_eq!(providers(&env)[1]["writtenDigest"], digest.as_str());

    // A rotated bind password: sent, and no roll.
    env.api.put(
        &secret_path("team", "ldap-bind"),
        secret("password", "bind-2"),
    );
    wait_for("the new bind password", BOUND, || {
        (dfs.identity_provider("ldap")?["bind_password"] == "bind-2").then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    assert_eq!(sts_annotations(&env), after, "no roll for a password");

    // The LDAP row changed by hand (dfsctl): the poll reads the declared
    // providers' rows in turn, and the spec's settings are written back.
    let mut changed = dfs.identity_provider("ldap").expect("row");
    changed["nested_groups"] = json!(false);
    dfs.set_identity_provider("ldap", changed);
    wait_for("the LDAP row put back", BOUND, || {
        (dfs.identity_provider("ldap")?["nested_groups"] == true).then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;

    // LDAP dropped from the spec: turned off. Enabled again by hand: someone
    // else's, left alone and listed.
    env.edit_spec("team", "minimal", |spec| {
        spec["identity"]["ldap"] = Value::Null;
    });
    wait_for("LDAP turned off", BOUND, || {
        (dfs.identity_provider("ldap")?["enabled"] == false).then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    let mut by_hand = dfs.identity_provider("ldap").expect("row");
    by_hand["enabled"] = json!(true);
    by_hand["base_dn"] = json!("dc=other");
    dfs.set_identity_provider("ldap", by_hand.clone());
    env.edit_spec("team", "minimal", |spec| spec["nfsPort"] = json!(2051));
    wait_for("the hand-made LDAP listed", BOUND, || {
        let unmanaged = env.server_status("team", "minimal")["unmanaged"].clone();
        unmanaged
            .as_array()?
            .iter()
            .any(|u| u == "identity provider ldap")
            .then_some(())
    })
    .await;
    env.settle(Duration::from_secs(7), BOUND).await;
    assert_eq!(dfs.identity_provider("ldap").expect("row"), by_hand);
    assert_nothing_deleted(&dfs);
    env.stop().await;
}
