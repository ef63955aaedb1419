//! The admission policies (Secrets, StatefulSets, NetworkPolicies), evaluated: the CEL of the committed `deploy/` copy (which
//! `tests/generated.rs` keeps equal to src/policy.rs) runs against sample admission
//! requests with the `cel` interpreter, the way the API server runs it: match
//! conditions first, then the variables in order, then every validation.
//!
//! The cel crate implements the CEL language, not Kubernetes' type-checked
//! environment; the expressions use only the common subset (field access, `has`, `in`
//! on maps, string comparison and concatenation, `?:`), and the needs-cluster test in
//! `tests/policy_cluster.rs` runs them on a real API server.

mod support;

use std::collections::HashMap;
use std::path::Path;

use dittofs_operator::policy::{
    PolicyRules, PolicyValidation, network_policy_rules, secret_rules, stateful_set_rules,
};
use dittofs_operator::rbac::Install;
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use serde::Deserialize;
use serde_json::{Value, json};

/// The policy `name` as committed in deploy/.
fn committed(name: &str) -> PolicyRules {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/admission-policy.yaml"),
    )
    .expect("deploy/admission-policy.yaml");
    let policy = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .find(|v| v["kind"] == "ValidatingAdmissionPolicy" && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("policy {name}"));
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(policy).expect("typed policy");
    let spec = policy.spec.expect("spec");
    PolicyRules {
        match_conditions: spec
            .match_conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.expression))
            .collect(),
        variables: spec
            .variables
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.expression))
            .collect(),
        validations: spec
            .validations
            .unwrap_or_default()
            .into_iter()
            .map(|v| PolicyValidation {
                expression: v.expression,
                message: v.message.unwrap_or_default(),
                message_expression: v.message_expression.unwrap_or_default(),
            })
            .collect(),
    }
}

/// The Secret policy as committed in deploy/.
fn committed_rules() -> PolicyRules {
    committed("dittofs-operator-secrets")
}

fn eval(expression: &str, vars: &HashMap<&str, Value>) -> cel::Value {
    let program = cel::Program::compile(expression)
        .unwrap_or_else(|e| panic!("{expression}: does not compile: {e:?}"));
    let mut context = cel::Context::default();
    for (name, value) in vars {
        context
            .add_variable(*name, cel::to_value(value).expect("JSON to CEL"))
            .expect("variable");
    }
    program
        .execute(&context)
        .unwrap_or_else(|e| panic!("{expression}: {e:?} with {vars:?}"))
}

fn eval_bool(expression: &str, vars: &HashMap<&str, Value>) -> bool {
    match eval(expression, vars) {
        cel::Value::Bool(b) => b,
        other => panic!("{expression}: not a bool: {other:?}"),
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    /// The policy does not apply to this user.
    NotMatched,
    Allowed,
    /// Refused, with the message the API server would show.
    Denied(String),
}

/// Evaluate `rules` like the API server.
fn admit(rules: &PolicyRules, request: Value, object: Value, old_object: Value) -> Verdict {
    let mut vars: HashMap<&str, Value> = HashMap::from([
        ("request", request),
        ("object", object),
        ("oldObject", old_object),
    ]);
    if !rules
        .match_conditions
        .iter()
        .all(|(_, expression)| eval_bool(expression, &vars))
    {
        return Verdict::NotMatched;
    }
    let mut variables = serde_json::Map::new();
    for (name, expression) in &rules.variables {
        vars.insert("variables", Value::Object(variables.clone()));
        variables.insert(name.clone(), json!(eval_bool(expression, &vars)));
    }
    vars.insert("variables", Value::Object(variables));
    for v in &rules.validations {
        if !eval_bool(&v.expression, &vars) {
            return Verdict::Denied(match eval(&v.message_expression, &vars) {
                cel::Value::String(s) => s.to_string(),
                _ => v.message.clone(),
            });
        }
    }
    Verdict::Allowed
}

const OPERATOR: &str = "system:serviceaccount:dittofs-system:dittofs-operator";
const CERTS_JOB: &str = "system:serviceaccount:dittofs-system:dittofs-operator-certs";

fn request(user: &str, operation: &str, namespace: &str) -> Value {
    json!({"operation": operation, "namespace": namespace, "userInfo": {"username": user}})
}

fn secret(namespace: &str, name: &str, type_: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "type": type_, "data": {"k": "dg=="}})
}

fn managed() -> Value {
    json!({"app.kubernetes.io/managed-by": "dittofs-operator", "app.kubernetes.io/instance": "d"})
}

fn create(user: &str, object: Value) -> Verdict {
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    admit(
        &committed_rules(),
        request(user, "CREATE", &ns),
        object,
        Value::Null,
    )
}

fn update(user: &str, old: Value, new: Value) -> Verdict {
    let ns = new["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    admit(&committed_rules(), request(user, "UPDATE", &ns), new, old)
}

fn denied_saying(verdict: Verdict, words: &[&str]) {
    let Verdict::Denied(message) = verdict else {
        panic!("expected a denial, got {verdict:?}");
    };
    for w in words {
        assert!(message.contains(w), "{message:?} should contain {w:?}");
    }
}

#[test]
fn the_committed_cel_is_what_the_generator_produces() {
    assert_eq!(committed_rules(), secret_rules(&Install::plain()));
}

#[test]
fn a_token_secret_is_never_created() {
    // The escalation of issue 9: a token Secret for a powerful ServiceAccount.
    let mut token = secret(
        "kube-system",
        "gc-token",
        "kubernetes.io/service-account-token",
        json!({}),
    );
    token["metadata"]["annotations"] =
        json!({"kubernetes.io/service-account.name": "generic-garbage-collector"});
    denied_saying(
        create(OPERATOR, token.clone()),
        &[
            "kube-system/gc-token",
            "kubernetes.io/service-account-token",
            "token",
        ],
    );
    // Not even with our label, nor by the certificate Job's account.
    token["metadata"]["labels"] = managed();
    denied_saying(create(OPERATOR, token.clone()), &["may not create"]);
    denied_saying(create(CERTS_JOB, token), &["may not create"]);
}

#[test]
fn only_labelled_opaque_secrets_are_created() {
    denied_saying(
        create(OPERATOR, secret("team", "plain", "Opaque", json!({}))),
        &[
            "team/plain",
            "Opaque",
            "app.kubernetes.io/managed-by=dittofs-operator",
        ],
    );
    let other_manager = json!({"app.kubernetes.io/managed-by": "Helm"});
    denied_saying(
        create(OPERATOR, secret("team", "helm", "Opaque", other_manager)),
        &["team/helm"],
    );
    let mut no_labels = secret("team", "bare", "Opaque", json!({}));
    no_labels["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    denied_saying(create(OPERATOR, no_labels), &["team/bare"]);
    assert_eq!(
        create(
            OPERATOR,
            secret("team", "d-jwt-secret", "Opaque", managed())
        ),
        Verdict::Allowed
    );
}

#[test]
fn the_webhook_tls_secret_only_by_name_and_namespace() {
    let tls = |ns: &str, name: &str| secret(ns, name, "kubernetes.io/tls", json!({}));
    assert_eq!(
        create(
            OPERATOR,
            tls("dittofs-system", "dittofs-operator-webhook-tls")
        ),
        Verdict::Allowed
    );
    assert_eq!(
        create(
            CERTS_JOB,
            tls("dittofs-system", "dittofs-operator-webhook-tls")
        ),
        Verdict::Allowed
    );
    denied_saying(
        create(OPERATOR, tls("team", "dittofs-operator-webhook-tls")),
        &["team/dittofs-operator-webhook-tls", "kubernetes.io/tls"],
    );
    denied_saying(
        create(OPERATOR, tls("dittofs-system", "another-tls")),
        &["dittofs-system/another-tls"],
    );
    // Its name with another type is not the TLS Secret.
    denied_saying(
        create(
            OPERATOR,
            secret(
                "dittofs-system",
                "dittofs-operator-webhook-tls",
                "kubernetes.io/service-account-token",
                json!({}),
            ),
        ),
        &["service-account-token"],
    );
    // Rotation: the TLS Secret replaced by itself.
    let stored = tls("dittofs-system", "dittofs-operator-webhook-tls");
    assert_eq!(update(OPERATOR, stored.clone(), stored), Verdict::Allowed);
}

#[test]
fn a_managed_secret_can_be_released_but_a_foreign_one_never_changed() {
    let mut ours = secret("team", "d-jwt-secret", "Opaque", managed());
    ours["metadata"]["ownerReferences"] = json!([{"apiVersion": "dittofs.dittofs.com/v1alpha1",
        "kind": "DittoServer", "name": "d", "uid": "u", "controller": true}]);
    // Release: our label and owner reference removed.
    let mut released = ours.clone();
    released["metadata"]["labels"] = json!({"app.kubernetes.io/instance": "d"});
    released["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ownerReferences");
    assert_eq!(update(OPERATOR, ours.clone(), released), Verdict::Allowed);
    // An ordinary update of a managed Secret.
    assert_eq!(
        update(OPERATOR, ours.clone(), ours.clone()),
        Verdict::Allowed
    );

    // A Secret the user made: never changed, not even by adding our label to it.
    let foreign = secret("team", "user-creds", "Opaque", json!({}));
    let mut claimed = foreign.clone();
    claimed["metadata"]["labels"] = managed();
    denied_saying(
        update(OPERATOR, foreign.clone(), claimed),
        &["may not change", "team/user-creds"],
    );
    denied_saying(
        update(OPERATOR, foreign.clone(), foreign),
        &["team/user-creds"],
    );
    // A managed Secret turned into a token Secret (the API server also refuses a type
    // change; the policy does not rely on it).
    let mut turned = ours.clone();
    turned["type"] = json!("kubernetes.io/service-account-token");
    denied_saying(update(OPERATOR, ours, turned), &["service-account-token"]);
}

#[test]
fn other_users_are_not_matched() {
    let token = secret(
        "kube-system",
        "t",
        "kubernetes.io/service-account-token",
        json!({}),
    );
    for user in [
        "kubernetes-admin",
        "system:serviceaccount:dittofs-system:other",
        "system:serviceaccount:team:dittofs-operator",
    ] {
        assert_eq!(create(user, token.clone()), Verdict::NotMatched, "{user}");
    }
}

#[test]
fn names_follow_the_install() {
    // Another release in another namespace: its own accounts and TLS Secret only.
    let install = Install {
        release: "files".into(),
        namespace: "storage".into(),
        scope: Default::default(),
    };
    let rules = secret_rules(&install);
    let tls = secret(
        "storage",
        "files-webhook-tls",
        "kubernetes.io/tls",
        json!({}),
    );
    let admit_create = |user: &str, object: Value| {
        admit(
            &rules,
            request(user, "CREATE", "storage"),
            object,
            Value::Null,
        )
    };
    assert_eq!(
        admit_create("system:serviceaccount:storage:files", tls.clone()),
        Verdict::Allowed
    );
    assert_eq!(
        admit_create(OPERATOR, tls.clone()),
        Verdict::NotMatched,
        "the default install's account is not this one"
    );
    let wrong = secret(
        "storage",
        "dittofs-operator-webhook-tls",
        "kubernetes.io/tls",
        json!({}),
    );
    assert!(matches!(
        admit_create("system:serviceaccount:storage:files-certs", wrong),
        Verdict::Denied(_)
    ));
}

// --- the StatefulSet policy -----------------------------------------------------

/// The StatefulSet policy as committed in deploy/.
fn committed_stateful_set_rules() -> PolicyRules {
    committed("dittofs-operator-statefulsets")
}

/// The StatefulSet the operator builds for a DittoServer with `spec`.
fn built_stateful_set(spec: Value) -> Value {
    let ds = serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": "d", "namespace": "team", "uid": "u"},
        "spec": spec,
    }))
    .expect("DittoServer");
    serde_json::to_value(support::built_stateful_set(&ds)).expect("JSON")
}

fn write_stateful_set(user: &str, old: Option<Value>, new: Value) -> Verdict {
    let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
    let mut request = request(user, operation, "team");
    request["name"] = new["metadata"]["name"].clone();
    admit(
        &committed_stateful_set_rules(),
        request,
        new,
        old.unwrap_or(Value::Null),
    )
}

/// Every DittoServer spec of `samples/`, and variants with what a user may set.
fn sample_specs() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut specs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("samples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("sample");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc = Value::deserialize(doc).expect("YAML");
            if doc["kind"] == "DittoServer" {
                specs.push((path.display().to_string(), doc["spec"].clone()));
            }
        }
    }
    assert!(specs.len() >= 6, "{specs:?}");
    specs.push((
        "restricted extras".into(),
        json!({"storage": {"metadataSize": "1Gi"},
               "securityContext": {"readOnlyRootFilesystem": true, "capabilities": {"add": ["NET_BIND_SERVICE"]}},
               "podSecurityContext": {"runAsUser": 1000, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"},
                                      "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
                                      "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}}),
    ));
    specs
}

#[test]
fn the_committed_stateful_set_cel_is_what_the_generator_produces() {
    assert_eq!(
        committed_stateful_set_rules(),
        stateful_set_rules(&Install::plain())
    );
}

#[test]
fn every_stateful_set_the_operator_builds_is_allowed() {
    for (name, spec) in sample_specs() {
        let sts = built_stateful_set(spec);
        assert_eq!(
            write_stateful_set(OPERATOR, None, sts.clone()),
            Verdict::Allowed,
            "create, {name}"
        );
        assert_eq!(
            write_stateful_set(OPERATOR, Some(sts.clone()), sts),
            Verdict::Allowed,
            "update, {name}"
        );
    }
}

#[test]
fn a_stolen_token_cannot_run_a_powerful_pod_through_a_stateful_set() {
    let ours = built_stateful_set(json!({"storage": {"metadataSize": "1Gi"}}));
    let pod = "/spec/template/spec";
    type Change<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let escalations: Vec<(&str, Change<'_>)> = vec![
        (
            "a powerful ServiceAccount",
            Box::new(|s: &mut Value| {
                s.pointer_mut(pod).unwrap()["serviceAccountName"] =
                    json!("clusterrole-aggregation-controller");
            }),
        ),
        (
            "a mounted token",
            Box::new(|s: &mut Value| {
                s.pointer_mut(pod).unwrap()["automountServiceAccountToken"] = json!(true);
            }),
        ),
        (
            "the host network",
            Box::new(|s: &mut Value| {
                s.pointer_mut(pod).unwrap()["hostNetwork"] = json!(true);
            }),
        ),
        (
            "the host PID namespace",
            Box::new(|s: &mut Value| {
                s.pointer_mut(pod).unwrap()["hostPID"] = json!(true);
            }),
        ),
        (
            "a hostPath volume",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/volumes"))
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "root", "hostPath": {"path": "/"}}));
            }),
        ),
        (
            "a projected token",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/volumes")).unwrap().as_array_mut().unwrap()
                .push(json!({"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}));
            }),
        ),
        (
            "a privileged container",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["privileged"] = json!(true);
            }),
        ),
        (
            "privilege escalation",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["allowPrivilegeEscalation"] = json!(true);
            }),
        ),
        (
            "an added capability",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["capabilities"]["add"] = json!(["SYS_ADMIN"]);
            }),
        ),
        (
            "a privileged init container",
            Box::new(|s: &mut Value| {
                s.pointer_mut(pod).unwrap()["initContainers"] = json!([{"name": "x", "image": "busybox", "securityContext": {"privileged": true, "allowPrivilegeEscalation": true}}]);
            }),
        ),
        (
            "a container without a security context",
            Box::new(|s: &mut Value| {
                s.pointer_mut(pod).unwrap()["initContainers"] =
                    json!([{"name": "x", "image": "busybox"}]);
            }),
        ),
        (
            "an existing claim",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/volumes")).unwrap().as_array_mut().unwrap()
                .push(json!({"name": "other", "persistentVolumeClaim": {"claimName": "someone-elses"}}));
            }),
        ),
        (
            "a claim bound to a chosen volume",
            Box::new(|s: &mut Value| {
                s["spec"]["volumeClaimTemplates"][0]["spec"]["volumeName"] = json!("node-local-pv");
            }),
        ),
        (
            "a claim in block mode",
            Box::new(|s: &mut Value| {
                s["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] = json!("Block");
            }),
        ),
        (
            "a raw block device",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0")).unwrap()["volumeDevices"] =
                    json!([{"name": "metadata", "devicePath": "/dev/xvda"}]);
            }),
        ),
        (
            "a host port",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/ports/0"))
                    .unwrap()["hostPort"] = json!(2049);
            }),
        ),
        (
            "root in a container",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["runAsUser"] = json!(0);
            }),
        ),
        (
            "root for the pod",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/securityContext")).unwrap()["runAsUser"] = json!(0);
            }),
        ),
        (
            "capabilities not dropped",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["capabilities"]["drop"] = json!([]);
            }),
        ),
        (
            "an unmasked /proc",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["procMount"] = json!("Unmasked");
            }),
        ),
        (
            "the spc_t SELinux type",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["seLinuxOptions"] = json!({"type": "spc_t"});
            }),
        ),
        (
            "unconfined seccomp",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/securityContext")).unwrap()["seccompProfile"] =
                    json!({"type": "Unconfined"});
            }),
        ),
        (
            "unconfined AppArmor",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["appArmorProfile"] = json!({"type": "Unconfined"});
            }),
        ),
        (
            "the AppArmor annotation",
            Box::new(|s: &mut Value| {
                s["spec"]["template"]["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/dittofs"] =
                    json!("unconfined");
            }),
        ),
        (
            "an unsafe sysctl",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/securityContext")).unwrap()["sysctls"] =
                    json!([{"name": "kernel.msgmax", "value": "1"}]);
            }),
        ),
        (
            "root allowed",
            Box::new(|s: &mut Value| {
                s.pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap()["runAsNonRoot"] = json!(false);
            }),
        ),
        (
            "no seccomp profile",
            Box::new(|s: &mut Value| {
                let sc = s
                    .pointer_mut(&format!("{pod}/containers/0/securityContext"))
                    .unwrap();
                sc.as_object_mut().unwrap().remove("seccompProfile");
                s.pointer_mut(&format!("{pod}/securityContext"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("seccompProfile");
            }),
        ),
        (
            "no managed-by label",
            Box::new(|s: &mut Value| {
                s["metadata"]["labels"] = json!({"app": "other"});
            }),
        ),
    ];
    for (what, change) in &escalations {
        let mut sts = ours.clone();
        change(&mut sts);
        let verdict = write_stateful_set(OPERATOR, None, sts.clone());
        assert!(
            matches!(verdict, Verdict::Denied(_)),
            "create with {what}: {verdict:?}"
        );
        let verdict = write_stateful_set(OPERATOR, Some(ours.clone()), sts);
        assert!(
            matches!(verdict, Verdict::Denied(_)),
            "update to {what}: {verdict:?}"
        );
    }
    // Taking over a StatefulSet the operator does not manage (kube-system's, say).
    let mut foreign = ours.clone();
    foreign["metadata"]["labels"] = json!({"app": "coredns"});
    denied_saying(
        write_stateful_set(OPERATOR, Some(foreign), ours.clone()),
        &["StatefulSet team/d", "managed-by"],
    );
    // Other users are not concerned.
    assert_eq!(
        write_stateful_set("system:admin", None, {
            let mut s = ours.clone();
            s.pointer_mut(pod).unwrap()["hostNetwork"] = json!(true);
            s
        }),
        Verdict::NotMatched
    );
    assert_eq!(
        write_stateful_set(CERTS_JOB, None, ours),
        Verdict::NotMatched
    );
}

// --- the NetworkPolicy policy ---------------------------------------------------

/// The NetworkPolicy policy as committed in deploy/.
fn committed_network_policy_rules() -> PolicyRules {
    committed("dittofs-operator-networkpolicies")
}

/// The NetworkPolicy the operator builds for a DittoServer `d` in `team` with `spec`.
fn built_network_policy(spec: Value) -> Value {
    let ds = serde_json::from_value(json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": "d", "namespace": "team", "uid": "u"},
        "spec": spec,
    }))
    .expect("DittoServer");
    serde_json::to_value(support::built_network_policy(&ds).expect("networkPolicy.enabled"))
        .expect("JSON")
}

fn write_network_policy(user: &str, old: Option<Value>, new: Value) -> Verdict {
    let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
    let mut request = request(user, operation, "team");
    request["name"] = new["metadata"]["name"].clone();
    admit(
        &committed_network_policy_rules(),
        request,
        new,
        old.unwrap_or(Value::Null),
    )
}

#[test]
fn the_committed_network_policy_cel_is_what_the_generator_produces() {
    assert_eq!(
        committed_network_policy_rules(),
        network_policy_rules(&Install::plain())
    );
}

#[test]
fn every_network_policy_the_operator_builds_is_allowed() {
    for (name, spec) in sample_specs() {
        let policy = built_network_policy(spec);
        assert_eq!(
            write_network_policy(OPERATOR, None, policy.clone()),
            Verdict::Allowed,
            "create, {name}: {policy}"
        );
        assert_eq!(
            write_network_policy(OPERATOR, Some(policy.clone()), policy),
            Verdict::Allowed,
            "update, {name}"
        );
    }
}

#[test]
fn a_stolen_token_cannot_open_other_pods_through_a_network_policy() {
    let ours = built_network_policy(json!({"storage": {"metadataSize": "1Gi"}}));
    let selector = "/spec/podSelector";
    type Change<'a> = Box<dyn Fn(&mut Value) + 'a>;
    // (what, the words of the refusal, the change)
    let escalations: Vec<(&str, &[&str], Change<'_>)> = vec![
        (
            "no managed-by label",
            &["only NetworkPolicies labelled app.kubernetes.io/managed-by=dittofs-operator"],
            Box::new(|p: &mut Value| {
                p["metadata"]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/managed-by");
            }),
        ),
        (
            "no labels at all",
            &["only NetworkPolicies labelled"],
            Box::new(|p: &mut Value| {
                p["metadata"].as_object_mut().unwrap().remove("labels");
            }),
        ),
        (
            "a selector without the component label",
            &["podSelector"],
            Box::new(|p: &mut Value| {
                p.pointer_mut(&format!("{selector}/matchLabels"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/component");
            }),
        ),
        (
            "a selector for another component",
            &["podSelector"],
            Box::new(|p: &mut Value| {
                p.pointer_mut(&format!("{selector}/matchLabels")).unwrap()["app.kubernetes.io/component"] =
                    json!("database");
            }),
        ),
        (
            "a selector without the managed-by label",
            &["podSelector"],
            Box::new(|p: &mut Value| {
                p.pointer_mut(&format!("{selector}/matchLabels"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/managed-by");
            }),
        ),
        (
            "a selector without the name label",
            &["podSelector"],
            Box::new(|p: &mut Value| {
                p.pointer_mut(&format!("{selector}/matchLabels"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/name");
            }),
        ),
        (
            "a selector without an instance",
            &["podSelector"],
            Box::new(|p: &mut Value| {
                p.pointer_mut(&format!("{selector}/matchLabels"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/instance");
            }),
        ),
        (
            "a selector with matchExpressions",
            &["podSelector", "matchExpressions"],
            Box::new(|p: &mut Value| {
                p.pointer_mut(selector).unwrap()["matchExpressions"] = json!([
                    {"key": "app.kubernetes.io/instance", "operator": "Exists"}
                ]);
            }),
        ),
        (
            "an empty selector (every pod of the namespace)",
            &["podSelector"],
            Box::new(|p: &mut Value| {
                p["spec"]["podSelector"] = json!({});
            }),
        ),
        (
            "Egress in policyTypes",
            &["policyTypes", "egress"],
            Box::new(|p: &mut Value| {
                p["spec"]["policyTypes"] = json!(["Ingress", "Egress"]);
            }),
        ),
        (
            "policyTypes Egress only",
            &["policyTypes"],
            Box::new(|p: &mut Value| {
                p["spec"]["policyTypes"] = json!(["Egress"]);
            }),
        ),
        (
            "an egress section",
            &["no egress rules"],
            Box::new(|p: &mut Value| {
                p["spec"]["egress"] = json!([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]);
            }),
        ),
        (
            "a rule from an ipBlock",
            &["have no from"],
            Box::new(|p: &mut Value| {
                p["spec"]["ingress"][0]["from"] = json!([{"ipBlock": {"cidr": "203.0.113.0/24"}}]);
            }),
        ),
        (
            "a rule from every namespace",
            &["have no from"],
            Box::new(|p: &mut Value| {
                p["spec"]["ingress"][0]["from"] = json!([{"namespaceSelector": {}}]);
            }),
        ),
        (
            "a second rule from chosen pods",
            &["have no from"],
            Box::new(|p: &mut Value| {
                p["spec"]["ingress"].as_array_mut().unwrap().push(
                    json!({"from": [{"podSelector": {"matchLabels": {"app": "x"}}}],
                                 "ports": [{"protocol": "TCP", "port": 22}]}),
                );
            }),
        ),
        (
            "a rule without ports (every port)",
            &["must list ports"],
            Box::new(|p: &mut Value| {
                p["spec"]["ingress"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("ports");
            }),
        ),
    ];
    for (what, words, change) in &escalations {
        let mut policy = ours.clone();
        change(&mut policy);
        let mut refusal = vec!["may not write NetworkPolicy team/d-ingress"];
        refusal.extend_from_slice(words);
        denied_saying(
            write_network_policy(OPERATOR, None, policy.clone()),
            &refusal,
        );
        let verdict = write_network_policy(OPERATOR, Some(ours.clone()), policy);
        assert!(
            matches!(verdict, Verdict::Denied(_)),
            "update to {what}: {verdict:?}"
        );
    }
}

#[test]
fn a_network_policy_the_operator_does_not_manage_is_never_changed() {
    let ours = built_network_policy(json!({"storage": {"metadataSize": "1Gi"}}));
    // A NetworkPolicy of the namespace owner, even when rewritten into our shape.
    let mut foreign = ours.clone();
    foreign["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "Helm"});
    denied_saying(
        write_network_policy(OPERATOR, Some(foreign.clone()), ours.clone()),
        &[
            "NetworkPolicy team/d-ingress",
            "managed-by",
            "the stored one",
        ],
    );
    let mut unlabelled = ours.clone();
    unlabelled["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    denied_saying(
        write_network_policy(OPERATOR, Some(unlabelled), ours.clone()),
        &["NetworkPolicy team/d-ingress", "the stored one"],
    );
    // Ours stays ours: an update of a managed one to the same shape is allowed.
    assert_eq!(
        write_network_policy(OPERATOR, Some(ours.clone()), ours),
        Verdict::Allowed
    );
}

#[test]
fn other_users_write_network_policies_unmatched() {
    let mut wide_open = built_network_policy(json!({"storage": {"metadataSize": "1Gi"}}));
    wide_open["spec"]["podSelector"] = json!({});
    wide_open["spec"]["policyTypes"] = json!(["Ingress", "Egress"]);
    wide_open["spec"]["egress"] = json!([{}]);
    for user in [
        "kubernetes-admin",
        "system:admin",
        CERTS_JOB,
        "system:serviceaccount:team:dittofs-operator",
    ] {
        assert_eq!(
            write_network_policy(user, None, wide_open.clone()),
            Verdict::NotMatched,
            "{user}"
        );
    }
    assert!(matches!(
        write_network_policy(OPERATOR, None, wide_open),
        Verdict::Denied(_)
    ));
}

/// RBAC lets the operator delete NetworkPolicies (it removes its own when one is
/// turned off): the policy lets it delete only those it manages, never a tenant's
/// own (a default-deny policy, say), which would open the namespace's pods.
#[test]
fn the_operator_deletes_only_network_policies_it_manages() {
    let delete = |user: &str, stored: Value| {
        let mut request = request(user, "DELETE", "team");
        request["name"] = stored["metadata"]["name"].clone();
        admit(
            &committed_network_policy_rules(),
            request,
            Value::Null,
            stored,
        )
    };
    let ours = built_network_policy(json!({"storage": {"metadataSize": "1Gi"}}));
    assert_eq!(delete(OPERATOR, ours), Verdict::Allowed);
    let default_deny = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "team"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    match delete(OPERATOR, default_deny.clone()) {
        Verdict::Denied(message) => assert!(
            message.contains("team/default-deny")
                && message.contains("only NetworkPolicies labelled"),
            "{message}"
        ),
        other => panic!("a tenant's policy must not be deleted: {other:?}"),
    }
    // The committed policy matches DELETE at all.
    let policy = dittofs_operator::policy::network_policy_policy(&Install::plain());
    let operations = policy
        .spec
        .and_then(|s| s.match_constraints)
        .and_then(|m| m.resource_rules)
        .and_then(|r| r.into_iter().next())
        .and_then(|r| r.operations)
        .unwrap_or_default();
    assert!(operations.contains(&"DELETE".to_string()), "{operations:?}");
}
