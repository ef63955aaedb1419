//! ConfigMap `<name>-config`, key `config.yaml`, in the DittoFS server's own format.
//!
//! Only keys the server (v0.29 `pkg/config`) reads are rendered. Secrets never
//! appear here: they reach the pod as environment variables (see `statefulset.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;

use crate::crd::{DittoServer, LogFormat, LogLevel};
use crate::effective::{Database, EffectiveSpec};
use crate::names;

use super::BuildError;
use super::labels::child_meta;
use crate::secret_files::{
    API_CERT, API_CLIENT_CA, API_KEY, KEYTAB, KRB5_CONF, LDAP_CA, METRICS_TOKEN,
};

/// The config file, field order as the server documents it.
#[derive(Serialize)]
struct ServerConfig<'a> {
    logging: Logging<'a>,
    /// A Go duration (`ShutdownTimeout` in `pkg/config/config.go`).
    shutdown_timeout: &'a str,
    database: DatabaseConfig<'a>,
    controlplane: ControlPlane<'a>,
    admin: Admin<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ldap: Option<Ldap<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kerberos: Option<Kerberos<'a>>,
}

/// `ldap` (`Config` in `pkg/identity/ldap/config.go`). The bind password comes from
/// `DITTOFS_LDAP_BIND_PASSWORD`. The server reads this block only at its first
/// start, to seed its database (`resolveIdentityProviders`,
/// `cmd/dfs/commands/start.go`); the operator keeps the database in line.
#[derive(Serialize)]
struct Ldap<'a> {
    enabled: bool,
    url: &'a str,
    start_tls: bool,
    allow_plaintext: bool,
    base_dn: &'a str,
    bind_dn: &'a str,
    user_attr: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    realm: &'a str,
    idmap: &'static str,
    nested_groups: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<LdapTls>,
}

/// `ldap.tls` (`TLSConfig`, same file).
#[derive(Serialize)]
struct LdapTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_cert_file: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure_skip_verify: bool,
}

/// `kerberos` (`KerberosConfig` in `pkg/config/config.go`). Seeds the database at
/// the first start like `ldap`; `keytab_path` and `krb5_conf` are read at every
/// start (`overlayDeploymentPaths`, `cmd/dfs/commands/start.go`). Realm and DNS
/// domain only as written: the server derives the same defaults.
#[derive(Serialize)]
struct Kerberos<'a> {
    enabled: bool,
    keytab_path: String,
    service_principal: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    realm: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    netbios_domain: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    dns_domain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    krb5_conf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    machine_account: Option<MachineAccount<'a>>,
}

/// `kerberos.machine_account` (`MachineAccountConfig`, same file); the secret comes
/// from `DITTOFS_KERBEROS_MACHINE_ACCOUNT_SECRET`.
#[derive(Serialize)]
struct MachineAccount<'a> {
    enabled: bool,
    account_name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    dc_address: &'a [String],
}

/// `LoggingConfig` in `pkg/config/config.go`: the level as DEBUG/INFO/WARN/ERROR,
/// the format `text` or `json`, the output `stdout`, `stderr` or a file path.
#[derive(Serialize)]
struct Logging<'a> {
    level: LogLevel,
    format: LogFormat,
    output: &'a str,
}

#[derive(Serialize)]
struct DatabaseConfig<'a> {
    #[serde(rename = "type")]
    db_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sqlite: Option<Sqlite<'a>>,
}

#[derive(Serialize)]
struct Sqlite<'a> {
    path: &'a str,
}

#[derive(Serialize)]
struct ControlPlane<'a> {
    /// The server binds loopback by default; Services and probes need all interfaces.
    host: &'static str,
    port: i32,
    jwt: Jwt<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
}

/// `TLSConfig` in `pkg/controlplane/api/config.go`: HTTPS when `cert_file` and
/// `key_file` are set; `client_ca` makes the server require and verify client
/// certificates (`internal/tlsconfig/tlsconfig.go`, `ServerConfig`).
#[derive(Serialize)]
struct Tls {
    cert_file: String,
    key_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ca: Option<String>,
}

#[derive(Serialize)]
struct Jwt<'a> {
    access_token_duration: &'a str,
    refresh_token_duration: &'a str,
}

/// The server parses `admin.username` (`AdminConfig` in `pkg/config/config.go`) but
/// creates its administrator as `admin` whatever it says
/// (`pkg/controlplane/models/admin.go`); the effective spec always holds `admin`.
#[derive(Serialize)]
struct Admin<'a> {
    username: &'a str,
}

/// `MetricsConfig` in `pkg/config/metrics.go`: `auth` is `none` (the server's
/// default) or `token`, which needs `token_file`.
#[derive(Serialize)]
struct Metrics<'a> {
    enabled: bool,
    /// The server binds loopback by default; the Service needs all interfaces.
    host: &'static str,
    port: i32,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
}

/// Render `config.yaml`. PostgreSQL connection fields are not rendered: the server
/// binds every key to `DITTOFS_<PATH>` environment variables, which the pod gets
/// from the Secret.
pub fn render_config(eff: &EffectiveSpec) -> Result<String, BuildError> {
    serialize(&config(eff))
}

/// What of `config.yaml` the config hash covers: all of it but the `ldap` and
/// `kerberos` blocks. The server reads those only to seed its database at the first
/// start; later the operator writes changes to the database (LDAP applies them
/// live; a Kerberos write restarts the pod once, through
/// `statefulset::KERBEROS_WRITTEN_ANNOTATION`). Hashing them would restart the pod
/// for settings the restarted server ignores. What the server reads from them at
/// every start (the keytab and krb5.conf paths) follows the pod's volumes, which the
/// pod template carries. `None`: no such block, the whole file is hashed (and not
/// rendered a second time).
pub fn hashed_config(eff: &EffectiveSpec) -> Result<Option<String>, BuildError> {
    if eff.ldap.is_none() && eff.kerberos.is_none() {
        return Ok(None);
    }
    let mut config = config(eff);
    config.ldap = None;
    config.kerberos = None;
    serialize(&config).map(Some)
}

fn serialize(config: &ServerConfig<'_>) -> Result<String, BuildError> {
    serde_yaml_ng::to_string(config).map_err(|e| BuildError::Serialize {
        object: "config.yaml",
        message: e.to_string(),
    })
}

fn config(eff: &EffectiveSpec) -> ServerConfig<'_> {
    let database = match &eff.database {
        Database::Sqlite { path } => DatabaseConfig {
            db_type: "sqlite",
            sqlite: Some(Sqlite { path }),
        },
        Database::Postgres { .. } | Database::Percona { .. } => DatabaseConfig {
            db_type: "postgres",
            sqlite: None,
        },
    };
    ServerConfig {
        logging: Logging {
            level: eff.logging.level,
            format: eff.logging.format,
            output: &eff.logging.output,
        },
        shutdown_timeout: &eff.shutdown_timeout,
        database,
        controlplane: ControlPlane {
            host: "0.0.0.0",
            port: eff.ports.api.container,
            jwt: Jwt {
                access_token_duration: &eff.jwt.access_token_duration,
                refresh_token_duration: &eff.jwt.refresh_token_duration,
            },
            tls: eff.api_tls.as_ref().map(|t| Tls {
                cert_file: API_CERT.path(),
                key_file: API_KEY.path(),
                client_ca: t.mutual().then(|| API_CLIENT_CA.path()),
            }),
        },
        admin: Admin {
            username: &eff.admin.username,
        },
        metrics: eff.metrics.as_ref().map(|m| Metrics {
            enabled: true,
            host: "0.0.0.0",
            port: m.port,
            path: &m.path,
            auth: m.token.is_some().then_some("token"),
            token_file: m.token.is_some().then(|| METRICS_TOKEN.path()),
        }),
        ldap: eff.ldap.as_ref().map(|l| Ldap {
            enabled: true,
            url: &l.url,
            start_tls: l.start_tls,
            allow_plaintext: l.allow_plaintext,
            base_dn: &l.base_dn,
            bind_dn: &l.bind_dn,
            user_attr: &l.user_attr,
            realm: &l.realm,
            idmap: l.idmap.as_str(),
            nested_groups: l.nested_groups,
            tls: (l.ca_cert.is_some() || l.insecure_skip_verify).then(|| LdapTls {
                ca_cert_file: l.ca_cert.as_ref().map(|_| LDAP_CA.path()),
                insecure_skip_verify: l.insecure_skip_verify,
            }),
        }),
        kerberos: eff.kerberos.as_ref().map(|k| Kerberos {
            enabled: true,
            keytab_path: KEYTAB.path(),
            service_principal: &k.service_principal,
            realm: &k.realm_written,
            netbios_domain: &k.netbios_domain,
            dns_domain: &k.dns_domain_written,
            krb5_conf: k.krb5_conf.as_ref().map(|_| KRB5_CONF.path()),
            machine_account: k.machine_account.as_ref().map(|m| MachineAccount {
                enabled: true,
                account_name: &m.account_name,
                dc_address: &m.dc_addresses,
            }),
        }),
    }
}

/// Build the ConfigMap around the rendered config.
pub fn build_config_map(ds: &DittoServer, eff: &EffectiveSpec, config_yaml: &str) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(ds, eff, names::config_map(&eff.name), "config"),
        data: Some(BTreeMap::from([(
            names::CONFIG_KEY.to_string(),
            config_yaml.to_string(),
        )])),
        ..Default::default()
    }
}
