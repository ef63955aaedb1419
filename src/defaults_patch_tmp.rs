//! TEMPORARY (webhook branch only): `defaulting_patch` until the core branch's
//! implementation of `crate::defaults::defaulting_patch` is merged. At merge: delete
//! this file, its `mod` line in `lib.rs` and the `pub use` at the end of
//! `defaults.rs`; the webhook calls `crate::defaults::defaulting_patch` either way.

use json_patch::{Patch, PatchOperation};

use crate::crd::DittoServerSpec;
use crate::defaults::apply_defaults;

/// Why no defaulting patch could be computed.
#[derive(Debug, thiserror::Error)]
pub enum DefaultingError {
    #[error("spec: required; a DittoServer needs at least `spec.storage.metadataSize`")]
    MissingSpec,
    #[error("{path}: {message}")]
    InvalidSpec { path: String, message: String },
    #[error("cannot serialize the spec: {0}")]
    Serialize(serde_json::Error),
}

/// The JSON patch (only `add` operations, paths from the object root) that writes
/// every effective default into `object`'s spec. Empty when nothing is missing.
pub fn defaulting_patch(object: &serde_json::Value) -> Result<Patch, DefaultingError> {
    let raw = object.get("spec").ok_or(DefaultingError::MissingSpec)?;
    let mut spec: DittoServerSpec = serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        DefaultingError::InvalidSpec {
            path: if path == "." {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            },
            message: e.into_inner().to_string(),
        }
    })?;
    // Diff our own serialization before and after defaulting, so fields we do not
    // model (or formatting) never turn into removals or replacements.
    let before = serde_json::to_value(&spec).map_err(DefaultingError::Serialize)?;
    apply_defaults(&mut spec);
    let after = serde_json::to_value(&spec).map_err(DefaultingError::Serialize)?;
    let ops = json_patch::diff(&before, &after)
        .0
        .into_iter()
        .filter_map(|op| match op {
            PatchOperation::Add(mut add) => {
                add.path = add.path.with_leading_token("spec");
                Some(PatchOperation::Add(add))
            }
            _ => None,
        })
        .collect();
    Ok(Patch(ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_adds_defaults_under_spec_and_applies_cleanly() {
        let mut object = json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1",
            "kind": "DittoServer",
            "metadata": {"name": "a"},
            "spec": {"storage": {"metadataSize": "1Gi"}, "replicas": 0}
        });
        let patch = defaulting_patch(&object).unwrap();
        assert!(!patch.0.is_empty());
        assert!(patch.0.iter().all(
            |op| matches!(op, PatchOperation::Add(a) if a.path.as_str().starts_with("/spec/"))
        ));
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(object["spec"]["replicas"], 0, "a set value is kept");
        assert_eq!(object["spec"]["image"], crate::defaults::DEFAULT_IMAGE);
        assert!(
            defaulting_patch(&object).unwrap().0.is_empty(),
            "idempotent"
        );
    }

    #[test]
    fn an_unparsable_spec_names_the_field() {
        let object = json!({"spec": {"storage": {"metadataSize": "1Gi"}, "nfsPort": "x"}});
        let err = defaulting_patch(&object).unwrap_err().to_string();
        assert!(err.starts_with("spec.nfsPort: "), "{err}");
    }
}
