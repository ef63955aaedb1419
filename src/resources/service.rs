//! Services. **This is where every Service port is decided**: clients connect to
//! `PortPair::service`, which forwards to the named container port listening on
//! `PortPair::container` (defaults decided in `defaults::resolve`: NFS 2049 → 12049,
//! SMB 445 → 1445, API 8080 → 8080).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::names;

use super::labels::{child_meta, selector};

/// Container port names (the Services target them by name).
pub const NFS_PORT_NAME: &str = "nfs";
pub const SMB_PORT_NAME: &str = "smb";
pub const API_PORT_NAME: &str = "api";
pub const METRICS_PORT_NAME: &str = "metrics";

fn port(name: &str, service_port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: service_port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Every Service of the server: file, api, headless, and metrics when enabled.
pub fn build_services(ds: &DittoServer, eff: &EffectiveSpec) -> Vec<Service> {
    let mut out = vec![
        file_service(ds, eff),
        api_service(ds, eff),
        headless_service(ds, eff),
    ];
    if let Some(p) = eff.metrics_port {
        out.push(service(
            ds,
            eff,
            names::metrics_service(&eff.name),
            "metrics",
            ServiceSpec {
                type_: Some("ClusterIP".into()),
                ports: Some(vec![port(METRICS_PORT_NAME, p)]),
                ..Default::default()
            },
            false,
        ));
    }
    out
}

/// `<name>-file`: NFS, plus SMB when enabled.
fn file_service(ds: &DittoServer, eff: &EffectiveSpec) -> Service {
    let mut ports = vec![port(NFS_PORT_NAME, eff.ports.nfs.service)];
    if let Some(smb) = eff.ports.smb {
        ports.push(port(SMB_PORT_NAME, smb.service));
    }
    service(
        ds,
        eff,
        names::file_service(&eff.name),
        "file",
        ServiceSpec {
            type_: Some(eff.service_type.as_str().into()),
            ports: Some(ports),
            ..Default::default()
        },
        true,
    )
}

/// `<name>-api`: the REST API.
fn api_service(ds: &DittoServer, eff: &EffectiveSpec) -> Service {
    service(
        ds,
        eff,
        names::api_service(&eff.name),
        "api",
        ServiceSpec {
            type_: Some(eff.service_type.as_str().into()),
            ports: Some(vec![port(API_PORT_NAME, eff.ports.api.service)]),
            ..Default::default()
        },
        true,
    )
}

/// `<name>-headless`: the StatefulSet's governing Service (stable pod DNS).
fn headless_service(ds: &DittoServer, eff: &EffectiveSpec) -> Service {
    service(
        ds,
        eff,
        names::headless_service(&eff.name),
        "headless",
        ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("None".into()),
            ports: Some(vec![port(API_PORT_NAME, eff.ports.api.container)]),
            ..Default::default()
        },
        false,
    )
}

fn service(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    name: String,
    component: &str,
    mut spec: ServiceSpec,
    user_annotations: bool,
) -> Service {
    let mut metadata = child_meta(ds, eff, name, component);
    if user_annotations && !eff.service_annotations.is_empty() {
        metadata.annotations = Some(eff.service_annotations.clone());
    }
    spec.selector = Some(selector(&eff.name));
    Service {
        metadata,
        spec: Some(spec),
        ..Default::default()
    }
}
