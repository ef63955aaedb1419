//! JSON patch (RFC 6902) with the semantics of the library kube-apiserver uses
//! (evanphx/json-patch), and JSON merge patch (RFC 7386).

use serde_json::Value;

use super::errors::{self, ApiError};

/// Apply a JSON patch to `doc`. A `test` for `null` passes on a missing path (an
/// evanphx quirk the operator relies on); any failing operation fails the whole
/// patch with the 422 the patch handler answers.
pub fn json_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let ops: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(format!("error decoding patch: {e}")))?;
    let mut doc = doc.clone();
    for op in &ops.0 {
        if let json_patch::PatchOperation::Test(test) = op
            && test.value.is_null()
            && doc.pointer(test.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op))
            .map_err(|_| errors::json_patch_failed())?;
    }
    Ok(doc)
}

/// Apply a JSON merge patch to `doc`.
pub fn merge_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(errors::bad_request(
            "error decoding patch: a merge patch must be a JSON object",
        ));
    }
    let mut doc = doc.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}
