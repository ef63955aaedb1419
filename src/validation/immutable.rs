//! Storage that cannot change once the StatefulSet exists (its volumeClaimTemplates
//! are immutable). One definition makes both the CRD's CEL transition rules (which
//! the API server enforces even without the webhook) and the core's UPDATE rule, so
//! the two agree: a field compares by its effective value, its default when unset,
//! and an empty string is unset.

use kube::core::{Reason, Rule};

use crate::defaults::{DEFAULT_CACHE_SIZE, DEFAULT_CONTROL_PLANE_SIZE};
use crate::effective::{EffectiveSpec, Storage};

use super::Findings;

/// One immutable field of `spec.storage`.
pub struct Immutable {
    /// Its name under `spec.storage`.
    pub field: &'static str,
    /// The value it has when unset ("" for none).
    pub default: &'static str,
    kind: Kind,
    /// What the API server's CEL rule says when it refuses a change.
    cel_message: &'static str,
    /// The effective value, `None` when unset and without a default.
    effective: fn(&Storage) -> Option<&str>,
}

/// What an immutable field decides.
enum Kind {
    /// The size of a volume, by the PVC prefix (`<prefix>-<name>-0`).
    Volume(&'static str),
    /// The size of a volume that exists only when the field is set.
    OptionalVolume(&'static str),
    /// The StorageClass of every volume.
    Class,
}

/// Every immutable storage field, in spec order.
pub const STORAGE: [Immutable; 5] = [
    Immutable {
        field: "metadataSize",
        default: "",
        kind: Kind::Volume("metadata"),
        cel_message: "storage.metadataSize is immutable (StatefulSet volumeClaimTemplates cannot change); expand the PVC metadata-<name>-0 directly instead",
        effective: |s| Some(s.metadata_size.as_str()),
    },
    Immutable {
        field: "contentSize",
        default: "",
        kind: Kind::OptionalVolume("content"),
        cel_message: "storage.contentSize cannot be added, removed or changed after creation; expand the PVC content-<name>-0 directly or recreate the DittoServer",
        effective: |s| s.content_size.as_deref(),
    },
    Immutable {
        field: "cacheSize",
        default: DEFAULT_CACHE_SIZE,
        kind: Kind::Volume("cache"),
        cel_message: "storage.cacheSize is immutable; expand the PVC cache-<name>-0 directly instead",
        effective: |s| Some(s.cache_size.as_str()),
    },
    Immutable {
        field: "controlPlaneSize",
        default: DEFAULT_CONTROL_PLANE_SIZE,
        kind: Kind::Volume("controlplane"),
        cel_message: "storage.controlPlaneSize is immutable; expand the PVC controlplane-<name>-0 directly instead",
        effective: |s| Some(s.control_plane_size.as_str()),
    },
    Immutable {
        field: "storageClassName",
        default: "",
        kind: Kind::Class,
        cel_message: "storage.storageClassName is immutable; create a new DittoServer to move data to another StorageClass",
        effective: |s| s.storage_class_name.as_deref(),
    },
];

impl Immutable {
    /// The CEL transition rule on `spec.storage`.
    pub fn cel_rule(&self) -> Rule {
        let value = |var: &str| {
            format!(
                "(has({var}.{f}) && {var}.{f} != '' ? {var}.{f} : '{d}')",
                f = self.field,
                d = self.default
            )
        };
        Rule::new(format!("{} == {}", value("self"), value("oldSelf")))
            .message(self.cel_message)
            .reason(Reason::FieldValueForbidden)
    }

    /// The effective value with "unset" and "" alike.
    fn value<'a>(&self, storage: &'a Storage) -> Option<&'a str> {
        (self.effective)(storage).filter(|v| !v.is_empty())
    }
}

/// The UPDATE rule: every immutable field keeps its effective value.
pub(crate) fn check(new: &EffectiveSpec, old: &EffectiveSpec, out: &mut Findings) {
    for f in &STORAGE {
        let (before, after) = (f.value(&old.storage), f.value(&new.storage));
        if before == after {
            continue;
        }
        let field = format!("spec.storage.{}", f.field);
        let message = match f.kind {
            Kind::Class => format!(
                "cannot change from {} to {}: volumes keep their StorageClass; create a new DittoServer to move data to another class",
                before.unwrap_or("(cluster default)"),
                after.unwrap_or("(cluster default)")
            ),
            Kind::OptionalVolume(volume) => {
                let what = match (before, after) {
                    (None, _) => "cannot be added after creation".to_string(),
                    (_, None) => "cannot be removed after creation".to_string(),
                    (Some(a), Some(b)) => format!("cannot change from {a} to {b}"),
                };
                format!(
                    "{what}: StatefulSet volumeClaimTemplates cannot change; restore the old value (expand PVC {volume}-{}-0 directly), or create a new DittoServer with the {volume} volume",
                    new.name
                )
            }
            Kind::Volume(volume) => format!(
                "cannot change from {} to {}: StatefulSet volumeClaimTemplates cannot change: put the old value back, then expand the PVC {volume}-{}-0 directly (kubectl patch pvc, if its StorageClass allows expansion)",
                before.unwrap_or_default(),
                after.unwrap_or_default(),
                new.name
            ),
        };
        out.error(&field, message);
    }
}
