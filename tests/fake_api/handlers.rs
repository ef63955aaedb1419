//! The verbs: what each request does to the store, and what it answers.
//! Runs under the store lock; rendering (JSON encoding of what is answered)
//! happens after the lock is released.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::errors::{self, ApiError};
use super::objects::{DeleteOptions, Deleted, Ownership, Propagation};
use super::patch;
use super::registry::{ResourceRoute, TypeInfo};
use super::selector::{FieldSelector, LabelSelector};
use super::ssa::{self, Actor, Scope};
use super::store::{Addr, State, is_deleting, key_of, now_rfc3339};

/// A request, as the handlers see it.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub content_type: String,
    pub accept: String,
    pub user_agent: String,
    pub body: Bytes,
}

/// Which representation the client accepts (`Accept` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Full,
    /// `application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`
    Metadata,
    /// `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
    MetadataList,
}

impl View {
    pub fn of(accept: &str) -> Result<View, ApiError> {
        if accept.contains("as=PartialObjectMetadataList") {
            Ok(View::MetadataList)
        } else if accept.contains("as=PartialObjectMetadata") {
            Ok(View::Metadata)
        } else if accept.contains("as=") {
            Err(errors::not_acceptable(
                "application/json, application/yaml, application/vnd.kubernetes.protobuf",
            ))
        } else {
            Ok(View::Full)
        }
    }
}

/// What a request answers, before encoding.
pub enum Answer {
    Object(u16, Arc<Value>),
    List {
        resource_version: u64,
        continue_token: Option<String>,
        remaining: Option<usize>,
        items: Vec<Arc<Value>>,
    },
    Value(u16, Value),
}

/// `verb` for the request log, as an audit log names it.
pub fn verb(
    method: &Method,
    route: &ResourceRoute,
    query: &HashMap<String, String>,
) -> &'static str {
    match (method.as_str(), route.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if is_true(query.get("watch")) => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

pub fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true" || v == "1")
}

/// The field manager of a write: `fieldManager`, else the User-Agent up to its
/// first `/`, as kube-apiserver derives it.
fn manager_of(req: &Request) -> String {
    if let Some(m) = req.query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let agent = req.user_agent.split('/').next().unwrap_or_default();
    if agent.is_empty() {
        "unknown".into()
    } else {
        agent.to_string()
    }
}

fn dry_run(req: &Request) -> bool {
    req.query.get("dryRun").is_some_and(|v| v == "All")
}

fn parse_body(req: &Request) -> Result<Value, ApiError> {
    serde_json::from_slice(&req.body).map_err(|e| {
        errors::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

fn addr(route: &ResourceRoute) -> Addr {
    Addr {
        ty: route.ty,
        namespace: route.namespace.clone().unwrap_or_default(),
        name: route.name.clone().unwrap_or_default(),
    }
}

fn scope(info: &TypeInfo, route: &ResourceRoute) -> Scope {
    if route.status {
        Scope::Status
    } else {
        Scope::Main {
            status_separate: info.status_subresource,
        }
    }
}

/// A continue token: like the real one, base64 of JSON naming the list's
/// resourceVersion and the key to start after.
fn encode_continue(rv: u64, key: &(String, String)) -> String {
    let json = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}", key.0, key.1)});
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || errors::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = json["rv"].as_u64().ok_or_else(bad)?;
    let start = json["start"].as_str().ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

pub fn selectors(
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| errors::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(errors::bad_request)?;
    Ok((labels, fields))
}

impl State {
    pub fn handle(&mut self, req: &Request, route: &ResourceRoute) -> Result<Answer, ApiError> {
        let info = self.info(route.ty).ok_or(ApiError::PlainNotFound)?;
        match (req.method.as_str(), route.name.is_some()) {
            ("GET", true) => self.get_object(&info, route),
            ("GET", false) => self.list(&info, route, req),
            ("POST", false) if !route.status && (route.namespace.is_some() || !info.namespaced) => {
                self.create_request(&info, route, req)
            }
            ("PUT", true) => self.replace(&info, route, req),
            ("PATCH", true) => self.patch(&info, route, req),
            ("DELETE", true) => self.delete_request(&info, route, req),
            ("DELETE", false) => self.delete_collection(&info, route, req),
            _ => Err(errors::method_not_allowed()),
        }
    }

    fn get_object(&self, info: &TypeInfo, route: &ResourceRoute) -> Result<Answer, ApiError> {
        let addr = addr(route);
        let obj = self
            .get(&addr)
            .cloned()
            .ok_or_else(|| errors::not_found(info, &addr.name))?;
        Ok(Answer::Object(200, obj))
    }

    fn list(
        &self,
        _info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
    ) -> Result<Answer, ApiError> {
        let (labels, fields) = selectors(&req.query)?;
        let limit = req
            .query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let (rv, after) = match req.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (rv, key) = decode_continue(token)?;
                (rv, Some(key))
            }
            None => (self.rv, None),
        };
        let state = self.type_state(route.ty).ok_or(ApiError::PlainNotFound)?;
        let mut items = Vec::new();
        let mut next = None;
        let mut iter = state
            .range(route.namespace.as_deref(), after)
            .filter(|(_, obj)| labels.matches(&obj["metadata"]["labels"]) && fields.matches(obj));
        for (key, obj) in iter.by_ref() {
            items.push(obj.clone());
            if limit.is_some_and(|l| items.len() >= l) {
                next = Some(key.clone());
                break;
            }
        }
        let remaining = match next {
            Some(_) => iter.count(),
            None => 0,
        };
        let (continue_token, remaining) = match next {
            Some(key) if remaining > 0 => (
                Some(encode_continue(rv, &key)),
                (labels.is_empty() && fields == FieldSelector::default()).then_some(remaining),
            ),
            _ => (None, None),
        };
        Ok(Answer::List {
            resource_version: rv,
            continue_token,
            remaining,
            items,
        })
    }

    fn create_request(
        &mut self,
        info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
    ) -> Result<Answer, ApiError> {
        let body = parse_body(req)?;
        let manager = manager_of(req);
        let api_version = info.api_version(&route.version);
        let now = now_rfc3339();
        let actor = Actor {
            manager: &manager,
            api_version: &api_version,
            scope: scope(info, route),
            now: &now,
        };
        let obj = self.create(
            route.ty,
            route.namespace.as_deref(),
            body,
            Ownership::Update(actor),
            dry_run(req),
        )?;
        if !dry_run(req) {
            let addr = self.addr_of(route.ty, &obj);
            self.after_write(&addr);
        }
        Ok(Answer::Object(201, obj))
    }

    fn replace(
        &mut self,
        info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
    ) -> Result<Answer, ApiError> {
        let addr = addr(route);
        let body = parse_body(req)?;
        let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != addr.name {
            return Err(errors::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                addr.name
            )));
        }
        let live = self
            .get(&addr)
            .cloned()
            .ok_or_else(|| errors::not_found(info, &addr.name))?;
        match body["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(rv) if Some(rv) != live["metadata"]["resourceVersion"].as_str() => {
                return Err(errors::conflict(info, &addr.name, errors::MODIFIED));
            }
            Some(_) => {}
            // Custom resources do not allow unconditional updates.
            None if info.custom => {
                return Err(errors::invalid(
                    info,
                    &addr.name,
                    vec![errors::FieldError {
                        reason: "FieldValueInvalid",
                        field: "metadata.resourceVersion".into(),
                        message: "Invalid value: 0x0: must be specified for an update".into(),
                    }],
                ));
            }
            None => {}
        }
        let manager = manager_of(req);
        let api_version = info.api_version(&route.version);
        let now = now_rfc3339();
        let scope = scope(info, route);
        let actor = Actor {
            manager: &manager,
            api_version: &api_version,
            scope,
            now: &now,
        };
        let obj = self.update(&addr, body, scope, Ownership::Update(actor), dry_run(req))?;
        if !dry_run(req) {
            self.after_write(&addr);
        }
        Ok(Answer::Object(200, obj))
    }

    fn patch(
        &mut self,
        info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
    ) -> Result<Answer, ApiError> {
        let addr = addr(route);
        let manager = manager_of(req);
        let api_version = info.api_version(&route.version);
        let now = now_rfc3339();
        let scope = scope(info, route);
        let content_type = req
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        if content_type == "application/apply-patch+yaml" {
            return self.apply(info, route, req, &manager, &api_version, &now);
        }
        let live = self
            .get(&addr)
            .cloned()
            .ok_or_else(|| errors::not_found(info, &addr.name))?;
        let candidate = match content_type {
            "application/json-patch+json" => patch::json_patch(&live, &req.body)?,
            "application/merge-patch+json" => patch::merge_patch(&live, &req.body)?,
            // Strategic merge patch is modelled as a merge patch (no patch
            // strategies from the schemas); custom resources refuse it, as for real.
            "application/strategic-merge-patch+json" if !info.custom => {
                patch::merge_patch(&live, &req.body)?
            }
            other => {
                let mut accepted = vec![
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ];
                if !info.custom {
                    accepted.push("application/strategic-merge-patch+json");
                }
                return Err(errors::unsupported_media_type(other, &accepted));
            }
        };
        // A resourceVersion the patch leaves in (or puts into) the object is a
        // precondition, as with an update.
        if candidate["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]
            && !candidate["metadata"]["resourceVersion"].is_null()
        {
            return Err(errors::conflict(info, &addr.name, errors::MODIFIED));
        }
        let actor = Actor {
            manager: &manager,
            api_version: &api_version,
            scope,
            now: &now,
        };
        let obj = self.update(
            &addr,
            candidate,
            scope,
            Ownership::Update(actor),
            dry_run(req),
        )?;
        if !dry_run(req) {
            self.after_write(&addr);
        }
        Ok(Answer::Object(200, obj))
    }

    fn apply(
        &mut self,
        info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
        manager: &str,
        api_version: &str,
        now: &str,
    ) -> Result<Answer, ApiError> {
        let addr = addr(route);
        if req.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(errors::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let force = is_true(req.query.get("force"));
        // The body is YAML; JSON is YAML.
        let config: Value = serde_json::from_slice(&req.body)
            .or_else(|_| serde_yaml_ng::from_slice(&req.body))
            .map_err(|e| errors::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(errors::bad_request("apply patch must be an object"));
        }
        let name = config["metadata"]["name"].as_str().unwrap_or_default();
        if !name.is_empty() && name != addr.name {
            return Err(errors::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                addr.name
            )));
        }
        match config["apiVersion"].as_str() {
            Some(v) if v == info.api_version(&route.version) => {}
            other => {
                return Err(errors::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({})",
                    other.unwrap_or_default(),
                    info.api_version(&route.version)
                )));
            }
        }
        if config["kind"].as_str() != Some(info.kind.as_str()) {
            return Err(errors::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                config["kind"].as_str().unwrap_or_default(),
                info.kind
            )));
        }
        let scope = scope(info, route);
        let actor = Actor {
            manager,
            api_version,
            scope,
            now,
        };
        let live = self.get(&addr).cloned();
        let Some(live) = live else {
            if route.status {
                return Err(errors::not_found(info, &addr.name));
            }
            // Apply creates.
            let mut merged = ssa::apply(&json!({}), &config, &actor, force)?;
            merged["metadata"]["name"] = json!(addr.name);
            let obj = self.create(
                route.ty,
                route.namespace.as_deref(),
                merged,
                Ownership::Applied,
                dry_run(req),
            )?;
            if !dry_run(req) {
                self.after_write(&addr);
            }
            return Ok(Answer::Object(201, obj));
        };
        if let Some(rv) = config["metadata"]["resourceVersion"].as_str()
            && Some(rv) != live["metadata"]["resourceVersion"].as_str()
        {
            return Err(errors::conflict(info, &addr.name, errors::MODIFIED));
        }
        let merged = ssa::apply(&live, &config, &actor, force)?;
        let obj = self.update(&addr, merged, scope, Ownership::Applied, dry_run(req))?;
        if !dry_run(req) {
            self.after_write(&addr);
        }
        Ok(Answer::Object(200, obj))
    }

    fn delete_request(
        &mut self,
        info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
    ) -> Result<Answer, ApiError> {
        if route.status {
            return Err(errors::method_not_allowed());
        }
        let addr = addr(route);
        let options = delete_options(req)?;
        let outcome = self.delete(&addr, &options)?;
        if !options.dry_run {
            self.after_write(&addr);
        }
        Ok(match outcome {
            Deleted::Pending(obj) => Answer::Object(200, obj),
            Deleted::Gone(obj) if info.returns_deleted_object => Answer::Object(200, obj),
            Deleted::Gone(obj) => Answer::Value(
                200,
                errors::deleted(
                    info,
                    &addr.name,
                    obj["metadata"]["uid"].as_str().unwrap_or_default(),
                ),
            ),
        })
    }

    fn delete_collection(
        &mut self,
        info: &TypeInfo,
        route: &ResourceRoute,
        req: &Request,
    ) -> Result<Answer, ApiError> {
        if route.status {
            return Err(errors::method_not_allowed());
        }
        let (labels, fields) = selectors(&req.query)?;
        let options = delete_options(req)?;
        let state = self.type_state(route.ty).ok_or(ApiError::PlainNotFound)?;
        let targets: Vec<(String, String)> = state
            .range(route.namespace.as_deref(), None)
            .filter(|(_, obj)| labels.matches(&obj["metadata"]["labels"]) && fields.matches(obj))
            .map(|(k, _)| k.clone())
            .collect();
        for (namespace, name) in targets {
            let addr = Addr {
                ty: route.ty,
                namespace,
                name,
            };
            // Objects deleted meanwhile are not an error of the collection delete.
            match self.delete(&addr, &options) {
                Ok(_) | Err(ApiError::Status(404, _)) => {}
                Err(e) => return Err(e),
            }
            if !options.dry_run {
                self.after_write(&addr);
            }
        }
        Ok(Answer::Value(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "details": {"group": info.group, "kind": info.resource}}),
        ))
    }
}

/// DeleteOptions from the body (what kube sends) or the query.
fn delete_options(req: &Request) -> Result<DeleteOptions, ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        parse_body(req)?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| req.query.get("propagationPolicy").cloned());
    let propagation = match policy.as_deref() {
        None => match body["orphanDependents"].as_bool() {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => None,
        },
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(errors::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let dry_run_body = body["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run: dry_run_body || dry_run(req),
    })
}

/// `(namespace, name)` of a stored object and whether it is being deleted.
pub fn describe(obj: &Value) -> ((String, String), bool) {
    (key_of(obj), is_deleting(obj))
}
