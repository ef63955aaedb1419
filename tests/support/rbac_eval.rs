//! The RBAC evaluator of the tests: which authorization checks the API server makes
//! for an HTTP request (request-info rules), and whether the operator's generated
//! rules grant them. `tests/rbac_usage.rs` runs every component of the binary
//! against the test API server and checks each request it makes with this.

use std::collections::BTreeSet;

use dittofs_operator::crd::DittoServer;
use dittofs_operator::rbac::{Grant, Install, Rule};
use kube::Resource;
use serde_json::Value;

/// The RBAC attributes of one authorization check the API server makes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiCall {
    /// A resource request: `verb` on `group`/`resource` (`resource/subresource`).
    Resource {
        verb: String,
        group: String,
        resource: String,
        /// None for cluster-scoped objects and all-namespace collections.
        namespace: Option<String>,
        /// None for collections and creates.
        name: Option<String>,
    },
    /// Discovery and other non-resource paths (`/apis/g/v`): granted to every
    /// authenticated user by the default `system:discovery` ClusterRole.
    NonResource { verb: String, path: String },
}

impl ApiCall {
    pub fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        ApiCall::Resource {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
        }
    }

    /// Every authorization check the API server makes for this HTTP request: the
    /// request's own verb (request-info rules: GET is get, list or watch; DELETE of a
    /// collection is deletecollection), `create` for a server-side apply (it creates an
    /// absent object), and `update` on `<owner>/finalizers` for every owner reference
    /// with `blockOwnerDeletion: true` in the body.
    pub fn from_http(
        method: &http::Method,
        uri: &http::Uri,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<ApiCall> {
        let path = uri.path();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => {
                return vec![ApiCall::NonResource {
                    verb: method.as_str().to_lowercase(),
                    path: path.to_string(),
                }];
            }
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
            _ => (None, rest),
        };
        // `rest` is never empty here: both matches above keep at least one segment.
        let (resource, tail) = rest.split_first().unwrap_or((&"", &[]));
        let name = tail.first().copied();
        let subresource = tail.get(1).copied();
        let resource = match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let query = uri.query().unwrap_or_default();
        let watching = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match (method.as_str(), name) {
            ("GET" | "HEAD", Some(_)) => "get",
            ("GET" | "HEAD", None) if watching => "watch",
            ("GET" | "HEAD", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            (other, _) => {
                return vec![ApiCall::NonResource {
                    verb: other.to_lowercase(),
                    path: path.to_string(),
                }];
            }
        };
        let mut calls = vec![ApiCall::resource(verb, group, &resource, namespace, name)];
        if verb == "patch" && content_type.is_some_and(|c| c.contains("apply-patch")) {
            calls.push(ApiCall::resource(
                "create", group, &resource, namespace, name,
            ));
        }
        if matches!(verb, "create" | "update" | "patch") {
            let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let mut owners = BTreeSet::new();
            blocking_owners(&parsed, &mut owners);
            for (owner_group, owner_resource) in owners {
                calls.push(ApiCall::resource(
                    "update",
                    &owner_group,
                    &format!("{owner_resource}/finalizers"),
                    namespace,
                    None,
                ));
            }
        }
        calls
    }
}

/// (group, plural) of every owner reference with `blockOwnerDeletion: true`, found
/// anywhere in `value` (apply bodies, merge patches and JSON-patch values alike).
fn blocking_owners(value: &Value, out: &mut BTreeSet<(String, String)>) {
    match value {
        Value::Object(map) => {
            if map.get("blockOwnerDeletion") == Some(&Value::Bool(true))
                && let (Some(api_version), Some(kind)) = (
                    map.get("apiVersion").and_then(Value::as_str),
                    map.get("kind").and_then(Value::as_str),
                )
            {
                let group = api_version
                    .rsplit_once('/')
                    .map(|(g, _)| g)
                    .unwrap_or_default();
                out.insert((group.to_string(), plural_of(group, kind)));
            }
            for v in map.values() {
                blocking_owners(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| blocking_owners(v, out)),
        _ => {}
    }
}

/// The resource name of an owner kind: ours from the CRD, otherwise the API's
/// regular plural (lowercase + "s", true of every kind that owns our objects).
fn plural_of(group: &str, kind: &str) -> String {
    if group == DittoServer::group(&()) && kind == DittoServer::kind(&()) {
        return DittoServer::plural(&()).to_string();
    }
    format!("{}s", kind.to_lowercase())
}

/// Does `rule` (in a ClusterRole when `namespace` is None, else a Role in
/// `namespace`) grant `call`, with names resolved for `install`?
pub fn rule_allows(
    rule: &Rule,
    role_namespace: Option<&str>,
    install: &Install,
    call: &ApiCall,
) -> bool {
    let ApiCall::Resource {
        verb,
        group,
        resource,
        namespace,
        name,
    } = call
    else {
        return false;
    };
    if let Some(role_ns) = role_namespace
        && namespace.as_deref() != Some(role_ns)
    {
        return false;
    }
    let names = install.resolve(rule.names);
    rule.api_group == group
        && rule.resources.contains(&resource.as_str())
        && rule.verbs.contains(&verb.as_str())
        && (names.is_empty() || name.as_ref().is_some_and(|n| names.contains(n)))
}

/// The namespace of the Role a grant is made in (None: the ClusterRole).
pub fn role_namespace(grant: &Grant) -> Option<&str> {
    match grant {
        Grant::Cluster => None,
        Grant::Namespace(ns) => Some(ns),
    }
}

/// Does the operator's RBAC (ClusterRole and Roles of `install`) grant `call`?
pub fn allows(install: &Install, call: &ApiCall) -> bool {
    install
        .grants()
        .iter()
        .any(|(r, g)| rule_allows(r, role_namespace(g), install, call))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DITTOFS: &str = "dittofs.dittofs.com";

    fn calls(method: &str, uri: &str, content_type: Option<&str>, body: &str) -> Vec<ApiCall> {
        ApiCall::from_http(
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            content_type,
            body.as_bytes(),
        )
    }

    fn res(
        verb: &str,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> ApiCall {
        ApiCall::resource(verb, group, resource, ns, name)
    }

    #[test]
    fn request_info_like_the_api_server() {
        assert_eq!(
            calls("GET", "/api/v1/namespaces/a/secrets/s", None, ""),
            [res("get", "", "secrets", Some("a"), Some("s"))]
        );
        assert_eq!(
            calls("GET", "/api/v1/secrets?labelSelector=x", None, ""),
            [res("list", "", "secrets", None, None)]
        );
        assert_eq!(
            calls(
                "GET",
                "/apis/apps/v1/statefulsets?watch=true&resourceVersion=1",
                None,
                ""
            ),
            [res("watch", "apps", "statefulsets", None, None)]
        );
        assert_eq!(
            calls(
                "PATCH",
                "/apis/dittofs.dittofs.com/v1alpha1/namespaces/a/dittoservers/d/status",
                Some("application/merge-patch+json"),
                "{}"
            ),
            [res(
                "patch",
                DITTOFS,
                "dittoservers/status",
                Some("a"),
                Some("d")
            )]
        );
        assert_eq!(
            calls("DELETE", "/api/v1/namespaces/a/services", None, ""),
            [res("deletecollection", "", "services", Some("a"), None)]
        );
        assert_eq!(
            calls(
                "PUT",
                "/apis/storage.k8s.io/v1/storageclasses/fast",
                None,
                "{}"
            ),
            [res(
                "update",
                "storage.k8s.io",
                "storageclasses",
                None,
                Some("fast")
            )]
        );
        assert!(matches!(
            calls("GET", "/apis/pgv2.percona.com/v2", None, "")[..],
            [ApiCall::NonResource { .. }]
        ));
    }

    #[test]
    fn apply_needs_create_and_blocking_owners_need_finalizers_update() {
        let body = r#"{"metadata": {"ownerReferences": [{"apiVersion": "dittofs.dittofs.com/v1alpha1",
            "kind": "DittoServer", "name": "d", "uid": "u", "controller": true, "blockOwnerDeletion": true}]}}"#;
        assert_eq!(
            calls(
                "PATCH",
                "/api/v1/namespaces/a/configmaps/c?fieldManager=x&force=true",
                Some("application/apply-patch+yaml"),
                body
            ),
            [
                res("patch", "", "configmaps", Some("a"), Some("c")),
                res("create", "", "configmaps", Some("a"), Some("c")),
                res(
                    "update",
                    DITTOFS,
                    "dittoservers/finalizers",
                    Some("a"),
                    None
                ),
            ]
        );
        // Without blockOwnerDeletion no finalizers check.
        let plain = body.replace(
            "\"blockOwnerDeletion\": true",
            "\"blockOwnerDeletion\": false",
        );
        assert_eq!(
            calls("POST", "/api/v1/namespaces/a/configmaps", None, &plain).len(),
            1
        );
    }

    #[test]
    fn names_and_namespaces_restrict() {
        let install = Install::plain();
        let tls = |verb: &str, ns: &str, name: &str| res(verb, "", "secrets", Some(ns), Some(name));
        assert!(allows(
            &install,
            &tls("update", "dittofs-system", "dittofs-operator-webhook-tls")
        ));
        assert!(!allows(&install, &tls("update", "dittofs-system", "other")));
        assert!(!allows(
            &install,
            &tls("update", "kube-system", "dittofs-operator-webhook-tls")
        ));
        assert!(!allows(&install, &tls("delete", "team", "s")));
        assert!(allows(
            &install,
            &res(
                "patch",
                "coordination.k8s.io",
                "leases",
                Some("dittofs-system"),
                Some("dittofs-operator")
            )
        ));
        assert!(!allows(
            &install,
            &res(
                "patch",
                "coordination.k8s.io",
                "leases",
                Some("kube-system"),
                Some("dittofs-operator")
            )
        ));
        assert!(!allows(
            &install,
            &res(
                "patch",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                None,
                Some("other")
            )
        ));
        assert!(!allows(
            &install,
            &res(
                "patch",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                None,
                Some("dittofs-operator-mutating")
            )
        ));
    }
}
