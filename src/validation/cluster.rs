//! Rules that need cluster facts, asked through [`ClusterLookup`]. All questions
//! are asked concurrently, so the slowest lookup bounds the latency, not the sum.
//!
//! On UPDATE only the fields that changed are looked up: a fact that was true when
//! the object was written (a StorageClass, a Secret, the Percona CRD) may have
//! changed since, and must not refuse an unrelated edit. With no old object
//! (CREATE, the reconciler) everything is looked up.

use futures::future::join_all;

use crate::effective::{
    Database, EffectiveSpec, MetadataStoreKind, RemoteBlockStoreKind, SecretKey,
};

use super::Findings;
use super::{ClusterLookup, Finding, Lookup, SecretFacts, Subject};

/// Keys an external PostgreSQL Secret must hold. `port` and `sslmode` are optional:
/// DittoFS v0.29 uses 5432 and `disable` when they are absent (`ApplyDefaults` in
/// `pkg/controlplane/store/gorm.go`).
pub const POSTGRES_SECRET_KEYS: [&str; 4] = ["host", "database", "user", "password"];

/// The shortest JWT signing secret DittoFS v0.29 starts with: `NewServer` refuses
/// `len(jwtSecret) < 32`, a length in bytes (`pkg/controlplane/api/server.go`).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// One Secret to look at: where it is referenced and which keys it needs.
#[derive(PartialEq)]
struct SecretCheck {
    field: String,
    name: String,
    required_keys: Vec<String>,
    /// The fewest bytes each required key's value may hold.
    min_value_bytes: usize,
    /// What the Secret is for, in messages.
    purpose: &'static str,
    /// What fails without it, in messages.
    needed_by: &'static str,
    /// The `type` the Secret must have.
    required_type: Option<&'static str>,
}

/// The StorageClasses `eff` names, by field.
fn storage_classes(eff: &EffectiveSpec) -> [(&'static str, Option<&str>); 2] {
    [
        (
            "spec.storage.storageClassName",
            eff.storage.storage_class_name.as_deref(),
        ),
        (
            "spec.percona.storageClassName",
            eff.percona
                .as_ref()
                .and_then(|p| p.storage_class_name.as_deref()),
        ),
    ]
}

/// Look up the cluster facts `eff` depends on; with `old` (UPDATE), only those of
/// the fields that differ from it.
pub(crate) async fn check_cluster<L: ClusterLookup>(
    eff: &EffectiveSpec,
    subject: Subject<'_>,
    lookup: &L,
    out: &mut Findings,
    skipped: &mut Vec<Finding>,
) {
    let old = match subject {
        Subject::Update(old) => Some(old),
        Subject::Create | Subject::Stored => None,
    };
    let old_classes = old.map(storage_classes);
    let classes: Vec<(&'static str, &str)> = storage_classes(eff)
        .into_iter()
        .enumerate()
        .filter(|(i, (_, class))| old_classes.is_none_or(|o| o[*i].1 != *class))
        .filter_map(|(_, (f, c))| c.map(|c| (f, c)))
        .collect();

    let old_secrets = old.map(secret_checks).unwrap_or_default();
    let secrets: Vec<SecretCheck> = secret_checks(eff)
        .into_iter()
        .filter(|c| old.is_none() || !old_secrets.contains(c))
        .collect();
    // Percona is being enabled now (or this is not an UPDATE).
    let percona_changed = old.is_none_or(|o| o.percona.is_none());

    let class_answers = join_all(classes.iter().map(|(_, c)| lookup.storage_class(c)));
    let secret_answers = join_all(
        secrets
            .iter()
            .map(|s| lookup.secret(&eff.namespace, &s.name)),
    );
    let percona_answer = async {
        match eff.percona {
            Some(_) if percona_changed => Some(lookup.percona_crd().await),
            _ => None,
        }
    };
    // A ServiceMonitor is being asked for now (or this is not an UPDATE).
    let wants_monitor = |e: &EffectiveSpec| {
        e.metrics
            .as_ref()
            .is_some_and(|m| m.service_monitor.is_some())
    };
    let monitor_answer = async {
        match wants_monitor(eff) && !old.is_some_and(wants_monitor) {
            true => Some(lookup.service_monitor_crd().await),
            false => None,
        }
    };
    let (class_answers, secret_answers, percona_answer, monitor_answer) = futures::join!(
        class_answers,
        secret_answers,
        percona_answer,
        monitor_answer
    );

    for ((field, class), answer) in classes.iter().zip(class_answers) {
        match answer {
            Lookup::Found(()) => {}
            // A stored object's StorageClass may be deleted later (a normal cluster
            // change): its volumes exist and keep working, so the server stays managed.
            Lookup::NotFound if matches!(subject, Subject::Stored) => out.warnings.push(Finding {
                field: field.to_string(),
                message: format!(
                    "StorageClass {class:?} does not exist any more: the existing volumes keep working, but a new one (a deleted PVC, a new replica) cannot be provisioned until it exists again"
                ),
            }),
            Lookup::NotFound => out.errors.push(Finding {
                field: field.to_string(),
                message: format!(
                    "StorageClass {class:?} does not exist in the cluster: create it, pick another (kubectl get storageclass), or remove the field to use the default"
                ),
            }),
            Lookup::Unknown(reason) => out.warnings.push(Finding {
                field: field.to_string(),
                message: format!("could not verify that StorageClass {class:?} exists: {reason}"),
            }),
            Lookup::Skipped => skipped.push(Finding {
                field: field.to_string(),
                message: format!("StorageClass {class:?} not checked (no cluster)"),
            }),
        }
    }

    if let Some(answer) = percona_answer {
        match answer {
            Lookup::Found(()) => {}
            Lookup::NotFound => out.errors.push(Finding {
                field: "spec.percona.enabled".into(),
                message: "the Percona PostgreSQL operator is not installed (no perconapgclusters.pgv2.percona.com CRD): install it first, or set percona.enabled: false".into(),
            }),
            Lookup::Unknown(reason) => out.warnings.push(Finding {
                field: "spec.percona.enabled".into(),
                message: format!("could not verify that the Percona PostgreSQL operator is installed: {reason}"),
            }),
            Lookup::Skipped => skipped.push(Finding {
                field: "spec.percona.enabled".into(),
                message: "Percona CRD presence not checked (no cluster)".into(),
            }),
        }
    }

    if let Some(answer) = monitor_answer {
        const FIELD: &str = "spec.metrics.serviceMonitor.enabled";
        match answer {
            Lookup::Found(()) => {}
            Lookup::NotFound => out.warnings.push(Finding {
                field: FIELD.into(),
                message: "the Prometheus Operator is not installed (no servicemonitors.monitoring.coreos.com CRD): no ServiceMonitor is made until it is; the operator makes it within seconds once the CRD exists".into(),
            }),
            Lookup::Unknown(reason) => out.warnings.push(Finding {
                field: FIELD.into(),
                message: format!("could not verify that the Prometheus Operator is installed: {reason}"),
            }),
            Lookup::Skipped => skipped.push(Finding {
                field: FIELD.into(),
                message: "ServiceMonitor CRD presence not checked (no cluster)".into(),
            }),
        }
    }

    for (check, answer) in secrets.iter().zip(secret_answers) {
        report_secret(check, answer, &eff.namespace, out, skipped);
    }
}

fn secret_checks(eff: &EffectiveSpec) -> Vec<SecretCheck> {
    let mut checks = Vec::new();
    if !eff.jwt.secret.managed {
        checks.push(SecretCheck {
            field: "spec.identity.jwt.secretRef".into(),
            name: eff.jwt.secret.name.clone(),
            required_keys: vec![eff.jwt.secret.key.clone()],
            min_value_bytes: MIN_JWT_SECRET_BYTES,
            purpose: "JWT signing secret",
            needed_by: SERVER_START,
            required_type: None,
        });
    }
    if !eff.admin.password.managed {
        checks.push(SecretCheck {
            field: "spec.identity.admin.passwordSecretRef".into(),
            name: eff.admin.password.name.clone(),
            required_keys: vec![eff.admin.password.key.clone()],
            min_value_bytes: 0,
            purpose: "admin password",
            needed_by: SERVER_START,
            required_type: None,
        });
    }
    if let Database::Postgres { secret_name } = &eff.database {
        checks.push(SecretCheck {
            field: "spec.database.postgresSecretRef".into(),
            name: secret_name.clone(),
            required_keys: POSTGRES_SECRET_KEYS.iter().map(|k| k.to_string()).collect(),
            min_value_bytes: 0,
            purpose: "PostgreSQL connection",
            needed_by: SERVER_START,
            required_type: None,
        });
    }
    if let Some(token) = eff.metrics.as_ref().and_then(|m| m.token.as_ref()) {
        checks.push(SecretCheck {
            field: "spec.metrics.bearerTokenSecret".into(),
            name: token.name.clone(),
            required_keys: vec![token.key.clone()],
            // The server refuses to start with an empty token file.
            min_value_bytes: 1,
            purpose: "metrics bearer token",
            needed_by: SERVER_START,
            required_type: None,
        });
    }
    if let Some(tls) = &eff.api_tls {
        checks.push(SecretCheck {
            field: "spec.controlPlane.certSecretName".into(),
            name: tls.cert_secret.clone(),
            required_keys: vec!["tls.crt".into(), "tls.key".into()],
            min_value_bytes: 0,
            purpose: "REST API certificate",
            needed_by: SERVER_START,
            required_type: Some(TLS_SECRET_TYPE),
        });
        if let Some(ca) = &tls.client_ca_secret {
            checks.push(SecretCheck {
                field: "spec.controlPlane.clientCASecretName".into(),
                name: ca.clone(),
                required_keys: vec!["ca.crt".into()],
                min_value_bytes: 0,
                purpose: "client CA of the REST API",
                needed_by: SERVER_START,
                required_type: None,
            });
        }
        if let Some(operator) = &tls.operator_cert_secret {
            checks.push(SecretCheck {
                field: "spec.controlPlane.operatorCertSecretName".into(),
                name: operator.clone(),
                required_keys: vec!["tls.crt".into(), "tls.key".into()],
                min_value_bytes: 0,
                purpose: "the operator's client certificate",
                needed_by: "the operator cannot reach the REST API",
                required_type: Some(TLS_SECRET_TYPE),
            });
        }
    }
    if let Some(ldap) = &eff.ldap {
        let checks_ = [
            Some((
                "spec.identity.ldap.bindPasswordSecretRef",
                &ldap.bind_password,
                1,
                "LDAP bind password",
                LDAP_CONFIG,
            )),
            ldap.ca_cert.as_ref().map(|ca| {
                (
                    "spec.identity.ldap.caCertSecretRef",
                    ca,
                    1,
                    "LDAP CA certificate",
                    SERVER_START,
                )
            }),
        ];
        for (field, key, min, purpose, needed_by) in checks_.into_iter().flatten() {
            checks.push(key_check(field, key, min, purpose, needed_by));
        }
    }
    if let Some(krb) = &eff.kerberos {
        checks.push(key_check(
            "spec.identity.kerberos.keytabSecretRef",
            &krb.keytab,
            1,
            "Kerberos keytab",
            SERVER_START,
        ));
        if let Some(conf) = &krb.krb5_conf {
            checks.push(key_check(
                "spec.identity.kerberos.krb5ConfSecretRef",
                conf,
                1,
                "krb5.conf",
                SERVER_START,
            ));
        }
        if let Some(machine) = &krb.machine_account {
            checks.push(key_check(
                "spec.identity.kerberos.machineAccount.secretRef",
                &machine.secret,
                1,
                "machine account secret",
                "NTLM pass-through stays off",
            ));
        }
    }
    if let Some(name) = eff
        .percona
        .as_ref()
        .and_then(|p| p.backup.as_ref())
        .and_then(|b| b.credentials_secret.clone())
    {
        checks.push(SecretCheck {
            field: "spec.percona.backup.credentialsSecretRef".into(),
            name,
            required_keys: Vec::new(),
            min_value_bytes: 0,
            purpose: "pgBackRest credentials",
            needed_by: "pgBackRest cannot back up",
            required_type: None,
        });
    }
    for (i, store) in eff.server.metadata_stores.iter().enumerate() {
        if let MetadataStoreKind::Postgres { secret_name } = &store.kind {
            checks.push(SecretCheck {
                field: format!("spec.metadataStores[{i}].postgres.secretRef"),
                name: secret_name.clone(),
                required_keys: POSTGRES_SECRET_KEYS.iter().map(|k| k.to_string()).collect(),
                min_value_bytes: 0,
                purpose: "PostgreSQL metadata store",
                needed_by: STORE_CREATION,
                required_type: None,
            });
        }
    }
    for (i, store) in eff.server.remote_block_stores.iter().enumerate() {
        if let RemoteBlockStoreKind::S3(s3) = &store.kind {
            checks.push(SecretCheck {
                field: format!("spec.remoteBlockStores[{i}].s3.credentialsSecretRef"),
                name: s3.secret_name.clone(),
                required_keys: vec![
                    s3.access_key_id_key.clone(),
                    s3.secret_access_key_key.clone(),
                ],
                min_value_bytes: 0,
                purpose: "S3 keys",
                needed_by: STORE_CREATION,
                required_type: None,
            });
        }
    }
    // A Secret with no name is refused by the pure rules; nothing to look up.
    checks.retain(|c| !c.name.trim().is_empty());
    checks
}

/// The check of one user Secret key (names refused as empty by the pure rules
/// are not looked up).
fn key_check(
    field: &str,
    key: &SecretKey,
    min_value_bytes: usize,
    purpose: &'static str,
    needed_by: &'static str,
) -> SecretCheck {
    SecretCheck {
        field: field.to_string(),
        name: key.name.clone(),
        required_keys: vec![key.key.clone()],
        min_value_bytes,
        purpose,
        needed_by,
        required_type: None,
    }
}

const SERVER_START: &str = "the server will not start";
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
const LDAP_CONFIG: &str = "DittoFS refuses the LDAP settings";
const STORE_CREATION: &str = "the operator cannot create the store";

fn report_secret(
    check: &SecretCheck,
    answer: Lookup<SecretFacts>,
    namespace: &str,
    out: &mut Findings,
    skipped: &mut Vec<Finding>,
) {
    let field = check.field.clone();
    let name = &check.name;
    match answer {
        Lookup::Found(facts) => {
            // A lookup that could not tell the type says nothing about it.
            if let (Some(wanted), Some(actual)) =
                (check.required_type, facts.secret_type.as_deref())
                && actual != wanted
            {
                out.errors.push(Finding {
                    field: field.clone(),
                    message: format!(
                        "Secret {namespace}/{name} ({}) is of type {actual}, not {wanted}: create it with `kubectl create secret tls` (or a cert-manager Certificate)",
                        check.purpose
                    ),
                });
            }
            let missing: Vec<&str> = check
                .required_keys
                .iter()
                .filter(|k| !facts.has_key(k))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                out.warnings.push(Finding {
                    field: field.clone(),
                    message: format!(
                        "Secret {namespace}/{name} ({}) has no key {}: add it, or {}",
                        check.purpose,
                        missing.join(", "),
                        check.needed_by
                    ),
                });
            }
            // Only the length is known, never the value: the message cannot leak it.
            for (key, len) in check.required_keys.iter().filter_map(|k| {
                facts
                    .value_lengths
                    .get(k)
                    .filter(|len| **len < check.min_value_bytes)
                    .map(|len| (k, *len))
            }) {
                if check.min_value_bytes == 1 {
                    out.errors.push(Finding {
                        field: field.clone(),
                        message: format!(
                            "key {key} of Secret {namespace}/{name} ({}) is empty: store the value there, or {}",
                            check.purpose, check.needed_by
                        ),
                    });
                    continue;
                }
                out.errors.push(Finding {
                    field: field.clone(),
                    message: format!(
                        "key {key} of Secret {namespace}/{name} ({}) holds {len} bytes, but DittoFS v0.29 refuses to start with fewer than {} bytes: store at least {} random bytes there (for example the output of `openssl rand -base64 48`)",
                        check.purpose, check.min_value_bytes, check.min_value_bytes
                    ),
                });
            }
        }
        Lookup::NotFound => out.warnings.push(Finding {
            field,
            message: format!(
                "Secret {namespace}/{name} ({}) does not exist yet: create it, or {}",
                check.purpose, check.needed_by
            ),
        }),
        Lookup::Unknown(reason) => out.warnings.push(Finding {
            field,
            message: format!("could not verify Secret {namespace}/{name}: {reason}"),
        }),
        Lookup::Skipped => skipped.push(Finding {
            field,
            message: format!("Secret {namespace}/{name} not checked (no cluster)"),
        }),
    }
}
