//! Structural pruning and defaulting of custom resources, from the CRD's
//! `openAPIV3Schema`, as apiextensions-apiserver does on every write: fields the
//! schema does not know are dropped (unless `x-kubernetes-preserve-unknown-fields`),
//! missing fields with a `default` get it. `metadata` is handled as ObjectMeta for
//! every type (see [`prune_metadata`]). Of validation against the schema, only
//! `type` is checked ([`type_errors`]).

use serde_json::Value;

use super::errors::FieldError;

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

/// Values of the wrong `type` in a custom resource (after pruning and defaulting),
/// as the API server's schema validation reports them: `spec.x: Invalid value:
/// "string": spec.x in body must be of type boolean: "string"`. Nothing but `type`
/// is checked; `x-kubernetes-int-or-string` is honoured; `null` is never refused
/// (the real server keeps it where `nullable` and prunes it elsewhere, which the
/// fake does not). On an update (`old` given), a value equal to the stored one at
/// the same path is not judged again (validation ratcheting, on by default since
/// 1.30), so an object stored under a looser schema can still have its status and
/// metadata written.
pub fn type_errors(obj: &Value, old: Option<&Value>, schema: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let (Some(map), Some(props)) = (
        obj.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for (k, v) in map {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(sub) = props.get(k) {
                check_type(v, old.and_then(|o| o.get(k)), sub, k.clone(), &mut errors);
            }
        }
    }
    errors
}

/// The JSON type of `value`, as the API server names it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_type(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: String,
    errors: &mut Vec<FieldError>,
) {
    if old == Some(value) || value.is_null() {
        return;
    }
    let integral = value.as_f64().is_some_and(|f| f.fract() == 0.0);
    let (ok, wanted) = if schema["x-kubernetes-int-or-string"] == true {
        (integral || value.is_string(), "integer or string")
    } else {
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => (value.is_object(), "object"),
            Some("array") => (value.is_array(), "array"),
            Some("string") => (value.is_string(), "string"),
            Some("boolean") => (value.is_boolean(), "boolean"),
            Some("integer") => (integral, "integer"),
            Some("number") => (value.is_number(), "number"),
            _ => (true, ""),
        }
    };
    if !ok {
        let got = type_name(value);
        errors.push(FieldError {
            reason: "FieldValueTypeInvalid",
            message: format!(
                "Invalid value: \"{got}\": {path} in body must be of type {wanted}: \"{got}\""
            ),
            field: path,
        });
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
                    let old = old.and_then(|o| o.get(k));
                    check_type(v, old, sub, format!("{path}.{k}"), errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let old = old.and_then(|o| o.get(i));
                    check_type(item, old, item_schema, format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}
