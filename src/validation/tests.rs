//! One passing and one failing case per rule.

use std::collections::BTreeMap;

use futures::executor::block_on;

use super::*;

/// A cluster held in memory: StorageClasses, Secrets (name → key → value length),
/// Percona CRD. Records what it was asked.
#[derive(Default)]
struct FakeCluster {
    classes: Vec<&'static str>,
    secrets: BTreeMap<&'static str, Vec<(&'static str, usize)>>,
    /// Secret types other than `Opaque`.
    secret_types: BTreeMap<&'static str, &'static str>,
    percona: bool,
    service_monitor: bool,
    broken: bool,
    asked: std::sync::Mutex<Vec<String>>,
}

impl FakeCluster {
    fn note(&self, question: String) {
        self.asked.lock().expect("not poisoned").push(question);
    }
    fn asked(&self) -> Vec<String> {
        std::mem::take(&mut *self.asked.lock().expect("not poisoned"))
    }
}

impl ClusterLookup for FakeCluster {
    async fn storage_class(&self, name: &str) -> Lookup<()> {
        self.note(format!("storageclass/{name}"));
        if self.broken {
            return Lookup::Unknown("timeout".into());
        }
        if self.classes.contains(&name) {
            Lookup::Found(())
        } else {
            Lookup::NotFound
        }
    }
    async fn secret(&self, _ns: &str, name: &str) -> Lookup<SecretFacts> {
        self.note(format!("secret/{name}"));
        if self.broken {
            return Lookup::Unknown("timeout".into());
        }
        match self.secrets.get(name) {
            Some(keys) => Lookup::Found(SecretFacts {
                value_lengths: keys.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
                secret_type: Some(
                    self.secret_types
                        .get(name)
                        .copied()
                        .unwrap_or("Opaque")
                        .to_string(),
                ),
            }),
            None => Lookup::NotFound,
        }
    }
    async fn percona_crd(&self) -> Lookup<()> {
        self.note("percona".into());
        if self.broken {
            Lookup::Unknown("timeout".into())
        } else if self.percona {
            Lookup::Found(())
        } else {
            Lookup::NotFound
        }
    }
    async fn service_monitor_crd(&self) -> Lookup<()> {
        self.note("servicemonitor".into());
        if self.service_monitor {
            Lookup::Found(())
        } else {
            Lookup::NotFound
        }
    }
}

fn ds(spec_yaml: &str) -> DittoServer {
    let doc = format!(
        "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {{name: t, namespace: ns}}\nspec:\n{}",
        spec_yaml
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    serde_yaml_ng::from_str(&doc).expect("test fixture parses")
}

fn check(spec: &str) -> Report {
    block_on(validate(&ds(spec), None, &Offline))
}

fn check_stored(spec: &str) -> Report {
    let ds = ds(spec);
    block_on(validate_stored(
        &ds.spec,
        &EffectiveSpec::resolve(&ds),
        &Offline,
    ))
}

fn check_update(old: &str, new: &str) -> Report {
    block_on(validate(&ds(new), Some(&ds(old)), &Offline))
}

fn check_with(spec: &str, cluster: &FakeCluster) -> Report {
    block_on(validate(&ds(spec), None, cluster))
}

fn fields(f: &[Finding]) -> Vec<&str> {
    f.iter().map(|f| f.field.as_str()).collect()
}

fn has_error(r: &Report, field: &str, text: &str) -> bool {
    r.errors
        .iter()
        .any(|f| f.field == field && f.message.contains(text))
}

fn has_warning(r: &Report, field: &str, text: &str) -> bool {
    r.warnings
        .iter()
        .any(|f| f.field == field && f.message.contains(text))
}

const MINIMAL: &str = "storage: {metadataSize: 10Gi}";

#[test]
fn minimal_is_clean() {
    let r = check(MINIMAL);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
}

#[test]
fn metadata_size_required_and_formatted() {
    assert!(has_error(
        &check("storage: {metadataSize: ''}"),
        "spec.storage.metadataSize",
        "is required"
    ));
    assert!(has_error(
        &check("storage: {metadataSize: 10GB}"),
        "spec.storage.metadataSize",
        "not a size"
    ));
    assert!(has_error(
        &check("storage: {metadataSize: 0Gi}"),
        "spec.storage.metadataSize",
        "not a size"
    ));
    assert!(check("storage: {metadataSize: 512Mi}").is_valid());
}

#[test]
fn other_sizes_formatted() {
    for field in ["contentSize", "cacheSize", "controlPlaneSize"] {
        let bad = check(&format!("storage: {{metadataSize: 1Gi, {field}: lots}}"));
        assert!(
            has_error(&bad, &format!("spec.storage.{field}"), "not a size"),
            "{bad:?}"
        );
        assert!(check(&format!("storage: {{metadataSize: 1Gi, {field}: 2Ti}}")).is_valid());
    }
}

#[test]
fn replicas_zero_or_one() {
    assert!(has_error(
        &check("replicas: 2\nstorage: {metadataSize: 1Gi}"),
        "spec.replicas",
        "single replica"
    ));
    assert!(check("replicas: 0\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn image_not_empty() {
    assert!(has_error(
        &check("image: ''\nstorage: {metadataSize: 1Gi}"),
        "spec.image",
        "must not be empty"
    ));
    assert!(check("image: example/dittofs:1\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn ports_in_range() {
    let r = check("nfsPort: 70000\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(&r, "spec.nfsPort", "1 to 65535"), "{r:?}");
    let r = check("controlPlane: {port: 0}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(&r, "spec.controlPlane.port", "1 to 65535"));
    assert!(check("nfsPort: 20490\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn nfs_and_api_container_ports_collide() {
    // The Go operator silently accepted this one.
    let r = check("nfsAdapterPort: 8080\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(
            &r,
            "spec.controlPlane.port",
            "already used by the NFS adapter"
        ),
        "{r:?}"
    );
}

#[test]
fn smb_and_metrics_ports_collide_only_when_enabled() {
    let clash = "smb: {enabled: true, adapterPort: 9090}\nmetrics: {enabled: true, port: 9090}\nstorage: {metadataSize: 1Gi}";
    assert!(has_error(
        &check(clash),
        "spec.metrics.port",
        "already used by the SMB adapter"
    ));
    let off = "smb: {enabled: false, adapterPort: 9090}\nmetrics: {enabled: true, port: 9090}\nstorage: {metadataSize: 1Gi}";
    assert!(check(off).is_valid());
}

#[test]
fn client_ports_collide() {
    let r = check("smb: {enabled: true, port: 2049}\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(&r, "spec.smb.port", "already used by NFS clients"),
        "{r:?}"
    );
    assert!(check("smb: {enabled: true, port: 445}\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn privileged_container_port_warns() {
    let r = check("nfsAdapterPort: 900\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_warning(&r, "spec.nfsAdapterPort", "privileged port 900"),
        "{r:?}"
    );
    assert!(r.is_valid());
    // Client ports below 1024 are normal: the Service maps them.
    assert!(
        check("smb: {enabled: true, port: 445}\nstorage: {metadataSize: 1Gi}")
            .warnings
            .is_empty()
    );
}

#[test]
fn warnings_come_in_spec_order() {
    // Rules on the spec first, in spec order; then rules on what is written.
    let r = check(
        "nfsAdapterPort: 111\nnfsPortmapper: false\ncontrolPlane: {port: 80}\nstorage: {metadataSize: 1Gi}\nshares: [{name: /x, metadataStore: m, localBlockStore: l, defaultPermission: read}]\nmetadataStores: [{name: m, type: memory}]\nlocalBlockStores: [{name: l, type: memory}]",
    );
    assert_eq!(
        fields(&r.warnings),
        [
            "spec.nfsAdapterPort",
            "spec.controlPlane.port",
            "spec.metadataStores[0].type",
            "spec.localBlockStores[0].type"
        ]
    );
}

#[test]
fn adapter_ports_are_the_desired_state_and_only_collisions_are_refused() {
    // The operator moves the adapters (PUT /api/v1/adapters/{type}): nothing to warn.
    for spec in [
        "nfsAdapterPort: 13049\nstorage: {metadataSize: 1Gi}",
        "smb: {enabled: true, adapterPort: 1446}\nstorage: {metadataSize: 1Gi}",
    ] {
        let r = check(spec);
        assert!(r.is_valid() && r.warnings.is_empty(), "{spec}: {r:?}");
    }
    let moved = check_update(
        MINIMAL,
        "nfsAdapterPort: 13049\nstorage: {metadataSize: 10Gi}",
    );
    assert!(moved.is_valid() && moved.warnings.is_empty(), "{moved:?}");
    // With the portmapper on, its ports share the file Service and the pod.
    let r = check("nfsPort: 111\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(
            &r,
            "spec.nfsPortmapper",
            "port 111 is already used by NFS clients"
        ),
        "{r:?}"
    );
    let r = check("smb: {enabled: true, adapterPort: 10111}\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(
            &r,
            "spec.nfsPortmapper",
            "port 10111 is already used by the SMB adapter"
        ),
        "{r:?}"
    );
    let r = check("nfsPortmapper: false\nnfsPort: 111\nstorage: {metadataSize: 1Gi}");
    assert!(r.is_valid(), "{r:?}");
}

#[test]
fn jwt_secret_ref_needs_key() {
    let r = check("identity: {jwt: {secretRef: {name: s}}}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(
        &r,
        "spec.identity.jwt.secretRef.key",
        "is required"
    ));
    assert!(
        check("identity: {jwt: {secretRef: {name: s, key: k}}}\nstorage: {metadataSize: 1Gi}")
            .is_valid()
    );
    // An empty name means the managed Secret.
    assert!(
        check("identity: {jwt: {secretRef: {name: ''}}}\nstorage: {metadataSize: 1Gi}").is_valid()
    );
}

#[test]
fn admin_secret_ref_needs_key() {
    let r =
        check("identity: {admin: {passwordSecretRef: {name: s}}}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(
        &r,
        "spec.identity.admin.passwordSecretRef.key",
        "is required"
    ));
    assert!(check("identity: {admin: {passwordSecretRef: {name: s, key: p}}}\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn jwt_durations_parse() {
    let r =
        check("identity: {jwt: {accessTokenDuration: 15 minutes}}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(
        &r,
        "spec.identity.jwt.accessTokenDuration",
        "Go duration"
    ));
    let r = check("identity: {jwt: {refreshTokenDuration: '0'}}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(
        &r,
        "spec.identity.jwt.refreshTokenDuration",
        "positive"
    ));
    assert!(check("identity: {jwt: {accessTokenDuration: 1h30m, refreshTokenDuration: 720h}}\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn postgres_type_needs_a_source() {
    let r = check("database: {type: postgres}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(
        &r,
        "spec.database.type",
        "neither database.postgresSecretRef nor percona.enabled"
    ));
    assert!(check("database: {type: postgres, postgresSecretRef: {name: pg}}\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn postgres_secret_with_sqlite_type_warns() {
    let r = check(
        "database: {type: sqlite, postgresSecretRef: {name: pg}}\nstorage: {metadataSize: 1Gi}",
    );
    assert!(has_warning(
        &r,
        "spec.database.type",
        "PostgreSQL will be used"
    ));
    assert!(r.is_valid());
}

#[test]
fn percona_and_postgres_secret_warns() {
    let r = check(
        "database: {postgresSecretRef: {name: pg}}\npercona: {enabled: true}\nstorage: {metadataSize: 1Gi}",
    );
    assert!(has_warning(
        &r,
        "spec.database.postgresSecretRef",
        "Percona-managed"
    ));
    assert!(
        check("percona: {enabled: true}\nstorage: {metadataSize: 1Gi}")
            .warnings
            .is_empty()
    );
}

#[test]
fn sqlite_path_on_the_control_plane_volume() {
    let r = check("database: {sqlite: {path: /tmp/cp.db}}\nstorage: {metadataSize: 1Gi}");
    assert!(has_error(
        &r,
        "spec.database.sqlite.path",
        "not on the control-plane volume"
    ));
    assert!(has_error(
        &check("database: {sqlite: {path: /data/controlplane/}}\nstorage: {metadataSize: 1Gi}"),
        "spec.database.sqlite.path",
        "control-plane"
    ));
    assert!(
        check("database: {sqlite: {path: /data/controlplane/x.db}}\nstorage: {metadataSize: 1Gi}")
            .is_valid()
    );
}

#[test]
fn backup_needs_bucket_endpoint_and_cron() {
    let r = check(
        "percona: {enabled: true, backup: {enabled: true, fullSchedule: daily}}\nstorage: {metadataSize: 1Gi}",
    );
    assert!(has_error(&r, "spec.percona.backup.bucket", "is required"));
    assert!(has_error(&r, "spec.percona.backup.endpoint", "is required"));
    assert!(has_error(
        &r,
        "spec.percona.backup.fullSchedule",
        "not a cron schedule"
    ));
    assert!(has_warning(
        &r,
        "spec.percona.backup.credentialsSecretRef",
        "is not set"
    ));
    let ok = "percona: {enabled: true, backup: {enabled: true, bucket: b, endpoint: s3.example.com, credentialsSecretRef: {name: c}}}\nstorage: {metadataSize: 1Gi}";
    let r = check(ok);
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
}

#[test]
fn percona_replicas_and_size() {
    let r = check(
        "percona: {enabled: true, replicas: 9, storageSize: big}\nstorage: {metadataSize: 1Gi}",
    );
    assert!(has_error(&r, "spec.percona.replicas", "1 to 5"));
    assert!(has_error(&r, "spec.percona.storageSize", "not a size"));
}

#[test]
fn legacy_fields_warn() {
    let r = check(
        "cache: {size: 1GB}\nidentity: {jwt: {issuer: me}}\nsmb: {maxConnections: 3}\ndatabase: {postgresSecretRef: {name: pg, key: dsn}}\nstorage: {metadataSize: 1Gi}",
    );
    assert_eq!(
        fields(&r.warnings),
        [
            "spec.cache.size",
            "spec.database.postgresSecretRef.key",
            "spec.identity.jwt.issuer",
            "spec.smb.maxConnections"
        ]
    );
    assert!(r.is_valid());
}

#[test]
fn short_grace_period_warns() {
    // The server may take 95 s after SIGTERM, after a 5 s preStop drain.
    let r = check("terminationGracePeriodSeconds: 60\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_warning(
            &r,
            "spec.terminationGracePeriodSeconds",
            "60 s is shorter than the 100 s DittoFS may need to stop"
        ),
        "{r:?}"
    );
    assert!(r.is_valid());
    assert!(has_warning(
        &check("terminationGracePeriodSeconds: 99\nstorage: {metadataSize: 1Gi}"),
        "spec.terminationGracePeriodSeconds",
        "use at least 100"
    ));
    assert!(
        check("terminationGracePeriodSeconds: 100\nstorage: {metadataSize: 1Gi}")
            .warnings
            .is_empty()
    );
}

/// The grace period follows `shutdownTimeout` unless written, and a written one
/// is judged against the timeout in the spec.
#[test]
fn shutdown_timeout_moves_the_grace_period_and_its_minimum() {
    let longer = "shutdownTimeout: 1m\nstorage: {metadataSize: 1Gi}";
    let ds_longer = ds(longer);
    let eff = EffectiveSpec::resolve(&ds_longer);
    // 5 s preStop + 3 × 60 s + 5 s, and 5 s of slack.
    assert_eq!(eff.termination_grace_period_seconds, 195);
    assert_eq!(eff.shutdown_timeout_seconds, 60);
    assert!(check(longer).warnings.is_empty(), "{:?}", check(longer));
    let r = check(
        "shutdownTimeout: 1m\nterminationGracePeriodSeconds: 105\nstorage: {metadataSize: 1Gi}",
    );
    assert!(
        has_warning(
            &r,
            "spec.terminationGracePeriodSeconds",
            "105 s is shorter than the 190 s DittoFS may need to stop"
        ),
        "{r:?}"
    );
    assert!(has_warning(
        &r,
        "spec.terminationGracePeriodSeconds",
        "remove the field to follow shutdownTimeout (195 s)"
    ));
    // Fractions of a second count as a whole one.
    let eff = EffectiveSpec::resolve(&ds("shutdownTimeout: 1500ms\nstorage: {metadataSize: 1Gi}"));
    assert_eq!(eff.shutdown_timeout_seconds, 2);
}

#[test]
fn shutdown_timeout_is_a_positive_duration_that_fits_the_grace_period() {
    for bad in ["0s", "-5s", "thirty", "\"\"", "30", "\" 30s\""] {
        let r = check(&format!(
            "shutdownTimeout: {bad}\nstorage: {{metadataSize: 1Gi}}"
        ));
        if bad == "\"\"" {
            // Empty means unset: the default.
            assert!(r.is_valid(), "{r:?}");
            continue;
        }
        assert!(
            has_error(&r, "spec.shutdownTimeout", "is not a positive duration"),
            "{bad}: {r:?}"
        );
    }
    let r = check("shutdownTimeout: 2h\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(
            &r,
            "spec.shutdownTimeout",
            "more than 3600: use at most \"1193s\""
        ),
        "{r:?}"
    );
    assert!(check("shutdownTimeout: 1193s\nstorage: {metadataSize: 1Gi}").is_valid());
    // With a grace period written, a long timeout is the user's choice (and warned).
    let r = check(
        "shutdownTimeout: 2h\nterminationGracePeriodSeconds: 3600\nstorage: {metadataSize: 1Gi}",
    );
    assert!(r.is_valid(), "{r:?}");
    assert!(has_warning(
        &r,
        "spec.terminationGracePeriodSeconds",
        "3600 s is shorter"
    ));
    // A huge value neither overflows nor panics.
    let r = check("shutdownTimeout: 2562047h\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(&r, "spec.shutdownTimeout", "more than 3600"),
        "{r:?}"
    );
}

#[test]
fn log_output_is_a_stream_or_an_absolute_path() {
    assert!(
        check("logging: {output: stderr}\nstorage: {metadataSize: 1Gi}")
            .warnings
            .is_empty()
    );
    assert!(
        check("logging: {output: STDOUT}\nstorage: {metadataSize: 1Gi}")
            .warnings
            .is_empty()
    );
    let r = check("logging: {output: logs/dfs.log}\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(
            &r,
            "spec.logging.output",
            "neither stdout, stderr nor an absolute path"
        ),
        "{r:?}"
    );
    let r = check("logging: {output: /data/cache/dfs.log}\nstorage: {metadataSize: 1Gi}");
    assert!(r.is_valid(), "{r:?}");
    assert!(has_warning(
        &r,
        "spec.logging.output",
        "not to `kubectl logs`; DittoFS rotates it"
    ));
    let r = check("logging: {output: /var/log/dfs.log}\nstorage: {metadataSize: 1Gi}");
    assert!(has_warning(
        &r,
        "spec.logging.output",
        "lost whenever the pod is recreated"
    ));
    // The content volume exists only with contentSize.
    let r = check("logging: {output: /data/content/dfs.log}\nstorage: {metadataSize: 1Gi}");
    assert!(has_warning(&r, "spec.logging.output", "lost whenever"));
    let r = check(
        "logging: {output: /data/content/dfs.log}\nstorage: {metadataSize: 1Gi, contentSize: 1Gi}",
    );
    assert!(has_warning(&r, "spec.logging.output", "DittoFS rotates it"));
    // Level and format are enums of the CRD: anything else does not parse.
    assert!(serde_yaml_ng::from_str::<crate::crd::LoggingSpec>("{level: verbose}").is_err());
    assert!(serde_yaml_ng::from_str::<crate::crd::LoggingSpec>("{format: xml}").is_err());
}

#[test]
fn metrics_path_and_token_are_checked() {
    let r = check("metrics: {enabled: true, path: metrics}\nstorage: {metadataSize: 1Gi}");
    assert!(
        has_error(&r, "spec.metrics.path", "start it with '/'"),
        "{r:?}"
    );
    let r = check(
        "metrics: {enabled: true, bearerTokenSecret: {name: \"\", key: \"\"}}\nstorage: {metadataSize: 1Gi}",
    );
    assert!(
        has_error(&r, "spec.metrics.bearerTokenSecret.name", "is empty"),
        "{r:?}"
    );
    assert!(
        has_error(&r, "spec.metrics.bearerTokenSecret.key", "is empty"),
        "{r:?}"
    );
    let r = check(
        "metrics: {bearerTokenSecret: {name: t, key: token, optional: true}}\nstorage: {metadataSize: 1Gi}",
    );
    assert!(r.is_valid(), "{r:?}");
    assert!(has_warning(
        &r,
        "spec.metrics.bearerTokenSecret.optional",
        "is ignored"
    ));
    assert!(has_warning(
        &r,
        "spec.metrics.bearerTokenSecret",
        "no effect while metrics.enabled is false"
    ));
    let mut cluster = FakeCluster::default();
    cluster.secrets.insert("t", vec![("other", 8)]);
    let r = check_with(
        "metrics: {enabled: true, bearerTokenSecret: {name: t, key: token}}\nstorage: {metadataSize: 1Gi}",
        &cluster,
    );
    assert!(
        has_warning(
            &r,
            "spec.metrics.bearerTokenSecret",
            "(metrics bearer token) has no key token"
        ),
        "{r:?}"
    );
}

#[test]
fn service_monitor_interval_labels_and_crd() {
    let spec = |monitor: &str| {
        format!(
            "metrics: {{enabled: true, serviceMonitor: {monitor}}}\nstorage: {{metadataSize: 1Gi}}"
        )
    };
    for good in ["30s", "1m", "1h30m", "2d12h", "500ms", "0"] {
        let r = check(&spec(&format!("{{enabled: true, interval: \"{good}\"}}")));
        assert!(r.is_valid(), "{good}: {r:?}");
    }
    for bad in ["30", "1m1h", "1.5m", "30 s", "1s1s", "-1m"] {
        let r = check(&spec(&format!("{{enabled: true, interval: \"{bad}\"}}")));
        assert!(
            has_error(
                &r,
                "spec.metrics.serviceMonitor.interval",
                "is not a Prometheus duration"
            ),
            "{bad}: {r:?}"
        );
    }
    let r = check(&spec(
        "{enabled: true, labels: {release: prometheus, \"team.example.com/owner\": a-b_c.d}}",
    ));
    assert!(r.is_valid(), "{r:?}");
    let r = check(&spec(
        "{enabled: true, labels: {\"bad key!\": x, ok: \"-no\"}}",
    ));
    assert!(
        has_error(
            &r,
            "spec.metrics.serviceMonitor.labels[\"bad key!\"]",
            "is not a label key"
        ),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.metrics.serviceMonitor.labels[\"ok\"]",
            "is not a label value"
        ),
        "{r:?}"
    );
    let r = check(&spec(
        "{enabled: true, labels: {app.kubernetes.io/name: x}}",
    ));
    assert!(has_warning(
        &r,
        "spec.metrics.serviceMonitor.labels[\"app.kubernetes.io/name\"]",
        "set by the operator"
    ));
    let r = check("metrics: {serviceMonitor: {enabled: true}}\nstorage: {metadataSize: 1Gi}");
    assert!(has_warning(
        &r,
        "spec.metrics.serviceMonitor.enabled",
        "no effect while metrics.enabled is false"
    ));

    // The CRD: a warning when absent (it is made once installed), asked only when
    // a ServiceMonitor is being asked for.
    let absent = FakeCluster::default();
    let r = check_with(&spec("{enabled: true}"), &absent);
    assert!(r.is_valid(), "{r:?}");
    assert!(
        has_warning(
            &r,
            "spec.metrics.serviceMonitor.enabled",
            "the Prometheus Operator is not installed"
        ),
        "{r:?}"
    );
    let present = FakeCluster {
        service_monitor: true,
        ..Default::default()
    };
    assert!(
        check_with(&spec("{enabled: true}"), &present)
            .warnings
            .is_empty()
    );
    let quiet = FakeCluster::default();
    check_with(&spec("{enabled: false}"), &quiet);
    assert!(!quiet.asked().contains(&"servicemonitor".to_string()));
}

#[test]
fn storage_class_lookup() {
    let spec = "storage: {metadataSize: 1Gi, storageClassName: fast}";
    let missing = check_with(spec, &FakeCluster::default());
    assert!(has_error(
        &missing,
        "spec.storage.storageClassName",
        "does not exist"
    ));
    let present = FakeCluster {
        classes: vec!["fast"],
        ..Default::default()
    };
    assert!(check_with(spec, &present).is_valid());
    let broken = FakeCluster {
        broken: true,
        ..Default::default()
    };
    let r = check_with(spec, &broken);
    assert!(r.is_valid() && has_warning(&r, "spec.storage.storageClassName", "could not verify"));
    let offline = check(spec);
    assert_eq!(fields(&offline.skipped), ["spec.storage.storageClassName"]);
    // A stored object whose class was deleted since: still reconciled, with a warning.
    let d = ds(spec);
    let stored = block_on(validate_stored(
        &d.spec,
        &EffectiveSpec::resolve(&d),
        &FakeCluster::default(),
    ));
    assert!(stored.is_valid());
    assert!(has_warning(
        &stored,
        "spec.storage.storageClassName",
        "does not exist any more"
    ));
}

#[test]
fn percona_crd_lookup() {
    let spec = "percona: {enabled: true, storageClassName: pgclass}\nstorage: {metadataSize: 1Gi}";
    let none = FakeCluster {
        classes: vec!["pgclass"],
        ..Default::default()
    };
    assert!(has_error(
        &check_with(spec, &none),
        "spec.percona.enabled",
        "not installed"
    ));
    let installed = FakeCluster {
        classes: vec!["pgclass"],
        percona: true,
        ..Default::default()
    };
    assert!(check_with(spec, &installed).is_valid());
    let no_class = FakeCluster {
        percona: true,
        ..Default::default()
    };
    assert!(has_error(
        &check_with(spec, &no_class),
        "spec.percona.storageClassName",
        "does not exist"
    ));
}

#[test]
fn s3_block_is_deprecated_for_a_remote_block_store() {
    let spec = "s3: {credentialsSecretRef: {secretName: creds}, region: eu-west-1, bucket: b}\nstorage: {metadataSize: 1Gi}";
    let r = check_with(spec, &FakeCluster::default());
    assert!(r.is_valid(), "{r:?}");
    assert!(
        has_warning(&r, "spec.s3", "is deprecated and not read"),
        "{r:?}"
    );
    assert!(
        has_warning(
            &r,
            "spec.s3",
            "remoteBlockStores: [{name: s3, type: s3, s3: {bucket: b, region: eu-west-1, credentialsSecretRef: {name: creds, accessKeyIdKey: accessKeyId, secretAccessKeyKey: secretAccessKey}}}]"
        ),
        "{r:?}"
    );
    // The Secret is not looked up: nothing depends on it.
    assert_eq!(fields(&r.warnings), ["spec.s3"]);
}

#[test]
fn postgres_secret_lookup() {
    let spec = "database: {postgresSecretRef: {name: pg}}\nstorage: {metadataSize: 1Gi}";
    let partial = FakeCluster {
        secrets: BTreeMap::from([("pg", vec![("host", 9), ("user", 4)])]),
        ..Default::default()
    };
    let r = check_with(spec, &partial);
    assert!(
        has_warning(
            &r,
            "spec.database.postgresSecretRef",
            "no key database, password"
        ),
        "{r:?}"
    );
    // No port (DittoFS uses 5432) and no sslmode: nothing to say.
    let no_port = FakeCluster {
        secrets: BTreeMap::from([(
            "pg",
            vec![("host", 9), ("database", 7), ("user", 4), ("password", 12)],
        )]),
        ..Default::default()
    };
    assert!(check_with(spec, &no_port).warnings.is_empty());
    let full = FakeCluster {
        secrets: BTreeMap::from([("pg", POSTGRES_SECRET_KEYS.iter().map(|k| (*k, 8)).collect())]),
        ..Default::default()
    };
    assert!(check_with(spec, &full).warnings.is_empty());
}

#[test]
fn jwt_and_admin_secret_lookup() {
    let spec = "identity: {jwt: {secretRef: {name: j, key: k}}, admin: {passwordSecretRef: {name: a, key: p}}}\nstorage: {metadataSize: 1Gi}";
    let r = check_with(spec, &FakeCluster::default());
    assert_eq!(
        fields(&r.warnings),
        [
            "spec.identity.jwt.secretRef",
            "spec.identity.admin.passwordSecretRef"
        ]
    );
    let ok = FakeCluster {
        secrets: BTreeMap::from([("j", vec![("k", 48)]), ("a", vec![("p", 24)])]),
        ..Default::default()
    };
    assert!(check_with(spec, &ok).warnings.is_empty());
    // Managed Secrets are the operator's business: never looked up.
    assert!(
        check_with(MINIMAL, &FakeCluster::default())
            .warnings
            .is_empty()
    );
}

#[test]
fn storage_is_immutable_on_update() {
    let old = ds("storage: {metadataSize: 10Gi}");
    let grow = ds("storage: {metadataSize: 20Gi}");
    let r = block_on(validate(&grow, Some(&old), &Offline));
    assert!(
        has_error(
            &r,
            "spec.storage.metadataSize",
            "expand the PVC metadata-t-0"
        ),
        "{r:?}"
    );
    let add_content = ds("storage: {metadataSize: 10Gi, contentSize: 5Gi}");
    assert!(has_error(
        &block_on(validate(&add_content, Some(&old), &Offline)),
        "spec.storage.contentSize",
        "cannot be added"
    ));
    let class = ds("storage: {metadataSize: 10Gi, storageClassName: x}");
    assert!(has_error(
        &block_on(validate(&class, Some(&old), &Offline)),
        "spec.storage.storageClassName",
        "cannot change"
    ));
    // Writing down a default is not a change.
    let defaulted = ds("storage: {metadataSize: 10Gi, cacheSize: 5Gi, controlPlaneSize: 1Gi}");
    assert!(block_on(validate(&defaulted, Some(&old), &Offline)).is_valid());
    let other_edit = ds("replicas: 0\nstorage: {metadataSize: 10Gi}");
    assert!(block_on(validate(&other_edit, Some(&old), &Offline)).is_valid());
}

#[test]
fn admin_username_other_than_admin_is_refused_when_written() {
    const ROOT: &str = "identity: {admin: {username: root}}\nstorage: {metadataSize: 1Gi}";
    const ADMIN: &str = "identity: {admin: {username: admin}}\nstorage: {metadataSize: 1Gi}";
    let created = check(ROOT);
    assert!(
        has_error(
            &created,
            "spec.identity.admin.username",
            "always names its administrator \"admin\""
        ),
        "{created:?}"
    );
    assert!(has_error(
        &check("identity: {admin: {username: ''}}\nstorage: {metadataSize: 1Gi}"),
        "spec.identity.admin.username",
        "cannot be used"
    ));
    let r = check(ADMIN);
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
    // Changing to another name is writing it.
    assert!(has_error(
        &check_update(ADMIN, ROOT),
        "spec.identity.admin.username",
        "cannot be used"
    ));
    // An object that already holds one stays editable and reconcilable.
    let kept = check_update(ROOT, &format!("{ROOT}\nreplicas: 0"));
    assert!(
        kept.is_valid() && has_warning(&kept, "spec.identity.admin.username", "is ignored"),
        "{kept:?}"
    );
    let stored = check_stored(ROOT);
    assert!(
        stored.is_valid() && has_warning(&stored, "spec.identity.admin.username", "is ignored"),
        "{stored:?}"
    );
    assert!(check_update(ROOT, ADMIN).warnings.is_empty());
}

#[test]
fn pod_security_restricted_values_pass() {
    // What the user may still tune without leaving the restricted profile.
    let r = check(
        "securityContext: {readOnlyRootFilesystem: true, runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}, seccompProfile: {type: Localhost, localhostProfile: p.json}, procMount: Default, seLinuxOptions: {level: 's0:c1,c2', type: container_t}, appArmorProfile: {type: RuntimeDefault}}\n\
         podSecurityContext: {fsGroup: 2000, runAsUser: 1000, runAsGroup: 0, sysctls: [{name: net.ipv4.tcp_keepalive_time, value: '600'}], seccompProfile: {type: RuntimeDefault}, seLinuxOptions: {type: container_init_t}}\n\
         storage: {metadataSize: 1Gi}",
    );
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
    // A pod context that drops the operator's defaults stays compliant: the
    // container keeps runAsNonRoot and RuntimeDefault seccomp.
    assert!(check("podSecurityContext: {fsGroup: 2000}\nstorage: {metadataSize: 1Gi}").is_valid());
}

#[test]
fn pod_security_escalations_are_refused_naming_the_field() {
    let cases = [
        (
            "securityContext: {privileged: true}",
            "spec.securityContext.privileged",
        ),
        (
            "securityContext: {allowPrivilegeEscalation: true}",
            "spec.securityContext.allowPrivilegeEscalation",
        ),
        (
            "securityContext: {capabilities: {add: [NET_BIND_SERVICE, SYS_ADMIN]}}",
            "spec.securityContext.capabilities.add[1]",
        ),
        (
            "securityContext: {runAsNonRoot: false}",
            "spec.securityContext.runAsNonRoot",
        ),
        (
            "securityContext: {runAsUser: 0}",
            "spec.securityContext.runAsUser",
        ),
        (
            "securityContext: {procMount: Unmasked}",
            "spec.securityContext.procMount",
        ),
        (
            "securityContext: {seccompProfile: {type: Unconfined}}",
            "spec.securityContext.seccompProfile.type",
        ),
        (
            "securityContext: {appArmorProfile: {type: Unconfined}}",
            "spec.securityContext.appArmorProfile.type",
        ),
        (
            "securityContext: {seLinuxOptions: {type: spc_t}}",
            "spec.securityContext.seLinuxOptions.type",
        ),
        (
            "securityContext: {seLinuxOptions: {user: system_u}}",
            "spec.securityContext.seLinuxOptions.user",
        ),
        (
            "securityContext: {windowsOptions: {hostProcess: true}}",
            "spec.securityContext.windowsOptions.hostProcess",
        ),
        (
            "podSecurityContext: {runAsNonRoot: false}",
            "spec.podSecurityContext.runAsNonRoot",
        ),
        (
            "podSecurityContext: {runAsUser: 0}",
            "spec.podSecurityContext.runAsUser",
        ),
        (
            "podSecurityContext: {seccompProfile: {type: Unconfined}}",
            "spec.podSecurityContext.seccompProfile.type",
        ),
        (
            "podSecurityContext: {appArmorProfile: {type: Unconfined}}",
            "spec.podSecurityContext.appArmorProfile.type",
        ),
        (
            "podSecurityContext: {seLinuxOptions: {role: sysadm_r}}",
            "spec.podSecurityContext.seLinuxOptions.role",
        ),
        (
            "podSecurityContext: {sysctls: [{name: kernel.shm_rmid_forced, value: '1'}, {name: kernel.msgmax, value: '1'}]}",
            "spec.podSecurityContext.sysctls[1].name",
        ),
        (
            "podSecurityContext: {windowsOptions: {hostProcess: true}}",
            "spec.podSecurityContext.windowsOptions.hostProcess",
        ),
    ];
    for (yaml, field) in cases {
        let r = check(&format!("{yaml}\nstorage: {{metadataSize: 1Gi}}"));
        assert_eq!(fields(&r.errors), [field], "{yaml}: {r:?}");
        assert!(
            has_error(&r, field, "Pod Security \"restricted\" profile"),
            "{yaml}: {r:?}"
        );
    }
    // A stored object is judged the same way: the reconciler must not run it.
    assert!(
        !check_stored("securityContext: {privileged: true}\nstorage: {metadataSize: 1Gi}")
            .is_valid()
    );
}

fn update_with(old: &str, new: &str, cluster: &FakeCluster) -> Report {
    block_on(validate(&ds(new), Some(&ds(old)), cluster))
}

#[test]
fn update_looks_up_only_what_changed() {
    // Everything this object depends on has gone from the cluster since it was created.
    let gone = FakeCluster::default();
    let old = "storage: {metadataSize: 1Gi, storageClassName: deleted}\npercona: {enabled: true, storageClassName: pg-deleted}\nidentity: {jwt: {secretRef: {name: j, key: k}}}";
    let edited = format!("{old}\nreplicas: 0");
    let r = update_with(old, &edited, &gone);
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
    assert!(
        gone.asked().is_empty(),
        "nothing changed that needs the cluster"
    );

    // CREATE and the reconciler look everything up.
    let created = check_with(old, &gone);
    assert!(has_error(
        &created,
        "spec.storage.storageClassName",
        "does not exist"
    ));
    assert!(has_error(&created, "spec.percona.enabled", "not installed"));
    assert_eq!(gone.asked().len(), 4, "two classes, the CRD, the Secret");
    let ds = ds(old);
    let stored = block_on(validate_stored(
        &ds.spec,
        &EffectiveSpec::resolve(&ds),
        &gone,
    ));
    assert!(!stored.is_valid());
    assert_eq!(gone.asked().len(), 4);

    // A changed reference is looked up.
    let new_key = old.replace("key: k", "key: other");
    let r = update_with(old, &new_key, &gone);
    assert!(has_warning(
        &r,
        "spec.identity.jwt.secretRef",
        "does not exist yet"
    ));
    assert_eq!(gone.asked(), ["secret/j"]);
    let new_class = old.replace("pg-deleted", "pg-other");
    assert!(has_error(
        &update_with(old, &new_class, &gone),
        "spec.percona.storageClassName",
        "StorageClass \"pg-other\" does not exist"
    ));
    assert_eq!(gone.asked(), ["storageclass/pg-other"]);

    // Enabling Percona on an UPDATE asks whether its operator is installed.
    let before = "storage: {metadataSize: 1Gi}";
    let r = update_with(
        before,
        &format!("{before}\npercona: {{enabled: true}}"),
        &gone,
    );
    assert!(
        has_error(&r, "spec.percona.enabled", "not installed"),
        "{r:?}"
    );
    assert_eq!(gone.asked(), ["percona"]);
}

#[test]
fn a_jwt_secret_shorter_than_32_bytes_is_refused_when_readable() {
    let spec = "identity: {jwt: {secretRef: {name: j, key: k}}}\nstorage: {metadataSize: 1Gi}";
    let short = FakeCluster {
        secrets: BTreeMap::from([("j", vec![("k", 31)])]),
        ..Default::default()
    };
    let r = check_with(spec, &short);
    assert!(
        has_error(
            &r,
            "spec.identity.jwt.secretRef",
            "key k of Secret ns/j (JWT signing secret) holds 31 bytes, but DittoFS v0.29 refuses to start with fewer than 32 bytes"
        ),
        "{r:?}"
    );
    let exact = FakeCluster {
        secrets: BTreeMap::from([("j", vec![("k", MIN_JWT_SECRET_BYTES)])]),
        ..Default::default()
    };
    let r = check_with(spec, &exact);
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
    // Unreadable: nothing known, nothing refused.
    let broken = FakeCluster {
        broken: true,
        ..Default::default()
    };
    assert!(check_with(spec, &broken).is_valid());
    // Other Secrets have no minimum.
    let admin =
        "identity: {admin: {passwordSecretRef: {name: a, key: p}}}\nstorage: {metadataSize: 1Gi}";
    let one_byte = FakeCluster {
        secrets: BTreeMap::from([("a", vec![("p", 1)])]),
        ..Default::default()
    };
    assert!(check_with(admin, &one_byte).is_valid());
    // The reconciler sees the same error (a condition, not a crash-looping pod).
    let ds = ds(spec);
    assert!(
        !block_on(validate_stored(
            &ds.spec,
            &EffectiveSpec::resolve(&ds),
            &short
        ))
        .is_valid()
    );
}

// ---------------------------------------------------------------- stores and shares

const STORES: &str = "storage: {metadataSize: 1Gi, contentSize: 1Gi}\nmetadataStores: [{name: meta, type: badger}]\nlocalBlockStores: [{name: blocks, type: fs}]\n";

#[test]
fn a_declared_share_on_declared_stores_is_valid() {
    let r = check(&format!(
        "{STORES}shares: [{{name: /export, metadataStore: meta, localBlockStore: blocks, defaultPermission: read-write}}]"
    ));
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
}

#[test]
fn shares_name_absolute_paths_and_declared_stores() {
    let r = check(&format!(
        "{STORES}shares: [{{name: export, metadataStore: meta, localBlockStore: nope, remoteBlockStore: s3, defaultPermission: read}}, {{name: /, metadataStore: meta, localBlockStore: blocks, defaultPermission: read}}]"
    ));
    assert!(
        has_error(&r, "spec.shares[0].name", "is not a share path"),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.shares[0].localBlockStore",
            "\"nope\" is not declared in spec.localBlockStores"
        ),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.shares[0].remoteBlockStore",
            "\"s3\" is not declared in spec.remoteBlockStores"
        ),
        "{r:?}"
    );
    assert!(
        has_error(&r, "spec.shares[1].name", "is not a share path"),
        "{r:?}"
    );
    let twice = check(&format!(
        "{STORES}shares: [{{name: /a, metadataStore: meta, localBlockStore: blocks, defaultPermission: read}}, {{name: //a, metadataStore: meta, localBlockStore: blocks, defaultPermission: read}}]"
    ));
    assert!(!twice.is_valid(), "{twice:?}");
    // The default permission is DittoFS's own: refused, and said so.
    let none = check(&format!(
        "{STORES}shares: [{{name: /a, metadataStore: meta, localBlockStore: blocks}}]"
    ));
    assert!(none.is_valid());
    assert!(
        has_warning(
            &none,
            "spec.shares[0].defaultPermission",
            "clients without an explicit grant are refused"
        ),
        "{none:?}"
    );
}

#[test]
fn stores_live_on_the_volumes_the_spec_mounts() {
    let r = check(
        "storage: {metadataSize: 1Gi}\nmetadataStores: [{name: m, type: badger, badger: {path: /var/lib/x}}, {name: n, type: badger}, {name: o, type: badger}]\nlocalBlockStores: [{name: l, type: fs}, {name: c, type: fs, fs: {path: /data/cache/a}}, {name: t, type: fs, fs: {path: /tmp}}]",
    );
    assert!(
        has_error(
            &r,
            "spec.metadataStores[0].badger.path",
            "is not on the metadata volume"
        ),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.metadataStores[2].badger.path",
            "is also the path of spec.metadataStores[1]"
        ),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.localBlockStores[0].fs.path",
            "exists only with spec.storage.contentSize"
        ),
        "{r:?}"
    );
    assert!(
        !r.errors
            .iter()
            .any(|f| f.field == "spec.localBlockStores[1].fs.path"),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.localBlockStores[2].fs.path",
            "is on no volume of the pod"
        ),
        "{r:?}"
    );
}

#[test]
fn store_types_take_their_own_settings_and_names_are_unique() {
    let r = check(
        "storage: {metadataSize: 1Gi}\nmetadataStores: [{name: m, type: memory, badger: {path: /data/metadata}}, {name: p, type: postgres}, {name: m, type: badger}, {name: 'a/b', type: badger, badger: {path: /data/metadata/x}}]\nremoteBlockStores: [{name: r, type: s3}, {name: q, type: memory, s3: {bucket: b, credentialsSecretRef: {name: k}}}]",
    );
    assert!(
        has_error(&r, "spec.metadataStores[0].badger", "but type is memory"),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.metadataStores[1].postgres.secretRef.name",
            "is required"
        ),
        "{r:?}"
    );
    assert!(
        has_error(&r, "spec.metadataStores[2].name", "is declared twice"),
        "{r:?}"
    );
    assert!(
        has_error(&r, "spec.metadataStores[3].name", "is not a store name"),
        "{r:?}"
    );
    assert!(
        has_error(
            &r,
            "spec.remoteBlockStores[0].s3",
            "is required for an s3 store"
        ),
        "{r:?}"
    );
    assert!(
        has_error(&r, "spec.remoteBlockStores[1].s3", "but type is memory"),
        "{r:?}"
    );
}

#[test]
fn s3_endpoints_on_private_addresses_need_the_flag() {
    let store = |extra: &str| {
        check(&format!(
            "storage: {{metadataSize: 1Gi}}\nremoteBlockStores: [{{name: s3, type: s3, s3: {{bucket: b, credentialsSecretRef: {{name: k}}{extra}}}}}]"
        ))
    };
    let r = store(", endpoint: 'http://minio.storage.svc:9000'");
    assert!(r.is_valid());
    assert!(
        has_warning(
            &r,
            "spec.remoteBlockStores[0].s3.endpoint",
            "set it for an in-cluster MinIO or Ceph"
        ),
        "{r:?}"
    );
    assert!(
        store(", endpoint: 'http://minio.storage.svc:9000', allowPrivateEndpoint: true")
            .warnings
            .is_empty()
    );
    assert!(
        store(", endpoint: 'https://s3.eu-west-1.amazonaws.com'")
            .warnings
            .is_empty()
    );
    assert!(has_error(
        &store(", endpoint: 'ftp://x'"),
        "spec.remoteBlockStores[0].s3.endpoint",
        "scheme other than http or https"
    ));
    let missing = check(
        "storage: {metadataSize: 1Gi}\nremoteBlockStores: [{name: s3, type: s3, s3: {bucket: '', credentialsSecretRef: {name: ''}}}]",
    );
    assert!(
        has_error(
            &missing,
            "spec.remoteBlockStores[0].s3.bucket",
            "is required"
        ),
        "{missing:?}"
    );
    assert!(
        has_error(
            &missing,
            "spec.remoteBlockStores[0].s3.credentialsSecretRef.name",
            "static keys only"
        ),
        "{missing:?}"
    );
}

#[test]
fn a_postgres_metadata_store_needs_its_own_database() {
    let r = check(
        "storage: {metadataSize: 1Gi}\ndatabase: {postgresSecretRef: {name: pg}}\nmetadataStores: [{name: m, type: postgres, postgres: {secretRef: {name: pg}}}]",
    );
    assert!(
        has_error(
            &r,
            "spec.metadataStores[0].postgres.secretRef.name",
            "needs a database of its own"
        ),
        "{r:?}"
    );
}

#[test]
fn store_secrets_are_looked_up_and_named_when_absent() {
    let cluster = FakeCluster::default();
    let r = check_with(
        "storage: {metadataSize: 1Gi}\nremoteBlockStores: [{name: s3, type: s3, s3: {bucket: b, credentialsSecretRef: {name: missing-keys}}}]",
        &cluster,
    );
    assert!(
        has_warning(
            &r,
            "spec.remoteBlockStores[0].s3.credentialsSecretRef",
            "or the operator cannot create the store"
        ),
        "{r:?}"
    );
}

/// HTTPS on the REST API: DittoFS refuses a client CA without a certificate, and
/// under mutual TLS the operator needs a certificate of its own.
#[test]
fn api_tls_fields_need_their_companions() {
    const BASE: &str = "storage: {metadataSize: 1Gi}\n";
    let r = check(&format!("{BASE}controlPlane: {{certSecretName: api-tls}}"));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = check(&format!(
        "{BASE}controlPlane: {{certSecretName: api-tls, clientCASecretName: ca, operatorCertSecretName: op}}"
    ));
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    let r = check(&format!(
        "{BASE}controlPlane: {{clientCASecretName: ca, operatorCertSecretName: op}}"
    ));
    assert!(
        has_error(
            &r,
            "spec.controlPlane.clientCASecretName",
            "requires spec.controlPlane.certSecretName"
        ),
        "{:?}",
        r.errors
    );
    let r = check(&format!(
        "{BASE}controlPlane: {{certSecretName: api-tls, clientCASecretName: ca}}"
    ));
    assert!(
        has_error(
            &r,
            "spec.controlPlane.operatorCertSecretName",
            "the operator too"
        ),
        "{:?}",
        r.errors
    );
    let r = check(&format!(
        "{BASE}controlPlane: {{certSecretName: api-tls, operatorCertSecretName: op}}"
    ));
    assert!(
        has_error(
            &r,
            "spec.controlPlane.operatorCertSecretName",
            "used only with"
        ),
        "{:?}",
        r.errors
    );
    let r = check(&format!("{BASE}controlPlane: {{certSecretName: API_TLS}}"));
    assert!(
        has_error(&r, "spec.controlPlane.certSecretName", "not a Secret name"),
        "{:?}",
        r.errors
    );
}

/// The certificate Secrets must be of type `kubernetes.io/tls` with both files;
/// the client CA needs `ca.crt`. Absent Secrets only warn (made later).
#[test]
fn api_tls_secrets_are_looked_up() {
    const SPEC: &str = "storage: {metadataSize: 1Gi}\ncontrolPlane: {certSecretName: api-tls, clientCASecretName: ca, operatorCertSecretName: op}";
    let good = FakeCluster {
        secrets: BTreeMap::from([
            (
                "api-tls",
                vec![("tls.crt", 900), ("tls.key", 200), ("ca.crt", 700)],
            ),
            ("ca", vec![("ca.crt", 700)]),
            ("op", vec![("tls.crt", 900), ("tls.key", 200)]),
        ]),
        secret_types: BTreeMap::from([
            ("api-tls", "kubernetes.io/tls"),
            ("op", "kubernetes.io/tls"),
        ]),
        ..Default::default()
    };
    let r = check_with(SPEC, &good);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");

    let opaque = FakeCluster {
        secrets: BTreeMap::from([
            ("api-tls", vec![("tls.crt", 900)]),
            ("ca", vec![("tls.crt", 700)]),
        ]),
        ..Default::default()
    };
    let r = check_with(SPEC, &opaque);
    assert!(
        has_error(
            &r,
            "spec.controlPlane.certSecretName",
            "is of type Opaque, not kubernetes.io/tls"
        ),
        "{r:?}"
    );
    assert!(
        has_warning(&r, "spec.controlPlane.certSecretName", "has no key tls.key"),
        "{r:?}"
    );
    assert!(
        has_warning(
            &r,
            "spec.controlPlane.clientCASecretName",
            "has no key ca.crt"
        ),
        "{r:?}"
    );
    assert!(
        has_warning(
            &r,
            "spec.controlPlane.operatorCertSecretName",
            "does not exist yet: create it, or the operator cannot reach the REST API"
        ),
        "{r:?}"
    );
}

// ---------------------------------------------------------------- snapshot policies

const SHARED: &str = "shares: [{name: /export, metadataStore: meta, localBlockStore: blocks, defaultPermission: read-write}, {name: /archive, metadataStore: meta, localBlockStore: blocks, defaultPermission: read}]\n";

fn policies(list: &str) -> Report {
    check(&format!("{STORES}{SHARED}snapshotPolicies: {list}"))
}

#[test]
fn snapshot_policies_of_declared_shares_are_valid() {
    let r = policies(
        "[{share: /export, interval: '@daily', keepLast: 7, ttl: 720h, namePrefix: nightly}, {share: archive, interval: ' @HOURLY ', ttl: '0', enabled: false}]",
    );
    assert!(r.is_valid() && r.warnings.is_empty(), "{r:?}");
    let r = policies("[{share: /export, interval: 1h30m, ttl: ''}]");
    assert!(r.is_valid(), "{r:?}");
}

#[test]
fn a_snapshot_policy_names_one_declared_share_once() {
    let r = policies("[{share: /scratch, interval: '@daily'}, {share: '', interval: '@daily'}]");
    assert!(
        has_error(
            &r,
            "spec.snapshotPolicies[0].share",
            "\"/scratch\" is not declared in spec.shares"
        ),
        "{r:?}"
    );
    assert!(
        has_error(&r, "spec.snapshotPolicies[1].share", "is required"),
        "{r:?}"
    );
    // With or without its slash, the same share: DittoFS keeps one policy per share.
    let twice = policies("[{share: /export, interval: '@daily'}, {share: export, interval: 1h}]");
    assert!(
        has_error(
            &twice,
            "spec.snapshotPolicies[1].share",
            "already has a policy (DittoFS keeps one per share)"
        ),
        "{twice:?}"
    );
    assert_eq!(twice.errors.len(), 1, "{twice:?}");
}

#[test]
fn snapshot_policy_values_are_those_dittofs_accepts() {
    for (interval, why) in [
        ("''", "is empty"),
        ("'@monthly'", "is not a shorthand DittoFS knows"),
        ("'0s'", "is not above zero"),
        ("'-1h'", "is not above zero"),
        ("1d", "is not a Go duration"),
    ] {
        let r = policies(&format!("[{{share: /export, interval: {interval}}}]"));
        assert!(
            has_error(&r, "spec.snapshotPolicies[0].interval", why),
            "{interval}: {r:?}"
        );
        assert!(
            has_error(
                &r,
                "spec.snapshotPolicies[0].interval",
                "use @hourly, @daily"
            ),
            "{r:?}"
        );
    }
    for ttl in ["-1h", "30 days", "' 1h'", "7d"] {
        let r = policies(&format!("[{{share: /export, interval: 1h, ttl: {ttl}}}]"));
        assert!(
            has_error(
                &r,
                "spec.snapshotPolicies[0].ttl",
                "is not a Go duration of zero or more"
            ),
            "{ttl}: {r:?}"
        );
    }
    let r = policies("[{share: /export, interval: 1h, keepLast: -1}]");
    assert!(
        has_error(
            &r,
            "spec.snapshotPolicies[0].keepLast",
            "-1 is negative: use 0 (keep all) or more"
        ),
        "{r:?}"
    );
    for prefix in ["a/b", "snap.shot", &"x".repeat(65)] {
        let r = policies(&format!(
            "[{{share: /export, interval: 1h, namePrefix: '{prefix}'}}]"
        ));
        assert!(
            has_error(
                &r,
                "spec.snapshotPolicies[0].namePrefix",
                "is not a snapshot name prefix"
            ),
            "{prefix}: {r:?}"
        );
    }
    // Empty is the default prefix, not an error.
    assert!(policies("[{share: /export, interval: 1h, namePrefix: ''}]").is_valid());
}

const LDAP: &str = "storage: {metadataSize: 1Gi}\nidentity:\n  ldap: {enabled: true, url: 'ldaps://dc.example.com', baseDN: 'dc=example,dc=com', bindDN: 'cn=svc,dc=example,dc=com', bindPasswordSecretRef: {name: bind, key: password}}";

#[test]
fn ldap_good_is_clean_and_defaults_as_the_server() {
    let r = check(LDAP);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    let eff = EffectiveSpec::resolve(&ds(LDAP));
    let ldap = eff.ldap.expect("enabled");
    assert_eq!(ldap.user_attr, "sAMAccountName");
    assert_eq!(ldap.idmap, crate::crd::LdapIdmap::Rfc2307);
    // The defaulting webhook writes them into the spec; not the derived Kerberos
    // names, which follow the principal.
    let mut spec = ds(&format!(
        "{LDAP}\n  kerberos: {{enabled: true, servicePrincipal: 'a@B'}}"
    ))
    .spec;
    crate::defaults::apply_defaults(&mut spec);
    let identity = spec.identity.expect("identity");
    let written = identity.ldap.expect("ldap");
    assert_eq!(written.user_attr.as_deref(), Some("sAMAccountName"));
    assert_eq!(written.idmap, Some(crate::crd::LdapIdmap::Rfc2307));
    assert_eq!(written.start_tls, Some(false));
    let krb = identity.kerberos.expect("kerberos");
    assert_eq!((krb.realm, krb.dns_domain), (None, None));
    // A block without `enabled: true` is off (the Go operator's default).
    let off = LDAP.replace("enabled: true, ", "");
    assert!(EffectiveSpec::resolve(&ds(&off)).ldap.is_none());
    assert!(check(&off).errors.is_empty());
}

#[test]
fn ldap_needs_its_fields_and_a_bind_password() {
    let r =
        check("storage: {metadataSize: 1Gi}\nidentity:\n  ldap: {enabled: true, userAttr: '1uid'}");
    for (field, text) in [
        ("spec.identity.ldap.url", "is required"),
        ("spec.identity.ldap.baseDN", "is required"),
        ("spec.identity.ldap.bindDN", "is required"),
        (
            "spec.identity.ldap.bindPasswordSecretRef.name",
            "bind password",
        ),
        ("spec.identity.ldap.userAttr", "not an LDAP attribute name"),
    ] {
        assert!(has_error(&r, field, text), "{field}: {r:?}");
    }
    let r = check(&LDAP.replace("key: password", "key: ''"));
    assert!(
        has_error(
            &r,
            "spec.identity.ldap.bindPasswordSecretRef.key",
            "is required"
        ),
        "{r:?}"
    );
    // idmap is an enum: refused at parse, naming the field.
    let e = crate::crd::parse_spec(serde_json::json!({"storage": {"metadataSize": "1Gi"}, "identity": {"ldap": {"idmap": "ad"}}}))
        .expect_err("refused");
    assert_eq!(e.field, "spec.identity.ldap.idmap");
}

#[test]
fn ldap_url_scheme_and_plaintext() {
    let r = check(&LDAP.replace("ldaps://", "http://"));
    assert!(
        has_error(&r, "spec.identity.ldap.url", "ldaps:// or ldap://"),
        "{r:?}"
    );
    let plain = LDAP.replace("ldaps://", "ldap://");
    let r = check(&plain);
    assert!(has_error(&r, "spec.identity.ldap.url", "startTLS"), "{r:?}");
    let r = check(&plain.replace("enabled: true,", "enabled: true, startTLS: true,"));
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    let r = check(&plain.replace("enabled: true,", "enabled: true, allowPlaintext: true,"));
    assert!(r.is_valid(), "{r:?}");
    assert!(
        has_warning(&r, "spec.identity.ldap.allowPlaintext", "unencrypted"),
        "{r:?}"
    );
    let r = check(&LDAP.replace("enabled: true,", "enabled: true, insecureSkipVerify: true,"));
    assert!(
        has_warning(
            &r,
            "spec.identity.ldap.insecureSkipVerify",
            "caCertSecretRef"
        ),
        "{r:?}"
    );
}

const KERBEROS: &str = "storage: {metadataSize: 1Gi}\nidentity:\n  kerberos: {enabled: true, servicePrincipal: 'nfs/files.example.com@EXAMPLE.COM', netbiosDomain: EXAMPLE, keytabSecretRef: {name: kt, key: keytab}, machineAccount: {enabled: true, accountName: 'DITTOFS$', secretRef: {name: ma, key: secret}}}";

#[test]
fn kerberos_good_is_clean_and_derives_as_the_server() {
    let r = check(KERBEROS);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    let krb = EffectiveSpec::resolve(&ds(KERBEROS))
        .kerberos
        .expect("enabled");
    assert_eq!(
        (krb.realm.as_str(), krb.dns_domain.as_str()),
        ("EXAMPLE.COM", "example.com")
    );
    assert!(krb.realm_written.is_empty(), "not written into the spec");
}

#[test]
fn kerberos_needs_a_principal_a_keytab_and_server_shaped_names() {
    let r = check(
        "storage: {metadataSize: 1Gi}\nidentity:\n  kerberos: {enabled: true, realm: 'EX AMPLE', netbiosDomain: ex.ample, dnsDomain: 'a/b'}",
    );
    for (field, text) in [
        ("spec.identity.kerberos.servicePrincipal", "is required"),
        ("spec.identity.kerberos.keytabSecretRef.name", "keytab"),
        ("spec.identity.kerberos.realm", "must not contain"),
        ("spec.identity.kerberos.netbiosDomain", "one NetBIOS label"),
        ("spec.identity.kerberos.dnsDomain", "must not contain"),
    ] {
        assert!(has_error(&r, field, text), "{field}: {r:?}");
    }
    // A realm derived from the principal is blamed on the principal.
    let r = check(&KERBEROS.replace("@EXAMPLE.COM", "@EXAMPLE COM"));
    assert!(
        has_error(&r, "spec.identity.kerberos.servicePrincipal", "realm"),
        "{r:?}"
    );
}

#[test]
fn a_machine_account_needs_its_name_secret_domain_and_realm() {
    let r = check(
        &KERBEROS
            .replace("netbiosDomain: EXAMPLE, ", "")
            .replace("@EXAMPLE.COM", "")
            .replace(
                "accountName: 'DITTOFS$', secretRef: {name: ma, key: secret}",
                "dcAddress: ['']",
            ),
    );
    for (field, text) in [
        (
            "spec.identity.kerberos.machineAccount.accountName",
            "is required",
        ),
        (
            "spec.identity.kerberos.machineAccount.secretRef.name",
            "machine account",
        ),
        ("spec.identity.kerberos.netbiosDomain", "NTLM pass-through"),
        ("spec.identity.kerberos.realm", "NTLM pass-through"),
        ("spec.identity.kerberos.machineAccount.dcAddress[0]", "host"),
    ] {
        assert!(has_error(&r, field, text), "{field}: {r:?}");
    }
    let r = check(&KERBEROS.replace("kerberos: {enabled: true,", "kerberos: {"));
    assert!(
        has_warning(
            &r,
            "spec.identity.kerberos.machineAccount.enabled",
            "kerberos.enabled"
        ),
        "{r:?}"
    );
}

#[test]
fn identity_secrets_are_looked_up() {
    let spec = format!(
        "{KERBEROS}\n  ldap: {{enabled: true, url: 'ldaps://dc', baseDN: a, bindDN: b, bindPasswordSecretRef: {{name: bind, key: password}}}}"
    );
    let absent = FakeCluster::default();
    let r = check_with(&spec, &absent);
    for field in [
        "spec.identity.ldap.bindPasswordSecretRef",
        "spec.identity.kerberos.keytabSecretRef",
        "spec.identity.kerberos.machineAccount.secretRef",
    ] {
        assert!(
            has_warning(&r, field, "does not exist yet"),
            "{field}: {r:?}"
        );
    }
    let empty = FakeCluster {
        secrets: BTreeMap::from([
            ("bind", vec![("password", 0)]),
            ("kt", vec![("other", 5)]),
            ("ma", vec![("secret", 8)]),
        ]),
        ..Default::default()
    };
    let r = check_with(&spec, &empty);
    assert!(
        has_error(&r, "spec.identity.ldap.bindPasswordSecretRef", "is empty"),
        "{r:?}"
    );
    assert!(
        has_warning(
            &r,
            "spec.identity.kerberos.keytabSecretRef",
            "no key keytab"
        ),
        "{r:?}"
    );
    assert!(!fields(&r.warnings).contains(&"spec.identity.kerberos.machineAccount.secretRef"));
}

#[test]
fn optional_identity_secret_keys_warn() {
    let r = check(&LDAP.replace("key: password}", "key: password, optional: true}"));
    assert!(
        has_warning(
            &r,
            "spec.identity.ldap.bindPasswordSecretRef.optional",
            "is ignored"
        ),
        "{r:?}"
    );
}
