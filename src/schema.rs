//! The DittoServer CRD as installed, and the field table of `docs/crd-reference.md`.
//!
//! The schema is derived from the Rust types ([`crate::crd`]); two things are laid
//! over it here, each from its one definition: every field's default, appended to
//! its description from the defaulting core (so `kubectl explain` says what an
//! unset field becomes), and the CEL transition rules of the storage fields that
//! cannot change ([`crate::validation::immutable`]). Every committed copy is
//! checked against [`crd`] by a test.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, ValidationRule,
};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd::*;
use crate::defaults::{DERIVED_DEFAULTS, apply_defaults};
use crate::validation::immutable;

/// The CRD: the derived schema, with defaults in its descriptions and the storage
/// transition rules.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = DittoServer::crd();
    let spec = crd
        .spec
        .versions
        .iter_mut()
        .filter_map(|v| v.schema.as_mut()?.open_api_v3_schema.as_mut())
        .filter_map(|root| root.properties.as_mut()?.get_mut("spec"));
    for spec in spec {
        for (path, default) in documented_defaults() {
            if let Some(field) = field_mut(spec, &path) {
                let description = field.description.get_or_insert_with(String::new);
                if !description.is_empty() {
                    description.push(' ');
                }
                description.push_str(&format!("Default: {default}."));
            }
        }
        if let Some(storage) = field_mut(spec, "storage") {
            storage.x_kubernetes_validations = Some(
                immutable::STORAGE
                    .iter()
                    .map(|f| storage_rule(f.cel_rule()))
                    .collect(),
            );
        }
    }
    crd
}

/// The CRD as YAML, exactly as committed in the chart and `dittofs-operator crd` prints.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&crd())
}

fn storage_rule(rule: kube::core::Rule) -> ValidationRule {
    ValidationRule {
        rule: rule.rule,
        message: rule.message.and_then(|m| match m {
            kube::core::Message::Message(m) => Some(m),
            kube::core::Message::Expression(_) => None,
        }),
        reason: rule.reason.map(|r| match r {
            kube::core::Reason::FieldValueInvalid => "FieldValueInvalid".to_string(),
            kube::core::Reason::FieldValueForbidden => "FieldValueForbidden".to_string(),
            kube::core::Reason::FieldValueRequired => "FieldValueRequired".to_string(),
            kube::core::Reason::FieldValueDuplicate => "FieldValueDuplicate".to_string(),
        }),
        field_path: rule.field_path,
        ..Default::default()
    }
}

/// The schema of `spec.<path>` (dotted, below `spec`).
fn field_mut<'a>(spec: &'a mut JSONSchemaProps, path: &str) -> Option<&'a mut JSONSchemaProps> {
    path.split('.').try_fold(spec, |schema, name| {
        schema.properties.as_mut()?.get_mut(name)
    })
}

/// Every default, by path below `spec`, as the descriptions state it: the value
/// the defaulting core writes (as `` `value` ``), or for a default that follows
/// another field, what [`DERIVED_DEFAULTS`] says.
pub fn documented_defaults() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // The smallest spec first: where a default depends on what else is enabled,
    // the value shown is that of the plain case. Then every optional block
    // enabled, for the defaults that exist only with it.
    let percona_only = DittoServerSpec {
        percona: Some(PerconaSpec {
            enabled: Some(true),
            ..Default::default()
        }),
        ..minimal_spec()
    };
    // LDAP and Kerberos present but not enabled: `enabled` defaults to false.
    let identity_off = DittoServerSpec {
        identity: Some(IdentitySpec {
            ldap: Some(LdapSpec::default()),
            kerberos: Some(KerberosSpec {
                machine_account: Some(MachineAccountSpec::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..minimal_spec()
    };
    for spec in [
        minimal_spec(),
        percona_only,
        identity_off,
        everything_enabled_spec(),
    ] {
        let written = serde_json::to_value(&spec).unwrap_or(Value::Null);
        let mut defaulted = spec;
        apply_defaults(&mut defaulted);
        let defaulted = serde_json::to_value(&defaulted).unwrap_or(Value::Null);
        collect_defaults(&written, &defaulted, "", &mut out);
    }
    for (path, text) in DERIVED_DEFAULTS {
        if let Some(path) = path.strip_prefix("spec.") {
            out.insert(path.to_string(), text.to_string());
        }
    }
    out
}

/// Leaves `defaulted` has and `written` lacks, by dotted path.
fn collect_defaults(
    written: &Value,
    defaulted: &Value,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) {
    let Value::Object(fields) = defaulted else {
        return;
    };
    for (name, value) in fields {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let before = written.get(name).unwrap_or(&Value::Null);
        match value {
            Value::Object(_) => collect_defaults(before, value, &path, out),
            leaf if before.is_null() => {
                out.entry(path)
                    .or_insert_with(|| format!("`{}`", leaf.to_string().trim_matches('"')));
            }
            _ => {}
        }
    }
}

/// The smallest valid spec.
pub fn minimal_spec() -> DittoServerSpec {
    DittoServerSpec {
        storage: StorageSpec {
            metadata_size: "10Gi".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A spec with every optional block switched on and nothing else written: its
/// defaulting shows the defaults that exist only with those blocks.
pub fn everything_enabled_spec() -> DittoServerSpec {
    DittoServerSpec {
        percona: Some(PerconaSpec {
            enabled: Some(true),
            backup: Some(PerconaBackupSpec {
                enabled: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }),
        s3: Some(S3Spec {
            credentials_secret_ref: Some(S3CredentialsSecretRef {
                secret_name: "s3".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        identity: Some(IdentitySpec {
            ldap: Some(LdapSpec {
                enabled: Some(true),
                ..Default::default()
            }),
            kerberos: Some(KerberosSpec {
                enabled: Some(true),
                machine_account: Some(MachineAccountSpec {
                    enabled: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..minimal_spec()
    }
}

/// Embedded Kubernetes types documented by Kubernetes itself.
const EMBEDDED: [&str; 3] = ["resources", "securityContext", "podSecurityContext"];

/// The field table of `docs/crd-reference.md`: path, type (with constraints),
/// default and description, from [`crd`].
pub fn field_table() -> String {
    let crd = serde_json::to_value(crd()).unwrap_or(Value::Null);
    let spec_schema = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .cloned()
        .unwrap_or(Value::Null);
    let defaults = documented_defaults();
    let mut rows = vec![
        "| field | type | default | description |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    walk(&spec_schema, "", &defaults, &mut rows);
    rows.join("\n") + "\n"
}

fn walk(schema: &Value, path: &str, defaults: &BTreeMap<String, String>, rows: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, child) in props {
        let here = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let shown_default = match defaults.get(&here) {
            Some(default) => default.clone(),
            None if required.contains(&name.as_str()) => "required".to_string(),
            None => String::new(),
        };
        // The description without the default it ends with: the table has a column.
        let description = child
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let description = defaults
            .get(&here)
            .and_then(|d| description.strip_suffix(&format!("Default: {d}.")))
            .unwrap_or(description)
            .trim_end()
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
        let ty = type_of(child);
        rows.push(format!(
            "| `spec.{here}` | {ty}{constraints} | {shown_default} | {description} |"
        ));
        if !EMBEDDED.contains(&name.as_str()) {
            walk(child, &here, defaults, rows);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::parse_spec;

    /// Every leaf of `value`, by dotted path.
    fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(fields) => {
                for (name, v) in fields {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    leaves(v, &path, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }

    fn defaulted_leaves(spec: &DittoServerSpec) -> BTreeMap<String, Value> {
        let mut spec = spec.clone();
        apply_defaults(&mut spec);
        let mut out = BTreeMap::new();
        leaves(&serde_json::to_value(&spec).expect("spec"), "", &mut out);
        out
    }

    /// A default that moves when another field is written is listed in
    /// `DERIVED_DEFAULTS`: otherwise the descriptions would state one value for it.
    #[test]
    fn every_default_that_follows_another_field_is_listed() {
        let derived: Vec<&str> = DERIVED_DEFAULTS.iter().map(|(p, _)| *p).collect();
        for base in [minimal_spec(), everything_enabled_spec()] {
            let before = defaulted_leaves(&base);
            for (path, value) in &before {
                // Write this one field with another value, the rest as in `base`.
                let other = match value {
                    Value::Bool(b) => Value::Bool(!b),
                    Value::Number(n) => Value::from(n.as_i64().unwrap_or(0) + 1),
                    Value::String(s) => Value::String(format!("{s}x")),
                    _ => continue,
                };
                let mut written = serde_json::to_value(&base).expect("spec");
                let pointer = format!("/{}", path.replace('.', "/"));
                let mut at = &mut written;
                for token in pointer.split('/').skip(1) {
                    at = &mut at[token];
                }
                *at = other;
                let Ok(variant) = parse_spec(&written) else {
                    continue;
                };
                for (moved, after) in defaulted_leaves(&variant) {
                    let unchanged = before.get(&moved).is_none_or(|b| *b == after);
                    if moved != *path && !unchanged {
                        assert!(
                            derived.contains(&format!("spec.{moved}").as_str()),
                            "spec.{moved} follows spec.{path}: list it in DERIVED_DEFAULTS"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn descriptions_state_each_default_once() {
        let crd = serde_json::to_value(crd()).expect("CRD");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let cache = spec["properties"]["storage"]["properties"]["cacheSize"]["description"]
            .as_str()
            .expect("description");
        assert!(cache.ends_with("Default: `5Gi`."), "{cache}");
        let service_port =
            spec["properties"]["controlPlane"]["properties"]["servicePort"]["description"]
                .as_str()
                .expect("description");
        assert!(
            service_port.ends_with("Default: the value of `port`."),
            "{service_port}"
        );
        let text = serde_json::to_string(&crd).expect("CRD text");
        assert!(
            !text.contains("(default"),
            "a default written as prose in crd.rs"
        );
    }
}
