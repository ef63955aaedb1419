//! The AdmissionReview v1 wire format, decoded in one pass straight into typed structs.
//!
//! Only what the webhook reads is kept: the request's uid, kind, subresource,
//! operation, namespace, name and dryRun, and from `object`/`oldObject` the spec and
//! the metadata the rules need. Everything else (managedFields, annotations, labels,
//! userInfo, options) is skipped by the JSON scanner without building a tree, and
//! strings without escapes are borrowed from the body rather than copied.
//!
//! Each spec is kept as the raw JSON text it was written in (borrowed from the body,
//! checked by the scanner but not parsed): an UPDATE whose spec text is unchanged is
//! answered without parsing either spec, and only a spec that is judged is parsed,
//! straight into the typed [`DittoServerSpec`]. Only if that fails is it parsed again
//! through a JSON value, to name the field that failed.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::crd::{DittoServerSpec, SpecParseError, parse_spec};

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
    /// The spec as written; `None` when absent or `null`.
    pub spec: Option<&'a RawValue>,
}

/// A parsed spec, or the message naming the field that does not parse.
pub type ParsedSpec = Result<Box<DittoServerSpec>, String>;

impl ReviewObject<'_> {
    /// Is the spec written exactly as in `old`? The cheap test, before anything is
    /// parsed: the API server writes both objects the same way, so an unchanged spec
    /// (a finalizer removal, a label edit) has the same text.
    pub fn same_spec_text(&self, old: &ReviewObject<'_>) -> bool {
        match (self.spec, old.spec) {
            (None, None) => true,
            (Some(new), Some(old)) => new.get() == old.get(),
            _ => false,
        }
    }

    /// The typed spec (`None` when there is none).
    pub fn parse_spec(&self) -> Option<ParsedSpec> {
        self.spec.map(parse_spec_text)
    }
}

/// Parse a spec straight from its text; only if that fails, through a JSON value, the
/// way the webhook always has (so the message names the field and carries no position
/// inside the fragment, and a duplicate key means the last one, as in a JSON value).
pub fn parse_spec_text(raw: &RawValue) -> ParsedSpec {
    if let Ok(spec) = serde_json::from_str::<Box<DittoServerSpec>>(raw.get()) {
        return Ok(spec);
    }
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(json) => parse_spec_value(&json),
        // serde_json already accepted this text as a RawValue; kept total anyway.
        Err(e) => Err(SpecParseError {
            field: "spec".into(),
            message: e.to_string(),
        }
        .to_string()),
    }
}

/// Parse a spec from a JSON value, naming the failing field.
pub fn parse_spec_value(json: &serde_json::Value) -> ParsedSpec {
    parse_spec(json).map(Box::new).map_err(|e| e.to_string())
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

/// Decode an AdmissionReview v1 carrying a request.
pub fn decode(body: &[u8]) -> Result<Review<'_>, DecodeError> {
    match serde_json::from_slice::<WireReview<'_, &RawValue>>(body) {
        Ok(review) => finish(review),
        Err(_) => Err(explain_failure(body)),
    }
}

fn finish<'a>(review: WireReview<'a, &'a RawValue>) -> Result<Review<'a>, DecodeError> {
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
    let object = |o: WireObject<'a, &'a RawValue>| {
        let meta = o.metadata.unwrap_or_default();
        ReviewObject {
            name: meta.name,
            generate_name: meta.generate_name,
            namespace: meta.namespace,
            deleting: meta.deletion_timestamp.is_some(),
            spec: o.spec,
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
    fn the_shared_payload_decodes_in_one_pass_borrowing_from_the_body() {
        let body = include_bytes!("../../benches/data/admission-review-update.json");
        let review = decode(body).unwrap();
        assert_eq!(review.uid, "v-1");
        assert!(matches!(review.uid, Cow::Borrowed(_)), "uid borrowed");
        assert_eq!(review.operation, Operation::Update);
        assert_eq!(review.name.as_deref(), Some("full"));
        let object = review.object.unwrap();
        assert_eq!(object.namespace.as_deref(), Some("prod"));
        assert!(!object.deleting);
        assert!(object.same_spec_text(&review.old_object.unwrap()));
        let spec = object.parse_spec().unwrap().unwrap();
        assert_eq!(spec.storage.storage_class_name.as_deref(), Some("fast"));
    }

    #[test]
    fn a_spec_that_does_not_parse_is_named_by_field() {
        let body = body(serde_json::json!({
            "uid": "u", "kind": {"group": "g", "kind": "K"}, "operation": "CREATE",
            "object": {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                       "spec": {"storage": {"metadataSize": "1Gi"}, "smb": {"port": "x"}}},
        }));
        let review = decode(&body).unwrap();
        let object = review.object.unwrap();
        assert!(object.deleting);
        let message = object.parse_spec().unwrap().unwrap_err();
        assert!(
            message.starts_with("spec.smb.port: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn a_duplicate_key_in_a_spec_means_the_last_one() {
        let raw = RawValue::from_string(
            r#"{"storage": {"metadataSize": "1Gi"}, "nfsPort": 1, "nfsPort": 2049}"#.into(),
        )
        .unwrap();
        assert_eq!(parse_spec_text(&raw).unwrap().nfs_port, Some(2049));
    }

    #[test]
    fn an_unreadable_request_field_is_named_and_the_uid_echoed() {
        let body = body(serde_json::json!({
            "uid": "u-7", "kind": {"group": "g", "kind": "K"}, "operation": "PATCH",
        }));
        match decode(&body).unwrap_err() {
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
            decode(b"{not json"),
            Err(DecodeError::NotAReview(_))
        ));
    }

    #[test]
    fn the_spec_text_decides_what_is_unchanged() {
        let a = RawValue::from_string(r#"{"storage":{"metadataSize":"1Gi"}}"#.into()).unwrap();
        let b = RawValue::from_string(r#"{"storage":{"metadataSize":"2Gi"}}"#.into()).unwrap();
        fn with(spec: Option<&RawValue>) -> ReviewObject<'_> {
            ReviewObject {
                name: None,
                generate_name: None,
                namespace: None,
                deleting: false,
                spec,
            }
        }
        assert!(with(Some(&a)).same_spec_text(&with(Some(&a))));
        assert!(!with(Some(&a)).same_spec_text(&with(Some(&b))));
        assert!(with(None).same_spec_text(&with(None)));
        assert!(!with(Some(&a)).same_spec_text(&with(None)));
    }
}
