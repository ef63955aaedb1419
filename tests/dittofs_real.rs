//! The operator's real controller against a real DittoFS v0.29 server, run only when
//! `DITTOFS_BIN` names a DittoFS v0.29 `dfs` binary (without it, the ignored test
//! says SKIPPED and passes, so that `-- --ignored` on a cluster does not need one):
//!
//! ```text
//! DITTOFS_BIN=/path/to/dfs cargo test --test dittofs_real -- --ignored
//! ```
//!
//! As root: the server runs in network, mount and PID namespaces of its own. Its NFS
//! adapter listens on every interface whatever it is told, and it announces itself
//! (mDNS, WS-Discovery), so it never runs on this machine's network: the test
//! re-executes itself under `unshare --net --mount --pid --fork --mount-proc
//! --kill-child` (loopback only; every process and mount goes with the namespaces,
//! even if the test is killed), brings loopback up and runs the scenario there.
//!
//! The server is started exactly as the pod the operator builds for
//! `samples/minimal.yaml` would start it: the DittoFS container of the StatefulSet the
//! operator applied (checked equal to what its pure builders give), its command (the
//! image's entrypoint, with `DITTOFS_BIN` in place of `/app/dfs`) and args, its
//! environment (plain values, and `secretKeyRef`s read from the Secrets the operator
//! generated), the ConfigMap's files where the container mounts them, and a fresh
//! tmpfs at every data volume's mount path. The probes of the container decide when
//! it is up; only then is the StatefulSet reported ready to the operator.
//!
//! What it proves:
//! - that pod starts a real DittoFS v0.29 (config file, environment, paths) that
//!   passes the container's own startup and readiness probes;
//! - the operator's DittoFS client speaks v0.29's REST API: from the generated admin
//!   password it makes its own account, and it creates the badger metadata store, the
//!   fs block store and the `/export` share, turns the portmapper on and SMB off; the
//!   DittoServer becomes ServerConfigured and Ready, and the server, asked directly,
//!   holds all of it (the NFS and portmapper ports accept connections, SMB's does not);
//! - the snapshot policy this test adds to the sample (`/export`, `@daily`, keep 7,
//!   paused) is made through v0.29's handlers and read back as the operator compares
//!   it (the server answers `24h0m0s`): the restarts below write it no more than the
//!   rest;
//! - an NFS adapter port changed by hand is put back by the drift poll
//!   (`src/controller/poll.rs`) without any Kubernetes event;
//! - restarts with the database kept: one while the pod stays Ready (a container
//!   restart quicker than the readiness probe), one with the pod NotReady in between
//!   (a rolled pod). After each, the operator finds everything converged and makes no
//!   DittoFS write (adapters, NFS settings, stores and shares read back identical,
//!   `updated_at` and the settings' `version` included), no ServerDrift or
//!   ServerRefused event.
//!
//! What it does not prove:
//! - anything of Kubernetes itself: the API server is the in-memory fake of the
//!   tests (`tests/fake_api/`), there is no kubelet (the test runs the probes and
//!   reports the StatefulSet ready), no Service or cluster DNS (every name resolves to
//!   127.0.0.1, so `controlPlane.servicePort` must equal the port the server listens
//!   on), no NetworkPolicy, RBAC or admission webhook;
//! - the image: the binary is `DITTOFS_BIN`, run as root with no security context,
//!   resource limits or `KUBERNETES_*` variables; its working and home directory
//!   (`/app` in the image) is a temporary directory; volumes are tmpfs, not claims;
//! - the data path: nothing is mounted over NFS or SMB, no file is written;
//! - the other samples (PostgreSQL, S3, Percona, SMB, metrics), or several servers.

mod fake_api;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dittofs_operator::controller::{self, ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::{DittoServer, ItemState, ServerStatus};
use dittofs_operator::defaults::{
    ACCOUNT_PASSWORD_KEY, ADMIN_PASSWORD_KEY, DITTOFS_PORTMAPPER_PORT, JWT_SECRET_KEY,
};
use dittofs_operator::dittofs::api::{self, UpdateAdapterRequest};
use dittofs_operator::dittofs::{Client, Resolver, Sensitive, Server, account};
use dittofs_operator::effective::{
    EffectiveSpec, LocalBlockStoreKind, MetadataStoreKind, RemoteBlockStoreKind,
};
use dittofs_operator::probes::Readiness;
use dittofs_operator::resources::{self, BuildInputs, Children, ManagedSecretValues, SecretData};
use dittofs_operator::validation::{Offline, validate_effective};
use dittofs_operator::{manifest, names};
use fake_api::{AllFound, FakeApi};
use http::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Probe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// This test's name, as `--exact` needs it in the re-executed binary.
const TEST_NAME: &str = "a_real_dittofs_server_is_configured_repaired_and_survives_restarts";
const BIN_VAR: &str = "DITTOFS_BIN";
/// Set in the re-executed binary, inside the namespaces.
const INSIDE_VAR: &str = "DITTOFS_REAL_INSIDE";
/// The scenario's temporary directory, made (and removed) outside.
const TMP_VAR: &str = "DITTOFS_REAL_TMP";
/// Written there when the scenario ran to its end.
const FINISHED: &str = "finished";
const SAMPLE: &str = "samples/minimal.yaml";
const HOW_TO_RUN: &str = "DITTOFS_BIN=/path/to/dfs cargo test --test dittofs_real -- --ignored";
/// New network (loopback only), mount and PID namespaces; when `unshare` ends,
/// however it ends, its child (the namespaces' init) is killed, and with it every
/// process of the PID namespace; the mounts go with the mount namespace.
const UNSHARE: [&str; 6] = [
    "--net",
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
];
/// The whole scenario, from outside: beyond this it is killed.
const OUTER_BOUND: Duration = Duration::from_secs(20 * 60);
/// The operator's `--poll-interval` here.
const POLL: Duration = Duration::from_secs(2);
/// Bound of every wait for the operator.
const WAIT: Duration = Duration::from_secs(60);
/// A pass that puts an adapter back, beyond the poll noticing the change: the
/// reads, the `PUT /api/v1/adapters/nfs`, which restarts the adapter before it
/// answers (`runtime/adapters/service.go`, `UpdateAdapter`).
const PASS_SLACK: Duration = Duration::from_secs(20);
/// The image's ENTRYPOINT: the image `marmos91c/dittofs` is built from
/// `Dockerfile.goreleaser` (`.goreleaser.yml`, `dockers_v2`), which at v0.29.0 says
/// `ENTRYPOINT ["/app/dfs"]`, `WORKDIR /app`, user 65532 with home `/app`, no `ENV`.
const IMAGE_ENTRYPOINT: &[&str] = &["/app/dfs"];
const IMAGE_REPOSITORY: &str = "marmos91c/dittofs:";
/// The PATH of the image (alpine:3.21's; the image sets none of its own).
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
#[ignore = "needs DITTOFS_BIN (a DittoFS v0.29 dfs binary)"]
fn a_real_dittofs_server_is_configured_repaired_and_survives_restarts() {
    if std::env::var_os(INSIDE_VAR).is_some() {
        inside();
    } else {
        outside();
    }
}

// ----- outside the namespaces -----------------------------------------------------

fn outside() {
    // libtest names the thread after the test: `--exact` below must name this one.
    if let Some(thread) = std::thread::current().name() {
        assert_eq!(thread, TEST_NAME, "TEST_NAME must be this test's name");
    }
    // A run of every ignored test against a cluster (`-- --ignored`) has no DittoFS
    // binary: skipped there, loudly. With the variable set, anything wrong fails.
    if std::env::var_os(BIN_VAR).is_none() {
        eprintln!(
            "SKIPPED: {BIN_VAR} is not set. This test runs a real DittoFS v0.29 server: set \
             {BIN_VAR} to the path of a DittoFS v0.29 `dfs` binary and run, as root:\n    {HOW_TO_RUN}"
        );
        return;
    }
    let bin = dfs_bin();
    let probe = Command::new("unshare")
        .args(UNSHARE)
        .args(["--", "ip", "link", "set", "lo", "up"])
        .output();
    match probe {
        Err(e) => panic!(
            "cannot run `unshare` ({e}). This test runs DittoFS in network, mount and PID \
             namespaces of its own (util-linux's unshare, iproute2's ip, as root)"
        ),
        Ok(out) if !out.status.success() => panic!(
            "`unshare {} -- ip link set lo up` failed ({}): {}\nThis test runs DittoFS in \
             network, mount and PID namespaces of its own: run it as root. (DittoFS's NFS \
             adapter listens on every interface and the server announces itself with mDNS and \
             WS-Discovery, so it is never run on this machine's network.)",
            UNSHARE.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }
    // The mount points the scenario creates on this machine's filesystem, and its
    // temporary directory (DittoFS's home and output): it removes them itself; this
    // is the safety net should it be killed.
    let pod = futures::executor::block_on(build(&sample(), generated(), SecretData::new()));
    let created = missing_dirs(&mount_paths(&dittofs_container(&pod)));
    let tmp = tempfile::Builder::new()
        .prefix("dittofs-real-")
        .tempdir()
        .expect("temp dir");

    let exe = std::env::current_exe().expect("the test binary's path");
    eprintln!("dittofs_real: running the scenario in new network, mount and PID namespaces");
    let mut child = Command::new("unshare")
        .args(UNSHARE)
        .arg("--")
        .arg(&exe)
        .args([
            "--exact",
            TEST_NAME,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(INSIDE_VAR, "1")
        .env(BIN_VAR, &bin)
        .env(TMP_VAR, tmp.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run unshare: {e}"));
    let ended = wait_for_scenario(&mut child);
    if !matches!(ended, Ended::Exited(_)) {
        // unshare's death kills the namespaces' init (--kill-child), and with it every
        // process in them; the mounts go with the mount namespace.
        let _ = child.kill();
        let _ = child.wait();
    }
    for dir in created.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    let finished = tmp.path().join(FINISHED).exists();
    drop(tmp);
    match ended {
        Ended::Exited(status) if status.success() => assert!(
            finished,
            "the test binary ran under unshare did not run {TEST_NAME} to its end"
        ),
        Ended::Exited(status) => panic!(
            "the scenario failed inside its namespaces ({status}): its output is above; \
             no DittoFS process or mount outlives the namespaces"
        ),
        Ended::Signalled(signal) => panic!(
            "interrupted ({signal}): the scenario was killed, with every process of its \
             namespaces"
        ),
        Ended::TimedOut => panic!(
            "the scenario did not end within {} min and was killed, with every process of its \
             namespaces",
            OUTER_BOUND.as_secs() / 60
        ),
    }
}

enum Ended {
    Exited(ExitStatus),
    Signalled(&'static str),
    TimedOut,
}

/// Wait for `unshare` (the scenario), at most [`OUTER_BOUND`]. A SIGINT or SIGTERM
/// (Ctrl-C reaches every process of the terminal's group) ends the wait instead of
/// this process, so that the caller still cleans up.
fn wait_for_scenario(child: &mut Child) -> Ended {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
        let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        let deadline = tokio::time::sleep(OUTER_BOUND);
        tokio::pin!(deadline);
        loop {
            if let Some(status) = child.try_wait().expect("wait for unshare") {
                return Ended::Exited(status);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = interrupt.recv() => return Ended::Signalled("SIGINT"),
                _ = terminate.recv() => return Ended::Signalled("SIGTERM"),
                () = &mut deadline => return Ended::TimedOut,
            }
        }
    })
}

/// `DITTOFS_BIN`, absolute, or a panic that says what to set.
fn dfs_bin() -> PathBuf {
    let Some(bin) = std::env::var_os(BIN_VAR).filter(|b| !b.is_empty()) else {
        panic!(
            "{BIN_VAR} is not set. This test runs a real DittoFS v0.29 server: set {BIN_VAR} to \
             the path of a DittoFS v0.29 `dfs` binary and run, as root:\n    {HOW_TO_RUN}"
        );
    };
    let bin = PathBuf::from(bin);
    let meta =
        std::fs::metadata(&bin).unwrap_or_else(|e| panic!("{BIN_VAR}={}: {e}", bin.display()));
    assert!(
        meta.is_file() && meta.permissions().mode() & 0o111 != 0,
        "{BIN_VAR}={} is not an executable file (a DittoFS v0.29 `dfs` binary)",
        bin.display()
    );
    bin.canonicalize()
        .unwrap_or_else(|e| panic!("{BIN_VAR}={}: {e}", bin.display()))
}

// ----- the pod, as the operator builds it -----------------------------------------

/// `samples/minimal.yaml`'s DittoServer. The operator reaches the server at
/// `http://<name>-api.<namespace>.svc:<controlPlane.servicePort>`
/// (`dittofs::Server::of`); this test's resolver sends that name to 127.0.0.1, where
/// the server listens on `controlPlane.port`: when the two differ, servicePort is set
/// to the listening port (the pod is rendered with that spec too).
fn sample() -> DittoServer {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE);
    let docs = manifest::load_documents(&path).unwrap_or_else(|e| panic!("{SAMPLE}: {e}"));
    assert_eq!(
        docs.len(),
        1,
        "{SAMPLE} holds one DittoServer and nothing else (no Secret to create here)"
    );
    assert!(manifest::is_ditto_server(&docs[0]), "{SAMPLE}");
    let mut ds = manifest::ditto_server(&docs[0]).unwrap_or_else(|e| panic!("{SAMPLE}: {e}"));
    // The wire of snapshot policies, against the real handlers. Paused: a policy
    // that never ran is due at once, and the scheduler's run would write the row
    // (`TouchPolicyRun`) between the snapshots this test compares.
    ds.spec.snapshot_policies = vec![dittofs_operator::crd::SnapshotPolicySpec {
        share: "/export".into(),
        interval: "@daily".into(),
        keep_last: Some(7),
        enabled: Some(false),
        ..Default::default()
    }];
    let eff = EffectiveSpec::resolve(&ds);
    if eff.ports.api.service != eff.ports.api.container {
        ds.spec.control_plane.get_or_insert_default().service_port = Some(eff.ports.api.container);
    }
    ds
}

/// Managed Secret values as a first pass generates them (for what does not depend
/// on them: the mount paths).
fn generated() -> ManagedSecretValues {
    resources::generate_managed_values().expect("random values")
}

/// Every object the operator applies for `ds`, from its pure builders, as
/// `dittofs-operator render` does (`src/cli/render.rs`).
async fn build(ds: &DittoServer, managed: ManagedSecretValues, secrets: SecretData) -> Children {
    let eff = EffectiveSpec::resolve(ds);
    let report = validate_effective(&ds.spec, &eff, None, &Offline).await;
    assert!(
        report.is_valid(),
        "{SAMPLE} is invalid: {}",
        report
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let inputs = BuildInputs {
        secrets,
        managed,
        server: None,
        account: None,
    };
    resources::build_all(ds, &eff, &inputs).expect("the builders")
}

fn dittofs_container(children: &Children) -> Container {
    children
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.iter().find(|c| c.name == "dittofs"))
        .cloned()
        .expect("the StatefulSet has a dittofs container")
}

fn mount_paths(container: &Container) -> Vec<PathBuf> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| PathBuf::from(&m.mount_path))
        .collect()
}

/// The directories (and parents) of `paths` that do not exist, parents first.
fn missing_dirs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in paths {
        let mut chain: Vec<&Path> = path.ancestors().filter(|a| !a.exists()).collect();
        chain.reverse();
        for dir in chain {
            if !out.iter().any(|d| d == dir) {
                out.push(dir.to_path_buf());
            }
        }
    }
    out
}

/// How the test starts the server: the pod's process, files and volumes.
struct Pod {
    /// `DITTOFS_BIN` in place of the image's binary, then the rest.
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// `<statefulset>-0`.
    hostname: String,
    /// ConfigMap volumes: where, their files, read-only.
    config: Vec<(PathBuf, BTreeMap<String, String>, bool)>,
    /// Claim-template volumes: where.
    data: Vec<PathBuf>,
    /// The API port, from the container's startup probe (a named container port).
    api_port: u16,
    startup_path: String,
    /// How long the startup probe lets the server take (period × failureThreshold).
    startup_bound: Duration,
    readiness_path: String,
}

/// The pod of the DittoServer stored in `api`: built by the operator's builders from
/// the stored object and the Secrets the operator generated (read from `api`), checked
/// equal to what the operator applied, and resolved as a kubelet would.
async fn pod(api: &FakeApi, ds: &DittoServer, bin: &Path) -> Pod {
    let eff = EffectiveSpec::resolve(ds);
    let ns = &eff.namespace;
    let secret_data = |name: &str| -> Option<BTreeMap<String, Vec<u8>>> {
        let secret: Secret = api.get_as(&secret_path(ns, name))?;
        Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        )
    };
    let text = |secret: &str, key: &str| -> String {
        secret_data(secret)
            .and_then(|d| d.get(key).cloned())
            .map(|v| String::from_utf8(v).expect("UTF-8"))
            .unwrap_or_else(|| panic!("Secret {ns}/{secret} has no key {key}"))
    };
    assert!(
        eff.jwt.secret.managed && eff.admin.password.managed,
        "{SAMPLE}: the JWT and admin Secrets are the operator's"
    );
    assert_eq!(eff.jwt.secret.key, JWT_SECRET_KEY);
    assert_eq!(eff.admin.password.key, ADMIN_PASSWORD_KEY);
    let managed = ManagedSecretValues {
        jwt_secret: text(&eff.jwt.secret.name, &eff.jwt.secret.key),
        admin_password: text(&eff.admin.password.name, &eff.admin.password.key),
        // Not in anything the pod sees (the account Secret is not built here).
        account_password: String::new(),
    };
    let referenced: SecretData = eff
        .referenced_secrets()
        .into_iter()
        .filter_map(|name| secret_data(&name).map(|d| (name, d)))
        .collect();
    let children = build(ds, managed, referenced).await;

    // What the operator applied is what its builders give: the process started here
    // is the one its pod runs.
    let built_template = serde_json::to_value(
        &children
            .stateful_set
            .spec
            .as_ref()
            .expect("StatefulSet spec")
            .template,
    )
    .expect("template");
    let applied = api
        .get(&sts_path(ns, &eff.name))
        .expect("the StatefulSet the operator applied");
    assert_eq!(
        applied["spec"]["template"], built_template,
        "the pod template the operator applied differs from the one its builders give for {SAMPLE} and the generated Secrets"
    );
    let applied_cm: ConfigMap = api
        .get_as(&cm_path(ns, &names::config_map(&eff.name)))
        .expect("the ConfigMap the operator applied");
    assert_eq!(
        applied_cm.data, children.config_map.data,
        "the ConfigMap the operator applied differs from the one its builders give"
    );

    let pod_spec = children
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod spec");
    let container = dittofs_container(&children);
    let image = container.image.clone().unwrap_or_default();
    assert!(
        image.starts_with(IMAGE_REPOSITORY),
        "the container runs {image}: this test knows the entrypoint of {IMAGE_REPOSITORY}* only"
    );
    assert!(
        container.env_from.is_none(),
        "envFrom is not resolved by this test"
    );

    // command (or the image's entrypoint) + args, `$(VAR)` not expanded here.
    let mut argv: Vec<String> = match &container.command {
        Some(command) => command.clone(),
        None => IMAGE_ENTRYPOINT.iter().map(|s| s.to_string()).collect(),
    };
    argv.extend(container.args.clone().unwrap_or_default());
    assert!(
        !argv.iter().any(|a| a.contains("$(")),
        "$(VAR) references in the command are not expanded by this test: {argv:?}"
    );
    argv[0] = bin.display().to_string();

    let mut env = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (value, None) => {
                let value = value.clone().unwrap_or_default();
                assert!(
                    !value.contains("$("),
                    "env {}: $(VAR) references are not expanded by this test",
                    var.name
                );
                Some(value)
            }
            (None, Some(source)) => {
                let secret_ref = source.secret_key_ref.as_ref().filter(|_| {
                    source.config_map_key_ref.is_none()
                        && source.field_ref.is_none()
                        && source.resource_field_ref.is_none()
                });
                let Some(r) = secret_ref else {
                    panic!(
                        "env {}: {source:?} is not resolved by this test (plain values and secretKeyRef only)",
                        var.name
                    );
                };
                match secret_data(&r.name).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => Some(String::from_utf8(v).unwrap_or_else(|_| {
                        panic!("env {}: Secret {}/{} is not UTF-8", var.name, r.name, r.key)
                    })),
                    None if r.optional == Some(true) => None,
                    None => panic!(
                        "env {}: Secret {ns}/{} has no key {} in the API server: the kubelet would not start the pod",
                        var.name, r.name, r.key
                    ),
                }
            }
            (Some(_), Some(_)) => panic!("env {}: both value and valueFrom", var.name),
        };
        if let Some(value) = value {
            env.push((var.name.clone(), value));
        }
    }

    // Volumes: ConfigMaps (their files) and claim templates (a fresh tmpfs each).
    let claims: Vec<String> = children
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let mut config = Vec::new();
    let mut data = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        assert!(
            mount.sub_path.is_none() && mount.sub_path_expr.is_none(),
            "volume mount {}: subPath is not reproduced by this test",
            mount.name
        );
        let path = PathBuf::from(&mount.mount_path);
        if claims.contains(&mount.name) {
            data.push(path);
            continue;
        }
        let volume = pod_spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("volume mount {} names no volume", mount.name));
        let Some(source) = &volume.config_map else {
            panic!(
                "volume {}: only ConfigMap volumes and claim templates are reproduced by this test",
                volume.name
            );
        };
        let cm: ConfigMap = api
            .get_as(&cm_path(ns, &source.name))
            .unwrap_or_else(|| panic!("ConfigMap {ns}/{} does not exist", source.name));
        let cm_data = cm.data.unwrap_or_default();
        let files: BTreeMap<String, String> = match &source.items {
            None => cm_data,
            Some(items) => items
                .iter()
                .map(|i| {
                    let value = cm_data.get(&i.key).cloned().unwrap_or_else(|| {
                        panic!("ConfigMap {} has no key {}", source.name, i.key)
                    });
                    (i.path.clone(), value)
                })
                .collect(),
        };
        config.push((path, files, mount.read_only == Some(true)));
    }

    // The API port and health paths, from the container's own probes.
    let startup = container.startup_probe.as_ref().expect("startup probe");
    let readiness = container.readiness_probe.as_ref().expect("readiness probe");
    let (api_port, startup_path) = probe_target(&container, startup);
    let (ready_port, readiness_path) = probe_target(&container, readiness);
    assert_eq!(api_port, ready_port, "both probes on the API port");
    let startup_bound = Duration::from_secs(
        u64::try_from(
            startup.initial_delay_seconds.unwrap_or(0)
                + startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3),
        )
        .unwrap_or(0),
    );
    // The server listens where config.yaml tells it (`controlplane`: host and port,
    // `pkg/controlplane/api/config.go`; the host defaults to loopback), which is the
    // port the probes and the operator use.
    let config_yaml = config
        .iter()
        .find_map(|(dir, files, _)| {
            files
                .get(names::CONFIG_KEY)
                .map(|text| (dir.join(names::CONFIG_KEY), text))
        })
        .expect("config.yaml is mounted");
    let parsed: Value = serde_yaml_ng::from_str(config_yaml.1).expect("config.yaml parses");
    assert_eq!(
        parsed["controlplane"]["port"],
        json!(api_port),
        "config.yaml's API port"
    );
    assert_eq!(parsed["controlplane"]["host"], json!("0.0.0.0"));
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "--config" && Path::new(&w[1]) == config_yaml.0),
        "the server is told the mounted config.yaml: {argv:?}"
    );
    assert_eq!(
        i32::from(api_port),
        eff.ports.api.service,
        "the operator calls controlPlane.servicePort; here it must be the listening port"
    );

    Pod {
        argv,
        env,
        hostname: format!("{}-0", names::stateful_set(&eff.name)),
        config,
        data,
        api_port,
        startup_path,
        startup_bound,
        readiness_path,
    }
}

/// The port (a named container port, or a number) and path of an HTTP probe.
fn probe_target(container: &Container, probe: &Probe) -> (u16, String) {
    let get = probe.http_get.as_ref().expect("an HTTP probe");
    assert_ne!(get.scheme.as_deref(), Some("HTTPS"), "plain HTTP");
    let port = match &get.port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .unwrap_or_else(|| {
                panic!("the probe names container port {name}, which is not declared")
            }),
    };
    (
        u16::try_from(port).expect("a port"),
        get.path.clone().unwrap_or_else(|| "/".into()),
    )
}

// ----- inside the namespaces ------------------------------------------------------

fn inside() {
    // Never start a server that announces itself on a real network: only loopback
    // may be here (`/proc/self/net/dev` lists this process's network namespace).
    let interfaces: Vec<String> = std::fs::read_to_string("/proc/self/net/dev")
        .expect("/proc/self/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(
        interfaces,
        ["lo"],
        "{INSIDE_VAR} is set, but this process is not in a network namespace of its own: refusing to start DittoFS here"
    );
    run("ip", &["link", "set", "lo", "up"]);
    // Nothing mounted here reaches the host's mount namespace (unshare makes it
    // private already; this says so).
    run("mount", &["--make-rprivate", "/"]);
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let bin = dfs_bin();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(scenario(&bin));
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Progress, with the time since the scenario started.
fn step(started: Instant, what: &str) {
    eprintln!(
        "dittofs_real [{:>6.1} s] {what}",
        started.elapsed().as_secs_f64()
    );
}

async fn scenario(bin: &Path) {
    let started = Instant::now();
    let tmp = PathBuf::from(std::env::var_os(TMP_VAR).expect("the temporary directory"));
    let home = tmp.join("home");
    std::fs::create_dir(&home).expect("home");

    // The operator: its real controller, on the in-memory API server.
    let api = FakeApi::new();
    let http = Client::new(Resolver::everything_to(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    let shutdown = CancellationToken::new();
    let _stop_controller = shutdown.clone().drop_guard();
    let (_leader, leader) = watch::channel(true);
    let readiness = Readiness::new();
    let controller = tokio::spawn(controller::run(
        api.client(),
        http.clone(),
        ControllerArgs {
            concurrency: 2,
            debounce: Duration::from_millis(200),
            reporter: "dittofs-real".into(),
            poll_interval: POLL,
            scope: Default::default(),
        },
        AllFound,
        leader,
        readiness.gate("controller"),
        ControllerMetrics::unregistered(),
        shutdown.clone(),
        CancellationToken::new(),
    ));

    let ds = sample();
    let eff = EffectiveSpec::resolve(&ds);
    let ns = eff.namespace.clone();
    let w = World {
        api: api.clone(),
        ds_path: format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{ns}/dittoservers/{}",
            eff.name
        ),
        sts_path: sts_path(&ns, &eff.name),
        http: http.clone(),
        eff: eff.clone(),
    };
    Api::<DittoServer>::namespaced(api.client(), &ns)
        .create(&PostParams::default(), &ds)
        .await
        .expect("create the DittoServer");
    step(started, "DittoServer created from samples/minimal.yaml");

    // The operator's first pass: its Secrets, ConfigMap and StatefulSet.
    let admin_secret = secret_path(&ns, &eff.admin.password.name);
    let jwt_secret = secret_path(&ns, &eff.jwt.secret.name);
    eventually(
        "the StatefulSet and the generated Secrets",
        WAIT,
        async || {
            if api.get(&w.sts_path).is_some()
                && api.get(&admin_secret).is_some()
                && api.get(&jwt_secret).is_some()
            {
                Ok(())
            } else {
                Err(w.describe())
            }
        },
    )
    .await;
    let stored: DittoServer = api.get_as(&w.ds_path).expect("the DittoServer");
    let pod = pod(&api, &stored, bin).await;
    let applied_template = api.get(&w.sts_path).expect("StatefulSet")["spec"]["template"].clone();
    step(
        started,
        &format!(
            "pod resolved: {} (env {})",
            pod.argv.join(" "),
            pod.env
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    // Volumes, then the server (dropped first: killed before the unmount).
    let _mounts = Mounts::prepare(&pod);
    let mut dfs = Dfs::start(&pod, &home, tmp.join("dfs-1.log"));
    let took = dfs.until_serving(&pod, &http).await;
    step(
        started,
        &format!("DittoFS serving after {:.1} s", took.as_secs_f64()),
    );
    assert!(api.make_statefulset_ready(&w.sts_path), "StatefulSet ready");

    // 1. Converged.
    w.converged().await;
    let account_password = w.secret_text(&names::account_secret(&eff.name), ACCOUNT_PASSWORD_KEY);
    let token = w.login(account::USERNAME, &account_password).await;
    eventually(
        "the server holds what the spec declares",
        WAIT,
        async || w.check_server(&token).await,
    )
    .await;
    let converged = eventually("status.server as declared", WAIT, async || w.check_status()).await;
    w.no_failure_events();
    step(
        started,
        "1. configured: ServerConfigured and Ready, the server holds the stores, /export, NFS with the portmapper, no SMB",
    );

    // 2. Drift: the NFS adapter moved by hand (as the admin, with dfsctl's call).
    let admin_password = w.secret_text(&eff.admin.password.name, &eff.admin.password.key);
    let admin = w.login(&eff.admin.username, &admin_password).await;
    let moved = eff.ports.nfs.container + 1;
    let answer = w
        .server()
        .update_adapter(
            &admin,
            "nfs",
            &UpdateAdapterRequest {
                enabled: None,
                port: Some(moved),
            },
        )
        .await
        .expect("move the NFS adapter by hand");
    assert_eq!(answer.port, moved);
    let moved_at = Instant::now();
    // The poll reads the adapters every third interval (the shares and the snapshot
    // policies in between), so a change is seen within three intervals; then a pass
    // puts it back.
    eventually(
        "the NFS adapter back on its port",
        3 * POLL + PASS_SLACK,
        async || {
            let adapters = w
                .server()
                .adapters(&token)
                .await
                .map_err(|e| e.to_string())?;
            match adapters.iter().find(|a| a.kind == "nfs") {
                Some(a) if a.port == eff.ports.nfs.container && a.enabled => Ok(()),
                other => Err(format!("the NFS adapter: {other:?}")),
            }
        },
    )
    .await;
    let back_in = moved_at.elapsed();
    eventually("the server as declared again", WAIT, async || {
        w.check_server(&token).await
    })
    .await;
    w.converged().await;
    eventually("status.server as before the drift", WAIT, async || {
        let now = w.check_status()?;
        (now == converged)
            .then_some(())
            .ok_or_else(|| format!("{now:?}\n  before: {converged:?}"))
    })
    .await;
    w.no_failure_events();
    step(
        started,
        &format!(
            "2. drift: the NFS adapter moved to {moved} by hand was put back after {:.1} s",
            back_in.as_secs_f64()
        ),
    );

    // 3a. A restart while the pod stays Ready (a container restart the readiness probe
    // does not notice): the poll may find the server down in between.
    let before = w.snapshot(&token).await;
    let events = w.event_counts();
    let grace =
        Duration::from_secs(u64::try_from(eff.termination_grace_period_seconds).unwrap_or(0));
    let (status, took) = dfs.stop(grace).await;
    step(
        started,
        &format!(
            "3a. DittoFS stopped by SIGTERM in {:.1} s ({status})",
            took.as_secs_f64()
        ),
    );
    drop(dfs);
    let mut dfs = Dfs::start(&pod, &home, tmp.join("dfs-2.log"));
    dfs.until_serving(&pod, &http).await;
    w.unchanged_after_restart(&token, &converged, &before, &events)
        .await;
    step(
        started,
        "3a. restarted with the pod Ready: converged, no DittoFS write, no drift",
    );

    // 3b. A restart with the pod NotReady in between (a rolled pod): once the pod is
    // Ready again, with nothing changed in the server, the DittoServer must say
    // Configured and Ready again.
    w.pod_not_ready();
    eventually(
        "the operator sees the pod not ready",
        WAIT,
        async || match w.condition("ServerConfigured") {
            Some((status, reason)) if status == "False" && reason == "ServerNotReady" => Ok(()),
            _ => Err(w.describe()),
        },
    )
    .await;
    let (status, took) = dfs.stop(grace).await;
    step(
        started,
        &format!(
            "3b. DittoFS stopped by SIGTERM in {:.1} s ({status})",
            took.as_secs_f64()
        ),
    );
    drop(dfs);
    let mut dfs = Dfs::start(&pod, &home, tmp.join("dfs-3.log"));
    dfs.until_serving(&pod, &http).await;
    // The operator calls nothing while the pod is not ready: what the server holds
    // now is what it kept over the restart. Wait until it serves all of it (the NFS
    // adapter healthy), so that what the operator reads next is exactly what it read
    // before: nothing to notice, nothing to change.
    eventually(
        "the restarted server holds what the spec declares",
        WAIT,
        async || w.check_server(&token).await,
    )
    .await;
    let kept = w.snapshot(&token).await;
    assert_eq!(
        kept, before,
        "DittoFS itself changed its configuration over a restart"
    );
    assert!(api.make_statefulset_ready(&w.sts_path), "StatefulSet ready");
    w.unchanged_after_restart(&token, &converged, &before, &events)
        .await;
    step(
        started,
        "3b. restarted with the pod NotReady in between: converged, no DittoFS write, no drift",
    );

    // The operator never changed the pod (it would have rolled it).
    assert_eq!(
        api.get(&w.sts_path).expect("StatefulSet")["spec"]["template"],
        applied_template,
        "the operator changed the pod template"
    );
    let (status, took) = dfs.stop(grace).await;
    step(
        started,
        &format!(
            "DittoFS stopped by SIGTERM in {:.1} s ({status})",
            took.as_secs_f64()
        ),
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    std::fs::write(tmp.join(FINISHED), b"").expect("the end mark");
}

/// Wait until `check` passes, at most `bound`; the last error in the panic.
async fn eventually<T>(
    what: &str,
    bound: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() > bound => panic!(
                "{what}: not within {} s. Last seen:\n{last}",
                bound.as_secs()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn secret_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/secrets/{name}")
}

fn cm_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps/{name}")
}

fn sts_path(ns: &str, name: &str) -> String {
    format!(
        "/apis/apps/v1/namespaces/{ns}/statefulsets/{}",
        names::stateful_set(name)
    )
}

/// The fake API server, the DittoServer in it, and the real server's API.
struct World {
    api: FakeApi,
    eff: EffectiveSpec,
    http: Client,
    ds_path: String,
    sts_path: String,
}

impl World {
    fn ds(&self) -> Value {
        self.api.get(&self.ds_path).expect("the DittoServer")
    }

    /// (status, reason) of a condition.
    fn condition(&self, type_: &str) -> Option<(String, String)> {
        self.api.condition_at(&self.ds_path, type_)
    }

    /// The conditions, status.server and the events, for failure messages.
    fn describe(&self) -> String {
        let ds = self.ds();
        let conditions: Vec<String> = ds["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "  {} {} {}: {}",
                    c["type"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["reason"].as_str().unwrap_or_default(),
                    c["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        format!(
            "conditions:\n{}\nstatus.server: {}\nevents: {:?}",
            conditions.join("\n"),
            ds["status"]["server"],
            self.api.event_reasons()
        )
    }

    fn secret_text(&self, name: &str, key: &str) -> Sensitive {
        let secret: Secret = self
            .api
            .get_as(&secret_path(&self.eff.namespace, name))
            .unwrap_or_else(|| panic!("Secret {name} exists"));
        let value = secret
            .data
            .and_then(|d| d.get(key).cloned())
            .unwrap_or_else(|| panic!("Secret {name} has key {key}"));
        Sensitive::new(String::from_utf8(value.0).expect("UTF-8"))
    }

    /// The real server's API, where the operator calls it.
    fn server(&self) -> Server<'_> {
        Server::of(
            &self.http,
            &self.eff.name,
            &self.eff.namespace,
            self.eff.ports.api.service,
            None,
        )
    }

    /// An access token of `username`, which has nothing to change first.
    async fn login(&self, username: &str, password: &Sensitive) -> Sensitive {
        let answer = self
            .server()
            .login(username, password)
            .await
            .unwrap_or_else(|e| panic!("log in as {username}: {e}"));
        assert!(
            !answer.user.must_change_password,
            "{username} must change its password first"
        );
        answer.access_token
    }

    async fn converged(&self) {
        eventually("ServerConfigured and Ready True", WAIT, async || {
            match (self.condition("ServerConfigured"), self.condition("Ready")) {
                (Some((s, _)), Some((r, _))) if s == "True" && r == "True" => Ok(()),
                _ => Err(self.describe()),
            }
        })
        .await;
    }

    /// status.server, when it says what the spec declares.
    fn check_status(&self) -> Result<ServerStatus, String> {
        let eff = &self.eff;
        let status: ServerStatus = serde_json::from_value(self.ds()["status"]["server"].clone())
            .map_err(|e| format!("no status.server ({e}):\n{}", self.describe()))?;
        let fail = |what: String| Err(format!("{what}\nstatus.server: {status:?}"));
        let stores = eff
            .server
            .metadata_stores
            .iter()
            .map(|s| ("metadata", &s.name))
            .chain(
                eff.server
                    .local_block_stores
                    .iter()
                    .map(|s| ("local", &s.name)),
            )
            .chain(
                eff.server
                    .remote_block_stores
                    .iter()
                    .map(|s| ("remote", &s.name)),
            );
        for (kind, name) in stores {
            if !status
                .stores
                .iter()
                .any(|s| s.kind == kind && &s.name == name && s.state == ItemState::Ready)
            {
                return fail(format!("{kind} store {name} is not Ready"));
            }
        }
        for share in &eff.server.shares {
            if !status
                .shares
                .iter()
                .any(|s| s.name == share.name && s.state == ItemState::Ready)
            {
                return fail(format!("share {} is not Ready", share.name));
            }
        }
        for policy in &eff.server.snapshot_policies {
            if !status
                .snapshot_policies
                .iter()
                .any(|p| p.share == policy.share && p.state == ItemState::Ready && p.owned)
            {
                return fail(format!(
                    "the snapshot policy of {} is not Ready",
                    policy.share
                ));
            }
        }
        if !status.unmanaged.is_empty() {
            return fail("unmanaged items".into());
        }
        let nfs = status.adapters.iter().find(|a| a.adapter_type == "nfs");
        if !nfs.is_some_and(|a| a.enabled && a.running && a.port == eff.ports.nfs.container) {
            return fail(format!("NFS is not running on {}", eff.ports.nfs.container));
        }
        let smb = status.adapters.iter().find(|a| a.adapter_type == "smb");
        if eff.ports.smb.is_none() && smb.is_some_and(|a| a.enabled) {
            return fail("SMB is enabled".into());
        }
        let portmapper = eff.server.portmapper.then_some(DITTOFS_PORTMAPPER_PORT);
        if status.portmapper_port != portmapper {
            return fail(format!("the portmapper port is not {portmapper:?}"));
        }
        Ok(status)
    }

    /// The real server, asked directly: the stores, shares, adapters and NFS settings
    /// the spec declares, and the ports that must (not) accept connections.
    async fn check_server(&self, token: &Sensitive) -> Result<(), String> {
        let eff = &self.eff;
        let server = self.server();
        let e = |e: dittofs_operator::dittofs::CallError| e.to_string();
        let metadata = server.metadata_stores(token).await.map_err(e)?;
        let local = server.block_stores(token, "local").await.map_err(e)?;
        let remote = server.block_stores(token, "remote").await.map_err(e)?;
        let shares = server.shares(token).await.map_err(e)?;
        let adapters = server.adapters(token).await.map_err(e)?;
        let settings = server.nfs_settings(token).await.map_err(e)?;
        let policies = server.snapshot_policies(token).await.map_err(e)?;
        for declared in &eff.server.snapshot_policies {
            let ok = policies.iter().any(|p| {
                p.share == declared.share
                    && p.interval == "24h0m0s"
                    && p.keep_last == i64::from(declared.keep_last)
                    && p.enabled == declared.enabled
            });
            if !ok {
                return Err(format!(
                    "the snapshot policy of {} is not as declared: {policies:?}",
                    declared.share
                ));
            }
        }

        let find = |stores: &[api::Store], name: &str, kind: &str, path: Option<&str>| {
            let store = stores
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| format!("no store {name} in {stores:?}"))?;
            if store.kind != kind
                || path.is_some_and(|p| store.config.get("path") != Some(&json!(p)))
            {
                return Err(format!("store {name} is not {kind} at {path:?}: {store:?}"));
            }
            Ok(store.id.clone())
        };
        let mut ids = BTreeMap::new();
        for s in &eff.server.metadata_stores {
            let (kind, path) = match &s.kind {
                MetadataStoreKind::Memory => ("memory", None),
                MetadataStoreKind::Badger { path } => ("badger", Some(path.as_str())),
                MetadataStoreKind::Postgres { .. } => ("postgres", None),
            };
            ids.insert(
                ("metadata", s.name.clone()),
                find(&metadata, &s.name, kind, path)?,
            );
        }
        for s in &eff.server.local_block_stores {
            let (kind, path) = match &s.kind {
                LocalBlockStoreKind::Memory => ("memory", None),
                LocalBlockStoreKind::Fs { path } => ("fs", Some(path.as_str())),
            };
            ids.insert(
                ("local", s.name.clone()),
                find(&local, &s.name, kind, path)?,
            );
        }
        for s in &eff.server.remote_block_stores {
            let kind = match &s.kind {
                RemoteBlockStoreKind::Memory => "memory",
                RemoteBlockStoreKind::S3(_) => "s3",
            };
            ids.insert(
                ("remote", s.name.clone()),
                find(&remote, &s.name, kind, None)?,
            );
        }
        for declared in &eff.server.shares {
            let share = shares
                .iter()
                .find(|s| s.name == declared.name)
                .ok_or_else(|| format!("no share {} in {shares:?}", declared.name))?;
            let remote_id = declared
                .remote_block_store
                .as_ref()
                .map(|r| ids[&("remote", r.clone())].clone());
            let ok = share.metadata_store_id == ids[&("metadata", declared.metadata_store.clone())]
                && share.local_block_store_id
                    == ids[&("local", declared.local_block_store.clone())]
                && share
                    .remote_block_store_id
                    .clone()
                    .filter(|id| !id.is_empty())
                    == remote_id
                && share.read_only == declared.read_only
                && share.default_permission == declared.default_permission.as_str()
                && share.enabled;
            if !ok {
                return Err(format!(
                    "share {} is not as declared: {share:?}",
                    declared.name
                ));
            }
        }

        let nfs = adapters
            .iter()
            .find(|a| a.kind == "nfs")
            .ok_or_else(|| format!("no NFS adapter: {adapters:?}"))?;
        if !(nfs.enabled
            && nfs.running
            && nfs.status.status == "healthy"
            && nfs.port == eff.ports.nfs.container)
        {
            return Err(format!(
                "the NFS adapter is not running healthy on {}: {nfs:?}",
                eff.ports.nfs.container
            ));
        }
        let smb = adapters.iter().find(|a| a.kind == "smb");
        if eff.ports.smb.is_none() && smb.is_some_and(|a| a.enabled || a.running) {
            return Err(format!("the SMB adapter is on: {smb:?}"));
        }
        if settings.portmapper_enabled != eff.server.portmapper {
            return Err(format!("NFS settings: {settings:?}"));
        }
        connects(nfs.port, true).await?;
        if eff.server.portmapper {
            connects(settings.portmapper_port, true).await?;
        }
        if let Some(smb) = smb.filter(|_| eff.ports.smb.is_none()) {
            connects(smb.port, false).await?;
        }
        Ok(())
    }

    /// What the operator could change in the server, with the marks of a change
    /// (`updated_at`, the settings' `version`, store and share ids): equal before and
    /// after means no write.
    async fn snapshot(&self, token: &Sensitive) -> Value {
        let server = self.server();
        let base = server.endpoint();
        let get = |path: &'static str| async move {
            self.http
                .call::<Value, ()>(path, base, Method::GET, path, Some(token), None)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        };
        let pick = |items: Value, keys: &[&str]| -> Value {
            let mut out: Vec<Value> = items
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| {
                    Value::Object(
                        keys.iter()
                            .map(|k| (k.to_string(), item[*k].clone()))
                            .collect(),
                    )
                })
                .collect();
            out.sort_by_key(|v| v.to_string());
            Value::Array(out)
        };
        json!({
            "adapters": pick(get("/api/v1/adapters").await, &["id", "type", "port", "enabled", "config", "created_at", "updated_at"]),
            "nfs_settings": get("/api/v1/adapters/nfs/settings").await,
            "metadata_stores": pick(get("/api/v1/store/metadata").await, &["id", "name", "type", "config", "created_at"]),
            "local_block_stores": pick(get("/api/v1/store/block/local").await, &["id", "name", "type", "config", "created_at"]),
            "remote_block_stores": pick(get("/api/v1/store/block/remote").await, &["id", "name", "type", "config", "created_at"]),
            "shares": pick(get("/api/v1/shares").await, &[
                "id", "name", "metadata_store_id", "local_block_store_id", "remote_block_store_id",
                "read_only", "enabled", "default_permission", "created_at", "updated_at",
            ]),
            "snapshot_policies": pick(get("/api/v1/snapshot-policies").await, &[
                "share", "enabled", "interval", "keep_last", "ttl", "name_prefix", "created_at",
                "updated_at",
            ]),
        })
    }

    /// After a restart: converged again, status.server as before, after the poll has
    /// read every view of the restarted server (three intervals); the server's
    /// configuration unchanged (no DittoFS write); no new drift or refusal.
    async fn unchanged_after_restart(
        &self,
        token: &Sensitive,
        converged: &ServerStatus,
        before: &Value,
        events: &BTreeMap<String, usize>,
    ) {
        tokio::time::sleep(3 * POLL + Duration::from_secs(1)).await;
        self.converged().await;
        eventually("status.server as before the restart", WAIT, async || {
            let now = self.check_status()?;
            (&now == converged)
                .then_some(())
                .ok_or_else(|| format!("{now:?}\n  before: {converged:?}"))
        })
        .await;
        eventually(
            "the server holds what the spec declares",
            WAIT,
            async || self.check_server(token).await,
        )
        .await;
        let after = self.snapshot(token).await;
        assert_eq!(
            &after, before,
            "the server's configuration changed over the restart: the operator wrote to it (or \
             DittoFS changed it itself when it started again)"
        );
        // And it stays so: three more intervals of polls.
        tokio::time::sleep(3 * POLL).await;
        let later = self.snapshot(token).await;
        assert_eq!(&later, before, "the operator wrote to the server later");
        assert!(
            matches!(self.condition("ServerConfigured"), Some((s, _)) if s == "True"),
            "ServerConfigured:\n{}",
            self.describe()
        );
        let now = self.event_counts();
        for reason in ["ServerDrift", "ServerRefused"] {
            assert_eq!(
                now.get(reason),
                events.get(reason),
                "{reason} events after the restart:\n{}",
                self.describe()
            );
        }
        self.no_failure_events();
    }

    fn event_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for reason in self.api.event_reasons() {
            *counts.entry(reason).or_insert(0) += 1;
        }
        counts
    }

    fn no_failure_events(&self) {
        let reasons = self.api.event_reasons();
        for bad in [
            "ServerDrift",
            "ServerRefused",
            "ServerAccount",
            "ReconcileFailed",
        ] {
            assert!(
                !reasons.iter().any(|r| r == bad),
                "a {bad} event:\n{}",
                self.describe()
            );
        }
    }

    /// What the StatefulSet says while its pod restarts: no replica ready.
    fn pod_not_ready(&self) {
        let mut sts = self.api.get(&self.sts_path).expect("StatefulSet");
        sts["status"]["readyReplicas"] = json!(0);
        sts["status"]["availableReplicas"] = json!(0);
        self.api.put(&self.sts_path, sts);
    }
}

/// A TCP connection to `port` on loopback is accepted (`true`) or refused.
async fn connects(port: i32, accepted: bool) -> Result<(), String> {
    let port = u16::try_from(port).map_err(|e| e.to_string())?;
    let connected = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if connected == accepted {
        Ok(())
    } else if accepted {
        Err(format!("nothing accepts connections on port {port}"))
    } else {
        Err(format!("port {port} accepts connections"))
    }
}

/// The pod's volumes: a tmpfs at every mount path (the ConfigMap's files written in,
/// read-only where the mount is), mount points created where missing. Dropped:
/// unmounted, and the mount points it created removed.
#[derive(Default)]
struct Mounts {
    mounted: Vec<PathBuf>,
    created: Vec<PathBuf>,
}

impl Mounts {
    fn prepare(pod: &Pod) -> Self {
        let mut mounts = Mounts::default();
        for (dir, files, read_only) in &pod.config {
            mounts.tmpfs(dir);
            for (name, text) in files {
                std::fs::write(dir.join(name), text)
                    .unwrap_or_else(|e| panic!("write {}: {e}", dir.join(name).display()));
            }
            if *read_only {
                run("mount", &["-o", "remount,ro", &dir.display().to_string()]);
            }
        }
        for dir in &pod.data {
            mounts.tmpfs(dir);
        }
        mounts
    }

    fn tmpfs(&mut self, dir: &Path) {
        for missing in missing_dirs(&[dir.to_path_buf()]) {
            std::fs::create_dir(&missing)
                .unwrap_or_else(|e| panic!("create {}: {e}", missing.display()));
            self.created.push(missing);
        }
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "mode=0755",
                "tmpfs",
                &dir.display().to_string(),
            ],
        );
        self.mounted.push(dir.to_path_buf());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for dir in self.mounted.iter().rev() {
            let unmounted = Command::new("umount")
                .arg(dir)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(dir).status();
            }
        }
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A running DittoFS server, in a process group of its own, its output in a file.
/// Dropped: the whole group killed (its last output shown if the test is failing).
struct Dfs {
    child: Child,
    pid: u32,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Dfs {
    /// Start the pod's process as the container runtime would: its argv, only its
    /// environment (plus the image's PATH, a HOME and the pod's HOSTNAME).
    ///
    /// What DittoFS v0.29 does with them: `--config` is the root command's persistent
    /// flag (`cmd/dfs/commands/root.go`); `dfs start --foreground` loads that file with
    /// `config.MustLoad` (`cmd/dfs/commands/start.go`, `runStart`), every key also read
    /// from `DITTOFS_<KEY>` (`pkg/config/config.go`, `setupViper`; the JWT secret from
    /// `DITTOFS_CONTROLPLANE_SECRET`), hence the cleared environment: only the
    /// container's variables may reach it. On a first start it creates `admin` with
    /// `DITTOFS_ADMIN_INITIAL_PASSWORD` (`EnsureAdminUser`,
    /// `pkg/controlplane/store/users.go`) and the `nfs` (12049) and `smb` (1445)
    /// adapters, enabled (`EnsureDefaultAdapters`, `pkg/controlplane/store/adapters.go`).
    /// SIGTERM starts its graceful shutdown (`runStart`).
    fn start(pod: &Pod, home: &Path, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&pod.argv[0])
            .args(&pod.argv[1..])
            .env_clear()
            .envs(pod.env.iter().map(|(k, v)| (k, v)))
            .env("PATH", IMAGE_PATH)
            .env("HOME", home)
            .env("HOSTNAME", &pod.hostname)
            .current_dir(home)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN_VAR}={}: {e}", pod.argv[0]));
        let pid = child.id();
        Dfs {
            child,
            pid,
            log,
            exited: None,
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// The last lines of its output.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Until the container's startup probe passes (within the probe's own bound),
    /// then its readiness probe: what a kubelet waits for before the pod is Ready.
    /// `GET /health` and `/health/ready` need no token (`pkg/controlplane/api/router.go`,
    /// `NewRouter`: the `/health` route is registered outside the authenticated group;
    /// `internal/controlplane/api/handlers/health.go`).
    async fn until_serving(&mut self, pod: &Pod, http: &Client) -> Duration {
        let started = Instant::now();
        let base = dittofs_operator::dittofs::client::Endpoint {
            base: format!("http://127.0.0.1:{}", pod.api_port),
            tls: None,
        };
        let probe = http.clone().with_timeout(Duration::from_secs(5));
        for (path, bound) in [
            (&pod.startup_path, pod.startup_bound),
            (&pod.readiness_path, WAIT),
        ] {
            let since = Instant::now();
            loop {
                if let Some(status) = self.exited() {
                    panic!(
                        "DittoFS ({}) exited ({status}) before GET {path} on port {} answered. \
                         Its last output:\n{}",
                        pod.argv[0],
                        pod.api_port,
                        self.tail()
                    );
                }
                // A success status is what the kubelet asks of an HTTP probe.
                let answer = probe
                    .call_ignoring_body::<()>(path, &base, Method::GET, path, None, None)
                    .await;
                match answer {
                    Ok(()) => break,
                    Err(e) if since.elapsed() > bound => panic!(
                        "DittoFS did not answer GET {path} on port {} within {} s (the \
                         container's probe): {e}",
                        pod.api_port,
                        bound.as_secs(),
                    ),
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        }
        started.elapsed()
    }

    /// SIGTERM to the server, as the kubelet sends it; it must exit by itself
    /// within the pod's grace period. Its exit status and how long it took.
    async fn stop(&mut self, grace: Duration) -> (ExitStatus, Duration) {
        if let Some(status) = self.exited() {
            panic!(
                "DittoFS had exited ({status}) before it was stopped. Its last output:\n{}",
                self.tail()
            );
        }
        let started = Instant::now();
        run("kill", &["-TERM", &self.pid.to_string()]);
        loop {
            if let Some(status) = self.exited() {
                return (status, started.elapsed());
            }
            if started.elapsed() > grace {
                self.kill();
                panic!(
                    "DittoFS did not exit within the pod's grace period ({} s) after SIGTERM. \
                     Its last output:\n{}",
                    grace.as_secs(),
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL to the whole process group; reaped.
    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .stderr(Stdio::null())
            .status();
        if self.exited.is_none() {
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Dfs {
    fn drop(&mut self) {
        let running = self.exited().is_none();
        self.kill();
        if std::thread::panicking() && running {
            eprintln!(
                "dittofs_real: DittoFS killed; its last output ({}):\n{}",
                self.log.display(),
                self.tail()
            );
        }
    }
}
