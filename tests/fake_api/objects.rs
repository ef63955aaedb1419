//! Object lifecycle rules of the generic REST storage: what a create sets, what an
//! update may change, when generation moves, how finalizers hold a deletion.

use std::sync::Arc;

use serde_json::{Value, json};

use super::errors::{self, ApiError, FieldError};
use super::registry::TypeInfo;
use super::schema;
use super::ssa::{self, Actor, Scope};
use super::store::{Addr, State, finalizers, is_deleting, now_rfc3339, uid_of};

/// A Secret's `stringData` moved into `data` (base64, over what `data` holds for
/// the same key), as the API server does with every Secret it is sent.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        data[key.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// How a write's field ownership is recorded.
pub enum Ownership<'a> {
    /// An update (POST, PUT, JSON or merge patch) by this actor.
    Update(Actor<'a>),
    /// A server-side apply: the candidate already carries its `managedFields`.
    Applied,
    /// A controller of the fake writing directly: ownership is left as it is.
    Untracked,
}

/// `propagationPolicy` of a DELETE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// What a DELETE did.
pub enum Deleted {
    /// Removed from storage; the object's last state.
    Gone(Arc<Value>),
    /// Marked for deletion; finalizers hold it.
    Pending(Arc<Value>),
}

const RFC1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const RFC1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const RFC1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The name rule of the type (most: DNS subdomain; namespaces: label; services:
/// DNS-1035 label), as a field error.
fn name_error(info: &TypeInfo, name: &str) -> Option<FieldError> {
    let (ok, why) = match (info.group.as_str(), info.resource.as_str()) {
        ("", "namespaces") => (is_label(name, 63), RFC1123_LABEL),
        ("", "services") => (
            is_label(name, 63) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            RFC1035_LABEL,
        ),
        _ => (
            name.len() <= 253 && name.split('.').all(|part| is_label(part, 63)),
            RFC1123_SUBDOMAIN,
        ),
    };
    (!ok).then(|| FieldError {
        reason: "FieldValueInvalid",
        field: "metadata.name".into(),
        message: format!("Invalid value: \"{name}\": {why}"),
    })
}

/// Everything outside `metadata` (and `status` when it is a subresource) equal?
fn same_content(old: &Value, new: &Value, status_separate: bool) -> bool {
    let skip = |k: &str| k == "metadata" || (status_separate && k == "status");
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    a.iter()
        .filter(|(k, _)| !skip(k))
        .all(|(k, v)| b.get(k) == Some(v))
        && b.iter()
            .filter(|(k, _)| !skip(k))
            .all(|(k, _)| a.contains_key(k))
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Would an object with these finalizers be removed now that it is being deleted?
fn finalized(info: &TypeInfo, obj: &Value) -> bool {
    let spec_finalizers = info.group.is_empty()
        && info.resource == "namespaces"
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
    finalizers(obj).is_empty() && !spec_finalizers
}

impl State {
    /// Check and complete an object about to be created in `namespace` (from the
    /// URL): type, name, namespace lifecycle, server-set metadata, initial status.
    pub fn prepare_new(
        &mut self,
        ty: usize,
        namespace: Option<&str>,
        mut obj: Value,
    ) -> Result<(Addr, Value), ApiError> {
        let info = self.info(ty).ok_or_else(errors::method_not_allowed)?;
        if !obj.is_object() {
            return Err(errors::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(kind) = obj["kind"].as_str()
            && !kind.is_empty()
            && kind != info.kind
        {
            return Err(errors::bad_request(format!(
                "the kind of the provided object ({kind}) does not match the kind of the request ({})",
                info.kind
            )));
        }
        obj["apiVersion"] = json!(info.storage_api_version());
        obj["kind"] = json!(info.kind);
        schema::prune_metadata(&mut obj);
        let meta = meta_mut(&mut obj);
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            meta.remove(field);
        }
        let body_namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let namespace = if info.namespaced {
            let ns = namespace.unwrap_or_default();
            if !body_namespace.is_empty() && body_namespace != ns {
                return Err(errors::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(ns));
            ns.to_string()
        } else {
            meta.remove("namespace");
            String::new()
        };
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(errors::invalid(
                    &info,
                    "",
                    vec![FieldError {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
            name = self.generated_name(&prefix);
        }
        if let Some(e) = name_error(&info, &name) {
            return Err(errors::invalid(&info, &name, vec![e]));
        }
        if info.namespaced && self.config.require_namespaces {
            match self.namespace_object(&namespace) {
                None => return Err(errors::namespace_not_found(&namespace)),
                Some(ns) if is_deleting(ns) => {
                    return Err(errors::namespace_terminating(&info, &name, &namespace));
                }
                Some(_) => {}
            }
        }
        let addr = Addr {
            ty,
            namespace,
            name: name.clone(),
        };
        if self.get(&addr).is_some() {
            return Err(errors::already_exists(&info, &name));
        }
        let uid = self.new_uid();
        let meta = meta_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if info.generation {
            meta.insert("generation".into(), json!(1));
        }
        if info.status_subresource
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        match (info.group.as_str(), info.resource.as_str()) {
            ("", "namespaces") => {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "pods") | ("", "persistentvolumeclaims") => {
                obj["status"] = json!({"phase": "Pending"});
            }
            ("", "secrets") => merge_string_data(&mut obj),
            _ => {}
        }
        if info.custom
            && let Some(s) = &info.schema
        {
            schema::prune_and_default(&mut obj, s);
            let errors = schema::type_errors(&obj, None, s);
            if !errors.is_empty() {
                return Err(errors::invalid(&info, &name, errors));
            }
        }
        Ok((addr, obj))
    }

    /// Create `obj` in `namespace`.
    pub fn create(
        &mut self,
        ty: usize,
        namespace: Option<&str>,
        obj: Value,
        ownership: Ownership,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let (addr, mut obj) = self.prepare_new(ty, namespace, obj)?;
        match ownership {
            Ownership::Update(actor) => {
                if let Some(meta) = obj["metadata"].as_object_mut() {
                    meta.remove("managedFields");
                }
                ssa::track_update(None, &mut obj, &actor);
            }
            Ownership::Applied | Ownership::Untracked => {}
        }
        if dry_run {
            return Ok(Arc::new(obj));
        }
        self.commit(&addr, Some(obj))
            .ok_or_else(|| errors::internal("the type stopped being served"))
    }

    /// Write `candidate` over the live object at `addr` through `scope`: only what
    /// the scope and the type's rules let change does. A write that changes
    /// nothing is not stored (the resourceVersion stays, no watch event). An object
    /// being deleted whose last finalizer goes is removed.
    pub fn update(
        &mut self,
        addr: &Addr,
        candidate: Value,
        scope: Scope,
        ownership: Ownership,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let info = self.info(addr.ty).ok_or_else(errors::method_not_allowed)?;
        let old = self
            .get(addr)
            .cloned()
            .ok_or_else(|| errors::not_found(&info, &addr.name))?;
        if !candidate.is_object() {
            return Err(errors::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let mut candidate = candidate;
        schema::prune_metadata(&mut candidate);
        let applied_managed = candidate["metadata"]["managedFields"].clone();
        let mut next = match scope {
            Scope::Status => {
                let mut next = (*old).clone();
                match candidate.get("status") {
                    Some(status) if !status.is_null() => next["status"] = status.clone(),
                    _ => {
                        if let Some(map) = next.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                next
            }
            Scope::Main { status_separate } => {
                let mut next = candidate;
                if status_separate {
                    match old.get("status") {
                        Some(status) => next["status"] = status.clone(),
                        None => {
                            if let Some(map) = next.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                next
            }
        };
        next["apiVersion"] = json!(info.storage_api_version());
        next["kind"] = json!(info.kind);
        if info.group.is_empty() && info.resource == "secrets" {
            merge_string_data(&mut next);
        }
        {
            let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
            let meta = meta_mut(&mut next);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.remove("selfLink");
            meta.remove("generateName");
            if let Some(v) = old_meta.get("generateName") {
                meta.insert("generateName".into(), v.clone());
            }
        }
        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&next)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(errors::invalid(
                    &info,
                    &addr.name,
                    vec![FieldError {
                        reason: "FieldValueForbidden",
                        field: "metadata.finalizers".into(),
                        message: format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            added
                                .iter()
                                .map(|f| format!("{f:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }],
                ));
            }
        }
        if info.custom
            && let Some(s) = &info.schema
        {
            schema::prune_and_default(&mut next, s);
            let errors = schema::type_errors(&next, Some(old.as_ref()), s);
            if !errors.is_empty() {
                return Err(errors::invalid(&info, &addr.name, errors));
            }
        }
        match ownership {
            Ownership::Update(actor) => {
                // What a client sends in managedFields is not taken as ownership.
                match old["metadata"].get("managedFields") {
                    Some(m) => next["metadata"]["managedFields"] = m.clone(),
                    None => {
                        if let Some(meta) = next["metadata"].as_object_mut() {
                            meta.remove("managedFields");
                        }
                    }
                }
                ssa::track_update(Some(&old), &mut next, &actor);
            }
            Ownership::Applied => {
                if applied_managed.is_null() {
                    if let Some(meta) = next["metadata"].as_object_mut() {
                        meta.remove("managedFields");
                    }
                } else {
                    next["metadata"]["managedFields"] = applied_managed;
                }
            }
            Ownership::Untracked => {}
        }
        if info.generation && !same_content(&old, &next, info.status_subresource) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        if next == *old {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(next));
        }
        let object = if is_deleting(&next) && finalized(&info, &next) {
            None
        } else {
            Some(next)
        };
        self.commit(addr, object)
            .ok_or_else(|| errors::internal("the type stopped being served"))
    }

    /// DELETE: check preconditions, then remove at once, or mark for deletion when
    /// finalizers (including those the propagation policy adds) must run first.
    pub fn delete(&mut self, addr: &Addr, options: &DeleteOptions) -> Result<Deleted, ApiError> {
        let info = self.info(addr.ty).ok_or_else(errors::method_not_allowed)?;
        let live = self
            .get(addr)
            .cloned()
            .ok_or_else(|| errors::not_found(&info, &addr.name))?;
        if let Some(uid) = &options.uid {
            let actual = uid_of(&live).unwrap_or_default();
            if uid != actual {
                return Err(errors::conflict(
                    &info,
                    &addr.name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = &options.resource_version {
            let actual = live["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            if rv != actual {
                return Err(errors::conflict(
                    &info,
                    &addr.name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        if is_deleting(&live) {
            return Ok(Deleted::Pending(live));
        }
        let mut next = (*live).clone();
        let mut list = finalizers(&live);
        let add = match options.propagation {
            Some(Propagation::Orphan) => Some("orphan"),
            Some(Propagation::Foreground) => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = add
            && !list.iter().any(|x| x == f)
        {
            list.push(f.to_string());
        }
        if !list.is_empty() {
            next["metadata"]["finalizers"] = json!(list);
        }
        let is_namespace = info.group.is_empty() && info.resource == "namespaces";
        if is_namespace {
            next["status"]["phase"] = json!("Terminating");
        }
        if !is_namespace && list.is_empty() {
            if options.dry_run {
                return Ok(Deleted::Gone(live));
            }
            let last = self
                .commit(addr, None)
                .ok_or_else(|| errors::internal("the type stopped being served"))?;
            return Ok(Deleted::Gone(last));
        }
        let generation = next["metadata"]["generation"].as_i64().unwrap_or(0);
        if generation > 0 {
            next["metadata"]["generation"] = json!(generation + 1);
        }
        next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if options.dry_run {
            return Ok(Deleted::Pending(Arc::new(next)));
        }
        let stored = self
            .commit(addr, Some(next))
            .ok_or_else(|| errors::internal("the type stopped being served"))?;
        Ok(Deleted::Pending(stored))
    }

    /// Remove `finalizer` from the object (a controller finishing its part).
    pub fn remove_finalizer(&mut self, addr: &Addr, finalizer: &str) {
        let Some(live) = self.get(addr).cloned() else {
            return;
        };
        let list: Vec<String> = finalizers(&live)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let mut next = (*live).clone();
        next["metadata"]["finalizers"] = json!(list);
        if list.is_empty()
            && let Some(meta) = next["metadata"].as_object_mut()
        {
            meta.remove("finalizers");
        }
        let scope = Scope::Main {
            status_separate: false,
        };
        let _ = self.update(addr, next, scope, Ownership::Untracked, false);
    }
}

/// The finalizer the apiextensions cleanup controller keeps on a CRD being deleted.
const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

impl State {
    /// After a write to a CustomResourceDefinition, do what apiextensions-apiserver
    /// does: serve the type it defines and mark it Established, or, once it is
    /// gone or being deleted, stop serving the type (its objects go with it).
    pub fn after_write(&mut self, addr: &Addr) {
        let Some(info) = self.info(addr.ty) else {
            return;
        };
        if info.group != "apiextensions.k8s.io" || info.resource != "customresourcedefinitions" {
            return;
        }
        let Some(crd) = self.get(addr).cloned() else {
            if let Some((group, resource)) = addr.name.split_once('.').map(|(r, g)| (g, r)) {
                self.unserve(group, resource);
            }
            return;
        };
        let defined = super::registry::type_from_crd(&crd);
        if is_deleting(&crd) {
            if let Ok(t) = &defined {
                self.unserve(&t.group, &t.resource);
            }
            self.remove_finalizer(addr, CRD_CLEANUP);
            return;
        }
        let conditions = match defined {
            Ok(t) => {
                self.serve(t);
                json!([
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted"},
                ])
            }
            Err(why) => json!([
                {"type": "NamesAccepted", "status": "False", "reason": "InvalidSpec", "message": why},
                {"type": "Established", "status": "False", "reason": "NotAccepted", "message": why},
            ]),
        };
        let stored: Vec<Value> = crd["spec"]["versions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|v| v["storage"] == true)
                    .map(|v| v["name"].clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut next = (*crd).clone();
        let time = crd["status"]["conditions"][0]["lastTransitionTime"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(now_rfc3339);
        let mut conditions = conditions;
        if let Some(list) = conditions.as_array_mut() {
            for c in list {
                c["lastTransitionTime"] = json!(time);
            }
        }
        next["status"] = json!({
            "conditions": conditions,
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": stored,
        });
        let _ = self.update(addr, next, Scope::Status, Ownership::Untracked, false);
    }
}
