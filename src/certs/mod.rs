//! Self-signed certificate bootstrap for the admission webhook.
//!
//! One `kubernetes.io/tls` Secret holds the CA (`ca.crt`, `ca.key`) and the serving leaf
//! (`tls.crt`, `tls.key`); the webhook server mounts it and reloads the files. The bootstrap
//! gets or creates that Secret (first writer wins, so concurrent runs converge on one CA),
//! re-issues the leaf from the stored CA when needed, and writes the CA into the `caBundle` of
//! each named webhook configuration. It runs once as a Job (`dittofs-operator certs`) and
//! periodically inside `dittofs-operator run` ([`maintain`]) to repair a `caBundle` that a
//! `helm upgrade` reset and to rotate the leaf before it expires.
//!
//! [`issue`] is pure (issuance and rotation decisions); [`bootstrap`] talks to the API server.

pub mod bootstrap;
pub mod issue;

pub use bootstrap::{
    API_ACCESS, ApiAccess, MAINTAIN_INTERVAL, NamesFrom, Outcome, PatchedWebhook, SecretOutcome,
    WebhookKind, bootstrap_once, maintain,
};

/// Everything that can go wrong while bootstrapping certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("invalid {flag} {value:?}: {reason}")]
    InvalidArgument {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("the system random number generator failed; cannot pick a certificate serial number")]
    Random,
    #[error("time {0} cannot be written into a certificate")]
    TimeOutOfRange(String),
    #[error("the stored CA cannot sign a new leaf: {0}")]
    StoredCa(String),
    #[error(
        "Secret {namespace}/{name} exists with type {found:?}, not \"kubernetes.io/tls\"; \
         delete it or pass another --secret (a Secret's type cannot be changed)"
    )]
    SecretWrongType {
        namespace: String,
        name: String,
        found: String,
    },
    #[error(
        "Secret {namespace}/{name} needs new certificates ({problem}) but is not labelled \
         app.kubernetes.io/managed-by=dittofs-operator, so it is left alone; delete it to let \
         the bootstrap create its own, or pass another --secret"
    )]
    SecretNotOurs {
        namespace: String,
        name: String,
        problem: String,
    },
    #[error(
        "webhook configuration {name:?} was found neither as a ValidatingWebhookConfiguration \
         nor as a MutatingWebhookConfiguration; apply the webhook/ manifests first or fix \
         --webhook-config"
    )]
    WebhookConfigNotFound { name: String },
    #[error("{what} kept changing underneath us; gave up after {attempts} attempts")]
    Contended { what: String, attempts: u32 },
    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl CertError {
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// Arguments of `dittofs-operator certs`, also used by `run` to maintain the certificate.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct CertsArgs {
    /// Namespace of the webhook Service and of the TLS Secret.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: String,
    /// Name of the `kubernetes.io/tls` Secret holding ca.crt, ca.key, tls.crt and tls.key.
    #[arg(long)]
    pub secret: String,
    /// Name of the webhook Service (the certificate is issued for its DNS names).
    #[arg(long)]
    pub service: String,
    /// Validating or Mutating WebhookConfiguration whose caBundle to keep in sync
    /// (repeatable; each name is looked up as both kinds).
    #[arg(long = "webhook-config", value_name = "NAME", required = true)]
    pub webhook_configs: Vec<String>,
    /// Cluster DNS domain, for the fully qualified Service name.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
}

impl CertsArgs {
    /// Reject arguments that cannot name Kubernetes objects or DNS names.
    pub fn validate(&self) -> Result<(), CertError> {
        check_label("--namespace", &self.namespace)?;
        check_subdomain("--secret", &self.secret)?;
        // A Service name is a DNS label: it becomes the first label of every SAN.
        check_label("--service", &self.service)?;
        for name in &self.webhook_configs {
            check_subdomain("--webhook-config", name)?;
        }
        check_subdomain("--cluster-domain", &self.cluster_domain)?;
        Ok(())
    }

    /// The DNS names the serving certificate must carry.
    pub fn dns_names(&self) -> Vec<String> {
        issue::service_dns_names(&self.service, &self.namespace, &self.cluster_domain)
    }
}

fn invalid(flag: &'static str, value: &str, reason: &str) -> CertError {
    CertError::InvalidArgument {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// RFC 1123 label: what namespaces and Service names must be.
fn check_label(flag: &'static str, value: &str) -> Result<(), CertError> {
    match crate::names::label_problem(value) {
        Some(reason) => Err(invalid(flag, value, reason)),
        None => Ok(()),
    }
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn check_subdomain(flag: &'static str, value: &str) -> Result<(), CertError> {
    match crate::names::subdomain_problem(value) {
        Some(reason) => Err(invalid(flag, value, reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CertsArgs {
        CertsArgs {
            namespace: "dittofs-system".into(),
            secret: "dittofs-operator-webhook-tls".into(),
            service: "dittofs-operator-webhook".into(),
            webhook_configs: vec!["dittofs-operator-validating".into()],
            cluster_domain: "cluster.local".into(),
        }
    }

    #[test]
    fn good_arguments_pass() {
        args().validate().unwrap();
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let cases: Vec<(CertsArgs, &str)> = vec![
            (
                CertsArgs {
                    namespace: String::new(),
                    ..args()
                },
                "--namespace",
            ),
            (
                CertsArgs {
                    service: "Web_Hook".into(),
                    ..args()
                },
                "--service",
            ),
            (
                CertsArgs {
                    service: "a.b".into(),
                    ..args()
                },
                "--service",
            ),
            (
                CertsArgs {
                    secret: "-tls".into(),
                    ..args()
                },
                "--secret",
            ),
            (
                CertsArgs {
                    webhook_configs: vec!["ok".into(), "bad..name".into()],
                    ..args()
                },
                "--webhook-config",
            ),
            (
                CertsArgs {
                    cluster_domain: "cluster.local.".into(),
                    ..args()
                },
                "--cluster-domain",
            ),
        ];
        for (a, flag) in cases {
            let err = a.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err} should name {flag}");
        }
    }

    #[test]
    fn dns_names_use_the_cluster_domain() {
        let a = CertsArgs {
            cluster_domain: "corp.example".into(),
            ..args()
        };
        assert_eq!(
            a.dns_names().last().map(String::as_str),
            Some("dittofs-operator-webhook.dittofs-system.svc.corp.example")
        );
    }
}
