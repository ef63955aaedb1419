//! The admission webhook over a real TLS socket, with a rustls client and a fake
//! cluster. No cluster needed.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dittofs_operator::probes::Readiness;
use dittofs_operator::validation::{ClusterLookup, Lookup, Offline, SecretFacts};
use dittofs_operator::webhook::metrics::{Endpoint, Outcome};
use dittofs_operator::webhook::{Limits, SelfSigned, ServerArgs, Webhook, WebhookMetrics};
use serde_json::{Value, json};
use support::{Http1Conn, HttpResponse, ditto_server, http1_config, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Cluster facts: StorageClasses `standard` and `fast` exist, `unknowable` cannot be
/// checked, `slow` answers after 30 s; every other class is absent.
#[derive(Clone, Copy, Default)]
struct FakeCluster;

const UNKNOWN_REASON: &str = "fake cluster: the StorageClass cache has not synced";

impl ClusterLookup for FakeCluster {
    async fn storage_class(&self, name: &str) -> Lookup<()> {
        match name {
            "standard" | "fast" => Lookup::Found(()),
            "unknowable" => Lookup::Unknown(UNKNOWN_REASON.to_string()),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Lookup::Found(())
            }
            _ => Lookup::NotFound,
        }
    }
    async fn secret(&self, _namespace: &str, name: &str) -> Lookup<SecretFacts> {
        match name {
            "s3-credentials" => Lookup::Found(SecretFacts {
                value_lengths: ["accessKeyId", "secretAccessKey", "endpoint"]
                    .map(|k| (k.to_string(), 16))
                    .into(),
                secret_type: Some("Opaque".into()),
            }),
            _ => Lookup::NotFound,
        }
    }
    async fn percona_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
    async fn service_monitor_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
}

struct TestServer {
    addr: SocketAddr,
    ca_pem: String,
    shutdown: CancellationToken,
    metrics: WebhookMetrics,
    readiness: Readiness,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn args(dir: &Path) -> ServerArgs {
    ServerArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        probe_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert_file: None,
        tls_key_file: None,
        self_signed: true,
        ca_out: Some(dir.join("ca.pem")),
        tls_reload_interval: Duration::from_millis(100),
        shutdown_delay: Duration::ZERO,
    }
}

async fn start_with(args: ServerArgs, dir: tempfile::TempDir) -> TestServer {
    start_with_lookup(args, dir, Arc::new(FakeCluster)).await
}

async fn start_with_lookup<L: ClusterLookup + 'static>(
    args: ServerArgs,
    dir: tempfile::TempDir,
    lookup: Arc<L>,
) -> TestServer {
    start_full(args, dir, lookup, Limits::default()).await
}

/// A server with other limits than the defaults (short timeouts, a small cap).
async fn start_limited(limits: Limits) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    start_full(args(dir.path()), dir, Arc::new(FakeCluster), limits).await
}

async fn start_full<L: ClusterLookup + 'static>(
    args: ServerArgs,
    dir: tempfile::TempDir,
    lookup: Arc<L>,
    limits: Limits,
) -> TestServer {
    support::install_provider();
    let readiness = Readiness::new();
    let metrics = WebhookMetrics::unregistered();
    let webhook = Webhook::bind_with_limits(
        &args,
        Default::default(),
        lookup,
        &readiness,
        metrics.clone(),
        limits,
    )
    .await
    .unwrap();
    let addr = webhook.local_addr().unwrap();
    let ca_pem = match &args.ca_out {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => String::new(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(webhook.run(shutdown.clone()));
    TestServer {
        addr,
        ca_pem,
        shutdown,
        metrics,
        readiness,
        task,
        _dir: dir,
    }
}

async fn start() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    start_with(args(dir.path()), dir).await
}

/// A server with no cluster, as `webhook --offline` runs (the benchmark's setup).
async fn start_offline() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    start_with_lookup(args(dir.path()), dir, Arc::new(Offline)).await
}

/// The benchmark payload: a label-only UPDATE of a fully defaulted DittoServer.
fn shared_payload() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/admission-review-update.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl TestServer {
    async fn conn(&self) -> Http1Conn {
        Http1Conn::open(self.addr, http1_config(&self.ca_pem))
            .await
            .unwrap()
    }

    async fn post_json(&self, path: &str, body: &Value) -> HttpResponse {
        self.conn()
            .await
            .post(path, &serde_json::to_vec(body).unwrap())
            .await
            .unwrap()
    }

    /// POST a review and return its `response`, checking the envelope.
    async fn admit(&self, path: &str, body: &Value) -> Value {
        let res = self.post_json(path, body).await;
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.header("content-type"), Some("application/json"));
        let review = res.json();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        review["response"].clone()
    }
}

fn minimal_spec() -> Value {
    json!({"storage": {"metadataSize": "1Gi", "storageClassName": "standard"}})
}

fn decoded_patch(response: &Value) -> Vec<Value> {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            response["patch"]
                .as_str()
                .expect("patch is a base64 string"),
        )
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_valid_object_is_allowed_with_its_uid() {
    let server = start().await;
    let body = review(
        "uid-allowed",
        "CREATE",
        Some(ditto_server(minimal_spec())),
        None,
    );
    let response = server.admit("/validate", &body).await;
    assert_eq!(response["uid"], "uid-allowed");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
    assert_eq!(
        server
            .metrics
            .request_count(Endpoint::Validate, Outcome::Allowed, 200),
        1
    );
}

#[tokio::test]
async fn an_invalid_object_is_denied_with_the_field_and_message() {
    let server = start().await;
    let spec = json!({"storage": {"metadataSize": "1Gi", "storageClassName": "missing-class"}});
    let body = review("uid-denied", "CREATE", Some(ditto_server(spec)), None);
    let response = server.admit("/validate", &body).await;
    assert_eq!(response["uid"], "uid-denied");
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("storageClassName") && message.contains("missing-class"),
        "{message}"
    );
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(
        server
            .metrics
            .request_count(Endpoint::Validate, Outcome::Denied, 200),
        1
    );
}

#[tokio::test]
async fn a_check_that_cannot_run_becomes_a_warning() {
    let server = start().await;
    let spec = json!({"storage": {"metadataSize": "1Gi", "storageClassName": "unknowable"}});
    let body = review("uid-warned", "CREATE", Some(ditto_server(spec)), None);
    let response = server.admit("/validate", &body).await;
    assert_eq!(response["uid"], "uid-warned");
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("storageClassName")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_spec_that_does_not_parse_is_denied_naming_the_field() {
    let server = start().await;
    let spec = json!({"storage": {"metadataSize": "1Gi"}, "nfsPort": "two thousand"});
    for path in ["/validate", "/mutate"] {
        let body = review(
            "uid-unparsable",
            "CREATE",
            Some(ditto_server(spec.clone())),
            None,
        );
        let response = server.admit(path, &body).await;
        assert_eq!(response["uid"], "uid-unparsable");
        assert_eq!(response["allowed"], false, "{path}: {response}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(message.starts_with("spec.nfsPort: "), "{path}: {message}");
    }
}

#[tokio::test]
async fn mutate_returns_the_defaulting_patch_and_nothing_once_defaulted() {
    let server = start().await;
    let mut object = ditto_server(json!({"storage": {"metadataSize": "1Gi"}, "replicas": 0}));
    let body = review("uid-mutate", "CREATE", Some(object.clone()), None);
    let response = server.admit("/mutate", &body).await;
    assert_eq!(response["uid"], "uid-mutate");
    assert_eq!(response["allowed"], true);
    let ops = decoded_patch(&response);
    assert!(
        ops.iter()
            .all(|op| op["op"] == "add" && op["path"].as_str().unwrap().starts_with("/spec/")),
        "{ops:?}"
    );
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
    json_patch::patch(&mut object, &patch).unwrap();
    assert_eq!(
        object["spec"]["image"],
        dittofs_operator::defaults::DEFAULT_IMAGE
    );
    assert_eq!(object["spec"]["replicas"], 0, "the user's value is kept");
    assert_eq!(object["spec"]["nfsPort"], 2049);

    let again = review("uid-mutate-2", "UPDATE", Some(object.clone()), Some(object));
    let response = server.admit("/mutate", &again).await;
    assert_eq!(response["uid"], "uid-mutate-2");
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
    assert!(response.get("patchType").is_none(), "{response}");
}

#[tokio::test]
async fn the_uid_is_echoed_on_every_path() {
    let server = start().await;
    let valid = ditto_server(minimal_spec());
    let mut other_kind = review("uid-pod", "CREATE", Some(json!({"metadata": {}})), None);
    other_kind["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    let mut status_update = review(
        "uid-status",
        "UPDATE",
        Some(valid.clone()),
        Some(valid.clone()),
    );
    status_update["request"]["subResource"] = json!("status");
    let mut dry_run = review("uid-dry-run", "CREATE", Some(valid.clone()), None);
    dry_run["request"]["dryRun"] = json!(true);
    let cases = [
        review("uid-create", "CREATE", Some(valid.clone()), None),
        review(
            "uid-update",
            "UPDATE",
            Some(valid.clone()),
            Some(valid.clone()),
        ),
        review("uid-delete", "DELETE", None, Some(valid.clone())),
        review("uid-connect", "CONNECT", None, None),
        review("uid-no-object", "CREATE", None, None),
        review(
            "uid-no-spec",
            "CREATE",
            Some(json!({"metadata": {"name": "x"}})),
            None,
        ),
        other_kind,
        status_update,
        dry_run,
    ];
    for path in ["/validate", "/mutate"] {
        for case in &cases {
            let uid = case["request"]["uid"].as_str().unwrap();
            let response = server.admit(path, case).await;
            assert_eq!(response["uid"], uid, "{path} {uid}: {response}");
            let allowed = response["allowed"].as_bool().unwrap();
            let expect_allowed = !matches!(uid, "uid-no-object" | "uid-no-spec");
            assert_eq!(allowed, expect_allowed, "{path} {uid}: {response}");
        }
    }
}

#[tokio::test]
async fn bodies_that_are_not_admission_reviews_get_http_400_with_a_json_error() {
    let server = start().await;
    let mut conn = server.conn().await;
    for body in [
        &b"{not json"[..],
        br#"{"apiVersion":"v1","kind":"Pod"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#,
    ] {
        let res = conn.post("/validate", body).await.unwrap();
        assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(body));
        let error = res.json()["error"].as_str().unwrap().to_string();
        assert!(!error.is_empty());
    }
    assert_eq!(
        server
            .metrics
            .request_count(Endpoint::Validate, Outcome::Error, 400),
        4
    );
}

#[tokio::test]
async fn an_oversized_body_gets_413_with_a_json_error() {
    let server = start().await;
    let mut object = ditto_server(minimal_spec());
    object["metadata"]["annotations"] = json!({"padding": "x".repeat(4 * 1024 * 1024)});
    let body = serde_json::to_vec(&review("uid-big", "CREATE", Some(object), None)).unwrap();
    let res = server
        .conn()
        .await
        .post_early_answer("/validate", body)
        .await
        .unwrap();
    assert_eq!(res.status, 413);
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    // Just under the limit is accepted.
    let mut object = ditto_server(minimal_spec());
    object["metadata"]["annotations"] = json!({"padding": "x".repeat(2 * 1024 * 1024)});
    let response = server
        .admit(
            "/validate",
            &review("uid-large", "CREATE", Some(object), None),
        )
        .await;
    assert_eq!(response["uid"], "uid-large");
}

#[tokio::test]
async fn other_methods_get_405_and_other_paths_404() {
    let server = start().await;
    let mut conn = server.conn().await;
    for method in ["GET", "PUT", "DELETE"] {
        let res = conn.send(method, "/validate", b"").await.unwrap();
        assert_eq!(res.status, 405, "{method}");
        assert_eq!(res.header("allow"), Some("POST"));
        assert!(res.json()["error"].is_string());
    }
    let res = conn.post("/admit", b"{}").await.unwrap();
    assert_eq!(res.status, 404);
    assert!(res.json()["error"].is_string());
}

#[tokio::test]
async fn the_api_server_timeout_bounds_the_answer() {
    let server = start().await;
    let spec = json!({"storage": {"metadataSize": "1Gi", "storageClassName": "slow"}});
    let body = review("uid-slow", "CREATE", Some(ditto_server(spec)), None);
    let started = Instant::now();
    let res = server
        .conn()
        .await
        .post("/validate?timeout=2s", &serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(res.status, 200);
    let response = &res.json()["response"];
    assert_eq!(response["uid"], "uid-slow");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 504);
}

#[tokio::test]
async fn the_documented_example_review_works() {
    let server = start().await;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/admission-review-create.json");
    let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let uid = body["request"]["uid"].clone();
    let response = server.admit("/mutate", &body).await;
    assert_eq!(response["uid"], uid);
    assert_eq!(response["allowed"], true);
    assert!(!decoded_patch(&response).is_empty());
    let response = server.admit("/validate", &body).await;
    assert_eq!(response["uid"], uid);
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn tls_1_1_is_refused_and_1_2_and_1_3_are_served() {
    let server = start().await;
    // A TLS 1.1 ClientHello (no supported_versions extension).
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[7u8; 32]);
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // cipher suites
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut reply = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    // rustls answers an offer with no common version with a fatal alert
    // (handshake_failure or protocol_version), never a ServerHello.
    assert_eq!(
        reply[0], 0x15,
        "an alert record, not a ServerHello: {reply:?}"
    );
    assert_eq!(reply[5], 2, "fatal: {reply:?}");
    assert!(
        matches!(reply[6], 40 | 70),
        "handshake_failure or protocol_version: {reply:?}"
    );

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = support::client_config(&[&server.ca_pem], &[version], &[b"http/1.1"]);
        let conn = Http1Conn::open(server.addr, config).await.unwrap();
        assert_eq!(
            conn.tls().get_ref().1.protocol_version(),
            Some(version.version)
        );
    }
}

#[tokio::test]
async fn alpn_negotiates_h2_when_offered_and_serves_it() {
    let server = start().await;
    let config = support::client_config(
        &[&server.ca_pem],
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
    );
    let tls = support::connect(server.addr, config).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let body = serde_json::to_vec(&review(
        "uid-h2",
        "CREATE",
        Some(ditto_server(minimal_spec())),
        None,
    ))
    .unwrap();
    let request = http::Request::post("https://localhost/validate")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let res = sender.send_request(request).await.unwrap();
    assert_eq!(res.status(), 200);
    use http_body_util::BodyExt;
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(review["response"]["uid"], "uid-h2");

    let http1 = Http1Conn::open(server.addr, http1_config(&server.ca_pem))
        .await
        .unwrap();
    assert_eq!(
        http1.tls().get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..])
    );
}

fn served_leaf(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn leaf_der(pair: &SelfSigned) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pair.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn rotated_certificate_files_are_served_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let names = ["localhost", "127.0.0.1"];
    let first = SelfSigned::generate(&names).unwrap();
    let second = SelfSigned::generate(&names).unwrap();
    let third = SelfSigned::generate(&names).unwrap();

    let mut args = args(dir.path());
    args.self_signed = false;
    args.ca_out = None;
    args.tls_cert_file = Some(cert.clone());
    args.tls_key_file = Some(key.clone());
    // No files yet: the server starts, refuses handshakes and is not ready.
    let server = start_with(args, dir).await;
    assert!(!server.readiness.is_ready());
    let trust_all = support::client_config(
        &[&first.ca_pem, &second.ca_pem, &third.ca_pem],
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    );
    assert!(
        support::connect(server.addr, trust_all.clone())
            .await
            .is_err()
    );

    let wait_for = |want: Vec<u8>| {
        let config = trust_all.clone();
        let addr = server.addr;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(tls) = support::connect(addr, config.clone()).await
                    && served_leaf(&tls) == want
                {
                    return tls;
                }
                assert!(Instant::now() < deadline, "certificate not reloaded");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    std::fs::write(&cert, &first.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let old_conn = wait_for(leaf_der(&first)).await;
    assert!(server.readiness.is_ready());

    std::fs::write(&cert, &second.cert_pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    wait_for(leaf_der(&second)).await;

    // An established connection keeps working across the rotation.
    let mut old = Http1Conn::open(server.addr, trust_all.clone())
        .await
        .unwrap();
    drop(old_conn);
    let body = serde_json::to_vec(&review(
        "uid-rotation",
        "CREATE",
        Some(ditto_server(minimal_spec())),
        None,
    ))
    .unwrap();
    std::fs::write(&cert, &third.cert_pem[..third.cert_pem.len() / 2]).unwrap();
    std::fs::write(&key, &third.key_pem).unwrap();
    // Several reload intervals with a half-written certificate: still the second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tls = support::connect(server.addr, trust_all.clone())
        .await
        .unwrap();
    assert_eq!(served_leaf(&tls), leaf_der(&second));
    assert_eq!(old.post("/validate", &body).await.unwrap().status, 200);

    std::fs::write(&cert, &third.cert_pem).unwrap();
    wait_for(leaf_der(&third)).await;
    assert_eq!(old.post("/validate", &body).await.unwrap().status, 200);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_then_stops_accepting() {
    let server = start().await;
    let mut conn = server.conn().await;
    let spec = json!({"storage": {"metadataSize": "1Gi", "storageClassName": "slow"}});
    let body = serde_json::to_vec(&review(
        "uid-drain",
        "CREATE",
        Some(ditto_server(spec)),
        None,
    ))
    .unwrap();
    let in_flight = tokio::spawn(async move { conn.post("/validate?timeout=3s", &body).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.shutdown.cancel();
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res.status, 200, "the in-flight request was answered");
    assert_eq!(res.json()["response"]["uid"], "uid-drain");
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "no longer listening"
    );
}

/// The warnings `--offline` gives the benchmark object, in order: the rules' own
/// warnings first, then each cluster check that could not run.
const SHARED_PAYLOAD_WARNINGS: [&str; 6] = [
    "spec.s3: is deprecated and not read: declare the bucket as a remote block store instead, `remoteBlockStores: [{name: s3, type: s3, s3: {bucket: dittofs-acceptance, region: eu-west-1, credentialsSecretRef: {name: full-s3, accessKeyIdKey: accessKeyId, secretAccessKeyKey: secretAccessKey}}}]` (the endpoint from key endpoint of that Secret goes in s3.endpoint), name it in a share's remoteBlockStore, then remove spec.s3 (docs/stores.md)",
    "spec.cache.path: has no effect on current DittoFS releases and can be removed",
    "spec.cache.size: has no effect on current DittoFS releases and can be removed",
    "spec.storage.storageClassName: StorageClass \"fast\" not checked (no cluster)",
    "spec.identity.jwt.secretRef: Secret prod/full-jwt not checked (no cluster)",
    "spec.identity.admin.passwordSecretRef: Secret prod/full-admin not checked (no cluster)",
];

#[tokio::test]
async fn the_shared_benchmark_payload_gets_its_exact_answer() {
    let server = start_offline().await;
    // A label-only edit: allowed at once, nothing judged, so no warnings.
    let res = server.post_json("/validate", &shared_payload()).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "v-1", "allowed": true}
        })
    );
    // The same object created: judged, with every warning in order.
    let mut create = shared_payload();
    create["request"]["uid"] = json!("v-create");
    create["request"]["operation"] = json!("CREATE");
    create["request"]["oldObject"] = Value::Null;
    let res = server.post_json("/validate", &create).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "v-create", "allowed": true, "warnings": SHARED_PAYLOAD_WARNINGS}
        })
    );
}

#[tokio::test]
async fn the_spec_changed_benchmark_payload_is_judged() {
    let server = start_offline().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/data/admission-review-update-spec-changed.json");
    let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let response = server.admit("/validate", &body).await;
    assert_eq!(response["uid"], "v-2");
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].as_array().expect("judged: warnings");
    // Only spec.image changed: the field warnings, and no lookup of unchanged references.
    assert_eq!(warnings[..], SHARED_PAYLOAD_WARNINGS[..3], "{warnings:?}");
}

/// An UPDATE of `old` to `new`, with a label added.
fn label_edit(uid: &str, spec: Value) -> Value {
    let old = ditto_server(spec);
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"team": "storage"});
    review(uid, "UPDATE", Some(new), Some(old))
}

#[tokio::test]
async fn an_update_that_leaves_the_spec_unchanged_is_never_refused() {
    let server = start().await;
    // The StorageClass was deleted after creation: the spec would be refused now.
    let refused_now =
        json!({"storage": {"metadataSize": "1Gi", "storageClassName": "deleted-class"}});
    let create = review(
        "uid-create",
        "CREATE",
        Some(ditto_server(refused_now.clone())),
        None,
    );
    assert_eq!(server.admit("/validate", &create).await["allowed"], false);
    // A spec that no longer parses at all (written under another schema).
    let unparseable = json!({"storage": {"metadataSize": "1Gi"}, "nfsPort": "two thousand"});
    for (uid, spec) in [
        ("uid-labels", refused_now),
        ("uid-unparseable", unparseable),
    ] {
        for path in ["/validate", "/mutate"] {
            let response = server.admit(path, &label_edit(uid, spec.clone())).await;
            assert_eq!(response["uid"], uid);
            assert_eq!(response["allowed"], true, "{path} {uid}: {response}");
            assert!(response.get("warnings").is_none(), "{path}: {response}");
            assert!(
                response.get("patch").is_none(),
                "{path}: no defaults added: {response}"
            );
        }
    }
    // Written differently (a field this version does not know), parsed the same.
    let old = ditto_server(
        json!({"storage": {"metadataSize": "1Gi", "storageClassName": "deleted-class"}}),
    );
    let new = ditto_server(
        json!({"storage": {"metadataSize": "1Gi", "storageClassName": "deleted-class"}, "unknownField": 1}),
    );
    let rewritten = review("uid-rewritten", "UPDATE", Some(new), Some(old));
    for path in ["/validate", "/mutate"] {
        let response = server.admit(path, &rewritten).await;
        assert_eq!(response["allowed"], true, "{path}: {response}");
        assert!(response.get("patch").is_none(), "{path}: {response}");
    }
    // A real spec change is still judged.
    let old = ditto_server(minimal_spec());
    let new = ditto_server(
        json!({"storage": {"metadataSize": "1Gi", "storageClassName": "deleted-class"}}),
    );
    let changed = review("uid-changed", "UPDATE", Some(new), Some(old));
    assert_eq!(server.admit("/validate", &changed).await["allowed"], false);
}

#[tokio::test]
async fn an_update_of_an_object_being_deleted_is_never_refused() {
    let server = start().await;
    let deleting = |spec: Value| {
        let mut object = ditto_server(spec);
        object["metadata"]["deletionTimestamp"] = json!("2026-11-22T10:00:00Z");
        object["metadata"]["finalizers"] = json!([]);
        object
    };
    let old = ditto_server(minimal_spec());
    // Invalid by the rules (SMB on the NFS port), by a cluster fact (missing class),
    // and not parseable: the finalizer-removal UPDATE goes through regardless.
    for (uid, spec) in [
        (
            "uid-invalid",
            json!({"storage": {"metadataSize": "1Gi"}, "smb": {"enabled": true, "port": 2049}}),
        ),
        (
            "uid-missing-class",
            json!({"storage": {"metadataSize": "1Gi", "storageClassName": "deleted-class"}}),
        ),
        ("uid-unparseable", json!({"storage": {"metadataSize": 5}})),
    ] {
        let body = review(uid, "UPDATE", Some(deleting(spec)), Some(old.clone()));
        for path in ["/validate", "/mutate"] {
            let response = server.admit(path, &body).await;
            assert_eq!(response["uid"], uid);
            assert_eq!(response["allowed"], true, "{path} {uid}: {response}");
            assert!(response.get("patch").is_none(), "{path}: {response}");
            assert!(response.get("warnings").is_none(), "{path}: {response}");
        }
    }
    // A CREATE is judged whatever its metadata says.
    let create = review(
        "uid-create",
        "CREATE",
        Some(deleting(
            json!({"storage": {"metadataSize": "1Gi", "storageClassName": "deleted-class"}}),
        )),
        None,
    );
    assert_eq!(server.admit("/validate", &create).await["allowed"], false);
}

/// Wait until the server closes `tls` (EOF or reset), failing after `within`.
async fn closed_within(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    within: Duration,
) {
    let mut buf = [0u8; 1024];
    let read_until_closed = async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_until_closed)
        .await
        .expect("the server closed the connection");
}

fn valid_review_bytes(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&review(
        uid,
        "CREATE",
        Some(ditto_server(minimal_spec())),
        None,
    ))
    .unwrap()
}

#[tokio::test]
async fn a_slow_body_is_cut_off_by_the_deadline() {
    let server = start_limited(Limits {
        body_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut tls = support::connect(server.addr, http1_config(&server.ca_pem))
        .await
        .unwrap();
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut reply))
        .await
        .expect("closed after the answer");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert!(reply.contains("did not arrive within"), "{reply}");
}

#[tokio::test]
async fn the_largest_real_review_fits_the_default_limit() {
    // object and oldObject just under the API server's 1.5 MiB (1,572,864 bytes)
    // object limit each (a large annotation), plus the envelope: answered, not
    // refused with 413.
    let server = start().await;
    let big = |spec: Value| {
        let mut ds = ditto_server(spec);
        ds["metadata"]["annotations"] = json!({"example.com/blob": "x".repeat(1_571_000)});
        ds
    };
    let body = serde_json::to_vec(&review(
        "uid-large",
        "UPDATE",
        Some(big(minimal_spec())),
        Some(big(minimal_spec())),
    ))
    .unwrap();
    assert!(body.len() > 3_140_000, "{}", body.len());
    let mut conn = server.conn().await;
    let response = conn.post("/validate", &body).await.unwrap();
    assert_eq!(response.status, 200);
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(answer["response"]["uid"], "uid-large");
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test]
async fn too_large_bodies_get_413_announced_or_chunked() {
    let limit = 64 * 1024;
    let server = start_limited(Limits {
        max_body_bytes: limit,
        ..Limits::default()
    })
    .await;
    // Announced, and written whole before the client reads (4 MiB): the answer
    // survives because the server reads the rest before closing.
    let body = vec![b' '; 4 * 1024 * 1024];
    let mut tls = support::connect(server.addr, http1_config(&server.ca_pem))
        .await
        .unwrap();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut reply))
        .await
        .expect("answered and closed");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains(&format!("larger than {limit} bytes")),
        "{reply}"
    );

    // Chunked: refused once the limit is crossed.
    let mut tls = support::connect(server.addr, http1_config(&server.ca_pem))
        .await
        .unwrap();
    tls.write_all(
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
    for _ in 0..5 {
        tls.write_all(chunk.as_bytes()).await.unwrap();
    }
    tls.write_all(b"0\r\n\r\n").await.unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut reply))
        .await
        .expect("answered and closed");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    let json_start = reply.find("{\"error\"").expect("a JSON error body");
    assert!(reply[json_start..].contains("larger than"), "{reply}");

    // Just under the limit is served.
    let mut object = ditto_server(minimal_spec());
    object["metadata"]["annotations"] = json!({"padding": "x".repeat(limit - 2048)});
    let response = server
        .admit(
            "/validate",
            &review("uid-under", "CREATE", Some(object), None),
        )
        .await;
    assert_eq!(response["uid"], "uid-under");
}

#[tokio::test]
async fn the_connection_cap_holds_and_makes_room_for_new_clients() {
    let server = start_limited(Limits {
        max_connections: 3,
        ..Limits::default()
    })
    .await;
    let config = http1_config(&server.ca_pem);
    // A client that completed a review (as the API server does).
    let mut proven = server.conn().await;
    assert_eq!(
        proven
            .post("/validate", &valid_review_bytes("uid-1"))
            .await
            .unwrap()
            .status,
        200
    );
    // Two that connect and send nothing.
    let mut silent_a = support::connect(server.addr, config.clone()).await.unwrap();
    let mut silent_b = support::connect(server.addr, config.clone()).await.unwrap();
    // The cap (3) is reached: a newcomer takes the place of the oldest silent one.
    let mut second = Http1Conn::open(server.addr, config.clone()).await.unwrap();
    closed_within(&mut silent_a, Duration::from_secs(5)).await;
    assert_eq!(
        second
            .post("/validate", &valid_review_bytes("uid-2"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        proven
            .post("/validate", &valid_review_bytes("uid-3"))
            .await
            .unwrap()
            .status,
        200
    );
    let mut third = Http1Conn::open(server.addr, config.clone()).await.unwrap();
    closed_within(&mut silent_b, Duration::from_secs(5)).await;
    assert_eq!(
        third
            .post("/validate", &valid_review_bytes("uid-4"))
            .await
            .unwrap()
            .status,
        200
    );
    // All three have answered a review: the one idle the longest (`second`) makes
    // room, the others keep working.
    let mut fourth = Http1Conn::open(server.addr, config.clone()).await.unwrap();
    assert_eq!(
        fourth
            .post("/validate", &valid_review_bytes("uid-5"))
            .await
            .unwrap()
            .status,
        200
    );
    assert!(
        second
            .post("/validate", &valid_review_bytes("uid-6"))
            .await
            .is_err()
    );
    assert_eq!(
        proven
            .post("/validate", &valid_review_bytes("uid-7"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        third
            .post("/validate", &valid_review_bytes("uid-8"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn failing_requests_do_not_keep_an_unproven_connection_open() {
    let server = start_limited(Limits {
        first_request_timeout: Duration::from_millis(600),
        ..Limits::default()
    })
    .await;
    let mut conn = Http1Conn::open(server.addr, http1_config(&server.ca_pem))
        .await
        .unwrap();
    // A request that fails (400) every 200 ms: never a 2xx, so the connection is
    // closed once 600 ms have passed since accept, whatever it keeps sending.
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(5) {
        match conn.post("/validate", b"{}").await {
            Ok(response) => {
                assert_eq!(response.status, 400);
                answered += 1;
            }
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered >= 1, "the failing requests were answered");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed within the first-success deadline and the close grace, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = start_limited(Limits {
        first_request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    // Connected, never asked anything (HTTP/1.1).
    let mut silent = support::connect(server.addr, http1_config(&server.ca_pem))
        .await
        .unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;

    // HTTP/2 after a successful review: closed with GOAWAY once idle.
    let config = support::client_config(&[&server.ca_pem], &[&rustls::version::TLS13], &[b"h2"]);
    let tls = support::connect(server.addr, config).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::post("https://localhost/validate")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            valid_review_bytes("uid-h2"),
        )))
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .unwrap()
        .expect("closed gracefully (GOAWAY)");
}
