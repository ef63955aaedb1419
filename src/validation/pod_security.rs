//! Nothing a DittoServer author writes may run with more privilege than the Pod
//! Security Standards' `restricted` profile allows: the operator creates the pod,
//! so a user allowed to create DittoServers but not Pods must not get a privileged
//! pod through it.
//!
//! The author reaches the pod only through `spec.securityContext` (the DittoFS
//! container) and `spec.podSecurityContext` (the pod); host namespaces, volumes,
//! host ports and the init container are the operator's and compliant by
//! construction. The rules judge the contexts the pod will really run with (the
//! operator's defaults merged with the user's fields, see
//! [`crate::defaults::container_security_context`]), so a user who sets nothing is
//! compliant, and a finding always names a field the user wrote.
//!
//! Allowed values follow the profile as of Kubernetes 1.33 (pod-security-admission).

use k8s_openapi::api::core::v1::{
    AppArmorProfile, PodSecurityContext, SELinuxOptions, SeccompProfile, SecurityContext,
    WindowsSecurityContextOptions,
};

use super::Findings;
use crate::effective::EffectiveSpec;

const POD: &str = "spec.podSecurityContext";
const CONTAINER: &str = "spec.securityContext";

/// The only capability `restricted` lets a container add.
const ADDABLE_CAPABILITY: &str = "NET_BIND_SERVICE";
/// Seccomp and AppArmor profile types `restricted` accepts (never `Unconfined`).
pub(crate) const CONFINED_PROFILES: [&str; 2] = ["RuntimeDefault", "Localhost"];
/// SELinux types the profile accepts (an empty type is accepted too).
pub(crate) const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];
/// Namespaced sysctls the profile considers safe.
pub(crate) const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Judge the security contexts the pod will run with.
pub(crate) fn check(eff: &EffectiveSpec, out: &mut Findings) {
    check_pod(&eff.pod_security_context, out);
    check_container(&eff.security_context, out);
}

fn refuse(out: &mut Findings, field: String, what: String, fix: &str) {
    out.error(
        &field,
        format!(
            "{what} is not allowed: DittoServer pods must meet the Pod Security \"restricted\" profile; {fix}"
        ),
    );
}

fn check_pod(sc: &PodSecurityContext, out: &mut Findings) {
    if sc.run_as_non_root == Some(false) {
        refuse(
            out,
            format!("{POD}.runAsNonRoot"),
            "false".into(),
            "remove it or set true",
        );
    }
    if sc.run_as_user == Some(0) {
        refuse(
            out,
            format!("{POD}.runAsUser"),
            "0 (root)".into(),
            "remove it (the image runs as 65532) or use a non-zero user id",
        );
    }
    check_seccomp(POD, sc.seccomp_profile.as_ref(), out);
    check_apparmor(POD, sc.app_armor_profile.as_ref(), out);
    check_selinux(POD, sc.se_linux_options.as_ref(), out);
    check_windows(POD, sc.windows_options.as_ref(), out);
    for (i, sysctl) in sc.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            refuse(
                out,
                format!("{POD}.sysctls[{i}].name"),
                format!("sysctl {:?}", sysctl.name),
                &format!(
                    "remove it; only these are allowed: {}",
                    SAFE_SYSCTLS.join(", ")
                ),
            );
        }
    }
}

fn check_container(sc: &SecurityContext, out: &mut Findings) {
    if sc.privileged == Some(true) {
        refuse(
            out,
            format!("{CONTAINER}.privileged"),
            "true".into(),
            "remove it (DittoFS needs no privilege)",
        );
    }
    if sc.allow_privilege_escalation == Some(true) {
        refuse(
            out,
            format!("{CONTAINER}.allowPrivilegeEscalation"),
            "true".into(),
            "remove it (the operator sets false)",
        );
    }
    if let Some(added) = sc.capabilities.as_ref().and_then(|c| c.add.as_ref()) {
        for (i, cap) in added.iter().enumerate() {
            if cap != ADDABLE_CAPABILITY {
                refuse(
                    out,
                    format!("{CONTAINER}.capabilities.add[{i}]"),
                    format!("capability {cap:?}"),
                    &format!("remove it; {ADDABLE_CAPABILITY} is the only one that may be added"),
                );
            }
        }
    }
    if sc.run_as_non_root == Some(false) {
        refuse(
            out,
            format!("{CONTAINER}.runAsNonRoot"),
            "false".into(),
            "remove it (the operator sets true)",
        );
    }
    if sc.run_as_user == Some(0) {
        refuse(
            out,
            format!("{CONTAINER}.runAsUser"),
            "0 (root)".into(),
            "remove it (the image runs as 65532) or use a non-zero user id",
        );
    }
    if let Some(mount) = sc.proc_mount.as_deref().filter(|m| *m != "Default") {
        refuse(
            out,
            format!("{CONTAINER}.procMount"),
            format!("{mount:?}"),
            "remove it or set \"Default\"",
        );
    }
    check_seccomp(CONTAINER, sc.seccomp_profile.as_ref(), out);
    check_apparmor(CONTAINER, sc.app_armor_profile.as_ref(), out);
    check_selinux(CONTAINER, sc.se_linux_options.as_ref(), out);
    check_windows(CONTAINER, sc.windows_options.as_ref(), out);
}

fn check_seccomp(base: &str, profile: Option<&SeccompProfile>, out: &mut Findings) {
    if let Some(p) = profile.filter(|p| !CONFINED_PROFILES.contains(&p.type_.as_str())) {
        refuse(
            out,
            format!("{base}.seccompProfile.type"),
            format!("{:?}", p.type_),
            "remove it or use RuntimeDefault (or Localhost)",
        );
    }
}

fn check_apparmor(base: &str, profile: Option<&AppArmorProfile>, out: &mut Findings) {
    if let Some(p) = profile.filter(|p| !CONFINED_PROFILES.contains(&p.type_.as_str())) {
        refuse(
            out,
            format!("{base}.appArmorProfile.type"),
            format!("{:?}", p.type_),
            "remove it or use RuntimeDefault (or Localhost)",
        );
    }
}

fn check_selinux(base: &str, options: Option<&SELinuxOptions>, out: &mut Findings) {
    let Some(o) = options else {
        return;
    };
    if let Some(t) = o
        .type_
        .as_deref()
        .filter(|t| !t.is_empty() && !SELINUX_TYPES.contains(t))
    {
        refuse(
            out,
            format!("{base}.seLinuxOptions.type"),
            format!("SELinux type {t:?}"),
            &format!("remove it or use one of {}", SELINUX_TYPES.join(", ")),
        );
    }
    for (name, value) in [("user", &o.user), ("role", &o.role)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            refuse(
                out,
                format!("{base}.seLinuxOptions.{name}"),
                format!("SELinux {name} {v:?}"),
                "remove it (only level and type may be set)",
            );
        }
    }
}

fn check_windows(base: &str, options: Option<&WindowsSecurityContextOptions>, out: &mut Findings) {
    if options.and_then(|o| o.host_process) == Some(true) {
        refuse(
            out,
            format!("{base}.windowsOptions.hostProcess"),
            "true".into(),
            "remove it",
        );
    }
}
