//! The field table of `docs/crd-reference.md`, generated from the CRD schema and
//! the defaulting core, so the reference cannot drift from the code (a test
//! compares the committed table with this output).

use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd::{DittoServer, DittoServerSpec, StorageSpec};
use crate::defaults::apply_defaults;

/// Embedded Kubernetes types documented by Kubernetes itself.
const EMBEDDED: [&str; 3] = ["resources", "securityContext", "podSecurityContext"];

/// Markdown table: field path, type, default, description.
pub fn field_table() -> String {
    let crd = serde_json::to_value(DittoServer::crd()).unwrap_or(Value::Null);
    let spec_schema = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .cloned()
        .unwrap_or(Value::Null);
    let mut defaulted = DittoServerSpec {
        storage: StorageSpec {
            metadata_size: "10Gi".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    apply_defaults(&mut defaulted);
    let defaults = serde_json::to_value(&defaulted).unwrap_or(Value::Null);

    let mut rows = vec![
        "| field | type | default | description |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    walk(&spec_schema, "spec", &defaults, &mut rows);
    rows.join("\n") + "\n"
}

fn walk(schema: &Value, path: &str, defaults: &Value, rows: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, child) in props {
        let here = format!("{path}.{name}");
        let default = defaults.get(name).cloned().unwrap_or(Value::Null);
        let ty = type_of(child);
        let shown_default = match (&default, ty.as_str()) {
            (Value::Null, _) | (Value::Object(_), _) => {
                if required.contains(&name.as_str()) {
                    "required".to_string()
                } else {
                    String::new()
                }
            }
            (v, _) => format!("`{}`", v.to_string().trim_matches('"')),
        };
        let description = child
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace("\n\n", " ")
            .replace('\n', " ")
            .replace('|', "\\|");
        let mut constraints = Vec::new();
        if let (Some(min), Some(max)) = (child.get("minimum"), child.get("maximum")) {
            constraints.push(format!("{min}–{max}").replace(".0", ""));
        } else if let Some(min) = child.get("minimum") {
            constraints.push(format!("≥ {min}").replace(".0", ""));
        }
        if let Some(p) = child.get("pattern").and_then(Value::as_str) {
            constraints.push(format!("pattern `{p}`"));
        }
        if let Some(e) = child.get("enum").and_then(Value::as_array) {
            let values: Vec<String> = e
                .iter()
                .filter_map(Value::as_str)
                .map(|v| format!("`{v}`"))
                .collect();
            constraints.push(format!("one of {}", values.join(", ")));
        }
        let constraints = if constraints.is_empty() {
            String::new()
        } else {
            format!(" ({})", constraints.join("; "))
        };
        rows.push(format!(
            "| `{here}` | {ty}{constraints} | {shown_default} | {description} |"
        ));
        if !EMBEDDED.contains(&name.as_str()) {
            walk(child, &here, &default, rows);
        }
    }
}

fn type_of(schema: &Value) -> String {
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => "list".into(),
        Some("object") if schema.get("additionalProperties").is_some() => "map".into(),
        Some(t) => t.into(),
        None => "object".into(),
    }
}
