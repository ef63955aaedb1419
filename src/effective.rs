//! The effective configuration of a DittoServer: every default resolved, every
//! choice made (which database, which Secrets). Builders read only this, so the
//! decision for each value is taken once, here or in [`crate::defaults`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSecurityContext, ResourceRequirements, SecurityContext};
use kube::ResourceExt;

use crate::crd::*;
use crate::defaults::{self, apply_defaults};
use crate::names;

/// Everything the builders need, with no `Option` left for a default.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveSpec {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub replicas: i32,
    pub storage: Storage,
    pub database: Database,
    /// Metrics port when metrics are enabled.
    pub metrics_port: Option<i32>,
    pub ports: Ports,
    pub jwt: Jwt,
    pub admin: Admin,
    pub service_type: ServiceType,
    pub service_annotations: BTreeMap<String, String>,
    pub s3: Option<S3>,
    pub percona: Option<Percona>,
    pub resources: Option<ResourceRequirements>,
    /// The DittoFS container's security context as it will run: the restricted
    /// defaults with `spec.securityContext` laid over them.
    pub security_context: SecurityContext,
    /// The pod's security context as it will run: `spec.podSecurityContext`, or
    /// the operator's default.
    pub pod_security_context: PodSecurityContext,
    pub termination_grace_period_seconds: i64,
}

/// Client-facing ports (on Services) and the ports DittoFS listens on in the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports {
    pub nfs: PortPair,
    /// SMB when enabled.
    pub smb: Option<PortPair>,
    pub api: PortPair,
}

/// A Service port and the container port it forwards to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPair {
    /// What clients connect to, on the Service.
    pub service: i32,
    /// What the server listens on, in the pod.
    pub container: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    pub metadata_size: String,
    pub content_size: Option<String>,
    pub cache_size: String,
    pub control_plane_size: String,
    pub storage_class_name: Option<String>,
}

/// The control-plane database the server will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// SQLite file on the control-plane volume.
    Sqlite { path: String },
    /// External PostgreSQL; connection fields come from this Secret.
    Postgres { secret_name: String },
    /// Percona-managed PostgreSQL; connection from Percona's pguser Secret.
    Percona { secret_name: String },
}

impl Database {
    /// The Secret holding PostgreSQL connection fields, if any.
    pub fn postgres_secret(&self) -> Option<&str> {
        match self {
            Database::Sqlite { .. } => None,
            Database::Postgres { secret_name } | Database::Percona { secret_name } => {
                Some(secret_name)
            }
        }
    }
}

/// A resolved Secret key reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
    /// The operator creates and owns this Secret.
    pub managed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwt {
    pub secret: SecretKey,
    pub access_token_duration: String,
    pub refresh_token_duration: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// The administrator the server creates: always `admin` in DittoFS v0.29
    /// (`EnsureAdminUser` creates `models.AdminUsername`,
    /// `pkg/controlplane/models/admin.go`), whatever the spec says.
    pub username: String,
    /// `spec.identity.admin.username` as written (for validation only).
    pub requested_username: Option<String>,
    pub password: SecretKey,
}

/// The `spec.s3` block. DittoFS v0.29 does not read it (an S3 block store carries
/// its own keys, see `docs/stores.md`); it only names the Secret the user keeps
/// the S3 keys in, which the admission warning points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3 {
    pub secret_name: String,
    pub access_key_id_key: String,
    pub secret_access_key_key: String,
    pub endpoint_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Percona {
    pub cluster_name: String,
    pub delete_with_server: bool,
    pub replicas: i32,
    pub storage_size: String,
    pub storage_class_name: Option<String>,
    pub database_name: String,
    pub backup: Option<PerconaBackup>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerconaBackup {
    pub credentials_secret: Option<String>,
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub full_schedule: String,
    pub incr_schedule: String,
    pub retention_days: i32,
}

impl EffectiveSpec {
    /// Resolve a DittoServer (defaulted here, so the input need not be).
    /// Never fails: validation judges the result, builders use it.
    pub fn resolve(ds: &DittoServer) -> Self {
        let name = ds.name_any();
        let namespace = ds.namespace().unwrap_or_else(|| "default".to_string());
        let mut spec = ds.spec.clone();
        apply_defaults(&mut spec);
        Self::from_defaulted(name, namespace, spec)
    }

    fn from_defaulted(name: String, namespace: String, spec: DittoServerSpec) -> Self {
        let storage = Storage {
            metadata_size: spec.storage.metadata_size.clone(),
            content_size: spec.storage.content_size.clone().filter(|s| !s.is_empty()),
            cache_size: or(&spec.storage.cache_size, defaults::DEFAULT_CACHE_SIZE),
            control_plane_size: or(
                &spec.storage.control_plane_size,
                defaults::DEFAULT_CONTROL_PLANE_SIZE,
            ),
            storage_class_name: spec
                .storage
                .storage_class_name
                .clone()
                .filter(|s| !s.is_empty()),
        };

        let percona_spec = spec.percona.clone().unwrap_or_default();
        let percona = (percona_spec.enabled == Some(true)).then(|| {
            let backup_spec = percona_spec.backup.clone().unwrap_or_default();
            Percona {
                cluster_name: names::percona_cluster(&name),
                delete_with_server: percona_spec.delete_with_server.unwrap_or(false),
                replicas: percona_spec
                    .replicas
                    .unwrap_or(defaults::DEFAULT_PERCONA_REPLICAS),
                storage_size: or(
                    &percona_spec.storage_size,
                    defaults::DEFAULT_PERCONA_STORAGE_SIZE,
                ),
                storage_class_name: percona_spec
                    .storage_class_name
                    .clone()
                    .filter(|s| !s.is_empty()),
                database_name: or(
                    &percona_spec.database_name,
                    defaults::DEFAULT_PERCONA_DATABASE,
                ),
                backup: (backup_spec.enabled == Some(true)).then(|| PerconaBackup {
                    credentials_secret: backup_spec
                        .credentials_secret_ref
                        .as_ref()
                        .map(|r| r.name.clone())
                        .filter(|n| !n.is_empty()),
                    bucket: backup_spec.bucket.clone().unwrap_or_default(),
                    endpoint: backup_spec.endpoint.clone().unwrap_or_default(),
                    region: or(&backup_spec.region, defaults::DEFAULT_BACKUP_REGION),
                    full_schedule: or(
                        &backup_spec.full_schedule,
                        defaults::DEFAULT_BACKUP_FULL_SCHEDULE,
                    ),
                    incr_schedule: or(
                        &backup_spec.incr_schedule,
                        defaults::DEFAULT_BACKUP_INCR_SCHEDULE,
                    ),
                    retention_days: backup_spec
                        .retention_days
                        .unwrap_or(defaults::DEFAULT_BACKUP_RETENTION_DAYS),
                }),
            }
        });

        let db_spec = spec.database.clone().unwrap_or_default();
        // Precedence: Percona > postgresSecretRef > SQLite.
        let database = match (&percona, &db_spec.postgres_secret_ref) {
            (Some(_), _) => Database::Percona {
                secret_name: names::percona_user_secret(&name, defaults::PERCONA_USER),
            },
            (None, Some(r)) => Database::Postgres {
                secret_name: r.name.clone(),
            },
            (None, None) => Database::Sqlite {
                path: db_spec
                    .sqlite
                    .and_then(|s| s.path)
                    .unwrap_or_else(|| defaults::DEFAULT_SQLITE_PATH.to_string()),
            },
        };

        let metrics = spec.metrics.clone().unwrap_or_default();
        let metrics_port = (metrics.enabled == Some(true))
            .then(|| metrics.port.unwrap_or(defaults::DEFAULT_METRICS_PORT));

        let cp = spec.control_plane.clone().unwrap_or_default();
        let api_container = cp.port.unwrap_or(defaults::DEFAULT_API_PORT);
        let smb = spec.smb.clone().unwrap_or_default();
        let ports = Ports {
            nfs: PortPair {
                service: spec.nfs_port.unwrap_or(defaults::DEFAULT_NFS_PORT),
                container: spec
                    .nfs_adapter_port
                    .unwrap_or(defaults::DEFAULT_NFS_ADAPTER_PORT),
            },
            smb: (smb.enabled == Some(true)).then(|| PortPair {
                service: smb.port.unwrap_or(defaults::DEFAULT_SMB_PORT),
                container: smb
                    .adapter_port
                    .unwrap_or(defaults::DEFAULT_SMB_ADAPTER_PORT),
            }),
            api: PortPair {
                service: cp.service_port.unwrap_or(api_container),
                container: api_container,
            },
        };

        let identity = spec.identity.clone().unwrap_or_default();
        let jwt_spec = identity.jwt.unwrap_or_default();
        let jwt = Jwt {
            secret: resolve_secret_key(
                jwt_spec.secret_ref.as_ref(),
                names::jwt_secret(&name),
                defaults::JWT_SECRET_KEY,
            ),
            access_token_duration: or(
                &jwt_spec.access_token_duration,
                defaults::DEFAULT_ACCESS_TOKEN_DURATION,
            ),
            refresh_token_duration: or(
                &jwt_spec.refresh_token_duration,
                defaults::DEFAULT_REFRESH_TOKEN_DURATION,
            ),
        };
        let admin_spec = identity.admin.unwrap_or_default();
        let admin = Admin {
            username: defaults::DEFAULT_ADMIN_USERNAME.to_string(),
            requested_username: admin_spec.username.clone(),
            password: resolve_secret_key(
                admin_spec.password_secret_ref.as_ref(),
                names::admin_secret(&name),
                defaults::ADMIN_PASSWORD_KEY,
            ),
        };

        let service = spec.service.clone().unwrap_or_default();
        let s3 = spec.s3.clone().and_then(|s3| {
            s3.credentials_secret_ref.map(|c| S3 {
                secret_name: c.secret_name,
                access_key_id_key: or(&c.access_key_id_key, defaults::DEFAULT_S3_ACCESS_KEY_ID_KEY),
                secret_access_key_key: or(
                    &c.secret_access_key_key,
                    defaults::DEFAULT_S3_SECRET_ACCESS_KEY_KEY,
                ),
                endpoint_key: or(&c.endpoint_key, defaults::DEFAULT_S3_ENDPOINT_KEY),
            })
        });

        EffectiveSpec {
            image: or(&spec.image, defaults::DEFAULT_IMAGE),
            replicas: spec.replicas.unwrap_or(defaults::DEFAULT_REPLICAS),
            storage,
            database,
            metrics_port,
            ports,
            jwt,
            admin,
            service_type: service
                .service_type
                .unwrap_or(defaults::DEFAULT_SERVICE_TYPE),
            service_annotations: service.annotations.unwrap_or_default(),
            s3,
            percona,
            resources: spec.resources,
            security_context: defaults::container_security_context(spec.security_context.as_ref()),
            pod_security_context: defaults::pod_security_context(
                spec.pod_security_context.as_ref(),
            ),
            termination_grace_period_seconds: spec
                .termination_grace_period_seconds
                .unwrap_or(defaults::DEFAULT_TERMINATION_GRACE_SECONDS),
            name,
            namespace,
        }
    }

    /// Names of every user Secret the pod reads (not the managed ones), sorted:
    /// hashed into the pod template and watched. Not `spec.s3`'s Secret: nothing in
    /// the pod reads it (see [`S3`]).
    pub fn referenced_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            (!self.jwt.secret.managed).then(|| self.jwt.secret.name.clone()),
            (!self.admin.password.managed).then(|| self.admin.password.name.clone()),
            self.database.postgres_secret().map(str::to_string),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Secrets the spec names that the pod does not read but validation checks
    /// (the pgBackRest credentials, passed to Percona): watched and read like the
    /// pod's, so that a pass answers the check from its stores, not with a GET.
    pub fn checked_secrets(&self) -> Vec<String> {
        self.percona
            .as_ref()
            .and_then(|p| p.backup.as_ref())
            .and_then(|b| b.credentials_secret.clone())
            .into_iter()
            .collect()
    }
}

fn or(value: &Option<String>, default: &str) -> String {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// A user reference with a name wins; otherwise the operator-managed Secret.
fn resolve_secret_key(
    user: Option<&SecretKeyRef>,
    managed_name: String,
    managed_key: &str,
) -> SecretKey {
    match user.and_then(|r| r.name.as_deref().filter(|n| !n.is_empty()).map(|n| (n, r))) {
        Some((name, r)) => SecretKey {
            name: name.to_string(),
            key: r.key.clone().unwrap_or_default(),
            managed: false,
        },
        None => SecretKey {
            name: managed_name,
            key: managed_key.to_string(),
            managed: true,
        },
    }
}
