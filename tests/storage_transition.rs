//! The storage fields that cannot change, judged twice the way a cluster judges
//! them: by the CRD's CEL transition rules (evaluated here with `self` and
//! `oldSelf`, as the API server binds them on an UPDATE) and by the validation
//! core's UPDATE rule. Both come from `validation::immutable`; for every pair of old
//! and new values (unset, empty, the default, another value) they must agree.

use std::collections::BTreeSet;

use dittofs_operator::crd::DittoServer;
use dittofs_operator::validation::{Offline, immutable, validate};
use futures::executor::block_on;
use serde_json::{Map, Value, json};

/// The CEL rules on `spec.storage`, as the generated CRD carries them.
fn storage_rules() -> Vec<(String, String)> {
    let crd = serde_json::to_value(dittofs_operator::schema::crd()).expect("CRD as JSON");
    let rules = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/storage/x-kubernetes-validations")
        .and_then(Value::as_array)
        .expect("storage has transition rules");
    rules
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().expect("rule").to_string(),
                r["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

/// The fields every CEL rule refuses to let change from `old` to `new`.
fn refused_by_cel(old: &Value, new: &Value) -> BTreeSet<String> {
    let mut refused = BTreeSet::new();
    for (rule, message) in storage_rules() {
        let program = cel::Program::compile(&rule).unwrap_or_else(|e| panic!("{rule}: {e:?}"));
        let mut context = cel::Context::default();
        context
            .add_variable("self", cel::to_value(new).expect("self"))
            .expect("self");
        context
            .add_variable("oldSelf", cel::to_value(old).expect("oldSelf"))
            .expect("oldSelf");
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                // Each message starts with `storage.<field>`.
                let field = message
                    .strip_prefix("storage.")
                    .and_then(|m| m.split_whitespace().next())
                    .expect("message names its field");
                refused.insert(field.to_string());
            }
            other => panic!("{rule}: {other:?} for {old} -> {new}"),
        }
    }
    refused
}

/// The fields the validation core refuses to let change from `old` to `new` (its
/// transition findings: an empty value is also refused on its own, whatever the
/// old object held, and that is not what is compared here).
fn refused_by_core(old: &Value, new: &Value) -> BTreeSet<String> {
    let object = |storage: &Value| -> DittoServer {
        serde_json::from_value(json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {"storage": storage},
        }))
        .expect("DittoServer")
    };
    block_on(validate(&object(new), Some(&object(old)), &Offline))
        .errors
        .iter()
        .filter(|f| f.message.starts_with("cannot "))
        .filter_map(|f| f.field.strip_prefix("spec.storage."))
        .map(str::to_string)
        .collect()
}

/// The values a field can take in a test: unset, empty, its default (or, without
/// one, some value), another.
fn values(field: &str, default: &str) -> Vec<Option<String>> {
    let (some, other) = match (field, default) {
        ("storageClassName", _) => ("standard", "fast"),
        (_, "") => ("2Gi", "3Gi"),
        (_, default) => (default, "3Gi"),
    };
    vec![
        None,
        Some(String::new()),
        Some(some.into()),
        Some(other.into()),
    ]
}

fn storage(field: &str, value: Option<&str>) -> Value {
    let mut map = Map::new();
    // The required size stays fixed unless it is the field under test.
    map.insert("metadataSize".into(), json!("10Gi"));
    match value {
        Some(v) => {
            map.insert(field.into(), json!(v));
        }
        None => {
            map.remove(field);
        }
    }
    Value::Object(map)
}

#[test]
fn cel_rules_and_the_core_agree_on_every_transition() {
    let mut compared = 0;
    for f in &immutable::STORAGE {
        let values = values(f.field, f.default);
        for old in &values {
            for new in &values {
                // metadataSize is required: the API server refuses it unset before
                // any rule runs.
                if f.field == "metadataSize" && (old.is_none() || new.is_none()) {
                    continue;
                }
                let (old, new) = (
                    storage(f.field, old.as_deref()),
                    storage(f.field, new.as_deref()),
                );
                let cel = refused_by_cel(&old, &new);
                let core = refused_by_core(&old, &new);
                assert_eq!(cel, core, "{} -> {}", old, new);
                compared += 1;
            }
        }
    }
    assert!(compared >= 70, "only {compared} transitions compared");
}

#[test]
fn unset_empty_and_default_are_one_value_and_a_change_is_refused() {
    let unset = json!({"metadataSize": "10Gi"});
    for same in [
        json!({"metadataSize": "10Gi", "cacheSize": "5Gi"}),
        json!({"metadataSize": "10Gi", "cacheSize": ""}),
        json!({"metadataSize": "10Gi", "storageClassName": ""}),
        json!({"metadataSize": "10Gi", "contentSize": ""}),
    ] {
        assert!(refused_by_cel(&unset, &same).is_empty(), "{same}");
        assert!(refused_by_cel(&same, &unset).is_empty(), "{same}");
    }
    let grown = json!({"metadataSize": "20Gi", "cacheSize": "6Gi", "contentSize": "1Gi", "storageClassName": "fast", "controlPlaneSize": "2Gi"});
    let expected: BTreeSet<String> = immutable::STORAGE
        .iter()
        .map(|f| f.field.to_string())
        .collect();
    assert_eq!(refused_by_cel(&unset, &grown), expected);
    assert_eq!(refused_by_core(&unset, &grown), expected);
}
