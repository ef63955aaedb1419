//! The `DittoServer` custom resource (`dittofs.dittofs.com/v1alpha1`).
//!
//! Every field is optional in Rust (except `storage.metadataSize`) so that the
//! defaulting core can tell "unset" from "set to the default"; the effective
//! values live in [`crate::effective`]. Field names are those the Go operator's
//! v1alpha1 accepted, so existing objects keep working. Doc comments on fields
//! become `kubectl explain` text.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PodSecurityContext, ResourceRequirements, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the DittoServer resource.
pub const GROUP: &str = "dittofs.dittofs.com";
/// API version of the DittoServer resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the DittoServer resource.
pub const KIND: &str = "DittoServer";

/// Quantity pattern shared by every PVC size field (the Go operator's pattern).
const SIZE_PATTERN: &str = "^[0-9]+(Mi|Gi|Ti)$";

/// A DittoFS NFS/SMB file server: one StatefulSet pod with its configuration,
/// Services and persistent volumes, optionally backed by a Percona PostgreSQL cluster.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "dittofs.dittofs.com",
    version = "v1alpha1",
    kind = "DittoServer",
    plural = "dittoservers",
    singular = "dittoserver",
    shortname = "ditto",
    shortname = "dittofs",
    namespaced,
    status = "DittoServerStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A DittoFS NFS/SMB file server managed by dittofs-operator.",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.availableReplicas"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Server","type":"string","description":"Reason of the ServerConfigured condition: Configured once the server holds what the spec declares","jsonPath":".status.conditions[?(@.type==\"ServerConfigured\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DittoServerSpec {
    /// Container image of the DittoFS server. The default is the DittoFS release this
    /// operator was built and tested against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Number of server pods: 1 (running) or 0 (stopped, data kept). DittoFS runs a
    /// single replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub replicas: Option<i32>,

    /// Persistent volumes of the server. DittoFS writes to `/data/metadata`,
    /// `/data/content` and `/data/cache` only through stores placed there
    /// (`metadataStores`, `localBlockStores`; see docs/stores.md). Sizes and the
    /// StorageClass are fixed once the StatefulSet exists (volumeClaimTemplates are
    /// immutable).
    pub storage: StorageSpec,

    /// Control-plane database: SQLite on the control-plane volume, or PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// Legacy read-cache settings of the Go operator. Accepted for compatibility; the
    /// current DittoFS server has no such setting, so they have no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,

    /// Prometheus metrics endpoint of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,

    /// REST API (control plane) of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneSpec>,

    /// Authentication: JWT signing secret and the initial admin user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySpec>,

    /// How the file and API Services are exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// How `<name>-file`, the Service of the file adapters (NFS, its portmapper,
    /// SMB), is exposed, apart from the REST API's: the Go operator's
    /// `adapterServices`. Unset fields follow `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_services: Option<AdapterServicesSpec>,

    /// Client-facing NFS port on the `<name>-file` Service, so that
    /// `mount -t nfs -o port=2049 <ip>:/export /mnt` works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub nfs_port: Option<i32>,

    /// Port the DittoFS NFS adapter listens on inside the pod (unprivileged). The
    /// operator keeps the server's NFS adapter on this port and enabled (through
    /// its REST API, without restarting the pod; a change made with dfsctl is put
    /// back), and the Service maps `nfsPort` to the port the adapter really
    /// listens on (`status.server.adapters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub nfs_adapter_port: Option<i32>,

    /// SMB file sharing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smb: Option<SmbSpec>,

    /// Deprecated, not read (accepted, with a warning): DittoFS v0.29 gives each S3
    /// block store its own bucket, region, endpoint and keys. Declare one in
    /// `remoteBlockStores` (see docs/stores.md). The pod gets no `AWS_*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,

    /// Managed PostgreSQL through the Percona PostgreSQL operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percona: Option<PerconaSpec>,

    /// Compute resources of the DittoFS container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Security context of the DittoFS container, laid over the operator's defaults
    /// (`allowPrivilegeEscalation: false`, `runAsNonRoot: true`, seccomp
    /// `RuntimeDefault`, capabilities drop `ALL`; unset fields keep them). Must stay
    /// within the Pod Security `restricted` profile: no `privileged`, no
    /// `allowPrivilegeEscalation: true`, only `NET_BIND_SERVICE` added, no
    /// `runAsUser: 0` or `runAsNonRoot: false`, seccomp and AppArmor `RuntimeDefault`
    /// or `Localhost`, `procMount: Default`, SELinux type `container_t`,
    /// `container_init_t`, `container_kvm_t` or `container_engine_t` and no user or
    /// role, no Windows `hostProcess`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,

    /// Pod security context. Replaces the operator default (`runAsUser`,
    /// `runAsGroup` and `fsGroup` 65532, `runAsNonRoot: true`, seccomp
    /// `RuntimeDefault`). Must stay within the Pod Security `restricted` profile: no
    /// `runAsUser: 0` or `runAsNonRoot: false`, seccomp and AppArmor `RuntimeDefault`
    /// or `Localhost`, SELinux as for `securityContext`, no Windows `hostProcess`, and
    /// only the safe sysctls (listed under "Pod Security" in docs/crd-reference.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,

    /// Termination grace period of the pod, in seconds. Unset, it follows
    /// `shutdownTimeout`. Shorter than 5 + 3 × `shutdownTimeout` + 5 s a warning:
    /// after the 5 s preStop drain, DittoFS may take up to three times its shutdown
    /// timeout and 5 s more after SIGTERM to drain clients and flush its stores, and
    /// would be killed mid-flush.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600))]
    pub termination_grace_period_seconds: Option<i64>,

    /// How long DittoFS gives each stage of its shutdown (draining clients, then
    /// flushing and closing stores), as a Go duration: the server's
    /// `shutdown_timeout`. The pod's default grace period follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<String>,

    /// The NetworkPolicy `<name>-ingress` that admits traffic to the server's pod
    /// only on the ports its Services serve (file adapters, portmapper, REST API,
    /// metrics), from anywhere. It follows the adapters' live ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// The server's log settings (its `logging` configuration). Changing them
    /// restarts the server: DittoFS reads them once, at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,

    /// Turn on DittoFS's NFS portmapper and expose it on port 111 (TCP and UDP) of
    /// `<name>-file`, together with the NFS adapter's own port, so that a plain
    /// `mount -t nfs <address>:/export /mnt` also works for NFSv3 clients (they ask
    /// the portmapper where MOUNT and NFS listen, and are told the adapter's port).
    /// NFSv4 clients use `nfsPort` and need neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs_portmapper: Option<bool>,

    /// Metadata stores the operator creates in DittoFS (`dfsctl store metadata
    /// add`), by name. A store that exists is never recreated or deleted; one that
    /// differs from its entry here is reported as drift. Removing an entry leaves the
    /// store in DittoFS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metadata_stores: Vec<MetadataStoreSpec>,

    /// Local block stores (the first tier of a share's content: `dfsctl store block
    /// local add`), by name. Same lifecycle as `metadataStores`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub local_block_stores: Vec<LocalBlockStoreSpec>,

    /// Remote block stores (S3, behind a local store: `dfsctl store block remote
    /// add`), by name. Same lifecycle as `metadataStores`; S3 keys rotated in their
    /// Secret are pushed to the store in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub remote_block_stores: Vec<RemoteBlockStoreSpec>,

    /// Shares the operator creates in DittoFS (`dfsctl share create`), by name: what
    /// clients mount. `readOnly` and `defaultPermission` are changed in place; a
    /// different store is reported as drift, never fixed by recreating the share.
    /// Removing an entry leaves the share (and its files) in DittoFS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub shares: Vec<ShareSpec>,

    /// Scheduled snapshots of declared shares, one policy per share, kept in the
    /// server through its REST API (the Go operator's `snapshotPolicies`). A policy
    /// that differs is updated in place; one the operator created is removed when
    /// its entry leaves the spec; one made with dfsctl is never removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["share"]))]
    pub snapshot_policies: Vec<SnapshotPolicySpec>,
}

/// When DittoFS snapshots a share, and which of those scheduled snapshots it keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPolicySpec {
    /// The share, as named in `shares` (`/export`; the leading `/` may be left out).
    pub share: String,
    /// How often: `@hourly`, `@daily`, `@weekly`, or a Go duration such as `6h`.
    pub interval: String,
    /// Keep only this many of the newest scheduled snapshots; 0 keeps all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub keep_last: Option<i32>,
    /// Remove scheduled snapshots older than this Go duration (`720h`); unset or
    /// `0`: no age limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Take snapshots on schedule; false keeps the policy but pauses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Snapshots are named `<namePrefix>-<UTC time>`: up to 64 letters, digits,
    /// `_` or `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

/// A DittoFS metadata store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataStoreSpec {
    /// Name of the store in DittoFS; shares refer to it by this name.
    pub name: String,
    /// `memory` (emptied at every restart), `badger` (on the metadata volume) or
    /// `postgres`.
    #[serde(rename = "type")]
    pub store_type: MetadataStoreType,
    /// Settings of a `badger` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badger: Option<BadgerStoreSpec>,
    /// Settings of a `postgres` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresStoreSpec>,
}

// Metadata store type (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetadataStoreType {
    /// In memory.
    Memory,
    /// BadgerDB on a volume.
    #[default]
    Badger,
    /// PostgreSQL.
    Postgres,
}

/// A BadgerDB metadata store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BadgerStoreSpec {
    /// Directory of the database: `/data/metadata` (the metadata volume) or a
    /// directory below it, one store per directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A PostgreSQL metadata store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresStoreSpec {
    /// Secret in the DittoServer's namespace with the connection: keys `host`,
    /// `database`, `user`, `password`; optional `port` and `sslmode`. Read by the
    /// operator when it creates the store.
    pub secret_ref: LocalObjectRef,
}

/// A DittoFS local block store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalBlockStoreSpec {
    /// Name of the store in DittoFS; shares refer to it by this name.
    pub name: String,
    /// `memory` (emptied at every restart) or `fs` (files on a volume).
    #[serde(rename = "type")]
    pub store_type: LocalBlockStoreType,
    /// Settings of an `fs` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStoreSpec>,
}

// Local block store type (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocalBlockStoreType {
    /// In memory.
    Memory,
    /// Files on a volume.
    #[default]
    Fs,
}

/// A filesystem block store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsStoreSpec {
    /// Directory of the blocks: on the content volume (`/data/content`, which needs
    /// `storage.contentSize`) or the cache volume (`/data/cache`), or below them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A DittoFS remote block store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteBlockStoreSpec {
    /// Name of the store in DittoFS; shares refer to it by this name.
    pub name: String,
    /// `s3` (or `memory`, for tests).
    #[serde(rename = "type")]
    pub store_type: RemoteBlockStoreType,
    /// Settings of an `s3` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3StoreSpec>,
}

// Remote block store type (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemoteBlockStoreType {
    /// In memory.
    Memory,
    /// An S3 bucket.
    #[default]
    S3,
}

/// An S3 bucket as a remote block store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3StoreSpec {
    /// Bucket name.
    pub bucket: String,
    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible service (MinIO, Ceph, …). Unset: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Prefix of every object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`). Unset: DittoFS uses it when an
    /// endpoint is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    /// Let DittoFS use an endpoint on a private, loopback or in-cluster address (an
    /// in-cluster MinIO or Ceph). DittoFS refuses such endpoints otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_endpoint: Option<bool>,
    /// Secret in the DittoServer's namespace with the static keys DittoFS needs.
    pub credentials_secret_ref: S3KeysSecretRef,
}

/// Where a remote store's S3 keys are.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3KeysSecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Key of the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    /// Key of the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
}

/// A DittoFS share: what clients mount (`mount -t nfs <address>:<name> /mnt`,
/// `//<address>/<name without the slash>` over SMB).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareSpec {
    /// Absolute path clients mount, such as `/export`.
    pub name: String,
    /// Name of its metadata store (in `metadataStores`).
    pub metadata_store: String,
    /// Name of its local block store (in `localBlockStores`).
    pub local_block_store: String,
    /// Name of its remote block store (in `remoteBlockStores`), if its content also
    /// goes to S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_block_store: Option<String>,
    /// What a client with no explicit grant may do: `none` (refused, DittoFS's own
    /// default), `read`, `read-write` or `admin`. Grants per user or group are made
    /// with `dfsctl share permission`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_permission: Option<SharePermission>,
    /// Serve the share read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

// Share permission level (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SharePermission {
    /// No access.
    #[serde(rename = "none")]
    None,
    /// Read only.
    #[serde(rename = "read")]
    Read,
    /// Read and write.
    #[serde(rename = "read-write")]
    ReadWrite,
    /// Full control.
    #[serde(rename = "admin")]
    Admin,
}

impl SharePermission {
    /// DittoFS's spelling (`pkg/controlplane/models/permission.go`).
    pub fn as_str(self) -> &'static str {
        match self {
            SharePermission::None => "none",
            SharePermission::Read => "read",
            SharePermission::ReadWrite => "read-write",
            SharePermission::Admin => "admin",
        }
    }
}

/// Persistent volumes. Each becomes a volumeClaimTemplate of the StatefulSet with
/// retention policy Retain/Retain: deleting the DittoServer never deletes data.
/// Sizes and the StorageClass cannot change once created: the CRD carries CEL
/// transition rules for them (`crate::validation::immutable`, added by
/// `crate::schema::crd`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of the metadata volume, mounted at `/data/metadata`. Required. Used by a
    /// badger metadata store there (`metadataStores` of type badger; its path
    /// defaults there). Format: a whole number followed by Mi, Gi or Ti, for example
    /// `10Gi`.
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub metadata_size: String,

    /// Size of the content volume, mounted at `/data/content`. Used by a local block
    /// store of type fs there (`localBlockStores`; required by one). No volume when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub content_size: Option<String>,

    /// Size of the cache volume, mounted at `/data/cache`. Used by a local block store
    /// of type fs there, such as the one in front of an S3 store
    /// (`localBlockStores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub cache_size: Option<String>,

    /// Size of the control-plane volume holding the SQLite database (users, adapters,
    /// stores, shares), mounted at `/data/controlplane`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub control_plane_size: Option<String>,

    /// StorageClass of every volume. Unset: the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Control-plane database selection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// `sqlite` or `postgres`. A `postgresSecretRef`, or Percona, selects PostgreSQL
    /// whatever this says.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub db_type: Option<DatabaseType>,

    /// SQLite settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSpec>,

    /// Secret (in the DittoServer's namespace) with the connection to an external
    /// PostgreSQL: keys `host`, `database`, `user`, `password`; optional `port`
    /// (the server uses 5432 without it) and `sslmode` (`disable` without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_secret_ref: Option<PostgresSecretRef>,
}

// Database engine of the control plane (no doc comment: the field's own doc must
// reach `kubectl explain`, and schemars would put the type's doc in its place).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseType {
    /// SQLite file on the control-plane volume.
    Sqlite,
    /// PostgreSQL (external Secret or Percona).
    Postgres,
}

/// SQLite settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqliteSpec {
    /// Path of the SQLite file. Must be under `/data/controlplane/` so it survives
    /// pod restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Reference to the Secret holding an external PostgreSQL connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Accepted for compatibility with the Go operator (which read a single
    /// connection string); ignored. The Secret must hold the individual keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Accepted for compatibility; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Legacy cache settings (no effect on current DittoFS releases).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Legacy cache path; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Legacy cache size; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The server pod's NetworkPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create it. `false` removes the one the operator made; ingress to the pod is
    /// then whatever the namespace's other policies allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Server log settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// Least severity logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// `json` (one object per line, for log collectors) or `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// `stdout`, `stderr` (both reach `kubectl logs`) or an absolute file path in
    /// the container, which `kubectl logs` does not show; a file outside the data
    /// volumes is lost when the pod restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

// Log level (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

// Log format (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Prometheus metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Serve metrics and create the `<name>-metrics` Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Metrics port, in the pod and on the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// HTTP path the metrics are served on (the server's `metrics.path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^/"))]
    pub path: Option<String>,
    /// A key of a Secret holding a bearer token: scrapers must send
    /// `Authorization: Bearer <token>` (the server answers 401 otherwise). Mounted as
    /// a file in the pod, never put in the ConfigMap; the server reads it once at
    /// start, so a rotated token restarts the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeySelector>,
    /// A Prometheus Operator ServiceMonitor `<name>-metrics` that scrapes the
    /// metrics Service (with the bearer token, when one is set). Made only while
    /// the ServiceMonitor CRD (`monitoring.coreos.com/v1`) is installed; one
    /// installed later is picked up within seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
}

/// The ServiceMonitor of the metrics endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create it (it needs `metrics.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Scrape interval, as Prometheus writes durations (`30s`, `1m`, `1h30m`).
    /// Unset: Prometheus's own global interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Labels put on the ServiceMonitor, such as the one a Prometheus's
    /// `serviceMonitorSelector` picks (`release: prometheus`). The operator's own
    /// labels take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// REST API (control plane).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneSpec {
    /// Port the REST API listens on inside the pod. Probes use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Client-facing port of the `<name>-api` Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub service_port: Option<i32>,
    /// Serve the REST API over HTTPS with the certificate of this Secret, of type
    /// `kubernetes.io/tls` (`tls.crt`, `tls.key`). The server reloads a renewed
    /// certificate by itself; the pod rolls as well. The operator trusts the CA in
    /// the Secret's `ca.crt` (cert-manager writes it), or else exactly the
    /// certificate in `tls.crt`; with a CA, the certificate must name
    /// `<name>-api.<namespace>.svc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_name: Option<String>,
    /// Require client certificates (mutual TLS), signed by the CA in key `ca.crt` of
    /// this Secret. Needs `certSecretName` and `operatorCertSecretName`. The kubelet
    /// cannot present a certificate, so the probes then only connect.
    #[serde(
        default,
        rename = "clientCASecretName",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_ca_secret_name: Option<String>,
    /// Under mutual TLS: the certificate the operator presents to the REST API, a
    /// `kubernetes.io/tls` Secret whose certificate the client CA signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_cert_secret_name: Option<String>,
}

/// Authentication settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// Identity store type; only `memory` exists.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<IdentityType>,
    /// JWT signing for the REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// The initial admin user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSpec>,
    /// LDAP (or Active Directory) users and groups for NFS and SMB: the server's
    /// `ldap` settings. DittoFS v0.29 keeps them in its database after the first
    /// start; the operator writes every change there through the REST API, where
    /// they apply without a restart (turning LDAP on or off, or naming another
    /// Secret, changes the pod and restarts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapSpec>,
    /// Kerberos for NFSv4 and SMB, and an Active Directory machine account for NTLM
    /// pass-through: the server's `kerberos` settings. DittoFS v0.29 keeps them in
    /// its database after the first start and applies them at start: the operator
    /// writes a change there and restarts the pod once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kerberos: Option<KerberosSpec>,
}

/// LDAP settings (`ldap` in DittoFS v0.29, `pkg/identity/ldap/config.go`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapSpec {
    /// Resolve users and groups through LDAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Directory server, `ldaps://host[:port]` or `ldap://host[:port]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS (ignored for `ldaps://`).
    #[serde(default, rename = "startTLS", skip_serializing_if = "Option::is_none")]
    pub start_tls: Option<bool>,
    /// Allow an unencrypted bind over `ldap://` without StartTLS: the bind
    /// password crosses the network in clear text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_plaintext: Option<bool>,
    /// Where users and groups are searched, such as `dc=example,dc=com`.
    #[serde(default, rename = "baseDN", skip_serializing_if = "Option::is_none")]
    pub base_dn: Option<String>,
    /// The service account the server binds as.
    #[serde(default, rename = "bindDN", skip_serializing_if = "Option::is_none")]
    pub bind_dn: Option<String>,
    /// A key of a Secret holding the bind password (required: DittoFS refuses an
    /// empty one, which would bind anonymously). Given to the pod as
    /// `DITTOFS_LDAP_BIND_PASSWORD`, and to the server's database by the operator
    /// when it changes; never put in the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_password_secret_ref: Option<SecretKeySelector>,
    /// Attribute holding the login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attr: Option<String>,
    /// Kerberos realm users are mapped from, such as `EXAMPLE.COM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// How users get their uid and gid: `rfc2307` (the `uidNumber` and
    /// `gidNumber` attributes) or `rid` (derived from the Active Directory SID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<LdapIdmap>,
    /// Resolve nested group membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested_groups: Option<bool>,
    /// A key of a Secret holding the PEM CA certificate(s) that sign the directory
    /// server's certificate. Mounted as a file (the server's
    /// `ldap.tls.ca_cert_file`). Unset: the image's system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_secret_ref: Option<SecretKeySelector>,
    /// Do not verify the directory server's certificate (tests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

// LDAP id mapping (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LdapIdmap {
    /// uidNumber and gidNumber attributes.
    Rfc2307,
    /// From the Active Directory SID.
    Rid,
}

impl LdapIdmap {
    /// As DittoFS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LdapIdmap::Rfc2307 => "rfc2307",
            LdapIdmap::Rid => "rid",
        }
    }
}

/// Kerberos settings (`kerberos` in DittoFS v0.29, `pkg/config/config.go`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KerberosSpec {
    /// Accept Kerberos (RPCSEC_GSS for NFSv4, SPNEGO for SMB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The server's principal, such as `nfs/files.example.com@EXAMPLE.COM`;
    /// required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<String>,
    /// Kerberos realm, such as `EXAMPLE.COM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Active Directory NetBIOS domain (one label, such as `EXAMPLE`); needed by
    /// `machineAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netbios_domain: Option<String>,
    /// DNS domain of the realm, such as `example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    /// A key of a Secret holding the service keytab; required when enabled.
    /// Mounted read-only (mode 0440) as `/kerberos/dittofs.keytab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keytab_secret_ref: Option<SecretKeySelector>,
    /// A key of a Secret holding a krb5.conf, mounted as
    /// `/kerberos-krb5/krb5.conf`. Unset: the image's `/etc/krb5.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub krb5_conf_secret_ref: Option<SecretKeySelector>,
    /// An Active Directory computer account, for NTLM pass-through of domain users'
    /// SMB logons to a domain controller (NETLOGON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_account: Option<MachineAccountSpec>,
}

/// An Active Directory machine account (`kerberos.machine_account`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineAccountSpec {
    /// Use the machine account (it needs `kerberos.enabled`, `netbiosDomain` and a
    /// realm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The computer account, such as `DITTOFS$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// A key of a Secret holding the machine account's password. Given to the pod
    /// as `DITTOFS_KERBEROS_MACHINE_ACCOUNT_SECRET`, and to the server's database by
    /// the operator when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
    /// Domain controllers, `host` or `host:port`. Unset: found through DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dc_address: Vec<String>,
}

// Identity store type (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdentityType {
    /// Users and groups kept by the server itself.
    Memory,
}

/// JWT signing settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSpec {
    /// Secret key holding the HMAC signing secret: at least 32 bytes, or DittoFS
    /// refuses to start (a shorter value is refused when the Secret can be read).
    /// With no name, the operator creates and keeps `<name>-jwt-secret` (key
    /// `jwt-secret`, 43 random characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Lifetime of access tokens, as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_duration: Option<String>,
    /// Lifetime of refresh tokens, as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_duration: Option<String>,
    /// Accepted for compatibility; DittoFS always signs with issuer `dittofs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Initial admin user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    /// Must be `admin`: DittoFS v0.29 always creates its
    /// administrator as `admin`. Another value is refused when written; an object
    /// that already holds one gets a warning, and the credentials Secret says `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret key holding the admin's initial password in clear text (not a hash),
    /// used only when the admin user does not exist yet. With no reference the
    /// operator creates `<name>-admin-bootstrap-credentials` (keys `username`, `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// A key of a Secret in the DittoServer's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret. Empty: the operator-managed Secret is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Key within the Secret; required when `name` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Accepted for compatibility with core/v1 SecretKeySelector; ignored (the
    /// referenced key is always required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Exposure of the file and API Services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type of `<name>-file` and `<name>-api`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Annotations put on `<name>-file` and `<name>-api` (for example a cloud load
    /// balancer's settings). Changing them never restarts the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Exposure of the file adapters' Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdapterServicesSpec {
    /// Service type of `<name>-file`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Annotations put on `<name>-file` instead of `service.annotations` (for
    /// example a load balancer of its own for the file protocols). Changing them
    /// never restarts the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

// Kubernetes Service type (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// An external load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// SMB file sharing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmbSpec {
    /// Serve SMB: the operator enables the server's SMB adapter on `adapterPort`
    /// and exposes it on `<name>-file`. `false` disables the adapter in the server
    /// (DittoFS creates it enabled at first start) and keeps SMB off the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Client-facing SMB port on `<name>-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Port the DittoFS SMB adapter listens on inside the pod, when SMB is enabled.
    /// The operator moves the server's adapter here (through its REST API, without
    /// restarting the pod), and the Service maps `port` to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub adapter_port: Option<i32>,
    /// Legacy tuning of the Go operator; accepted, no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_connections: Option<i32>,
    /// Legacy tuning of the Go operator; accepted, no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests_per_connection: Option<i32>,
    /// Legacy tuning of the Go operator; accepted, no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_log_interval: Option<String>,
    /// Legacy tuning of the Go operator; accepted, no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<SmbTimeouts>,
    /// Legacy tuning of the Go operator; accepted, no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<SmbCredits>,
}

/// Legacy SMB timeouts (no effect).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmbTimeouts {
    /// Read timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// Write timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<String>,
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<String>,
    /// Shutdown timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<String>,
}

/// Legacy SMB credit settings (no effect).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmbCredits {
    /// Credit strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<SmbCreditStrategy>,
    /// Minimum grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_grant: Option<i32>,
    /// Maximum grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_grant: Option<i32>,
    /// Initial grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub initial_grant: Option<i32>,
    /// Maximum credits per session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_session_credits: Option<i32>,
    /// High load threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub load_threshold_high: Option<i32>,
    /// Low load threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub load_threshold_low: Option<i32>,
    /// Aggressive client threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub aggressive_client_threshold: Option<i32>,
}

// Legacy SMB credit strategy (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmbCreditStrategy {
    /// Fixed grants.
    Fixed,
    /// Echo the client's request.
    Echo,
    /// Adapt to load.
    Adaptive,
}

/// The Go operator's S3 settings: accepted, not read by DittoFS v0.29.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Secret holding S3 keys. Not read: an S3 store in `remoteBlockStores` names
    /// its own credentials Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<S3CredentialsSecretRef>,
    /// Not read: see `remoteBlockStores[].s3.region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Not read: see `remoteBlockStores[].s3.bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

/// Secret and key names of S3 keys (deprecated `spec.s3`: not read).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSecretRef {
    /// Name of the Secret in the DittoServer's namespace.
    pub secret_name: String,
    /// Key of the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    /// Key of the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
    /// Key of the endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_key: Option<String>,
}

/// Managed PostgreSQL through the Percona PostgreSQL operator (`pgv2.percona.com/v2`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerconaSpec {
    /// Create a PerconaPGCluster `<name>-postgres` and connect the server to it.
    /// Takes precedence over `database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Delete the PostgreSQL cluster (and its data) with the DittoServer. When
    /// false, the cluster is kept through every deletion path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_with_server: Option<bool>,
    /// PostgreSQL instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<i32>,
    /// Data volume size of each instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub storage_size: Option<String>,
    /// StorageClass of the PostgreSQL volumes. Unset: the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Database created for DittoFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// pgBackRest backups to S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<PerconaBackupSpec>,
}

/// pgBackRest backups of the Percona cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerconaBackupSpec {
    /// Enable backups (when false they are explicitly disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Secret with pgBackRest's S3 configuration (keys per Percona's docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectRef>,
    /// S3 bucket; required when backups are enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// S3 endpoint; required when backups are enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Cron schedule of full backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_schedule: Option<String>,
    /// Cron schedule of incremental backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incr_schedule: Option<String>,
    /// Days of full backups to keep, as pgBackRest `repo1-retention-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub retention_days: Option<i32>,
}

/// Reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object.
    #[serde(default)]
    pub name: String,
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DittoServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Desired replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Ready replicas of the StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Available replicas of the StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Pending, Running, Stopped, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Hash of the configuration and referenced Secrets the pod runs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Name of the PerconaPGCluster when Percona is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percona_cluster_name: Option<String>,
    /// Where clients connect (in-cluster DNS name and client port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// The DittoFS server as last read through its REST API: its live adapters, the
    /// declared stores and shares, and what it holds that the spec does not declare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerStatus>,
    /// Ready, Available, Progressing, Degraded, ConfigReady, DatabaseReady,
    /// ServerConfigured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The DittoFS server, as the operator last read it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Every adapter the server has, as it runs now: the Services target these ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterStatus>,
    /// The NFS portmapper's port in the pod, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portmapper_port: Option<i32>,
    /// Each declared store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<StoreStatus>,
    /// Each declared share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareStatus>,
    /// Each declared snapshot policy, and each the operator created and still has
    /// to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_policies: Vec<SnapshotPolicyStatus>,
    /// Stores, shares and snapshot policies the server holds that the spec does not
    /// declare (created with `dfsctl`, or removed from the spec): left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<String>,
    /// The identity providers (`ldap`, `kerberos`) the operator keeps in the
    /// server's database: each one the spec enables, and each one it enabled
    /// before and has since turned off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_providers: Vec<IdentityProviderStatus>,
}

/// An identity provider the operator keeps in the server's database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderStatus {
    /// `ldap` or `kerberos`.
    #[serde(rename = "type")]
    pub provider_type: String,
    /// Enabled as the spec asks (false: the spec dropped it and the operator
    /// turned it off).
    pub enabled: bool,
    pub state: ItemState,
    /// Why it is not Ready: the difference, or the server's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The resourceVersion of the Secret whose password (LDAP bind password,
    /// machine account secret) the server was last given: when the Secret moves
    /// on, the new password is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
    /// Kerberos: a digest of the settings the operator last wrote. The pod template
    /// carries it, so the pod restarts once after each write (DittoFS applies
    /// Kerberos settings at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_digest: Option<String>,
}

impl IdentityProviderStatus {
    /// The provider types, as DittoFS names them (`models.IdentityProviderType*`).
    pub const LDAP: &'static str = "ldap";
    pub const KERBEROS: &'static str = "kerberos";
}

/// One live adapter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdapterStatus {
    /// `nfs` or `smb`.
    #[serde(rename = "type")]
    pub adapter_type: String,
    /// Port it listens on in the pod.
    pub port: i32,
    pub enabled: bool,
    /// Listening: the server reports it running and healthy.
    pub running: bool,
}

/// One declared store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// `metadata`, `local` or `remote`.
    pub kind: String,
    pub name: String,
    pub state: ItemState,
    /// Why it is not Ready: the difference, or the server's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The resourceVersion of the credentials Secret whose keys the store was last
    /// given (S3 stores): when the Secret moves on, the new keys are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
}

/// The types of `status.conditions`, in the order they are listed.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const CONFIG_READY: &str = "ConfigReady";
    pub const DATABASE_READY: &str = "DatabaseReady";
    pub const SERVER_CONFIGURED: &str = "ServerConfigured";
}

/// One declared share.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareStatus {
    pub name: String,
    pub state: ItemState,
    /// Why it is not Ready: the difference, or the server's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One snapshot policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPolicyStatus {
    /// The share, with its leading `/`.
    pub share: String,
    pub state: ItemState,
    /// Why it is not Ready: what it waits for, or the server's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The operator created this policy (the share had none): it removes it when
    /// the entry leaves the spec. A policy that existed before it was declared is
    /// kept in line while declared and left in place after.
    #[serde(default)]
    pub owned: bool,
}

// State of a declared store or share (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ItemState {
    /// Not created yet (the server is not reachable, or a store or share it needs
    /// is missing).
    #[default]
    Pending,
    /// Exists as declared.
    Ready,
    /// Exists, but differs from the spec in a way the operator does not change
    /// (it would lose data); the message says how.
    Drifted,
    /// The server refused to create or change it; the message is its answer.
    Failed,
}

/// Client endpoints as `host:port`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// NFS endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<String>,
    /// SMB endpoint, when SMB is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smb: Option<String>,
    /// REST API endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

// Lifecycle phase shown in `kubectl get` (a comment: the field doc, not this, must reach `kubectl explain`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Being created or waiting for a dependency.
    Pending,
    /// Serving.
    Running,
    /// Scaled to zero.
    Stopped,
    /// Invalid or failing; see conditions.
    Failed,
    /// Being deleted.
    Deleting,
}

/// A spec that this version's types cannot read: the field that failed (`spec`
/// for the spec as a whole, else its path, such as `spec.smb.port`) and what was
/// wrong there. The one wording of the webhook, the reconciler and the CLI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecParseError {
    pub field: String,
    pub message: String,
}

impl SpecParseError {
    /// The object has no `spec` at all.
    pub fn missing() -> Self {
        Self {
            field: "spec".into(),
            message: "required; a DittoServer needs at least spec.storage.metadataSize".into(),
        }
    }
}

/// Parse a spec (a JSON value, owned or borrowed), naming the field that fails.
pub fn parse_spec<'de, D>(spec: D) -> Result<DittoServerSpec, SpecParseError>
where
    D: serde::Deserializer<'de>,
{
    serde_path_to_error::deserialize(spec).map_err(|e| {
        // The path below `spec`; serde_path_to_error prints the root as `.`.
        let path = e.path().to_string();
        SpecParseError {
            field: if path == "." || path.is_empty() {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            },
            message: e.into_inner().to_string(),
        }
    })
}
