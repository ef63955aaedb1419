//! Services. **This is where every Service port is decided.**
//!
//! - `<name>-file`: NFS clients connect to `nfsPort` (2049), forwarded to the port
//!   the NFS adapter listens on; SMB clients (when enabled) to `smb.port` (445),
//!   forwarded to the SMB adapter's. The adapters' ports are those the server
//!   reported last (`status.server.adapters`): they live in its database, so they
//!   are targeted by number. Before the server was first read, the spec's.
//!   With the portmapper on, port 111 (TCP and UDP) goes to it, and the NFS adapter's
//!   port is also exposed under its own number: NFSv3 clients are told to connect
//!   there.
//! - `<name>-api`: `controlPlane.servicePort` → `controlPlane.port`.
//! - `<name>-headless`, `<name>-metrics`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{DittoServer, ServerStatus};
use crate::effective::EffectiveSpec;
use crate::names;

use super::labels::{child_meta, selector};

/// Port names (the API and metrics Services target the container ports by name).
pub const NFS_PORT_NAME: &str = "nfs";
pub const NFS_DIRECT_PORT_NAME: &str = "nfs-adapter";
pub const PORTMAPPER_TCP_PORT_NAME: &str = "portmap-tcp";
pub const PORTMAPPER_UDP_PORT_NAME: &str = "portmap-udp";
pub const SMB_PORT_NAME: &str = "smb";
pub const API_PORT_NAME: &str = "api";
pub const METRICS_PORT_NAME: &str = "metrics";
/// The component label of the metrics Service (the ServiceMonitor selects it).
pub const METRICS_COMPONENT: &str = "metrics";
/// Where NFSv3 clients ask for the portmapper.
pub const PORTMAPPER_SERVICE_PORT: i32 = 111;

fn port(name: &str, service_port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: service_port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The REST API's port; `appProtocol: https` when it has a certificate, so that
/// gateways and meshes in front of the Service speak TLS to it.
fn api_port(eff: &EffectiveSpec, service_port: i32) -> ServicePort {
    ServicePort {
        app_protocol: eff.api_tls.as_ref().map(|_| "https".to_string()),
        ..port(API_PORT_NAME, service_port)
    }
}

/// A port forwarded to a container port by number.
fn numbered(name: &str, service_port: i32, target: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: service_port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

/// Every Service of the server: file, api, headless, and metrics when enabled.
/// `server` is the server as last read, if it ever was.
pub fn build_services(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    server: Option<&ServerStatus>,
) -> Vec<Service> {
    let mut out = vec![
        file_service(ds, eff, server),
        api_service(ds, eff),
        headless_service(ds, eff),
    ];
    if let Some(m) = &eff.metrics {
        out.push(service(
            ds,
            eff,
            names::metrics_service(&eff.name),
            METRICS_COMPONENT,
            ServiceSpec {
                type_: Some("ClusterIP".into()),
                ports: Some(vec![port(METRICS_PORT_NAME, m.port)]),
                ..Default::default()
            },
            None,
        ));
    }
    out
}

/// The port an adapter listens on: as the server last reported it, else the spec's.
fn adapter_port(server: Option<&ServerStatus>, kind: &str, wanted: i32) -> i32 {
    server
        .and_then(|s| s.adapters.iter().find(|a| a.adapter_type == kind))
        .map_or(wanted, |a| a.port)
}

/// `<name>-file`: NFS (and its portmapper), plus SMB when enabled.
fn file_service(ds: &DittoServer, eff: &EffectiveSpec, server: Option<&ServerStatus>) -> Service {
    let nfs = adapter_port(server, "nfs", eff.ports.nfs.container);
    let mut ports = vec![numbered(NFS_PORT_NAME, eff.ports.nfs.service, nfs, "TCP")];
    if eff.server.portmapper {
        if nfs != eff.ports.nfs.service {
            ports.push(numbered(NFS_DIRECT_PORT_NAME, nfs, nfs, "TCP"));
        }
        let portmapper = server
            .and_then(|s| s.portmapper_port)
            .unwrap_or(crate::defaults::DITTOFS_PORTMAPPER_PORT);
        for (name, protocol) in [
            (PORTMAPPER_TCP_PORT_NAME, "TCP"),
            (PORTMAPPER_UDP_PORT_NAME, "UDP"),
        ] {
            ports.push(numbered(
                name,
                PORTMAPPER_SERVICE_PORT,
                portmapper,
                protocol,
            ));
        }
    }
    if let Some(smb) = eff.ports.smb {
        let target = adapter_port(server, "smb", smb.container);
        ports.push(numbered(SMB_PORT_NAME, smb.service, target, "TCP"));
    }
    service(
        ds,
        eff,
        names::file_service(&eff.name),
        "file",
        ServiceSpec {
            type_: Some(eff.file_service.service_type.as_str().into()),
            ports: Some(ports),
            ..Default::default()
        },
        Some(&eff.file_service.annotations),
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
            type_: Some(eff.api_service.service_type.as_str().into()),
            ports: Some(vec![api_port(eff, eff.ports.api.service)]),
            ..Default::default()
        },
        Some(&eff.api_service.annotations),
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
            ports: Some(vec![api_port(eff, eff.ports.api.container)]),
            ..Default::default()
        },
        None,
    )
}

fn service(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    name: String,
    component: &str,
    mut spec: ServiceSpec,
    annotations: Option<&BTreeMap<String, String>>,
) -> Service {
    let mut metadata = child_meta(ds, eff, name, component);
    if let Some(annotations) = annotations.filter(|a| !a.is_empty()) {
        metadata.annotations = Some(annotations.clone());
    }
    spec.selector = Some(selector(&eff.name));
    Service {
        metadata,
        spec: Some(spec),
        ..Default::default()
    }
}
