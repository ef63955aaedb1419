//! Defaulting core: every effective default of a DittoServer, decided in one place.
//!
//! [`resolve`] is the only code that decides a default. Each of its lines writes
//! the default into the spec (what the mutating webhook adds, so `kubectl get -o
//! yaml` shows what runs) and reads back the value the builders and rules use, in
//! one statement: the two can never disagree. [`apply_defaults`] is the same pass
//! for callers that only want the defaulted spec; the webhook turns its result into
//! a JSON patch ([`spec_defaulting_patch`]). The CRD's descriptions and the table of
//! `docs/crd-reference.md` take their defaults from it too (`crate::schema`).

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

use kube::ResourceExt;

use crate::crd::*;
use crate::effective::*;
use crate::names;

mod patch;
pub use patch::spec_defaulting_patch;

/// Image used when `spec.image` is unset: the DittoFS release this operator targets.
pub const DEFAULT_IMAGE: &str = "marmos91c/dittofs:v0.29.0";
pub const DEFAULT_REPLICAS: i32 = 1;
pub const DEFAULT_CACHE_SIZE: &str = "5Gi";
pub const DEFAULT_CONTROL_PLANE_SIZE: &str = "1Gi";
pub const DEFAULT_SQLITE_PATH: &str = "/data/controlplane/controlplane.db";
pub const DEFAULT_METRICS_PORT: i32 = 9090;
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
/// A ServiceMonitor only when asked for (as in the Go operator).
pub const DEFAULT_SERVICE_MONITOR: bool = false;
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
/// The port DittoFS's portmapper listens on unless told otherwise
/// (`models.NewDefaultNFSSettings`, `portmapper_port`).
pub const DITTOFS_PORTMAPPER_PORT: i32 = 10111;
/// Turn the NFS portmapper on: plain NFSv3 mounts find the server.
pub const DEFAULT_NFS_PORTMAPPER: bool = true;
/// DittoFS v0.29's own defaults of `ldap.user_attr` and `ldap.idmap`
/// (`pkg/identity/ldap/config.go`).
pub const DEFAULT_LDAP_USER_ATTR: &str = "sAMAccountName";
pub const DEFAULT_LDAP_IDMAP: LdapIdmap = LdapIdmap::Rfc2307;
/// A badger metadata store lives on the metadata volume.
pub const DEFAULT_BADGER_PATH: &str = "/data/metadata";
/// An fs block store lives on the content volume.
pub const DEFAULT_FS_PATH: &str = "/data/content";
/// DittoFS's own default region of an S3 store (`runtime/shares/service.go`).
pub const DEFAULT_S3_REGION: &str = "us-east-1";
pub const DEFAULT_S3_ALLOW_PRIVATE_ENDPOINT: bool = false;
/// DittoFS's own default of a new share (`handlers/shares.go`, `Create`): refused.
pub const DEFAULT_SHARE_PERMISSION: SharePermission = SharePermission::None;
pub const DEFAULT_SHARE_READ_ONLY: bool = false;
/// A snapshot policy runs unless paused (DittoFS's own default,
/// `handlers/snapshot_policy.go`, `Upsert`).
pub const DEFAULT_SNAPSHOT_ENABLED: bool = true;
/// No count limit on scheduled snapshots (DittoFS: 0 = unbounded).
pub const DEFAULT_SNAPSHOT_KEEP_LAST: i32 = 0;
/// The prefix DittoFS's scheduler uses when a policy has none
/// (`runtime/snapshotsched/service.go`, `defaultNamePrefix`).
pub const DEFAULT_SNAPSHOT_NAME_PREFIX: &str = "scheduled";
/// The server's `shutdown_timeout` (DittoFS v0.29's own default, `pkg/config/defaults.go`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "30s";
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: i64 = 30;
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;
/// Admit to the server's pod only what its Services serve.
pub const DEFAULT_NETWORK_POLICY: bool = true;
/// JSON lines, for log collectors (the server's own default is text).
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Json;
/// Pods log to stdout (the server's own default is a file in its state directory).
pub const DEFAULT_LOG_OUTPUT: &str = "stdout";
/// preStop drain before SIGTERM reaches the server.
pub const PRE_STOP_DRAIN_SECONDS: i64 = 5;
/// The longest grace period the CRD accepts.
pub const MAX_TERMINATION_GRACE_SECONDS: i64 = 3600;

/// How long the server may take after SIGTERM: it drains its stages in turn and
/// exits on its own after 3 × `shutdown_timeout` + 5 s (`cmd/dfs/commands/start.go`
/// in DittoFS v0.29). 95 s with the default timeout.
pub const fn server_exit_deadline_seconds(shutdown_timeout_seconds: i64) -> i64 {
    3 * shutdown_timeout_seconds + 5
}

/// The shortest grace period that lets the server stop by itself: the preStop
/// drain, then the server's own deadline. 100 s with the default timeout.
pub const fn min_termination_grace_seconds(shutdown_timeout_seconds: i64) -> i64 {
    PRE_STOP_DRAIN_SECONDS + server_exit_deadline_seconds(shutdown_timeout_seconds)
}

/// The grace period of a pod whose spec sets none: the minimum plus 5 s of
/// slack. 105 s with the default timeout.
pub const fn default_termination_grace_seconds(shutdown_timeout_seconds: i64) -> i64 {
    min_termination_grace_seconds(shutdown_timeout_seconds) + 5
}

/// Defaults that depend on another field, as the CRD's descriptions state them
/// (every other default is shown as its value). A test finds every default that
/// moves with another field and checks that it is listed here.
pub const DERIVED_DEFAULTS: &[(&str, &str)] = &[
    ("spec.controlPlane.servicePort", "the value of `port`"),
    (
        "spec.adapterServices.type",
        "the value of `service.type`, not written into the spec so that it follows `service.type`",
    ),
    (
        "spec.terminationGracePeriodSeconds",
        "5 + 3 × `shutdownTimeout` + 10 s (105 with the default `shutdownTimeout`), not written into the spec so that it follows `shutdownTimeout`",
    ),
    (
        "spec.identity.kerberos.realm",
        "the part of `servicePrincipal` after its last `@` (as DittoFS derives it), not written into the spec",
    ),
    (
        "spec.identity.kerberos.dnsDomain",
        "the realm in lower case (as DittoFS derives it), not written into the spec",
    ),
    (
        "spec.database.type",
        "`postgres` when `postgresSecretRef` is set or Percona is enabled, else `sqlite`",
    ),
];

/// Fill every effective default into `spec`. Idempotent; never overrides a value
/// the user set.
pub fn apply_defaults(spec: &mut DittoServerSpec) {
    // The object's name and namespace only name derived objects; no default
    // depends on them.
    resolve("", "", spec);
}

impl EffectiveSpec {
    /// Resolve a DittoServer: its spec defaulted by [`resolve`] (so the input need
    /// not be). Never fails: validation judges the result, builders use it.
    pub fn resolve(ds: &DittoServer) -> Self {
        let namespace = ds.namespace().unwrap_or_else(|| "default".to_string());
        resolve(&ds.name_any(), &namespace, &mut ds.spec.clone())
    }
}

/// Fill every default into `spec` (idempotent, never overriding what the user
/// set) and return the configuration the server runs with. `name` and `namespace`
/// are the DittoServer's: they name the objects derived from it.
pub fn resolve(name: &str, namespace: &str, spec: &mut DittoServerSpec) -> EffectiveSpec {
    let storage = &mut spec.storage;
    let storage = Storage {
        metadata_size: storage.metadata_size.clone(),
        // An empty string is "unset" for the optional volume and class (and refused
        // by validation).
        content_size: storage.content_size.clone().filter(|s| !s.is_empty()),
        cache_size: text(&mut storage.cache_size, DEFAULT_CACHE_SIZE),
        control_plane_size: text(&mut storage.control_plane_size, DEFAULT_CONTROL_PLANE_SIZE),
        storage_class_name: storage.storage_class_name.clone().filter(|s| !s.is_empty()),
    };

    let percona_spec = spec.percona.get_or_insert_with(Default::default);
    let percona_enabled = value(&mut percona_spec.enabled, false);
    let delete_with_server = value(&mut percona_spec.delete_with_server, false);
    let percona = percona_enabled.then(|| resolve_percona(name, percona_spec, delete_with_server));

    // Precedence: Percona > postgresSecretRef > SQLite.
    let db = spec.database.get_or_insert_with(Default::default);
    let postgres_secret = db.postgres_secret_ref.as_ref().map(|r| r.name.clone());
    let wants_postgres = percona.is_some() || postgres_secret.is_some();
    let db_type = value(
        &mut db.db_type,
        if wants_postgres {
            DatabaseType::Postgres
        } else {
            DatabaseType::Sqlite
        },
    );
    let database = match (&percona, postgres_secret) {
        (Some(_), _) => Database::Percona {
            secret_name: names::percona_user_secret(name, PERCONA_USER),
        },
        (None, Some(secret_name)) => Database::Postgres { secret_name },
        // `type: postgres` with nothing to connect to is refused by validation; the
        // file it would otherwise use is not written into the spec.
        (None, None) if db_type == DatabaseType::Postgres => Database::Sqlite {
            path: DEFAULT_SQLITE_PATH.to_string(),
        },
        (None, None) => Database::Sqlite {
            path: text(
                &mut db.sqlite.get_or_insert_with(Default::default).path,
                DEFAULT_SQLITE_PATH,
            ),
        },
    };

    let metrics = spec.metrics.get_or_insert_with(Default::default);
    let metrics_enabled = value(&mut metrics.enabled, false);
    let metrics_port = value(&mut metrics.port, DEFAULT_METRICS_PORT);
    let metrics_path = text(&mut metrics.path, DEFAULT_METRICS_PATH);
    let metrics_token = metrics.bearer_token_secret.as_ref().map(|s| SecretKey {
        name: s.name.clone(),
        key: s.key.clone(),
        managed: false,
    });
    let service_monitor = metrics.service_monitor.as_mut().and_then(|m| {
        value(&mut m.enabled, DEFAULT_SERVICE_MONITOR).then(|| ServiceMonitor {
            interval: m.interval.clone().filter(|i| !i.is_empty()),
            labels: m.labels.clone().unwrap_or_default(),
        })
    });

    let control_plane = spec.control_plane.get_or_insert_with(Default::default);
    let api_port = value(&mut control_plane.port, DEFAULT_API_PORT);
    let api_service_port = value(&mut control_plane.service_port, api_port);
    // An empty name is "unset" (and refused by validation).
    let named = |name: &Option<String>| name.clone().filter(|n| !n.is_empty());
    let api_tls = named(&control_plane.cert_secret_name).map(|cert_secret| ApiTls {
        cert_secret,
        client_ca_secret: named(&control_plane.client_ca_secret_name),
        operator_cert_secret: named(&control_plane.operator_cert_secret_name),
    });

    let identity = spec.identity.get_or_insert_with(Default::default);
    value(&mut identity.identity_type, IdentityType::Memory);
    let jwt = identity.jwt.get_or_insert_with(Default::default);
    let jwt = Jwt {
        secret: secret_key(
            jwt.secret_ref.as_ref(),
            names::jwt_secret(name),
            JWT_SECRET_KEY,
        ),
        access_token_duration: text(
            &mut jwt.access_token_duration,
            DEFAULT_ACCESS_TOKEN_DURATION,
        ),
        refresh_token_duration: text(
            &mut jwt.refresh_token_duration,
            DEFAULT_REFRESH_TOKEN_DURATION,
        ),
    };
    let admin = identity.admin.get_or_insert_with(Default::default);
    // The value as written before defaulting (validation refuses another name).
    let requested_username = admin.username.clone();
    value(&mut admin.username, DEFAULT_ADMIN_USERNAME.to_string());
    let admin = Admin {
        // DittoFS v0.29 creates `admin` whatever the spec says (`EnsureAdminUser`
        // creates `models.AdminUsername`, `pkg/controlplane/models/admin.go`).
        username: DEFAULT_ADMIN_USERNAME.to_string(),
        requested_username,
        password: secret_key(
            admin.password_secret_ref.as_ref(),
            names::admin_secret(name),
            ADMIN_PASSWORD_KEY,
        ),
    };

    let ldap = identity.ldap.as_mut().and_then(resolve_ldap);
    let kerberos = identity.kerberos.as_mut().and_then(resolve_kerberos);

    let service = spec.service.get_or_insert_with(Default::default);
    let api_service = Exposure {
        service_type: value(&mut service.service_type, DEFAULT_SERVICE_TYPE),
        annotations: service.annotations.clone().unwrap_or_default(),
    };
    // Not written into the spec: a default written once would stay behind when
    // `service` changes later.
    let adapters = spec.adapter_services.as_ref();
    let file_service = Exposure {
        service_type: adapters
            .and_then(|a| a.service_type)
            .unwrap_or(api_service.service_type),
        annotations: adapters
            .and_then(|a| a.annotations.clone())
            .unwrap_or_else(|| api_service.annotations.clone()),
    };

    let nfs = PortPair {
        service: value(&mut spec.nfs_port, DEFAULT_NFS_PORT),
        container: value(&mut spec.nfs_adapter_port, DEFAULT_NFS_ADAPTER_PORT),
    };
    let smb = spec.smb.get_or_insert_with(Default::default);
    let smb_enabled = value(&mut smb.enabled, false);
    let smb = PortPair {
        service: value(&mut smb.port, DEFAULT_SMB_PORT),
        container: value(&mut smb.adapter_port, DEFAULT_SMB_ADAPTER_PORT),
    };

    let s3 = spec
        .s3
        .as_mut()
        .and_then(|s3| s3.credentials_secret_ref.as_mut())
        .map(|c| S3 {
            secret_name: c.secret_name.clone(),
            access_key_id_key: text(&mut c.access_key_id_key, DEFAULT_S3_ACCESS_KEY_ID_KEY),
            secret_access_key_key: text(
                &mut c.secret_access_key_key,
                DEFAULT_S3_SECRET_ACCESS_KEY_KEY,
            ),
            endpoint_key: text(&mut c.endpoint_key, DEFAULT_S3_ENDPOINT_KEY),
        });

    let server = resolve_server(spec);

    let shutdown_timeout = text(&mut spec.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    let shutdown_timeout_seconds = crate::duration::parse_go_duration_secs(&shutdown_timeout)
        .filter(|secs| *secs > 0.0)
        // Bounded so that the grace period computed from it cannot overflow; far
        // longer ones are refused by validation.
        .map_or(DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, |secs| {
            secs.min(1e9).ceil() as i64
        });
    let logging = spec.logging.get_or_insert_with(Default::default);
    let logging = Logging {
        level: value(&mut logging.level, DEFAULT_LOG_LEVEL),
        format: value(&mut logging.format, DEFAULT_LOG_FORMAT),
        output: text(&mut logging.output, DEFAULT_LOG_OUTPUT),
    };
    let network_policy = value(
        &mut spec
            .network_policy
            .get_or_insert_with(Default::default)
            .enabled,
        DEFAULT_NETWORK_POLICY,
    );

    EffectiveSpec {
        name: name.to_string(),
        namespace: namespace.to_string(),
        image: text(&mut spec.image, DEFAULT_IMAGE),
        replicas: value(&mut spec.replicas, DEFAULT_REPLICAS),
        storage,
        database,
        metrics: metrics_enabled.then_some(Metrics {
            port: metrics_port,
            path: metrics_path,
            token: metrics_token,
            service_monitor,
        }),
        ports: Ports {
            nfs,
            smb: smb_enabled.then_some(smb),
            api: PortPair {
                service: api_service_port,
                container: api_port,
            },
        },
        api_tls,
        jwt,
        admin,
        api_service,
        file_service,
        s3,
        percona,
        resources: spec.resources.clone(),
        security_context: container_security_context(spec.security_context.as_ref()),
        pod_security_context: pod_security_context(spec.pod_security_context.as_ref()),
        // Not written into the spec: a default written once would stay behind when
        // `shutdownTimeout` changes later.
        termination_grace_period_seconds: spec
            .termination_grace_period_seconds
            .unwrap_or(default_termination_grace_seconds(shutdown_timeout_seconds)),
        shutdown_timeout,
        shutdown_timeout_seconds,
        logging,
        network_policy,
        server,
        ldap,
        kerberos,
    }
}

/// The `ldap` block's defaults (those of `ApplyDefaults` in DittoFS v0.29's
/// `pkg/identity/ldap/config.go`); its settings when enabled.
fn resolve_ldap(spec: &mut LdapSpec) -> Option<Ldap> {
    let enabled = value(&mut spec.enabled, false);
    let ldap = Ldap {
        url: spec.url.clone().unwrap_or_default(),
        start_tls: value(&mut spec.start_tls, false),
        allow_plaintext: value(&mut spec.allow_plaintext, false),
        base_dn: spec.base_dn.clone().unwrap_or_default(),
        bind_dn: spec.bind_dn.clone().unwrap_or_default(),
        bind_password: selector(spec.bind_password_secret_ref.as_ref()),
        user_attr: text(&mut spec.user_attr, DEFAULT_LDAP_USER_ATTR),
        realm: spec.realm.clone().unwrap_or_default(),
        idmap: value(&mut spec.idmap, DEFAULT_LDAP_IDMAP),
        nested_groups: value(&mut spec.nested_groups, false),
        ca_cert: spec.ca_cert_secret_ref.as_ref().map(|r| selector(Some(r))),
        insecure_skip_verify: value(&mut spec.insecure_skip_verify, false),
    };
    enabled.then_some(ldap)
}

/// The `kerberos` block's defaults; its settings when enabled, with the realm and
/// DNS domain DittoFS v0.29 derives (`applyKerberosDefaults`,
/// `pkg/config/defaults.go`): the realm after the principal's last `@`, the DNS
/// domain the realm in lower case. Not written into the spec: they follow it.
fn resolve_kerberos(spec: &mut KerberosSpec) -> Option<Kerberos> {
    let enabled = value(&mut spec.enabled, false);
    let machine_account = spec.machine_account.as_mut().and_then(|m| {
        value(&mut m.enabled, false).then(|| MachineAccount {
            account_name: m.account_name.clone().unwrap_or_default(),
            secret: selector(m.secret_ref.as_ref()),
            dc_addresses: m.dc_address.clone(),
        })
    });
    let service_principal = spec.service_principal.clone().unwrap_or_default();
    let realm_written = spec.realm.clone().unwrap_or_default();
    let realm = if realm_written.is_empty() {
        service_principal
            .rsplit_once('@')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    } else {
        realm_written.clone()
    };
    let dns_domain_written = spec.dns_domain.clone().unwrap_or_default();
    let dns_domain = if dns_domain_written.is_empty() {
        realm.to_lowercase()
    } else {
        dns_domain_written.clone()
    };
    enabled.then(|| Kerberos {
        service_principal,
        realm_written,
        dns_domain_written,
        realm,
        netbios_domain: spec.netbios_domain.clone().unwrap_or_default(),
        dns_domain,
        keytab: selector(spec.keytab_secret_ref.as_ref()),
        krb5_conf: spec
            .krb5_conf_secret_ref
            .as_ref()
            .map(|r| selector(Some(r))),
        machine_account,
    })
}

/// A user's Secret key (empty names are refused by validation).
fn selector(r: Option<&k8s_openapi::api::core::v1::SecretKeySelector>) -> SecretKey {
    SecretKey {
        name: r.map(|r| r.name.clone()).unwrap_or_default(),
        key: r.map(|r| r.key.clone()).unwrap_or_default(),
        managed: false,
    }
}

/// What the DittoFS server should hold: the portmapper, stores and shares.
fn resolve_server(spec: &mut DittoServerSpec) -> ServerConfig {
    let metadata_stores = spec
        .metadata_stores
        .iter_mut()
        .map(|m| MetadataStore {
            name: m.name.clone(),
            kind: match m.store_type {
                MetadataStoreType::Memory => MetadataStoreKind::Memory,
                MetadataStoreType::Badger => MetadataStoreKind::Badger {
                    path: text(
                        &mut m.badger.get_or_insert_with(Default::default).path,
                        DEFAULT_BADGER_PATH,
                    ),
                },
                MetadataStoreType::Postgres => MetadataStoreKind::Postgres {
                    secret_name: m
                        .postgres
                        .as_ref()
                        .map(|p| p.secret_ref.name.clone())
                        .unwrap_or_default(),
                },
            },
        })
        .collect();
    let local_block_stores = spec
        .local_block_stores
        .iter_mut()
        .map(|l| LocalBlockStore {
            name: l.name.clone(),
            kind: match l.store_type {
                LocalBlockStoreType::Memory => LocalBlockStoreKind::Memory,
                LocalBlockStoreType::Fs => LocalBlockStoreKind::Fs {
                    path: text(
                        &mut l.fs.get_or_insert_with(Default::default).path,
                        DEFAULT_FS_PATH,
                    ),
                },
            },
        })
        .collect();
    let remote_block_stores = spec
        .remote_block_stores
        .iter_mut()
        .map(|r| RemoteBlockStore {
            name: r.name.clone(),
            kind: match r.store_type {
                RemoteBlockStoreType::Memory => RemoteBlockStoreKind::Memory,
                // Without an `s3` block the spec is refused by validation.
                RemoteBlockStoreType::S3 => {
                    let s3 = r.s3.get_or_insert_with(Default::default);
                    RemoteBlockStoreKind::S3(S3Store {
                        bucket: s3.bucket.clone(),
                        region: text(&mut s3.region, DEFAULT_S3_REGION),
                        endpoint: s3.endpoint.clone().filter(|e| !e.is_empty()),
                        prefix: s3.prefix.clone().filter(|p| !p.is_empty()),
                        force_path_style: s3.force_path_style,
                        allow_private_endpoint: value(
                            &mut s3.allow_private_endpoint,
                            DEFAULT_S3_ALLOW_PRIVATE_ENDPOINT,
                        ),
                        secret_name: s3.credentials_secret_ref.name.clone(),
                        access_key_id_key: text(
                            &mut s3.credentials_secret_ref.access_key_id_key,
                            DEFAULT_S3_ACCESS_KEY_ID_KEY,
                        ),
                        secret_access_key_key: text(
                            &mut s3.credentials_secret_ref.secret_access_key_key,
                            DEFAULT_S3_SECRET_ACCESS_KEY_KEY,
                        ),
                    })
                }
            },
        })
        .collect();
    let shares = spec
        .shares
        .iter_mut()
        .map(|s| Share {
            name: share_name(&s.name),
            metadata_store: s.metadata_store.clone(),
            local_block_store: s.local_block_store.clone(),
            remote_block_store: s.remote_block_store.clone().filter(|r| !r.is_empty()),
            default_permission: value(&mut s.default_permission, DEFAULT_SHARE_PERMISSION),
            read_only: value(&mut s.read_only, DEFAULT_SHARE_READ_ONLY),
        })
        .collect();
    let snapshot_policies = spec
        .snapshot_policies
        .iter_mut()
        .map(|p| SnapshotPolicy {
            share: share_name(&p.share),
            interval: p.interval.trim().to_string(),
            keep_last: value(&mut p.keep_last, DEFAULT_SNAPSHOT_KEEP_LAST),
            ttl: p.ttl.clone().filter(|t| !t.is_empty()),
            enabled: value(&mut p.enabled, DEFAULT_SNAPSHOT_ENABLED),
            name_prefix: text(&mut p.name_prefix, DEFAULT_SNAPSHOT_NAME_PREFIX),
        })
        .collect();
    ServerConfig {
        portmapper: value(&mut spec.nfs_portmapper, DEFAULT_NFS_PORTMAPPER),
        metadata_stores,
        local_block_stores,
        remote_block_stores,
        shares,
        snapshot_policies,
    }
}

/// The Percona block of an enabled `spec.percona`; its defaults apply only then.
fn resolve_percona(name: &str, spec: &mut PerconaSpec, delete_with_server: bool) -> Percona {
    let backup = spec.backup.get_or_insert_with(Default::default);
    let backup = value(&mut backup.enabled, false).then(|| PerconaBackup {
        credentials_secret: backup
            .credentials_secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty()),
        bucket: backup.bucket.clone().unwrap_or_default(),
        endpoint: backup.endpoint.clone().unwrap_or_default(),
        region: text(&mut backup.region, DEFAULT_BACKUP_REGION),
        full_schedule: text(&mut backup.full_schedule, DEFAULT_BACKUP_FULL_SCHEDULE),
        incr_schedule: text(&mut backup.incr_schedule, DEFAULT_BACKUP_INCR_SCHEDULE),
        retention_days: value(&mut backup.retention_days, DEFAULT_BACKUP_RETENTION_DAYS),
    });
    Percona {
        cluster_name: names::percona_cluster(name),
        delete_with_server,
        replicas: value(&mut spec.replicas, DEFAULT_PERCONA_REPLICAS),
        storage_size: text(&mut spec.storage_size, DEFAULT_PERCONA_STORAGE_SIZE),
        storage_class_name: spec.storage_class_name.clone().filter(|s| !s.is_empty()),
        database_name: text(&mut spec.database_name, DEFAULT_PERCONA_DATABASE),
        backup,
    }
}

/// Set `field` to `default` when unset; its value either way.
fn value<T: Clone>(field: &mut Option<T>, default: T) -> T {
    field.get_or_insert(default).clone()
}

/// [`value`] for text, where an empty string also means "unset" (and is refused by
/// validation wherever it is not allowed).
/// A share's name as DittoFS stores it: one leading `/`.
fn share_name(name: &str) -> String {
    format!("/{}", name.trim_start_matches('/'))
}

fn text(field: &mut Option<String>, default: &str) -> String {
    match field {
        Some(v) if !v.is_empty() => v.clone(),
        _ => {
            *field = Some(default.to_string());
            default.to_string()
        }
    }
}

/// A user reference with a name wins; otherwise the operator-managed Secret.
fn secret_key(user: Option<&SecretKeyRef>, managed_name: String, managed_key: &str) -> SecretKey {
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
/// Keys of the operator's account Secret.
pub const ACCOUNT_USERNAME_KEY: &str = "username";
pub const ACCOUNT_PASSWORD_KEY: &str = "password";
pub const ACCOUNT_REFRESH_TOKEN_KEY: &str = "refresh-token";
/// When the kept refresh token was obtained (RFC 3339).
pub const ACCOUNT_REFRESH_OBTAINED_KEY: &str = "refresh-token-obtained";
/// The PostgreSQL user the Percona cluster creates for DittoFS.
pub const PERCONA_USER: &str = "dittofs";
