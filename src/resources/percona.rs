//! PerconaPGCluster `<name>-postgres` (`pgv2.percona.com/v2`), as a DynamicObject
//! so the operator needs no Percona crate and works before the CRD exists.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use crate::crd::DittoServer;
use crate::defaults::PERCONA_USER;
use crate::effective::{EffectiveSpec, Percona};

use super::labels::{labels, owner};

/// Percona CR version and PostgreSQL major version we render for.
pub const PERCONA_CR_VERSION: &str = "2.8.0";
pub const POSTGRES_VERSION: i64 = 16;

/// The PerconaPGCluster API resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pgv2.percona.com", "v2", "PerconaPGCluster"),
        "perconapgclusters",
    )
}

/// Build the cluster. It carries our owner reference **only** with
/// `deleteWithServer: true`; otherwise garbage collection can never delete it, on
/// any deletion path.
pub fn build_percona_cluster(ds: &DittoServer, eff: &EffectiveSpec, p: &Percona) -> DynamicObject {
    let mut obj = DynamicObject::new(&p.cluster_name, &api_resource()).within(&eff.namespace);
    obj.metadata.labels = Some(labels(&eff.name, "database"));
    if p.delete_with_server {
        obj.metadata.owner_references = owner(ds);
    }
    let mut volume = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": p.storage_size}},
    });
    if let Some(class) = &p.storage_class_name {
        volume["storageClassName"] = json!(class);
    }
    obj.data = json!({
        "spec": {
            "crVersion": PERCONA_CR_VERSION,
            "postgresVersion": POSTGRES_VERSION,
            "instances": [{
                "name": "instance1",
                "replicas": p.replicas,
                "dataVolumeClaimSpec": volume,
            }],
            "users": [{"name": PERCONA_USER, "databases": [p.database_name]}],
            "backups": backups(p),
        }
    });
    obj
}

/// Percona ≥ 2.8 treats a missing `enabled` as true and then rejects a cluster
/// without a repository, so backups are always explicit.
fn backups(p: &Percona) -> Value {
    let Some(b) = &p.backup else {
        return json!({"enabled": false});
    };
    let mut pgbackrest = json!({
        "global": {
            "repo1-path": format!("/pgbackrest/{}/repo1", p.cluster_name),
            "repo1-s3-uri-style": "path",
            "repo1-storage-verify-tls": "y",
            "repo1-retention-full": b.retention_days.to_string(),
            "repo1-retention-full-type": "time",
        },
        "repos": [{
            "name": "repo1",
            "s3": {"bucket": b.bucket, "endpoint": b.endpoint, "region": b.region},
            "schedules": {"full": b.full_schedule, "incremental": b.incr_schedule},
        }],
    });
    if let Some(secret) = &b.credentials_secret {
        pgbackrest["configuration"] = json!([{"secret": {"name": secret}}]);
    }
    json!({"enabled": true, "pgbackrest": pgbackrest})
}
