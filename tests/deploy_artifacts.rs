//! The plain manifests and the chart's static files are well-formed and agree with
//! the binary (its arguments parse with the real CLI) and with each other.

use std::path::Path;

use clap::Parser;
use dittofs_operator::cli::Cli;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde::Deserialize;

fn docs(relative: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .expect("read");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn deployment() -> Deployment {
    serde_json::from_value(docs("deploy/deployment.yaml").remove(0)).expect("typed Deployment")
}

#[test]
fn every_deploy_manifest_parses_as_its_kind() {
    // deploy/ and its variants (deploy/namespaced/).
    let mut files = Vec::new();
    for dir in ["deploy", "deploy/namespaced"] {
        for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap_or_else(|e| panic!("{dir}/: {e}"))
        {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    assert!(files.contains(&"deploy/namespaced/rbac.yaml".to_string()));
    for file in files {
        for doc in docs(&file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let ok = match kind.as_str() {
                "Namespace" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(doc).is_ok()
                }
                "ServiceAccount" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(doc)
                        .is_ok()
                }
                "ClusterRole" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRole>(doc).is_ok()
                }
                "ClusterRoleBinding" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(doc)
                        .is_ok()
                }
                "Role" => serde_json::from_value::<k8s_openapi::api::rbac::v1::Role>(doc).is_ok(),
                "RoleBinding" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::RoleBinding>(doc).is_ok()
                }
                "Deployment" => serde_json::from_value::<Deployment>(doc).is_ok(),
                "ValidatingAdmissionPolicy" => serde_json::from_value::<
                    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
                >(doc)
                .is_ok(),
                "ValidatingAdmissionPolicyBinding" => serde_json::from_value::<
                    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
                >(doc)
                .is_ok(),
                "NetworkPolicy" => {
                    serde_json::from_value::<k8s_openapi::api::networking::v1::NetworkPolicy>(doc)
                        .is_ok()
                }
                "PodDisruptionBudget" => {
                    serde_json::from_value::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(doc)
                        .is_ok()
                }
                other => panic!("{file}: unexpected kind {other}"),
            };
            assert!(ok, "{file}: {kind} does not parse");
        }
    }
}

#[test]
fn deployment_arguments_parse_with_the_real_cli() {
    let d = deployment();
    let container = &d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod")
        .containers[0];
    let mut argv = vec!["dittofs-operator".to_string()];
    argv.extend(container.args.clone().unwrap_or_default());
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(matches!(
        cli.command,
        dittofs_operator::cli::Command::Run(_)
    ));
}

#[test]
fn names_agree_across_manifests() {
    let d = deployment();
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod");
    let args = pod.containers[0].args.clone().unwrap_or_default().join(" ");
    for name in [
        "dittofs-operator-webhook-tls",
        "dittofs-operator-webhook",
        "dittofs-operator-validating",
        "dittofs-operator-mutating",
    ] {
        assert!(args.contains(name), "{name} in the Deployment args");
    }
    let image = pod.containers[0].image.clone().unwrap_or_default();
    let job = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/job.yaml"))
        .expect("job");
    assert!(
        job.contains(&image),
        "certs Job and Deployment use one image ({image})"
    );
    let chart = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/dittofs-operator/Chart.yaml"),
    )
    .expect("chart");
    let tag = image.rsplit(':').next().unwrap_or_default();
    assert!(
        chart.contains(&format!("appVersion: \"{tag}\"")),
        "chart appVersion matches the image tag {tag}"
    );

    // The webhook Service must select the operator pods.
    let svc: Service =
        serde_json::from_value(docs("webhook/service.yaml").remove(0)).expect("Service");
    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
    let labels = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

#[test]
fn chart_static_files_parse() {
    for file in [
        "charts/dittofs-operator/Chart.yaml",
        "charts/dittofs-operator/values.yaml",
        "charts/dittofs-operator/crds/dittoservers.yaml",
    ] {
        assert!(!docs(file).is_empty(), "{file}");
    }
    let values = docs("charts/dittofs-operator/values.yaml").remove(0);
    assert_eq!(values["webhook"]["failurePolicy"], "Fail");
    assert_eq!(values["webhook"]["timeoutSeconds"], 5);
}
