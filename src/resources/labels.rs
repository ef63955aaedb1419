//! Labels, selectors and owner references shared by every generated object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;

/// `app.kubernetes.io/name` of everything we create.
pub const APP_NAME: &str = "dittofs";
/// `app.kubernetes.io/managed-by` of everything we create.
pub const MANAGED_BY: &str = "dittofs-operator";

/// The pod selector: name + instance only, so it never changes across operator
/// versions (a StatefulSet selector is immutable).
pub fn selector(instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        ),
    ])
}

/// Full labels of an object of `component` (server, file, api, headless, metrics, …).
pub fn labels(instance: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = selector(instance);
    l.insert("app.kubernetes.io/component".into(), component.into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l
}

/// The controller owner reference to the DittoServer, when it has a uid (it has
/// none when rendered offline). `blockOwnerDeletion`: a foreground deletion of the
/// DittoServer waits for its children, as for any built-in controller's objects.
pub fn owner(ds: &DittoServer) -> Option<Vec<OwnerReference>> {
    ds.controller_owner_ref(&()).map(|r| {
        vec![OwnerReference {
            block_owner_deletion: Some(true),
            ..r
        }]
    })
}

/// Metadata of a namespaced child: name, namespace, labels, owner.
pub fn child_meta(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    name: String,
    component: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(eff.namespace.clone()),
        labels: Some(labels(&eff.name, component)),
        owner_references: owner(ds),
        ..Default::default()
    }
}
