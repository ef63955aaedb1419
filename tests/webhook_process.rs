//! The real binary: `dittofs-operator webhook --self-signed` serves, reports ready,
//! turns not ready on SIGTERM, drains and exits 0.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Http1Conn, ditto_server, http1_config, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn probe(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.ok()?;
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((status, body))
}

/// The binary serving `webhook --self-signed --offline EXTRA…`, ready; its
/// addresses and the CA to trust.
struct Served {
    child: std::process::Child,
    listen: SocketAddr,
    probes: SocketAddr,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(extra: &[&str]) -> Served {
    support::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let probes: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let child = Command::new(env!("CARGO_BIN_EXE_dittofs-operator"))
        .args([
            "--log-format",
            "text",
            "webhook",
            "--self-signed",
            "--offline",
        ])
        .arg("--ca-out")
        .arg(&ca)
        .args(["--listen", &listen.to_string()])
        .args(["--probe-listen", &probes.to_string()])
        .args(["--shutdown-delay", "1s"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        listen,
        probes,
        ca_pem: String::new(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, _)) = probe(probes, "/readyz").await {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served.ca_pem = std::fs::read_to_string(&ca).unwrap();
    served
}

#[tokio::test]
async fn sigterm_turns_readiness_off_then_drains_and_exits() {
    let mut served = serve(&[]).await;
    let (listen, probes) = (served.listen, served.probes);
    assert_eq!(probe(probes, "/healthz").await.unwrap().0, 200);
    let mut conn = Http1Conn::open(listen, http1_config(&served.ca_pem))
        .await
        .unwrap();
    let body = review(
        "uid-process",
        "CREATE",
        Some(ditto_server(
            serde_json::json!({"storage": {"metadataSize": "1Gi"}}),
        )),
        None,
    );
    let res = conn
        .post("/mutate", &serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!(res.json()["response"]["uid"], "uid-process");
    let (status, metrics) = probe(probes, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"dittofs_operator_webhook_requests_total{endpoint="mutate",result="allowed",code="200"} 1"#
        ),
        "{metrics}"
    );

    let sent = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // During the shutdown delay: not ready, still serving.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = probe(probes, "/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("shutting down"), "{body}");
    let res = conn
        .post(
            "/validate",
            &serde_json::to_vec(&body_for_validate()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200);

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = served.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn with_watch_namespaces_only_those_namespaces_are_judged() {
    let served = serve(&["--watch-namespaces", "team-a,team-c"]).await;
    let mut conn = Http1Conn::open(served.listen, http1_config(&served.ca_pem))
        .await
        .unwrap();
    // Not a quantity: denied wherever it is judged.
    let mut bad = review(
        "uid-scope",
        "CREATE",
        Some(ditto_server(
            serde_json::json!({"storage": {"metadataSize": "lots"}}),
        )),
        None,
    );
    async fn answer(
        conn: &mut Http1Conn,
        review: &mut serde_json::Value,
        ns: &str,
        path: &str,
    ) -> serde_json::Value {
        review["request"]["namespace"] = ns.into();
        review["request"]["object"]["metadata"]["namespace"] = ns.into();
        let body = serde_json::to_vec(review).unwrap();
        conn.post(path, &body).await.unwrap().json()["response"].clone()
    }
    let served_ns = answer(&mut conn, &mut bad, "team-a", "/validate").await;
    assert_eq!(served_ns["allowed"], false, "{served_ns}");
    let other = answer(&mut conn, &mut bad, "team-b", "/validate").await;
    assert_eq!(other["allowed"], true, "{other}");
    let warning = other["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("namespace team-b is not served by this dittofs-operator installation (namespaces team-a, team-c)"),
        "{warning}"
    );
    let mutated = answer(&mut conn, &mut bad, "team-b", "/mutate").await;
    assert_eq!(mutated["allowed"], true, "{mutated}");
    assert!(
        mutated["patch"].is_null(),
        "no defaults written outside the scope: {mutated}"
    );
    let mutated = answer(&mut conn, &mut bad, "team-c", "/mutate").await;
    assert!(
        mutated["patch"].is_string(),
        "defaults written in the scope: {mutated}"
    );
}

#[test]
fn watch_namespaces_refuses_what_is_not_a_namespace_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_dittofs-operator"))
        .args([
            "webhook",
            "--self-signed",
            "--offline",
            "--watch-namespaces",
            "team-a,Team_B",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--watch-namespaces")
            && stderr.contains("\"Team_B\" is not a namespace name"),
        "{stderr}"
    );
}

fn body_for_validate() -> serde_json::Value {
    review(
        "uid-during-shutdown",
        "CREATE",
        Some(ditto_server(
            serde_json::json!({"storage": {"metadataSize": "1Gi"}}),
        )),
        None,
    )
}

#[test]
fn a_certificate_source_is_required_and_self_signed_needs_ca_out() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dittofs-operator"))
            .arg("webhook")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let none = run(&["--offline"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--tls-cert-file"));
    let no_ca = run(&["--self-signed", "--offline"]);
    assert!(!no_ca.status.success());
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("--ca-out"));
    let half = run(&["--tls-cert-file", "/tmp/x.crt", "--offline"]);
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key-file"));
}
