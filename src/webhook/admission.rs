//! `POST /validate` and `POST /mutate`: AdmissionReview v1 in, AdmissionReview out.
//!
//! The review is decoded with a dynamic object first so the request uid is echoed on
//! every answer; only then is the DittoServer spec parsed (a spec that does not parse
//! is denied, naming the field). Everything that is not an AdmissionReview gets an
//! HTTP error with a JSON body instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use serde::Serialize;

use super::metrics::{Endpoint, Outcome, WebhookMetrics};
use crate::crd::{DittoServer, DittoServerSpec, GROUP, KIND};
use crate::validation::{ClusterLookup, Finding, validate};

/// Largest accepted request body. An UPDATE review carries the object twice (object
/// and oldObject) plus managedFields; the API server's own request limit is 3 MiB.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Work budget when the API server sends no `?timeout=` (its default is 10 s).
const DEFAULT_API_SERVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Answer this much before the API server gives up on us.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(1);
const MIN_BUDGET: Duration = Duration::from_secs(1);

const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
const REVIEW_KIND: &str = "AdmissionReview";

struct AdmissionState<L> {
    lookup: Arc<L>,
}

/// The admission router: `/validate`, `/mutate`, JSON errors for everything else,
/// the body limit, and request metrics.
pub fn router<L: ClusterLookup + 'static>(lookup: Arc<L>, metrics: WebhookMetrics) -> Router {
    let state = Arc::new(AdmissionState { lookup });
    Router::new()
        .route(
            "/validate",
            post(validate_handler::<L>).fallback(method_not_allowed),
        )
        .route(
            "/mutate",
            post(mutate_handler::<L>).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            record_metrics,
        ))
}

async fn record_metrics(
    State(metrics): State<WebhookMetrics>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = Endpoint::from_path(req.uri().path());
    let started = Instant::now();
    let response = next.run(req).await;
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Error);
    metrics.observe_request(
        endpoint,
        outcome,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn validate_handler<L: ClusterLookup + 'static>(
    State(state): State<Arc<AdmissionState<L>>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(Kind::Validate, state, query, body).await
}

async fn mutate_handler<L: ClusterLookup + 'static>(
    State(state): State<Arc<AdmissionState<L>>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(Kind::Mutate, state, query, body).await
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Validate,
    Mutate,
}

async fn handle<L: ClusterLookup + 'static>(
    kind: Kind,
    state: Arc<AdmissionState<L>>,
    query: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body larger than {MAX_BODY_BYTES} bytes")
            } else {
                rejection.body_text()
            };
            return json_error(status, message);
        }
    };
    let request = match decode(&body) {
        Ok(request) => request,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let budget = work_budget(query.as_deref());
    let uid = request.uid.clone();
    let answer = match tokio::time::timeout(budget, review(kind, &state, request)).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::warn!(%uid, budget_ms = budget.as_millis() as u64, "admission review timed out");
            Answer {
                response: ReviewResponse::deny(
                    uid,
                    504,
                    "Timeout",
                    format!(
                        "the DittoServer webhook did not finish within {} ms (a cluster lookup was slow); try again",
                        budget.as_millis()
                    ),
                ),
                outcome: Outcome::Error,
            }
        }
    };
    review_response(answer)
}

/// Decode an AdmissionReview v1 carrying a request.
fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an AdmissionReview: {e}"))?;
    if review.types.api_version != REVIEW_API_VERSION || review.types.kind != REVIEW_KIND {
        return Err(format!(
            "expected apiVersion {REVIEW_API_VERSION}, kind {REVIEW_KIND}; got apiVersion {:?}, kind {:?}",
            review.types.api_version, review.types.kind
        ));
    }
    let request: Result<AdmissionRequest<DynamicObject>, _> = review.try_into();
    request.map_err(|e| format!("the AdmissionReview has no request: {e}"))
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

struct Answer {
    response: ReviewResponse,
    outcome: Outcome,
}

impl Answer {
    fn from_response(response: ReviewResponse) -> Self {
        let outcome = if response.allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        Self { response, outcome }
    }
}

async fn review<L: ClusterLookup>(
    kind: Kind,
    state: &AdmissionState<L>,
    request: AdmissionRequest<DynamicObject>,
) -> Answer {
    let uid = request.uid.clone();
    // Rules register `dittoservers` only; anything else (a subresource, another kind
    // sent by a misconfigured registration) is not ours to judge.
    if request.sub_resource.is_some() {
        return Answer::from_response(ReviewResponse::allow(uid));
    }
    if !request.kind.group.eq_ignore_ascii_case(GROUP) || request.kind.kind != KIND {
        tracing::warn!(%uid, group = %request.kind.group, kind = %request.kind.kind, "admission review for a kind this webhook does not handle; allowed");
        let mut response = ReviewResponse::allow(uid);
        response.warnings = vec![format!(
            "the DittoServer webhook does not handle {}/{}; check the webhook configuration's rules",
            request.kind.group, request.kind.kind
        )];
        return Answer::from_response(response);
    }
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Answer::from_response(ReviewResponse::allow(uid));
    }
    let Some(object) = request.object.as_ref() else {
        return Answer::from_response(ReviewResponse::deny(
            uid,
            400,
            "BadRequest",
            "request.object is missing on a CREATE or UPDATE".to_string(),
        ));
    };
    let answer = match kind {
        Kind::Validate => validate_review(state, &request, object).await,
        Kind::Mutate => mutate_review(&uid, object),
    };
    let response = &answer.response;
    if response.allowed {
        tracing::debug!(%uid, operation = ?request.operation, namespace = ?request.namespace, name = %request.name, dry_run = request.dry_run, patched = response.patch.is_some(), warnings = response.warnings.len(), "admitted");
    } else {
        tracing::info!(%uid, operation = ?request.operation, namespace = ?request.namespace, name = %request.name, dry_run = request.dry_run, message = ?response.status.as_ref().map(|s| &s.message), "denied");
    }
    answer
}

async fn validate_review<L: ClusterLookup>(
    state: &AdmissionState<L>,
    request: &AdmissionRequest<DynamicObject>,
    object: &DynamicObject,
) -> Answer {
    let uid = request.uid.clone();
    let mut new = match parse_ditto_server(object) {
        Ok(new) => new,
        Err(message) => {
            return Answer::from_response(ReviewResponse::deny(uid, 422, "Invalid", message));
        }
    };
    // On CREATE the object may not carry its namespace yet; lookups (Secrets) need it.
    if new.metadata.namespace.is_none() {
        new.metadata.namespace = request.namespace.clone();
    }
    let mut warnings = Vec::new();
    let old = match (&request.operation, request.old_object.as_ref()) {
        (Operation::Update, Some(old)) => match parse_ditto_server(old) {
            Ok(old) => Some(old),
            Err(message) => {
                // The stored object predates a schema change: judge the new object alone
                // rather than lock the user out of fixing it.
                warnings.push(format!(
                    "the stored object does not parse ({message}); update rules were not checked"
                ));
                None
            }
        },
        _ => None,
    };
    let report = validate(&new, old.as_ref(), &*state.lookup).await;
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
    Answer::from_response(response)
}

fn mutate_review(uid: &str, object: &DynamicObject) -> Answer {
    let value = match serde_json::to_value(object) {
        Ok(value) => value,
        Err(e) => {
            return Answer::from_response(ReviewResponse::deny(
                uid.to_string(),
                400,
                "BadRequest",
                format!("cannot read the object: {e}"),
            ));
        }
    };
    let patch = match crate::defaults::defaulting_patch(&value) {
        Ok(patch) => patch,
        Err(e) => {
            return Answer::from_response(ReviewResponse::deny(
                uid.to_string(),
                422,
                "Invalid",
                e.to_string(),
            ));
        }
    };
    let mut response = ReviewResponse::allow(uid.to_string());
    if !patch.0.is_empty() {
        match serde_json::to_vec(&patch) {
            Ok(bytes) => {
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                response.patch_type = Some("JSONPatch");
            }
            Err(e) => {
                return Answer {
                    response: ReviewResponse::deny(
                        uid.to_string(),
                        500,
                        "InternalError",
                        format!("cannot encode the defaulting patch: {e}"),
                    ),
                    outcome: Outcome::Error,
                };
            }
        }
    }
    Answer::from_response(response)
}

/// The typed DittoServer of a review object; the error names the field that does not
/// parse (`spec.smb.port: invalid type: …`).
fn parse_ditto_server(object: &DynamicObject) -> Result<DittoServer, String> {
    let spec = object.data.get("spec").ok_or_else(|| {
        "spec: required; a DittoServer needs at least spec.storage.metadataSize".to_string()
    })?;
    let spec: DittoServerSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "spec".to_string()
        } else {
            format!("spec.{path}")
        };
        format!("{field}: {}", e.into_inner())
    })?;
    Ok(DittoServer {
        metadata: object.metadata.clone(),
        spec,
        status: None,
    })
}

/// The AdmissionReview v1 response. Written by hand rather than with kube's
/// `AdmissionResponse`, whose `patch` serializes as an array of numbers; the
/// documented wire format is a base64 string.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ReviewResponse {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// The `metav1.Status` of a denial: its message is what `kubectl` prints.
#[derive(Serialize, Debug)]
struct ResponseStatus {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

impl ReviewResponse {
    fn allow(uid: String) -> Self {
        Self {
            uid,
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
        }
    }

    fn deny(uid: String, code: u16, reason: &'static str, message: String) -> Self {
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
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewEnvelope<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a ReviewResponse,
}

fn review_response(answer: Answer) -> Response {
    let envelope = ReviewEnvelope {
        api_version: REVIEW_API_VERSION,
        kind: REVIEW_KIND,
        response: &answer.response,
    };
    match serde_json::to_vec(&envelope) {
        Ok(body) => {
            let mut response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            response.extensions_mut().insert(answer.outcome);
            response
        }
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

async fn method_not_allowed() -> Response {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "only POST is supported: send an AdmissionReview v1".to_string(),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "unknown path: use POST /validate or POST /mutate".to_string(),
    )
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
