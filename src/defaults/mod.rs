//! Defaulting core: every effective default of a DittoServer, in one place.
//!
//! [`apply_defaults`] is pure and idempotent; the mutating webhook turns its result
//! into a JSON patch ([`defaulting_patch`]) so `kubectl get -o yaml` shows what runs,
//! and the reconciler and CLI call it so an object that bypassed the webhook runs
//! with the very same values.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

use crate::crd::*;

mod patch;
pub use patch::{
    DefaultingError, SpecParseError, defaulting_patch, parse_spec, spec_defaulting_patch,
};

/// Image used when `spec.image` is unset: the DittoFS release this operator targets.
pub const DEFAULT_IMAGE: &str = "marmos91c/dittofs:v0.29.0";
pub const DEFAULT_REPLICAS: i32 = 1;
pub const DEFAULT_CACHE_SIZE: &str = "5Gi";
pub const DEFAULT_CONTROL_PLANE_SIZE: &str = "1Gi";
pub const DEFAULT_SQLITE_PATH: &str = "/data/controlplane/controlplane.db";
pub const DEFAULT_METRICS_PORT: i32 = 9090;
pub const DEFAULT_API_PORT: i32 = 8080;
pub const DEFAULT_ACCESS_TOKEN_DURATION: &str = "15m";
pub const DEFAULT_REFRESH_TOKEN_DURATION: &str = "168h";
/// The only administrator DittoFS v0.29 creates (`pkg/controlplane/models/admin.go`).
pub const DEFAULT_ADMIN_USERNAME: &str = "admin";
pub const DEFAULT_SERVICE_TYPE: ServiceType = ServiceType::LoadBalancer;
/// Client-facing NFS port (what `mount -o port=` uses).
pub const DEFAULT_NFS_PORT: i32 = 2049;
/// DittoFS's own NFS adapter port (unprivileged).
pub const DEFAULT_NFS_ADAPTER_PORT: i32 = 12049;
/// Client-facing SMB port.
pub const DEFAULT_SMB_PORT: i32 = 445;
/// DittoFS's own SMB adapter port (unprivileged).
pub const DEFAULT_SMB_ADAPTER_PORT: i32 = 1445;
pub const DEFAULT_S3_ACCESS_KEY_ID_KEY: &str = "accessKeyId";
pub const DEFAULT_S3_SECRET_ACCESS_KEY_KEY: &str = "secretAccessKey";
pub const DEFAULT_S3_ENDPOINT_KEY: &str = "endpoint";
pub const DEFAULT_PERCONA_REPLICAS: i32 = 1;
pub const DEFAULT_PERCONA_STORAGE_SIZE: &str = "10Gi";
pub const DEFAULT_PERCONA_DATABASE: &str = "dittofs";
pub const DEFAULT_BACKUP_REGION: &str = "eu-west-1";
pub const DEFAULT_BACKUP_FULL_SCHEDULE: &str = "0 2 * * *";
pub const DEFAULT_BACKUP_INCR_SCHEDULE: &str = "0 * * * *";
pub const DEFAULT_BACKUP_RETENTION_DAYS: i32 = 7;
/// The server's own `shutdown_timeout`, rendered into config.yaml.
pub const SERVER_SHUTDOWN_TIMEOUT_SECONDS: i64 = 30;
/// preStop drain before SIGTERM reaches the server.
pub const PRE_STOP_DRAIN_SECONDS: i64 = 5;
/// How long the server may take after SIGTERM: it drains its stages in turn and
/// exits on its own after 3 × `shutdown_timeout` + 5 s (`cmd/dfs/commands/start.go`
/// in DittoFS v0.29). 95 s.
pub const SERVER_EXIT_DEADLINE_SECONDS: i64 = 3 * SERVER_SHUTDOWN_TIMEOUT_SECONDS + 5;
/// The shortest grace period that lets the server stop by itself: the preStop
/// drain, then the server's own deadline. 100 s.
pub const MIN_TERMINATION_GRACE_SECONDS: i64 =
    PRE_STOP_DRAIN_SECONDS + SERVER_EXIT_DEADLINE_SECONDS;
/// Grace period: the minimum plus 5 s of slack. 105 s.
pub const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = MIN_TERMINATION_GRACE_SECONDS + 5;

/// Fill every effective default into `spec`. Idempotent; never overrides a value
/// the user set.
pub fn apply_defaults(spec: &mut DittoServerSpec) {
    set(&mut spec.image, || DEFAULT_IMAGE.to_string());
    set(&mut spec.replicas, || DEFAULT_REPLICAS);

    let storage = &mut spec.storage;
    set(&mut storage.cache_size, || DEFAULT_CACHE_SIZE.to_string());
    set(&mut storage.control_plane_size, || {
        DEFAULT_CONTROL_PLANE_SIZE.to_string()
    });

    let percona_enabled = spec
        .percona
        .as_ref()
        .and_then(|p| p.enabled)
        .unwrap_or(false);

    let database = spec.database.get_or_insert_with(Default::default);
    let wants_postgres = percona_enabled || database.postgres_secret_ref.is_some();
    set(&mut database.db_type, || {
        if wants_postgres {
            DatabaseType::Postgres
        } else {
            DatabaseType::Sqlite
        }
    });
    if database.db_type == Some(DatabaseType::Sqlite) && !wants_postgres {
        let sqlite = database.sqlite.get_or_insert_with(Default::default);
        set(&mut sqlite.path, || DEFAULT_SQLITE_PATH.to_string());
    }

    let metrics = spec.metrics.get_or_insert_with(Default::default);
    set(&mut metrics.enabled, || false);
    set(&mut metrics.port, || DEFAULT_METRICS_PORT);

    let control_plane = spec.control_plane.get_or_insert_with(Default::default);
    set(&mut control_plane.port, || DEFAULT_API_PORT);
    let api_port = control_plane.port.unwrap_or(DEFAULT_API_PORT);
    set(&mut control_plane.service_port, || api_port);

    let identity = spec.identity.get_or_insert_with(Default::default);
    set(&mut identity.identity_type, || IdentityType::Memory);
    let jwt = identity.jwt.get_or_insert_with(Default::default);
    set(&mut jwt.access_token_duration, || {
        DEFAULT_ACCESS_TOKEN_DURATION.to_string()
    });
    set(&mut jwt.refresh_token_duration, || {
        DEFAULT_REFRESH_TOKEN_DURATION.to_string()
    });
    let admin = identity.admin.get_or_insert_with(Default::default);
    set(&mut admin.username, || DEFAULT_ADMIN_USERNAME.to_string());

    let service = spec.service.get_or_insert_with(Default::default);
    set(&mut service.service_type, || DEFAULT_SERVICE_TYPE);

    set(&mut spec.nfs_port, || DEFAULT_NFS_PORT);
    set(&mut spec.nfs_adapter_port, || DEFAULT_NFS_ADAPTER_PORT);

    let smb = spec.smb.get_or_insert_with(Default::default);
    set(&mut smb.enabled, || false);
    set(&mut smb.port, || DEFAULT_SMB_PORT);
    set(&mut smb.adapter_port, || DEFAULT_SMB_ADAPTER_PORT);

    // `spec.s3` gets no defaults: nothing in the server reads it (see
    // `validation::rules`), so written-down defaults would describe nothing that runs.

    let percona = spec.percona.get_or_insert_with(Default::default);
    set(&mut percona.enabled, || false);
    set(&mut percona.delete_with_server, || false);
    if percona.enabled == Some(true) {
        set(&mut percona.replicas, || DEFAULT_PERCONA_REPLICAS);
        set(&mut percona.storage_size, || {
            DEFAULT_PERCONA_STORAGE_SIZE.to_string()
        });
        set(&mut percona.database_name, || {
            DEFAULT_PERCONA_DATABASE.to_string()
        });
        let backup = percona.backup.get_or_insert_with(Default::default);
        set(&mut backup.enabled, || false);
        if backup.enabled == Some(true) {
            set(&mut backup.region, || DEFAULT_BACKUP_REGION.to_string());
            set(&mut backup.full_schedule, || {
                DEFAULT_BACKUP_FULL_SCHEDULE.to_string()
            });
            set(&mut backup.incr_schedule, || {
                DEFAULT_BACKUP_INCR_SCHEDULE.to_string()
            });
            set(&mut backup.retention_days, || DEFAULT_BACKUP_RETENTION_DAYS);
        }
    }

    set(&mut spec.termination_grace_period_seconds, || {
        DEFAULT_TERMINATION_GRACE_SECONDS
    });
}

/// Set `field` to `default()` when it is unset.
fn set<T>(field: &mut Option<T>, default: impl FnOnce() -> T) {
    if field.is_none() {
        *field = Some(default());
    }
}

/// The DittoFS image's user and group.
pub const DITTOFS_UID: i64 = 65532;

/// The pod security context the pod runs with: the user's `podSecurityContext`
/// replaces the operator's whole (restricted-compliant) default.
pub fn pod_security_context(user: Option<&PodSecurityContext>) -> PodSecurityContext {
    user.cloned().unwrap_or_else(|| PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(DITTOFS_UID),
        run_as_group: Some(DITTOFS_UID),
        fs_group: Some(DITTOFS_UID),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    })
}

/// A container security context: the restricted Pod Security defaults, with the
/// user's fields laid over them. `ALL` is always dropped; what the user may change
/// is judged by `validation::pod_security`.
pub fn container_security_context(user: Option<&SecurityContext>) -> SecurityContext {
    let mut sc = user.cloned().unwrap_or_default();
    sc.allow_privilege_escalation.get_or_insert(false);
    sc.run_as_non_root.get_or_insert(true);
    sc.seccomp_profile
        .get_or_insert_with(runtime_default_seccomp);
    let caps = sc.capabilities.get_or_insert_with(Capabilities::default);
    let drop = caps.drop.get_or_insert_with(Vec::new);
    if !drop.iter().any(|c| c == "ALL") {
        drop.push("ALL".into());
    }
    sc
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// Key of the operator-managed JWT Secret.
pub const JWT_SECRET_KEY: &str = "jwt-secret";
/// Keys of the operator-managed admin bootstrap Secret.
pub const ADMIN_USERNAME_KEY: &str = "username";
pub const ADMIN_PASSWORD_KEY: &str = "password";
/// The PostgreSQL user the Percona cluster creates for DittoFS.
pub const PERCONA_USER: &str = "dittofs";
