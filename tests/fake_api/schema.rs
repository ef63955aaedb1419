//! Structural pruning and defaulting of custom resources, from the CRD's
//! `openAPIV3Schema`, as apiextensions-apiserver does on every write: fields the
//! schema does not know are dropped (unless `x-kubernetes-preserve-unknown-fields`),
//! missing fields with a `default` get it. `metadata` is handled as ObjectMeta for
//! every type (see [`prune_metadata`]). No validation against the schema is done.

use serde_json::Value;

/// Fields of ObjectMeta; anything else under `metadata` is dropped on decode.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Drop unknown metadata fields, as decoding into ObjectMeta does.
pub fn prune_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, v| OBJECT_META.contains(&k.as_str()) && !v.is_null());
    }
}

/// Prune and default a custom resource against its schema (root level: everything
/// but `apiVersion`, `kind` and `metadata`).
pub fn prune_and_default(obj: &mut Value, schema: &Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    map.retain(|k, _| {
        matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
            || preserve
            || props.is_some_and(|p| p.contains_key(k))
    });
    if let Some(props) = props {
        for (k, sub) in props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match map.get_mut(k) {
                Some(v) => visit(v, sub),
                None => {
                    if let Some(default) = sub.get("default") {
                        let mut v = default.clone();
                        visit(&mut v, sub);
                        map.insert(k.clone(), v);
                    }
                }
            }
        }
    }
}

fn visit(value: &mut Value, schema: &Value) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                if !preserve {
                    map.retain(|k, _| props.contains_key(k));
                }
                for (k, sub) in props {
                    match map.get_mut(k) {
                        Some(v) => visit(v, sub),
                        None => {
                            if let Some(default) = sub.get("default") {
                                let mut v = default.clone();
                                visit(&mut v, sub);
                                map.insert(k.clone(), v);
                            }
                        }
                    }
                }
            } else if let Some(additional) = schema.get("additionalProperties") {
                if additional.is_object() {
                    for v in map.values_mut() {
                        visit(v, additional);
                    }
                }
            } else if !preserve && schema.get("type").and_then(Value::as_str) == Some("object") {
                // An object schema without properties keeps nothing.
                map.clear();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    visit(item, item_schema);
                }
            }
        }
        _ => {}
    }
}
