//! NetworkPolicy `<name>-ingress`: traffic to the server's pod only on the ports
//! its Services send there, from anywhere (as the Go operator's policies do: a
//! file server's clients can be anywhere; narrowing the sources is the namespace
//! owner's policy to add).
//!
//! The ports are read from the built Services, so the policy follows every port
//! decision made there (`service.rs`): the adapters' live ports, the portmapper
//! over TCP and UDP, the REST API, metrics. Nothing else the pod might listen on
//! is reachable through it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::names;

use super::labels::{child_meta, labels};

/// The label set of the server's pod that the policy selects: the StatefulSet's
/// selector and its component and managed-by labels, so that it can select
/// nothing but a pod of ours (the admission policy checks this shape).
pub fn server_pod_selector(instance: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(instance, "server")),
        ..Default::default()
    }
}

/// Build the policy from the Services that will be applied with it.
pub fn build_network_policy(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    services: &[Service],
) -> NetworkPolicy {
    // (protocol, port): a BTreeSet keeps them unique and in a stable order.
    let mut targets: BTreeSet<(String, PortKey)> = BTreeSet::new();
    for port in services
        .iter()
        .filter_map(|s| s.spec.as_ref()?.ports.as_ref())
        .flatten()
    {
        let target = match &port.target_port {
            Some(IntOrString::Int(n)) => PortKey::Number(*n),
            Some(IntOrString::String(name)) => PortKey::Name(name.clone()),
            // Without a targetPort, a Service targets its own port number.
            None => PortKey::Number(port.port),
        };
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        targets.insert((protocol, target));
    }
    let ports = targets
        .into_iter()
        .map(|(protocol, port)| NetworkPolicyPort {
            protocol: Some(protocol),
            port: Some(match port {
                PortKey::Number(n) => IntOrString::Int(n),
                PortKey::Name(n) => IntOrString::String(n),
            }),
            ..Default::default()
        })
        .collect();
    NetworkPolicy {
        metadata: child_meta(ds, eff, names::network_policy(&eff.name), "ingress"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(server_pod_selector(&eff.name)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: None,
                ports: Some(ports),
            }]),
            ..Default::default()
        }),
    }
}

/// A port by number or by the container port's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PortKey {
    Number(i32),
    Name(String),
}
