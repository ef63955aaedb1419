//! Reading manifests for the offline commands: files (or stdin), multi-document
//! YAML, and picking out DittoServers and Secrets with clear errors.

use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::crd::{DittoServer, GROUP, KIND, VERSION};

/// Why a manifest could not be used.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: document {index}: not valid YAML: {message}")]
    Yaml {
        path: String,
        index: usize,
        message: String,
    },
    #[error("{path}: document {index} ({kind} {name}): {message}")]
    Invalid {
        path: String,
        index: usize,
        kind: String,
        name: String,
        message: String,
    },
    #[error("{path}: no DittoServer found (expected apiVersion {GROUP}/{VERSION}, kind {KIND})")]
    NoDittoServer { path: String },
    #[error("{path}: the directory holds no .yaml or .yml file")]
    EmptyDirectory { path: String },
}

/// One YAML document of a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: String,
    /// 1-based position in the file.
    pub index: usize,
    pub value: Value,
}

impl Document {
    fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    fn name(&self) -> String {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<no name>")
            .to_string()
    }
    fn invalid(&self, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.clone(),
            index: self.index,
            kind: self.kind().to_string(),
            name: self.name(),
            message: message.into(),
        }
    }
}

/// Expand directories to their `*.yaml`/`*.yml` files (sorted, not recursive).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|source| ManifestError::Read {
                path: p.display().to_string(),
                source,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            if files.is_empty() {
                return Err(ManifestError::EmptyDirectory {
                    path: p.display().to_string(),
                });
            }
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Read every YAML document of `path` (`-` = stdin). Empty documents are skipped.
pub fn load_documents(path: &Path) -> Result<Vec<Document>, ManifestError> {
    let shown = path.display().to_string();
    let text = if shown == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|source| ManifestError::Read {
                path: "<stdin>".into(),
                source,
            })?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: shown.clone(),
            source,
        })?
    };
    parse_documents(&shown, &text)
}

/// Split and parse multi-document YAML text.
pub fn parse_documents(path: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| ManifestError::Yaml {
            path: path.to_string(),
            index: i + 1,
            message: e.to_string(),
        })?;
        if !value.is_null() {
            docs.push(Document {
                path: path.to_string(),
                index: i + 1,
                value,
            });
        }
    }
    Ok(docs)
}

/// Is this document meant to be a DittoServer (by kind)?
pub fn is_ditto_server(doc: &Document) -> bool {
    doc.kind() == KIND
}

/// Parse a DittoServer document strictly: right apiVersion, a name, a spec whose
/// every field is known (a typo must not silently become a default).
pub fn ditto_server(doc: &Document) -> Result<DittoServer, ManifestError> {
    let expected = format!("{GROUP}/{VERSION}");
    if doc.api_version() != expected {
        return Err(doc.invalid(format!(
            "apiVersion is {:?}: use {expected}",
            doc.api_version()
        )));
    }
    if doc
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(doc.invalid("metadata.name is required"));
    }
    let spec = doc
        .value
        .get("spec")
        .ok_or_else(|| doc.invalid(crate::crd::SpecParseError::missing().to_string()))?;
    if let Some(unknown) = first_unknown_field(spec) {
        return Err(doc.invalid(format!(
            "spec.{unknown} is not a DittoServer field: check the spelling (see docs/crd-reference.md)"
        )));
    }
    crate::crd::parse_spec(spec).map_err(|e| doc.invalid(e.to_string()))?;
    serde_json::from_value(doc.value.clone()).map_err(|e| doc.invalid(e.to_string()))
}

/// Parse a core/v1 Secret document.
pub fn secret(doc: &Document) -> Option<Result<Secret, ManifestError>> {
    (doc.kind() == "Secret" && doc.api_version() == "v1").then(|| {
        serde_json::from_value::<Secret>(doc.value.clone()).map_err(|e| doc.invalid(e.to_string()))
    })
}

/// The first field under `spec` that the DittoServer schema does not know, found by
/// comparing against the generated CRD schema (so it never drifts from the types).
fn first_unknown_field(spec: &Value) -> Option<String> {
    let crd = serde_json::to_value(crate::schema::crd()).ok()?;
    let schema = crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")?;
    unknown_in(spec, schema, "")
}

fn unknown_in(value: &Value, schema: &Value, prefix: &str) -> Option<String> {
    let Value::Object(map) = value else {
        return None;
    };
    // Embedded Kubernetes types (resources, securityContext) and free-form maps.
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return None;
    }
    let props = schema.get("properties")?.as_object()?;
    for (key, child) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match props.get(key) {
            None => return Some(path),
            Some(child_schema) => {
                if let Some(found) = unknown_in(child, child_schema, &path) {
                    return Some(found);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        parse_documents("t.yaml", text).unwrap().remove(0)
    }

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = parse_documents("t.yaml", "---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["b"], 2);
    }

    #[test]
    fn reports_yaml_errors_with_position() {
        let err = parse_documents("t.yaml", "a: 1\n---\nb: [\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.yaml: document 2: not valid YAML"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_spec_fields() {
        let d = doc(
            "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {name: x}\nspec:\n  storage: {metadataSize: 1Gi, metdataSize: 2Gi}\n",
        );
        let err = ditto_server(&d).unwrap_err().to_string();
        assert!(
            err.contains("spec.storage.metdataSize is not a DittoServer field"),
            "{err}"
        );
    }

    #[test]
    fn accepts_embedded_kubernetes_types() {
        let d = doc(
            "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {name: x}\nspec:\n  storage: {metadataSize: 1Gi}\n  resources: {limits: {memory: 1Gi}}\n  securityContext: {runAsUser: 1000}\n",
        );
        assert!(ditto_server(&d).is_ok());
    }

    #[test]
    fn rejects_wrong_api_version_and_bad_types() {
        let d = doc(
            "apiVersion: dittofs.dittofs.com/v1\nkind: DittoServer\nmetadata: {name: x}\nspec: {}\n",
        );
        assert!(
            ditto_server(&d)
                .unwrap_err()
                .to_string()
                .contains("use dittofs.dittofs.com/v1alpha1")
        );
        let d = doc(
            "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {name: x}\nspec:\n  storage: {metadataSize: 1Gi}\n  replicas: one\n",
        );
        assert!(
            ditto_server(&d)
                .unwrap_err()
                .to_string()
                .contains("spec.replicas: invalid type")
        );
    }
}
