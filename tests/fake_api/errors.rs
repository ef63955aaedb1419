//! Failure answers, shaped like the ones k8s.io/apimachinery's `errors` package
//! builds in kube-apiserver (code, reason, message wording, details).

use serde_json::{Value, json};

use super::registry::TypeInfo;

/// A failed request.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// A `Status` object with this HTTP code.
    Status(u16, Value),
    /// The final not-found handler: `404 page not found`, plain text.
    PlainNotFound,
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::Status(code, _) => *code,
            ApiError::PlainNotFound => 404,
        }
    }
}

/// A failure `Status`.
pub fn status(
    code: u16,
    reason: &str,
    message: impl Into<String>,
    details: Option<Value>,
) -> ApiError {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    ApiError::Status(code, body)
}

/// `{name, group, kind}` details, omitting empty fields as Go's `omitempty` does.
fn details(ty: &TypeInfo, name: &str, kind: &str) -> Value {
    let mut d = json!({});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !ty.group.is_empty() {
        d["group"] = json!(ty.group);
    }
    d["kind"] = json!(kind);
    d
}

/// `configmaps "x" not found` (NewNotFound).
pub fn not_found(ty: &TypeInfo, name: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", ty.group_resource()),
        Some(details(ty, name, &ty.resource)),
    )
}

/// `namespaces "x" not found`, for an object created in a missing namespace.
pub fn namespace_not_found(namespace: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("namespaces \"{namespace}\" not found"),
        Some(json!({"name": namespace, "kind": "namespaces"})),
    )
}

/// `configmaps "x" already exists` (NewAlreadyExists).
pub fn already_exists(ty: &TypeInfo, name: &str) -> ApiError {
    status(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", ty.group_resource()),
        Some(details(ty, name, &ty.resource)),
    )
}

/// The optimistic-concurrency failure of an update with a stale resourceVersion.
pub const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// `Operation cannot be fulfilled on configmaps "x": <why>` (NewConflict).
pub fn conflict(ty: &TypeInfo, name: &str, why: &str) -> ApiError {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            ty.group_resource()
        ),
        Some(details(ty, name, &ty.resource)),
    )
}

/// One field error of an `Invalid` answer.
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    pub field: String,
    /// The message without the field, e.g. `Required value: name is required`.
    pub message: String,
}

/// `ConfigMap "x" is invalid: <field errors>` (NewInvalid), code 422.
pub fn invalid(ty: &TypeInfo, name: &str, errors: Vec<FieldError>) -> ApiError {
    let texts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let joined = if texts.len() == 1 {
        texts[0].clone()
    } else {
        format!("[{}]", texts.join(", "))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    let mut d = details(ty, name, &ty.kind);
    d["causes"] = json!(causes);
    status(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {joined}", ty.group_kind()),
        Some(d),
    )
}

/// What `patchObj.Apply` failing becomes in the patch handler:
/// `NewGenericServerResponse(422, "", GroupResource{}, "", err, 0, false)` — the
/// json-patch library's own message is not part of the answer.
pub fn json_patch_failed() -> ApiError {
    status(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        Some(json!({})),
    )
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    status(400, "BadRequest", message, None)
}

pub fn method_not_allowed() -> ApiError {
    status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> ApiError {
    status(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
        Some(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": content_type}]})),
    )
}

pub fn not_acceptable(accepted: &str) -> ApiError {
    status(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: {accepted}"),
        None,
    )
}

/// `unable to create new content in namespace x because it is being terminated`
/// (NamespaceLifecycle admission).
pub fn namespace_terminating(ty: &TypeInfo, name: &str, namespace: &str) -> ApiError {
    let mut d = details(ty, name, &ty.resource);
    d["causes"] = json!([{
        "reason": "NamespaceTerminating",
        "message": format!("namespace {namespace} is being terminated"),
        "field": "metadata.namespace",
    }]);
    status(
        403,
        "Forbidden",
        format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            ty.group_resource()
        ),
        Some(d),
    )
}

/// `too old resource version: 5 (10)`, code 410.
pub fn expired(requested: u64, oldest: u64) -> ApiError {
    status(
        410,
        "Expired",
        format!("too old resource version: {requested} ({oldest})"),
        None,
    )
}

/// An injected server failure.
pub fn internal(message: &str) -> ApiError {
    status(
        500,
        "InternalError",
        format!("Internal error occurred: {message}"),
        Some(json!({"causes": [{"message": message}]})),
    )
}

/// The 2xx `Status` of a DELETE that removed the object at once.
pub fn deleted(ty: &TypeInfo, name: &str, uid: &str) -> Value {
    let mut d = details(ty, name, &ty.resource);
    if !uid.is_empty() {
        d["uid"] = json!(uid);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}
