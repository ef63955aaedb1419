//! A DittoServer as the watch delivers it, read leniently.
//!
//! The DittoServer watch lists every object of the cluster in one response. If
//! one stored object no longer deserialises into this version's types (a newer or
//! older CRD wrote a field we do not know), a strictly typed watch fails the whole
//! list and no DittoServer is reconciled at all. Here the spec is parsed per
//! object: an unreadable one is kept with the field that failed, reported on that
//! object alone, and every other object is unaffected.
//!
//! Decoding also drops what the reconciler never reads (managedFields and the
//! last-applied annotation, often larger than the spec) so the cache stays small.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use serde::{Deserialize, Deserializer};

use crate::crd::{DittoServer, DittoServerSpec, DittoServerStatus, SpecParseError, parse_spec};

/// Annotation `kubectl apply` keeps a full copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One stored DittoServer: metadata, and the spec if it could be read.
#[derive(Clone, Debug)]
pub struct StoredServer {
    pub metadata: ObjectMeta,
    pub spec: Result<DittoServerSpec, SpecParseError>,
    /// The status we wrote; an unreadable status is treated as none (we rewrite it).
    pub status: Option<DittoServerStatus>,
}

/// A reference to a DittoServer in the stores and the reconciler's memory.
pub type ServerRef = ObjectRef<StoredServer>;

impl StoredServer {
    /// The typed DittoServer, or why its spec cannot be read.
    pub fn server(&self) -> Result<DittoServer, &SpecParseError> {
        let spec = self.spec.as_ref()?;
        Ok(DittoServer {
            metadata: self.metadata.clone(),
            spec: spec.clone(),
            status: self.status.clone(),
        })
    }
}

impl From<DittoServer> for StoredServer {
    fn from(ds: DittoServer) -> Self {
        Self {
            metadata: ds.metadata,
            spec: Ok(ds.spec),
            status: ds.status,
        }
    }
}

/// The DittoServers of `ns` as raw objects: the finalizer and the status are
/// written whether or not this version can read the spec, and a response is never
/// parsed into it.
pub fn raw_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<DittoServer>(&()))
}

impl<'de> Deserialize<'de> for StoredServer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            metadata: ObjectMeta,
            #[serde(default)]
            spec: Option<serde_json::Value>,
            #[serde(default)]
            status: Option<serde_json::Value>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let mut metadata = raw.metadata;
        metadata.managed_fields = None;
        if let Some(annotations) = metadata.annotations.as_mut() {
            annotations.remove(LAST_APPLIED);
        }
        let spec = match raw.spec {
            Some(spec) => parse_spec(spec),
            None => Err(SpecParseError::missing()),
        };
        let status = raw
            .status
            .and_then(|s| serde_json::from_value::<DittoServerStatus>(s).ok());
        Ok(Self {
            metadata,
            spec,
            status,
        })
    }
}

impl Resource for StoredServer {
    type DynamicType = ();
    type Scope = <DittoServer as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        DittoServer::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        DittoServer::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        DittoServer::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        DittoServer::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_with_one_unreadable_object_still_decodes() {
        let list = json!([
            {"metadata": {"name": "good", "namespace": "ns",
                          "managedFields": [{"manager": "kubectl"}],
                          "annotations": {(LAST_APPLIED): "{…}", "keep": "me"}},
             "spec": {"storage": {"metadataSize": "1Gi"}}},
            {"metadata": {"name": "newer", "namespace": "ns"},
             "spec": {"storage": {"metadataSize": "1Gi"}, "smb": {"port": "not a number"}},
             "status": {"phase": "SomethingNew"}},
        ]);
        let servers: Vec<StoredServer> = serde_json::from_value(list).expect("the list decodes");
        let good = servers[0].server().expect("readable");
        assert!(good.metadata.managed_fields.is_none());
        let annotations = good.metadata.annotations.expect("annotations kept");
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));

        let unreadable = servers[1].server().expect_err("unreadable");
        assert_eq!(unreadable.field, "spec.smb.port");
        assert!(servers[1].status.is_none(), "an unknown phase is no status");
    }
}
