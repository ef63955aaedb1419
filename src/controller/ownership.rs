//! Whose an object is, seen from one DittoServer: the judgement behind every write,
//! adoption and deletion of a child. What is not ours is never written or deleted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::crd::{DittoServer, GROUP, KIND};
use crate::names::{APPLIED_HASH_ANNOTATION, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};

/// Whose an existing object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Controlled by this DittoServer (its owner reference, our uid).
    This,
    /// Carries our labels for this DittoServer and no controller: ours to take
    /// (left behind by an orphaning delete, or a kept Percona cluster).
    Adoptable,
    /// Anything else: never written, never deleted. The text says whose it is.
    Foreign(String),
}

/// An existing child as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub uid: String,
    pub owner: Owner,
    /// `dittofs.io/applied-hash`: the body we last applied.
    pub applied_hash: Option<String>,
}

impl Seen {
    /// Judge `meta` for the DittoServer `ds`.
    pub fn of(meta: &ObjectMeta, ds: &DittoServer) -> Self {
        Seen {
            uid: meta.uid.clone().unwrap_or_default(),
            owner: owner(meta, ds),
            applied_hash: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION).cloned()),
        }
    }

    pub fn is_ours(&self) -> bool {
        matches!(self.owner, Owner::This | Owner::Adoptable)
    }
}

fn owner(meta: &ObjectMeta, ds: &DittoServer) -> Owner {
    let uid = ds.uid().unwrap_or_default();
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if let Some(c) = controller {
        return if c.uid == uid {
            Owner::This
        } else if c.kind == KIND && c.api_version.starts_with(GROUP) {
            Owner::Foreign(format!(
                "it belongs to another DittoServer {} (uid {})",
                c.name, c.uid
            ))
        } else {
            Owner::Foreign(format!("it is controlled by {} {}", c.kind, c.name))
        };
    }
    let labels = meta.labels.clone().unwrap_or_default();
    let labelled = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && labels.get(INSTANCE_LABEL) == Some(&ds.name_any());
    if labelled {
        Owner::Adoptable
    } else {
        Owner::Foreign("it was not created by dittofs-operator for this DittoServer".into())
    }
}

/// Does `meta` carry an owner reference (controller or not) to `ds`?
pub fn owned_by(meta: &ObjectMeta, ds: &DittoServer) -> bool {
    let uid = ds.uid().unwrap_or_default();
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}
