//! The API side of the certificate bootstrap: get-or-create the TLS Secret, rotate its leaf,
//! and keep each webhook configuration's `caBundle` equal to the stored CA.
//!
//! Every write is conditional, so concurrent runs (a Job and several operator replicas)
//! converge on one CA: the Secret is created (never overwritten) and, when it exists, replaced
//! only with its current `resourceVersion`; a `caBundle` patch carries a `test` on the webhook's
//! name at that index. A lost race means re-reading and deciding again.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;

use super::issue::{self, CaProblem, Decision, LeafProblem, Stored};
use super::{CertError, CertsArgs};

/// Secret keys. `tls.crt`/`tls.key` are what the server mounts; `ca.key` stays so the leaf
/// can be re-issued from the same CA (mount only `tls.*` into the server with `items:`).
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const SECRET_TYPE: &str = "kubernetes.io/tls";

/// Label marking the Secret as ours; a Secret without it is never overwritten.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "dittofs-operator";

/// Field manager recorded on our writes (so `kubectl` shows who owns `caBundle`).
pub const FIELD_MANAGER: &str = "dittofs-operator-certs";

/// How often `run` repeats the bootstrap: a `caBundle` reset by `helm upgrade` is repaired,
/// and a rotated leaf written, within this (plus the kubelet's Secret volume sync for the
/// server to see the new files).
pub const MAINTAIN_INTERVAL: Duration = Duration::from_secs(30);

/// How often one run retries a write that lost a race before giving up.
const MAX_ATTEMPTS: u32 = 5;

/// Which names an RBAC rule may be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamesFrom {
    /// Unrestricted: `create` is authorized before the object (and its name) exists.
    Any,
    /// The Secret named by `--secret`.
    SecretArg,
    /// The configurations named by `--webhook-config`.
    WebhookConfigArgs,
}

/// One API permission the bootstrap uses; the `certs/rbac.yaml` test compares against this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAccess {
    pub group: &'static str,
    pub resource: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub names: NamesFrom,
}

/// Exactly the calls made below: Secrets get/create/update (replace), and get/patch of both
/// webhook configuration kinds.
pub const API_ACCESS: &[ApiAccess] = &[
    ApiAccess {
        group: "",
        resource: "secrets",
        namespaced: true,
        verbs: &["create"],
        names: NamesFrom::Any,
    },
    ApiAccess {
        group: "",
        resource: "secrets",
        namespaced: true,
        verbs: &["get", "update"],
        names: NamesFrom::SecretArg,
    },
    ApiAccess {
        group: "admissionregistration.k8s.io",
        resource: "validatingwebhookconfigurations",
        namespaced: false,
        verbs: &["get", "patch"],
        names: NamesFrom::WebhookConfigArgs,
    },
    ApiAccess {
        group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        namespaced: false,
        verbs: &["get", "patch"],
        names: NamesFrom::WebhookConfigArgs,
    },
];

/// What happened to the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOutcome {
    /// We created it.
    Created,
    /// Someone else created it while we tried; theirs is used.
    AdoptedConcurrent,
    /// It was already fine.
    Unchanged,
    /// The leaf was re-issued from the stored CA.
    LeafReissued(LeafProblem),
    /// The CA could not be used; a new CA and leaf were written.
    CaReplaced(CaProblem),
}

impl fmt::Display for SecretOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created => f.write_str("created with a new CA"),
            Self::AdoptedConcurrent => f.write_str("created concurrently by another run; reused"),
            Self::Unchanged => f.write_str("up to date"),
            Self::LeafReissued(why) => write!(f, "leaf re-issued ({why})"),
            Self::CaReplaced(why) => write!(f, "CA replaced ({why})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    Validating,
    Mutating,
}

impl fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Validating => "ValidatingWebhookConfiguration",
            Self::Mutating => "MutatingWebhookConfiguration",
        })
    }
}

/// One `caBundle` we wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchedWebhook {
    pub kind: WebhookKind,
    pub config: String,
    pub webhook: String,
}

/// The result of one bootstrap pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub secret: SecretOutcome,
    /// The CA certificate (PEM) now in the Secret and in every `caBundle`.
    pub ca_bundle: Vec<u8>,
    pub patched: Vec<PatchedWebhook>,
}

impl Outcome {
    /// True when this pass wrote anything.
    pub fn changed(&self) -> bool {
        self.secret != SecretOutcome::Unchanged || !self.patched.is_empty()
    }
}

/// One idempotent pass: ensure the Secret, then every named configuration's `caBundle`.
pub async fn bootstrap_once(client: Client, args: &CertsArgs) -> Result<Outcome, CertError> {
    args.validate()?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
    let (secret, ca_bundle) = ensure_secret(&secrets, args).await?;
    let patched = ensure_ca_bundles(&client, &args.webhook_configs, &ca_bundle).await?;
    Ok(Outcome {
        secret,
        ca_bundle,
        patched,
    })
}

/// Run [`bootstrap_once`] every `interval` until `shutdown` completes. Failures are logged and
/// retried with exponential backoff (1 s doubling, capped at `interval`); only invalid
/// arguments end it early.
pub async fn maintain<F>(
    client: Client,
    args: CertsArgs,
    interval: Duration,
    shutdown: F,
) -> Result<(), CertError>
where
    F: Future<Output = ()>,
{
    args.validate()?;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures: u32 = 0;
    loop {
        let pass = tokio::select! {
            () = &mut shutdown => return Ok(()),
            pass = bootstrap_once(client.clone(), &args) => pass,
        };
        let delay = match pass {
            Ok(outcome) => {
                failures = 0;
                log_outcome(&args, &outcome);
                interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = backoff(failures, interval);
                tracing::warn!(
                    %error,
                    failures,
                    retry_in_secs = delay.as_secs_f64(),
                    "webhook certificate bootstrap failed"
                );
                delay
            }
        };
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// 1 s, 2 s, 4 s, ... never more than `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(cap)
}

fn log_outcome(args: &CertsArgs, outcome: &Outcome) {
    if !outcome.changed() {
        tracing::debug!(secret = %args.secret, "webhook certificate and caBundles up to date");
        return;
    }
    tracing::info!(
        namespace = %args.namespace,
        secret = %args.secret,
        outcome = %outcome.secret,
        "webhook TLS Secret"
    );
    for p in &outcome.patched {
        tracing::info!(kind = %p.kind, config = %p.config, webhook = %p.webhook, "caBundle updated");
    }
}

/// Get-or-create the Secret and bring it to a usable state; returns the CA PEM it holds.
async fn ensure_secret(
    api: &Api<Secret>,
    args: &CertsArgs,
) -> Result<(SecretOutcome, Vec<u8>), CertError> {
    let dns_names = args.dns_names();
    let what = format!("Secret {}/{}", args.namespace, args.secret);
    let mut adopted = false;
    for _ in 0..MAX_ATTEMPTS {
        let existing = api
            .get_opt(&args.secret)
            .await
            .map_err(|e| CertError::kube(format!("read {what}"), e))?;
        let now = Timestamp::now();
        let Some(existing) = existing else {
            let material = issue::issue_all(&dns_names, now)?;
            let secret = new_secret(args, &material);
            match api.create(&post_params(), &secret).await {
                Ok(_) => return Ok((SecretOutcome::Created, material.ca_cert_pem.into_bytes())),
                Err(e) if api_code(&e) == Some(409) => {
                    // Another run created it first: use theirs, so everyone shares one CA.
                    adopted = true;
                    continue;
                }
                Err(e) => return Err(CertError::kube(format!("create {what}"), e)),
            }
        };
        let found_type = existing.type_.clone().unwrap_or_default();
        if found_type != SECRET_TYPE {
            return Err(CertError::SecretWrongType {
                namespace: args.namespace.clone(),
                name: args.secret.clone(),
                found: found_type,
            });
        }
        let ours = existing
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(MANAGED_BY_LABEL))
            .is_some_and(|value| value == MANAGED_BY);
        let data = existing.data.clone().unwrap_or_default();
        let field = |key: &str| data.get(key).map(|b| b.0.as_slice());
        let stored = Stored {
            ca_cert: field(CA_CERT_KEY),
            ca_key: field(CA_KEY_KEY),
            cert: field(TLS_CERT_KEY),
            key: field(TLS_KEY_KEY),
        };
        // Someone else's certificate (cert-manager, a hand-made Secret): report, never clobber.
        let not_ours = |problem: String| CertError::SecretNotOurs {
            namespace: args.namespace.clone(),
            name: args.secret.clone(),
            problem,
        };
        let (outcome, updates, ca) = match issue::decide(&stored, &dns_names, now) {
            Decision::Keep => {
                let outcome = if adopted {
                    SecretOutcome::AdoptedConcurrent
                } else {
                    SecretOutcome::Unchanged
                };
                return Ok((outcome, stored.ca_cert.unwrap_or_default().to_vec()));
            }
            Decision::ReissueLeaf(problem) if !ours => return Err(not_ours(problem.to_string())),
            Decision::ReplaceCa(problem) if !ours => return Err(not_ours(problem.to_string())),
            Decision::ReissueLeaf(problem) => {
                // decide() returned ReissueLeaf, so both CA blobs are present and usable.
                let ca_cert = pem_text(stored.ca_cert, CA_CERT_KEY)?;
                let ca_key = pem_text(stored.ca_key, CA_KEY_KEY)?;
                let leaf = issue::issue_leaf(ca_cert, ca_key, &dns_names, now)?;
                let updates = vec![(TLS_CERT_KEY, leaf.cert_pem), (TLS_KEY_KEY, leaf.key_pem)];
                (
                    SecretOutcome::LeafReissued(problem),
                    updates,
                    ca_cert.as_bytes().to_vec(),
                )
            }
            Decision::ReplaceCa(problem) => {
                let m = issue::replace_ca(&stored, &problem, &dns_names, now)?;
                let ca = m.ca_cert_pem.clone().into_bytes();
                let updates = vec![
                    (CA_CERT_KEY, m.ca_cert_pem),
                    (CA_KEY_KEY, m.ca_key_pem),
                    (TLS_CERT_KEY, m.cert_pem),
                    (TLS_KEY_KEY, m.key_pem),
                ];
                (SecretOutcome::CaReplaced(problem), updates, ca)
            }
        };
        let replacement = with_data(existing, updates);
        match api
            .replace(&args.secret, &post_params(), &replacement)
            .await
        {
            Ok(_) => return Ok((outcome, ca)),
            // Changed (or deleted) since we read it: read again and decide again.
            Err(e) if matches!(api_code(&e), Some(409 | 404)) => continue,
            Err(e) => return Err(CertError::kube(format!("update {what}"), e)),
        }
    }
    Err(CertError::Contended {
        what,
        attempts: MAX_ATTEMPTS,
    })
}

fn pem_text<'a>(blob: Option<&'a [u8]>, key: &str) -> Result<&'a str, CertError> {
    let blob = blob.ok_or_else(|| CertError::StoredCa(format!("{key} is missing")))?;
    std::str::from_utf8(blob).map_err(|_| CertError::StoredCa(format!("{key} is not UTF-8 PEM")))
}

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_string()),
    }
}

/// The Secret we create (pure).
pub fn new_secret(args: &CertsArgs, material: &issue::Material) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let data = BTreeMap::from([
        (CA_CERT_KEY.to_string(), bytes(&material.ca_cert_pem)),
        (CA_KEY_KEY.to_string(), bytes(&material.ca_key_pem)),
        (TLS_CERT_KEY.to_string(), bytes(&material.cert_pem)),
        (TLS_KEY_KEY.to_string(), bytes(&material.key_pem)),
    ]);
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "dittofs-operator".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "webhook-tls".to_string(),
        ),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(args.secret.clone()),
            namespace: Some(args.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `existing` with some data keys replaced; everything else (including `resourceVersion`,
/// the update's precondition) kept.
fn with_data(mut existing: Secret, updates: Vec<(&str, String)>) -> Secret {
    let data = existing.data.get_or_insert_with(BTreeMap::new);
    for (key, value) in updates {
        data.insert(key.to_string(), ByteString(value.into_bytes()));
    }
    existing.string_data = None;
    existing.metadata.managed_fields = None;
    existing
}

fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Set `caBundle` on every webhook of every named configuration; returns what was written.
async fn ensure_ca_bundles(
    client: &Client,
    names: &[String],
    ca: &[u8],
) -> Result<Vec<PatchedWebhook>, CertError> {
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mut patched = Vec::new();
    for name in names {
        let found_validating = ensure_config(
            &validating,
            WebhookKind::Validating,
            name,
            ca,
            |c| {
                webhook_bundles(
                    c.webhooks
                        .iter()
                        .flatten()
                        .map(|w| (&w.name, &w.client_config.ca_bundle)),
                )
            },
            &mut patched,
        )
        .await?;
        let found_mutating = ensure_config(
            &mutating,
            WebhookKind::Mutating,
            name,
            ca,
            |c| {
                webhook_bundles(
                    c.webhooks
                        .iter()
                        .flatten()
                        .map(|w| (&w.name, &w.client_config.ca_bundle)),
                )
            },
            &mut patched,
        )
        .await?;
        if !found_validating && !found_mutating {
            return Err(CertError::WebhookConfigNotFound { name: name.clone() });
        }
    }
    Ok(patched)
}

/// `(webhook name, current caBundle)` for each webhook, in order.
type Bundles = Vec<(String, Option<Vec<u8>>)>;

fn webhook_bundles<'a>(
    hooks: impl Iterator<Item = (&'a String, &'a Option<ByteString>)>,
) -> Bundles {
    hooks
        .map(|(name, bundle)| (name.clone(), bundle.as_ref().map(|b| b.0.clone())))
        .collect()
}

/// Bring one configuration's bundles to `ca`. Returns false when it does not exist.
async fn ensure_config<K>(
    api: &Api<K>,
    kind: WebhookKind,
    name: &str,
    ca: &[u8],
    bundles: impl Fn(&K) -> Bundles,
    patched: &mut Vec<PatchedWebhook>,
) -> Result<bool, CertError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    for _ in 0..MAX_ATTEMPTS {
        let Some(config) = api
            .get_opt(name)
            .await
            .map_err(|e| CertError::kube(format!("read {kind} {name}"), e))?
        else {
            return Ok(false);
        };
        let current = bundles(&config);
        let Some((patch, stale)) = ca_bundle_patch(&current, ca) else {
            return Ok(true);
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api.patch(name, &params, &Patch::Json::<()>(patch)).await {
            Ok(_) => {
                patched.extend(stale.into_iter().map(|webhook| PatchedWebhook {
                    kind,
                    config: name.to_string(),
                    webhook,
                }));
                return Ok(true);
            }
            // 422: a `test` failed (the webhooks were reordered or renamed); 409: conflict.
            Err(e) if matches!(api_code(&e), Some(409 | 422)) => continue,
            Err(e) if api_code(&e) == Some(404) => {
                return Err(CertError::WebhookConfigNotFound {
                    name: name.to_string(),
                });
            }
            Err(e) => {
                return Err(CertError::kube(
                    format!("patch caBundle of {kind} {name}"),
                    e,
                ));
            }
        }
    }
    Err(CertError::Contended {
        what: format!("{kind} {name}"),
        attempts: MAX_ATTEMPTS,
    })
}

/// The JSON patch that sets `caBundle` to `ca` on every webhook whose bytes differ, each
/// guarded by a `test` of that webhook's name at its index; `None` when all already match.
/// Also returns the names of the webhooks it changes.
pub fn ca_bundle_patch(
    current: &[(String, Option<Vec<u8>>)],
    ca: &[u8],
) -> Option<(json_patch::Patch, Vec<String>)> {
    let encoded = Value::String(base64_standard(ca));
    let mut ops = Vec::new();
    let mut names = Vec::new();
    for (index, (name, bundle)) in current.iter().enumerate() {
        if bundle.as_deref() == Some(ca) {
            continue;
        }
        let index = index.to_string();
        ops.push(PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["webhooks", index.as_str(), "name"]),
            value: Value::String(name.clone()),
        }));
        ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["webhooks", index.as_str(), "clientConfig", "caBundle"]),
            value: encoded.clone(),
        }));
        names.push(name.clone());
    }
    if ops.is_empty() {
        None
    } else {
        Some((json_patch::Patch(ops), names))
    }
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_touches_only_webhooks_whose_bundle_differs() {
        let ca = b"CA".to_vec();
        let current = vec![
            ("a.example.com".to_string(), Some(ca.clone())),
            ("b.example.com".to_string(), None),
            ("c.example.com".to_string(), Some(b"old".to_vec())),
        ];
        let (patch, names) = ca_bundle_patch(&current, &ca).unwrap();
        assert_eq!(names, ["b.example.com", "c.example.com"]);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            serde_json::json!([
                {"op": "test", "path": "/webhooks/1/name", "value": "b.example.com"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "Q0E="},
                {"op": "test", "path": "/webhooks/2/name", "value": "c.example.com"},
                {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": "Q0E="},
            ])
        );
    }

    #[test]
    fn no_patch_when_every_bundle_matches_or_there_are_no_webhooks() {
        let ca = b"CA".to_vec();
        assert!(ca_bundle_patch(&[("a".into(), Some(ca.clone()))], &ca).is_none());
        assert!(ca_bundle_patch(&[], &ca).is_none());
    }

    #[test]
    fn patch_applies_to_a_configuration_and_fails_when_the_webhook_moved() {
        let ca = b"-----BEGIN CERTIFICATE-----\n".to_vec();
        let config = serde_json::json!({
            "webhooks": [
                {"name": "a", "clientConfig": {"caBundle": "b2xk"}},
                {"name": "b", "clientConfig": {}},
            ]
        });
        let current = vec![("a".into(), Some(b"old".to_vec())), ("b".into(), None)];
        let (patch, _) = ca_bundle_patch(&current, &ca).unwrap();
        let mut doc = config.clone();
        json_patch::patch(&mut doc, &patch).unwrap();
        let typed: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "webhooks": [
                {"name": "a", "clientConfig": doc["webhooks"][0]["clientConfig"], "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "b", "clientConfig": doc["webhooks"][1]["clientConfig"], "sideEffects": "None", "admissionReviewVersions": ["v1"]},
            ]
        }))
        .unwrap();
        for hook in typed.webhooks.unwrap() {
            assert_eq!(hook.client_config.ca_bundle.unwrap().0, ca);
        }
        // Reordered underneath us: the test op must make the whole patch fail.
        let mut swapped = serde_json::json!({
            "webhooks": [config["webhooks"][1].clone(), config["webhooks"][0].clone()]
        });
        assert!(json_patch::patch(&mut swapped, &patch).is_err());
    }

    #[test]
    fn new_secret_is_a_tls_secret_with_all_four_keys() {
        let args = CertsArgs {
            namespace: "ops".into(),
            secret: "hook-tls".into(),
            service: "hook".into(),
            webhook_configs: vec!["v".into()],
            cluster_domain: "cluster.local".into(),
        };
        let m = issue::issue_all(&args.dns_names(), Timestamp::now()).unwrap();
        let s = new_secret(&args, &m);
        assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
        assert_eq!(s.metadata.name.as_deref(), Some("hook-tls"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("ops"));
        let data = s.data.unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            [CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY]
        );
        assert_eq!(data[TLS_CERT_KEY].0, m.cert_pem.as_bytes());
    }

    #[test]
    fn with_data_keeps_other_keys_and_the_resource_version() {
        let existing = Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                ("extra".to_string(), ByteString(b"x".to_vec())),
                (TLS_CERT_KEY.to_string(), ByteString(b"old".to_vec())),
            ])),
            ..Secret::default()
        };
        let updated = with_data(existing, vec![(TLS_CERT_KEY, "new".to_string())]);
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("42"));
        let data = updated.data.unwrap();
        assert_eq!(data["extra"].0, b"x");
        assert_eq!(data[TLS_CERT_KEY].0, b"new");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cap = Duration::from_secs(30);
        let delays: Vec<u64> = (1..=7).map(|n| backoff(n, cap).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(u32::MAX, cap), cap);
    }

    #[test]
    fn api_access_lists_each_verb_once_per_resource() {
        let mut seen = std::collections::BTreeSet::new();
        for access in API_ACCESS {
            for verb in access.verbs {
                assert!(
                    seen.insert((access.group, access.resource, *verb)),
                    "{verb} on {} listed twice",
                    access.resource
                );
            }
        }
    }
}
