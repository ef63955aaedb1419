//! `POST /validate` and `POST /mutate`: AdmissionReview v1 in, AdmissionReview out.
//!
//! The review is decoded in one pass into typed structs ([`super::review`]); the uid
//! is echoed on every answer it could be read from, and a spec that does not parse is
//! denied naming the field. Everything that is not an AdmissionReview gets an HTTP
//! error with a JSON body instead.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use kube::api::ObjectMeta;
use serde::Serialize;

use super::body::{self, BodyBudget, BodyError};
use super::metrics::{Endpoint, Outcome, WebhookMetrics};
use super::review::{self, DecodeError, Operation, ParsedSpec, Review, ReviewObject};
use super::server::Limits;
use crate::crd::{DittoServer, DittoServerSpec, GROUP, KIND, SpecParseError};
use crate::scope::WatchScope;
use crate::validation::{ClusterLookup, Finding, validate};

pub use super::review::{REVIEW_API_VERSION, REVIEW_KIND};

/// Work budget when the API server sends no `?timeout=` (its default is 10 s).
const DEFAULT_API_SERVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Answer this much before the API server gives up on us.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(1);
const MIN_BUDGET: Duration = Duration::from_secs(1);

struct AdmissionState<L> {
    lookup: Arc<L>,
    /// The namespaces this installation serves; others are not judged.
    scope: WatchScope,
    metrics: WebhookMetrics,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    body_budget: BodyBudget,
}

/// The admission router: `/validate`, `/mutate`, JSON errors for everything else,
/// the body limits of `limits`, and request metrics. Objects outside `scope` are
/// allowed unjudged (another installation serves them).
pub fn router<L: ClusterLookup + 'static>(
    lookup: Arc<L>,
    metrics: WebhookMetrics,
    limits: &Limits,
    scope: WatchScope,
) -> Router {
    let state = Arc::new(AdmissionState {
        lookup,
        scope,
        metrics,
        max_body_bytes: limits.max_body_bytes,
        body_read_timeout: limits.body_read_timeout,
        body_budget: BodyBudget::new(limits.body_budget_bytes),
    });
    Router::new()
        .route(
            "/validate",
            post(validate_handler::<L>).fallback(method_not_allowed::<L>),
        )
        .route(
            "/mutate",
            post(mutate_handler::<L>).fallback(method_not_allowed::<L>),
        )
        .fallback(not_found::<L>)
        .with_state(state)
}

async fn validate_handler<L: ClusterLookup + 'static>(
    State(state): State<Arc<AdmissionState<L>>>,
    request: Request,
) -> Response {
    handle(Kind::Validate, &state, request).await
}

async fn mutate_handler<L: ClusterLookup + 'static>(
    State(state): State<Arc<AdmissionState<L>>>,
    request: Request,
) -> Response {
    handle(Kind::Mutate, &state, request).await
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Validate,
    Mutate,
}

impl Kind {
    fn endpoint(self) -> Endpoint {
        match self {
            Self::Validate => Endpoint::Validate,
            Self::Mutate => Endpoint::Mutate,
        }
    }
}

/// Answer one request and record it (metrics are recorded here rather than in a
/// middleware layer: one call, no boxed future per request).
async fn handle<L: ClusterLookup + 'static>(
    kind: Kind,
    state: &AdmissionState<L>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (response, outcome) = answer(kind, state, request).await;
    state.metrics.observe_request(
        kind.endpoint(),
        outcome,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn answer<L: ClusterLookup + 'static>(
    kind: Kind,
    state: &AdmissionState<L>,
    request: Request,
) -> (Response, Outcome) {
    let (parts, mut incoming) = request.into_parts();
    let read = match body::read(
        &mut incoming,
        &parts.headers,
        state.max_body_bytes,
        state.body_read_timeout,
        &state.body_budget,
    )
    .await
    {
        Ok(read) => read,
        Err(e) => {
            let status = match e {
                BodyError::TooLarge { .. } => {
                    body::linger(incoming);
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                BodyError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
                BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                BodyError::Read(_) => StatusCode::BAD_REQUEST,
            };
            tracing::debug!(error = %e, "request body refused");
            let mut response = json_error(status, e.to_string());
            // The body was not read to its end: this HTTP/1 connection cannot carry
            // another request (HTTP/2 resets just the stream).
            if parts.version <= Version::HTTP_11 {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return (response, Outcome::Error);
        }
    };
    let body = read.bytes.as_slice();
    let review = match review::decode(body) {
        Ok(review) => review,
        Err(DecodeError::NotAReview(message)) => {
            return (json_error(StatusCode::BAD_REQUEST, message), Outcome::Error);
        }
        Err(DecodeError::BadRequest { uid, message }) => {
            let response = ReviewResponse::deny(Cow::Owned(uid), 400, "BadRequest", message);
            return (review_response(&response), Outcome::Error);
        }
    };
    let budget = work_budget(parts.uri.query());
    let response = admit(kind, state, review, budget).await;
    let outcome = response.outcome();
    (review_response(&response), outcome)
}

/// Time we allow ourselves: the API server's `?timeout=` minus a margin, at least
/// [`MIN_BUDGET`].
fn work_budget(query: Option<&str>) -> Duration {
    let sent = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(crate::duration::parse_go_duration)
        .unwrap_or(DEFAULT_API_SERVER_TIMEOUT);
    sent.saturating_sub(TIMEOUT_MARGIN).max(MIN_BUDGET)
}

async fn admit<'a, L: ClusterLookup>(
    kind: Kind,
    state: &AdmissionState<L>,
    review: Review<'a>,
    budget: Duration,
) -> ReviewResponse<'a> {
    let Review {
        uid,
        group,
        kind: object_kind,
        sub_resource,
        operation,
        namespace,
        name,
        dry_run,
        object,
        old_object,
    } = review;
    // Rules register `dittoservers` only; anything else (a subresource, another kind
    // sent by a misconfigured registration) is not ours to judge.
    if sub_resource.is_some() {
        return ReviewResponse::allow(uid);
    }
    if !group.eq_ignore_ascii_case(GROUP) || object_kind != KIND {
        tracing::warn!(%uid, %group, kind = %object_kind, "admission review for a kind this webhook does not handle; allowed");
        let mut response = ReviewResponse::allow(uid);
        response.warnings = vec![format!(
            "the DittoServer webhook does not handle {group}/{object_kind}; check the webhook configuration's rules"
        )];
        return response;
    }
    if !matches!(operation, Operation::Create | Operation::Update) {
        return ReviewResponse::allow(uid);
    }
    // The webhook configurations select only the served namespaces; a review from
    // another one (a configuration edited by hand, or another installation's
    // tenant) is not ours to judge, and its Secrets are not ours to read.
    if let Some(ns) = namespace.as_deref()
        && !state.scope.serves(ns)
    {
        tracing::warn!(%uid, namespace = ns, "admission review for a namespace this installation does not serve; allowed unjudged");
        let mut response = ReviewResponse::allow(uid);
        response.warnings = vec![format!(
            "namespace {ns} is not served by this dittofs-operator installation ({}): not validated or defaulted here; check the webhook configuration's namespaceSelector",
            state.scope.describe()
        )];
        return response;
    }
    let Some(object) = object else {
        return ReviewResponse::deny(
            uid,
            400,
            "BadRequest",
            "request.object is missing on a CREATE or UPDATE".to_string(),
        );
    };
    // An UPDATE of an object being deleted, or one that leaves the spec as it is
    // (finalizer removal, label and annotation edits), is never judged: a rule, or a
    // cluster fact such as a deleted StorageClass, must never make an object
    // undeletable. A real cluster showed an object stuck Terminating because the
    // controller's finalizer-removal UPDATE was denied. The spec text is compared
    // here, before anything is parsed; specs that differ only in how they are
    // written are compared again once parsed.
    if operation == Operation::Update
        && (object.deleting
            || old_object
                .as_ref()
                .is_some_and(|old| object.same_spec_text(old)))
    {
        tracing::debug!(%uid, deleting = object.deleting, "UPDATE that leaves the spec unchanged or deletes; allowed unjudged");
        return ReviewResponse::allow(uid);
    }
    // The stored object, parsed, on UPDATE.
    let old_spec = match operation {
        Operation::Update => old_object.as_ref().map(|old| (old, old.parse_spec())),
        _ => None,
    };
    let response = match kind {
        Kind::Validate => {
            let fallback_namespace = namespace.as_deref();
            // Boxed: this future holds two DittoServers and the validation core's
            // state (kilobytes), and every layer above moves its caller's future by
            // value; boxed, those moves copy a pointer, and the paths that never
            // validate (unchanged spec, deletion, other kinds) never allocate it.
            Box::pin(validate_review(
                state,
                uid,
                fallback_namespace,
                &object,
                old_spec,
                budget,
            ))
            .await
        }
        Kind::Mutate => mutate_review(uid, &object, old_spec),
    };
    if response.allowed {
        tracing::debug!(uid = %response.uid, ?operation, ?namespace, ?name, dry_run, patched = response.patch.is_some(), warnings = response.warnings.len(), "admitted");
    } else {
        tracing::info!(uid = %response.uid, ?operation, ?namespace, ?name, dry_run, message = ?response.status.as_ref().map(|s| &s.message), "denied");
    }
    response
}

/// Both sides parse to the same spec (written differently: key order, fields this
/// version does not know): unchanged after all.
fn parsed_unchanged(
    new: &DittoServerSpec,
    old: Option<&(&ReviewObject<'_>, Option<ParsedSpec>)>,
) -> bool {
    matches!(old, Some((_, Some(Ok(old)))) if **old == *new)
}

async fn validate_review<'a, L: ClusterLookup>(
    state: &AdmissionState<L>,
    uid: Cow<'a, str>,
    request_namespace: Option<&str>,
    object: &ReviewObject<'_>,
    old: Option<(&ReviewObject<'_>, Option<ParsedSpec>)>,
    budget: Duration,
) -> ReviewResponse<'a> {
    let spec = match object.parse_spec() {
        Some(Ok(spec)) => spec,
        Some(Err(message)) => return ReviewResponse::deny(uid, 422, "Invalid", message),
        None => return ReviewResponse::deny(uid, 422, "Invalid", spec_required()),
    };
    if parsed_unchanged(&spec, old.as_ref()) {
        return ReviewResponse::allow(uid);
    }
    let mut new = DittoServer {
        metadata: object.metadata(),
        spec: *spec,
        status: None,
    };
    // On CREATE the object may not carry its namespace yet; lookups (Secrets) need it.
    if new.metadata.namespace.is_none() {
        new.metadata.namespace = request_namespace.map(str::to_string);
    }
    let mut warnings = Vec::new();
    let old = old.and_then(|(old, parsed)| {
        match parsed.unwrap_or_else(|| Err(spec_required())) {
            Ok(spec) => Some(DittoServer {
                metadata: old.metadata(),
                spec: *spec,
                status: None,
            }),
            Err(message) => {
                // The stored object predates a schema change: judge the new object
                // alone rather than lock the user out of fixing it.
                warnings.push(format!(
                    "the stored object does not parse ({message}); update rules were not checked"
                ));
                None
            }
        }
    });
    let report = match tokio::time::timeout(budget, validate(&new, old.as_ref(), &*state.lookup))
        .await
    {
        Ok(report) => report,
        Err(_) => {
            tracing::warn!(%uid, budget_ms = budget.as_millis() as u64, "admission review timed out");
            let mut response = ReviewResponse::deny(
                uid,
                504,
                "Timeout",
                format!(
                    "the DittoServer webhook did not finish within {} ms (a cluster lookup was slow); try again",
                    budget.as_millis()
                ),
            );
            response.timed_out = true;
            return response;
        }
    };
    warnings.extend(report.warnings.iter().map(Finding::to_string));
    // Skipped checks (offline development only) are worth a line each too.
    warnings.extend(report.skipped.iter().map(Finding::to_string));
    let mut response = if report.errors.is_empty() {
        ReviewResponse::allow(uid)
    } else {
        let message = report
            .errors
            .iter()
            .map(Finding::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ReviewResponse::deny(uid, 422, "Invalid", message)
    };
    response.warnings = warnings;
    response
}

impl ReviewObject<'_> {
    /// The metadata the rules read.
    fn metadata(&self) -> ObjectMeta {
        ObjectMeta {
            name: self.name.as_deref().map(str::to_string),
            generate_name: self.generate_name.as_deref().map(str::to_string),
            namespace: self.namespace.as_deref().map(str::to_string),
            ..ObjectMeta::default()
        }
    }
}

fn mutate_review<'a>(
    uid: Cow<'a, str>,
    object: &ReviewObject<'_>,
    old: Option<(&ReviewObject<'_>, Option<ParsedSpec>)>,
) -> ReviewResponse<'a> {
    let Some(raw) = object.spec else {
        return ReviewResponse::deny(uid, 422, "Invalid", spec_required());
    };
    // The patch adds what the JSON as written lacks: parse through a JSON value.
    let json: serde_json::Value = match serde_json::from_str(raw.get()) {
        Ok(json) => json,
        Err(e) => {
            let message = SpecParseError {
                field: "spec".into(),
                message: e.to_string(),
            };
            return ReviewResponse::deny(uid, 422, "Invalid", message.to_string());
        }
    };
    let spec = match review::parse_spec_value(&json) {
        Ok(spec) => spec,
        Err(message) => return ReviewResponse::deny(uid, 422, "Invalid", message),
    };
    if parsed_unchanged(&spec, old.as_ref()) {
        return ReviewResponse::allow(uid);
    }
    let patch = match crate::defaults::spec_defaulting_patch(&json, &spec) {
        Ok(patch) => patch,
        Err(e) => return encode_failure(uid, e),
    };
    if patch.0.is_empty() {
        return ReviewResponse::allow(uid);
    }
    match serde_json::to_vec(&patch) {
        Ok(bytes) => {
            let mut response = ReviewResponse::allow(uid);
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            response.patch_type = Some("JSONPatch");
            response
        }
        Err(e) => encode_failure(uid, e),
    }
}

/// What an object without a spec is told, by both webhooks.
fn spec_required() -> String {
    SpecParseError::missing().to_string()
}

/// Serializing our own patch failed: a bug, reported rather than panicking.
fn encode_failure(uid: Cow<'_, str>, e: serde_json::Error) -> ReviewResponse<'_> {
    let mut response = ReviewResponse::deny(
        uid,
        500,
        "InternalError",
        format!("cannot encode the defaulting patch: {e}"),
    );
    response.timed_out = true;
    response
}

/// The AdmissionReview v1 response. Written by hand rather than with kube's
/// `AdmissionResponse`, whose `patch` serializes as an array of numbers; the
/// documented wire format is a base64 string.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ReviewResponse<'a> {
    uid: Cow<'a, str>,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    /// No admission decision was reached (timeout, internal error): counted as an
    /// error, not a denial.
    #[serde(skip)]
    timed_out: bool,
}

/// The `metav1.Status` of a denial: its message is what `kubectl` prints.
#[derive(Serialize, Debug)]
struct ResponseStatus {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

impl<'a> ReviewResponse<'a> {
    fn allow(uid: Cow<'a, str>) -> Self {
        Self {
            uid,
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
            timed_out: false,
        }
    }

    fn deny(uid: Cow<'a, str>, code: u16, reason: &'static str, message: String) -> Self {
        Self {
            uid,
            allowed: false,
            status: Some(ResponseStatus {
                status: "Failure",
                code,
                reason,
                message,
            }),
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
            timed_out: false,
        }
    }

    fn outcome(&self) -> Outcome {
        if self.timed_out {
            Outcome::Error
        } else if self.allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewEnvelope<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a ReviewResponse<'a>,
}

fn review_response(response: &ReviewResponse<'_>) -> Response {
    let envelope = ReviewEnvelope {
        api_version: REVIEW_API_VERSION,
        kind: REVIEW_KIND,
        response,
    };
    match serde_json::to_vec(&envelope) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the AdmissionReview response: {e}"),
        ),
    }
}

#[derive(Serialize)]
struct JsonError {
    error: String,
}

/// An HTTP error with a JSON body `{"error": "..."}`.
fn json_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(JsonError { error: message })).into_response()
}

async fn method_not_allowed<L: ClusterLookup + 'static>(
    State(state): State<Arc<AdmissionState<L>>>,
    uri: Uri,
) -> Response {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "only POST is supported: send an AdmissionReview v1".to_string(),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    state.metrics.observe_request(
        Endpoint::from_path(uri.path()),
        Outcome::Error,
        response.status().as_u16(),
        0.0,
    );
    response
}

async fn not_found<L: ClusterLookup + 'static>(
    State(state): State<Arc<AdmissionState<L>>>,
) -> Response {
    let response = json_error(
        StatusCode::NOT_FOUND,
        "unknown path: use POST /validate or POST /mutate".to_string(),
    );
    state
        .metrics
        .observe_request(Endpoint::Other, Outcome::Error, 404, 0.0);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_stays_below_the_api_server_timeout() {
        assert_eq!(work_budget(Some("timeout=10s")), Duration::from_secs(9));
        assert_eq!(work_budget(Some("a=b&timeout=5s")), Duration::from_secs(4));
        assert_eq!(work_budget(Some("timeout=1s")), MIN_BUDGET);
        assert_eq!(work_budget(Some("timeout=garbage")), Duration::from_secs(9));
        assert_eq!(work_budget(None), Duration::from_secs(9));
    }
}
