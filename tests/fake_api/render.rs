//! Encoding answers: objects in the version the client asked for, or as
//! `PartialObjectMetadata`; lists; watch events.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::handlers::View;
use super::registry::TypeInfo;

/// `obj` as the client sees it.
pub fn object<'a>(obj: &'a Value, info: &TypeInfo, version: &str, view: View) -> Cow<'a, Value> {
    match view {
        View::Metadata | View::MetadataList => Cow::Owned(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        })),
        View::Full if version == info.storage_version() => Cow::Borrowed(obj),
        View::Full => {
            // Versions of a custom type share one schema here: no conversion.
            let mut converted = obj.clone();
            converted["apiVersion"] = json!(info.api_version(version));
            Cow::Owned(converted)
        }
    }
}

fn push_json(out: &mut Vec<u8>, value: &Value) {
    // Encoding a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A list, encoded item by item (no copy of the items).
pub fn list(
    info: &TypeInfo,
    version: &str,
    view: View,
    resource_version: u64,
    continue_token: Option<&str>,
    remaining: Option<usize>,
    items: &[std::sync::Arc<Value>],
) -> Vec<u8> {
    let (kind, api_version) = match view {
        View::Full => (info.list_kind.clone(), info.api_version(version)),
        View::Metadata | View::MetadataList => (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        ),
    };
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if let Some(token) = continue_token {
        meta["continue"] = json!(token);
    }
    if let Some(n) = remaining {
        meta["remainingItemCount"] = json!(n);
    }
    let mut out = Vec::with_capacity(256 + items.len() * 1024);
    out.extend_from_slice(b"{\"kind\":");
    push_json(&mut out, &json!(kind));
    out.extend_from_slice(b",\"apiVersion\":");
    push_json(&mut out, &json!(api_version));
    out.extend_from_slice(b",\"metadata\":");
    push_json(&mut out, &meta);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json(&mut out, &object(item, info, version, view));
    }
    out.extend_from_slice(b"]}");
    out
}

/// One line of a watch stream.
pub fn event(kind: &str, object: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    push_json(&mut out, object);
    out.extend_from_slice(b"}\n");
    out
}

/// A BOOKMARK event's object: only kind, apiVersion and resourceVersion (and the
/// `k8s.io/initial-events-end` annotation ending the initial events).
pub fn bookmark(info: &TypeInfo, version: &str, view: View, rv: u64, initial_end: bool) -> Value {
    let (kind, api_version) = match view {
        View::Full => (info.kind.clone(), info.api_version(version)),
        View::Metadata | View::MetadataList => (
            "PartialObjectMetadata".to_string(),
            "meta.k8s.io/v1".to_string(),
        ),
    };
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": kind, "apiVersion": api_version, "metadata": metadata})
}
