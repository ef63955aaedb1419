//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Stands for the field manager of kube-apiserver (structured-merge-diff):
//! every write records which manager owns which fields, as `FieldsV1` entries;
//! an apply merges the applied fields into the live object, removes the fields
//! the manager applied before but no longer applies (unless another manager owns
//! them), and refuses with 409 to change a field another manager owns unless
//! `force` is set, in which case ownership moves to the applier. An update
//! (PUT, JSON/merge patch) takes ownership of the fields it changes from every
//! other manager, and never conflicts.
//!
//! Simplifications (no OpenAPI schema is consulted):
//! - maps (JSON objects) merge key by key; every list is atomic except
//!   `metadata.finalizers` (a set) and `metadata.ownerReferences` (a map keyed by
//!   `uid`), so lists such as `spec.template.spec.containers`, which the real
//!   schemas key by `name`, are owned and replaced as a whole;
//! - a field set holds leaves (scalars, atomic lists, set elements and keyed
//!   list items), as structured-merge-diff's field sets do; an Update's set has
//!   no `.` entries for the maps it created;
//! - `null` in an applied configuration is treated as absent.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::errors::{self, ApiError};

/// A field path as `FieldsV1` spells its steps: `f:name`, `k:{"uid":"…"}`, `v:"…"`.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status` is excluded when the type has a status subresource.
    Main { status_separate: bool },
    /// The `/status` subresource: only `status`.
    Status,
}

impl Scope {
    pub fn subresource(self) -> &'static str {
        match self {
            Scope::Main { .. } => "",
            Scope::Status => "status",
        }
    }
}

/// Metadata the server manages; never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

enum ListKind {
    Atomic,
    Set,
    Keyed(&'static str),
}

fn list_kind(path: &[String]) -> ListKind {
    match path {
        [m, f] if m == "f:metadata" && f == "f:finalizers" => ListKind::Set,
        [m, f] if m == "f:metadata" && f == "f:ownerReferences" => ListKind::Keyed("uid"),
        _ => ListKind::Atomic,
    }
}

fn key_step(key: &str, value: &Value) -> String {
    format!("k:{}", json!({ key: value }))
}

fn value_step(value: &Value) -> String {
    format!("v:{value}")
}

/// Is the top-level field `name` (or the metadata field `meta`) in `scope`?
fn in_scope(scope: Scope, top: &str) -> bool {
    match scope {
        Scope::Status => top == "status",
        Scope::Main { status_separate } => {
            top != "apiVersion" && top != "kind" && !(status_separate && top == "status")
        }
    }
}

/// The fields `obj` sets, within `scope`.
pub fn field_set(obj: &Value, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return set;
    };
    for (top, value) in map {
        if !in_scope(scope, top) {
            continue;
        }
        let path = vec![format!("f:{top}")];
        if top == "metadata" {
            if let Some(meta) = value.as_object() {
                for (k, v) in meta {
                    if !SERVER_METADATA.contains(&k.as_str()) {
                        walk(v, vec!["f:metadata".into(), format!("f:{k}")], &mut set);
                    }
                }
            }
        } else {
            walk(value, path, &mut set);
        }
    }
    set
}

fn walk(value: &Value, path: FieldPath, set: &mut FieldSet) {
    match value {
        Value::Null => {}
        // A map is granular: it is owned through its fields, an empty one not at all.
        Value::Object(map) => {
            for (k, v) in map {
                let mut child = path.clone();
                child.push(format!("f:{k}"));
                walk(v, child, set);
            }
        }
        Value::Array(items) => match list_kind(&path) {
            ListKind::Atomic => {
                set.insert(path);
            }
            ListKind::Set => {
                for item in items {
                    let mut child = path.clone();
                    child.push(value_step(item));
                    set.insert(child);
                }
            }
            ListKind::Keyed(key) => {
                for item in items {
                    let mut child = path.clone();
                    child.push(key_step(key, &item[key]));
                    set.insert(child.clone());
                    if let Some(fields) = item.as_object() {
                        for (k, v) in fields {
                            let mut grandchild = child.clone();
                            grandchild.push(format!("f:{k}"));
                            walk(v, grandchild, set);
                        }
                    }
                }
            }
        },
        _ => {
            set.insert(path);
        }
    }
}

/// The value at `path`, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = obj;
    for step in path {
        current = step_into(current, step)?;
    }
    Some(current)
}

fn step_into<'a>(value: &'a Value, step: &str) -> Option<&'a Value> {
    if let Some(field) = step.strip_prefix("f:") {
        return value.as_object()?.get(field);
    }
    let items = value.as_array()?;
    if let Some(key) = step.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter()
            .find(|item| key.iter().all(|(k, v)| &item[k] == v));
    }
    let wanted: Value = serde_json::from_str(step.strip_prefix("v:")?).ok()?;
    items.iter().find(|item| **item == wanted)
}

/// Remove the value at `path` (a field, a keyed item or a set element).
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = obj;
    for step in parents {
        let next = if let Some(field) = step.strip_prefix("f:") {
            current.get_mut(field)
        } else {
            let index = value_at(current, std::slice::from_ref(step)).and_then(|found| {
                current
                    .as_array()?
                    .iter()
                    .position(|item| std::ptr::eq(item, found))
            });
            match index {
                Some(i) => current.get_mut(i),
                None => None,
            }
        };
        match next {
            Some(n) => current = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(map) = current.as_object_mut() {
            map.remove(field);
        }
        return;
    }
    let found = value_at(current, std::slice::from_ref(last)).map(|v| v as *const Value);
    if let (Some(found), Some(items)) = (found, current.as_array_mut()) {
        items.retain(|item| !std::ptr::eq(item, found));
    }
}

/// Does `set` hold `path`, a path above it, or a path below it?
fn overlaps(set: &FieldSet, path: &FieldPath) -> bool {
    (1..=path.len()).any(|n| set.contains(&path[..n].to_vec()))
        || set
            .range(path.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
}

/// Remove from `set` every path equal to, above or below `path`.
fn remove_overlapping(set: &mut FieldSet, path: &FieldPath) {
    for n in 1..=path.len() {
        set.remove(&path[..n].to_vec());
    }
    let below: Vec<FieldPath> = set
        .range(path.clone()..)
        .take_while(|p| p.starts_with(path))
        .cloned()
        .collect();
    for p in below {
        set.remove(&p);
    }
}

/// Encode a field set as `FieldsV1`.
pub fn encode(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn to_json(node: &Node) -> Value {
        let mut map = Map::new();
        if node.member && !node.children.is_empty() {
            map.insert(".".into(), json!({}));
        }
        for (k, child) in &node.children {
            map.insert(k.clone(), to_json(child));
        }
        Value::Object(map)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node.children.entry(step.clone()).or_default();
        }
        node.member = true;
    }
    to_json(&root)
}

/// Decode `FieldsV1`.
pub fn decode(fields: &Value) -> FieldSet {
    fn visit(value: &Value, path: &mut FieldPath, set: &mut FieldSet) {
        let Some(map) = value.as_object() else {
            return;
        };
        if map.is_empty() && !path.is_empty() {
            set.insert(path.clone());
        }
        for (k, v) in map {
            if k == "." {
                set.insert(path.clone());
            } else {
                path.push(k.clone());
                visit(v, path, set);
                path.pop();
            }
        }
    }
    let mut set = FieldSet::new();
    visit(fields, &mut Vec::new(), &mut set);
    set
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Manager {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Manager {
    fn same_identity(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How conflict messages name a manager.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
            if !self.time.is_empty() {
                s = format!("{s} at {}", self.time);
            }
        }
        s
    }
}

pub fn managers(obj: &Value) -> Vec<Manager> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| Manager {
                    manager: e["manager"].as_str().unwrap_or_default().into(),
                    operation: e["operation"].as_str().unwrap_or_default().into(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                    time: e["time"].as_str().unwrap_or_default().into(),
                    subresource: e["subresource"].as_str().unwrap_or_default().into(),
                    fields: decode(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_managers(obj: &mut Value, managers: &[Manager]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&m.fields),
            });
            if !m.subresource.is_empty() {
                e["subresource"] = json!(m.subresource);
            }
            e
        })
        .collect();
    if entries.is_empty() {
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(entries);
    }
}

/// Who acts, and how.
pub struct Actor<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

/// Drop `null`s (absent in apply) recursively.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Merge `src` into `dst` at `path`: maps key by key, sets by union, keyed lists
/// item by item, everything else replaced.
fn merge_into(dst: &mut Value, src: &Value, path: &mut FieldPath) {
    let (Some(dst_map), Some(src_map)) = (dst.as_object_mut(), src.as_object()) else {
        *dst = src.clone();
        return;
    };
    for (k, v) in src_map {
        path.push(format!("f:{k}"));
        match (dst_map.get_mut(k), v) {
            (Some(d @ Value::Object(_)), Value::Object(_)) => merge_into(d, v, path),
            (Some(Value::Array(d)), Value::Array(s)) => match list_kind(path) {
                ListKind::Set => {
                    for item in s {
                        if !d.contains(item) {
                            d.push(item.clone());
                        }
                    }
                }
                ListKind::Keyed(key) => {
                    for item in s {
                        match d.iter_mut().find(|x| x[key] == item[key]) {
                            Some(existing) => {
                                path.push(key_step(key, &item[key]));
                                merge_into(existing, item, path);
                                path.pop();
                            }
                            None => d.push(item.clone()),
                        }
                    }
                }
                ListKind::Atomic => *d = s.clone(),
            },
            _ => {
                dst_map.insert(k.clone(), v.clone());
            }
        }
        path.pop();
    }
}

/// The part of an applied configuration that `scope` lets the apply touch.
fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    if let Some(map) = config.as_object() {
        for (k, v) in map {
            if k == "metadata" {
                if scope == Scope::Status {
                    continue;
                }
                let meta: Map<String, Value> = v
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(mk, _)| !SERVER_METADATA.contains(&mk.as_str()))
                            .map(|(mk, mv)| (mk.clone(), mv.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(meta));
            } else if in_scope(scope, k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Equal but for `metadata.managedFields`?
fn same_except_managed_fields(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let meta = |m: &Map<String, Value>| -> Map<String, Value> {
        m.get("metadata")
            .and_then(Value::as_object)
            .map(|meta| {
                meta.iter()
                    .filter(|(k, _)| *k != "managedFields")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| k == "metadata" || b.get(k) == Some(v))
        && meta(a) == meta(b)
}

/// Server-side apply `config` by `actor` onto `live` (an empty object when the
/// object does not exist yet). Returns the merged object, with `managedFields`
/// updated; server-managed metadata is left to the caller.
pub fn apply(live: &Value, config: &Value, actor: &Actor, force: bool) -> Result<Value, ApiError> {
    let config = scoped_config(&without_nulls(config), actor.scope);
    let applied = field_set(&config, actor.scope);
    let sub = actor.scope.subresource();
    let mut entries = managers(live);

    let mut merged = live.clone();
    if !merged.is_object() {
        merged = json!({});
    }
    merge_into(&mut merged, &config, &mut Vec::new());

    // Conflicts: a field another manager owns, whose value this apply changes.
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, other) in entries.iter().enumerate() {
        if other.same_identity(actor.manager, "Apply", sub) {
            continue;
        }
        for path in &applied {
            if overlaps(&other.fields, path) && value_at(&merged, path) != value_at(live, path) {
                conflicts.push((i, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&entries, &conflicts));
        }
        for (i, path) in &conflicts {
            remove_overlapping(&mut entries[*i].fields, path);
        }
    }

    // Fields this manager applied before and no longer applies go, unless someone
    // else owns them too.
    let me = entries
        .iter()
        .position(|m| m.same_identity(actor.manager, "Apply", sub));
    if let Some(me) = me {
        let dropped: Vec<FieldPath> = entries[me].fields.difference(&applied).cloned().collect();
        for path in dropped {
            let kept_by_other = entries
                .iter()
                .enumerate()
                .any(|(i, m)| i != me && overlaps(&m.fields, &path));
            if !kept_by_other {
                remove_at(&mut merged, &path);
            }
        }
    }
    let entry = Manager {
        manager: actor.manager.to_string(),
        operation: "Apply".into(),
        api_version: actor.api_version.to_string(),
        time: actor.now.to_string(),
        subresource: sub.to_string(),
        fields: applied,
    };
    match me {
        Some(me) => {
            let unchanged = entries[me].fields == entry.fields
                && entries[me].api_version == entry.api_version
                && same_except_managed_fields(live, &merged);
            if unchanged {
                // An apply that changes nothing keeps its timestamp and stays a no-op
                // (the real server ignores managedFields-only timestamp changes).
            } else {
                entries[me] = entry;
            }
        }
        None => entries.push(entry),
    }
    write_managers(&mut merged, &entries);
    Ok(merged)
}

fn conflict_error(entries: &[Manager], conflicts: &[(usize, FieldPath)]) -> ApiError {
    let dotted = |path: &FieldPath| -> String {
        path.iter()
            .map(|step| match step.strip_prefix("f:") {
                Some(f) => format!(".{f}"),
                None => format!("[{}]", &step[2..]),
            })
            .collect()
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(i, path)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", entries[*i].describe()),
                "field": dotted(path),
            })
        })
        .collect();
    let message = if let [(i, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*i].describe(),
            dotted(path)
        )
    } else {
        let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, path) in conflicts {
            by_manager
                .entry(entries[*i].describe())
                .or_default()
                .push(dotted(path));
        }
        let lines: Vec<String> = by_manager
            .iter()
            .flat_map(|(m, paths)| {
                std::iter::once(format!("conflicts with {m}:"))
                    .chain(paths.iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    errors::status(409, "Conflict", message, Some(json!({ "causes": causes })))
}

/// Record an update (not an apply) from `old` to `new` by `actor`: the fields it
/// changed become its own and leave every other manager; fields it removed leave
/// every manager. Writes `managedFields` into `new`.
pub fn track_update(old: Option<&Value>, new: &mut Value, actor: &Actor) {
    let mut entries = old.map(managers).unwrap_or_default();
    let empty = json!({});
    let old_value = old.unwrap_or(&empty);
    let before = field_set(old_value, actor.scope);
    let after = field_set(new, actor.scope);
    let changed: Vec<FieldPath> = after
        .iter()
        .filter(|p| value_at(old_value, p) != value_at(new, p))
        .cloned()
        .collect();
    let removed: Vec<FieldPath> = before.difference(&after).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_managers(new, &entries);
        return;
    }
    let sub = actor.scope.subresource();
    for entry in entries.iter_mut() {
        for path in changed.iter().chain(&removed) {
            remove_overlapping(&mut entry.fields, path);
        }
    }
    let position = entries
        .iter()
        .position(|m| m.same_identity(actor.manager, "Update", sub));
    let entry = match position {
        Some(i) => &mut entries[i],
        None => {
            entries.push(Manager {
                manager: actor.manager.to_string(),
                operation: "Update".into(),
                api_version: actor.api_version.to_string(),
                time: String::new(),
                subresource: sub.to_string(),
                fields: FieldSet::new(),
            });
            let last = entries.len() - 1;
            &mut entries[last]
        }
    };
    entry.fields.extend(changed);
    entry.time = actor.now.to_string();
    entry.api_version = actor.api_version.to_string();
    write_managers(new, &entries);
}
