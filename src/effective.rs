//! The effective configuration of a DittoServer: every default resolved, every
//! choice made (which database, which Secrets), with no `Option` left for a value
//! that has a default. Builders read only this; every value in it is decided once,
//! by [`crate::defaults::resolve`] (`EffectiveSpec::resolve` for a whole object).

use std::collections::BTreeMap;

use crate::crd::*;
use k8s_openapi::api::core::v1::{PodSecurityContext, ResourceRequirements, SecurityContext};

/// Everything the builders need, with no `Option` left for a default.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveSpec {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub replicas: i32,
    pub storage: Storage,
    pub database: Database,
    /// The metrics endpoint, when metrics are enabled.
    pub metrics: Option<Metrics>,
    pub ports: Ports,
    /// HTTPS on the REST API, when a certificate is given.
    pub api_tls: Option<ApiTls>,
    pub jwt: Jwt,
    pub admin: Admin,
    /// Type and annotations of `<name>-api`.
    pub api_service: Exposure,
    /// Type and annotations of `<name>-file`.
    pub file_service: Exposure,
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
    /// The server's `shutdown_timeout`, as written (a Go duration).
    pub shutdown_timeout: String,
    /// `shutdown_timeout` in whole seconds, rounded up (the default when it does
    /// not parse: validation refuses it).
    pub shutdown_timeout_seconds: i64,
    pub logging: Logging,
    /// Create the server pod's NetworkPolicy.
    pub network_policy: bool,
    /// What the DittoFS server itself should hold: adapters, stores, shares.
    pub server: ServerConfig,
    /// LDAP, when enabled.
    pub ldap: Option<Ldap>,
    /// Kerberos, when enabled.
    pub kerberos: Option<Kerberos>,
}

/// The server's `ldap` settings (`pkg/identity/ldap/config.go`), server defaults
/// applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ldap {
    pub url: String,
    pub start_tls: bool,
    pub allow_plaintext: bool,
    pub base_dn: String,
    pub bind_dn: String,
    pub bind_password: SecretKey,
    pub user_attr: String,
    /// Empty: none.
    pub realm: String,
    pub idmap: LdapIdmap,
    pub nested_groups: bool,
    /// The CA bundle, mounted as a file.
    pub ca_cert: Option<SecretKey>,
    pub insecure_skip_verify: bool,
}

/// The server's `kerberos` settings (`pkg/config/config.go`), with the realm and
/// DNS domain the server derives (`applyKerberosDefaults`, `pkg/config/defaults.go`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kerberos {
    pub service_principal: String,
    /// As written; empty when unset.
    pub realm_written: String,
    /// As written; empty when unset.
    pub dns_domain_written: String,
    /// Explicit, or the part of the principal after its last `@`; may be empty.
    pub realm: String,
    /// Empty: none.
    pub netbios_domain: String,
    /// Explicit, or the realm in lower case.
    pub dns_domain: String,
    pub keytab: SecretKey,
    pub krb5_conf: Option<SecretKey>,
    pub machine_account: Option<MachineAccount>,
}

/// `kerberos.machine_account`, when enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineAccount {
    pub account_name: String,
    pub secret: SecretKey,
    pub dc_addresses: Vec<String>,
}

/// How a Service is exposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    pub service_type: ServiceType,
    pub annotations: BTreeMap<String, String>,
}

/// HTTPS (and, with a client CA, mutual TLS) on the REST API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTls {
    /// The `kubernetes.io/tls` Secret of the server's certificate and key.
    pub cert_secret: String,
    /// Client certificates are required, signed by the CA in `ca.crt` of this Secret.
    pub client_ca_secret: Option<String>,
    /// The certificate the operator presents when client certificates are required.
    pub operator_cert_secret: Option<String>,
}

impl ApiTls {
    /// Client certificates are required: the kubelet cannot present one.
    pub fn mutual(&self) -> bool {
        self.client_ca_secret.is_some()
    }

    /// The Secrets the operator reads to reach the API: the server's certificate
    /// (what it trusts) and, under mutual TLS, its own.
    pub fn operator_reads(&self) -> Vec<String> {
        std::iter::once(self.cert_secret.clone())
            .chain(self.operator_cert_secret.clone().filter(|_| self.mutual()))
            .collect()
    }
}

/// The server's metrics endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub port: i32,
    pub path: String,
    /// The bearer token scrapers must present, from this Secret key.
    pub token: Option<SecretKey>,
    /// The ServiceMonitor to make, when asked for.
    pub service_monitor: Option<ServiceMonitor>,
}

/// The Prometheus Operator ServiceMonitor of the metrics endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceMonitor {
    /// Unset: Prometheus's global scrape interval.
    pub interval: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// The server's log settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    pub level: LogLevel,
    pub format: LogFormat,
    pub output: String,
}

/// The desired state of the DittoFS server, set through its REST API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Turn the NFS portmapper on (and expose it).
    pub portmapper: bool,
    pub metadata_stores: Vec<MetadataStore>,
    pub local_block_stores: Vec<LocalBlockStore>,
    pub remote_block_stores: Vec<RemoteBlockStore>,
    pub shares: Vec<Share>,
    pub snapshot_policies: Vec<SnapshotPolicy>,
}

impl ServerConfig {
    /// Does the spec declare anything to create in the server?
    pub fn declares_content(&self) -> bool {
        !(self.metadata_stores.is_empty()
            && self.local_block_stores.is_empty()
            && self.remote_block_stores.is_empty()
            && self.shares.is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataStore {
    pub name: String,
    pub kind: MetadataStoreKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataStoreKind {
    Memory,
    Badger {
        path: String,
    },
    /// Connection fields from this Secret (the database Secret's keys).
    Postgres {
        secret_name: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBlockStore {
    pub name: String,
    pub kind: LocalBlockStoreKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalBlockStoreKind {
    Memory,
    Fs { path: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteBlockStore {
    pub name: String,
    pub kind: RemoteBlockStoreKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteBlockStoreKind {
    Memory,
    S3(S3Store),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Store {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub prefix: Option<String>,
    pub force_path_style: Option<bool>,
    pub allow_private_endpoint: bool,
    pub secret_name: String,
    pub access_key_id_key: String,
    pub secret_access_key_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// With one leading `/`, as DittoFS stores it.
    pub name: String,
    pub metadata_store: String,
    pub local_block_store: String,
    pub remote_block_store: Option<String>,
    pub default_permission: SharePermission,
    pub read_only: bool,
}

/// A share's snapshot schedule and retention, as sent to DittoFS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// With one leading `/`, as DittoFS stores it.
    pub share: String,
    /// As written (trimmed): a shorthand or a Go duration.
    pub interval: String,
    pub keep_last: i32,
    /// As written; `None` for no age limit (unset or empty).
    pub ttl: Option<String>,
    pub enabled: bool,
    pub name_prefix: String,
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
    /// Names of every user Secret the pod reads (not the managed ones), sorted:
    /// hashed into the pod template and watched. Not `spec.s3`'s Secret: nothing in
    /// the pod reads it (see [`S3`]). Not the LDAP bind password's nor the machine
    /// account's: DittoFS v0.29 takes those from its database after the first start
    /// (`resolveIdentityProviders`, `cmd/dfs/commands/start.go`), so a restart would
    /// not apply a new one; the operator sends it there ([`Self::server_secrets`]).
    pub fn referenced_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            (!self.jwt.secret.managed).then(|| self.jwt.secret.name.clone()),
            (!self.admin.password.managed).then(|| self.admin.password.name.clone()),
            self.database.postgres_secret().map(str::to_string),
            self.metrics
                .as_ref()
                .and_then(|m| m.token.as_ref())
                .map(|t| t.name.clone()),
            self.api_tls.as_ref().map(|t| t.cert_secret.clone()),
            self.api_tls
                .as_ref()
                .and_then(|t| t.client_ca_secret.clone()),
            self.ldap
                .as_ref()
                .and_then(|l| l.ca_cert.as_ref())
                .map(|c| c.name.clone()),
            self.kerberos.as_ref().map(|k| k.keytab.name.clone()),
            self.kerberos
                .as_ref()
                .and_then(|k| k.krb5_conf.as_ref())
                .map(|c| c.name.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Secrets the spec names that the pod does not read but the operator checks,
    /// sends on or uses (the pgBackRest credentials, passed to Percona; the
    /// certificate it presents to the REST API; the stores' Secrets, sent to DittoFS): watched and read like the pod's, so that a pass answers from
    /// its stores, not with a GET.
    pub fn checked_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .percona
            .as_ref()
            .and_then(|p| p.backup.as_ref())
            .and_then(|b| b.credentials_secret.clone())
            .into_iter()
            .chain(
                self.api_tls
                    .as_ref()
                    .and_then(|t| t.operator_cert_secret.clone()),
            )
            .chain(self.server_secrets())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Secrets whose values the operator sends to DittoFS through its REST API
    /// (PostgreSQL connections and S3 keys of stores, the LDAP bind password, the
    /// machine account's secret), sorted.
    pub fn server_secrets(&self) -> Vec<String> {
        let postgres = self
            .server
            .metadata_stores
            .iter()
            .filter_map(|m| match &m.kind {
                MetadataStoreKind::Postgres { secret_name } => Some(secret_name.clone()),
                _ => None,
            });
        let s3 = self
            .server
            .remote_block_stores
            .iter()
            .filter_map(|r| match &r.kind {
                RemoteBlockStoreKind::S3(s3) => Some(s3.secret_name.clone()),
                RemoteBlockStoreKind::Memory => None,
            });
        let identity = self.identity_secrets().into_iter().map(|s| s.name.clone());
        let mut out: Vec<String> = postgres.chain(s3).chain(identity).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The password Secrets of the identity providers: the LDAP bind password and
    /// the machine account's secret.
    pub fn identity_secrets(&self) -> Vec<&SecretKey> {
        [
            self.ldap.as_ref().map(|l| &l.bind_password),
            self.kerberos
                .as_ref()
                .and_then(|k| k.machine_account.as_ref())
                .map(|m| &m.secret),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
