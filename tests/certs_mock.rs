//! The certificate bootstrap against a scripted API server (tower-test mock): every request
//! the bootstrap makes is checked in order, and a scenario fails on any unexpected or extra
//! request.

use std::time::Duration;

use base64::Engine as _;
use dittofs_operator::certs::bootstrap::{
    CA_CERT_KEY, CA_KEY_KEY, SECRET_TYPE, TLS_CERT_KEY, TLS_KEY_KEY, new_secret,
};
use dittofs_operator::certs::issue::{self, LeafProblem, Material};
use dittofs_operator::certs::{
    CertError, CertsArgs, PatchedWebhook, SecretOutcome, WebhookKind, bootstrap_once, maintain,
};
use http::{Request, Response};
use http_body_util::BodyExt;
use jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

const SECRETS: &str = "/api/v1/namespaces/ops/secrets";
const SECRET: &str = "/api/v1/namespaces/ops/secrets/hook-tls";
const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/hook-validating";
const MUTATING_AS_VALIDATING_NAME: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hook-validating";
const MUTATING: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hook-mutating";
const VALIDATING_AS_MUTATING_NAME: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/hook-mutating";

fn args(configs: &[&str]) -> CertsArgs {
    CertsArgs {
        namespace: "ops".into(),
        secret: "hook-tls".into(),
        service: "hook".into(),
        webhook_configs: configs.iter().map(|s| s.to_string()).collect(),
        cluster_domain: "cluster.local".into(),
    }
}

fn material_at(now: Timestamp) -> Material {
    issue::issue_all(&args(&[]).dns_names(), now).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

fn secret_json(m: &Material, resource_version: &str) -> Value {
    let mut v = serde_json::to_value(new_secret(&args(&[]), m)).unwrap();
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Secret");
    v["metadata"]["resourceVersion"] = json!(resource_version);
    v
}

fn status(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": reason, "code": code,
        "message": format!("scripted {reason}"),
    })
}

fn validating_config(bundles: &[(&str, Option<&[u8]>)]) -> Value {
    config("ValidatingWebhookConfiguration", "hook-validating", bundles)
}

fn config(kind: &str, name: &str, bundles: &[(&str, Option<&[u8]>)]) -> Value {
    let webhooks: Vec<Value> = bundles
        .iter()
        .map(|(hook, bundle)| {
            let mut client_config = json!({"url": "https://example.invalid/validate"});
            if let Some(b) = bundle {
                client_config["caBundle"] = json!(b64(b));
            }
            json!({
                "name": hook, "clientConfig": client_config,
                "sideEffects": "None", "admissionReviewVersions": ["v1"],
            })
        })
        .collect();
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name, "resourceVersion": "7"},
        "webhooks": webhooks,
    })
}

/// The scripted API server.
struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

struct Exchange {
    content_type: Option<String>,
    query: String,
    body: Value,
    send: SendResponse<Response<Body>>,
}

impl Exchange {
    fn reply(self, code: u16, body: Value) {
        let response = Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        self.send.send_response(response);
    }
}

impl ApiServer {
    async fn expect(&mut self, method: &str, path: &str) -> Exchange {
        let (request, send) =
            tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
                .unwrap_or_else(|| panic!("client went away before {method} {path}"));
        assert_eq!(
            (request.method().as_str(), request.uri().path()),
            (method, path),
            "unexpected request"
        );
        let content_type = request
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Exchange {
            content_type,
            query,
            body,
            send,
        }
    }

    /// The client made no further request (it must already be dropped).
    async fn expect_done(mut self) {
        let next = tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
            .await
            .expect("client still alive after the scenario");
        if let Some((request, _)) = next {
            panic!(
                "unexpected extra request {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}

fn mock_client() -> (kube::Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "ops"), ApiServer { handle })
}

#[tokio::test]
async fn absent_secret_is_created_and_every_stale_bundle_patched() {
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET)
            .await
            .reply(404, status(404, "NotFound"));
        let create = api.expect("POST", SECRETS).await;
        assert!(create.query.contains("fieldManager=dittofs-operator-certs"));
        let sent = create.body.clone();
        assert_eq!(sent["type"], SECRET_TYPE);
        assert_eq!(sent["metadata"]["name"], "hook-tls");
        assert_eq!(
            sent["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "dittofs-operator"
        );
        for key in [CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY] {
            assert!(sent["data"][key].is_string(), "{key} missing");
        }
        let ca = unb64(&sent["data"][CA_CERT_KEY]);
        let mut created = sent.clone();
        created["metadata"]["resourceVersion"] = json!("1");
        create.reply(201, created);

        // One webhook already right, one with an old bundle, one with none.
        api.expect("GET", VALIDATING).await.reply(
            200,
            validating_config(&[
                ("ok.example.com", Some(&ca)),
                ("old.example.com", Some(b"old")),
                ("none.example.com", None),
            ]),
        );
        let patch = api.expect("PATCH", VALIDATING).await;
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/json-patch+json")
        );
        assert_eq!(
            patch.body,
            json!([
                {"op": "test", "path": "/webhooks/1/name", "value": "old.example.com"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": b64(&ca)},
                {"op": "test", "path": "/webhooks/2/name", "value": "none.example.com"},
                {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": b64(&ca)},
            ])
        );
        patch.reply(200, validating_config(&[]));
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
        ca
    });

    let outcome = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap();
    let ca = server.await.unwrap();
    assert_eq!(outcome.secret, SecretOutcome::Created);
    assert_eq!(outcome.ca_bundle, ca);
    let patched: Vec<&str> = outcome.patched.iter().map(|p| p.webhook.as_str()).collect();
    assert_eq!(patched, ["old.example.com", "none.example.com"]);
    assert!(
        outcome
            .patched
            .iter()
            .all(|p| p.kind == WebhookKind::Validating && p.config == "hook-validating")
    );
}

#[tokio::test]
async fn present_secret_is_reused_and_matching_bundles_are_left_alone() {
    let m = material_at(Timestamp::now());
    let ca = m.ca_cert_pem.clone().into_bytes();
    let (client, mut api) = mock_client();
    let secret = secret_json(&m, "5");
    let ca_for_server = ca.clone();
    let server = tokio::spawn(async move {
        let ca = ca_for_server;
        api.expect("GET", SECRET).await.reply(200, secret);
        api.expect("GET", VALIDATING)
            .await
            .reply(200, validating_config(&[("v.example.com", Some(&ca))]));
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect("GET", VALIDATING_AS_MUTATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect("GET", MUTATING).await.reply(
            200,
            config(
                "MutatingWebhookConfiguration",
                "hook-mutating",
                &[("m.example.com", Some(&ca))],
            ),
        );
        // No PATCH, no PUT, nothing else.
        api.expect_done().await;
    });
    let outcome = bootstrap_once(client, &args(&["hook-validating", "hook-mutating"]))
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(outcome.secret, SecretOutcome::Unchanged);
    assert_eq!(outcome.ca_bundle, ca);
    assert!(outcome.patched.is_empty());
    assert!(!outcome.changed());
}

#[tokio::test]
async fn create_conflict_rereads_and_adopts_the_winners_ca() {
    let theirs = material_at(Timestamp::now());
    let their_ca = theirs.ca_cert_pem.clone().into_bytes();
    let (client, mut api) = mock_client();
    let their_secret = secret_json(&theirs, "9");
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET)
            .await
            .reply(404, status(404, "NotFound"));
        // Another run created it between our GET and our POST.
        api.expect("POST", SECRETS)
            .await
            .reply(409, status(409, "AlreadyExists"));
        api.expect("GET", SECRET).await.reply(200, their_secret);
        api.expect("GET", VALIDATING)
            .await
            .reply(200, validating_config(&[("v.example.com", None)]));
        let patch = api.expect("PATCH", VALIDATING).await;
        let value = patch.body[1]["value"].clone();
        patch.reply(200, validating_config(&[]));
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
        unb64(&value)
    });
    let outcome = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap();
    let patched_ca = server.await.unwrap();
    assert_eq!(outcome.secret, SecretOutcome::AdoptedConcurrent);
    assert_eq!(outcome.ca_bundle, their_ca);
    assert_eq!(patched_ca, their_ca, "caBundle must carry the winner's CA");
}

#[tokio::test]
async fn expiring_leaf_is_replaced_under_a_resource_version_and_a_conflict_rereads() {
    // Issued 300 days ago: less than a third of its year remains.
    let old = material_at(Timestamp::now() - SignedDuration::from_hours(24 * 300));
    let old_secret = secret_json(&old, "11");
    // What another replica wrote meanwhile: same CA, fresh leaf.
    let renewed_leaf = issue::issue_leaf(
        &old.ca_cert_pem,
        &old.ca_key_pem,
        &args(&[]).dns_names(),
        Timestamp::now(),
    )
    .unwrap();
    let renewed = Material {
        cert_pem: renewed_leaf.cert_pem,
        key_pem: renewed_leaf.key_pem,
        ..old.clone()
    };
    let renewed_secret = secret_json(&renewed, "12");
    let ca = old.ca_cert_pem.clone().into_bytes();
    let old_for_server = old.clone();
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        let old = old_for_server;
        api.expect("GET", SECRET)
            .await
            .reply(200, old_secret.clone());
        let put = api.expect("PUT", SECRET).await;
        let body = put.body.clone();
        assert_eq!(body["metadata"]["resourceVersion"], "11");
        assert_eq!(body["type"], SECRET_TYPE);
        assert_eq!(
            unb64(&body["data"][CA_CERT_KEY]),
            old.ca_cert_pem.as_bytes()
        );
        assert_eq!(unb64(&body["data"][CA_KEY_KEY]), old.ca_key_pem.as_bytes());
        assert_ne!(unb64(&body["data"][TLS_CERT_KEY]), old.cert_pem.as_bytes());
        assert_ne!(unb64(&body["data"][TLS_KEY_KEY]), old.key_pem.as_bytes());
        put.reply(409, status(409, "Conflict"));
        // Re-read: the other writer's leaf is fine, so nothing more is written.
        api.expect("GET", SECRET).await.reply(200, renewed_secret);
        api.expect("GET", VALIDATING).await.reply(
            200,
            validating_config(&[("v.example.com", Some(old.ca_cert_pem.as_bytes()))]),
        );
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
    });
    let outcome = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(outcome.secret, SecretOutcome::Unchanged);
    assert_eq!(outcome.ca_bundle, ca);
}

#[tokio::test]
async fn expiring_leaf_is_reissued_keeping_the_ca() {
    let old = material_at(Timestamp::now() - SignedDuration::from_hours(24 * 300));
    let old_secret = secret_json(&old, "11");
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET).await.reply(200, old_secret);
        let put = api.expect("PUT", SECRET).await;
        let body = put.body.clone();
        put.reply(200, body.clone());
        api.expect("GET", VALIDATING).await.reply(
            200,
            validating_config(&[("v.example.com", Some(&unb64(&body["data"][CA_CERT_KEY])))]),
        );
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
        body
    });
    let outcome = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap();
    let written = server.await.unwrap();
    assert!(matches!(
        outcome.secret,
        SecretOutcome::LeafReissued(LeafProblem::Expiring { .. })
    ));
    assert_eq!(outcome.ca_bundle, old.ca_cert_pem.as_bytes());
    // The written leaf is one the next pass keeps.
    let data = &written["data"];
    let (ca_cert, ca_key, cert, key) = (
        unb64(&data[CA_CERT_KEY]),
        unb64(&data[CA_KEY_KEY]),
        unb64(&data[TLS_CERT_KEY]),
        unb64(&data[TLS_KEY_KEY]),
    );
    let stored = issue::Stored {
        ca_cert: Some(&ca_cert),
        ca_key: Some(&ca_key),
        cert: Some(&cert),
        key: Some(&key),
    };
    assert_eq!(
        issue::decide(&stored, &args(&[]).dns_names(), Timestamp::now()),
        issue::Decision::Keep
    );
}

#[tokio::test]
async fn a_failed_test_op_rereads_the_configuration_and_patches_the_new_index() {
    let m = material_at(Timestamp::now());
    let ca = m.ca_cert_pem.clone().into_bytes();
    let secret = secret_json(&m, "3");
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET).await.reply(200, secret);
        api.expect("GET", VALIDATING)
            .await
            .reply(200, validating_config(&[("a", None), ("b", Some(b"x"))]));
        let first = api.expect("PATCH", VALIDATING).await;
        assert_eq!(first.body[0]["path"], "/webhooks/0/name");
        first.reply(422, status(422, "Invalid"));
        // Someone reordered the list; `a` is now at index 1 and `b` already fixed.
        api.expect("GET", VALIDATING)
            .await
            .reply(200, validating_config(&[("b", Some(&ca)), ("a", None)]));
        let second = api.expect("PATCH", VALIDATING).await;
        assert_eq!(
            second.body,
            json!([
                {"op": "test", "path": "/webhooks/1/name", "value": "a"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": b64(&ca)},
            ])
        );
        second.reply(200, validating_config(&[]));
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
    });
    let outcome = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(
        outcome.patched,
        [PatchedWebhook {
            kind: WebhookKind::Validating,
            config: "hook-validating".into(),
            webhook: "a".into(),
        }]
    );
}

#[tokio::test]
async fn a_configuration_found_as_neither_kind_is_an_error_naming_it() {
    let m = material_at(Timestamp::now());
    let secret = secret_json(&m, "3");
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET).await.reply(200, secret);
        api.expect("GET", VALIDATING)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
    });
    let err = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(matches!(&err, CertError::WebhookConfigNotFound { name } if name == "hook-validating"));
    assert!(err.to_string().contains("\"hook-validating\""), "{err}");
}

#[tokio::test]
async fn a_secret_of_another_type_is_an_error_and_is_not_touched() {
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET).await.reply(
            200,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "hook-tls", "namespace": "ops", "resourceVersion": "1"},
                "data": {"password": "aHVudGVyMg=="},
            }),
        );
        api.expect_done().await;
    });
    let err = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap_err();
    server.await.unwrap();
    let text = err.to_string();
    assert!(
        text.contains("ops/hook-tls") && text.contains("Opaque"),
        "{text}"
    );
}

#[tokio::test]
async fn maintain_retries_after_an_error_and_stops_on_shutdown() {
    let m = material_at(Timestamp::now());
    let ca = m.ca_cert_pem.clone().into_bytes();
    let secret = secret_json(&m, "3");
    let (client, mut api) = mock_client();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET)
            .await
            .reply(500, status(500, "InternalError"));
        // The retry comes after a 1 s backoff, well before the 30 s interval.
        let retry = tokio::time::Instant::now();
        api.expect("GET", SECRET).await.reply(200, secret);
        assert!(retry.elapsed() < Duration::from_secs(5));
        api.expect("GET", VALIDATING)
            .await
            .reply(200, validating_config(&[("v.example.com", None)]));
        let patch = api.expect("PATCH", VALIDATING).await;
        assert_eq!(unb64(&patch.body[1]["value"]), ca);
        patch.reply(200, validating_config(&[]));
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        stop_tx.send(()).unwrap();
        api.expect_done().await;
    });
    let run = maintain(
        client,
        args(&["hook-validating"]),
        Duration::from_secs(30),
        async {
            let _ = stop_rx.await;
        },
    );
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("maintain did not stop on shutdown")
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn maintain_rejects_invalid_arguments_without_calling_the_api() {
    let (client, api) = mock_client();
    let mut bad = args(&["hook-validating"]);
    bad.namespace = "Not_A_Namespace".into();
    let err = maintain(client, bad, Duration::from_secs(30), std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--namespace"), "{err}");
    api.expect_done().await;
}

#[tokio::test]
async fn a_secret_without_our_label_is_never_overwritten() {
    let old = material_at(Timestamp::now() - SignedDuration::from_hours(24 * 300));
    let mut foreign = secret_json(&old, "4");
    foreign["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "cert-manager"});
    let (client, mut api) = mock_client();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET).await.reply(200, foreign);
        // No PUT: the expiring leaf is reported, not replaced.
        api.expect_done().await;
    });
    let err = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(matches!(err, CertError::SecretNotOurs { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("ops/hook-tls") && text.contains("expires"),
        "{text}"
    );
}

#[tokio::test]
async fn a_valid_secret_without_our_label_is_used_as_is() {
    let m = material_at(Timestamp::now());
    let mut foreign = secret_json(&m, "4");
    foreign["metadata"]["labels"] = json!({});
    let ca = m.ca_cert_pem.clone().into_bytes();
    let (client, mut api) = mock_client();
    let ca_for_server = ca.clone();
    let server = tokio::spawn(async move {
        api.expect("GET", SECRET).await.reply(200, foreign);
        api.expect("GET", VALIDATING).await.reply(
            200,
            validating_config(&[("v.example.com", Some(&ca_for_server))]),
        );
        api.expect("GET", MUTATING_AS_VALIDATING_NAME)
            .await
            .reply(404, status(404, "NotFound"));
        api.expect_done().await;
    });
    let outcome = bootstrap_once(client, &args(&["hook-validating"]))
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(outcome.secret, SecretOutcome::Unchanged);
    assert_eq!(outcome.ca_bundle, ca);
}
