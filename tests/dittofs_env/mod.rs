//! The real `controller::run` (watches, stores, scheduler, the drift poll) against
//! the in-memory API server (`fake_api`) and one fake DittoFS (`fake_dittofs`)
//! serving the REST API of every DittoServer's pod: shared by
//! `controller_dittofs.rs` and `controller_dittofs_scale.rs`.
//!
//! The operator's DittoFS client resolves every name to 127.0.0.1 and calls
//! `http://<name>-api.<namespace>.svc:<spec.controlPlane.servicePort>`, so every
//! DittoServer made here gets the fake's port as its `servicePort`; the fake routes
//! by the `Host` header. A pod "starts" when the test registers its DittoFS server
//! with the admin password of the generated Secret ([`Env::start_server`]), and is
//! then reported ready by the fake API's StatefulSet stand-in.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use base64::Engine;
use dittofs_operator::controller::{self, ControllerArgs, ControllerMetrics};
use dittofs_operator::crd::DittoServer;
use dittofs_operator::probes::Readiness;
use kube::api::{Api, PostParams};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::fake_api::{AllFound, FakeApi};
use crate::fake_dittofs::{FakeDittoFs, ServerHandle};

/// How the operator runs in a test.
#[derive(Clone, Debug)]
pub struct Options {
    pub poll_interval: Duration,
    /// The DittoFS client's bound per call (`None`: the production 35 s).
    pub call_timeout: Option<Duration>,
    pub concurrency: u16,
    pub debounce: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            call_timeout: None,
            concurrency: 4,
            debounce: Duration::from_millis(100),
        }
    }
}

/// The operator, the API server and the DittoFS fake of one test.
pub struct Env {
    pub api: FakeApi,
    pub dfs: FakeDittoFs,
    pub registry: Registry,
    pub options: Options,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn ds_collection(ns: &str) -> String {
    format!("/apis/dittofs.dittofs.com/v1alpha1/namespaces/{ns}/dittoservers")
}
pub fn ds_path(ns: &str, name: &str) -> String {
    format!("{}/{name}", ds_collection(ns))
}
pub fn sts_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")
}
pub fn secret_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/secrets/{name}")
}
pub fn service_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/services/{name}")
}
pub fn config_map_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps/{name}")
}
/// The `Host` the operator sends for DittoServer `ns/name`.
pub fn host(ns: &str, name: &str) -> String {
    format!("{name}-api.{ns}.svc")
}

/// The spec of `samples/minimal.yaml` (badger store `meta`, fs store `content` on
/// `/data/content`, share `/export` read-write).
pub fn minimal_sample_spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/minimal.yaml"))
            .expect("samples/minimal.yaml");
    let ds: Value = serde_yaml_ng::from_str(&text).expect("the sample parses");
    ds["spec"].clone()
}

/// A DittoFS client as the operator's: every name to the fake on loopback.
pub fn dittofs_client() -> dittofs_operator::dittofs::Client {
    dittofs_operator::dittofs::Client::new(dittofs_operator::dittofs::Resolver::everything_to(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ))
}

/// An administrator at work with dfsctl: the REST API of one server, logged in as
/// `admin` with the password the operator generated.
pub struct ByHand {
    client: dittofs_operator::dittofs::Client,
    name: String,
    namespace: String,
    port: i32,
    pub token: dittofs_operator::dittofs::Sensitive,
}

impl ByHand {
    pub fn server(&self) -> dittofs_operator::dittofs::Server<'_> {
        dittofs_operator::dittofs::Server::of(
            &self.client,
            &self.name,
            &self.namespace,
            self.port,
            None,
        )
    }

    /// A share `name` of the sample's stores, read-write, as `dfsctl share create`.
    pub async fn create_share(&self, name: &str) {
        self.server()
            .create_share(
                &self.token,
                &dittofs_operator::dittofs::api::CreateShareRequest {
                    name,
                    metadata_store_id: "meta",
                    local_block_store: "content",
                    remote_block_store: None,
                    read_only: false,
                    default_permission: "read-write",
                },
            )
            .await
            .expect("share created by hand");
    }
}

/// The operator never deletes anything in DittoFS.
pub fn assert_nothing_deleted(dfs: &ServerHandle) {
    let deletes: Vec<String> = dfs
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert!(deletes.is_empty(), "no DELETE ever: {deletes:?}");
}

/// Wait until `done` gives a value, checking every 100 ms; fails the test after
/// `bound`, with `what` and the last state `describe` gives.
pub async fn wait_for<T>(what: &str, bound: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not within {} s",
            bound.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `controller::run`, leading, on `api`: its metrics, its shutdown, its task.
fn spawn_operator(
    api: &FakeApi,
    options: &Options,
) -> (Registry, CancellationToken, tokio::task::JoinHandle<()>) {
    let mut registry = Registry::default();
    let metrics = ControllerMetrics::register(&mut registry);
    let mut client = dittofs_operator::dittofs::Client::new(
        dittofs_operator::dittofs::Resolver::everything_to(std::net::Ipv4Addr::LOCALHOST.into()),
    );
    if let Some(timeout) = options.call_timeout {
        client = client.with_timeout(timeout);
    }
    let (leader_tx, leader) = watch::channel(true);
    let shutdown = CancellationToken::new();
    let readiness = Readiness::new();
    let task = tokio::spawn({
        let (api, options, shutdown) = (api.clone(), options.clone(), shutdown.clone());
        async move {
            let _leader = leader_tx;
            controller::run(
                api.client(),
                client,
                ControllerArgs {
                    concurrency: options.concurrency,
                    debounce: options.debounce,
                    reporter: "dittofs-e2e".into(),
                    poll_interval: options.poll_interval,
                    scope: Default::default(),
                },
                AllFound,
                leader,
                readiness.gate("controller"),
                metrics,
                shutdown,
                CancellationToken::new(),
            )
            .await;
        }
    });
    (registry, shutdown, task)
}

impl Env {
    /// A cluster with namespace `namespaces`, the fake DittoFS listening, and the
    /// operator leading.
    pub async fn start(namespaces: &[&str], options: Options) -> Env {
        Self::start_with(namespaces, options, FakeDittoFs::start()).await
    }

    /// [`Env::start`] with a DittoFS fake of the test's own (over HTTPS).
    pub async fn start_with(namespaces: &[&str], options: Options, dfs: FakeDittoFs) -> Env {
        let api = FakeApi::new();
        for ns in namespaces {
            api.create_namespace(ns);
        }
        let (registry, shutdown, task) = spawn_operator(&api, &options);
        Env {
            api,
            dfs,
            registry,
            options,
            shutdown,
            task: Some(task),
        }
    }

    /// Stop the operator and start a new process of it (empty memory, new
    /// watches), against the same cluster and DittoFS servers.
    pub async fn restart_operator(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let (registry, shutdown, task) = spawn_operator(&self.api, &self.options);
        self.registry = registry;
        self.shutdown = shutdown;
        self.task = Some(task);
    }

    /// Stop the operator (awaited, bounded).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// `spec` with `controlPlane.servicePort` pointing at the fake DittoFS.
    pub fn with_fake_port(&self, mut spec: Value) -> Value {
        spec["controlPlane"]["servicePort"] = json!(self.dfs.port());
        spec
    }

    /// Create DittoServer `ns/name` through the API (schema defaults applied), its
    /// servicePort set to the fake DittoFS.
    pub async fn create(&self, ns: &str, name: &str, spec: Value) {
        let ds: DittoServer = serde_json::from_value(json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
            "metadata": {"name": name, "namespace": ns},
            "spec": self.with_fake_port(spec),
        }))
        .expect("DittoServer");
        Api::<DittoServer>::namespaced(self.api.client(), ns)
            .create(&PostParams::default(), &ds)
            .await
            .expect("create DittoServer");
    }

    /// Edit the spec of `ns/name` as a user would (a new generation).
    pub fn edit_spec(&self, ns: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let path = ds_path(ns, name);
        let mut ds = self.api.get(&path).expect("DittoServer exists");
        edit(&mut ds["spec"]);
        ds["metadata"]["generation"] = Value::Null;
        self.api.put(&path, ds);
    }

    pub fn ds(&self, ns: &str, name: &str) -> Option<Value> {
        self.api.get(&ds_path(ns, name))
    }

    /// Key `key` of Secret `ns/name`, decoded.
    pub fn secret_value(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        let secret = self.api.get(&secret_path(ns, name))?;
        let encoded = secret["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        Some(String::from_utf8(bytes).expect("utf-8"))
    }

    /// Store Secret `ns/name` of `type_` with `data` (plain values).
    pub fn put_secret(&self, ns: &str, name: &str, type_: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        self.api.put(
            &secret_path(ns, name),
            json!({"apiVersion": "v1", "kind": "Secret", "type": type_, "data": data}),
        );
    }

    /// The admin password the operator generated for `ns/name`.
    pub fn admin_password(&self, ns: &str, name: &str) -> Option<String> {
        self.secret_value(
            ns,
            &format!("{name}-admin-bootstrap-credentials"),
            "password",
        )
    }

    /// The pod of `ns/name` starts: once the operator made its admin Secret and
    /// StatefulSet, a DittoFS server is registered with that password; then the
    /// StatefulSet reports its pod ready.
    pub async fn start_server(&self, ns: &str, name: &str) -> ServerHandle {
        let dfs = self.register_server(ns, name).await;
        assert!(
            self.api.make_statefulset_ready(&sts_path(ns, name)),
            "StatefulSet {ns}/{name} made ready"
        );
        dfs
    }

    /// Register the DittoFS server of `ns/name` (first start with the generated
    /// admin password), without making the pod ready.
    pub async fn register_server(&self, ns: &str, name: &str) -> ServerHandle {
        let password = wait_for(
            &format!("admin Secret and StatefulSet of {ns}/{name}"),
            Duration::from_secs(30),
            || {
                self.api.get(&sts_path(ns, name))?;
                self.admin_password(ns, name)
            },
        )
        .await;
        self.dfs.add_server(&host(ns, name), &password)
    }

    /// (status, reason, message) of condition `type_` of `ns/name`.
    pub fn condition(&self, ns: &str, name: &str, type_: &str) -> Option<(String, String, String)> {
        let ds = self.ds(ns, name)?;
        let c = ds["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)?
            .clone();
        let field = |f: &str| c[f].as_str().unwrap_or_default().to_string();
        Some((field("status"), field("reason"), field("message")))
    }

    /// Wait for condition `type_` at `status` (and `reason`); its message.
    pub async fn wait_condition(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
        bound: Duration,
    ) -> String {
        let what = format!("{ns}/{name}: {type_}={status} {reason:?}");
        let started = Instant::now();
        loop {
            let c = self.condition(ns, name, type_);
            if let Some((s, r, m)) = &c
                && s == status
                && reason.is_none_or(|want| want == r)
            {
                return m.clone();
            }
            assert!(
                started.elapsed() < bound,
                "{what}: not within {} s; it is {c:?}",
                bound.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Log in to the server of `ns/name` as `admin`, as a person would.
    pub async fn by_hand(&self, ns: &str, name: &str) -> ByHand {
        let password = self.admin_password(ns, name).expect("admin password");
        let client = dittofs_client();
        let port = i32::from(self.dfs.port());
        let login = dittofs_operator::dittofs::Server::of(&client, name, ns, port, None)
            .login(
                "admin",
                &dittofs_operator::dittofs::Sensitive::new(password),
            )
            .await
            .expect("admin logs in");
        ByHand {
            client,
            name: name.to_string(),
            namespace: ns.to_string(),
            port,
            token: login.access_token,
        }
    }

    /// Wait until `ns/name` has ServerConfigured True (reason Configured).
    pub async fn wait_configured(&self, ns: &str, name: &str, bound: Duration) -> String {
        self.wait_condition(
            ns,
            name,
            "ServerConfigured",
            "True",
            Some("Configured"),
            bound,
        )
        .await
    }

    /// Wait until `ns/name` has ServerConfigured False for `reason`; its message.
    pub async fn wait_server_state(
        &self,
        ns: &str,
        name: &str,
        reason: &str,
        bound: Duration,
    ) -> String {
        self.wait_condition(ns, name, "ServerConfigured", "False", Some(reason), bound)
            .await
    }

    /// `status.server` of `ns/name`.
    pub fn server_status(&self, ns: &str, name: &str) -> Value {
        self.ds(ns, name)
            .map(|d| d["status"]["server"].clone())
            .unwrap_or(Value::Null)
    }

    /// ServerConfigured and Ready are True.
    pub fn configured(&self, ns: &str, name: &str) -> bool {
        let ok = |t: &str| self.condition(ns, name, t).is_some_and(|c| c.0 == "True");
        ok("ServerConfigured") && ok("Ready")
    }

    /// `controller_reconciles_total` by result, from the metrics text.
    pub fn reconciles(&self, result: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text.lines()
            .filter(|l| {
                l.starts_with("controller_reconciles_total{")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The port `targetPort` of Service port `port_name` of `<name>-file`, and its
    /// (port, protocol).
    pub fn file_service_port(&self, ns: &str, name: &str, port_name: &str) -> Option<Value> {
        let svc = self.api.get(&service_path(ns, &format!("{name}-file")))?;
        svc["spec"]["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == port_name)
            .cloned()
    }

    /// Wait until neither the API server nor DittoFS saw a write for `quiet`
    /// (our passes settled), at most `within`.
    pub async fn settle(&self, quiet: Duration, within: Duration) {
        let started = Instant::now();
        let mut last = (self.api.writes().len(), self.dfs.totals().db_writes);
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = (self.api.writes().len(), self.dfs.totals().db_writes);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
            assert!(
                started.elapsed() < within,
                "no quiet {} s within {} s: last writes {:?}",
                quiet.as_secs(),
                within.as_secs(),
                self.api.writes().iter().rev().take(5).collect::<Vec<_>>()
            );
        }
    }
}

/// Certificates for a DittoFS REST API with mutual TLS: a server CA and a leaf for
/// `host`, a client CA and the operator's certificate from it, and a client
/// certificate from a CA the server does not trust.
pub struct TestPki {
    pub server_ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_ca: String,
    pub operator_cert: String,
    pub operator_key: String,
    pub stranger_cert: String,
    pub stranger_key: String,
}

impl TestPki {
    pub fn new(host: &str) -> Self {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let server_ca = test_ca("server CA");
        let client_ca = test_ca("client CA");
        let stranger_ca = test_ca("stranger CA");
        let (server_cert, server_key) = test_leaf(&server_ca, host, ServerAuth);
        let (operator_cert, operator_key) = test_leaf(&client_ca, "dittofs-operator", ClientAuth);
        let (stranger_cert, stranger_key) = test_leaf(&stranger_ca, "dittofs-operator", ClientAuth);
        Self {
            server_ca: server_ca.0,
            server_cert,
            server_key,
            client_ca: client_ca.0,
            operator_cert,
            operator_key,
            stranger_cert,
            stranger_key,
        }
    }

    /// The server's TLS: its leaf, and client certificates of the client CA
    /// required when `mutual`.
    pub fn server_config(&self, mutual: bool) -> std::sync::Arc<rustls::ServerConfig> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let chain =
            vec![CertificateDer::from_pem_slice(self.server_cert.as_bytes()).expect("leaf")];
        let key = PrivateKeyDer::from_pem_slice(self.server_key.as_bytes()).expect("key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if mutual {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.client_ca.as_bytes()).expect("client CA"))
                .expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        std::sync::Arc::new(builder.with_single_cert(chain, key).expect("server config"))
    }
}

/// (certificate PEM, issuer)
fn test_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA");
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// (certificate PEM, key PEM) for `name`, signed by `ca`.
fn test_leaf(
    ca: &(String, rcgen::Issuer<'static, rcgen::KeyPair>),
    name: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &ca.1).expect("leaf");
    (cert.pem(), key.serialize_pem())
}
