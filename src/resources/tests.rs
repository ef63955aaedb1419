//! Builder tests from the YAML samples (no cluster, no I/O beyond reading fixtures).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Service};

use super::*;

fn sample(name: &str) -> DittoServer {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).expect("sample exists");
    let docs = crate::manifest::parse_documents(&path.display().to_string(), &text).expect("yaml");
    let doc = docs
        .iter()
        .find(|d| crate::manifest::is_ditto_server(d))
        .expect("a DittoServer");
    crate::manifest::ditto_server(doc).expect("valid DittoServer")
}

fn from_yaml(spec: &str) -> DittoServer {
    let doc = format!(
        "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {{name: t, namespace: ns, uid: 1234}}\nspec:\n{}",
        spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    serde_yaml_ng::from_str(&doc).expect("fixture parses")
}

fn inputs() -> BuildInputs {
    BuildInputs {
        secrets: BTreeMap::new(),
        managed: ManagedSecretValues {
            jwt_secret: "j".repeat(43),
            admin_password: "p".repeat(32),
            account_password: "a".repeat(32),
        },
        ..Default::default()
    }
}

fn build(ds: &DittoServer) -> Children {
    build_all(ds, &EffectiveSpec::resolve(ds), &inputs()).expect("builds")
}

fn pod(c: &Children) -> &PodSpec {
    c.stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn server(c: &Children) -> &Container {
    &pod(c).containers[0]
}

fn svc<'a>(c: &'a Children, name: &str) -> &'a Service {
    c.services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .expect("service exists")
}

fn env<'a>(c: &'a Children, name: &str) -> Option<&'a EnvVar> {
    server(c).env.iter().flatten().find(|e| e.name == name)
}

const SAMPLES: [&str; 12] = [
    "minimal",
    "memory",
    "s3",
    "postgres",
    "percona",
    "smb",
    "metrics",
    "servicemonitor",
    "tls",
    "snapshots",
    "ldap",
    "kerberos",
];

#[test]
fn config_yaml_matches_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for name in SAMPLES {
        let rendered =
            configmap::render_config(&EffectiveSpec::resolve(&sample(name))).expect("renders");
        let golden = dir.join(format!("{name}.config.yaml"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&golden, &rendered).expect("write golden");
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", golden.display()));
        assert_eq!(
            rendered,
            expected,
            "{name}: config.yaml differs from {}",
            golden.display()
        );
    }
}

/// `logging` and `shutdownTimeout` reach config.yaml as the server reads them
/// (`pkg/config/config.go`), roll the pod (the config hash), and the grace period
/// follows the timeout.
#[test]
fn logging_and_shutdown_timeout_are_rendered_and_roll_the_pod() {
    let plain = sample("minimal");
    let mut tuned = plain.clone();
    tuned.spec.logging = Some(crate::crd::LoggingSpec {
        level: Some(crate::crd::LogLevel::Debug),
        format: Some(crate::crd::LogFormat::Text),
        output: Some("stderr".into()),
    });
    tuned.spec.shutdown_timeout = Some("45s".into());
    let yaml = configmap::render_config(&EffectiveSpec::resolve(&tuned)).expect("renders");
    assert!(
        yaml.contains(
            "logging:\n  level: DEBUG\n  format: text\n  output: stderr\nshutdown_timeout: 45s\n"
        ),
        "{yaml}"
    );
    let (before, after) = (build(&plain), build(&tuned));
    assert_ne!(before.config_hash, after.config_hash);
    // 5 s preStop + 3 × 45 s + 5 s, and 5 s of slack.
    assert_eq!(pod(&after).termination_grace_period_seconds, Some(150));
    assert_eq!(pod(&before).termination_grace_period_seconds, Some(105));
}

#[test]
fn config_never_contains_secrets() {
    for name in SAMPLES {
        let c = build(&sample(name));
        let yaml = &c.config_map.data.as_ref().expect("data")["config.yaml"];
        for needle in [
            "jjjj",
            "pppp",
            "password:",
            "secret:",
            "example-secret-access-key",
        ] {
            assert!(!yaml.contains(needle), "{name}: config.yaml leaks {needle}");
        }
    }
}

#[test]
fn file_service_maps_client_ports_to_adapter_ports() {
    let c = build(&sample("smb"));
    let file = svc(&c, "files-file");
    let spec = file.spec.as_ref().expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let ports: Vec<(String, i32, String)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let target = match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                    s.clone()
                }
                other => format!("{other:?}"),
            };
            (p.name.clone().unwrap_or_default(), p.port, target)
        })
        .collect();
    // Before the server was read: the spec's adapter ports, by number; with the
    // portmapper (on by default) on 111 and the NFS adapter's own port too.
    let int = |p: i32| {
        format!(
            "{:?}",
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p))
        )
    };
    assert_eq!(
        ports,
        [
            ("nfs".into(), 2049, int(12049)),
            ("nfs-adapter".into(), 12049, int(12049)),
            ("portmap-tcp".into(), 111, int(10111)),
            ("portmap-udp".into(), 111, int(10111)),
            ("smb".into(), 445, int(1445)),
        ]
    );
    // The adapters' ports are not declared in the pod: they move without a restart.
    let container: Vec<(String, i32)> = server(&c)
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(container, [("api".into(), 8080)]);
    // Once read, the live ports: an adapter moved by hand is where clients go.
    let ds = sample("smb");
    let eff = EffectiveSpec::resolve(&ds);
    let live = crate::crd::ServerStatus {
        adapters: vec![
            crate::crd::AdapterStatus {
                adapter_type: "nfs".into(),
                port: 13049,
                enabled: true,
                running: true,
            },
            crate::crd::AdapterStatus {
                adapter_type: "smb".into(),
                port: 1446,
                enabled: true,
                running: true,
            },
        ],
        portmapper_port: Some(10112),
        ..Default::default()
    };
    let services = crate::resources::service::build_services(&ds, &eff, Some(&live));
    let file = services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("files-file"))
        .expect("file");
    let targets: Vec<(String, String)> = file
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                format!("{:?}", p.target_port),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("nfs".into(), int(13049)),
            ("nfs-adapter".into(), int(13049)),
            ("portmap-tcp".into(), int(10112)),
            ("portmap-udp".into(), int(10112)),
            ("smb".into(), int(1446)),
        ]
    );
    // The server pod's NetworkPolicy admits exactly those live ports, and the API.
    let policy = crate::resources::network_policy::build_network_policy(&ds, &eff, &services);
    let admitted: Vec<(String, String)> = policy
        .spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .flat_map(|rule| rule.ports.iter().flatten())
        .map(|p| {
            (
                p.protocol.clone().unwrap_or_default(),
                format!("{:?}", p.port),
            )
        })
        .collect();
    let named = |n: &str| {
        format!(
            "{:?}",
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n.into()))
        )
    };
    assert_eq!(
        admitted,
        [
            ("TCP".into(), int(1446)),
            ("TCP".into(), int(10112)),
            ("TCP".into(), int(13049)),
            ("TCP".into(), named("api")),
            ("UDP".into(), int(10112)),
        ]
    );
}

#[test]
fn services_carry_type_and_annotations_headless_and_metrics_do_not() {
    let c = build(&sample("s3"));
    let api = svc(&c, "s3-backed-api");
    assert_eq!(
        api.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    assert!(
        api.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("service.beta.kubernetes.io/aws-load-balancer-type"))
    );
    let headless = svc(&c, "s3-backed-headless");
    assert_eq!(
        headless.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        Some("None")
    );
    assert!(headless.metadata.annotations.is_none());
    assert_eq!(c.services.len(), 3, "no metrics Service unless enabled");
    let m = build(&sample("metrics"));
    let metrics = svc(&m, "observed-metrics");
    assert_eq!(
        metrics.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("ClusterIP")
    );
}

/// `adapterServices` exposes the file Service apart from the REST API (the Go
/// operator's field); unset, the file Service follows `service`.
#[test]
fn adapter_services_expose_the_file_service_apart_from_the_api() {
    let c = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nservice: {type: ClusterIP, annotations: {api: x}}\nadapterServices: {type: LoadBalancer, annotations: {lb: nfs}}",
    ));
    let kind = |s: &Service| s.spec.as_ref().and_then(|s| s.type_.clone());
    let file = svc(&c, "t-file");
    let api = svc(&c, "t-api");
    assert_eq!(kind(file).as_deref(), Some("LoadBalancer"));
    assert_eq!(kind(api).as_deref(), Some("ClusterIP"));
    assert_eq!(
        file.metadata.annotations,
        Some(BTreeMap::from([("lb".to_string(), "nfs".to_string())]))
    );
    assert_eq!(
        api.metadata.annotations,
        Some(BTreeMap::from([("api".to_string(), "x".to_string())]))
    );
    // Unset: the file Service follows `service`.
    let c = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nservice: {type: NodePort, annotations: {a: b}}",
    ));
    let file = svc(&c, "t-file");
    assert_eq!(kind(file).as_deref(), Some("NodePort"));
    assert_eq!(
        file.metadata.annotations,
        Some(BTreeMap::from([("a".to_string(), "b".to_string())]))
    );
    let mut spec = from_yaml("storage: {metadataSize: 1Gi}\nservice: {type: NodePort}").spec;
    crate::defaults::apply_defaults(&mut spec);
    assert_eq!(
        spec.adapter_services, None,
        "not written: it keeps following service.type"
    );
}

#[test]
fn volume_claim_templates_and_retention() {
    // metrics.yaml keeps its share on the cache volume: no content volume.
    let minimal = build(&sample("metrics"));
    let sts = minimal.stateful_set.spec.as_ref().expect("spec");
    let names: Vec<_> = sts
        .volume_claim_templates
        .iter()
        .flatten()
        .filter_map(|v| v.metadata.name.clone())
        .collect();
    assert_eq!(names, ["metadata", "cache", "controlplane"]);
    let policy = sts
        .persistent_volume_claim_retention_policy
        .as_ref()
        .expect("policy");
    assert_eq!(
        (
            policy.when_deleted.as_deref(),
            policy.when_scaled.as_deref()
        ),
        (Some("Retain"), Some("Retain"))
    );
    let mounts: Vec<_> = server(&minimal)
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    assert!(
        mounts.contains(&"/data/controlplane".to_string()),
        "the SQLite DB must live on a PVC"
    );
    let with_content = build(&sample("postgres"));
    let n = with_content
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .map(Vec::len);
    assert_eq!(n, Some(4));
}

#[test]
fn secrets_reach_the_pod_as_env_under_the_server_names() {
    let c = build(&sample("postgres"));
    let host = env(&c, "DITTOFS_DATABASE_POSTGRES_HOST").expect("host env");
    let r = host
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secret ref");
    assert_eq!(
        (r.name.as_str(), r.key.as_str()),
        ("dittofs-postgres", "host")
    );
    assert_eq!(r.optional, None, "host is required");
    // The server defaults the port to 5432: a Secret without it still starts the pod.
    let port = env(&c, "DITTOFS_DATABASE_POSTGRES_PORT")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("port ref");
    assert_eq!((port.key.as_str(), port.optional), ("port", Some(true)));
    assert!(env(&c, "DITTOFS_CONTROLPLANE_SECRET").is_some());
    assert!(env(&c, "DITTOFS_ADMIN_INITIAL_PASSWORD").is_some());
    assert!(
        env(&c, "DITTOFS_ADMIN_PASSWORD_HASH").is_none(),
        "the Go operator's dead variable"
    );

    let p = build(&sample("percona"));
    let db = env(&p, "DITTOFS_DATABASE_POSTGRES_DATABASE")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("db env");
    assert_eq!(
        (db.name.as_str(), db.key.as_str()),
        ("ha-db-postgres-pguser-dittofs", "dbname")
    );
    let config = &p.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        config.contains("type: postgres"),
        "Percona really connects the server"
    );

    // DittoFS v0.29 reads no AWS_* variable: S3 keys live in the block store.
    let s3 = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\ns3: {credentialsSecretRef: {secretName: s3}, region: r}",
    ));
    let names: Vec<&str> = server(&s3)
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("AWS_")), "{names:?}");
}

#[test]
fn pod_is_restricted_and_probed() {
    for name in SAMPLES {
        let c = build(&sample(name));
        let pod = pod(&c);
        assert_eq!(pod.automount_service_account_token, Some(false));
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = container
                .security_context
                .as_ref()
                .expect("security context");
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{name}/{}",
                container.name
            );
            assert_eq!(sc.run_as_non_root, Some(true));
            assert!(
                sc.capabilities
                    .as_ref()
                    .and_then(|c| c.drop.as_ref())
                    .is_some_and(|d| d.contains(&"ALL".to_string()))
            );
            assert_eq!(
                sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
                Some("RuntimeDefault")
            );
        }
        let s = server(&c);
        let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        // Under mutual TLS the probes only connect (see api_tls_is_mounted_…).
        if name != "tls" {
            assert_eq!(path(&s.liveness_probe).as_deref(), Some("/health"));
            assert_eq!(path(&s.readiness_probe).as_deref(), Some("/health/ready"));
        }
        let startup = s.startup_probe.as_ref().expect("startup");
        assert_eq!(
            startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3),
            150
        );
        assert!(
            pod.termination_grace_period_seconds.unwrap_or(30)
                >= crate::defaults::min_termination_grace_seconds(
                    crate::defaults::DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
                )
        );
    }
    let p = build(&sample("percona"));
    let init = pod(&p).init_containers.as_ref().expect("wait-for-postgres");
    assert_eq!(init[0].name, "wait-for-postgres");
}

#[test]
fn user_security_context_is_merged_over_the_defaults() {
    let c = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nsecurityContext: {readOnlyRootFilesystem: true, capabilities: {add: [NET_BIND_SERVICE]}}",
    ));
    let sc = server(&c).security_context.as_ref().expect("sc");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().expect("caps");
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_BIND_SERVICE".to_string()][..])
    );
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
}

#[test]
fn managed_secrets_only_when_the_user_gives_none() {
    let managed = build(&from_yaml("storage: {metadataSize: 1Gi}"));
    let names: Vec<_> = managed
        .managed_secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["t-jwt-secret", "t-admin-bootstrap-credentials"]);
    let user = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nidentity: {jwt: {secretRef: {name: j, key: k}}, admin: {passwordSecretRef: {name: a, key: p}}}",
    ));
    assert!(user.managed_secrets.is_empty());
    let jwt = env(&user, "DITTOFS_CONTROLPLANE_SECRET")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("ref");
    assert_eq!((jwt.name.as_str(), jwt.key.as_str()), ("j", "k"));
}

#[test]
fn the_credentials_secret_and_config_always_say_admin() {
    // An object from before the username rule: the server still creates `admin`.
    let c = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nidentity: {admin: {username: root}}",
    ));
    let secret = c
        .managed_secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("t-admin-bootstrap-credentials"))
        .expect("credentials Secret");
    let username = &secret.data.as_ref().expect("data")["username"];
    assert_eq!(username.0, b"admin");
    let config = &c.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(config.contains("username: admin"), "{config}");
    assert!(!config.contains("root"), "{config}");
}

#[test]
fn generated_values_are_long_and_random() {
    let a = generate_managed_values().expect("rng");
    let b = generate_managed_values().expect("rng");
    assert!(a.jwt_secret.len() >= 32 && a.admin_password.len() >= 24);
    assert_ne!(a, b);
}

#[test]
fn percona_owner_reference_only_with_delete_with_server() {
    let kept = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\npercona: {enabled: true}",
    ));
    let cluster = kept.percona_cluster.as_ref().expect("cluster");
    assert!(
        cluster.metadata.owner_references.is_none(),
        "GC must never take the database"
    );
    assert_eq!(cluster.data["spec"]["backups"]["enabled"], false);
    let deleted = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\npercona: {enabled: true, deleteWithServer: true}",
    ));
    assert!(
        deleted
            .percona_cluster
            .as_ref()
            .and_then(|c| c.metadata.owner_references.as_ref())
            .is_some()
    );
    // Our other children are owned, so GC removes them with the DittoServer.
    assert!(kept.config_map.metadata.owner_references.is_some());
}

#[test]
fn percona_backups_when_configured() {
    let c = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\npercona: {enabled: true, backup: {enabled: true, bucket: b, endpoint: e, retentionDays: 14, credentialsSecretRef: {name: creds}}}",
    ));
    let backups = &c.percona_cluster.as_ref().expect("cluster").data["spec"]["backups"];
    assert_eq!(backups["enabled"], true);
    assert_eq!(
        backups["pgbackrest"]["global"]["repo1-retention-full"],
        "14"
    );
    assert_eq!(backups["pgbackrest"]["repos"][0]["s3"]["bucket"], "b");
    assert_eq!(
        backups["pgbackrest"]["configuration"][0]["secret"]["name"],
        "creds"
    );
}

fn hash_of(spec: &str, secrets: &SecretData) -> String {
    let ds = from_yaml(spec);
    let mut i = inputs();
    i.secrets = secrets.clone();
    build_all(&ds, &EffectiveSpec::resolve(&ds), &i)
        .expect("builds")
        .config_hash
}

/// The bearer token reaches the server as the file its config names
/// (`metrics.token_file`, `pkg/config/metrics.go`), from the Secret key the spec
/// names; a rotated token changes the hash (the server reads it once, at start).
#[test]
fn the_metrics_token_is_a_mounted_file_and_its_rotation_rolls_the_pod() {
    let c = build(&sample("metrics"));
    let yaml = &c.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        yaml.contains("  path: /metrics\n  auth: token\n  token_file: /metrics-token/token\n"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("replace-with"),
        "the token never reaches the ConfigMap"
    );
    let volume = pod(&c)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "metrics-token")
        .and_then(|v| v.secret.as_ref())
        .expect("token volume");
    assert_eq!(volume.secret_name.as_deref(), Some("metrics-scrape-token"));
    let items = volume.items.as_ref().expect("one item");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("token", "token")
    );
    let mount = server(&c)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "metrics-token")
        .expect("mounted");
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/metrics-token", Some(true))
    );
    // Without a token: no volume, and the server's own default (no auth).
    let plain = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nmetrics: {enabled: true}",
    ));
    let yaml = &plain.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        yaml.contains("  path: /metrics\n") && !yaml.contains("auth"),
        "{yaml}"
    );
    assert!(
        pod(&plain)
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != "metrics-token")
    );

    let spec = "storage: {metadataSize: 1Gi}\nmetrics: {enabled: true, bearerTokenSecret: {name: scrape, key: t}}";
    let token = |value: &[u8]| {
        BTreeMap::from([(
            "scrape".to_string(),
            BTreeMap::from([("t".to_string(), value.to_vec())]),
        )])
    };
    assert_ne!(hash_of(spec, &token(b"one")), hash_of(spec, &token(b"two")));
    assert!(
        EffectiveSpec::resolve(&from_yaml(spec))
            .referenced_secrets()
            .contains(&"scrape".to_string()),
        "watched like every Secret the pod reads"
    );
}

/// HTTPS on the REST API as DittoFS v0.29 reads it (`controlplane.tls` in
/// `pkg/controlplane/api/config.go`): the certificate and key as files from the
/// `kubernetes.io/tls` Secret, the client CA as a file under mutual TLS; probes
/// over HTTPS, or only connecting when the kubelet would need a client
/// certificate; `appProtocol: https` on the API Services; a renewed certificate
/// or CA rolls the pod; the operator's own certificate never reaches the pod.
#[test]
fn api_tls_is_mounted_rendered_probed_and_rolls_the_pod() {
    let c = build(&sample("tls"));
    let yaml = &c.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        yaml.contains("  tls:\n    cert_file: /tls/tls.crt\n    key_file: /tls/tls.key\n    client_ca: /tls-client-ca/ca.crt\n"),
        "{yaml}"
    );
    let volume = |name: &str| {
        pod(&c)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .and_then(|v| v.secret.clone())
            .unwrap_or_else(|| panic!("volume {name}"))
    };
    let items = |v: &k8s_openapi::api::core::v1::SecretVolumeSource| -> Vec<(String, String)> {
        v.items
            .iter()
            .flatten()
            .map(|i| (i.key.clone(), i.path.clone()))
            .collect()
    };
    let cert = volume("api-tls");
    assert_eq!(cert.secret_name.as_deref(), Some("secure-api-tls"));
    assert_eq!(
        items(&cert),
        [
            ("tls.crt".to_string(), "tls.crt".to_string()),
            ("tls.key".to_string(), "tls.key".to_string())
        ],
        "only the files the server reads"
    );
    let ca = volume("api-client-ca");
    assert_eq!(ca.secret_name.as_deref(), Some("api-client-ca"));
    assert_eq!(items(&ca), [("ca.crt".to_string(), "ca.crt".to_string())]);
    let mounts: Vec<(String, String, Option<bool>)> = server(&c)
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name.starts_with("api-"))
        .map(|m| (m.name.clone(), m.mount_path.clone(), m.read_only))
        .collect();
    assert_eq!(
        mounts,
        [
            ("api-tls".to_string(), "/tls".to_string(), Some(true)),
            (
                "api-client-ca".to_string(),
                "/tls-client-ca".to_string(),
                Some(true)
            )
        ]
    );
    assert!(
        pod(&c).volumes.iter().flatten().all(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            != Some("secure-api-operator")),
        "the operator's certificate stays with the operator"
    );
    // Mutual TLS: the kubelet cannot present a certificate, so it only connects.
    let container = server(&c);
    for probe in [
        &container.liveness_probe,
        &container.readiness_probe,
        &container.startup_probe,
    ] {
        let probe = probe.as_ref().expect("probe");
        assert!(probe.http_get.is_none(), "{probe:?}");
        assert_eq!(
            probe.tcp_socket.as_ref().map(|t| t.port.clone()),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("api".into()))
        );
    }
    for name in ["secure-api", "secure-headless"] {
        let port = &svc(&c, name)
            .spec
            .as_ref()
            .expect("spec")
            .ports
            .as_ref()
            .expect("ports")[0];
        assert_eq!(port.app_protocol.as_deref(), Some("https"), "{name}");
    }

    // HTTPS without client certificates: /health over HTTPS, no client CA.
    let https = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\ncontrolPlane: {certSecretName: api-tls}",
    ));
    let yaml = &https.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        yaml.contains("    key_file: /tls/tls.key\n") && !yaml.contains("client_ca"),
        "{yaml}"
    );
    let readiness = server(&https)
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("HTTP probe");
    assert_eq!(
        (readiness.scheme.as_deref(), readiness.path.as_deref()),
        (Some("HTTPS"), Some("/health/ready"))
    );
    // Plain HTTP: no tls block, HTTP probes, no appProtocol.
    let plain = build(&from_yaml("storage: {metadataSize: 1Gi}"));
    let yaml = &plain.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(!yaml.contains("tls"), "{yaml}");
    assert_eq!(
        server(&plain)
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.scheme.as_deref()),
        Some("HTTP")
    );
    assert!(
        svc(&plain, "t-api")
            .spec
            .as_ref()
            .expect("spec")
            .ports
            .as_ref()
            .expect("ports")[0]
            .app_protocol
            .is_none()
    );

    // Renewals roll the pod; the Secrets are watched like every one the pod reads.
    let spec = "storage: {metadataSize: 1Gi}\ncontrolPlane: {certSecretName: api-tls, clientCASecretName: ca, operatorCertSecretName: op}";
    let with = |secret: &str, value: &[u8]| {
        BTreeMap::from([(
            secret.to_string(),
            BTreeMap::from([("tls.crt".to_string(), value.to_vec())]),
        )])
    };
    assert_ne!(
        hash_of(spec, &with("api-tls", b"one")),
        hash_of(spec, &with("api-tls", b"two"))
    );
    assert_ne!(
        hash_of(spec, &with("ca", b"one")),
        hash_of(spec, &with("ca", b"two"))
    );
    let eff = EffectiveSpec::resolve(&from_yaml(spec));
    assert_eq!(eff.referenced_secrets(), ["api-tls", "ca"]);
    assert!(eff.checked_secrets().contains(&"op".to_string()));
}

#[test]
fn service_only_edits_keep_the_hash() {
    let none = SecretData::new();
    let base = hash_of("storage: {metadataSize: 1Gi}", &none);
    for edit in [
        "storage: {metadataSize: 1Gi}\nservice: {type: NodePort, annotations: {a: b}}",
        "storage: {metadataSize: 1Gi}\nnfsPort: 3049",
        "storage: {metadataSize: 1Gi}\ncontrolPlane: {servicePort: 80}",
        "storage: {metadataSize: 1Gi}\nadapterServices: {type: NodePort, annotations: {a: b}}",
    ] {
        assert_eq!(hash_of(edit, &none), base, "{edit}");
    }
}

#[test]
fn pod_affecting_edits_change_the_hash() {
    let none = SecretData::new();
    let base = hash_of("storage: {metadataSize: 1Gi}", &none);
    for edit in [
        "storage: {metadataSize: 1Gi}\nimage: other:1",
        "storage: {metadataSize: 1Gi}\nresources: {limits: {memory: 1Gi}}",
        "storage: {metadataSize: 1Gi}\nidentity: {jwt: {accessTokenDuration: 5m}}",
        "storage: {metadataSize: 1Gi}\nmetrics: {enabled: true}",
    ] {
        assert_ne!(hash_of(edit, &none), base, "{edit}");
    }
    let spec = "storage: {metadataSize: 1Gi}\ns3: {credentialsSecretRef: {secretName: s3}}";
    let v1 = BTreeMap::from([(
        "s3".to_string(),
        BTreeMap::from([("accessKeyId".to_string(), b"a".to_vec())]),
    )]);
    let v2 = BTreeMap::from([(
        "s3".to_string(),
        BTreeMap::from([("accessKeyId".to_string(), b"b".to_vec())]),
    )]);
    assert_ne!(
        hash_of(spec, &v1),
        hash_of(spec, &v2),
        "a rotated Secret rolls the pod"
    );
    let sts_hash = build(&from_yaml(spec))
        .stateful_set
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned());
    assert!(sts_hash.is_some_and(|h| h.len() == 64));
}

#[test]
fn building_is_deterministic() {
    let ds = sample("percona");
    let eff = EffectiveSpec::resolve(&ds);
    let a = build_all(&ds, &eff, &inputs()).expect("a");
    let b = build_all(&ds, &eff, &inputs()).expect("b");
    assert_eq!(a.config_hash, b.config_hash);
    assert_eq!(
        serde_json::to_string(&a.stateful_set).ok(),
        serde_json::to_string(&b.stateful_set).ok()
    );
}

fn volume<'a>(c: &'a Children, name: &str) -> &'a k8s_openapi::api::core::v1::SecretVolumeSource {
    pod(c)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .and_then(|v| v.secret.as_ref())
        .unwrap_or_else(|| panic!("volume {name}"))
}

fn mount<'a>(c: &'a Children, name: &str) -> &'a k8s_openapi::api::core::v1::VolumeMount {
    server(c)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("mount {name}"))
}

fn secret_ref(e: &EnvVar) -> (&str, &str) {
    let r = e
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from a Secret");
    (r.name.as_str(), r.key.as_str())
}

/// LDAP: the bind password as the variable DittoFS reads (it has no password file
/// key), the CA bundle as the file `ldap.tls.ca_cert_file` names.
#[test]
fn ldap_reaches_the_pod_as_env_and_a_file() {
    let c = build(&sample("ldap"));
    let password = env(&c, "DITTOFS_LDAP_BIND_PASSWORD").expect("bind password");
    assert_eq!(secret_ref(password), ("ldap-bind", "password"));
    let ca = volume(&c, "ldap-ca");
    assert_eq!(ca.secret_name.as_deref(), Some("ldap-ca"));
    let item = &ca.items.as_ref().expect("items")[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str()),
        ("ca.crt", "ca.crt")
    );
    let m = mount(&c, "ldap-ca");
    assert_eq!(
        (m.mount_path.as_str(), m.read_only),
        ("/ldap-ca", Some(true))
    );
    let yaml = &c.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        yaml.contains("  tls:\n    ca_cert_file: /ldap-ca/ca.crt\n"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("password") && !yaml.contains("replace-with"),
        "{yaml}"
    );
    // Disabled (the Go operator's default): nothing.
    let off = build(&from_yaml(
        "storage: {metadataSize: 1Gi}\nidentity: {ldap: {url: 'ldaps://x', baseDN: a, bindDN: b}}",
    ));
    assert!(env(&off, "DITTOFS_LDAP_BIND_PASSWORD").is_none());
    let yaml = &off.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(!yaml.contains("ldap"), "{yaml}");
}

/// Kerberos: keytab (0440) and krb5.conf as read-only files at the Go operator's
/// paths, the machine account's password as the variable DittoFS reads.
#[test]
fn kerberos_reaches_the_pod_as_files_and_env() {
    let c = build(&sample("kerberos"));
    let keytab = volume(&c, "kerberos-keytab");
    assert_eq!(keytab.secret_name.as_deref(), Some("dittofs-keytab"));
    let item = &keytab.items.as_ref().expect("items")[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str(), item.mode),
        ("keytab", "dittofs.keytab", Some(0o440))
    );
    let krb5 = volume(&c, "kerberos-krb5");
    let item = &krb5.items.as_ref().expect("items")[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str()),
        ("krb5.conf", "krb5.conf")
    );
    for (name, path) in [
        ("kerberos-keytab", "/kerberos"),
        ("kerberos-krb5", "/kerberos-krb5"),
    ] {
        let m = mount(&c, name);
        assert_eq!((m.mount_path.as_str(), m.read_only), (path, Some(true)));
    }
    let secret = env(&c, "DITTOFS_KERBEROS_MACHINE_ACCOUNT_SECRET").expect("machine secret");
    assert_eq!(secret_ref(secret), ("dittofs-machine-account", "secret"));
    let yaml = &c.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(
        yaml.contains("  keytab_path: /kerberos/dittofs.keytab\n")
            && yaml.contains("  krb5_conf: /kerberos-krb5/krb5.conf\n"),
        "{yaml}"
    );
    assert!(!yaml.contains("secret"), "{yaml}");
}

/// Rotating a file the pod reads (CA, keytab, krb5.conf) restarts it. A rotated
/// password (bind, machine account) does not: DittoFS takes those from its database
/// after the first start, where the operator sends them. Editing the settings does
/// not either: the operator writes them to the database; a Kerberos write restarts
/// the pod through the digest the status records.
#[test]
fn identity_files_roll_the_pod_and_passwords_and_settings_do_not() {
    let spec = "storage: {metadataSize: 1Gi}\nidentity:\n  ldap: {enabled: true, url: 'ldaps://x', baseDN: a, bindDN: b, bindPasswordSecretRef: {name: bind, key: p}, caCertSecretRef: {name: ca, key: c}}\n  kerberos: {enabled: true, servicePrincipal: 'nfs/h@R', keytabSecretRef: {name: kt, key: k}, krb5ConfSecretRef: {name: conf, key: k}, machineAccount: {enabled: true, accountName: 'A$', secretRef: {name: ma, key: s}}}";
    let data = |pairs: &[(&str, &str, &str)]| -> SecretData {
        let mut out = SecretData::new();
        for (n, k, v) in pairs {
            out.entry(n.to_string())
                .or_default()
                .insert(k.to_string(), v.as_bytes().to_vec());
        }
        out
    };
    let base = [
        ("bind", "p", "1"),
        ("ca", "c", "1"),
        ("kt", "k", "1"),
        ("conf", "k", "1"),
        ("ma", "s", "1"),
    ];
    // What the builders are given: the Secrets the pod reads (not the passwords).
    let eff = EffectiveSpec::resolve(&from_yaml(spec));
    let read = eff.referenced_secrets();
    let given = |pairs: &[(&str, &str, &str)]| -> SecretData {
        data(pairs)
            .into_iter()
            .filter(|(n, _)| read.contains(n))
            .collect()
    };
    let before = hash_of(spec, &given(&base));
    for (i, rolls) in [(0, false), (1, true), (2, true), (3, true), (4, false)] {
        let mut rotated = base;
        rotated[i].2 = "2";
        assert_eq!(
            hash_of(spec, &given(&rotated)) != before,
            rolls,
            "{}",
            rotated[i].0
        );
        assert_eq!(read.contains(&rotated[i].0.to_string()), rolls);
        // Watched and read either way.
        assert!(
            read.contains(&rotated[i].0.to_string())
                || eff.server_secrets().contains(&rotated[i].0.to_string())
        );
    }
    let edited = spec.replace("bindDN: b", "bindDN: other").replace(
        "servicePrincipal: 'nfs/h@R'",
        "servicePrincipal: 'nfs/h2@R'",
    );
    let none = SecretData::new();
    assert_eq!(hash_of(spec, &none), hash_of(&edited, &none));

    let ds = from_yaml(spec);
    let eff = EffectiveSpec::resolve(&ds);
    let mut i = inputs();
    let plain = build_all(&ds, &eff, &i).expect("builds");
    i.server = Some(crate::crd::ServerStatus {
        identity_providers: vec![crate::crd::IdentityProviderStatus {
            provider_type: "kerberos".into(),
            enabled: true,
            written_digest: Some("abc".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    let written = build_all(&ds, &eff, &i).expect("builds");
    assert_ne!(plain.config_hash, written.config_hash);
    let annotations = written
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .expect("annotations");
    assert_eq!(
        annotations
            .get(statefulset::KERBEROS_WRITTEN_ANNOTATION)
            .map(String::as_str),
        Some("abc")
    );
}
