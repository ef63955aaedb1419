//! The mutating webhook's JSON patch: add every missing default, touch nothing else.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::Value;

use super::apply_defaults;
use crate::crd::DittoServerSpec;

/// The defaulting patch of one spec: `raw` is the spec as written, `spec` its parse
/// (the caller has decoded it already). Only `add` operations under `/spec`,
/// parents before children, for every default that [`apply_defaults`] fills and
/// `raw` lacks or has as `null`; never removes or rewrites what the user wrote,
/// unknown fields included. Empty when nothing is missing.
pub fn spec_defaulting_patch(
    raw: &Value,
    spec: &DittoServerSpec,
) -> Result<Patch, serde_json::Error> {
    let mut defaulted = spec.clone();
    apply_defaults(&mut defaulted);
    // Diffed against the JSON as written, not against the parse: the parse may hold
    // fields the JSON lacks (k8s-openapi fills a missing required field such as
    // `seccompProfile.type` with ""), and those are reported as additions too.
    let wanted = serde_json::to_value(&defaulted)?;
    let mut ops = Vec::new();
    let mut path = PointerBuf::from_tokens(["spec"]);
    collect_additions(raw, &wanted, &mut path, &mut ops);
    Ok(Patch(ops))
}

/// Add what `wanted` has and `current` lacks; recurse where both have an object,
/// and into the items of a list (defaulting never adds or removes items).
fn collect_additions(
    current: &Value,
    wanted: &Value,
    path: &mut PointerBuf,
    ops: &mut Vec<PatchOperation>,
) {
    let (have, want) = match (current, wanted) {
        (Value::Object(have), Value::Object(want)) => (have, want),
        (Value::Array(have), Value::Array(want)) if have.len() == want.len() => {
            for (index, (have, want)) in have.iter().zip(want).enumerate() {
                path.push_back(index.to_string());
                collect_additions(have, want, path, ops);
                path.pop_back();
            }
            return;
        }
        _ => return,
    };
    for (key, value) in want {
        path.push_back(key.as_str());
        match have.get(key) {
            // An explicit null is "unset" to the API server too: replace it by the default.
            None | Some(Value::Null) => ops.push(PatchOperation::Add(AddOperation {
                path: path.clone(),
                value: value.clone(),
            })),
            Some(existing) => collect_additions(existing, value, path, ops),
        }
        path.pop_back();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::parse_spec;

    /// The patch of a whole object, as the webhook computes it.
    fn defaulting_patch(object: &Value) -> Patch {
        let raw = &object["spec"];
        let spec = parse_spec(raw).expect("spec parses");
        spec_defaulting_patch(raw, &spec).expect("patch")
    }

    fn apply(object: &Value, patch: &Patch) -> Value {
        let mut out = object.clone();
        json_patch::patch(&mut out, patch).expect("patch applies");
        out
    }

    #[test]
    fn fills_every_block_when_absent() {
        let obj = json!({"spec": {"storage": {"metadataSize": "10Gi"}}});
        let patch = defaulting_patch(&obj);
        let patched = apply(&obj, &patch);
        let mut expected: DittoServerSpec = parse_spec(&obj["spec"]).unwrap();
        apply_defaults(&mut expected);
        assert_eq!(patched["spec"], serde_json::to_value(&expected).unwrap());
        for key in [
            "image",
            "replicas",
            "database",
            "metrics",
            "controlPlane",
            "identity",
            "service",
            "nfsPort",
            "smb",
            "percona",
        ] {
            assert!(patched["spec"].get(key).is_some(), "{key} defaulted");
        }
        assert_eq!(patched["spec"]["service"]["type"], "LoadBalancer");
        assert_eq!(patched["spec"]["nfsAdapterPort"], 12049);
    }

    #[test]
    fn is_idempotent() {
        let obj = json!({"spec": {"storage": {"metadataSize": "10Gi"}, "smb": {"enabled": true}}});
        let once = apply(&obj, &defaulting_patch(&obj));
        assert!(defaulting_patch(&once).0.is_empty());
    }

    #[test]
    fn keeps_user_values_and_unknown_fields() {
        let obj = json!({"spec": {
            "storage": {"metadataSize": "10Gi", "cacheSize": "7Gi"},
            "service": {"type": "NodePort"},
            "metrics": {"enabled": true},
            "futureField": {"x": 1}
        }});
        let patch = defaulting_patch(&obj);
        assert!(
            patch
                .0
                .iter()
                .all(|op| matches!(op, PatchOperation::Add(_)))
        );
        let patched = apply(&obj, &patch);
        assert_eq!(patched["spec"]["storage"]["cacheSize"], "7Gi");
        assert_eq!(patched["spec"]["service"]["type"], "NodePort");
        assert_eq!(patched["spec"]["metrics"]["port"], 9090);
        assert_eq!(patched["spec"]["futureField"], json!({"x": 1}));
    }

    #[test]
    fn present_blocks_get_only_their_missing_fields() {
        let obj =
            json!({"spec": {"storage": {"metadataSize": "1Gi"}, "controlPlane": {"port": 9000}}});
        let patched = apply(&obj, &defaulting_patch(&obj));
        // The client port follows the server port unless set.
        assert_eq!(
            patched["spec"]["controlPlane"],
            json!({"port": 9000, "servicePort": 9000})
        );
    }

    #[test]
    fn defaults_inside_list_items_are_added() {
        let obj = json!({"spec": {"storage": {"metadataSize": "1Gi"},
            "metadataStores": [{"name": "m", "type": "badger"}],
            "shares": [{"name": "/export", "metadataStore": "m", "localBlockStore": "l", "readOnly": true}]}});
        let patched = apply(&obj, &defaulting_patch(&obj));
        assert_eq!(
            patched["spec"]["metadataStores"][0]["badger"],
            json!({"path": "/data/metadata"})
        );
        assert_eq!(patched["spec"]["shares"][0]["defaultPermission"], "none");
        assert_eq!(patched["spec"]["shares"][0]["readOnly"], true);
        assert!(defaulting_patch(&patched).0.is_empty(), "idempotent");
    }

    #[test]
    fn snapshot_policies_get_enabled_keep_last_and_prefix_not_a_ttl() {
        let obj = json!({"spec": {"storage": {"metadataSize": "1Gi"},
            "snapshotPolicies": [
                {"share": "/export", "interval": "@daily"},
                {"share": "/archive", "interval": "1h", "enabled": false, "keepLast": 3, "namePrefix": "hourly"}]}});
        let patched = apply(&obj, &defaulting_patch(&obj));
        assert_eq!(
            patched["spec"]["snapshotPolicies"],
            json!([
                {"share": "/export", "interval": "@daily", "enabled": true, "keepLast": 0, "namePrefix": "scheduled"},
                {"share": "/archive", "interval": "1h", "enabled": false, "keepLast": 3, "namePrefix": "hourly"}])
        );
        assert!(defaulting_patch(&patched).0.is_empty(), "idempotent");
    }

    #[test]
    fn names_the_field_that_does_not_parse() {
        let err = parse_spec(json!({"storage": {"metadataSize": 10}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("spec.storage.metadataSize: invalid type"),
            "{err}"
        );
        // The spec as a whole is `spec`, never `spec.` or `spec..`.
        let err = parse_spec(json!({})).unwrap_err().to_string();
        assert!(err.starts_with("spec: missing field `storage`"), "{err}");
    }
}
