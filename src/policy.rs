//! ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1) that hold the
//! operator's own ServiceAccounts to what RBAC cannot express.
//!
//! RBAC must let the operator create and patch Secrets in every namespace (managed
//! credentials of each DittoServer). Unchecked, that is cluster-admin: a Secret of
//! type `kubernetes.io/service-account-token` annotated for any ServiceAccount is
//! filled with that account's token by the token controller. The Secret policy lets
//! the operator's ServiceAccounts (the operator and the certificate bootstrap Job)
//! create and update only
//! - Secrets of type `Opaque` labelled `app.kubernetes.io/managed-by=dittofs-operator`
//!   (updates judge the *stored* Secret, so a Secret the operator does not manage is
//!   never touched, while a managed one can be released by removing the label), and
//! - the webhook's `kubernetes.io/tls` Secret, by name, in the operator's namespace.
//!
//! RBAC must also let the operator create and patch StatefulSets in every namespace.
//! Unchecked, a stolen token could run a pod under any ServiceAccount of a namespace,
//! privileged, or with the node's filesystem. The StatefulSet policy lets the
//! operator's ServiceAccount write only StatefulSets it manages (label, on the stored
//! object too) whose pod runs under the namespace's `default` account without a
//! token, in no host namespace, with only ConfigMap, Secret and emptyDir volumes
//! (a Secret volume shows the pod nothing the operator's token cannot read itself:
//! it reads the Secrets of every namespace it serves) and claim templates for new
//! filesystem volumes, and within Pod Security `restricted`
//! (security contexts, capabilities, host ports, sysctls, AppArmor) — everything the
//! operator's own builder produces (a test runs the CEL on every sample's
//! StatefulSet).
//!
//! A NetworkPolicy opens pods to traffic: written by a stolen token, it could open any
//! pod of a namespace to, or let it reach, peers of its choosing. The NetworkPolicy
//! policy lets the operator's ServiceAccount write only NetworkPolicies it manages
//! (label, on the stored object too) that select our server pods by their labels
//! (managed-by, component `server`, name `dittofs`, an instance; no
//! matchExpressions), are of type Ingress only with no egress, and whose rules list
//! ports and choose no peers (no `from`): the shape `resources::network_policy`
//! builds (a test runs the CEL on every sample's). It also judges deletes: only a
//! NetworkPolicy it manages, never a tenant's own (a default-deny policy).
//!
//! The API server evaluates the CEL itself (no webhook, no operator needed), so the
//! rules hold even when the operator's token is stolen. Pure builders; the committed
//! copies in `deploy/` and the chart are compared with them by `tests/generated.rs`.

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::rbac::Install;
use crate::resources::labels::MANAGED_BY;
use crate::validation::pod_security::{CONFINED_PROFILES, SAFE_SYSCTLS, SELINUX_TYPES};

/// The label that marks what the operator manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// CEL of a policy, for one install. Also what the CEL tests evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRules {
    /// `matchConditions`: (name, expression). The policy applies only when all hold.
    pub match_conditions: Vec<(String, String)>,
    /// `variables`: (name, expression), evaluated in order, read as `variables.<name>`.
    pub variables: Vec<(String, String)>,
    /// `validations`: every expression must be true.
    pub validations: Vec<PolicyValidation>,
}

/// One validation of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyValidation {
    pub expression: String,
    /// Shown when `message_expression` cannot be evaluated.
    pub message: String,
    /// The message naming the refused object.
    pub message_expression: String,
}

/// The request user of a ServiceAccount.
fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// `true` when `var` (`object` or `oldObject`) is an Opaque Secret we manage.
fn managed_opaque(var: &str) -> String {
    format!(
        "{var} != null && has({var}.type) && {var}.type == 'Opaque' && \
         has({var}.metadata.labels) && '{MANAGED_BY_LABEL}' in {var}.metadata.labels && \
         {var}.metadata.labels['{MANAGED_BY_LABEL}'] == '{MANAGED_BY}'"
    )
}

/// `true` when `var` is the webhook TLS Secret of `install` (by type, name and namespace).
fn webhook_tls(var: &str, install: &Install) -> String {
    format!(
        "{var} != null && request.namespace == '{namespace}' && \
         {var}.metadata.name == '{name}' && has({var}.type) && {var}.type == 'kubernetes.io/tls'",
        namespace = install.namespace,
        name = install.webhook_tls_secret(),
    )
}

/// The CEL of the Secret policy for `install`.
pub fn secret_rules(install: &Install) -> PolicyRules {
    let users = [
        service_account_user(&install.namespace, &install.service_account()),
        service_account_user(&install.namespace, &install.certs_service_account()),
    ];
    let secret = "request.namespace + '/' + \
                (has(object.metadata.name) ? object.metadata.name : '(generated name)') + \
                ' of type ' + (has(object.type) ? object.type : '(none)')";
    PolicyRules {
        match_conditions: vec![(
            "operator-service-accounts".into(),
            format!(
                "request.userInfo.username == '{}' || request.userInfo.username == '{}'",
                users[0], users[1]
            ),
        )],
        variables: vec![
            ("newIsManaged".into(), managed_opaque("object")),
            ("oldIsManaged".into(), managed_opaque("oldObject")),
            ("newIsWebhookTls".into(), webhook_tls("object", install)),
            ("oldIsWebhookTls".into(), webhook_tls("oldObject", install)),
        ],
        validations: vec![
            PolicyValidation {
                expression: "request.operation != 'CREATE' || variables.newIsManaged || \
                             variables.newIsWebhookTls"
                    .into(),
                message: format!(
                    "dittofs-operator may create only Opaque Secrets labelled \
                     {MANAGED_BY_LABEL}={MANAGED_BY}, and its webhook TLS Secret {}/{}; \
                     anything else (such as a service-account token Secret) is refused so \
                     the operator's credentials can never mint a token",
                    install.namespace,
                    install.webhook_tls_secret()
                ),
                message_expression: format!(
                    "'dittofs-operator may not create Secret ' + {secret} + ': it may create only \
                     Opaque Secrets labelled {MANAGED_BY_LABEL}={MANAGED_BY} and its webhook \
                     TLS Secret {}/{} (no token Secret can ever be minted with its \
                     credentials)'",
                    install.namespace,
                    install.webhook_tls_secret()
                ),
            },
            PolicyValidation {
                // Judged on the stored Secret: only ours may change, and a managed one
                // may be released (label and owner reference removed). The type is
                // immutable, but is checked on both sides anyway.
                expression: "request.operation != 'UPDATE' || \
                             (variables.oldIsManaged && has(object.type) && object.type == 'Opaque') || \
                             (variables.oldIsWebhookTls && variables.newIsWebhookTls)"
                    .into(),
                message: format!(
                    "dittofs-operator may change only Secrets it manages (stored as Opaque \
                     with {MANAGED_BY_LABEL}={MANAGED_BY}) and its webhook TLS Secret {}/{}",
                    install.namespace,
                    install.webhook_tls_secret()
                ),
                message_expression: format!(
                    "'dittofs-operator may not change Secret ' + {secret} + ': the stored Secret is \
                     not one it manages (Opaque with {MANAGED_BY_LABEL}={MANAGED_BY}) nor its \
                     webhook TLS Secret {}/{}'",
                    install.namespace,
                    install.webhook_tls_secret()
                ),
            },
        ],
    }
}

/// `true` when `var` carries the managed-by label of the operator.
fn managed(var: &str) -> String {
    format!(
        "{var} != null && has({var}.metadata.labels) && '{MANAGED_BY_LABEL}' in {var}.metadata.labels && \
         {var}.metadata.labels['{MANAGED_BY_LABEL}'] == '{MANAGED_BY}'"
    )
}

/// A CEL list literal of strings.
fn cel_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `true` when the security context `sc` (pod or container level) stays within Pod
/// Security `restricted` for what both levels share: SELinux, seccomp, AppArmor and
/// the user (`validation::pod_security` holds user input to the same lists).
fn confined(sc: &str) -> String {
    let selinux_types = cel_list(&[&[""][..], &SELINUX_TYPES[..]].concat());
    let profiles = cel_list(&CONFINED_PROFILES);
    format!(
        "(!has({sc}.seLinuxOptions) || ((!has({sc}.seLinuxOptions.type) || \
         {sc}.seLinuxOptions.type in {selinux_types}) && \
         (!has({sc}.seLinuxOptions.user) || {sc}.seLinuxOptions.user == '') && \
         (!has({sc}.seLinuxOptions.role) || {sc}.seLinuxOptions.role == ''))) && \
         (!has({sc}.seccompProfile) || {sc}.seccompProfile.type in {profiles}) && \
         (!has({sc}.appArmorProfile) || {sc}.appArmorProfile.type in {profiles}) && \
         (!has({sc}.runAsUser) || {sc}.runAsUser != 0)"
    )
}

/// `true` when every container in the pod-spec list `list` is unprivileged: not
/// privileged, no privilege escalation, `ALL` capabilities dropped and none added but
/// NET_BIND_SERVICE, the default /proc mask, confined (see [`confined`]) with a
/// seccomp profile set, running as non-root, no host port and no raw block device
/// (what Pod Security `restricted` allows).
fn unprivileged(list: &str) -> String {
    let pod = "object.spec.template.spec";
    format!(
        "!has({pod}.{list}) || {pod}.{list}.all(c, has(c.securityContext) && \
         (!has(c.securityContext.privileged) || c.securityContext.privileged == false) && \
         has(c.securityContext.allowPrivilegeEscalation) && \
         c.securityContext.allowPrivilegeEscalation == false && \
         has(c.securityContext.capabilities) && has(c.securityContext.capabilities.drop) && \
         'ALL' in c.securityContext.capabilities.drop && \
         (!has(c.securityContext.capabilities.add) || \
         c.securityContext.capabilities.add.all(a, a == 'NET_BIND_SERVICE')) && \
         (!has(c.securityContext.procMount) || c.securityContext.procMount == 'Default') && \
         {confined} && \
         (!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0)) && \
         !has(c.volumeDevices) && \
         ({non_root}) && ({seccomp}))",
        confined = confined("c.securityContext"),
        non_root =
            set_here_or_for_the_pod("runAsNonRoot", "c.securityContext.runAsNonRoot == true"),
        seccomp = set_here_or_for_the_pod("seccompProfile", "true"),
    )
}

/// `true` when the container `c` sets `field` (and `ok` holds of it), or leaves it
/// unset and the pod sets it: what `restricted` requires of `runAsNonRoot` (true) and
/// of the seccomp profile (set; its type is checked by [`confined`]).
fn set_here_or_for_the_pod(field: &str, ok: &str) -> String {
    let pod = "object.spec.template.spec.securityContext";
    let pod_ok = ok.replace("c.securityContext", pod);
    format!(
        "(has(c.securityContext.{field}) && {ok}) || \
         (!has(c.securityContext.{field}) && has(object.spec.template.spec.securityContext) && \
         has({pod}.{field}) && {pod_ok})"
    )
}

/// Builds one validation of a policy on `kind`: the expression, and its refusal
/// message naming the object.
fn refusal(kind: &'static str) -> impl Fn(String, &str) -> PolicyValidation {
    move |expression, what| PolicyValidation {
        expression,
        message: format!("dittofs-operator may not write this {kind}: {what}"),
        message_expression: format!(
            "'dittofs-operator may not write {kind} ' + request.namespace + '/' + \
             request.name + ': {what}'"
        ),
    }
}

/// A policy on `kind` (`kinds` in messages) that applies to the operator's own
/// ServiceAccount only (the certificate Job has no such right) and first of all
/// allows only objects it manages: labelled, and on an update the stored object
/// too, so that one it does not manage is never changed. With `deletes` (the
/// policy also matches DELETE, where only the stored object exists) only a
/// managed object may be deleted. Then `rules`.
fn operator_only(
    install: &Install,
    kind: &'static str,
    kinds: &str,
    deletes: bool,
    rules: Vec<PolicyValidation>,
) -> PolicyRules {
    let user = service_account_user(&install.namespace, &install.service_account());
    let (new, old) = (managed("object"), managed("oldObject"));
    let written = format!("({new}) && (request.operation != 'UPDATE' || ({old}))");
    let ours = if deletes {
        refusal(kind)(
            format!("request.operation == 'DELETE' ? ({old}) : ({written})"),
            &format!(
                "only {kinds} labelled {MANAGED_BY_LABEL}={MANAGED_BY} (also the stored one, on an update or a delete)"
            ),
        )
    } else {
        refusal(kind)(
            written,
            &format!(
                "only {kinds} labelled {MANAGED_BY_LABEL}={MANAGED_BY} (also the stored one, on an update)"
            ),
        )
    };
    PolicyRules {
        match_conditions: vec![(
            "operator-service-account".into(),
            format!("request.userInfo.username == '{user}'"),
        )],
        variables: Vec::new(),
        validations: std::iter::once(ours).chain(rules).collect(),
    }
}

/// The CEL of the StatefulSet policy for `install`: only the operator itself writes
/// StatefulSets (the certificate Job has no such right).
pub fn stateful_set_rules(install: &Install) -> PolicyRules {
    let pod = "object.spec.template.spec";
    let validation = refusal("StatefulSet");
    operator_only(
        install,
        "StatefulSet",
        "StatefulSets",
        false,
        vec![
            validation(
                format!(
                    "(!has({pod}.serviceAccountName) || {pod}.serviceAccountName == 'default') && \
                     (!has({pod}.serviceAccount) || {pod}.serviceAccount == 'default') && \
                     has({pod}.automountServiceAccountToken) && \
                     {pod}.automountServiceAccountToken == false"
                ),
                "the pod must run as the default ServiceAccount of its namespace, without a token",
            ),
            validation(
                format!(
                    "!(has({pod}.hostNetwork) && {pod}.hostNetwork) && \
                     !(has({pod}.hostPID) && {pod}.hostPID) && \
                     !(has({pod}.hostIPC) && {pod}.hostIPC)"
                ),
                "no host network, PID or IPC namespace",
            ),
            validation(
                format!(
                    "!has({pod}.volumes) || {pod}.volumes.all(v, has(v.configMap) || has(v.secret) || has(v.emptyDir))"
                ),
                "only ConfigMap, Secret and emptyDir volumes (no hostPath, no projected token, no existing claim)",
            ),
            validation(
                "!has(object.spec.volumeClaimTemplates) || \
                 object.spec.volumeClaimTemplates.all(t, !has(t.spec.volumeName) && \
                 !has(t.spec.dataSource) && !has(t.spec.dataSourceRef) && !has(t.spec.selector) && \
                 (!has(t.spec.volumeMode) || t.spec.volumeMode == 'Filesystem'))"
                    .into(),
                "claim templates must ask for a new filesystem volume (no volumeName, selector, data source or block mode)",
            ),
            validation(
                format!(
                    "(!has({pod}.securityContext) || ({confined} && \
                     (!has({pod}.securityContext.sysctls) || \
                     {pod}.securityContext.sysctls.all(s, s.name in {sysctls})))) && \
                     (!has(object.spec.template.metadata) || \
                     !has(object.spec.template.metadata.annotations) || \
                     object.spec.template.metadata.annotations.all(k, \
                     !k.startsWith('container.apparmor.security.beta.kubernetes.io/') || \
                     object.spec.template.metadata.annotations[k] != 'unconfined'))",
                    confined = confined(&format!("{pod}.securityContext")),
                    sysctls = cel_list(&SAFE_SYSCTLS),
                ),
                "the pod security context must stay within Pod Security restricted (SELinux type, seccomp and AppArmor confined, no root user, safe sysctls only)",
            ),
            validation(
                format!(
                    "({}) && ({}) && ({})",
                    unprivileged("containers"),
                    unprivileged("initContainers"),
                    unprivileged("ephemeralContainers")
                ),
                "containers must not be privileged, must set allowPrivilegeEscalation: false and may add no capability but NET_BIND_SERVICE",
            ),
        ],
    )
}

/// The CEL of the NetworkPolicy policy for `install`: only the operator itself writes
/// NetworkPolicies (the certificate Job has no such right). It allows the shape
/// `resources::network_policy` builds and nothing wider: ingress to our server pods.
pub fn network_policy_rules(install: &Install) -> PolicyRules {
    let spec = "object.spec";
    let selector = "object.spec.podSelector";
    // On DELETE there is no new object: only `operator_only`'s check applies.
    let refused = refusal("NetworkPolicy");
    let validation = |expression: String, what: &str| {
        refused(
            format!("request.operation == 'DELETE' || ({expression})"),
            what,
        )
    };
    // `matchLabels[key] == value` for the labels every server pod of ours carries
    // (`resources::labels::labels(instance, "server")`).
    let label_is = |key: &str, value: &str| {
        format!("'{key}' in {selector}.matchLabels && {selector}.matchLabels['{key}'] == '{value}'")
    };
    operator_only(
        install,
        "NetworkPolicy",
        "NetworkPolicies",
        true,
        vec![
            // Only pods of our server StatefulSets: all of their fixed labels and an
            // instance. matchExpressions can only narrow a selector, but the builder
            // never sets them, so none are allowed. An empty selector (every pod of
            // the namespace) has no matchLabels and is refused.
            validation(
                format!(
                    "has({selector}) && has({selector}.matchLabels) && \
                     (!has({selector}.matchExpressions) || size({selector}.matchExpressions) == 0) && \
                     {managed_by} && {component} && {name} && \
                     'app.kubernetes.io/instance' in {selector}.matchLabels",
                    managed_by = label_is(MANAGED_BY_LABEL, MANAGED_BY),
                    component = label_is("app.kubernetes.io/component", "server"),
                    name = label_is("app.kubernetes.io/name", "dittofs"),
                ),
                &format!(
                    "the podSelector must select only DittoFS server pods by matchLabels \
                     ({MANAGED_BY_LABEL}={MANAGED_BY}, app.kubernetes.io/component=server, \
                     app.kubernetes.io/name=dittofs and an app.kubernetes.io/instance), with no matchExpressions"
                ),
            ),
            // The operator never restricts or opens egress.
            validation(
                format!(
                    "has({spec}.policyTypes) && size({spec}.policyTypes) == 1 && \
                     {spec}.policyTypes[0] == 'Ingress' && !has({spec}.egress)"
                ),
                "policyTypes must be exactly [Ingress], with no egress rules",
            ),
            // Rules open the server's ports to every source, as the builder does; a
            // `from` (ipBlock, namespaceSelector, podSelector) is never built, so a
            // stolen token cannot open the server to peers of its choosing either.
            // The builder always lists ports (a rule without any opens every port);
            // which ports is not checked: the selected pods are ours either way.
            validation(
                format!(
                    "!has({spec}.ingress) || {spec}.ingress.all(r, !has(r.from) && \
                     has(r.ports) && size(r.ports) > 0)"
                ),
                "ingress rules must list ports and have no from (peers are never chosen)",
            ),
        ],
    )
}

fn meta(name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(
            [(
                "app.kubernetes.io/name".to_string(),
                "dittofs-operator".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

/// Name of the Secret policy and of its binding.
pub fn secret_policy_name(install: &Install) -> String {
    format!("{}-secrets", install.release)
}

/// The Secret policy of `install`.
pub fn secret_policy(install: &Install) -> ValidatingAdmissionPolicy {
    policy(
        secret_policy_name(install),
        "",
        "secrets",
        &["CREATE", "UPDATE"],
        secret_rules(install),
    )
}

/// Name of the StatefulSet policy and of its binding.
pub fn stateful_set_policy_name(install: &Install) -> String {
    format!("{}-statefulsets", install.release)
}

/// The StatefulSet policy of `install`.
pub fn stateful_set_policy(install: &Install) -> ValidatingAdmissionPolicy {
    policy(
        stateful_set_policy_name(install),
        "apps",
        "statefulsets",
        &["CREATE", "UPDATE"],
        stateful_set_rules(install),
    )
}

/// Name of the NetworkPolicy policy and of its binding.
pub fn network_policy_policy_name(install: &Install) -> String {
    format!("{}-networkpolicies", install.release)
}

/// The NetworkPolicy policy of `install`.
pub fn network_policy_policy(install: &Install) -> ValidatingAdmissionPolicy {
    policy(
        network_policy_policy_name(install),
        "networking.k8s.io",
        "networkpolicies",
        // RBAC lets the operator delete NetworkPolicies (one turned off): only its own.
        &["CREATE", "UPDATE", "DELETE"],
        network_policy_rules(install),
    )
}

/// A policy on `operations` of `group`/v1 `resource`.
fn policy(
    name: String,
    group: &str,
    resource: &str,
    operations: &[&str],
    rules: PolicyRules,
) -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: meta(name),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                match_policy: Some("Equivalent".into()),
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![group.into()]),
                    api_versions: Some(vec!["v1".into()]),
                    operations: Some(operations.iter().map(|o| o.to_string()).collect()),
                    resources: Some(vec![resource.into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            match_conditions: Some(
                rules
                    .match_conditions
                    .into_iter()
                    .map(|(name, expression)| MatchCondition { name, expression })
                    .collect(),
            ),
            variables: (!rules.variables.is_empty()).then(|| {
                rules
                    .variables
                    .into_iter()
                    .map(|(name, expression)| Variable { name, expression })
                    .collect()
            }),
            validations: Some(
                rules
                    .validations
                    .into_iter()
                    .map(|v| Validation {
                        expression: v.expression,
                        message: Some(v.message),
                        message_expression: Some(v.message_expression),
                        reason: Some("Forbidden".into()),
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The binding that enforces the Secret policy everywhere (`Deny`).
pub fn secret_policy_binding(install: &Install) -> ValidatingAdmissionPolicyBinding {
    binding(secret_policy_name(install))
}

/// The binding that enforces the StatefulSet policy everywhere (`Deny`).
pub fn stateful_set_policy_binding(install: &Install) -> ValidatingAdmissionPolicyBinding {
    binding(stateful_set_policy_name(install))
}

/// The binding that enforces the NetworkPolicy policy everywhere (`Deny`).
pub fn network_policy_policy_binding(install: &Install) -> ValidatingAdmissionPolicyBinding {
    binding(network_policy_policy_name(install))
}

fn binding(name: String) -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: meta(name.clone()),
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(name),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    }
}

/// The policies and their bindings as a YAML stream.
pub fn policy_yaml(install: &Install) -> Result<String, serde_yaml_ng::Error> {
    Ok([
        serde_yaml_ng::to_string(&secret_policy(install))?,
        serde_yaml_ng::to_string(&secret_policy_binding(install))?,
        serde_yaml_ng::to_string(&stateful_set_policy(install))?,
        serde_yaml_ng::to_string(&stateful_set_policy_binding(install))?,
        serde_yaml_ng::to_string(&network_policy_policy(install))?,
        serde_yaml_ng::to_string(&network_policy_policy_binding(install))?,
    ]
    .join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_matches_only_secret_writes_of_our_service_accounts() {
        let install = Install::plain();
        let policy = secret_policy(&install);
        let spec = policy.spec.unwrap();
        assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
        let rule = &spec.match_constraints.unwrap().resource_rules.unwrap()[0];
        assert_eq!(
            rule.resources.as_deref(),
            Some(&["secrets".to_string()][..])
        );
        assert_eq!(
            rule.operations.as_deref(),
            Some(&["CREATE".to_string(), "UPDATE".to_string()][..])
        );
        let condition = &spec.match_conditions.unwrap()[0].expression;
        assert!(condition.contains("system:serviceaccount:dittofs-system:dittofs-operator'"));
        assert!(condition.contains("system:serviceaccount:dittofs-system:dittofs-operator-certs'"));
        let binding = secret_policy_binding(&install).spec.unwrap();
        assert_eq!(binding.validation_actions, Some(vec!["Deny".to_string()]));
        assert_eq!(binding.policy_name, policy.metadata.name);
    }

    #[test]
    fn the_network_policy_policy_matches_only_network_policy_writes_of_the_operator() {
        let install = Install::plain();
        let policy = network_policy_policy(&install);
        assert_eq!(
            policy.metadata.name.as_deref(),
            Some("dittofs-operator-networkpolicies")
        );
        let spec = policy.spec.unwrap();
        assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
        let rule = &spec.match_constraints.unwrap().resource_rules.unwrap()[0];
        assert_eq!(
            rule.api_groups.as_deref(),
            Some(&["networking.k8s.io".to_string()][..])
        );
        assert_eq!(
            rule.resources.as_deref(),
            Some(&["networkpolicies".to_string()][..])
        );
        assert_eq!(
            rule.operations.as_deref(),
            Some(
                &[
                    "CREATE".to_string(),
                    "UPDATE".to_string(),
                    "DELETE".to_string()
                ][..]
            )
        );
        let conditions = spec.match_conditions.unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].expression,
            "request.userInfo.username == 'system:serviceaccount:dittofs-system:dittofs-operator'"
        );
        let binding = network_policy_policy_binding(&install).spec.unwrap();
        assert_eq!(binding.validation_actions, Some(vec!["Deny".to_string()]));
        assert_eq!(binding.policy_name, policy.metadata.name);
        let yaml = policy_yaml(&install).unwrap();
        assert!(
            yaml.contains("name: dittofs-operator-networkpolicies"),
            "{yaml}"
        );
    }

    #[test]
    fn helm_names_follow_the_release() {
        let yaml = policy_yaml(&Install::helm()).unwrap();
        assert!(
            yaml.contains("system:serviceaccount:{{ .Release.Namespace }}:{{ .Release.Name }}'")
        );
        assert!(yaml.contains("{{ .Release.Name }}-webhook-tls'"));
        assert!(
            yaml.contains("name: '{{ .Release.Name }}-secrets'"),
            "{yaml}"
        );
    }
}
