//! Writing one child: server-side apply of what is ours, nothing on what is not.
//!
//! - An object we control (or one carrying our labels for this DittoServer and no
//!   controller, left by an orphaning delete) is applied with force when its
//!   `dittofs.io/applied-hash` differs from the body we mean to apply; a pass with
//!   nothing changed writes nothing.
//! - An object the stores do not show is looked up once (GET): the stores may lag,
//!   and a user's object with our child's name must never be taken over — it is
//!   reported as a conflict and left alone.
//! - Removal (the metrics Service) and release (a managed Secret the user now
//!   references) touch only objects this DittoServer controls, with preconditions.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api_error::{self, is_guard_failure};
use crate::crd::DittoServer;
use crate::names::{APPLIED_HASH_ANNOTATION, FIELD_MANAGER, MANAGED_BY_LABEL};

use super::error::ReconcileError;
use super::memory::{ChildKey, Memory, Written};
use super::ownership::{Owner, Seen};

/// Attempts of a guarded write whose precondition failed (re-read in between).
const ATTEMPTS: usize = 3;

/// What an apply did.
#[derive(Clone, Debug)]
pub enum Applied<K> {
    Created(K),
    Updated(K),
    /// Taken over: it carried our labels for this DittoServer and no controller.
    Adopted(K),
    /// Nothing to write; the object when it had to be read (the stores lagged).
    Unchanged(Option<K>),
    /// An object with this name exists and is not ours: nothing was written.
    Conflict(String),
}

impl<K> Applied<K> {
    /// The object as the API server has it now, when this apply wrote or read it
    /// (fresher than any store).
    pub fn live(&self) -> Option<&K> {
        match self {
            Applied::Created(k) | Applied::Updated(k) | Applied::Adopted(k) => Some(k),
            Applied::Unchanged(k) => k.as_ref(),
            Applied::Conflict(_) => None,
        }
    }

    /// Record what this apply did to `key`: a change for the Updated event, or a
    /// conflict for the status.
    pub fn note(&self, key: &ChildKey, changed: &mut Vec<String>, conflicts: &mut Vec<String>) {
        match self {
            Applied::Created(_) | Applied::Updated(_) => changed.push(key.to_string()),
            Applied::Adopted(_) => changed.push(format!(
                "{key} (adopted: it carried this DittoServer's labels and no owner)"
            )),
            Applied::Conflict(message) => conflicts.push(message.clone()),
            Applied::Unchanged(_) => {}
        }
    }
}

/// The hash we stamp on `desired` (SHA-256 of its JSON before stamping).
pub fn stamp<K: Resource + Serialize>(
    desired: &mut K,
    what: &str,
) -> Result<String, ReconcileError> {
    let body = serde_json::to_vec(&*desired).map_err(|e| ReconcileError::Serialize {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    let hash = hex::encode(Sha256::digest(&body));
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());
    Ok(hash)
}

/// What the pass knows of a child before writing it.
#[derive(Clone, Copy, Debug)]
pub enum Known<'a> {
    Exists(&'a Seen),
    /// A fresh read during this pass found nothing.
    Absent,
    /// The stores do not show it: it may exist all the same (they lag, and a
    /// label-selected store cannot see someone else's object).
    NotInStore,
}

impl<'a> From<Option<&'a Seen>> for Known<'a> {
    fn from(seen: Option<&'a Seen>) -> Self {
        seen.map_or(Known::NotInStore, Known::Exists)
    }
}

/// Apply `desired` as child `key` of `ds`, given what is known of it.
pub async fn apply<K>(
    api: &Api<K>,
    key: &ChildKey,
    mut desired: K,
    known: Known<'_>,
    ds: &DittoServer,
    memory: &Memory,
) -> Result<Applied<K>, ReconcileError>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let what = key.to_string();
    let hash = stamp(&mut desired, &what)?;
    let (seen, fresh) = match known {
        Known::Exists(seen) => (Some(seen.clone()), None),
        Known::Absent => (None, None),
        // One fresh look before creating.
        Known::NotInStore => match read(api, key).await? {
            Some(live) => (Some(Seen::of(live.meta(), ds)), Some(live)),
            None => (None, None),
        },
    };
    let adopting = match &seen {
        Some(Seen {
            owner: Owner::Foreign(why),
            ..
        }) => {
            memory.child_forgotten(key);
            return Ok(Applied::Conflict(format!(
                "{what} exists and is not managed by this DittoServer ({why}); the operator \
                 will not take it over: delete or rename it"
            )));
        }
        Some(seen) if seen.applied_hash.as_deref() == Some(hash.as_str()) => {
            return Ok(Applied::Unchanged(fresh));
        }
        // Taking over an object left with our labels by an orphaning delete; a
        // retained child (no owner reference by design) is just updated.
        Some(seen) => seen.owner == Owner::Adoptable && desired.meta().owner_references.is_some(),
        None => false,
    };
    let written = api
        .patch(
            &key.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(|source| ReconcileError::Apply {
            what: what.clone(),
            source,
        })?;
    memory.child_written(
        key.clone(),
        Written {
            uid: written.uid().unwrap_or_default(),
            applied_hash: hash,
        },
    );
    Ok(match (&seen, adopting) {
        (None, _) => Applied::Created(written),
        (Some(_), true) => Applied::Adopted(written),
        (Some(_), false) => Applied::Updated(written),
    })
}

/// GET `key`; `None` when it does not exist.
async fn read<K>(api: &Api<K>, key: &ChildKey) -> Result<Option<K>, ReconcileError>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    match api.get(&key.name).await {
        Ok(obj) => Ok(Some(obj)),
        Err(e) if api_error::is_absent(&e) => Ok(None),
        Err(source) => Err(ReconcileError::Read {
            what: key.to_string(),
            source,
        }),
    }
}

/// Delete child `key` if this DittoServer controls it (precondition: the uid we
/// saw, so a recreated object of someone else's is never deleted). Returns whether
/// it deleted.
pub async fn delete_if_ours<K>(
    api: &Api<K>,
    key: &ChildKey,
    seen: Option<&Seen>,
) -> Result<bool, ReconcileError>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let Some(seen) = seen.filter(|s| s.owner == Owner::This) else {
        return Ok(false);
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(seen.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&key.name, &params).await {
        Ok(_) => Ok(true),
        Err(e) if api_error::is_absent(&e) => Ok(false),
        // 409: the uid precondition failed, it is not the object we saw.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(source) => Err(ReconcileError::Delete {
            what: key.to_string(),
            source,
        }),
    }
}

/// Remove this DittoServer's owner reference (and, with `unlabel`, our managed-by
/// label) from `key`, guarded by `test` operations on a fresh read; a failed guard
/// re-reads and tries again at once. Returns whether it changed anything.
pub async fn release<K>(
    api: &Api<K>,
    key: &ChildKey,
    ds: &DittoServer,
    unlabel: bool,
) -> Result<bool, ReconcileError>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let uid = ds.uid().unwrap_or_default();
    let fail = |source| ReconcileError::Release {
        what: key.to_string(),
        source,
    };
    for attempt in 1..=ATTEMPTS {
        let live = match api.get(&key.name).await {
            Ok(live) => live,
            Err(e) if api_error::is_absent(&e) => return Ok(false),
            Err(e) => return Err(fail(e)),
        };
        let Some(ops) = release_ops(live.meta(), &uid, unlabel) else {
            return Ok(false);
        };
        let patch: json_patch::Patch =
            serde_json::from_value(ops).map_err(|e| ReconcileError::Serialize {
                what: format!("release patch of {key}"),
                message: e.to_string(),
            })?;
        match api
            .patch(
                &key.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if api_error::is_absent(&e) => return Ok(false),
            Err(e) if is_guard_failure(&e) && attempt < ATTEMPTS => continue,
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(false)
}

/// The JSON patch releasing `meta` from the owner `uid`, or `None` if there is
/// nothing to release. Guarded on the exact lists it rewrites.
fn release_ops(meta: &ObjectMeta, uid: &str, unlabel: bool) -> Option<serde_json::Value> {
    let refs = meta.owner_references.clone().unwrap_or_default();
    let kept: Vec<_> = refs.iter().filter(|r| r.uid != uid).cloned().collect();
    let labelled = unlabel
        && meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(MANAGED_BY_LABEL));
    if kept.len() == refs.len() && !labelled {
        return None;
    }
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": meta.resource_version}),
    ];
    if kept.len() != refs.len() {
        ops.push(json!({"op": "replace", "path": "/metadata/ownerReferences", "value": kept}));
    }
    if labelled {
        let label = MANAGED_BY_LABEL.replace('~', "~0").replace('/', "~1");
        ops.push(json!({"op": "remove", "path": format!("/metadata/labels/{label}")}));
    }
    Some(serde_json::Value::Array(ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(owners: &[&str], labelled: bool) -> ObjectMeta {
        ObjectMeta {
            resource_version: Some("7".into()),
            owner_references: Some(
                owners
                    .iter()
                    .map(|u| OwnerReference {
                        uid: u.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            labels: labelled.then(|| {
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "dittofs-operator".to_string(),
                )]
                .into()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn release_removes_only_our_owner_and_label() {
        let ops =
            release_ops(&meta(&["ours", "theirs"], true), "ours", true).expect("something to do");
        let ops = ops.as_array().expect("array");
        assert_eq!(ops[0]["op"], "test");
        assert_eq!(ops[0]["value"], "7");
        assert_eq!(ops[1]["value"].as_array().map(Vec::len), Some(1));
        assert_eq!(ops[1]["value"][0]["uid"], "theirs");
        assert_eq!(
            ops[2]["path"],
            "/metadata/labels/app.kubernetes.io~1managed-by"
        );
    }

    #[test]
    fn nothing_to_release_is_no_patch() {
        assert!(release_ops(&meta(&["theirs"], false), "ours", true).is_none());
        assert!(release_ops(&meta(&["theirs"], true), "ours", false).is_none());
    }
}
