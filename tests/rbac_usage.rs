//! The RBAC of `src/rbac.rs` is exactly what the code uses, both ways.
//!
//! Each component runs its real code against the in-memory API server of the tests;
//! every request it made is turned into the authorization checks the API server
//! makes for it (`ApiCall::from_http`: verb, group, resource, namespace, name —
//! including `create` for server-side apply and `update` on `<owner>/finalizers` for
//! `blockOwnerDeletion`). Then, per component:
//! - every recorded call must be granted by that component's own rules, in the right
//!   scope (ClusterRole for any namespace, a Role only in its namespace: the
//!   operator's, or with `--watch-namespaces` each served one) and for the right
//!   object names;
//! - every verb × resource × name a rule of that component grants must have been used
//!   by at least one recorded call: a verb nobody uses fails the test.

mod fake_api;
#[path = "support/rbac_eval.rs"]
mod rbac_eval;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dittofs_operator::certs::{CertsArgs, bootstrap_once};
use dittofs_operator::controller::reconcile::reconcile;
use dittofs_operator::controller::watches::{OptionalType, Stores, Writers};
use dittofs_operator::controller::{Context, ControllerArgs, ControllerMetrics, StoredServer};
use dittofs_operator::leader::{LeaderArgs, leadership};
use dittofs_operator::probes::Readiness;
use dittofs_operator::rbac::{Component, Install, Rule};
use dittofs_operator::scope::{ScopeArgs, WatchScope};
use dittofs_operator::validation::{ClusterLookup, Lookup, SecretFacts};
use dittofs_operator::webhook::KubeLookup;
use fake_api::FakeApi;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use rbac_eval::{ApiCall, role_namespace, rule_allows};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const DS_PATH: &str = "/apis/dittofs.dittofs.com/v1alpha1/namespaces/team/dittoservers/d";
const PG_PATH: &str = "/apis/pgv2.percona.com/v2/namespaces/team/perconapgclusters/d-postgres";
const STS_PATH: &str = "/apis/apps/v1/namespaces/team/statefulsets/d";

/// Every cluster fact exists (the reconciler's validation needs no API call then).
struct AllFound;

impl ClusterLookup for AllFound {
    async fn storage_class(&self, _: &str) -> Lookup<()> {
        Lookup::Found(())
    }
    async fn secret(&self, _: &str, _: &str) -> Lookup<SecretFacts> {
        Lookup::Found(SecretFacts::default())
    }
    async fn percona_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
    async fn service_monitor_crd(&self) -> Lookup<()> {
        Lookup::Found(())
    }
}

/// The rules of `components`, each with the namespace of its Role (None: ClusterRole).
fn rules_of(components: &[Component], install: &Install) -> Vec<(&'static Rule, Option<String>)> {
    install
        .grants()
        .into_iter()
        .filter(|(r, _)| components.contains(&r.component))
        .map(|(r, g)| (r, role_namespace(&g).map(str::to_string)))
        .collect()
}

/// Both directions of the check for the install of `deploy/` (every namespace
/// served); returns every problem found (empty: exact match).
fn mismatches(components: &[Component], calls: &[ApiCall]) -> BTreeSet<String> {
    mismatches_for(&Install::plain(), components, calls)
}

/// Both directions of the check for `install`.
fn mismatches_for(
    install: &Install,
    components: &[Component],
    calls: &[ApiCall],
) -> BTreeSet<String> {
    let install = install.clone();
    let rules = rules_of(components, &install);
    let mut problems = BTreeSet::new();
    for call in calls {
        match call {
            ApiCall::NonResource { verb, path } => {
                // Discovery, allowed to every authenticated user by system:discovery.
                let discovery = verb == "get"
                    && (path.starts_with("/apis/") || path.starts_with("/api/"))
                    && path.trim_matches('/').split('/').count() <= 3;
                if !discovery {
                    problems.insert(format!("non-resource request {verb} {path}"));
                }
            }
            ApiCall::Resource {
                verb,
                group,
                resource,
                ..
            } => {
                if !rules
                    .iter()
                    .any(|(r, ns)| rule_allows(r, ns.as_deref(), &install, call))
                {
                    problems.insert(format!("used but not granted: {call:?}"));
                }
                // A watch always comes after a list (the reflector's relist), in the
                // same namespace (or all of them).
                if verb == "watch" {
                    let ApiCall::Resource { namespace, .. } = call else {
                        continue;
                    };
                    let list = ApiCall::Resource {
                        verb: "list".into(),
                        group: group.clone(),
                        resource: resource.clone(),
                        namespace: namespace.clone(),
                        name: None,
                    };
                    if !rules
                        .iter()
                        .any(|(r, ns)| rule_allows(r, ns.as_deref(), &install, &list))
                    {
                        problems.insert(format!("watched without list: {group}/{resource}"));
                    }
                }
            }
        }
    }
    for (rule, role_ns) in &rules {
        let names = install.resolve(rule.names);
        let targets: Vec<Option<String>> = if names.is_empty() {
            vec![None]
        } else {
            names.into_iter().map(Some).collect()
        };
        for resource in rule.resources {
            for verb in rule.verbs {
                for target in &targets {
                    let used = calls.iter().any(|c| match c {
                        ApiCall::Resource {
                            verb: v,
                            group: g,
                            resource: r,
                            namespace,
                            name,
                        } => {
                            v == verb
                                && g == rule.api_group
                                && r == resource
                                && (role_ns.is_none() || namespace == role_ns)
                                && (target.is_none() || name == target)
                        }
                        ApiCall::NonResource { .. } => false,
                    });
                    if !used {
                        problems.insert(format!(
                            "granted but never used: {verb} {}/{resource}{} ({})",
                            rule.api_group,
                            target
                                .as_ref()
                                .map(|n| format!(" [{n}]"))
                                .unwrap_or_default(),
                            rule.code
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn assert_exact(components: &[Component], calls: &[ApiCall]) {
    assert_exact_for(&Install::plain(), components, calls);
}

fn assert_exact_for(install: &Install, components: &[Component], calls: &[ApiCall]) {
    let problems = mismatches_for(install, components, calls);
    assert!(
        problems.is_empty(),
        "{components:?} serving {}: src/rbac.rs and the code disagree:\n{}",
        install.scope.describe(),
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The install of `deploy/namespaced/`-style RBAC serving the namespace of the
/// scenarios only.
fn serving_team() -> Install {
    Install::plain().serving(WatchScope::of(["team".to_string()]))
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The authorization checks of every request `api` received so far.
fn calls(api: &FakeApi) -> Vec<ApiCall> {
    api.requests()
        .iter()
        .flat_map(|r| {
            let uri: http::Uri = if r.query.is_empty() {
                r.path.parse()
            } else {
                format!("{}?{}", r.path, r.query).parse()
            }
            .expect("a request URI");
            let content_type = (!r.content_type.is_empty()).then_some(r.content_type.as_str());
            ApiCall::from_http(&r.method, &uri, content_type, &r.body)
        })
        .collect()
}

fn watched(api: &FakeApi, resource: &str) -> bool {
    calls(api).iter().any(|c| {
        matches!(c, ApiCall::Resource { verb, resource: r, .. } if verb == "watch" && r == resource)
    })
}

/// A cluster with the namespaces the scenarios use, and the Prometheus Operator's
/// ServiceMonitor CRD (the Percona one is there already).
fn new_api() -> FakeApi {
    let api = FakeApi::new();
    api.install_service_monitor_crd();
    api.create_namespace("team");
    api.create_namespace(&Install::plain().namespace);
    api
}

// --- the reconciler -------------------------------------------------------------

struct Reconciler {
    api: FakeApi,
    ctx: Arc<Context<AllFound>>,
    stores: Stores,
    writers: std::sync::Mutex<Writers>,
    _leader: watch::Sender<bool>,
}

impl Reconciler {
    fn new(api: &FakeApi, spec: Value) -> Self {
        api.put(
            DS_PATH,
            json!({
                "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
                "metadata": {"name": "d", "namespace": "team", "uid": "ds-uid", "generation": 1, "resourceVersion": "1"},
                "spec": spec,
            }),
        );
        let client = api.client_in("team");
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        let (tx, rx) = watch::channel(true);
        let (stores, writers) = Stores::new();
        stores.set_percona_type(OptionalType::Served);
        stores.set_service_monitor_type(OptionalType::Served);
        let ctx = Arc::new(Context::new(
            client,
            reporter,
            AllFound,
            rx,
            stores.clone(),
            ControllerMetrics::unregistered(),
            dittofs_operator::dittofs::Client::new(
                dittofs_operator::dittofs::Resolver::everything_to(
                    std::net::Ipv4Addr::LOCALHOST.into(),
                ),
            ),
            std::time::Duration::from_secs(60),
        ));
        Reconciler {
            api: api.clone(),
            ctx,
            stores,
            writers: std::sync::Mutex::new(writers),
            _leader: tx,
        }
    }

    /// Feed the stores what the server holds (the watches' job in the operator).
    fn sync(&self) {
        fn parse<K: serde::de::DeserializeOwned>(values: Vec<Value>) -> Vec<K> {
            values
                .into_iter()
                .map(|v| serde_json::from_value(v).expect("object parses"))
                .collect()
        }
        fn refill<K>(writer: &mut Writer<K>, objects: Vec<K>)
        where
            K: kube::runtime::reflector::Lookup + Clone,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            writer.apply_watcher_event(&Event::Init);
            for o in objects {
                writer.apply_watcher_event(&Event::InitApply(o));
            }
            writer.apply_watcher_event(&Event::InitDone);
        }
        let mut w = self.writers.lock().unwrap();
        let servers: Vec<StoredServer> = parse(
            self.api
                .list("/apis/dittofs.dittofs.com/v1alpha1/namespaces/team/dittoservers"),
        );
        for s in &servers {
            self.stores
                .on_server_event(&Event::Apply(s.clone()), &Default::default());
        }
        refill(&mut w.servers, servers);
        refill(
            &mut w.config_maps,
            parse(self.api.list("/api/v1/namespaces/team/configmaps")),
        );
        refill(
            &mut w.services,
            parse(self.api.list("/api/v1/namespaces/team/services")),
        );
        refill(
            &mut w.network_policies,
            parse(
                self.api
                    .list("/apis/networking.k8s.io/v1/namespaces/team/networkpolicies"),
            ),
        );
        refill(
            &mut w.secrets,
            parse(self.api.list("/api/v1/namespaces/team/secrets")),
        );
        refill(
            &mut w.stateful_sets,
            parse(self.api.list("/apis/apps/v1/namespaces/team/statefulsets")),
        );
        refill(
            &mut w.percona,
            parse(
                self.api
                    .list("/apis/pgv2.percona.com/v2/namespaces/team/perconapgclusters"),
            ),
        );
        refill(
            &mut w.service_monitors,
            parse(
                self.api
                    .list("/apis/monitoring.coreos.com/v1/namespaces/team/servicemonitors"),
            ),
        );
    }

    async fn pass(&self) {
        self.sync();
        let stored = self
            .stores
            .servers
            .get(&ObjectRef::new("d").within("team"))
            .expect("in the store");
        // Errors are fine here: the calls made until then are what is recorded.
        let _ = reconcile(stored, self.ctx.clone()).await;
    }

    fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut object = self
            .api
            .get(path)
            .unwrap_or_else(|| panic!("{path} exists"));
        f(&mut object);
        self.api.put(path, object);
    }
}

/// Drive every reconcile path: create everything, wait for and connect the database,
/// roll on a Secret change, prune the metrics Service, its ServiceMonitor and the
/// NetworkPolicy, delete with the database.
async fn reconcile_paths(api: &FakeApi) {
    let r = Reconciler::new(
        api,
        json!({"storage": {"metadataSize": "1Gi"},
               "metrics": {"enabled": true, "serviceMonitor": {"enabled": true}},
               "s3": {"credentialsSecretRef": {"secretName": "s3"}},
               "percona": {"enabled": true, "deleteWithServer": true}}),
    );
    api.put(
        "/api/v1/namespaces/team/secrets/s3",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": "team"},
               "data": {"accessKeyId": "YQ==", "secretAccessKey": "Yg=="}}),
    );
    r.pass().await;
    r.edit(PG_PATH, |c| c["status"] = json!({"state": "ready"}));
    r.pass().await;
    assert!(api.get(STS_PATH).is_some(), "the StatefulSet was applied");
    r.edit("/api/v1/namespaces/team/secrets/s3", |s| {
        s["data"]["accessKeyId"] = json!("Yw==")
    });
    r.pass().await;
    r.edit(DS_PATH, |ds| {
        ds["spec"]["metrics"] = json!({"enabled": false});
        ds["spec"]["networkPolicy"] = json!({"enabled": false});
        ds["metadata"]["generation"] = json!(2);
    });
    r.pass().await;
    // The user takes over the JWT secret: the managed one is given up.
    api.put(
        "/api/v1/namespaces/team/secrets/my-jwt",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-jwt", "namespace": "team"},
               "data": {"k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}),
    );
    r.edit(DS_PATH, |ds| {
        ds["spec"]["identity"] = json!({"jwt": {"secretRef": {"name": "my-jwt", "key": "k"}}});
        ds["metadata"]["generation"] = json!(3);
    });
    r.pass().await;
    r.edit(DS_PATH, |ds| {
        ds["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string())
    });
    r.pass().await;
    assert!(api.get(PG_PATH).is_none(), "the database was deleted");
}

/// Run the Controller (serving `scope`) until every watch is open (and the CRD
/// was waited for).
async fn controller_watches(api: &FakeApi, scope: &WatchScope) {
    let shutdown = CancellationToken::new();
    let (_leader, rx) = watch::channel(true);
    let readiness = Readiness::new();
    let task = tokio::spawn(dittofs_operator::controller::run(
        api.client(),
        dittofs_operator::dittofs::Client::new(dittofs_operator::dittofs::Resolver::everything_to(
            std::net::Ipv4Addr::LOCALHOST.into(),
        )),
        ControllerArgs {
            concurrency: 1,
            debounce: Duration::ZERO,
            reporter: "test".into(),
            poll_interval: std::time::Duration::from_secs(60),
            scope: ScopeArgs {
                watch_namespaces: scope
                    .namespaces()
                    .map(<[String]>::to_vec)
                    .unwrap_or_default(),
            },
        },
        AllFound,
        rx,
        readiness.gate("controller"),
        ControllerMetrics::unregistered(),
        shutdown.clone(),
        CancellationToken::new(),
    ));
    eventually("every watch of the Controller", || {
        [
            "dittoservers",
            "configmaps",
            "services",
            "statefulsets",
            "secrets",
            "perconapgclusters",
        ]
        .iter()
        .all(|r| watched(api, r))
    })
    .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

#[tokio::test]
async fn the_reconciler_uses_exactly_its_rules() {
    let api = new_api();
    reconcile_paths(&api).await;
    controller_watches(&api, &WatchScope::Cluster).await;
    assert_exact(&[Component::Reconciler, Component::Events], &calls(&api));
}

#[tokio::test]
async fn serving_one_namespace_the_reconciler_uses_exactly_the_roles_there() {
    let install = serving_team();
    let api = new_api();
    reconcile_paths(&api).await;
    controller_watches(&api, &install.scope).await;
    let calls = calls(&api);
    assert_exact_for(
        &install,
        &[Component::Reconciler, Component::Events],
        &calls,
    );
    // And nothing at all outside it, but the CRD it waits for.
    for call in &calls {
        if let ApiCall::Resource {
            namespace,
            resource,
            ..
        } = call
        {
            assert!(
                namespace.as_deref() == Some("team") || resource == "customresourcedefinitions",
                "{call:?} outside the served namespace"
            );
        }
    }
}

// --- the other components -------------------------------------------------------

#[tokio::test]
async fn events_use_exactly_their_rules() {
    let api = new_api();
    let client = api.client_in("team");
    let reporter = Reporter {
        controller: "test".into(),
        instance: None,
    };
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("dittofs.dittofs.com/v1alpha1".into()),
        kind: Some("DittoServer".into()),
        name: Some("d".into()),
        namespace: Some("team".into()),
        uid: Some("ds-uid".into()),
        ..Default::default()
    };
    // The same event twice: two creates (a Recorder per event, no series patch).
    let memory = dittofs_operator::controller::memory::Memory::default();
    let events = dittofs_operator::controller::events::Events {
        client: &client,
        reporter: &reporter,
        memory: &memory,
        server: ObjectRef::new("d").within("team"),
        reference,
    };
    for _ in 0..2 {
        events
            .publish(
                dittofs_operator::controller::events::Reason::Updated,
                "updated".into(),
            )
            .await;
    }
    assert_exact(&[Component::Events], &calls(&api));
}

#[tokio::test]
async fn the_validation_lookups_use_exactly_their_rules() {
    let api = new_api();
    api.put(
        "/api/v1/namespaces/team/secrets/s3",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": "team"},
               "data": {"accessKeyId": "YQ=="}}),
    );
    let shutdown = CancellationToken::new();
    let readiness = Readiness::new();
    let lookup = KubeLookup::start(api.client(), &readiness, shutdown.clone());
    eventually("the StorageClass watch", || watched(&api, "storageclasses")).await;
    assert!(matches!(
        lookup.secret("team", "s3").await,
        Lookup::Found(_)
    ));
    assert_eq!(lookup.percona_crd().await, Lookup::Found(()));
    shutdown.cancel();
    let calls = calls(&api);
    assert_exact(&[Component::Lookups], &calls);
    // Serving one namespace: the StorageClass watch in the ClusterRole, the Secret
    // read in that namespace's Role.
    assert_exact_for(&serving_team(), &[Component::Lookups], &calls);
}

#[tokio::test]
async fn leader_election_uses_exactly_its_rules() {
    let install = Install::plain();
    let api = new_api();
    let shutdown = CancellationToken::new();
    let args = LeaderArgs {
        leader_elect: true,
        lease_name: install.lease(),
        lease_namespace: install.namespace.clone(),
        identity: Some("pod-a".into()),
        lease_duration: 15,
        lease_grace: 5,
    };
    let mut leading = leadership(api.client(), &args, shutdown.clone())
        .await
        .expect("leader election starts");
    tokio::time::timeout(Duration::from_secs(20), leading.wait_for(|l| *l))
        .await
        .expect("became leader in time")
        .expect("leader task alive");
    let patches_before_release = calls(&api).len();
    shutdown.cancel();
    // Released on shutdown: one more patch (and a read) after the cancel.
    eventually("the Lease release", || {
        calls(&api).len() > patches_before_release
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_exact(&[Component::Leader], &calls(&api));
}

#[tokio::test]
async fn the_certificate_code_uses_exactly_its_rules() {
    let install = Install::plain();
    let api = new_api();
    for (kind, name, path) in [
        (
            "ValidatingWebhookConfiguration",
            install.validating_webhook(),
            "validatingwebhookconfigurations",
        ),
        (
            "MutatingWebhookConfiguration",
            install.mutating_webhook(),
            "mutatingwebhookconfigurations",
        ),
    ] {
        api.put(
            &format!("/apis/admissionregistration.k8s.io/v1/{path}/{name}"),
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                   "metadata": {"name": name},
                   "webhooks": [{"name": "hook.dittofs.dittofs.com", "clientConfig": {},
                                 "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}),
        );
    }
    let args = |service: &str| CertsArgs {
        namespace: install.namespace.clone(),
        secret: install.webhook_tls_secret(),
        service: service.into(),
        webhook_configs: vec![install.validating_webhook(), install.mutating_webhook()],
        cluster_domain: "cluster.local".into(),
    };
    // First pass creates the Secret and writes both caBundles; the second, for another
    // Service name, re-issues the leaf (replace).
    bootstrap_once(api.client(), &args(&install.webhook_service()))
        .await
        .expect("first pass");
    bootstrap_once(api.client(), &args("renamed"))
        .await
        .expect("rotation pass");
    assert_exact(&[Component::Certs], &calls(&api));
}

// --- the check itself -------------------------------------------------------------

#[test]
fn the_check_fails_on_an_unused_verb_and_on_an_ungranted_call() {
    let call = |verb: &str, resource: &str, ns: &str, name: &str| ApiCall::Resource {
        verb: verb.into(),
        group: "events.k8s.io".into(),
        resource: resource.into(),
        namespace: Some(ns.into()),
        name: Some(name.into()),
    };
    let create = call("create", "events", "team", "e");
    assert!(mismatches(&[Component::Events], std::slice::from_ref(&create)).is_empty());
    // `create` granted but not used.
    let problems = mismatches(&[Component::Events], &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p.starts_with("granted but never used: create"))
    );
    // A call no rule grants.
    let problems = mismatches(
        &[Component::Events],
        &[create, call("patch", "events", "team", "e")],
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("used but not granted")),
        "{problems:?}"
    );
}

#[test]
fn served_namespace_roles_grant_nothing_elsewhere() {
    let install = serving_team();
    let get_secret = |ns: &str| ApiCall::Resource {
        verb: "get".into(),
        group: String::new(),
        resource: "secrets".into(),
        namespace: Some(ns.into()),
        name: Some("s3".into()),
    };
    assert!(rbac_eval::allows(&install, &get_secret("team")));
    for ns in ["kube-system", "other", &install.namespace] {
        assert!(
            !rbac_eval::allows(&install, &get_secret(ns)),
            "a Secret of {ns} is readable"
        );
    }
    // Every namespace served: readable everywhere (what --watch-namespaces removes).
    assert!(rbac_eval::allows(
        &Install::plain(),
        &get_secret("kube-system")
    ));
}

#[test]
fn role_rules_only_grant_calls_in_the_operator_namespace() {
    let install = Install::plain();
    let lease = |ns: &str| ApiCall::Resource {
        verb: "create".into(),
        group: "coordination.k8s.io".into(),
        resource: "leases".into(),
        namespace: Some(ns.into()),
        name: None,
    };
    let mut calls = vec![lease("elsewhere")];
    let problems = mismatches(&[Component::Leader], &calls);
    assert!(
        problems.iter().any(|p| p.contains("used but not granted")),
        "{problems:?}"
    );
    calls[0] = lease(&install.namespace);
    assert!(
        !mismatches(&[Component::Leader], &calls)
            .iter()
            .any(|p| p.contains("used but not granted"))
    );
}
