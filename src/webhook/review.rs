//! The AdmissionReview v1 wire format, decoded in one pass straight into typed structs.
//!
//! Only what the webhook reads is kept: the request's uid, kind, subresource,
//! operation, namespace, name and dryRun, and from `object`/`oldObject` the spec and
//! the metadata the rules need. Everything else (managedFields, annotations, labels,
//! userInfo, options) is skipped by the JSON scanner without building a tree, and
//! strings without escapes are borrowed from the body rather than copied.
//!
//! `/validate` first decodes the specs as typed [`DittoServerSpec`]s directly. Only if
//! that fails (a spec that does not parse, or a body that is not a review) does it
//! decode again, keeping each spec as raw JSON, so that the answer can still echo the
//! uid and name the field that failed. `/mutate` always keeps the raw spec: its patch
//! adds what the raw JSON lacks.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::crd::DittoServerSpec;

pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
pub const REVIEW_KIND: &str = "AdmissionReview";

/// The admission operation.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a, S> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<WireRequest<'a, S>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a, S> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    kind: WireKind<'a>,
    #[serde(borrow, default)]
    sub_resource: Option<Cow<'a, str>>,
    operation: Operation,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(borrow)]
    object: Option<WireObject<'a, S>>,
    #[serde(borrow)]
    old_object: Option<WireObject<'a, S>>,
}

#[derive(Deserialize)]
struct WireKind<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct WireObject<'a, S> {
    #[serde(borrow, default)]
    metadata: Option<WireMeta<'a>>,
    spec: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireMeta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    generate_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    /// Only whether it is set matters (a deleting object is never judged).
    #[serde(default)]
    deletion_timestamp: Option<IgnoredAny>,
}

/// Only the uid (and that this is a v1 review), to echo it when nothing else of a
/// review could be read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UidOnly<'a> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request: Option<UidOnlyRequest<'a>>,
}

#[derive(Deserialize)]
struct UidOnlyRequest<'a> {
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
}

/// A decoded review request.
#[derive(Debug)]
pub struct Review<'a> {
    pub uid: Cow<'a, str>,
    /// The API group of the reviewed object's kind.
    pub group: Cow<'a, str>,
    pub kind: Cow<'a, str>,
    pub sub_resource: Option<Cow<'a, str>>,
    pub operation: Operation,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub dry_run: bool,
    pub object: Option<ReviewObject<'a>>,
    pub old_object: Option<ReviewObject<'a>>,
}

/// `object` or `oldObject` of a review: the metadata the rules need and the spec.
#[derive(Debug)]
pub struct ReviewObject<'a> {
    pub name: Option<Cow<'a, str>>,
    pub generate_name: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    pub spec: Spec,
}

/// The spec of a review object, as far as it could be read.
#[derive(Debug)]
pub enum Spec {
    /// No `spec` (or `spec: null`).
    Missing,
    /// Decoded straight into the typed spec (the fast path; the raw JSON is not kept).
    Typed(Box<DittoServerSpec>),
    /// Kept as the JSON that was written (a value of the spec alone), with the result
    /// of parsing it: the typed spec, or the message naming the field that does not parse.
    Raw {
        json: serde_json::Value,
        parsed: Result<Box<DittoServerSpec>, String>,
    },
}

impl Spec {
    /// The typed spec, if it parses.
    pub fn typed(&self) -> Option<&DittoServerSpec> {
        match self {
            Self::Typed(spec) => Some(spec),
            Self::Raw {
                parsed: Ok(spec), ..
            } => Some(spec),
            _ => None,
        }
    }

    /// Do both sides hold the same spec? Typed comparison when both parse (fields this
    /// version does not know are pruned by the API server anyway); otherwise the raw
    /// JSON must be equal, so an unparseable spec that is carried over unchanged
    /// (a finalizer removal on an object a newer schema wrote) still counts as unchanged.
    pub fn same_as(&self, other: &Spec) -> bool {
        match (self.typed(), other.typed()) {
            (Some(a), Some(b)) => a == b,
            _ => match (self, other) {
                (Self::Missing, Self::Missing) => true,
                (Self::Raw { json: a, .. }, Self::Raw { json: b, .. }) => a == b,
                _ => false,
            },
        }
    }
}

/// Why a body could not be decoded as a review.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not an AdmissionReview v1 with a request: answered with HTTP 400.
    #[error("{0}")]
    NotAReview(String),
    /// A review whose uid could be read, but not the rest: answered with a denying
    /// AdmissionReview that echoes the uid.
    #[error("{message}")]
    BadRequest { uid: String, message: String },
}

/// How the specs are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecMode {
    /// Typed first; raw (naming the failing field) only if that fails.
    TypedFirst,
    /// Always raw: the caller needs the JSON as written.
    Raw,
}

/// Decode an AdmissionReview v1 carrying a request.
pub fn decode(body: &[u8], mode: SpecMode) -> Result<Review<'_>, DecodeError> {
    // Boxed as it is decoded: a spec is kilobytes, and unboxed it would be copied at
    // every level of the envelope on its way out of the decoder.
    if mode == SpecMode::TypedFirst
        && let Ok(review) = serde_json::from_slice::<WireReview<'_, Box<DittoServerSpec>>>(body)
    {
        return finish(review, Spec::Typed);
    }
    match serde_json::from_slice::<WireReview<'_, &RawValue>>(body) {
        Ok(review) => finish(review, raw_spec),
        Err(_) => Err(explain_failure(body)),
    }
}

fn finish<'a, S>(
    review: WireReview<'a, S>,
    spec: impl Fn(S) -> Spec,
) -> Result<Review<'a>, DecodeError> {
    if review.api_version.as_deref() != Some(REVIEW_API_VERSION)
        || review.kind.as_deref() != Some(REVIEW_KIND)
    {
        return Err(DecodeError::NotAReview(format!(
            "expected apiVersion {REVIEW_API_VERSION}, kind {REVIEW_KIND}; got apiVersion {:?}, kind {:?}",
            review.api_version.as_deref().unwrap_or_default(),
            review.kind.as_deref().unwrap_or_default()
        )));
    }
    let Some(request) = review.request else {
        return Err(DecodeError::NotAReview(
            "the AdmissionReview has no request".to_string(),
        ));
    };
    let object = |o: WireObject<'a, S>| {
        let meta = o.metadata.unwrap_or_default();
        ReviewObject {
            name: meta.name,
            generate_name: meta.generate_name,
            namespace: meta.namespace,
            deleting: meta.deletion_timestamp.is_some(),
            spec: o.spec.map_or(Spec::Missing, &spec),
        }
    };
    Ok(Review {
        uid: request.uid,
        group: request.kind.group,
        kind: request.kind.kind,
        sub_resource: request.sub_resource,
        operation: request.operation,
        namespace: request.namespace,
        name: request.name,
        dry_run: request.dry_run.unwrap_or(false),
        object: request.object.map(object),
        old_object: request.old_object.map(object),
    })
}

/// Keep a raw spec as a JSON value and parse it the way the webhook always has
/// (from the value, so the message carries no position inside the fragment),
/// naming the failing field.
fn raw_spec(raw: &RawValue) -> Spec {
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(json) => {
            let parsed = crate::defaults::parse_spec(&json)
                .map(Box::new)
                .map_err(|e| spec_error_message(&e.path, &e.message));
            Spec::Raw { json, parsed }
        }
        // serde_json already accepted this text as a RawValue; kept total anyway.
        Err(e) => Spec::Raw {
            json: serde_json::Value::Null,
            parsed: Err(format!("spec: {e}")),
        },
    }
}

/// `spec.<path>: <message>`, or `spec: <message>` when the spec itself is wrong.
pub fn spec_error_message(path: &str, message: &str) -> String {
    if path == "." || path.is_empty() {
        format!("spec: {message}")
    } else {
        format!("spec.{path}: {message}")
    }
}

/// The body is not a review we can read: name the field that failed, and echo the
/// uid in a review if it can be read at all.
fn explain_failure(body: &[u8]) -> DecodeError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let reason = match serde_path_to_error::deserialize::<_, WireReview<'_, IgnoredAny>>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            if path == "." || path.is_empty() {
                e.into_inner().to_string()
            } else {
                format!("{path}: {}", e.into_inner())
            }
        }
        Ok(_) => match de.end() {
            Err(e) => e.to_string(),
            // Not reached for a body that failed to decode above; general rather than panic.
            Ok(()) => "unreadable AdmissionReview".to_string(),
        },
    };
    let uid = serde_json::from_slice::<UidOnly<'_>>(body)
        .ok()
        .filter(|r| {
            r.api_version.as_deref() == Some(REVIEW_API_VERSION)
                && r.kind.as_deref() == Some(REVIEW_KIND)
        })
        .and_then(|r| r.request)
        .and_then(|r| r.uid)
        .map(Cow::into_owned);
    match uid {
        Some(uid) => DecodeError::BadRequest {
            uid,
            message: format!("the AdmissionReview cannot be read: {reason}"),
        },
        None => DecodeError::NotAReview(format!("the body is not an AdmissionReview: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": REVIEW_API_VERSION,
            "kind": REVIEW_KIND,
            "request": request,
        }))
        .unwrap()
    }

    #[test]
    fn the_shared_payload_decodes_typed_in_one_pass() {
        let body = include_bytes!("../../benches/data/admission-review-update.json");
        let review = decode(body, SpecMode::TypedFirst).unwrap();
        assert_eq!(review.uid, "v-1");
        assert!(matches!(review.uid, Cow::Borrowed(_)), "uid borrowed");
        assert_eq!(review.operation, Operation::Update);
        assert_eq!(review.name.as_deref(), Some("full"));
        let object = review.object.unwrap();
        assert!(matches!(object.spec, Spec::Typed(_)));
        assert_eq!(object.namespace.as_deref(), Some("prod"));
        assert!(!object.deleting);
        assert!(object.spec.same_as(&review.old_object.unwrap().spec));
    }

    #[test]
    fn a_spec_that_does_not_parse_keeps_the_uid_and_names_the_field() {
        let body = body(serde_json::json!({
            "uid": "u", "kind": {"group": "g", "kind": "K"}, "operation": "CREATE",
            "object": {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                       "spec": {"storage": {"metadataSize": "1Gi"}, "smb": {"port": "x"}}},
        }));
        let review = decode(&body, SpecMode::TypedFirst).unwrap();
        let object = review.object.unwrap();
        assert!(object.deleting);
        match object.spec {
            Spec::Raw {
                parsed: Err(message),
                ..
            } => assert!(
                message.starts_with("spec.smb.port: invalid type"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unreadable_request_field_is_named_and_the_uid_echoed() {
        let body = body(serde_json::json!({
            "uid": "u-7", "kind": {"group": "g", "kind": "K"}, "operation": "PATCH",
        }));
        match decode(&body, SpecMode::TypedFirst).unwrap_err() {
            DecodeError::BadRequest { uid, message } => {
                assert_eq!(uid, "u-7");
                assert!(
                    message.contains("request.operation: unknown variant"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(b"{not json", SpecMode::TypedFirst),
            Err(DecodeError::NotAReview(_))
        ));
    }

    #[test]
    fn unchanged_means_typed_equal_or_identical_raw_json() {
        let typed = |s: &str| Spec::Typed(Box::new(serde_json::from_str(s).unwrap()));
        let a = typed(r#"{"storage": {"metadataSize": "1Gi"}}"#);
        let b = typed(r#"{"storage": {"metadataSize": "1Gi"}, "unknown": 1}"#);
        let c = typed(r#"{"storage": {"metadataSize": "2Gi"}}"#);
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
        let bad = || Spec::Raw {
            json: serde_json::json!({"nfsPort": "x"}),
            parsed: Err("spec.nfsPort: invalid".into()),
        };
        assert!(bad().same_as(&bad()));
        assert!(!bad().same_as(&a));
        assert!(Spec::Missing.same_as(&Spec::Missing));
        assert!(!Spec::Missing.same_as(&a));
    }
}
