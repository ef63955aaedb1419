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
use super::secret_files::{API_CERT, API_CLIENT_CA, API_KEY, METRICS_TOKEN};

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
    let config = ServerConfig {
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
    };
    serde_yaml_ng::to_string(&config).map_err(|e| BuildError::Serialize {
        object: "config.yaml",
        message: e.to_string(),
    })
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
