//! Pure rules: judge one DittoServer (and the transition from the old one) with no
//! cluster access. Findings come out in spec order, so messages are deterministic.

use crate::crd::{DatabaseType, DittoServerSpec};
use crate::defaults::{
    DEFAULT_ADMIN_USERNAME, DITTOFS_PORTMAPPER_PORT, MAX_TERMINATION_GRACE_SECONDS,
    PRE_STOP_DRAIN_SECONDS, default_termination_grace_seconds, min_termination_grace_seconds,
    server_exit_deadline_seconds,
};
use crate::effective::{EffectiveSpec, SecretKey};
use crate::resources::service::PORTMAPPER_SERVICE_PORT;

use super::{Findings, Subject};

/// Where the SQLite file must live: the control-plane PVC's mount point.
pub const CONTROL_PLANE_DIR: &str = "/data/controlplane/";

/// The rules about the spec's own fields that need neither the cluster nor the old
/// object (Pod Security and the grace period are judged next, by `judge`).
pub(crate) fn check_spec(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    if spec.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        out.error(
            "spec.image",
            "must not be empty; remove the field to use the default DittoFS image",
        );
    }
    if !(0..=1).contains(&eff.replicas) {
        out.error(
            "spec.replicas",
            format!(
                "is {}; DittoFS runs a single replica: use 1 (running) or 0 (stopped)",
                eff.replicas
            ),
        );
    }
    check_storage(spec, out);
    check_database(spec, eff, out);
    check_ports(spec, eff, out);
    check_api_tls(spec, out);
    check_identity(spec, out);
    check_ldap(eff, out);
    check_kerberos(spec, eff, out);
    check_identity_optional(spec, out);
    check_percona(spec, out);
    check_s3(spec, eff, out);
    check_process(spec, eff, out);
    check_metrics(spec, eff, out);
    check_legacy(spec, out);
}

/// The metrics endpoint's path and bearer token (`metrics` in DittoFS v0.29's
/// `pkg/config/metrics.go`: the path must start with `/`, a token needs its file).
fn check_metrics(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let Some(metrics) = spec.metrics.as_ref() else {
        return;
    };
    if let Some(path) = metrics.path.as_deref()
        && !path.is_empty()
        && (!path.starts_with('/') || path.chars().any(char::is_whitespace))
    {
        out.error(
            "spec.metrics.path",
            format!("{path:?} is not a URL path: start it with '/', without spaces, for example \"/metrics\""),
        );
    }
    if let Some(token) = metrics.bearer_token_secret.as_ref() {
        if token.name.trim().is_empty() {
            out.error(
                "spec.metrics.bearerTokenSecret.name",
                "is empty: name the Secret that holds the scrapers' bearer token",
            );
        }
        if token.key.trim().is_empty() {
            out.error(
                "spec.metrics.bearerTokenSecret.key",
                "is empty: name the key of the Secret that holds the token",
            );
        }
        if token.optional == Some(true) {
            out.warn(
                "spec.metrics.bearerTokenSecret.optional",
                "is ignored: the token is required (DittoFS refuses to start without it); remove it",
            );
        }
        if eff.metrics.is_none() {
            out.warn(
                "spec.metrics.bearerTokenSecret",
                "has no effect while metrics.enabled is false",
            );
        }
    }
    if let Some(monitor) = metrics.service_monitor.as_ref() {
        check_service_monitor(monitor, eff, out);
    }
}

/// The ServiceMonitor's interval (Prometheus's duration syntax, which the
/// Prometheus Operator's CRD checks with a pattern) and labels (Kubernetes label
/// syntax, or the API server refuses the object).
fn check_service_monitor(
    monitor: &crate::crd::ServiceMonitorSpec,
    eff: &EffectiveSpec,
    out: &mut Findings,
) {
    if monitor.enabled == Some(true) && eff.metrics.is_none() {
        out.warn(
            "spec.metrics.serviceMonitor.enabled",
            "has no effect while metrics.enabled is false: no metrics Service to scrape",
        );
    }
    if let Some(interval) = monitor.interval.as_deref().filter(|i| !i.is_empty())
        && !is_prometheus_duration(interval)
    {
        out.error(
            "spec.metrics.serviceMonitor.interval",
            format!("{interval:?} is not a Prometheus duration: write units from largest to smallest, each once, such as \"30s\", \"1m\" or \"1h30m\" (y, w, d, h, m, s, ms)"),
        );
    }
    for (key, value) in monitor.labels.iter().flatten() {
        let field = format!("spec.metrics.serviceMonitor.labels[{key:?}]");
        if let Some(problem) = label_key_problem(key) {
            out.error(&field, format!("is not a label key: {problem}"));
        } else if crate::resources::labels::labels("", "").contains_key(key) {
            out.warn(
                &field,
                "is set by the operator on every object it makes; this value is not used",
            );
        }
        if let Some(problem) = label_value_problem(value) {
            out.error(&field, format!("{value:?} is not a label value: {problem}"));
        }
    }
}

/// Prometheus's duration syntax (`model.ParseDuration`): `0`, or numbers with the
/// units y, w, d, h, m, s, ms, largest first, each at most once.
pub fn is_prometheus_duration(text: &str) -> bool {
    const UNITS: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    if text == "0" {
        return true;
    }
    let mut rest = text;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        let unit = &rest[..letters];
        match UNITS[next_unit..].iter().position(|u| *u == unit) {
            Some(i) => next_unit += i + 1,
            None => return false,
        }
        rest = &rest[letters..];
    }
    !text.is_empty()
}

/// Why `key` is not a Kubernetes label key: an optional DNS subdomain prefix and
/// `/`, then a name of 1 to 63 characters.
fn label_key_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| crate::names::subdomain_problem(p).is_some()) {
        return Some("the prefix before '/' must be a DNS subdomain, such as example.com");
    }
    if name.is_empty() || name.len() > 63 {
        return Some("the name must be 1 to 63 characters");
    }
    label_value_problem(name)
}

/// Why `value` is not a Kubernetes label value: at most 63 letters, digits, `-`,
/// `_` and `.`, starting and ending with a letter or digit (or empty).
fn label_value_problem(value: &str) -> Option<&'static str> {
    if value.len() > 63 {
        return Some("at most 63 characters");
    }
    let bytes = value.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    let ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes.first().is_none_or(edge)
        && bytes.last().is_none_or(edge);
    (!ok).then_some("letters, digits, '-', '_' and '.', starting and ending with a letter or digit")
}

/// The server process's own settings: its shutdown timeout and its log.
fn check_process(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    // Empty is unset: the default is written over it.
    if let Some(timeout) = spec.shutdown_timeout.as_deref().filter(|t| !t.is_empty()) {
        // Go's time.ParseDuration takes no spaces, and the server reads it as written.
        let seconds =
            crate::duration::parse_go_duration_secs(timeout).filter(|_| timeout.trim() == timeout);
        if seconds.is_none_or(|s| s <= 0.0) {
            out.error(
                "spec.shutdownTimeout",
                format!("{timeout:?} is not a positive duration: use a Go duration such as \"30s\" or \"2m\" (the server refuses zero)"),
            );
        } else if spec.termination_grace_period_seconds.is_none()
            && default_termination_grace_seconds(eff.shutdown_timeout_seconds)
                > MAX_TERMINATION_GRACE_SECONDS
        {
            // 3 × t + 20 ≤ 3600.
            let longest = (MAX_TERMINATION_GRACE_SECONDS - 20) / 3;
            out.error(
                "spec.shutdownTimeout",
                format!("{timeout:?} would give the pod a grace period of {} s, more than {MAX_TERMINATION_GRACE_SECONDS}: use at most \"{longest}s\"", default_termination_grace_seconds(eff.shutdown_timeout_seconds)),
            );
        }
    }
    let output = eff.logging.output.as_str();
    let stream = ["stdout", "stderr"]
        .iter()
        .any(|s| output.eq_ignore_ascii_case(s));
    if !stream && !output.starts_with('/') {
        out.error(
            "spec.logging.output",
            format!("{output:?} is neither stdout, stderr nor an absolute path: DittoFS would write a file relative to its working directory; use stdout, or a path such as \"/data/cache/dittofs.log\""),
        );
    } else if !stream {
        let kept = crate::resources::statefulset::persistent_dirs(eff)
            .iter()
            .any(|dir| output.starts_with(&format!("{dir}/")));
        out.warn(
            "spec.logging.output",
            if kept {
                format!("sends the server's log to {output}, not to `kubectl logs`; DittoFS rotates it at 100 MB")
            } else {
                format!("sends the server's log to {output}, not to `kubectl logs`, and that file is lost whenever the pod is recreated (it is on no data volume); use stdout, or a path under /data/cache")
            },
        );
    }
}

/// A PVC size as the CRD pattern `^[0-9]+(Mi|Gi|Ti)$` accepts it, and not zero.
pub fn is_valid_size(size: &str) -> bool {
    let Some(digits) = size
        .strip_suffix("Mi")
        .or_else(|| size.strip_suffix("Gi"))
        .or_else(|| size.strip_suffix("Ti"))
    else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}

fn check_size(field: &str, value: Option<&str>, out: &mut Findings) {
    if let Some(v) = value
        && !is_valid_size(v)
    {
        out.error(
            field,
            format!("{v:?} is not a size: use a whole number followed by Mi, Gi or Ti, for example \"10Gi\""),
        );
    }
}

fn check_storage(spec: &DittoServerSpec, out: &mut Findings) {
    let s = &spec.storage;
    if s.metadata_size.trim().is_empty() {
        out.error(
            "spec.storage.metadataSize",
            "is required: set the size of the metadata volume, for example \"10Gi\"",
        );
    } else {
        check_size("spec.storage.metadataSize", Some(&s.metadata_size), out);
    }
    check_size("spec.storage.contentSize", s.content_size.as_deref(), out);
    check_size("spec.storage.cacheSize", s.cache_size.as_deref(), out);
    check_size(
        "spec.storage.controlPlaneSize",
        s.control_plane_size.as_deref(),
        out,
    );
    if s.storage_class_name.as_deref() == Some("") {
        out.error(
            "spec.storage.storageClassName",
            "is empty; remove the field to use the cluster's default StorageClass, or name one",
        );
    }
}

fn check_database(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let Some(db) = spec.database.as_ref() else {
        return;
    };
    let percona = eff.percona.is_some();
    let secret_ref = db.postgres_secret_ref.as_ref();
    if let Some(r) = secret_ref
        && r.name.trim().is_empty()
    {
        out.error(
            "spec.database.postgresSecretRef.name",
            "is empty: name the Secret holding host, database, user and password (port and sslmode optional)",
        );
    }
    match db.db_type {
        Some(DatabaseType::Postgres) if secret_ref.is_none() && !percona => out.error(
            "spec.database.type",
            "is postgres but neither database.postgresSecretRef nor percona.enabled is set: add postgresSecretRef, enable percona, or set database.type: sqlite",
        ),
        Some(DatabaseType::Sqlite) if secret_ref.is_some() && !percona => out.warn(
            "spec.database.type",
            "is sqlite but database.postgresSecretRef is set: PostgreSQL will be used; set database.type: postgres to say so",
        ),
        _ => {}
    }
    if percona && secret_ref.is_some() {
        out.warn(
            "spec.database.postgresSecretRef",
            "is ignored because percona.enabled is true: the Percona-managed PostgreSQL is used; remove one of them",
        );
    }
    if let Some(path) = db.sqlite.as_ref().and_then(|s| s.path.as_deref())
        && !(path.starts_with(CONTROL_PLANE_DIR) && path.len() > CONTROL_PLANE_DIR.len())
    {
        out.error(
            "spec.database.sqlite.path",
            format!(
                "{path:?} is not on the control-plane volume: use a file under {CONTROL_PLANE_DIR} (default {CONTROL_PLANE_DIR}controlplane.db), or shares and users are lost on every restart"
            ),
        );
    }
}

/// One listening or client-facing port, for range and collision checks.
struct NamedPort {
    field: &'static str,
    what: &'static str,
    port: i32,
}

fn check_ports(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let smb = spec.smb.as_ref();
    let cp = spec.control_plane.as_ref();
    let metrics = spec.metrics.as_ref();

    // Range: every port the user wrote (defaults are in range by construction).
    let written = [
        ("spec.nfsPort", spec.nfs_port),
        ("spec.nfsAdapterPort", spec.nfs_adapter_port),
        ("spec.smb.port", smb.and_then(|s| s.port)),
        ("spec.smb.adapterPort", smb.and_then(|s| s.adapter_port)),
        ("spec.controlPlane.port", cp.and_then(|c| c.port)),
        (
            "spec.controlPlane.servicePort",
            cp.and_then(|c| c.service_port),
        ),
        ("spec.metrics.port", metrics.and_then(|m| m.port)),
    ];
    let mut out_of_range = false;
    for (field, port) in written {
        if let Some(p) = port
            && !(1..=65535).contains(&p)
        {
            out_of_range = true;
            out.error(
                field,
                format!("{p} is not a port: use a value from 1 to 65535"),
            );
        }
    }
    if out_of_range {
        return;
    }

    // Ports the pod listens on share one network namespace: they must differ.
    let mut container = vec![NamedPort {
        field: "spec.nfsAdapterPort",
        what: "the NFS adapter",
        port: eff.ports.nfs.container,
    }];
    if let Some(p) = eff.ports.smb {
        container.push(NamedPort {
            field: "spec.smb.adapterPort",
            what: "the SMB adapter",
            port: p.container,
        });
    }
    container.push(NamedPort {
        field: "spec.controlPlane.port",
        what: "the REST API",
        port: eff.ports.api.container,
    });
    if let Some(m) = &eff.metrics {
        container.push(NamedPort {
            field: "spec.metrics.port",
            what: "metrics",
            port: m.port,
        });
    }
    if eff.server.portmapper {
        container.push(NamedPort {
            field: "spec.nfsPortmapper",
            what: "the NFS portmapper (DittoFS's port 10111)",
            port: DITTOFS_PORTMAPPER_PORT,
        });
    }
    report_collisions(&container, "inside the pod", out);

    // Client ports may share one load-balancer IP: they must differ too.
    let mut client = vec![NamedPort {
        field: "spec.nfsPort",
        what: "NFS clients",
        port: eff.ports.nfs.service,
    }];
    if let Some(p) = eff.ports.smb {
        client.push(NamedPort {
            field: "spec.smb.port",
            what: "SMB clients",
            port: p.service,
        });
    }
    client.push(NamedPort {
        field: "spec.controlPlane.servicePort",
        what: "REST API clients",
        port: eff.ports.api.service,
    });
    if eff.server.portmapper {
        client.push(NamedPort {
            field: "spec.nfsPortmapper",
            what: "the NFS portmapper (port 111)",
            port: PORTMAPPER_SERVICE_PORT,
        });
        if eff.ports.nfs.container != eff.ports.nfs.service {
            client.push(NamedPort {
                field: "spec.nfsAdapterPort",
                what: "NFSv3 clients the portmapper sends to the adapter's own port",
                port: eff.ports.nfs.container,
            });
        }
    }
    report_collisions(&client, "on the Services", out);

    for p in &container {
        if p.port < 1024 {
            out.warn(
                p.field,
                format!(
                    "{} listens on privileged port {} in the pod, which needs NET_BIND_SERVICE (dropped by default); keep an unprivileged port there and map the client port on the Service instead",
                    p.what, p.port
                ),
            );
        }
    }
}

fn report_collisions(ports: &[NamedPort], place: &str, out: &mut Findings) {
    for (i, later) in ports.iter().enumerate() {
        if let Some(first) = ports[..i].iter().find(|p| p.port == later.port) {
            out.error(
                later.field,
                format!(
                    "port {} is already used by {} ({}) {place}: choose a different port",
                    later.port, first.what, first.field
                ),
            );
        }
    }
}

/// HTTPS on the REST API. DittoFS v0.29 refuses `client_ca` without a certificate
/// (`TLSConfig.Validate`, `internal/tlsconfig/tlsconfig.go`); under mutual TLS the
/// operator must present a certificate of its own, or it cannot manage the server.
fn check_api_tls(spec: &DittoServerSpec, out: &mut Findings) {
    let Some(cp) = spec.control_plane.as_ref() else {
        return;
    };
    const CERT: &str = "spec.controlPlane.certSecretName";
    const CLIENT_CA: &str = "spec.controlPlane.clientCASecretName";
    const OPERATOR: &str = "spec.controlPlane.operatorCertSecretName";
    let mut named = |field: &str, value: &Option<String>| match value.as_deref() {
        None => false,
        Some(name) if crate::names::subdomain_problem(name).is_none() => true,
        Some(name) => {
            out.error(
                field,
                format!("{name:?} is not a Secret name: use lowercase letters, digits, '-' and '.', or remove the field"),
            );
            false
        }
    };
    let cert = named(CERT, &cp.cert_secret_name);
    let client_ca = named(CLIENT_CA, &cp.client_ca_secret_name);
    let operator = named(OPERATOR, &cp.operator_cert_secret_name);
    if client_ca && !cert {
        out.error(
            CLIENT_CA,
            format!("requires {CERT}: client certificates are checked only over HTTPS; set the server's certificate Secret, or remove this field"),
        );
    }
    if client_ca && !operator {
        out.error(
            OPERATOR,
            format!("is required with {CLIENT_CA}: the server refuses every caller without a client certificate, the operator too; name a kubernetes.io/tls Secret holding a certificate that CA signed"),
        );
    }
    if operator && !client_ca {
        out.error(
            OPERATOR,
            format!("is used only with {CLIENT_CA} (mutual TLS): remove it, or set the client CA"),
        );
    }
}

fn check_identity(spec: &DittoServerSpec, out: &mut Findings) {
    let Some(identity) = spec.identity.as_ref() else {
        return;
    };
    if let Some(jwt) = identity.jwt.as_ref() {
        if let Some(r) = jwt.secret_ref.as_ref() {
            secret_key_needs_key(r, "spec.identity.jwt.secretRef", out);
        }
        for (field, value) in [
            (
                "spec.identity.jwt.accessTokenDuration",
                jwt.access_token_duration.as_deref(),
            ),
            (
                "spec.identity.jwt.refreshTokenDuration",
                jwt.refresh_token_duration.as_deref(),
            ),
        ] {
            if let Some(v) = value
                && crate::duration::parse_go_duration_secs(v).is_none_or(|secs| secs <= 0.0)
            {
                out.error(
                    field,
                    format!("{v:?} is not a positive duration: use a Go duration such as \"15m\", \"1h30m\" or \"168h\""),
                );
            }
        }
    }
    if let Some(r) = identity
        .admin
        .as_ref()
        .and_then(|a| a.password_secret_ref.as_ref())
    {
        secret_key_needs_key(r, "spec.identity.admin.passwordSecretRef", out);
    }
}

/// A Secret key a provider needs: both names given.
fn required_selector(key: &SecretKey, field: &str, what: &str, out: &mut Findings) {
    if key.name.trim().is_empty() {
        out.error(
            &format!("{field}.name"),
            format!("is required: name the Secret that holds {what}"),
        );
    } else if key.key.trim().is_empty() {
        out.error(
            &format!("{field}.key"),
            format!(
                "is required: name the key of Secret {} that holds {what}",
                key.name
            ),
        );
    }
}

/// `spec.identity.ldap`, as DittoFS v0.29 validates `ldap` (`Validate` in
/// `pkg/identity/ldap/config.go`), only when enabled.
fn check_ldap(eff: &EffectiveSpec, out: &mut Findings) {
    const AT: &str = "spec.identity.ldap";
    let Some(ldap) = eff.ldap.as_ref() else {
        return;
    };
    let url = ldap.url.trim().to_ascii_lowercase();
    if url.is_empty() {
        out.error(
            &format!("{AT}.url"),
            "is required when LDAP is enabled: the directory server, such as \"ldaps://ldap.example.com\"",
        );
    } else if url.starts_with("ldap://") {
        if !ldap.start_tls && !ldap.allow_plaintext {
            out.error(
                &format!("{AT}.url"),
                "uses plaintext ldap://: set startTLS: true to upgrade the connection, use ldaps://, or set allowPlaintext: true to accept an unencrypted bind",
            );
        } else if !ldap.start_tls {
            out.warn(
                &format!("{AT}.allowPlaintext"),
                "the bind password and every lookup cross the network unencrypted: use ldaps:// or startTLS: true",
            );
        }
    } else if !url.starts_with("ldaps://") {
        out.error(
            &format!("{AT}.url"),
            format!("{:?} must start with ldaps:// or ldap://", ldap.url),
        );
    }
    for (field, value, example) in [
        ("baseDN", &ldap.base_dn, "dc=example,dc=com"),
        (
            "bindDN",
            &ldap.bind_dn,
            "cn=dittofs,ou=services,dc=example,dc=com",
        ),
    ] {
        if value.trim().is_empty() {
            out.error(
                &format!("{AT}.{field}"),
                format!("is required when LDAP is enabled, such as {example:?}"),
            );
        }
    }
    required_selector(
        &ldap.bind_password,
        &format!("{AT}.bindPasswordSecretRef"),
        "the bind password (DittoFS refuses an empty one: it would bind anonymously)",
        out,
    );
    if !is_ldap_attribute(&ldap.user_attr) {
        out.error(
            &format!("{AT}.userAttr"),
            format!(
                "{:?} is not an LDAP attribute name: a letter, then letters, digits or '-', such as \"sAMAccountName\" or \"uid\"",
                ldap.user_attr
            ),
        );
    }
    if let Some(ca) = &ldap.ca_cert {
        required_selector(
            ca,
            &format!("{AT}.caCertSecretRef"),
            "the PEM CA certificate",
            out,
        );
    }
    if ldap.insecure_skip_verify {
        out.warn(
            &format!("{AT}.insecureSkipVerify"),
            "the directory server's certificate is not verified: anyone on the path can read the bind password; set caCertSecretRef instead",
        );
    }
}

/// `optional: true` on an identity Secret key is not honoured: the pod needs it.
fn check_identity_optional(spec: &DittoServerSpec, out: &mut Findings) {
    let Some(identity) = spec.identity.as_ref() else {
        return;
    };
    let ldap = identity.ldap.as_ref();
    let krb = identity.kerberos.as_ref();
    let refs = [
        (
            "spec.identity.ldap.bindPasswordSecretRef",
            ldap.and_then(|l| l.bind_password_secret_ref.as_ref()),
        ),
        (
            "spec.identity.ldap.caCertSecretRef",
            ldap.and_then(|l| l.ca_cert_secret_ref.as_ref()),
        ),
        (
            "spec.identity.kerberos.keytabSecretRef",
            krb.and_then(|k| k.keytab_secret_ref.as_ref()),
        ),
        (
            "spec.identity.kerberos.krb5ConfSecretRef",
            krb.and_then(|k| k.krb5_conf_secret_ref.as_ref()),
        ),
        (
            "spec.identity.kerberos.machineAccount.secretRef",
            krb.and_then(|k| k.machine_account.as_ref())
                .and_then(|m| m.secret_ref.as_ref()),
        ),
    ];
    for (field, r) in refs {
        if r.is_some_and(|r| r.optional == Some(true)) {
            out.warn(
                &format!("{field}.optional"),
                "is ignored: the Secret key is required; remove it",
            );
        }
    }
}

/// `^[A-Za-z][A-Za-z0-9-]*$` (`ldapAttrNameRe`, `pkg/identity/ldap/config.go`).
fn is_ldap_attribute(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `spec.identity.kerberos`: what DittoFS v0.29 needs to start it (a principal
/// and a keytab, `pkg/auth/kerberos/provider.go`; the REST API refuses either
/// missing), the shapes `KerberosConfig.Validate` checks (`pkg/config/config.go`),
/// and what NTLM pass-through needs (`netlogonCredentialFromConfig`,
/// `cmd/dfs/commands/netlogon.go`: without them the server turns it off quietly).
fn check_kerberos(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    const AT: &str = "spec.identity.kerberos";
    let written = spec.identity.as_ref().and_then(|i| i.kerberos.as_ref());
    let Some(krb) = eff.kerberos.as_ref() else {
        if written
            .and_then(|k| k.machine_account.as_ref())
            .is_some_and(|m| m.enabled == Some(true))
        {
            out.warn(
                &format!("{AT}.machineAccount.enabled"),
                "has no effect while kerberos.enabled is false",
            );
        }
        return;
    };
    if krb.service_principal.trim().is_empty() {
        out.error(
            &format!("{AT}.servicePrincipal"),
            "is required when Kerberos is enabled, such as \"nfs/files.example.com@EXAMPLE.COM\"",
        );
    }
    required_selector(
        &krb.keytab,
        &format!("{AT}.keytabSecretRef"),
        "the service keytab",
        out,
    );
    if let Some(conf) = &krb.krb5_conf {
        required_selector(
            conf,
            &format!("{AT}.krb5ConfSecretRef"),
            "the krb5.conf",
            out,
        );
    }
    let realm_field = if krb.realm_written.is_empty() {
        format!("{AT}.servicePrincipal")
    } else {
        format!("{AT}.realm")
    };
    if krb.realm.contains(['@', '/', ' ']) {
        out.error(
            &realm_field,
            format!(
                "realm {:?} must not contain '@', '/' or spaces, such as \"EXAMPLE.COM\"",
                krb.realm
            ),
        );
    }
    if krb.netbios_domain.contains(['.', '@', '/', ' ']) {
        out.error(
            &format!("{AT}.netbiosDomain"),
            format!(
                "{:?} must be one NetBIOS label, without '.', '@', '/' or spaces, such as \"EXAMPLE\"",
                krb.netbios_domain
            ),
        );
    }
    if krb.dns_domain.contains(['@', '/', ' ']) {
        let field = if krb.dns_domain_written.is_empty() {
            realm_field.clone()
        } else {
            format!("{AT}.dnsDomain")
        };
        out.error(
            &field,
            format!(
                "DNS domain {:?} must not contain '@', '/' or spaces, such as \"example.com\"",
                krb.dns_domain
            ),
        );
    }
    let Some(machine) = &krb.machine_account else {
        return;
    };
    const MA: &str = "spec.identity.kerberos.machineAccount";
    if machine.account_name.trim().is_empty() {
        out.error(
            &format!("{MA}.accountName"),
            "is required when the machine account is enabled, such as \"DITTOFS$\"",
        );
    }
    required_selector(
        &machine.secret,
        &format!("{MA}.secretRef"),
        "the machine account's password (DittoFS v0.29 does not use a machine keytab)",
        out,
    );
    if krb.netbios_domain.trim().is_empty() {
        out.error(
            &format!("{AT}.netbiosDomain"),
            "is required by machineAccount: without it DittoFS v0.29 turns NTLM pass-through off; set the domain's NetBIOS name, such as \"EXAMPLE\"",
        );
    }
    if krb.realm.trim().is_empty() {
        out.error(
            &format!("{AT}.realm"),
            "is required by machineAccount: without it DittoFS v0.29 turns NTLM pass-through off; set it, or end servicePrincipal with @REALM",
        );
    }
    for (i, dc) in machine.dc_addresses.iter().enumerate() {
        if dc.trim().is_empty() || dc.contains(char::is_whitespace) {
            out.error(
                &format!("{MA}.dcAddress[{i}]"),
                format!("{dc:?} is not a host or host:port"),
            );
        }
    }
}

fn secret_key_needs_key(r: &crate::crd::SecretKeyRef, field: &str, out: &mut Findings) {
    let has_name = r.name.as_deref().is_some_and(|n| !n.is_empty());
    let has_key = r.key.as_deref().is_some_and(|k| !k.is_empty());
    if has_name && !has_key {
        out.error(
            &format!("{field}.key"),
            format!("is required when {field}.name is set: name the key inside the Secret"),
        );
    }
}

/// A 5-field cron schedule with characters cron accepts.
pub(crate) fn is_cron(schedule: &str) -> bool {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c))
        })
}

fn check_percona(spec: &DittoServerSpec, out: &mut Findings) {
    let Some(p) = spec.percona.as_ref() else {
        return;
    };
    if p.enabled != Some(true) {
        return;
    }
    check_size("spec.percona.storageSize", p.storage_size.as_deref(), out);
    if let Some(r) = p.replicas
        && !(1..=5).contains(&r)
    {
        out.error(
            "spec.percona.replicas",
            format!("is {r}: use 1 to 5 PostgreSQL instances"),
        );
    }
    if p.database_name.as_deref() == Some("") {
        out.error(
            "spec.percona.databaseName",
            "is empty: remove it to use \"dittofs\", or name the database",
        );
    }
    let Some(b) = p.backup.as_ref().filter(|b| b.enabled == Some(true)) else {
        return;
    };
    if b.bucket.as_deref().is_none_or(str::is_empty) {
        out.error(
            "spec.percona.backup.bucket",
            "is required when backups are enabled: name the S3 bucket for pgBackRest",
        );
    }
    if b.endpoint.as_deref().is_none_or(str::is_empty) {
        out.error(
            "spec.percona.backup.endpoint",
            "is required when backups are enabled: set the S3 endpoint, for example \"s3.eu-west-1.amazonaws.com\"",
        );
    }
    for (field, value) in [
        (
            "spec.percona.backup.fullSchedule",
            b.full_schedule.as_deref(),
        ),
        (
            "spec.percona.backup.incrSchedule",
            b.incr_schedule.as_deref(),
        ),
    ] {
        if let Some(v) = value
            && !is_cron(v)
        {
            out.error(
                field,
                format!("{v:?} is not a cron schedule: use five fields, for example \"0 2 * * *\""),
            );
        }
    }
    if b.credentials_secret_ref
        .as_ref()
        .is_none_or(|r| r.name.is_empty())
    {
        out.warn(
            "spec.percona.backup.credentialsSecretRef",
            "is not set: pgBackRest may fail to authenticate with S3; reference a Secret with its S3 credentials",
        );
    }
}

/// `spec.s3` configures nothing: DittoFS v0.29 creates an S3 block store through
/// its REST API with the store's own bucket, region, endpoint and static keys
/// (`pkg/block/remote/s3/store.go`, `NewFromConfig`), which `spec.remoteBlockStores`
/// declares. Say so, with the fields to write instead.
fn check_s3(spec: &DittoServerSpec, eff: &EffectiveSpec, out: &mut Findings) {
    let Some(s3) = spec.s3.as_ref() else {
        return;
    };
    let secret = eff
        .s3
        .as_ref()
        .map(|s| {
            format!(
                ", credentialsSecretRef: {{name: {}, accessKeyIdKey: {}, secretAccessKeyKey: {}}}",
                s.secret_name, s.access_key_id_key, s.secret_access_key_key
            )
        })
        .unwrap_or_default();
    let bucket = s3.bucket.as_deref().unwrap_or("<bucket>");
    let region = s3
        .region
        .as_deref()
        .map(|r| format!(", region: {r}"))
        .unwrap_or_default();
    let endpoint = eff
        .s3
        .as_ref()
        .map(|s| {
            format!(
                " (the endpoint from key {} of that Secret goes in s3.endpoint)",
                s.endpoint_key
            )
        })
        .unwrap_or_default();
    out.warn(
        "spec.s3",
        format!(
            "is deprecated and not read: declare the bucket as a remote block store instead, `remoteBlockStores: [{{name: s3, type: s3, s3: {{bucket: {bucket}{region}{secret}}}}}]`{endpoint}, name it in a share's remoteBlockStore, then remove spec.s3 (docs/stores.md)"
        ),
    );
}

/// Fields the Go operator accepted that no longer do anything.
fn check_legacy(spec: &DittoServerSpec, out: &mut Findings) {
    const NO_EFFECT: &str = "has no effect on current DittoFS releases and can be removed";
    if let Some(c) = spec.cache.as_ref() {
        if c.path.is_some() {
            out.warn("spec.cache.path", NO_EFFECT);
        }
        if c.size.is_some() {
            out.warn("spec.cache.size", NO_EFFECT);
        }
    }
    if let Some(db) = spec
        .database
        .as_ref()
        .and_then(|d| d.postgres_secret_ref.as_ref())
    {
        if db.key.is_some() {
            out.warn(
                "spec.database.postgresSecretRef.key",
                "is ignored: the Secret must hold the keys host, database, user and password (port and sslmode optional)",
            );
        }
        if db.optional.is_some() {
            out.warn("spec.database.postgresSecretRef.optional", NO_EFFECT);
        }
    }
    if let Some(identity) = spec.identity.as_ref() {
        if let Some(jwt) = identity.jwt.as_ref() {
            if jwt.issuer.is_some() {
                out.warn(
                    "spec.identity.jwt.issuer",
                    "has no effect: DittoFS always signs with issuer \"dittofs\"; remove it",
                );
            }
            if jwt
                .secret_ref
                .as_ref()
                .is_some_and(|r| r.optional.is_some())
            {
                out.warn("spec.identity.jwt.secretRef.optional", NO_EFFECT);
            }
        }
        if identity
            .admin
            .as_ref()
            .and_then(|a| a.password_secret_ref.as_ref())
            .is_some_and(|r| r.optional.is_some())
        {
            out.warn("spec.identity.admin.passwordSecretRef.optional", NO_EFFECT);
        }
    }
    if let Some(smb) = spec.smb.as_ref() {
        let tuning = [
            ("spec.smb.maxConnections", smb.max_connections.is_some()),
            (
                "spec.smb.maxRequestsPerConnection",
                smb.max_requests_per_connection.is_some(),
            ),
            (
                "spec.smb.metricsLogInterval",
                smb.metrics_log_interval.is_some(),
            ),
            ("spec.smb.timeouts", smb.timeouts.is_some()),
            ("spec.smb.credits", smb.credits.is_some()),
        ];
        for (field, set) in tuning {
            if set {
                out.warn(
                    field,
                    "has no effect: DittoFS keeps SMB adapter settings in its own database (set them with dfsctl); remove it",
                );
            }
        }
    }
}

/// After SIGTERM, DittoFS v0.29 may take up to 3 × its shutdown timeout + 5 s to
/// drain adapters, flush and close stores before it exits on its own
/// (`cmd/dfs/commands/start.go`); the kubelet counts the preStop drain in the grace
/// period too. Anything shorter SIGKILLs it mid-flush.
pub(crate) fn check_grace_period(eff: &EffectiveSpec, out: &mut Findings) {
    let timeout = eff.shutdown_timeout_seconds;
    let min = min_termination_grace_seconds(timeout);
    if eff.termination_grace_period_seconds < min {
        out.warn(
            "spec.terminationGracePeriodSeconds",
            format!(
                "{} s is shorter than the {min} s DittoFS may need to stop: after the {PRE_STOP_DRAIN_SECONDS} s preStop drain, the server takes up to {} s after SIGTERM (3 × its {timeout} s shutdownTimeout + 5 s) to drain clients and flush its stores, and is killed mid-flush if the period ends first; use at least {min}, or remove the field to follow shutdownTimeout ({} s)",
                eff.termination_grace_period_seconds,
                server_exit_deadline_seconds(timeout),
                default_termination_grace_seconds(timeout),
            ),
        );
    }
}

/// Rules about what this write sets: refused when a user writes the value now,
/// tolerated (a warning) on an object that already holds it.
pub(crate) fn check_written(eff: &EffectiveSpec, subject: Subject<'_>, out: &mut Findings) {
    check_admin_username(eff, subject, out);
}

/// DittoFS v0.29 always creates its administrator as `admin` (`EnsureAdminUser` in
/// `pkg/controlplane/store/users.go`, name from `models/admin.go`); another name would be handed out in the
/// credentials Secret for a user that does not exist. Objects created before this
/// rule keep working: the Secret and the config say `admin` anyway.
fn check_admin_username(eff: &EffectiveSpec, subject: Subject<'_>, out: &mut Findings) {
    const FIELD: &str = "spec.identity.admin.username";
    let Some(name) = eff
        .admin
        .requested_username
        .as_deref()
        .filter(|n| *n != DEFAULT_ADMIN_USERNAME)
    else {
        return;
    };
    let written_now = match subject {
        Subject::Create => true,
        Subject::Update(old) => old.admin.requested_username.as_deref() != Some(name),
        Subject::Stored => false,
    };
    if written_now {
        out.error(
            FIELD,
            format!(
                "{name:?} cannot be used: DittoFS v0.29 always names its administrator \"{DEFAULT_ADMIN_USERNAME}\" and has no setting for another name; remove the field or set \"{DEFAULT_ADMIN_USERNAME}\""
            ),
        );
    } else {
        out.warn(
            FIELD,
            format!(
                "{name:?} is ignored: DittoFS v0.29 always names its administrator \"{DEFAULT_ADMIN_USERNAME}\" (the credentials Secret says so); set the field to \"{DEFAULT_ADMIN_USERNAME}\" or remove it"
            ),
        );
    }
}
