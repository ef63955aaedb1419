//! Property tests ("fuzzing" on stable Rust with proptest):
//! (a) the admission path, raw bytes → HTTP response: real reviews mutated at the
//!     byte and at the JSON level, truncated, or random JSON; never a panic, a
//!     uid-echoing AdmissionReview for every decodable review, bounded time;
//! (b) the validation core with structure-aware DittoServer specs: never a panic,
//!     bounded time;
//! (c) `/mutate`'s patch equals the original whole-object defaulting patch (kept
//!     here, verbatim, as the oracle) for every generated spec.
//!
//! Seeded and bounded so CI runs take seconds: `FUZZ_CASES` (default 256 per
//! property) and `FUZZ_SEED` (a number; default fixed) run it longer or elsewhere:
//! `FUZZ_CASES=200000 FUZZ_SEED=$RANDOM cargo test --release --test fuzz`.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use dittofs_operator::crd::{DittoServer, DittoServerSpec};
use dittofs_operator::validation::{Offline, validate};
use dittofs_operator::webhook::admission;
use dittofs_operator::webhook::{Limits, WebhookMetrics};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Each input must be answered within this time (debug build, loaded machine): a
/// liveness bound, not a benchmark.
const PER_INPUT: Duration = Duration::from_secs(2);

fn runner() -> TestRunner {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00d1_770f);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- generators

fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "x", null])),
    ]
}

fn port() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => prop_oneof![Just(445), Just(2049), Just(8080), Just(9090), Just(1445), Just(12049), Just(80), Just(0)]
            .prop_map(Value::from),
        20 => (-10i64..70_000).prop_map(Value::from),
        1 => junk(),
    ]
}

fn size() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => prop_oneof![Just("1Gi"), Just("10Gi"), Just("5Gi"), Just("512Mi"), Just("0Gi"), Just("2Ti")]
            .prop_map(Value::from),
        10 => "[0-9]{0,5}(Mi|Gi|Ti|GB|)".prop_map(Value::from),
        1 => junk(),
    ]
}

fn name() -> impl Strategy<Value = Value> {
    prop_oneof![
        50 => prop_oneof![Just("standard"), Just("fast"), Just("s3-credentials"), Just("jwt"), Just("")]
            .prop_map(Value::from),
        10 => "[a-z0-9.-]{0,70}".prop_map(Value::from),
        1 => junk(),
    ]
}

fn flag() -> impl Strategy<Value = Value> {
    prop_oneof![40 => any::<bool>().prop_map(Value::from), 1 => junk()]
}

fn duration() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => prop_oneof![Just("15m"), Just("168h"), Just("30s"), Just("0s"), Just("1h30m"), Just("-5m")]
            .prop_map(Value::from),
        10 => "[0-9]{0,4}(ns|us|ms|s|m|h|d|)".prop_map(Value::from),
        1 => junk(),
    ]
}

/// A JSON object from optional fields (an absent field is left out; a field may
/// also be an explicit null).
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| {
            prop_oneof![
                3 => Just(None),
                6 => value.prop_map(Some),
                1 => Just(Some(Value::Null)),
            ]
            .prop_map(move |v| v.map(|v| (key, v)))
        })
        .collect();
    fields
        .prop_map(|pairs| {
            Value::Object(
                pairs
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        })
        .boxed()
}

fn secret_key_ref() -> BoxedStrategy<Value> {
    object(vec![
        ("name", name().boxed()),
        ("key", name().boxed()),
        ("optional", flag().boxed()),
    ])
}

/// A DittoServer spec, shaped like the schema (every block, plausible and wrong
/// values, unknown fields, nulls).
fn spec() -> BoxedStrategy<Value> {
    let storage = object(vec![
        ("contentSize", size().boxed()),
        ("cacheSize", size().boxed()),
        ("controlPlaneSize", size().boxed()),
        ("storageClassName", name().boxed()),
    ]);
    let database = object(vec![
        (
            "type",
            prop_oneof![20 => Just(json!("sqlite")), 20 => Just(json!("postgres")), 1 => junk()]
                .boxed(),
        ),
        (
            "sqlite",
            object(vec![(
                "path",
                prop_oneof![
                    Just(json!("/data/controlplane/controlplane.db")),
                    Just(json!("/tmp/x.db")),
                    junk()
                ]
                .boxed(),
            )]),
        ),
        (
            "postgresSecretRef",
            object(vec![("name", name().boxed()), ("key", name().boxed())]),
        ),
    ]);
    let identity = object(vec![
        (
            "type",
            prop_oneof![20 => Just(json!("memory")), 1 => junk()].boxed(),
        ),
        (
            "jwt",
            object(vec![
                ("secretRef", secret_key_ref()),
                ("accessTokenDuration", duration().boxed()),
                ("refreshTokenDuration", duration().boxed()),
                ("issuer", name().boxed()),
            ]),
        ),
        (
            "admin",
            object(vec![
                ("username", name().boxed()),
                ("passwordSecretRef", secret_key_ref()),
            ]),
        ),
    ]);
    let smb = object(vec![
        ("enabled", flag().boxed()),
        ("port", port().boxed()),
        ("adapterPort", port().boxed()),
        ("maxConnections", port().boxed()),
        ("metricsLogInterval", duration().boxed()),
        (
            "timeouts",
            object(vec![
                ("read", duration().boxed()),
                ("idle", duration().boxed()),
            ]),
        ),
        (
            "credits",
            object(vec![
                (
                    "strategy",
                    prop_oneof![20 => Just(json!("fixed")), 20 => Just(json!("adaptive")), 1 => junk()].boxed(),
                ),
                ("minGrant", port().boxed()),
                ("maxGrant", port().boxed()),
            ]),
        ),
    ]);
    let s3 = object(vec![
        (
            "credentialsSecretRef",
            object(vec![
                ("secretName", name().boxed()),
                ("accessKeyIdKey", name().boxed()),
                ("endpointKey", name().boxed()),
            ]),
        ),
        ("region", name().boxed()),
        ("bucket", name().boxed()),
    ]);
    let percona = object(vec![
        ("enabled", flag().boxed()),
        ("deleteWithServer", flag().boxed()),
        ("replicas", port().boxed()),
        ("storageSize", size().boxed()),
        ("storageClassName", name().boxed()),
        ("databaseName", name().boxed()),
        (
            "backup",
            object(vec![
                ("enabled", flag().boxed()),
                (
                    "credentialsSecretRef",
                    object(vec![("name", name().boxed())]),
                ),
                ("bucket", name().boxed()),
                ("fullSchedule", name().boxed()),
                ("retentionDays", port().boxed()),
            ]),
        ),
    ]);
    let security_context = object(vec![
        ("privileged", flag().boxed()),
        ("runAsUser", port().boxed()),
        ("allowPrivilegeEscalation", flag().boxed()),
        (
            "capabilities",
            object(vec![(
                "add",
                prop_oneof![20 => Just(json!(["NET_ADMIN"])), 20 => Just(json!([])), 1 => junk()]
                    .boxed(),
            )]),
        ),
        (
            "seccompProfile",
            object(vec![(
                "type",
                prop_oneof![20 => Just(json!("RuntimeDefault")), 1 => junk()].boxed(),
            )]),
        ),
    ]);
    let pod_security_context = object(vec![
        ("fsGroup", port().boxed()),
        ("runAsNonRoot", flag().boxed()),
        (
            "sysctls",
            prop_oneof![20 => Just(json!([])), 1 => junk()].boxed(),
        ),
    ]);
    let resources = object(vec![
        (
            "limits",
            prop_oneof![20 => Just(json!({"memory": "1Gi", "cpu": "500m"})), 1 => junk()].boxed(),
        ),
        (
            "requests",
            prop_oneof![20 => Just(json!({"memory": "x"})), 1 => junk()].boxed(),
        ),
    ]);
    let top = object(vec![
        (
            "image",
            prop_oneof![Just(json!("marmos91c/dittofs:v0.29.0")), name()].boxed(),
        ),
        ("replicas", port().boxed()),
        ("database", database),
        (
            "cache",
            object(vec![("path", name().boxed()), ("size", size().boxed())]),
        ),
        (
            "metrics",
            object(vec![("enabled", flag().boxed()), ("port", port().boxed())]),
        ),
        (
            "controlPlane",
            object(vec![
                ("port", port().boxed()),
                ("servicePort", port().boxed()),
            ]),
        ),
        ("identity", identity),
        (
            "service",
            object(vec![
                (
                    "type",
                    prop_oneof![
                        Just(json!("ClusterIP")),
                        Just(json!("NodePort")),
                        Just(json!("LoadBalancer")),
                        junk()
                    ]
                    .boxed(),
                ),
                (
                    "annotations",
                    prop_oneof![20 => Just(json!({"a": "b"})), 1 => junk()].boxed(),
                ),
            ]),
        ),
        ("nfsPort", port().boxed()),
        ("nfsAdapterPort", port().boxed()),
        ("smb", smb),
        ("s3", s3),
        ("percona", percona),
        ("resources", resources),
        ("securityContext", security_context),
        ("podSecurityContext", pod_security_context),
        ("terminationGracePeriodSeconds", port().boxed()),
        ("futureField", junk().boxed()),
    ]);
    // `storage.metadataSize` is the one required field: nearly always present.
    let metadata_size = prop_oneof![19 => size().prop_map(Some), 1 => Just(None)];
    (top, storage, metadata_size)
        .prop_map(|(mut top, mut storage, metadata_size)| {
            if let (Value::Object(storage), Some(size)) = (&mut storage, metadata_size) {
                storage.insert("metadataSize".to_string(), size);
            }
            if let Value::Object(map) = &mut top {
                map.insert("storage".to_string(), storage);
            }
            top
        })
        .boxed()
}

// ---------------------------------------------------------------- (a) admission path

/// Real reviews to mutate.
fn seeds() -> Vec<Value> {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |path: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/{path}")).unwrap()).unwrap()
    };
    vec![
        read("benches/data/admission-review-update.json"),
        read("benches/data/admission-review-update-spec-changed.json"),
        read("docs/examples/admission-review-create.json"),
    ]
}

/// The value reached by following `path` (each step picks a member or an item),
/// stopping early at a leaf or an empty container.
fn at_path<'a>(mut at: &'a mut Value, path: &[usize]) -> &'a mut Value {
    for &step in path {
        let n = match &*at {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        };
        if n == 0 {
            break;
        }
        at = match at {
            Value::Object(map) => {
                let key = map.keys().nth(step % n).unwrap().clone();
                map.get_mut(&key).unwrap()
            }
            Value::Array(items) => &mut items[step % n],
            leaf => leaf,
        };
    }
    at
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at a random path by another value.
    Replace(Vec<usize>, Value),
    /// Replace the spec of object or oldObject by a generated one.
    Spec(bool, Value),
    /// Flip bytes of the serialized review.
    Flip(Vec<(usize, u8)>),
    /// Cut the serialized review short.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (prop::collection::vec(any::<usize>(), 1..6), junk())
            .prop_map(|(path, v)| Mutation::Replace(path, v)),
        4 => (any::<bool>(), spec()).prop_map(|(old, s)| Mutation::Spec(old, s)),
        2 => prop::collection::vec((any::<usize>(), any::<u8>()), 1..4).prop_map(Mutation::Flip),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut review: Value, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = None;
    for m in mutations {
        match m {
            Mutation::Replace(path, v) => *at_path(&mut review, path) = v.clone(),
            Mutation::Spec(old, s) => {
                let key = if *old { "oldObject" } else { "object" };
                if let Some(obj) = review
                    .get_mut("request")
                    .and_then(|r| r.get_mut(key))
                    .and_then(Value::as_object_mut)
                {
                    obj.insert("spec".to_string(), s.clone());
                }
            }
            Mutation::Flip(flips) => {
                let b = bytes.get_or_insert_with(|| serde_json::to_vec(&review).unwrap());
                for &(i, x) in flips {
                    let n = b.len();
                    b[i % n] ^= x;
                }
            }
            Mutation::Truncate(i) => {
                let b = bytes.get_or_insert_with(|| serde_json::to_vec(&review).unwrap());
                let n = b.len();
                b.truncate(i % n);
            }
        }
    }
    bytes.unwrap_or_else(|| serde_json::to_vec(&review).unwrap())
}

/// The uid a correct webhook must echo: the body is JSON, an AdmissionReview v1, and
/// its request carries a string uid.
fn decodable_uid(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return None;
    }
    v["request"]["uid"].as_str().map(str::to_string)
}

async fn post(router: &axum::Router, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

fn check_answer(input: &[u8], status: u16, answer: &[u8]) -> Result<(), TestCaseError> {
    let answer: Value = serde_json::from_slice(answer)
        .map_err(|e| TestCaseError::fail(format!("answer is not JSON: {e}")))?;
    match decodable_uid(input) {
        Some(uid) => {
            prop_assert_eq!(
                status,
                200,
                "a decodable review gets an AdmissionReview: {}",
                answer
            );
            prop_assert_eq!(&answer["kind"], "AdmissionReview");
            prop_assert_eq!(answer["response"]["uid"].as_str(), Some(uid.as_str()));
            prop_assert!(answer["response"]["allowed"].is_boolean());
        }
        None => {
            if status == 200 {
                // Our decoder may read a review the oracle above refuses (e.g. an
                // escape it accepts); then it must still be a well-formed answer.
                prop_assert_eq!(&answer["kind"], "AdmissionReview");
            } else {
                prop_assert_eq!(status, 400, "{}", answer);
                prop_assert!(answer["error"].is_string());
            }
        }
    }
    Ok(())
}

#[test]
fn admission_never_panics_and_echoes_every_readable_uid() {
    let rt = rt();
    let router = admission::router(
        Arc::new(Offline),
        WebhookMetrics::unregistered(),
        &Limits::default(),
        Default::default(),
    );
    let seeds = seeds();
    let strategy = (
        0..seeds.len(),
        prop::collection::vec(mutation(), 0..4),
        any::<bool>(),
    );
    let mut runner = runner();
    let slowest = Cell::new(Duration::ZERO);
    runner
        .run(&strategy, |(seed, mutations, mutate)| {
            let input = apply(seeds[seed].clone(), &mutations);
            let path = if mutate { "/mutate" } else { "/validate" };
            let started = Instant::now();
            let (status, answer) = rt.block_on(post(&router, path, input.clone()));
            let took = started.elapsed();
            slowest.set(slowest.get().max(took));
            prop_assert!(took < PER_INPUT, "took {took:?}");
            check_answer(&input, status, &answer)
        })
        .unwrap();
    // Random JSON documents, not shaped like a review at all.
    let random_json = prop::collection::vec(junk(), 0..4).prop_map(|items| {
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": items}))
            .unwrap()
    });
    runner
        .run(&random_json, |input| {
            let (status, answer) = rt.block_on(post(&router, "/validate", input.clone()));
            check_answer(&input, status, &answer)
        })
        .unwrap();
    eprintln!("slowest input: {:?}", slowest.get());
}

// ---------------------------------------------------------------- (b) validation core

#[test]
fn the_validation_core_never_panics_on_arbitrary_specs() {
    let rt = rt();
    let mut runner = runner();
    let (parsed, total) = (Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&(spec(), spec()), |(new, old)| {
            total.set(total.get() + 1);
            let object = |spec: &Value| -> Option<DittoServer> {
                let spec: DittoServerSpec = serde_json::from_value(spec.clone()).ok()?;
                let mut ds = DittoServer::new("fuzz", spec);
                ds.metadata.namespace = Some("default".into());
                Some(ds)
            };
            let Some(new) = object(&new) else {
                return Ok(());
            };
            parsed.set(parsed.get() + 1);
            let old = object(&old);
            let started = Instant::now();
            let report = rt.block_on(validate(&new, old.as_ref(), &Offline));
            prop_assert!(started.elapsed() < PER_INPUT);
            // Every finding names a spec field.
            for finding in report.errors.iter().chain(&report.warnings) {
                prop_assert!(finding.field.starts_with("spec"), "{finding}");
            }
            Ok(())
        })
        .unwrap();
    // The generator must reach the rules, not only the parser.
    let (parsed, total) = (parsed.get(), total.get());
    assert!(
        parsed * 10 >= total,
        "only {parsed} of {total} specs parsed"
    );
}

// ---------------------------------------------------------------- (c) patch equivalence

/// The defaulting patch as computed before the webhook decoded reviews itself (the
/// original `defaults::defaulting_patch` of the whole object, kept here as the oracle).
mod original {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, Patch, PatchOperation};
    use serde_json::Value;

    use dittofs_operator::crd::parse_spec;
    use dittofs_operator::defaults::apply_defaults;

    pub fn defaulting_patch(object: &Value) -> Option<Patch> {
        let raw = object.get("spec")?;
        let mut spec = parse_spec(raw).ok()?;
        apply_defaults(&mut spec);
        let defaulted = serde_json::to_value(&spec).ok()?;
        let mut ops = Vec::new();
        let mut path = PointerBuf::from_tokens(["spec"]);
        collect_additions(raw, &defaulted, &mut path, &mut ops);
        Some(Patch(ops))
    }

    fn collect_additions(
        current: &Value,
        wanted: &Value,
        path: &mut PointerBuf,
        ops: &mut Vec<PatchOperation>,
    ) {
        let (Value::Object(have), Value::Object(want)) = (current, wanted) else {
            return;
        };
        for (key, value) in want {
            path.push_back(key.as_str());
            match have.get(key) {
                None | Some(Value::Null) => ops.push(PatchOperation::Add(AddOperation {
                    path: path.clone(),
                    value: value.clone(),
                })),
                Some(existing) => collect_additions(existing, value, path, ops),
            }
            path.pop_back();
        }
    }
}

#[test]
fn the_mutate_patch_equals_the_original_defaulting_patch() {
    let rt = rt();
    let router = admission::router(
        Arc::new(Offline),
        WebhookMetrics::unregistered(),
        &Limits::default(),
        Default::default(),
    );
    let mut runner = runner();
    let patched = Cell::new(0u32);
    runner
        .run(&spec(), |spec| {
            let object = json!({
                "apiVersion": "dittofs.dittofs.com/v1alpha1",
                "kind": "DittoServer",
                "metadata": {"name": "eq", "namespace": "default", "managedFields": [{"manager": "x"}]},
                "spec": spec,
            });
            let review = json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "eq",
                    "kind": {"group": "dittofs.dittofs.com", "version": "v1alpha1", "kind": "DittoServer"},
                    "operation": "CREATE",
                    "namespace": "default",
                    "object": object,
                }
            });
            let (status, answer) =
                rt.block_on(post(&router, "/mutate", serde_json::to_vec(&review).unwrap()));
            prop_assert_eq!(status, 200);
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            let response = &answer["response"];
            match original::defaulting_patch(&object) {
                None => prop_assert_eq!(&response["allowed"], false, "{}", response),
                Some(expected) => {
                    prop_assert_eq!(&response["allowed"], true, "{}", response);
                    let got: Value = match response["patch"].as_str() {
                        Some(b64) => serde_json::from_slice(
                            &base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
                        )
                        .unwrap(),
                        None => json!([]),
                    };
                    if !expected.0.is_empty() {
                        patched.set(patched.get() + 1);
                    }
                    prop_assert_eq!(got, serde_json::to_value(&expected).unwrap());
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(patched.get() > 0, "some generated specs were patched");
}
