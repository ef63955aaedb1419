//! The Helm chart, rendered and linted by Helm 4's own engine (helm-python-sdk, through
//! `tests/helm/render.py`), agrees with the generators and with the plain manifests.
//!
//! - Default values: every object of `deploy/`, `webhook/` and `certs/` (except the
//!   Namespace, which Helm's `--create-namespace` makes) is rendered, and nothing else;
//!   each is equal to its plain counterpart up to Helm's own labels and hook
//!   annotations, with container arguments compared as the binary parses them.
//! - Non-default values (another release name and namespace, one replica, no leader
//!   election, no NetworkPolicy, no certificate Job, other webhook settings): RBAC and
//!   the admission policy equal the generators for that install, names follow the
//!   release, the values reach the objects.
//! - `helm lint --strict` finds nothing above "info" with either set of values.
//!
//! Needs `python3`; skipped, with a message, only when there is none. The Helm SDK
//! (helm-python-sdk, pinned in [`HELM_PYTHON_SDK_VERSION`]) is installed on first use
//! into the cargo target directory (`<target>/helm-python-sdk-<version>/`, with
//! `pip install --target`: PyPI is needed once) and used from there only; when it
//! is not there and cannot be installed, the tests fail and say why.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use clap::Parser;
use dittofs_operator::cli::{Cli, Command as CliCommand};
use dittofs_operator::policy::{
    network_policy_policy, network_policy_policy_binding, secret_policy, secret_policy_binding,
    stateful_set_policy, stateful_set_policy_binding,
};
use dittofs_operator::rbac::{Install, cluster_role, role, served_roles};
use dittofs_operator::scope::WatchScope;
use serde::Deserialize;
use serde_json::{Value, json};

const CHART: &str = "charts/dittofs-operator";

struct Case {
    name: &'static str,
    release: &'static str,
    namespace: &'static str,
    values: Value,
}

fn default_case() -> Case {
    Case {
        name: "default",
        release: "dittofs-operator",
        namespace: "dittofs-system",
        values: json!({}),
    }
}

fn custom_case() -> Case {
    Case {
        name: "custom",
        release: "files",
        namespace: "storage",
        values: json!({
            "replicaCount": 1,
            "leaderElection": {"enabled": false},
            "logFormat": "text",
            "concurrency": 3,
            "image": {"tag": "9.9.9"},
            "networkPolicy": {"enabled": false},
            "webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 10, "certJob": {"enabled": false}},
        }),
    }
}

fn narrowed_network_case() -> Case {
    Case {
        name: "narrowed",
        release: "dittofs-operator",
        namespace: "dittofs-system",
        values: json!({"networkPolicy": {
            "webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
            "probesFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }}),
    }
}

struct Rendered {
    /// (kind, name) → object, per case.
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    lint: BTreeMap<String, Value>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The helm-python-sdk release the chart is rendered with (Helm 4's engine as a
/// library). The one place it is pinned.
const HELM_PYTHON_SDK_VERSION: &str = "0.2.2";

/// Where the pinned SDK is installed: `<target>/helm-python-sdk-<version>`
/// (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn sdk_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join(format!("helm-python-sdk-{HELM_PYTHON_SDK_VERSION}"))
}

/// Whether `import helm_python`, with `dir` on PYTHONPATH, finds the pinned version
/// inside `dir`.
fn sdk_imports_from(dir: &Path) -> bool {
    const CHECK: &str = "import os, sys\n\
        import helm_python\n\
        here = os.path.realpath(helm_python.__file__)\n\
        sys.exit(not (helm_python.__version__ == sys.argv[1]\n\
                      and here.startswith(os.path.realpath(sys.argv[2]) + os.sep)))";
    Command::new("python3")
        .env("PYTHONPATH", dir)
        .args(["-c", CHECK, HELM_PYTHON_SDK_VERSION])
        .arg(dir)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Install the pinned SDK into `dir` with pip (into a fresh directory renamed into
/// place once complete). A lock file keeps concurrent test processes from
/// installing at once; whoever comes second finds it installed.
fn install_sdk(dir: &Path) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let lock_path = parent.join("helm-python-sdk.lock");
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if sdk_imports_from(dir) {
        return Ok(());
    }
    let requirement = format!("helm-python-sdk=={HELM_PYTHON_SDK_VERSION}");
    let partial = parent.join(format!("helm-python-sdk-{HELM_PYTHON_SDK_VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("installing {requirement} into {} (once)", dir.display());
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-input"])
        .args(["--disable-pip-version-check", "--retries", "2", "--target"])
        .arg(&partial)
        .arg(&requirement)
        .output()
        .map_err(|e| format!("running python3 -m pip: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(format!(
            "the chart tests need {requirement} and could not install it into {} \
             (pip needs to reach PyPI once; afterwards it is used from there offline). \
             pip said: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&partial, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !sdk_imports_from(dir) {
        return Err(format!(
            "{requirement} was installed into {} but does not import from there",
            dir.display()
        ));
    }
    Ok(())
}

/// The directory the pinned SDK imports from, installed on the first call of the
/// process (every other test thread waits for that one).
fn helm_python_sdk() -> &'static Result<PathBuf, String> {
    static SDK: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SDK.get_or_init(|| {
        let dir = sdk_dir();
        if sdk_imports_from(&dir) {
            return Ok(dir);
        }
        install_sdk(&dir).map(|()| dir)
    })
}

/// Run `tests/helm/render.py` on `cases`; None when there is no python3.
fn run_render(cases: &[Case]) -> Option<std::process::Output> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed, so the chart cannot be rendered by Helm");
        return None;
    }
    let sdk = match helm_python_sdk() {
        Ok(dir) => dir,
        Err(why) => panic!("{why}"),
    };
    let spec: Vec<Value> = cases
        .iter()
        .map(|c| json!({"name": c.name, "release": c.release, "namespace": c.namespace, "values": c.values}))
        .collect();
    let out = Command::new("python3")
        .env("PYTHONPATH", sdk)
        .arg(root().join("tests/helm/render.py"))
        .arg(root().join(CHART))
        .arg(Value::Array(spec).to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.code() != Some(3),
        "{}: it was installed into {}; remove that directory to install it again",
        String::from_utf8_lossy(&out.stderr),
        sdk.display()
    );
    Some(out)
}

/// Render all cases once per test; None when there is no python3.
fn render(cases: &[Case]) -> Option<Rendered> {
    let out = run_render(cases)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm render failed: {stderr}");
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("render.py prints JSON");
    let namespaces: BTreeMap<&str, &str> = cases.iter().map(|c| (c.name, c.namespace)).collect();
    let mut rendered = Rendered {
        objects: BTreeMap::new(),
        lint: BTreeMap::new(),
    };
    for (case, result) in parsed["cases"].as_object().expect("cases") {
        let mut objects = BTreeMap::new();
        for (template, text) in result["manifests"].as_object().expect("manifests") {
            if template.ends_with("NOTES.txt") {
                continue;
            }
            for doc in yaml_docs(text.as_str().unwrap_or_default(), template) {
                let key = kind_name(&doc, namespaces[case.as_str()]);
                assert!(
                    objects.insert(key.clone(), doc).is_none(),
                    "{case}: {key:?} rendered twice"
                );
            }
        }
        rendered.objects.insert(case.clone(), objects);
        rendered.lint.insert(case.clone(), result["lint"].clone());
    }
    Some(rendered)
}

fn yaml_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// (kind, name) of `doc`; the name is `namespace/name` for an object outside the
/// release's namespace `home` (the Roles of served namespaces share one name).
fn kind_name(doc: &Value, home: &str) -> (String, String) {
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let name = match doc["metadata"]["namespace"].as_str() {
        Some(ns) if ns != home => format!("{ns}/{name}"),
        _ => name.to_string(),
    };
    (doc["kind"].as_str().unwrap_or_default().to_string(), name)
}

/// The plain manifests, by (kind, name).
fn plain_objects() -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for dir in ["deploy", "webhook", "certs"] {
        // Files only: deploy/namespaced/ is a variant the default values do not render.
        let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for doc in yaml_docs(&text, &file.display().to_string()) {
                if doc["kind"] == "Namespace" {
                    continue;
                }
                out.insert(kind_name(&doc, "dittofs-system"), doc);
            }
        }
    }
    out
}

/// Labels Helm adds that the plain manifests do not carry.
const CHART_ONLY_LABELS: &[&str] = &["app.kubernetes.io/instance", "helm.sh/chart"];

/// Drop what legitimately differs: object labels and annotations (Helm's labels, hook
/// annotations, comments), the release-instance label in selectors; container
/// arguments become what the binary parses from them.
fn normalize(mut doc: Value) -> Value {
    if let Some(meta) = doc["metadata"].as_object_mut() {
        meta.remove("labels");
        meta.remove("annotations");
    }
    strip_chart_labels(&mut doc);
    if let Some(pod) = doc.pointer_mut("/spec/template/spec") {
        for list in ["containers", "initContainers"] {
            for container in pod[list].as_array_mut().into_iter().flatten() {
                if let Some(args) = container.get("args").cloned() {
                    container["args"] = json!(parsed_args(&args));
                }
            }
        }
    }
    doc
}

fn strip_chart_labels(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in CHART_ONLY_LABELS {
                map.remove(*key);
            }
            if map.get("app.kubernetes.io/managed-by") == Some(&json!("Helm")) {
                map.remove("app.kubernetes.io/managed-by");
            }
            map.values_mut().for_each(strip_chart_labels);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_chart_labels),
        _ => {}
    }
}

/// The command the binary runs with `args` (defaults filled in by clap).
fn parsed_args(args: &Value) -> String {
    let mut argv = vec!["dittofs-operator".to_string()];
    argv.extend(
        args.as_array()
            .into_iter()
            .flatten()
            .map(|a| a.as_str().unwrap_or_default().to_string()),
    );
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    format!("{:?}", cli.command)
}

fn assert_lint_clean(rendered: &Rendered) {
    for (case, report) in &rendered.lint {
        assert_eq!(report["errors"], json!([]), "{case}: lint errors: {report}");
        for message in report["messages"].as_array().into_iter().flatten() {
            assert!(
                message["severity"].as_i64().unwrap_or(3) <= 1,
                "{case}: lint: {message}"
            );
        }
    }
}

#[test]
fn default_values_render_exactly_the_plain_manifests() {
    let Some(rendered) = render(&[default_case()]) else {
        return;
    };
    assert_lint_clean(&rendered);
    let chart = &rendered.objects["default"];
    let plain = plain_objects();
    let chart_keys: Vec<_> = chart.keys().collect();
    let plain_keys: Vec<_> = plain.keys().collect();
    assert_eq!(
        chart_keys, plain_keys,
        "the chart and deploy/+webhook/+certs/ install the same objects"
    );
    for (key, object) in &plain {
        let expected = normalize(object.clone());
        let got = normalize(chart[key].clone());
        assert!(
            expected == got,
            "{key:?} differs between the chart and the plain manifests:\nchart: {}\nplain: {}",
            serde_json::to_string_pretty(&got).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap()
        );
    }
}

#[test]
fn non_default_values_reach_the_objects_and_names_follow_the_release() {
    let case = custom_case();
    let Some(rendered) = render(&[custom_case()]) else {
        return;
    };
    assert_lint_clean(&rendered);
    let objects = &rendered.objects["custom"];
    let install = Install {
        release: case.release.into(),
        namespace: case.namespace.into(),
        scope: WatchScope::Cluster,
    };
    let get = |kind: &str, name: &str| -> &Value {
        objects
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("{kind} {name} rendered; have {:?}", objects.keys()))
    };

    // RBAC and policy: exactly the generators for this install.
    assert_eq!(
        get("ClusterRole", "files")["rules"],
        serde_json::to_value(cluster_role(&install).rules).unwrap()
    );
    let operator_role = get("Role", "files");
    assert_eq!(operator_role["metadata"]["namespace"], "storage");
    assert_eq!(
        operator_role["rules"],
        serde_json::to_value(role(&install).rules).unwrap()
    );
    for (kind, name) in [("ClusterRoleBinding", "files"), ("RoleBinding", "files")] {
        assert_eq!(
            get(kind, name)["subjects"],
            json!([{"kind": "ServiceAccount", "name": install.service_account(), "namespace": "storage"}])
        );
    }
    assert_eq!(
        get("ServiceAccount", &install.service_account())["metadata"]["namespace"],
        "storage"
    );
    for (name, policy, binding) in [
        (
            "files-secrets",
            serde_json::to_value(secret_policy(&install)).unwrap(),
            serde_json::to_value(secret_policy_binding(&install)).unwrap(),
        ),
        (
            "files-statefulsets",
            serde_json::to_value(stateful_set_policy(&install)).unwrap(),
            serde_json::to_value(stateful_set_policy_binding(&install)).unwrap(),
        ),
        (
            "files-networkpolicies",
            serde_json::to_value(network_policy_policy(&install)).unwrap(),
            serde_json::to_value(network_policy_policy_binding(&install)).unwrap(),
        ),
    ] {
        assert_eq!(get("ValidatingAdmissionPolicy", name), &policy);
        assert_eq!(get("ValidatingAdmissionPolicyBinding", name), &binding);
    }

    // The Deployment runs what the values say, with the names RBAC and policy assume.
    let deployment = get("Deployment", "files");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/dittofs/dittofs-operator:9.9.9");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        install.service_account()
    );
    let mut argv = vec!["dittofs-operator".to_string()];
    argv.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    let cli = Cli::try_parse_from(&argv).expect("args parse");
    assert_eq!(format!("{:?}", cli.log_format), "Text");
    let CliCommand::Run(run) = cli.command else {
        panic!("the Deployment does not run `run`");
    };
    assert!(!run.leader.leader_elect);
    assert_eq!(run.leader.lease_name, install.lease());
    assert_eq!(run.controller.concurrency, 3);
    assert_eq!(
        run.cert_secret.as_deref(),
        Some(install.webhook_tls_secret().as_str())
    );
    assert_eq!(
        run.webhook_service.as_deref(),
        Some(install.webhook_service().as_str())
    );
    assert_eq!(
        run.webhook_configs,
        [install.validating_webhook(), install.mutating_webhook()]
    );

    // Webhook configurations: names, Service and settings from the values.
    for (kind, name) in [
        (
            "ValidatingWebhookConfiguration",
            install.validating_webhook(),
        ),
        ("MutatingWebhookConfiguration", install.mutating_webhook()),
    ] {
        let hook = &get(kind, &name)["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Ignore", "{kind}");
        assert_eq!(hook["timeoutSeconds"], 10, "{kind}");
        assert_eq!(
            hook["clientConfig"]["service"],
            json!({"name": install.webhook_service(), "namespace": "storage",
                   "path": if kind.starts_with("Validating") { "/validate" } else { "/mutate" }, "port": 443})
        );
    }
    assert!(objects.contains_key(&("Service".into(), install.webhook_service())));

    // Switched off: no PDB for one replica, no NetworkPolicy, no certificate Job.
    for kind in ["PodDisruptionBudget", "NetworkPolicy", "Job"] {
        assert!(
            !objects.keys().any(|(k, _)| k == kind),
            "{kind} rendered although switched off"
        );
    }
}

#[test]
fn network_policy_sources_can_be_narrowed() {
    let Some(rendered) = render(&[narrowed_network_case()]) else {
        return;
    };
    assert_lint_clean(&rendered);
    let policy = &rendered.objects["narrowed"]
        [&("NetworkPolicy".to_string(), "dittofs-operator".to_string())];
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 2);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"protocol": "TCP", "port": 9443}])
    );
    assert_eq!(
        ingress[0]["from"],
        json!([{"ipBlock": {"cidr": "10.0.0.0/8"}}])
    );
    assert_eq!(
        ingress[1]["ports"],
        json!([{"protocol": "TCP", "port": 8081}])
    );
    assert_eq!(
        ingress[1]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
}

#[test]
fn egress_can_be_restricted_to_dns_the_api_server_and_the_dittofs_api() {
    let case = Case {
        name: "egress",
        release: "dittofs-operator",
        namespace: "dittofs-system",
        values: json!({"networkPolicy": {"egress": {
            "restrict": true,
            "apiServer": [{"ipBlock": {"cidr": "172.20.0.1/32"}}],
            "dittofsApiPorts": [8080, 9000],
        }}}),
    };
    let Some(rendered) = render(&[case]) else {
        return;
    };
    assert_lint_clean(&rendered);
    let policy =
        &rendered.objects["egress"][&("NetworkPolicy".to_string(), "dittofs-operator".to_string())];
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = policy["spec"]["egress"].as_array().expect("egress");
    assert_eq!(egress.len(), 3, "{egress:?}");
    assert_eq!(
        egress[1]["to"],
        json!([{"ipBlock": {"cidr": "172.20.0.1/32"}}])
    );
    assert_eq!(
        egress[2]["ports"],
        json!([{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 9000}])
    );
    assert_eq!(
        egress[2]["to"][0]["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "dittofs", "app.kubernetes.io/managed-by": "dittofs-operator"})
    );
}

#[test]
fn watch_namespaces_give_a_role_in_each_and_select_the_webhooks() {
    let case = Case {
        name: "tenants",
        release: "tenant-a",
        namespace: "team-a-ops",
        values: json!({
            "watchNamespaces": ["team-a", "team-b"],
            "networkPolicy": {"egress": {"restrict": true}},
        }),
    };
    let Some(rendered) = render(&[case]) else {
        return;
    };
    assert_lint_clean(&rendered);
    let objects = &rendered.objects["tenants"];
    let get = |kind: &str, name: &str| -> &Value {
        objects
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("{kind} {name} rendered; have {:?}", objects.keys()))
    };
    let scope = WatchScope::of(["team-a".to_string(), "team-b".to_string()]);
    let install = Install {
        release: "tenant-a".into(),
        namespace: "team-a-ops".into(),
        scope: scope.clone(),
    };

    // RBAC: exactly the generator's for this install. No Secret, ConfigMap or
    // DittoServer anywhere in the ClusterRole.
    let cluster_rules = &get("ClusterRole", "tenant-a")["rules"];
    assert_eq!(
        cluster_rules,
        &serde_json::to_value(cluster_role(&install).rules).unwrap()
    );
    for resource in [
        "secrets",
        "configmaps",
        "dittoservers",
        "statefulsets",
        "events",
    ] {
        assert!(
            !cluster_rules
                .to_string()
                .contains(&format!("\"{resource}\"")),
            "{resource} in the ClusterRole: {cluster_rules}"
        );
    }
    assert_eq!(
        get("Role", "tenant-a")["rules"],
        serde_json::to_value(role(&install).rules).unwrap()
    );
    let served = served_roles(&install);
    assert_eq!(served.len(), 2);
    for (role, binding) in served {
        let ns = role.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{ns}/tenant-a-dittoservers");
        assert_eq!(
            get("Role", &key)["rules"],
            serde_json::to_value(role.rules).unwrap()
        );
        let rendered_binding = get("RoleBinding", &key);
        assert_eq!(
            rendered_binding["roleRef"],
            serde_json::to_value(binding.role_ref).unwrap()
        );
        assert_eq!(
            rendered_binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "tenant-a", "namespace": "team-a-ops"}])
        );
    }
    assert_eq!(
        objects
            .keys()
            .filter(|(k, n)| k == "Role" && n.ends_with("-dittoservers"))
            .count(),
        2,
        "one Role per served namespace: {:?}",
        objects.keys()
    );

    // The operator serves exactly those namespaces.
    let container = &get("Deployment", "tenant-a")["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["dittofs-operator".to_string()];
    argv.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    let CliCommand::Run(run) = Cli::try_parse_from(&argv).expect("args parse").command else {
        panic!("the Deployment does not run `run`");
    };
    assert_eq!(run.controller.scope.scope(), scope);

    // Both webhooks are called for those namespaces only.
    let selector = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]});
    for (kind, name) in [
        (
            "ValidatingWebhookConfiguration",
            install.validating_webhook(),
        ),
        ("MutatingWebhookConfiguration", install.mutating_webhook()),
    ] {
        assert_eq!(
            get(kind, &name)["webhooks"][0]["namespaceSelector"],
            selector,
            "{kind}"
        );
    }
    // The restricted egress reaches the DittoFS API in those namespaces only.
    let egress = &get("NetworkPolicy", "tenant-a")["spec"]["egress"][2]["to"][0];
    assert_eq!(egress["namespaceSelector"], selector);
}

#[test]
fn a_watch_namespace_that_is_not_a_namespace_name_fails_the_install() {
    let case = Case {
        name: "typo",
        release: "dittofs-operator",
        namespace: "dittofs-system",
        values: json!({"watchNamespaces": ["team-a", "Team_B"]}),
    };
    let Some(out) = run_render(&[case]) else {
        return;
    };
    assert!(
        !out.status.success(),
        "rendered although Team_B is no namespace name"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("watchNamespaces: \"Team_B\" is not a namespace name"),
        "{stderr}"
    );
}

#[test]
fn two_installations_with_disjoint_namespaces_share_no_cluster_wide_name() {
    let tenants =
        |name: &'static str, release: &'static str, ns: &'static str, served: &str| Case {
            name,
            release,
            namespace: ns,
            values: json!({"watchNamespaces": [served]}),
        };
    let Some(rendered) = render(&[
        tenants("a", "tenants-a", "tenants-a-ops", "team-a"),
        tenants("b", "tenants-b", "tenants-b-ops", "team-b"),
    ]) else {
        return;
    };
    assert_lint_clean(&rendered);
    // Cluster-scoped objects (no namespace) of each release, by (kind, name).
    let cluster_wide = |case: &str| -> Vec<(String, String)> {
        rendered.objects[case]
            .iter()
            .filter(|(_, doc)| doc["metadata"]["namespace"].is_null())
            .map(|(key, _)| key.clone())
            .collect()
    };
    let (a, b) = (cluster_wide("a"), cluster_wide("b"));
    assert!(a.len() >= 8, "{a:?}");
    for key in &a {
        assert!(!b.contains(key), "{key:?} is installed by both releases");
    }
    // Each leads with its own Lease, in its own namespace, and serves its own tenants.
    for (case, release, served) in [("a", "tenants-a", "team-a"), ("b", "tenants-b", "team-b")] {
        let deployment = &rendered.objects[case][&("Deployment".to_string(), release.to_string())];
        let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains(&format!("--lease-name={release}")), "{args}");
        assert!(
            args.contains(&format!("--watch-namespaces={served}")),
            "{args}"
        );
    }
}
