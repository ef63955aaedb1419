//! Served resource types and URL routing.
//!
//! Stands for kube-apiserver's REST storage registry plus apiextensions-apiserver:
//! built-in types are always served; a custom type is served while its
//! CustomResourceDefinition exists. A path under a group, version, resource or
//! subresource that is not served matches no route, and the caller answers it the
//! way the real server's final not-found handler does: plain text.

use std::sync::Arc;

use serde_json::{Value, json};

/// One served resource type.
#[derive(Clone, Debug)]
pub struct TypeInfo {
    /// API group, `""` for the core group.
    pub group: String,
    /// Served versions, storage version first.
    pub versions: Vec<String>,
    /// Plural resource name (`statefulsets`).
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    /// Has a `/status` subresource: writes to the main resource keep `status`,
    /// writes to `/status` change nothing else.
    pub status_subresource: bool,
    /// Keeps `metadata.generation` (bumped when anything outside `metadata` and,
    /// with a status subresource, `status`, changes).
    pub generation: bool,
    /// Defined by a CRD: structural pruning and defaulting apply, an update needs a
    /// resourceVersion.
    pub custom: bool,
    /// DELETE answers with the deleted object instead of a `Status`
    /// (`ReturnDeletedObject` in the real REST storage).
    pub returns_deleted_object: bool,
    /// `openAPIV3Schema` of the storage version (custom types only).
    pub schema: Option<Value>,
    /// Name of the CRD that defines this type.
    pub crd_name: Option<String>,
}

impl TypeInfo {
    pub fn storage_version(&self) -> &str {
        &self.versions[0]
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn storage_api_version(&self) -> String {
        self.api_version(self.storage_version())
    }

    /// `configmaps` or `statefulsets.apps`, as error messages print a group resource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `ConfigMap` or `StatefulSet.apps`, as validation errors print a group kind.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The APIResource entries of discovery (the type and its status subresource).
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.resource,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        let mut entries = vec![main];
        if self.status_subresource {
            entries.push(json!({
                "name": format!("{}/status", self.resource),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

const NAMESPACED: u8 = 1;
const STATUS: u8 = 2;
const GENERATION: u8 = 4;
const RETURNS_DELETED: u8 = 8;

/// (group, version, resource, kind, flags)
type Builtin = (&'static str, &'static str, &'static str, &'static str, u8);

/// Built-in types of a 1.36 cluster that the operator, its tests or
/// kube-controller-manager touch. Generation is kept by the types whose strategy
/// sets it (workloads, pods since PodObservedGenerationTracking, CRDs, webhook
/// configurations); DELETE returns the object for pods, service accounts and
/// storage classes.
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", STATUS),
    ("", "v1", "configmaps", "ConfigMap", NAMESPACED),
    ("", "v1", "secrets", "Secret", NAMESPACED),
    ("", "v1", "services", "Service", NAMESPACED | STATUS),
    (
        "",
        "v1",
        "pods",
        "Pod",
        NAMESPACED | STATUS | GENERATION | RETURNS_DELETED,
    ),
    ("", "v1", "events", "Event", NAMESPACED),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        NAMESPACED | RETURNS_DELETED,
    ),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        NAMESPACED | STATUS,
    ),
    (
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        NAMESPACED | STATUS | GENERATION,
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        NAMESPACED | GENERATION,
    ),
    ("events.k8s.io", "v1", "events", "Event", NAMESPACED),
    ("coordination.k8s.io", "v1", "leases", "Lease", NAMESPACED),
    (
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        RETURNS_DELETED,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        STATUS | GENERATION,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        GENERATION,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        GENERATION,
    ),
];

pub fn builtin_types() -> Vec<TypeInfo> {
    BUILTINS
        .iter()
        .map(|&(group, version, resource, kind, flags)| TypeInfo {
            group: group.into(),
            versions: vec![version.into()],
            resource: resource.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            short_names: Vec::new(),
            namespaced: flags & NAMESPACED != 0,
            status_subresource: flags & STATUS != 0,
            generation: flags & GENERATION != 0,
            custom: false,
            returns_deleted_object: flags & RETURNS_DELETED != 0,
            schema: None,
            crd_name: None,
        })
        .collect()
}

/// The type a CRD defines, or why it defines none.
pub fn type_from_crd(crd: &Value) -> Result<TypeInfo, String> {
    let spec = &crd["spec"];
    let text = |v: &Value, what: &str| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("spec.{what} is required"))
    };
    let group = text(&spec["group"], "group")?;
    let names = &spec["names"];
    let resource = text(&names["plural"], "names.plural")?;
    let kind = text(&names["kind"], "names.kind")?;
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let short_names = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope must be Namespaced or Cluster".into()),
    };
    let versions = spec["versions"]
        .as_array()
        .ok_or("spec.versions is required")?;
    let storage = versions
        .iter()
        .find(|v| v["storage"] == true)
        .ok_or("exactly one version must be the storage version")?;
    let storage_name = text(&storage["name"], "versions[].name")?;
    let mut served: Vec<String> = vec![storage_name.clone()];
    for v in versions {
        if v["served"] == true
            && let Some(name) = v["name"].as_str()
            && name != storage_name
        {
            served.push(name.to_string());
        }
    }
    if storage["served"] != true && versions.iter().all(|v| v["served"] != true) {
        return Err("no version is served".into());
    }
    Ok(TypeInfo {
        crd_name: Some(format!("{resource}.{group}")),
        group,
        versions: served,
        resource,
        singular,
        kind,
        list_kind,
        short_names,
        namespaced,
        status_subresource: storage["subresources"]["status"].is_object(),
        generation: true,
        custom: true,
        returns_deleted_object: false,
        schema: storage["schema"]["openAPIV3Schema"]
            .is_object()
            .then(|| storage["schema"]["openAPIV3Schema"].clone()),
    })
}

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/api`
    CoreVersions,
    /// `/api/v1`
    CoreResources,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/apis/{group}/{version}`
    GroupVersion(String, String),
    /// A collection, an object or its status.
    Resource(ResourceRoute),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRoute {
    /// Index of the type in the store.
    pub ty: usize,
    /// The version the client asked for (objects are answered with it).
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `/status`
    pub status: bool,
}

/// Served types, looked up by (group, resource).
pub trait TypeLookup {
    fn lookup(&self, group: &str, resource: &str) -> Option<(usize, Arc<TypeInfo>)>;
    fn group_served(&self, group: &str) -> bool;
    fn group_version_served(&self, group: &str, version: &str) -> bool;
}

/// Route `path`, or `None` for a path the server does not serve (plain-text 404).
pub fn route(path: &str, types: &impl TypeLookup) -> Option<Route> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    match segments.as_slice() {
        ["version"] => Some(Route::Version),
        ["api"] => Some(Route::CoreVersions),
        ["api", "v1"] => Some(Route::CoreResources),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest, types),
        ["apis"] => Some(Route::Groups),
        ["apis", group] if types.group_served(group) => Some(Route::Group(group.to_string())),
        ["apis", group, version] if types.group_version_served(group, version) => {
            Some(Route::GroupVersion(group.to_string(), version.to_string()))
        }
        ["apis", group, version, rest @ ..] if types.group_version_served(group, version) => {
            resource_route(group, version, rest, types)
        }
        _ => None,
    }
}

fn resource_route(
    group: &str,
    version: &str,
    rest: &[&str],
    types: &impl TypeLookup,
) -> Option<Route> {
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    // `namespaces/{ns}/{resource}...` is namespaced; `namespaces/{name}[/status]`
    // is the Namespace object itself.
    let namespaced_path = rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && (!group.is_empty() || (rest[2] != "status" && rest[2] != "finalize"));
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    let (ty, info) = types.lookup(group, resource)?;
    if !info.versions.iter().any(|v| v == version) {
        return None;
    }
    if namespace.is_some() && !info.namespaced {
        return None;
    }
    // A namespaced object always lives under `namespaces/{ns}/`; only its
    // collection across all namespaces is reachable without one.
    if namespace.is_none() && info.namespaced && name.is_some() {
        return None;
    }
    let status = match sub {
        None => false,
        Some("status") if info.status_subresource => true,
        Some(_) => return None,
    };
    Some(Route::Resource(ResourceRoute {
        ty,
        version: version.to_string(),
        namespace,
        name: name.map(str::to_string),
        status,
    }))
}
