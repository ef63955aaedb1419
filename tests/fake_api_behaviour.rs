//! The in-memory API server (`tests/fake_api`) behaves like kube-apiserver for
//! what the operator does: driven through `kube::Api` and kube-runtime exactly as
//! the operator drives a real one.

mod fake_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dittofs_operator::api_error::{Absent, absent};
use fake_api::{FakeApi, PERCONA_CRD, PG_PATH, Propagation};
use futures::{StreamExt, TryStreamExt};
use http::Method;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PartialObjectMeta,
    Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tower::ServiceExt;

const NS: &str = "ns";

fn setup() -> (FakeApi, Client) {
    let api = FakeApi::new();
    api.create_namespace(NS);
    let client = api.client_in(NS);
    (api, client)
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data,
    }))
    .unwrap()
}

fn cm_path(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/configmaps/{name}")
}

fn rv(obj: &impl Resource) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

fn api_status(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Poll `check` until it holds, for at most `within`.
async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ds(name: &str) -> Value {
    json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
        "metadata": {"name": name},
        "spec": {"storage": {"metadataSize": "1Gi"}},
    })
}

fn ds_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("dittofs.dittofs.com", "v1alpha1", "DittoServer");
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, "dittoservers"),
    )
}

fn percona_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("pgv2.percona.com", "v2", "PerconaPGCluster");
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, "perconapgclusters"),
    )
}

#[tokio::test]
async fn resource_version_and_generation_move_like_the_real_server() {
    let (_api, client) = setup();
    let servers = ds_api(&client);
    let pp = PostParams::default();
    let created = servers
        .create(&pp, &serde_json::from_value(ds("a")).unwrap())
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    // Metadata only: resourceVersion moves, generation does not.
    let labelled = servers
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert!(rv(&labelled) > rv(&created));
    assert_eq!(labelled.metadata.generation, Some(1));

    // Status only: same.
    let status = servers
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Pending"}})),
        )
        .await
        .unwrap();
    assert!(rv(&status) > rv(&labelled));
    assert_eq!(status.metadata.generation, Some(1));

    // Spec: generation moves.
    let edited = servers
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(edited.metadata.generation, Some(2));

    // A write that changes nothing is not a write.
    let same = servers
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&edited));

    // Types without generation (ConfigMap) get none.
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let c = cms.create(&pp, &cm("c", json!({"a": "1"}))).await.unwrap();
    assert_eq!(c.metadata.generation, None);
}

#[tokio::test]
async fn status_is_a_separate_subresource() {
    let (api, client) = setup();
    let servers = ds_api(&client);
    let mut with_status = ds("a");
    with_status["status"] = json!({"phase": "Running"});
    let created = servers
        .create(
            &PostParams::default(),
            &serde_json::from_value(with_status).unwrap(),
        )
        .await
        .unwrap();
    assert!(created.data.get("status").is_none(), "create drops status");

    servers
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Pending"}, "spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let stored = api
        .get(&format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers/a"
        ))
        .unwrap();
    assert_eq!(stored["status"]["phase"], "Pending");
    assert!(
        stored["spec"].get("replicas").is_none(),
        "a status write changes only status"
    );

    servers
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Failed"}, "spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let stored = api
        .get(&format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers/a"
        ))
        .unwrap();
    assert_eq!(
        stored["status"]["phase"], "Pending",
        "a main write keeps status"
    );
    assert_eq!(stored["spec"]["replicas"], 0);
}

#[tokio::test]
async fn a_stale_update_conflicts_and_a_missing_object_is_not_found() {
    let (_api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let pp = PostParams::default();
    let first = cms.create(&pp, &cm("c", json!({"a": "1"}))).await.unwrap();
    let mut second = first.clone();
    second.data = Some([("a".to_string(), "2".to_string())].into());
    cms.replace("c", &pp, &second).await.unwrap();

    let mut stale = first.clone();
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let status = api_status(cms.replace("c", &pp, &stale).await.unwrap_err());
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let status = api_status(
        cms.replace("missing", &pp, &cm("missing", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");

    let status = api_status(cms.get("missing").await.unwrap_err());
    assert_eq!(status.message, "configmaps \"missing\" not found");
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("missing", "configmaps")
    );
    assert_eq!(
        absent(&kube::Error::Api(
            api_status(cms.get("missing").await.unwrap_err()).boxed()
        )),
        Some(Absent::Object)
    );
}

#[tokio::test]
async fn create_refuses_duplicates_and_nameless_objects_and_honours_generate_name() {
    let (_api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let pp = PostParams::default();
    cms.create(&pp, &cm("c", json!({}))).await.unwrap();
    let status = api_status(cms.create(&pp, &cm("c", json!({}))).await.unwrap_err());
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(status.message, "configmaps \"c\" already exists");

    let mut nameless = cm("x", json!({}));
    nameless.metadata.name = None;
    let status = api_status(cms.create(&pp, &nameless).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    nameless.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&pp, &nameless).await.unwrap();
    let name = made.name_any();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
}

#[tokio::test]
async fn a_failed_json_patch_test_is_a_422_like_the_patch_handler_answers() {
    let (_api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(&PostParams::default(), &cm("c", json!({"a": "1"})))
        .await
        .unwrap();
    let patch = |ops: Value| Patch::<()>::Json(serde_json::from_value(ops).unwrap());
    let err = cms
        .patch(
            "c",
            &PatchParams::default(),
            &patch(json!([{"op": "test", "path": "/data/a", "value": "2"},
                          {"op": "replace", "path": "/data/a", "value": "3"}])),
        )
        .await
        .unwrap_err();
    let status = api_status(err);
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert_eq!(
        status.message,
        "the server rejected our request due to an error in our request"
    );
    assert_eq!(
        cms.get("c").await.unwrap().data.unwrap()["a"],
        "1",
        "nothing applied"
    );

    // evanphx/json-patch: a test for null passes on a missing path.
    cms.patch(
        "c",
        &PatchParams::default(),
        &patch(
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                      {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(cms.get("c").await.unwrap().finalizers(), ["f"]);
}

fn managers(obj: &impl Resource) -> Vec<(String, String)> {
    obj.meta()
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn server_side_apply_merges_owns_conflicts_and_forces() {
    let (_api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let apply = |m: &str, force: bool| {
        let p = PatchParams::apply(m);
        if force { p.force() } else { p }
    };
    let created = cms
        .patch(
            "c",
            &apply("one", false),
            &Patch::Apply(cm("c", json!({"a": "1", "b": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(managers(&created), [("one".into(), "Apply".into())]);
    let fields = created.metadata.managed_fields.clone().unwrap()[0]
        .fields_v1
        .clone()
        .unwrap()
        .0;
    assert_eq!(fields, json!({"f:data": {"f:a": {}, "f:b": {}}}));

    // The same apply again changes nothing: no write, same resourceVersion.
    let again = cms
        .patch(
            "c",
            &apply("one", false),
            &Patch::Apply(cm("c", json!({"a": "1", "b": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(rv(&again), rv(&created));

    // Another manager adds a field: merged, both own what they applied.
    let merged = cms
        .patch(
            "c",
            &apply("two", false),
            &Patch::Apply(cm("c", json!({"c": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.as_ref().unwrap().len(), 3);
    assert_eq!(managers(&merged).len(), 2);

    // Changing a field "one" owns: 409 naming the field and the owner.
    let status = api_status(
        cms.patch(
            "c",
            &apply("two", false),
            &Patch::Apply(cm("c", json!({"a": "2", "c": "2"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"one\": .data.a"
    );
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(cause.reason, "FieldManagerConflict");
    assert_eq!(cause.field, ".data.a");

    // Force: the value changes and ownership moves.
    let forced = cms
        .patch(
            "c",
            &apply("two", true),
            &Patch::Apply(cm("c", json!({"a": "2", "c": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "2");

    // "one" stops applying `a` (now "two"'s) and `b` (only its own): `a` stays, `b` goes.
    let after = cms
        .patch("c", &apply("one", false), &Patch::Apply(cm("c", json!({}))))
        .await
        .unwrap();
    let data = after.data.clone().unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("2"));
    assert!(!data.contains_key("b"), "{data:?}");
    assert_eq!(managers(&after), [("two".into(), "Apply".into())]);

    // An update (merge patch) takes ownership of what it changes.
    let updated = cms
        .patch(
            "c",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"c": "edited"}})),
        )
        .await
        .unwrap();
    assert!(managers(&updated).contains(&("editor".into(), "Update".into())));
    let status = api_status(
        cms.patch(
            "c",
            &apply("two", false),
            &Patch::Apply(cm("c", json!({"a": "2", "c": "2"}))),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        status.message.contains("\"editor\" using v1"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn server_side_apply_merges_finalizers_as_a_set_and_owner_references_by_uid() {
    let (_api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let with = |finalizers: Value, owners: Value| {
        let mut c = cm("c", json!({}));
        c.metadata.finalizers = serde_json::from_value(finalizers).unwrap();
        c.metadata.owner_references = serde_json::from_value(owners).unwrap();
        c
    };
    let owner =
        |uid: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": uid, "uid": uid});
    cms.patch(
        "c",
        &PatchParams::apply("one"),
        &Patch::Apply(with(json!(["a"]), json!([owner("u1")]))),
    )
    .await
    .unwrap();
    let merged = cms
        .patch(
            "c",
            &PatchParams::apply("two"),
            &Patch::Apply(with(json!(["b"]), json!([owner("u2")]))),
        )
        .await
        .unwrap();
    assert_eq!(merged.finalizers(), ["a", "b"]);
    let uids: Vec<&str> = merged
        .owner_references()
        .iter()
        .map(|r| r.uid.as_str())
        .collect();
    assert_eq!(uids, ["u1", "u2"]);
}

async fn raw(api: &FakeApi, method: Method, path: &str) -> (u16, String, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let response = api.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_webhook_lookup_reads_an_uninstalled_percona_crd_as_not_found() {
    use dittofs_operator::probes::Readiness;
    use dittofs_operator::validation::{ClusterLookup, Lookup};
    use dittofs_operator::webhook::KubeLookup;
    let (api, client) = setup();
    api.uninstall_percona_crd();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let lookup = KubeLookup::start(client, &Readiness::new(), shutdown.clone());
    // The plain-text 404 of discovery is "the type does not exist": the webhook
    // denies `percona.enabled` naming the missing operator, rather than allowing it
    // with a "could not verify" warning.
    assert_eq!(lookup.percona_crd().await, Lookup::NotFound);
    // Installed: a lookup (a miss is cached for 30 s, hence a new one) finds it.
    api.install_percona_crd();
    let lookup = KubeLookup::start(api.client(), &Readiness::new(), shutdown.clone());
    assert_eq!(lookup.percona_crd().await, Lookup::Found(()));
    shutdown.cancel();
}

#[tokio::test]
async fn an_uninstalled_group_answers_a_plain_text_404() {
    let (api, client) = setup();
    api.uninstall_percona_crd();
    for path in [
        PG_PATH,
        "/apis/pgv2.percona.com/v2",
        "/apis/pgv2.percona.com",
        "/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/nosuchthings/x",
        "/apis/dittofs.dittofs.com/v1alpha1/namespaces/ns/dittoservers/x/scale",
    ] {
        let (code, content_type, body) = raw(&api, Method::GET, path).await;
        assert_eq!(code, 404, "{path}");
        assert_eq!(content_type, "text/plain; charset=utf-8", "{path}");
        assert_eq!(body, "404 page not found\n", "{path}");
    }

    let err = percona_api(&client).get("d-postgres").await.unwrap_err();
    assert_eq!(absent(&err), Some(Absent::Type), "{err:?}");
    let gvk = GroupVersionKind::gvk("pgv2.percona.com", "v2", "PerconaPGCluster");
    let err = kube::discovery::oneshot::pinned_kind(&client, &gvk)
        .await
        .unwrap_err();
    assert_eq!(absent(&err), Some(Absent::Type), "{err:?}");

    // Installing the CRD later serves the type, and discovery shows it.
    api.install_percona_crd();
    let (resource, caps) = kube::discovery::oneshot::pinned_kind(&client, &gvk)
        .await
        .unwrap();
    assert_eq!(resource.plural, "perconapgclusters");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
    let err = percona_api(&client).get("d-postgres").await.unwrap_err();
    assert_eq!(absent(&err), Some(Absent::Object));
    let crd = api
        .get(&format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PERCONA_CRD}"
        ))
        .unwrap();
    assert!(
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
}

#[tokio::test]
async fn uninstalling_a_crd_removes_its_objects_and_ends_its_watches() {
    let (api, client) = setup();
    let pg = percona_api(&client);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "pgv2.percona.com/v2", "kind": "PerconaPGCluster",
        "metadata": {"name": "d-postgres"}, "spec": {"x": 1},
    }))
    .unwrap();
    pg.create(&PostParams::default(), &obj).await.unwrap();
    let mut events = pg
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        events.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
    assert_eq!(api.open_watches(), 1);
    api.uninstall_percona_crd();
    let end = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await;
    assert!(matches!(end, Ok(Ok(None))), "the watch ended: {end:?}");
    eventually(Duration::from_secs(15), "no watch left open", || {
        api.open_watches() == 0
    })
    .await;
    api.install_percona_crd();
    assert!(pg.get_opt("d-postgres").await.unwrap().is_none());
}

#[tokio::test]
async fn a_reflector_store_trails_by_the_watch_lag_then_catches_up() {
    let (api, client) = setup();
    api.set_watch_lag(Duration::from_secs(3));
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(cms.clone(), watcher::Config::default()))
        .applied_objects()
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(stream);
    store.wait_until_ready().await.unwrap();

    cms.create(&PostParams::default(), &cm("c", json!({"a": "1"})))
        .await
        .unwrap();
    let key = ObjectRef::new("c").within(NS);
    // GET answers the current state at once; the cache does not have it yet.
    assert!(cms.get_opt("c").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.get(&key).is_none(), "the cache trails the server");
    eventually(Duration::from_secs(15), "the cache catches up", || {
        store.get(&key).is_some()
    })
    .await;

    // Lag can change at run time: with none, the next change arrives at once.
    api.set_watch_lag(Duration::ZERO);
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "the update arrives", || {
        store
            .get(&key)
            .is_some_and(|c| c.data.as_ref().unwrap()["a"] == "2")
    })
    .await;
}

#[tokio::test]
async fn jittered_lag_keeps_events_in_order() {
    let (api, client) = setup();
    api.set_watch_lag(Duration::from_millis(20));
    api.set_watch_jitter(Duration::from_millis(200), 7);
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(&PostParams::default(), &cm("c", json!({"n": "0"})))
        .await
        .unwrap();
    let from = api.resource_version().to_string();
    let mut events = cms
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    for n in 1..=10 {
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": n.to_string()}})),
        )
        .await
        .unwrap();
    }
    for n in 1..=10 {
        match events.try_next().await.unwrap() {
            Some(WatchEvent::Modified(c)) => assert_eq!(c.data.unwrap()["n"], n.to_string()),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_resource_version_older_than_the_history_is_410_expired() {
    let (api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let old = cms
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("later", json!({})))
        .await
        .unwrap();
    api.compact_watch_history();
    let mut events = cms
        .watch(&WatchParams::default(), &rv(&old).to_string())
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }

    // A watcher recovers by listing again.
    api.set_watch_history_limit(2);
    let (store, writer) = reflector::store();
    tokio::spawn(
        reflector::reflector(writer, watcher(cms.clone(), watcher::Config::default()))
            .default_backoff()
            .for_each(|_| futures::future::ready(())),
    );
    store.wait_until_ready().await.unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}"), json!({})))
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(20), "all seven in the cache", || {
        store.state().len() == 7
    })
    .await;
}

#[tokio::test]
async fn watch_from_zero_sends_initial_events_and_bookmarks() {
    let (api, client) = setup();
    api.set_bookmark_interval(Duration::from_millis(100));
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let wp = WatchParams::streaming_lists();
    let mut events = cms.watch(&wp, "0").await.unwrap().boxed();
    assert!(matches!(
        events.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Bookmark(b)) => {
            assert_eq!(b.metadata.annotations["k8s.io/initial-events-end"], "true");
            assert_eq!(
                b.metadata.resource_version,
                api.resource_version().to_string()
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        events.try_next().await.unwrap(),
        Some(WatchEvent::Bookmark(_))
    ));
}

#[tokio::test]
async fn metadata_only_requests_answer_partial_object_metadata() {
    let (api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let mut c = cm("c", json!({"secret": "x"}));
    c.metadata.labels = Some([("l".to_string(), "v".to_string())].into());
    cms.create(&PostParams::default(), &c).await.unwrap();

    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), NS);
    let meta = metas.get("c").await.unwrap();
    assert_eq!(meta.labels()["l"], "v");
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let list = metas.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let (store, writer) = reflector::store();
    tokio::spawn(
        reflector::reflector(writer, watcher(metas, watcher::Config::default()))
            .for_each(|_| futures::future::ready(())),
    );
    store.wait_until_ready().await.unwrap();
    assert_eq!(store.state().len(), 1);
    cms.create(&PostParams::default(), &cm("d", json!({})))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "metadata watch sees the new object",
        || store.state().len() == 2,
    )
    .await;
    let accepts: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch" || r.verb == "list")
        .map(|r| r.accept)
        .collect();
    assert!(
        accepts
            .iter()
            .any(|a| a.contains("as=PartialObjectMetadataList")),
        "{accepts:?}"
    );
    assert!(
        accepts
            .iter()
            .any(|a| a.contains("as=PartialObjectMetadata;")),
        "{accepts:?}"
    );
}

#[tokio::test]
async fn label_selected_lists_and_watches() {
    let (_api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    for (name, tier) in [("a", "db"), ("b", "web"), ("c", "cache")] {
        let mut c = cm(name, json!({}));
        c.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        cms.create(&PostParams::default(), &c).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.iter().map(ResourceExt::name_any).collect()
    };
    let select = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(cms.list(&select("tier=db")).await.unwrap()), ["a"]);
    assert_eq!(
        names(cms.list(&select("tier!=db")).await.unwrap()),
        ["b", "c"]
    );
    assert_eq!(
        names(cms.list(&select("tier in (db,web)")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(cms.list(&select("tier notin (db,web)")).await.unwrap()),
        ["c"]
    );
    assert_eq!(names(cms.list(&select("tier")).await.unwrap()).len(), 3);
    assert!(names(cms.list(&select("!tier")).await.unwrap()).is_empty());
    assert_eq!(
        names(cms.list(&select("tier=db,tier!=web")).await.unwrap()),
        ["a"]
    );
    let by_name = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(cms.list(&by_name).await.unwrap()), ["b"]);
    let status = api_status(
        cms.list(&ListParams::default().fields("spec.nodeName=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 400);

    // Paging.
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(first.clone()), ["a", "b"]);
    let token = first.metadata.continue_.clone().unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(second.clone()), ["c"]);
    assert!(second.metadata.continue_.is_none());

    // A watch with a selector sees objects enter and leave the selection.
    let from = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = cms
        .watch(&WatchParams::default().labels("tier=db"), &from)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), "b"),
        other => panic!("{other:?}"),
    }
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Deleted(c)) => assert_eq!(c.name_any(), "a"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_a_deletion_and_no_new_one_may_join() {
    let (api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let mut c = cm("c", json!({}));
    c.metadata.finalizers = Some(vec!["a/b".into()]);
    cms.create(&PostParams::default(), &c).await.unwrap();
    let answer = cms.delete("c", &DeleteParams::default()).await.unwrap();
    let pending = answer.left().expect("the object, still there");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get_opt("c").await.unwrap().is_some());

    let status = api_status(
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["a/b", "c/d"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        status.message
    );

    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        cms.get_opt("c").await.unwrap().is_none(),
        "gone with its last finalizer"
    );
    assert!(api.get(&cm_path("c")).is_none());

    // Deletion bumps the generation of types that keep one.
    let servers = ds_api(&client);
    let mut d = ds("d");
    d["metadata"]["finalizers"] = json!(["x/y"]);
    servers
        .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let deleting = servers
        .delete("d", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(deleting.metadata.generation, Some(2));

    // An immediate deletion answers a Status; preconditions are checked.
    cms.create(&PostParams::default(), &cm("e", json!({})))
        .await
        .unwrap();
    let wrong = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-it".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let status = api_status(cms.delete("e", &wrong).await.unwrap_err());
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains("Precondition failed: UID in precondition: not-it")
    );
    assert!(
        cms.delete("e", &DeleteParams::default())
            .await
            .unwrap()
            .is_right()
    );
}

fn owned_by(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    let mut c = cm(name, json!({}));
    c.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: owner.name_any(),
            uid: owner.uid().unwrap(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        },
    ]);
    c
}

#[tokio::test]
async fn the_garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let (api, client) = setup();
    api.enable_garbage_collector();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let pp = PostParams::default();

    // Background.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await.unwrap();
    cms.create(&pp, &owned_by("child", &owner, false))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "the dependent is collected",
        || api.get(&cm_path("child")).is_none(),
    )
    .await;

    // Orphan: the dependent stays, without the owner reference.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await.unwrap();
    cms.create(&pp, &owned_by("child", &owner, false))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually(Duration::from_secs(15), "the owner goes", || {
        api.get(&cm_path("owner")).is_none()
    })
    .await;
    let child = api.get(&cm_path("child")).unwrap();
    assert!(
        child["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{child}"
    );
    api.remove(&cm_path("child"));

    // Foreground: the owner waits for its blocking dependent, held by a finalizer.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await.unwrap();
    let mut child = owned_by("child", &owner, true);
    child.metadata.finalizers = Some(vec!["hold/on".into()]);
    cms.create(&pp, &child).await.unwrap();
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the dependent is being deleted",
        || {
            api.get(&cm_path("child"))
                .is_some_and(|c| !c["metadata"]["deletionTimestamp"].is_null())
        },
    )
    .await;
    assert!(
        api.get(&cm_path("owner")).is_some(),
        "waits for the blocking dependent"
    );
    cms.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "then the owner goes", || {
        api.get(&cm_path("owner")).is_none()
    })
    .await;
}

#[tokio::test]
async fn collect_garbage_runs_on_demand_and_namespaces_empty_before_they_go() {
    let (api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &owned_by("child", &owner, false))
        .await
        .unwrap();
    assert!(api.delete(&cm_path("owner"), Some(Propagation::Background)));
    assert!(api.get(&cm_path("child")).is_some(), "no collector ran yet");
    api.collect_garbage();
    assert!(api.get(&cm_path("child")).is_none());

    let namespaces: Api<Namespace> = Api::all(client.clone());
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    namespaces
        .delete(NS, &DeleteParams::default())
        .await
        .unwrap();
    let status = api_status(
        cms.create(&PostParams::default(), &cm("y", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    api.collect_garbage();
    assert!(api.get(&cm_path("x")).is_none());
    assert!(namespaces.get_opt(NS).await.unwrap().is_none());
    let status = api_status(
        cms.create(&PostParams::default(), &cm("y", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.message, "namespaces \"ns\" not found");
}

#[tokio::test]
async fn the_statefulset_helper_makes_pods_and_reports_ready() {
    let (api, client) = setup();
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "d"},
        "spec": {"replicas": 1, "serviceName": "d",
                 "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    }))
    .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    sets.create(&PostParams::default(), &sts).await.unwrap();
    let path = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/d");
    assert!(api.make_statefulset_ready(&path));
    let live = sets.get("d").await.unwrap();
    let status = live.status.unwrap();
    assert_eq!(status.ready_replicas, Some(1));
    assert_eq!(status.available_replicas, Some(1));
    assert_eq!(status.observed_generation, live.metadata.generation);
    assert_eq!(status.current_revision, status.update_revision);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = pods.get("d-0").await.unwrap();
    assert_eq!(pod.owner_references()[0].uid, live.metadata.uid.unwrap());
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    assert!(
        api.get(&format!(
            "/api/v1/namespaces/{NS}/persistentvolumeclaims/data-d-0"
        ))
        .is_some()
    );

    // In the background: a template change rolls the pod and is reported ready.
    api.enable_statefulset_controller(Duration::from_millis(50));
    let before = pod.metadata.uid.clone();
    sets.patch(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "observed generation 2", || {
        api.get(&path).unwrap()["status"]["observedGeneration"] == 2
    })
    .await;
    assert_ne!(
        pods.get("d-0").await.unwrap().metadata.uid,
        before,
        "pod recreated"
    );
}

#[tokio::test]
async fn faults_and_the_request_log() {
    let (api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    api.fail_path(&cm_path("c"));
    assert_eq!(api_status(cms.get("c").await.unwrap_err()).code, 500);
    api.heal_path(&cm_path("c"));
    cms.get("c").await.unwrap();

    api.inject_conflicts(&cm_path("c"), 2);
    let merge = Patch::Merge(json!({"data": {"a": "1"}}));
    for _ in 0..2 {
        let status = api_status(
            cms.patch("c", &PatchParams::default(), &merge)
                .await
                .unwrap_err(),
        );
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    }
    cms.patch("c", &PatchParams::default(), &merge)
        .await
        .unwrap();

    api.inject_status(&cm_path("c"), 503, 1);
    assert_eq!(api_status(cms.get("c").await.unwrap_err()).code, 503);

    let log = api.requests();
    let last = log.last().unwrap();
    assert_eq!(
        (last.method.clone(), last.verb, last.status),
        (Method::GET, "get", 503)
    );
    assert_eq!(api.writes_to(&cm_path("c")), 3);
    assert_eq!(api.count("patch"), 3);
    assert_eq!(api.count("create"), 1);
    assert!(api.wrote(Method::POST, &format!("/api/v1/namespaces/{NS}/configmaps")));
    let patch = log.iter().find(|r| r.verb == "patch").unwrap();
    assert_eq!(patch.content_type, "application/merge-patch+json");
    api.clear_log();
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn requests_are_answered_concurrently() {
    let (api, client) = setup();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    // An open watch never answers in full; a server that handled one request at a
    // time would never answer the GET behind it.
    let _watch = cms.watch(&WatchParams::default(), "0").await.unwrap();
    api.set_request_delay(Duration::from_millis(50));
    let gets = (0..4).map(|_| cms.get_opt("missing"));
    let answers = tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(gets))
        .await
        .expect("answered while a watch is open");
    assert!(answers.iter().all(|a| matches!(a, Ok(None))));
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

struct Ctx {
    client: Client,
    recorder: Recorder,
    reconciled: AtomicUsize,
}

async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), NS);
    let mut applied = cm(&obj.name_any(), json!({}));
    applied.metadata.labels = Some([("reconciled".to_string(), "yes".to_string())].into());
    cms.patch(
        &obj.name_any(),
        &PatchParams::apply("test-controller").force(),
        &Patch::Apply(applied),
    )
    .await?;
    ctx.recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Reconciled".into(),
                note: Some("done".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &obj.object_ref(&()),
        )
        .await?;
    ctx.reconciled.fetch_add(1, Ordering::SeqCst);
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn a_controller_and_recorder_run_against_it() {
    let (api, client) = setup();
    api.set_watch_lag(Duration::from_millis(100));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "test-controller".into(),
                instance: None,
            },
        ),
        reconciled: AtomicUsize::new(0),
    });
    let controller = Controller::new(cms.clone(), watcher::Config::default().page_size(7))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(controller);
    eventually(Duration::from_secs(20), "every object reconciled", || {
        api.list(&format!("/api/v1/namespaces/{NS}/configmaps"))
            .iter()
            .filter(|c| c["metadata"]["labels"]["reconciled"] == "yes")
            .count()
            == 20
    })
    .await;
    eventually(Duration::from_secs(15), "an event per object", || {
        api.event_reasons()
            .iter()
            .filter(|r| *r == "Reconciled")
            .count()
            >= 20
    })
    .await;
    assert!(ctx.reconciled.load(Ordering::SeqCst) >= 20);
    assert!(
        api.settle(Duration::from_millis(300), Duration::from_secs(20))
            .await,
        "the controller settles: nothing left to write"
    );
    // The initial list was paged (7 + 7 + 6).
    assert!(api.count("list") >= 3, "{}", api.count("list"));
    // A new object is picked up through the watch.
    cms.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the late object reconciled",
        || {
            api.get(&cm_path("late"))
                .is_some_and(|c| c["metadata"]["labels"]["reconciled"] == "yes")
        },
    )
    .await;
}

#[tokio::test]
async fn custom_resources_are_pruned_and_defaulted_by_their_schema() {
    let (api, client) = setup();
    let servers = ds_api(&client);
    let mut d = ds("d");
    d["spec"]["notAField"] = json!(true);
    d["metadata"]["notMetadata"] = json!(1);
    servers
        .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let stored = api
        .get(&format!(
            "/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers/d"
        ))
        .unwrap();
    assert!(stored["spec"].get("notAField").is_none(), "{stored}");
    assert!(stored["metadata"].get("notMetadata").is_none());
    assert_eq!(stored["spec"]["storage"]["metadataSize"], "1Gi");

    // An update of a custom resource needs a resourceVersion.
    let mut obj: DynamicObject = serde_json::from_value(stored).unwrap();
    obj.metadata.resource_version = None;
    let status = api_status(
        servers
            .replace("d", &PostParams::default(), &obj)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn a_custom_resource_value_of_the_wrong_type_is_refused_unless_unchanged() {
    let (api, client) = setup();
    let servers = ds_api(&client);
    let mut bad = ds("bad");
    bad["spec"]["smb"] = json!({"enabled": "maybe"});
    let bad: DynamicObject = serde_json::from_value(bad).unwrap();
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    for pp in [&dry_run, &PostParams::default()] {
        let status = api_status(servers.create(pp, &bad).await.unwrap_err());
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            status.message,
            "DittoServer.dittofs.dittofs.com \"bad\" is invalid: spec.smb.enabled: Invalid \
             value: \"string\": spec.smb.enabled in body must be of type boolean: \"string\""
        );
    }
    let path = format!("/apis/dittofs.dittofs.com/v1alpha1/namespaces/{NS}/dittoservers/bad");
    assert!(api.get(&path).is_none(), "nothing stored");

    // Stored under a looser schema: writes that leave the value alone pass
    // (ratcheting), a write that changes it to another wrong value does not.
    api.put(&path, serde_json::to_value(&bad).unwrap());
    servers
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 0}})),
        )
        .await
        .expect("the unchanged wrong value is not judged again");
    servers
        .patch_status(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .expect("status writes too");
    let status = api_status(
        servers
            .patch(
                "bad",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"smb": {"enabled": "no"}}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422, "{}", status.message);
}

#[tokio::test]
async fn a_secrets_string_data_is_stored_as_data() {
    let (_api, client) = setup();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, NS);
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"kept": "a2VwdA==", "over": "b2xk"},
        "stringData": {"over": "new", "plain": "text"},
    }))
    .unwrap();
    let stored = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert!(stored.string_data.is_none());
    let data = stored.data.expect("data");
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert_eq!(
        (text("kept"), text("over"), text("plain")),
        ("kept".into(), "new".into(), "text".into())
    );
    let patched = secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"kept": "changed"}})),
        )
        .await
        .unwrap();
    assert!(patched.string_data.is_none());
    assert_eq!(patched.data.expect("data")["kept"].0, b"changed");
}
