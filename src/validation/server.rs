//! Rules about what the DittoFS server should hold: the declared stores and shares,
//! judged before anything is sent to the server, so a mistake is named at `kubectl
//! apply` (or offline) with the field and the fix, not found later in a condition.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::crd::{
    DittoServerSpec, LocalBlockStoreType, MetadataStoreType, RemoteBlockStoreType, SharePermission,
};
use crate::defaults::{DEFAULT_BADGER_PATH, DEFAULT_FS_PATH};
use crate::effective::{
    EffectiveSpec, LocalBlockStoreKind, MetadataStoreKind, RemoteBlockStoreKind,
};

use super::Findings;

/// Where the cache volume is mounted (always present).
const CACHE_DIR: &str = "/data/cache";

/// Every rule of the server's stores and shares.
pub(crate) fn check(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    names(spec, out);
    metadata_stores(spec, eff, out);
    local_block_stores(spec, eff, out);
    remote_block_stores(spec, eff, out);
    shares(spec, eff, out);
    snapshot_policies(spec, eff, out);
}

/// Store names are URL path segments of the server's API: letters, digits, `.`,
/// `_` and `-`; unique within each list (the API server checks that too, through
/// the list's map key, but the offline check and the reconciler do not see it).
fn names(spec: &DittoServerSpec, out: &mut Findings) {
    let lists: [(&str, Vec<&str>); 3] = [
        (
            "metadataStores",
            spec.metadata_stores
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
        ),
        (
            "localBlockStores",
            spec.local_block_stores
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
        ),
        (
            "remoteBlockStores",
            spec.remote_block_stores
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
        ),
    ];
    for (list, names) in lists {
        for (i, name) in names.iter().enumerate() {
            let field = format!("spec.{list}[{i}].name");
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && *name != "."
                && *name != "..";
            if !valid {
                out.error(
                    &field,
                    format!(
                        "{name:?} is not a store name: use 1 to 63 letters, digits, '.', '_' or '-'"
                    ),
                );
            } else if names[..i].contains(name) {
                out.error(
                    &field,
                    format!("{name:?} is declared twice: give each store its own name"),
                );
            }
        }
    }
}

fn metadata_stores(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let mut paths: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (store, resolved)) in spec
        .metadata_stores
        .iter()
        .zip(&eff.server.metadata_stores)
        .enumerate()
    {
        let base = format!("spec.metadataStores[{i}]");
        let kind = store.store_type;
        if store.badger.is_some() && kind != MetadataStoreType::Badger {
            out.error(
                &format!("{base}.badger"),
                format!(
                    "is set, but type is {}: remove it, or set type: badger",
                    type_name(kind)
                ),
            );
        }
        if store.postgres.is_some() && kind != MetadataStoreType::Postgres {
            out.error(
                &format!("{base}.postgres"),
                format!(
                    "is set, but type is {}: remove it, or set type: postgres",
                    type_name(kind)
                ),
            );
        }
        match &resolved.kind {
            MetadataStoreKind::Memory => out.warn(
                &format!("{base}.type"),
                "memory keeps the metadata in the server's memory: every restart empties the shares on this store; use badger for data that must last",
            ),
            MetadataStoreKind::Badger { path } => {
                let field = format!("{base}.badger.path");
                if !under(path, DEFAULT_BADGER_PATH) {
                    out.error(
                        &field,
                        format!("{path:?} is not on the metadata volume: use {DEFAULT_BADGER_PATH} or a directory below it"),
                    );
                } else if let Some(first) = paths.insert(path, i) {
                    out.error(
                        &field,
                        format!("{path:?} is also the path of spec.metadataStores[{first}]: one badger database per directory, use another"),
                    );
                }
            }
            MetadataStoreKind::Postgres { secret_name } if secret_name.is_empty() => out.error(
                &format!("{base}.postgres.secretRef.name"),
                "is required for a postgres store: name the Secret with host, database, user and password (port and sslmode optional)",
            ),
            MetadataStoreKind::Postgres { secret_name }
                if eff.database.postgres_secret() == Some(secret_name.as_str()) =>
            {
                out.error(
                    &format!("{base}.postgres.secretRef.name"),
                    format!("{secret_name:?} is the control plane's database: the metadata store needs a database of its own (both schemas have a table named shares); name a Secret for another database"),
                )
            }
            MetadataStoreKind::Postgres { .. } => {}
        }
    }
}

fn local_block_stores(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let mut paths: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (store, resolved)) in spec
        .local_block_stores
        .iter()
        .zip(&eff.server.local_block_stores)
        .enumerate()
    {
        let base = format!("spec.localBlockStores[{i}]");
        if store.fs.is_some() && store.store_type != LocalBlockStoreType::Fs {
            out.error(
                &format!("{base}.fs"),
                "is set, but type is memory: remove it, or set type: fs",
            );
        }
        match &resolved.kind {
            LocalBlockStoreKind::Memory => out.warn(
                &format!("{base}.type"),
                "memory keeps file contents in the server's memory: every restart loses them; use fs for data that must last",
            ),
            LocalBlockStoreKind::Fs { path } => {
                let field = format!("{base}.fs.path");
                if under(path, DEFAULT_FS_PATH) {
                    if eff.storage.content_size.is_none() {
                        out.error(
                            &field,
                            format!("{path:?} is on the content volume, which exists only with spec.storage.contentSize: set it, or use {CACHE_DIR}"),
                        );
                    }
                } else if !under(path, CACHE_DIR) {
                    out.error(
                        &field,
                        format!("{path:?} is on no volume of the pod: use {DEFAULT_FS_PATH} (with spec.storage.contentSize), {CACHE_DIR}, or a directory below them"),
                    );
                }
                if let Some(first) = paths.insert(path, i) {
                    out.error(
                        &field,
                        format!("{path:?} is also the path of spec.localBlockStores[{first}]: give each store its own directory"),
                    );
                }
            }
        }
    }
}

fn remote_block_stores(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    for (i, (store, resolved)) in spec
        .remote_block_stores
        .iter()
        .zip(&eff.server.remote_block_stores)
        .enumerate()
    {
        let base = format!("spec.remoteBlockStores[{i}]");
        match (&resolved.kind, store.store_type) {
            (RemoteBlockStoreKind::Memory, _) => {
                if store.s3.is_some() {
                    out.error(
                        &format!("{base}.s3"),
                        "is set, but type is memory: remove it, or set type: s3",
                    );
                }
                out.warn(
                    &format!("{base}.type"),
                    "memory keeps the remote tier in the server's memory: for tests only",
                );
            }
            (RemoteBlockStoreKind::S3(_), RemoteBlockStoreType::S3) if store.s3.is_none() => out
                .error(
                    &format!("{base}.s3"),
                    "is required for an s3 store: set s3.bucket and s3.credentialsSecretRef",
                ),
            (RemoteBlockStoreKind::S3(s3), _) => {
                if s3.bucket.trim().is_empty() {
                    out.error(&format!("{base}.s3.bucket"), "is required: name the bucket");
                }
                if s3.secret_name.is_empty() {
                    out.error(
                        &format!("{base}.s3.credentialsSecretRef.name"),
                        "is required: DittoFS v0.29 takes static keys only; name the Secret holding them",
                    );
                }
                if let Some(endpoint) = &s3.endpoint {
                    let field = format!("{base}.s3.endpoint");
                    match endpoint_host(endpoint) {
                        Err(why) => out.error(&field, format!("{endpoint:?} {why}")),
                        Ok(host) if !s3.allow_private_endpoint && is_private(&host) => out.warn(
                            &field,
                            format!("{host} looks like a private, loopback or in-cluster address, which DittoFS refuses for an S3 store unless s3.allowPrivateEndpoint is true: set it for an in-cluster MinIO or Ceph"),
                        ),
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

fn shares(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let declared = |names: Vec<&String>, name: &str| names.iter().any(|n| *n == name);
    for (i, (share, resolved)) in spec.shares.iter().zip(&eff.server.shares).enumerate() {
        let base = format!("spec.shares[{i}]");
        let name = &share.name;
        if !name.starts_with('/') || name.trim_start_matches('/').is_empty() || name.contains("//")
        {
            out.error(
                &format!("{base}.name"),
                format!("{name:?} is not a share path: use an absolute path below the root, such as \"/export\""),
            );
        } else if eff.server.shares[..i]
            .iter()
            .any(|s| s.name == resolved.name)
        {
            out.error(
                &format!("{base}.name"),
                format!("{name:?} is declared twice"),
            );
        }
        let references = [
            (
                "metadataStore",
                "metadataStores",
                Some(&share.metadata_store),
                declared(
                    spec.metadata_stores.iter().map(|s| &s.name).collect(),
                    &share.metadata_store,
                ),
            ),
            (
                "localBlockStore",
                "localBlockStores",
                Some(&share.local_block_store),
                declared(
                    spec.local_block_stores.iter().map(|s| &s.name).collect(),
                    &share.local_block_store,
                ),
            ),
            (
                "remoteBlockStore",
                "remoteBlockStores",
                share.remote_block_store.as_ref(),
                share.remote_block_store.as_ref().is_none_or(|r| {
                    declared(
                        spec.remote_block_stores.iter().map(|s| &s.name).collect(),
                        r,
                    )
                }),
            ),
        ];
        for (field, list, value, found) in references {
            if let Some(value) = value
                && !found
            {
                out.error(
                    &format!("{base}.{field}"),
                    format!("{value:?} is not declared in spec.{list}: declare it there, or name one that is"),
                );
            }
        }
        if resolved.default_permission == SharePermission::None {
            out.warn(
                &format!("{base}.defaultPermission"),
                "is none (DittoFS's default): clients without an explicit grant are refused; set read or read-write, or grant users and groups with `dfsctl share permission`",
            );
        }
    }
}

/// Each policy names a declared share, once, with values DittoFS v0.29 accepts
/// (`handlers/snapshot_policy.go`, `Upsert`: the interval through
/// `schedule.ParseInterval`, the TTL through `parseOptionalDuration`, the prefix
/// against `^[A-Za-z0-9_-]{0,64}$`).
fn snapshot_policies(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let policies = &eff.server.snapshot_policies;
    for (i, (policy, resolved)) in spec.snapshot_policies.iter().zip(policies).enumerate() {
        let base = format!("spec.snapshotPolicies[{i}]");
        let share = &policy.share;
        if share.trim_start_matches('/').is_empty() {
            out.error(
                &format!("{base}.share"),
                "is required: name a share declared in spec.shares, such as \"/export\"",
            );
        } else if !eff.server.shares.iter().any(|s| s.name == resolved.share) {
            out.error(
                &format!("{base}.share"),
                format!("{share:?} is not declared in spec.shares: the operator keeps policies only for the shares it declares; declare the share, or name one that is"),
            );
        } else if policies[..i].iter().any(|p| p.share == resolved.share) {
            out.error(
                &format!("{base}.share"),
                format!("{share:?} already has a policy (DittoFS keeps one per share): merge the two entries"),
            );
        }
        if let Err(why) = crate::duration::parse_snapshot_interval(&resolved.interval) {
            out.error(
                &format!("{base}.interval"),
                format!(
                    "{why}: use @hourly, @daily, @weekly or a Go duration above zero, such as 6h"
                ),
            );
        }
        if let Some(ttl) = &resolved.ttl {
            // DittoFS reads the TTL untrimmed.
            let valid = crate::duration::parse_go_duration_nanos(ttl)
                .is_some_and(|nanos| nanos >= 0 && ttl.trim() == ttl);
            if !valid {
                out.error(
                    &format!("{base}.ttl"),
                    format!("{ttl:?} is not a Go duration of zero or more: use one such as 720h, or leave it unset for no age limit"),
                );
            }
        }
        if resolved.keep_last < 0 {
            out.error(
                &format!("{base}.keepLast"),
                format!(
                    "{} is negative: use 0 (keep all) or more",
                    resolved.keep_last
                ),
            );
        }
        let prefix = &resolved.name_prefix;
        if prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            out.error(
                &format!("{base}.namePrefix"),
                format!("{prefix:?} is not a snapshot name prefix: use up to 64 letters, digits, '_' or '-'"),
            );
        }
    }
}

fn type_name(kind: MetadataStoreType) -> &'static str {
    match kind {
        MetadataStoreType::Memory => "memory",
        MetadataStoreType::Badger => "badger",
        MetadataStoreType::Postgres => "postgres",
    }
}

/// Is `path` `dir` or a directory below it (absolute, no `..`)?
fn under(path: &str, dir: &str) -> bool {
    let clean = !path.split('/').any(|part| part == "..");
    clean
        && (path == dir
            || path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// The host of an S3 endpoint as DittoFS reads it (`pkg/block/remote/s3/store.go`,
/// `ValidateEndpoint`: no scheme means https; only http and https).
fn endpoint_host(endpoint: &str) -> Result<String, &'static str> {
    let rest = match endpoint.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some(_) => return Err("has a scheme other than http or https"),
        None => endpoint,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        // [v6]:port
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(
            "has no host: use a URL such as https://s3.example.com or http://minio.storage.svc:9000",
        );
    }
    Ok(host.to_ascii_lowercase())
}

/// A host DittoFS would find private: a private, loopback or link-local address,
/// `localhost`, or a cluster-internal name (`*.svc`, `*.cluster.local`, or a single
/// label, which only a search domain can resolve).
fn is_private(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => {
                v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
            }
        };
    }
    host == "localhost"
        || host.ends_with(".svc")
        || host.ends_with(".cluster.local")
        || !host.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_as_dittofs_reads_them() {
        assert_eq!(
            endpoint_host("http://minio.storage.svc:9000").as_deref(),
            Ok("minio.storage.svc")
        );
        assert_eq!(
            endpoint_host("s3.eu-west-1.amazonaws.com").as_deref(),
            Ok("s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(endpoint_host("https://[::1]:9000/x").as_deref(), Ok("::1"));
        assert!(endpoint_host("ftp://x").is_err());
        assert!(endpoint_host("http://").is_err());
        for private in [
            "minio.storage.svc",
            "minio",
            "10.0.0.5",
            "127.0.0.1",
            "localhost",
            "x.ns.svc.cluster.local",
            "::1",
        ] {
            assert!(is_private(private), "{private}");
        }
        for public in ["s3.amazonaws.com", "8.8.8.8", "storage.googleapis.com"] {
            assert!(!is_private(public), "{public}");
        }
    }

    #[test]
    fn paths_must_be_on_the_volume() {
        assert!(under("/data/metadata", "/data/metadata"));
        assert!(under("/data/metadata/a", "/data/metadata"));
        assert!(!under("/data/metadata2", "/data/metadata"));
        assert!(!under("/data/metadata/../x", "/data/metadata"));
    }
}
