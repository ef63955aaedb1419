//! StatefulSet `<name>`: one DittoFS pod with its volumes, configuration,
//! Secret-sourced environment, probes and a restricted security posture.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    KeyToPath, Lifecycle, LifecycleHandler, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSpec, PodTemplateSpec, Probe, SecretKeySelector, SecretVolumeSource, SecurityContext,
    SleepAction, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::DittoServer;
use crate::defaults::{PRE_STOP_DRAIN_SECONDS, container_security_context};
use crate::effective::{Database, EffectiveSpec, SecretKey};
use crate::names;

use super::labels::{child_meta, labels, selector};
use super::service::{API_PORT_NAME, METRICS_PORT_NAME};
use crate::secret_files::secret_mounts;

/// Pod-template annotation carrying the config hash (SPEC R2.2).
pub const CONFIG_HASH_ANNOTATION: &str = "dittofs.io/config-hash";
pub use crate::defaults::DITTOFS_UID;
/// Where the config file is mounted.
pub const CONFIG_DIR: &str = "/config";
/// Pod-template annotation carrying the digest of the Kerberos settings the
/// operator last wrote to the server's database (`status.server.identityProviders`):
/// the server applies them at start, so a write restarts the pod once.
pub const KERBEROS_WRITTEN_ANNOTATION: &str = "dittofs.io/kerberos-settings";
/// Image of the init container that waits for PostgreSQL.
pub const WAIT_FOR_POSTGRES_IMAGE: &str = "postgres:16-alpine";
/// Upper bound of that wait.
pub const WAIT_FOR_POSTGRES_SECONDS: u32 = 300;

/// One volumeClaimTemplate and where it is mounted.
struct DataVolume {
    name: &'static str,
    mount: &'static str,
    size: String,
}

fn data_volumes(eff: &EffectiveSpec) -> Vec<DataVolume> {
    let s = &eff.storage;
    let mut v = vec![DataVolume {
        name: "metadata",
        mount: "/data/metadata",
        size: s.metadata_size.clone(),
    }];
    if let Some(content) = &s.content_size {
        v.push(DataVolume {
            name: "content",
            mount: "/data/content",
            size: content.clone(),
        });
    }
    v.push(DataVolume {
        name: "cache",
        mount: "/data/cache",
        size: s.cache_size.clone(),
    });
    v.push(DataVolume {
        name: "controlplane",
        mount: "/data/controlplane",
        size: s.control_plane_size.clone(),
    });
    v
}

/// Where this spec's data volumes are mounted: what the server writes there
/// outlives the pod.
pub fn persistent_dirs(eff: &EffectiveSpec) -> Vec<&'static str> {
    data_volumes(eff).iter().map(|v| v.mount).collect()
}

/// Build the StatefulSet. `config_hash` goes into the pod template annotation; the
/// hash itself is computed over the template built with an empty one (`hash.rs`).
///
/// `kerberos_written` is the digest of the Kerberos settings the operator last
/// wrote to the server's database, from the status (see
/// [`KERBEROS_WRITTEN_ANNOTATION`]).
pub fn build_stateful_set(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    config_hash: &str,
    kerberos_written: Option<&str>,
) -> StatefulSet {
    let volumes = data_volumes(eff);
    let claim_templates = volumes
        .iter()
        .map(|v| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(v.name.to_string()),
                labels: Some(labels(&eff.name, "storage")),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: eff.storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".into(),
                        Quantity(v.size.clone()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();

    StatefulSet {
        metadata: child_meta(ds, eff, names::stateful_set(&eff.name), "server"),
        spec: Some(StatefulSetSpec {
            replicas: Some(eff.replicas),
            service_name: Some(names::headless_service(&eff.name)),
            selector: LabelSelector {
                match_labels: Some(selector(&eff.name)),
                ..Default::default()
            },
            // Deleting the DittoServer or scaling to 0 never deletes data.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: pod_template(eff, &volumes, config_hash, kerberos_written),
            volume_claim_templates: Some(claim_templates),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_template(
    eff: &EffectiveSpec,
    volumes: &[DataVolume],
    config_hash: &str,
    kerberos_written: Option<&str>,
) -> PodTemplateSpec {
    let mut annotations = BTreeMap::new();
    if !config_hash.is_empty() {
        annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string());
    }
    if let Some(digest) = kerberos_written {
        annotations.insert(KERBEROS_WRITTEN_ANNOTATION.to_string(), digest.to_string());
    }
    let mut init_containers = Vec::new();
    if let Database::Percona { secret_name } = &eff.database {
        init_containers.push(wait_for_postgres(secret_name));
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&eff.name, "server")),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            // DittoFS never talks to the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would inject *_PORT variables next to DITTOFS_* ones.
            enable_service_links: Some(false),
            security_context: Some(eff.pod_security_context.clone()),
            termination_grace_period_seconds: Some(eff.termination_grace_period_seconds),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            containers: vec![server_container(eff, volumes)],
            volumes: Some(pod_volumes(eff)),
            ..Default::default()
        }),
    }
}

/// The pod's own volumes (the data volumes come from the claim templates): the
/// config file, and the Secrets the server reads as files.
fn pod_volumes(eff: &EffectiveSpec) -> Vec<Volume> {
    let config = Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::config_map(&eff.name),
            ..Default::default()
        }),
        ..Default::default()
    };
    let secrets = secret_mounts(eff).into_iter().map(|m| Volume {
        name: m.volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(m.secret),
            items: Some(
                m.items
                    .into_iter()
                    .map(|(key, file)| KeyToPath {
                        key,
                        path: file.into(),
                        mode: m.mode,
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    std::iter::once(config).chain(secrets).collect()
}

fn server_container(eff: &EffectiveSpec, volumes: &[DataVolume]) -> Container {
    // Only the ports config.yaml fixes are declared. The adapters' ports live in the
    // server's database and move without a restart (`PUT /api/v1/adapters/{type}`);
    // declaring them would restart the pod whenever one moves. The Services target
    // them by number (`service.rs`).
    let mut ports = vec![container_port(API_PORT_NAME, eff.ports.api.container)];
    if let Some(m) = &eff.metrics {
        ports.push(container_port(METRICS_PORT_NAME, m.port));
    }
    let mut mounts = vec![VolumeMount {
        name: "config".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }];
    mounts.extend(secret_mounts(eff).into_iter().map(|m| VolumeMount {
        name: m.volume.into(),
        mount_path: m.dir.into(),
        read_only: Some(true),
        ..Default::default()
    }));
    mounts.extend(volumes.iter().map(|v| VolumeMount {
        name: v.name.into(),
        mount_path: v.mount.into(),
        ..Default::default()
    }));
    Container {
        name: "dittofs".into(),
        image: Some(eff.image.clone()),
        // The image's entrypoint is the server binary; --foreground keeps it PID 1.
        args: Some(vec![
            "start".into(),
            "--foreground".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/{}", names::CONFIG_KEY),
        ]),
        ports: Some(ports),
        env: Some(server_env(eff)),
        volume_mounts: Some(mounts),
        resources: eff.resources.clone(),
        security_context: Some(eff.security_context.clone()),
        liveness_probe: Some(api_probe(eff, "/health", 15, 10, 3)),
        readiness_probe: Some(api_probe(eff, "/health/ready", 5, 5, 3)),
        // Up to 30 × 5 s = 150 s to start (first boot migrates the database).
        startup_probe: Some(api_probe(eff, "/health", 0, 5, 30)),
        lifecycle: Some(Lifecycle {
            // Let endpoints drop the pod before the server stops accepting; the
            // sleep action needs no shell in the image.
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_DRAIN_SECONDS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// A probe of the REST API: `path` over HTTP, or over HTTPS when the API has a
/// certificate (the kubelet does not verify it). Under mutual TLS the kubelet,
/// which has no client certificate, can only connect: the server refuses the
/// handshake before any path is served (`/health` is exempt from tokens, not from
/// client certificates). The operator's own calls still see the server's readiness.
fn api_probe(
    eff: &EffectiveSpec,
    path: &str,
    initial_delay: i32,
    period: i32,
    failures: i32,
) -> Probe {
    let port = IntOrString::String(API_PORT_NAME.into());
    let (http_get, tcp_socket) = match &eff.api_tls {
        Some(tls) if tls.mutual() => (None, Some(TCPSocketAction { port, host: None })),
        tls => (
            Some(HTTPGetAction {
                path: Some(path.into()),
                port,
                scheme: Some(if tls.is_some() { "HTTPS" } else { "HTTP" }.into()),
                ..Default::default()
            }),
            None,
        ),
    };
    Probe {
        http_get,
        tcp_socket,
        initial_delay_seconds: (initial_delay > 0).then_some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn from_secret(env: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: env.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: optional.then_some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn from_key(env: &str, r: &SecretKey) -> EnvVar {
    from_secret(env, &r.name, &r.key, false)
}

/// Environment of the server: every secret arrives here, under the names the
/// DittoFS server reads (`DITTOFS_<config path>`), never in the ConfigMap.
///
/// No `AWS_*` variables, whatever `spec.s3` says. DittoFS v0.29 builds each S3
/// client from the block store's own config: static keys (`NewFromConfig` in
/// `pkg/block/remote/s3/store.go` refuses empty ones) and a region that is never
/// empty (`us-east-1` unless the store sets one, `CreateRemoteStoreFromConfig` in
/// `pkg/controlplane/runtime/shares/service.go`), so `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_REGION` are never read. The AWS SDK would read
/// `AWS_ENDPOINT_URL` for a store created without an endpoint, silently sending it
/// elsewhere and without the path-style addressing the server turns on for an
/// explicit endpoint (or `force_path_style`); a store must do what its own config says, so it is not set.
pub fn server_env(eff: &EffectiveSpec) -> Vec<EnvVar> {
    let mut env = vec![
        from_key("DITTOFS_CONTROLPLANE_SECRET", &eff.jwt.secret),
        // Read only when the admin user does not exist yet (first boot).
        from_key("DITTOFS_ADMIN_INITIAL_PASSWORD", &eff.admin.password),
    ];
    match &eff.database {
        Database::Sqlite { .. } => {}
        Database::Postgres { secret_name } => {
            // `port` and `sslmode` may be absent: the server then uses 5432 and
            // `disable` (`ApplyDefaults`, `pkg/controlplane/store/gorm.go`).
            for (var, key, optional) in [
                ("DITTOFS_DATABASE_POSTGRES_HOST", "host", false),
                ("DITTOFS_DATABASE_POSTGRES_PORT", "port", true),
                ("DITTOFS_DATABASE_POSTGRES_DATABASE", "database", false),
                ("DITTOFS_DATABASE_POSTGRES_USER", "user", false),
                ("DITTOFS_DATABASE_POSTGRES_PASSWORD", "password", false),
                ("DITTOFS_DATABASE_POSTGRES_SSLMODE", "sslmode", true),
            ] {
                env.push(from_secret(var, secret_name, key, optional));
            }
        }
        Database::Percona { secret_name } => {
            // Percona's pguser Secret names the database `dbname`.
            for (var, key) in [
                ("DITTOFS_DATABASE_POSTGRES_HOST", "host"),
                ("DITTOFS_DATABASE_POSTGRES_PORT", "port"),
                ("DITTOFS_DATABASE_POSTGRES_DATABASE", "dbname"),
                ("DITTOFS_DATABASE_POSTGRES_USER", "user"),
                ("DITTOFS_DATABASE_POSTGRES_PASSWORD", "password"),
            ] {
                env.push(from_secret(var, secret_name, key, false));
            }
            // Percona serves TLS with its own CA; require encryption.
            env.push(EnvVar {
                name: "DITTOFS_DATABASE_POSTGRES_SSLMODE".into(),
                value: Some("require".into()),
                ..Default::default()
            });
        }
    }
    // DittoFS v0.29 reads these passwords from no file, only from its config or
    // `DITTOFS_<PATH>` (`pkg/config/config.go`, every key bound by reflection).
    if let Some(ldap) = &eff.ldap {
        env.push(from_key("DITTOFS_LDAP_BIND_PASSWORD", &ldap.bind_password));
    }
    if let Some(machine) = eff
        .kerberos
        .as_ref()
        .and_then(|k| k.machine_account.as_ref())
    {
        env.push(from_key(
            "DITTOFS_KERBEROS_MACHINE_ACCOUNT_SECRET",
            &machine.secret,
        ));
    }
    env
}

/// Waits (at most five minutes) until the Percona PostgreSQL answers, so the
/// server never starts against a database that is still initialising.
fn wait_for_postgres(secret_name: &str) -> Container {
    let script = format!(
        "deadline=$(( $(date +%s) + {WAIT_FOR_POSTGRES_SECONDS} )); \
         until pg_isready -h \"$PGHOST\" -p \"$PGPORT\" -U \"$PGUSER\" -d \"$PGDATABASE\" -t 5; do \
         if [ \"$(date +%s)\" -ge \"$deadline\" ]; then echo 'PostgreSQL not ready after {WAIT_FOR_POSTGRES_SECONDS}s' >&2; exit 1; fi; \
         sleep 2; done"
    );
    Container {
        name: "wait-for-postgres".into(),
        image: Some(WAIT_FOR_POSTGRES_IMAGE.into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        env: Some(vec![
            from_secret("PGHOST", secret_name, "host", false),
            from_secret("PGPORT", secret_name, "port", false),
            from_secret("PGUSER", secret_name, "user", false),
            from_secret("PGDATABASE", secret_name, "dbname", false),
        ]),
        security_context: Some(SecurityContext {
            // postgres:alpine's postgres user; any non-root uid works for pg_isready.
            run_as_user: Some(70),
            run_as_group: Some(70),
            ..container_security_context(None)
        }),
        resources: None,
        ..Default::default()
    }
}
