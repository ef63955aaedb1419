//! A small in-memory API server that records the RBAC attributes of every request it
//! receives (`dittofs_operator::rbac::ApiCall::from_http`), for the usage tests of
//! `tests/rbac_usage.rs`. It answers just enough for each component to go through its
//! code paths: items by URL path; lists of a collection (namespaced or across
//! namespaces, selectors ignored); watches that stay open and send nothing; create
//! (409 when present), replace, delete; server-side apply (creates or merges), merge
//! and strategic patches (merged as JSON merge patches) and JSON patches (422 when a
//! `test` fails; a `test` for null passes on a missing path, as on the real server).
//! Anything else about the real server (field managers, status separation,
//! resourceVersion conflicts, selectors) is deliberately not modelled.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use dittofs_operator::rbac::ApiCall;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Default)]
struct State {
    objects: Mutex<BTreeMap<String, Value>>,
    calls: Mutex<Vec<ApiCall>>,
    version: AtomicU64,
}

/// The in-memory API server; clones share one state.
#[derive(Clone, Default)]
pub struct MemoryApi {
    state: Arc<State>,
}

impl MemoryApi {
    /// A kube client talking to this server.
    pub fn client(&self, default_namespace: &str) -> kube::Client {
        kube::Client::new(self.clone(), default_namespace)
    }

    pub fn put(&self, path: &str, object: Value) {
        self.state
            .objects
            .lock()
            .unwrap()
            .insert(path.to_string(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.objects.lock().unwrap().get(path).cloned()
    }

    /// The objects directly under the collection `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<Value> {
        self.state
            .objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| {
                path.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every authorization check the requests so far needed, in order.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.state.calls.lock().unwrap().clear();
    }

    fn next_version(&self) -> String {
        (self.state.version.fetch_add(1, Ordering::SeqCst) + 1).to_string()
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        watching: bool,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let resource_path = match segments.as_slice() {
            ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => !rest.is_empty(),
            _ => false,
        };
        if !resource_path {
            return discovery(path);
        }
        let key = path.strip_suffix("/status").unwrap_or(path).to_string();
        let is_collection = is_collection(&segments);
        let mut objects = self.state.objects.lock().unwrap();
        match (method.as_str(), is_collection) {
            ("GET", true) if watching => Answer::Watch,
            ("GET", true) => {
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(k, _)| in_collection(path, k))
                    .map(|(_, v)| v.clone())
                    .collect();
                Answer::json(
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List",
                           "metadata": {"resourceVersion": self.next_version()}, "items": items}),
                )
            }
            ("GET", false) => match objects.get(&key) {
                Some(o) => Answer::json(StatusCode::OK, o.clone()),
                None => not_found(&key),
            },
            ("POST", true) => {
                let mut obj: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let rv = self.next_version();
                let name = match obj["metadata"]["name"].as_str() {
                    Some(n) => n.to_string(),
                    None => format!(
                        "{}{rv}",
                        obj["metadata"]["generateName"]
                            .as_str()
                            .unwrap_or("object-")
                    ),
                };
                let item = format!("{}/{name}", path.trim_end_matches('/'));
                if objects.contains_key(&item) {
                    return status(StatusCode::CONFLICT, "AlreadyExists", &item);
                }
                stamp(&mut obj, &name, &rv, true);
                objects.insert(item, obj.clone());
                Answer::json(StatusCode::CREATED, obj)
            }
            ("PUT", false) => {
                if !objects.contains_key(&key) {
                    return not_found(&key);
                }
                let mut obj: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                stamp(&mut obj, &name, &self.next_version(), false);
                objects.insert(key, obj.clone());
                Answer::json(StatusCode::OK, obj)
            }
            ("PATCH", false) => {
                let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let rv = self.next_version();
                let existing = objects.get(&key).cloned();
                let name = segments.last().copied().unwrap_or_default();
                let name = if path.ends_with("/status") {
                    segments[segments.len() - 2]
                } else {
                    name
                };
                let (mut obj, code) = match existing {
                    None if content_type.contains("apply-patch") => (patch, StatusCode::CREATED),
                    None => return not_found(&key),
                    Some(mut obj) if content_type.contains("json-patch") => {
                        if apply_json_patch(&mut obj, patch).is_err() {
                            return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &key);
                        }
                        (obj, StatusCode::OK)
                    }
                    Some(mut obj) => {
                        json_patch::merge(&mut obj, &patch);
                        (obj, StatusCode::OK)
                    }
                };
                stamp(&mut obj, name, &rv, code == StatusCode::CREATED);
                objects.insert(key, obj.clone());
                Answer::json(code, obj)
            }
            ("DELETE", false) => match objects.remove(&key) {
                Some(_) => Answer::json(
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                ),
                None => not_found(&key),
            },
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", path),
        }
    }
}

/// `/api/v1/namespaces/n/secrets`, `/api/v1/secrets`, `/apis/g/v/things`: a collection.
fn is_collection(segments: &[&str]) -> bool {
    let rest = match segments {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return false,
    };
    match rest {
        ["namespaces", _, rest @ ..] if !rest.is_empty() => rest.len() == 1,
        rest => rest.len() == 1,
    }
}

/// Is the object stored at `key` an item of `collection` (possibly across namespaces)?
fn in_collection(collection: &str, key: &str) -> bool {
    let Some(name_start) = key.rfind('/') else {
        return false;
    };
    let parent = &key[..name_start];
    if parent == collection {
        return true;
    }
    // `/apis/g/v/things` also lists `/apis/g/v/namespaces/<ns>/things/<name>`.
    let Some(resource_start) = collection.rfind('/') else {
        return false;
    };
    let (prefix, resource) = collection.split_at(resource_start);
    parent
        .strip_prefix(&format!("{prefix}/namespaces/"))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, r)| format!("/{r}") == resource)
}

fn stamp(obj: &mut Value, name: &str, rv: &str, created: bool) {
    if !obj.is_object() {
        *obj = json!({});
    }
    obj["metadata"]["name"] = json!(name);
    obj["metadata"]["resourceVersion"] = json!(rv);
    if created || obj["metadata"]["uid"].is_null() {
        obj["metadata"]["uid"] = json!(format!("uid-{rv}"));
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
}

fn apply_json_patch(obj: &mut Value, patch: Value) -> Result<(), ()> {
    // Like the real server (evanphx/json-patch): `test` for null passes on a missing path.
    let ops: Vec<Value> = patch
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
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).map_err(|_| ())?;
    json_patch::patch(obj, &patch).map_err(|_| ())
}

/// Discovery: the Percona group is installed; nothing else is asked.
fn discovery(path: &str) -> Answer {
    if path == "/apis/pgv2.percona.com/v2" {
        return Answer::json(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "pgv2.percona.com/v2",
                   "resources": [{"name": "perconapgclusters", "singularName": "perconapgcluster",
                                  "namespaced": true, "kind": "PerconaPGCluster",
                                  "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]}),
        );
    }
    not_found(path)
}

fn not_found(what: &str) -> Answer {
    status(StatusCode::NOT_FOUND, "NotFound", what)
}

fn status(code: StatusCode, reason: &str, what: &str) -> Answer {
    Answer::json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
               "code": code.as_u16(), "message": format!("{what}: {reason}")}),
    )
}

enum Answer {
    Json(StatusCode, Value),
    /// An open watch stream that never sends an event.
    Watch,
}

impl Answer {
    fn json(code: StatusCode, value: Value) -> Self {
        Answer::Json(code, value)
    }

    fn into_response(self) -> Response<Body> {
        match self {
            Answer::Json(code, value) => Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(value.to_string())).boxed_unsync())
                .unwrap(),
            Answer::Watch => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(
                    StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>())
                        .boxed_unsync(),
                )
                .unwrap(),
        }
    }
}

impl tower::Service<Request<kube::client::Body>> for MemoryApi {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            api.state.calls.lock().unwrap().extend(ApiCall::from_http(
                &parts.method,
                &parts.uri,
                Some(&content_type),
                &body,
            ));
            let watching = parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1");
            let answer = api.answer(
                &parts.method,
                parts.uri.path(),
                watching,
                &content_type,
                &body,
            );
            Ok(answer.into_response())
        })
    }
}
