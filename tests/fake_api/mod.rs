//! An in-memory Kubernetes API server behind tower-test, for reconcile tests and
//! the reconcile benchmark: stores objects by URL path, records every request, and
//! answers GET, server-side apply, merge and JSON patches, DELETE and event POSTs.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use dittofs_operator::crd::DittoServer;
use dittofs_operator::validation::{ClusterLookup, Lookup, SecretFacts};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// A cluster where every looked-up fact exists.
pub struct AllFound;

impl ClusterLookup for AllFound {
    async fn storage_class(&self, _: &str) -> Lookup<()> {
        Lookup::Found(())
    }
    async fn secret(&self, _: &str, _: &str) -> Lookup<SecretFacts> {
        Lookup::Found(SecretFacts::default())
    }
    async fn percona_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
}

/// Objects by URL path (no query), and every request seen.
#[derive(Default)]
pub struct FakeApi {
    pub objects: Mutex<BTreeMap<String, Value>>,
    pub requests: Mutex<Vec<(Method, String)>>,
    /// Paths whose GET answers 500.
    pub failing: Mutex<BTreeSet<String>>,
    version: Mutex<u64>,
}

pub const DS_PATH: &str = "/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/dittoservers/d";
pub const STS_PATH: &str = "/apis/apps/v1/namespaces/ns/statefulsets/d";
pub const PG_PATH: &str = "/apis/pgv2.percona.com/v2/namespaces/ns/perconapgclusters/d-postgres";

impl FakeApi {
    pub fn put(&self, path: &str, obj: Value) {
        self.objects.lock().unwrap().insert(path.to_string(), obj);
    }
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }
    pub fn ds(&self) -> DittoServer {
        serde_json::from_value(self.get(DS_PATH).expect("DittoServer stored"))
            .expect("DittoServer parses")
    }
    pub fn clear_log(&self) {
        self.requests.lock().unwrap().clear();
    }
    /// Non-GET requests: (method, path).
    pub fn writes(&self) -> Vec<(Method, String)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m != Method::GET)
            .cloned()
            .collect()
    }
    pub fn wrote(&self, method: Method, path: &str) -> bool {
        self.writes().iter().any(|(m, p)| *m == method && p == path)
    }
    pub fn event_reasons(&self) -> Vec<String> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.contains("/events/"))
            .map(|(_, e)| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }
    pub fn condition(&self, type_: &str) -> Option<(String, String)> {
        let ds = self.get(DS_PATH)?;
        let c = ds["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)?
            .clone();
        Some((
            c["status"].as_str()?.to_string(),
            c["reason"].as_str()?.to_string(),
        ))
    }
    pub fn sts_hash(&self) -> Option<String> {
        self.get(STS_PATH)?["spec"]["template"]["metadata"]["annotations"]["dittofs.io/config-hash"]
            .as_str()
            .map(str::to_string)
    }

    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        self.requests
            .lock()
            .unwrap()
            .push((method.clone(), path.to_string()));
        let (key, status_sub) = match path.strip_suffix("/status") {
            Some(k) => (k.to_string(), true),
            None => (path.to_string(), false),
        };
        let mut objects = self.objects.lock().unwrap();
        let not_found = || {
            (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{key} not found")}),
            )
        };
        if *method == Method::GET {
            if self.failing.lock().unwrap().contains(&key) {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500, "message": "boom"}),
                );
            }
            return objects
                .get(&key)
                .map(|o| (StatusCode::OK, o.clone()))
                .unwrap_or_else(not_found);
        }
        let mut version = self.version.lock().unwrap();
        *version += 1;
        let rv = version.to_string();
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match *method {
            Method::POST => {
                // Events: store by a generated name.
                let mut obj = parsed;
                let name = format!("{key}/{rv}");
                obj["metadata"]["name"] = json!(rv);
                objects.insert(name, obj.clone());
                (StatusCode::CREATED, obj)
            }
            Method::DELETE => match objects.remove(&key) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                ),
                None => not_found(),
            },
            Method::PATCH if content_type.contains("apply-patch") => {
                let mut obj = parsed;
                if let Some(old) = objects.get(&key) {
                    obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
                    if !old["status"].is_null() {
                        obj["status"] = old["status"].clone();
                    }
                } else {
                    obj["metadata"]["uid"] = json!(format!("uid-{rv}"));
                }
                obj["metadata"]["resourceVersion"] = json!(rv);
                obj["metadata"]["generation"] = json!(1);
                objects.insert(key, obj.clone());
                (StatusCode::OK, obj)
            }
            Method::PATCH => {
                let Some(mut obj) = objects.get(&key).cloned() else {
                    return not_found();
                };
                if content_type.contains("json-patch") {
                    // Like the API server (evanphx/json-patch): `test` for null
                    // passes on a missing path.
                    let ops: Vec<Value> = parsed
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|op| {
                            !(op["op"] == "test"
                                && op["value"].is_null()
                                && op["path"]
                                    .as_str()
                                    .is_some_and(|p| obj.pointer(p).is_none()))
                        })
                        .collect();
                    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
                        Ok(p) => p,
                        Err(_) => {
                            return (
                                StatusCode::BAD_REQUEST,
                                json!({"kind": "Status", "code": 400}),
                            );
                        }
                    };
                    if json_patch::patch(&mut obj, &patch).is_err() {
                        return (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422, "message": "test failed"}),
                        );
                    }
                } else {
                    json_patch::merge(&mut obj, &parsed);
                }
                let _ = status_sub;
                obj["metadata"]["resourceVersion"] = json!(rv);
                objects.insert(key, obj.clone());
                (StatusCode::OK, obj)
            }
            _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }
}

pub fn start(api: Arc<FakeApi>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let (status, value) = api.handle(&method, &path, &content_type, &body);
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&value).unwrap()))
                .unwrap();
            send.send_response(response);
        }
    });
    Client::new(service, "ns")
}
