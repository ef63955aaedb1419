//! Names of every object the operator creates for a DittoServer `<name>`, and the
//! labels, annotation, finalizer and field manager by which it knows its own.

/// ConfigMap holding `config.yaml`.
pub fn config_map(name: &str) -> String {
    format!("{name}-config")
}
/// Key of the config file inside the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// NFS (and SMB) Service.
pub fn file_service(name: &str) -> String {
    format!("{name}-file")
}
/// REST API Service.
pub fn api_service(name: &str) -> String {
    format!("{name}-api")
}
/// Headless Service of the StatefulSet.
pub fn headless_service(name: &str) -> String {
    format!("{name}-headless")
}
/// Metrics Service (only when metrics are enabled).
pub fn metrics_service(name: &str) -> String {
    format!("{name}-metrics")
}
/// The server pod's NetworkPolicy.
pub fn network_policy(name: &str) -> String {
    format!("{name}-ingress")
}
/// StatefulSet (same name as the DittoServer).
pub fn stateful_set(name: &str) -> String {
    name.to_string()
}
/// Operator-managed JWT signing Secret.
pub fn jwt_secret(name: &str) -> String {
    format!("{name}-jwt-secret")
}
/// Operator-managed admin bootstrap Secret.
pub fn admin_secret(name: &str) -> String {
    format!("{name}-admin-bootstrap-credentials")
}
/// The operator's DittoFS account: its password and refresh token.
pub fn account_secret(name: &str) -> String {
    format!("{name}-operator-credentials")
}
/// PerconaPGCluster.
pub fn percona_cluster(name: &str) -> String {
    format!("{name}-postgres")
}
/// Secret Percona creates for `user` of cluster `<name>-postgres`.
pub fn percona_user_secret(name: &str, user: &str) -> String {
    format!("{}-pguser-{user}", percona_cluster(name))
}

/// Label naming who manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value on everything the operator creates. The admission policies let the
/// operator's ServiceAccount write only objects that carry it, so it never changes.
pub const MANAGED_BY: &str = "dittofs-operator";
/// Label naming the DittoServer a child belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Field manager of every write the reconciler makes.
pub const FIELD_MANAGER: &str = "dittofs-operator";
/// Our finalizer on DittoServers.
pub const FINALIZER: &str = "dittofs.dittofs.com/finalizer";
/// Annotation holding the hash of the body we last applied to a child.
pub const APPLIED_HASH_ANNOTATION: &str = "dittofs.io/applied-hash";

/// The label selector of every child the reconciler creates.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Why `value` is not an RFC 1123 subdomain (what object names must be): 1 to
/// 253 characters of dot-separated labels.
pub fn subdomain_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() || value.len() > 253 {
        return Some("must be 1 to 253 characters");
    }
    value
        .split('.')
        .any(|label| label_problem(label).is_some())
        .then_some("must be dot-separated lowercase labels of letters, digits and '-'")
}

/// Why `value` is not an RFC 1123 label (what namespace and Service names must
/// be), or `None` when it is one.
pub fn label_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() || value.len() > 63 {
        return Some("must be 1 to 63 characters");
    }
    let bytes = value.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let inner_ok = bytes.iter().all(|&b| edge_ok(b) || b == b'-');
    let edges_ok =
        bytes.first().is_some_and(|&b| edge_ok(b)) && bytes.last().is_some_and(|&b| edge_ok(b));
    (!inner_ok || !edges_ok).then_some(
        "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
    )
}
