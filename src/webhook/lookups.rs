//! The production [`ClusterLookup`]: answers in bounded time, never hangs an
//! admission request.
//!
//! - StorageClasses: a metadata-only reflector fed by a watch; no API call on the hot
//!   path ("unknown" until the first list completes).
//! - Secrets: a direct GET in the object's namespace, bounded by [`SECRET_TIMEOUT`]
//!   (Secrets are not cached: caching every Secret of the cluster costs memory and
//!   RBAC the webhook should not need).
//! - The Percona CRD: discovery of `pgv2.percona.com/v2` `PerconaPGCluster`, cached;
//!   "present" is trusted for [`PERCONA_FOUND_TTL`], "absent or unknown" is re-asked
//!   at most every [`PERCONA_RETRY_INTERVAL`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, GroupVersionKind};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Error as KubeError};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::probes::Readiness;
use crate::validation::{ClusterLookup, Lookup};

/// Bound on a Secret GET.
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on a discovery request.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// A miss (absent or unknown) is re-checked at most this often.
pub const PERCONA_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// A found CRD is re-checked after this long (it may have been uninstalled).
pub const PERCONA_FOUND_TTL: Duration = Duration::from_secs(600);

const PERCONA_GROUP: &str = "pgv2.percona.com";
const PERCONA_VERSION: &str = "v2";
const PERCONA_KIND: &str = "PerconaPGCluster";

/// A discovery answer and when it was obtained.
type CachedAnswer = (Lookup<()>, Instant);

/// Cluster lookups backed by the API server.
#[derive(Clone)]
pub struct KubeLookup {
    client: Client,
    storage_classes: Store<PartialObjectMeta<StorageClass>>,
    /// Set once the first StorageClass list is in the store.
    storage_classes_synced: Arc<AtomicBool>,
    percona: Arc<Mutex<Option<CachedAnswer>>>,
}

impl KubeLookup {
    /// Start the StorageClass watch (until `shutdown`) and return the lookup. The
    /// readiness gate `storageclass-cache` opens when the first list has completed.
    pub fn start(client: Client, readiness: &Readiness, shutdown: CancellationToken) -> Self {
        let gate = readiness.gate("storageclass-cache");
        let (store, writer) = reflector::store();
        // `Api<PartialObjectMeta<_>>` watches metadata only: names are all we need.
        let api: Api<PartialObjectMeta<StorageClass>> = Api::all(client.clone());
        let stream = reflector::reflector(
            writer,
            watcher::watcher(api, watcher::Config::default()).default_backoff(),
        )
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, "StorageClass watch error; retrying with backoff");
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                () = stream => {}
                () = shutdown.cancelled() => {}
            }
        });
        let ready_store = store.clone();
        let synced = Arc::new(AtomicBool::new(false));
        let synced_flag = synced.clone();
        tokio::spawn(async move {
            if ready_store.wait_until_ready().await.is_ok() {
                synced_flag.store(true, Ordering::Release);
                gate.set_ready(true);
                tracing::info!("StorageClass cache synced");
            }
        });
        Self {
            client,
            storage_classes: store,
            storage_classes_synced: synced,
            percona: Arc::new(Mutex::new(None)),
        }
    }

    async fn discover_percona(&self) -> Lookup<()> {
        let gvk = GroupVersionKind::gvk(PERCONA_GROUP, PERCONA_VERSION, PERCONA_KIND);
        let query = kube::discovery::oneshot::pinned_kind(&self.client, &gvk);
        match tokio::time::timeout(DISCOVERY_TIMEOUT, query).await {
            Ok(Ok(_)) => Lookup::Found(()),
            Ok(Err(KubeError::Api(status))) if status.is_not_found() => Lookup::NotFound,
            Ok(Err(KubeError::Discovery(_))) => Lookup::NotFound,
            Ok(Err(e)) => Lookup::Unknown(format!(
                "API discovery of {PERCONA_GROUP}/{PERCONA_VERSION} failed: {e}"
            )),
            Err(_) => Lookup::Unknown(format!(
                "API discovery of {PERCONA_GROUP}/{PERCONA_VERSION} did not answer within {} s",
                DISCOVERY_TIMEOUT.as_secs()
            )),
        }
    }
}

impl ClusterLookup for KubeLookup {
    async fn storage_class(&self, name: &str) -> Lookup<()> {
        if !self.storage_classes_synced.load(Ordering::Acquire) {
            return Lookup::Unknown("the StorageClass cache has not synced yet".to_string());
        }
        match self.storage_classes.get(&ObjectRef::new(name)) {
            Some(_) => Lookup::Found(()),
            None => Lookup::NotFound,
        }
    }

    async fn secret_keys(&self, namespace: &str, name: &str) -> Lookup<BTreeSet<String>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(SECRET_TIMEOUT, api.get_opt(name)).await {
            Ok(Ok(Some(secret))) => {
                let mut keys: BTreeSet<String> =
                    secret.data.unwrap_or_default().into_keys().collect();
                keys.extend(secret.string_data.unwrap_or_default().into_keys());
                Lookup::Found(keys)
            }
            Ok(Ok(None)) => Lookup::NotFound,
            Ok(Err(KubeError::Api(status))) if status.is_forbidden() => Lookup::Unknown(format!(
                "the operator may not read Secrets in namespace {namespace} (forbidden)"
            )),
            Ok(Err(e)) => Lookup::Unknown(format!("reading Secret {namespace}/{name} failed: {e}")),
            Err(_) => Lookup::Unknown(format!(
                "reading Secret {namespace}/{name} did not answer within {} s",
                SECRET_TIMEOUT.as_secs()
            )),
        }
    }

    async fn percona_crd(&self) -> Lookup<()> {
        // One discovery at a time; callers that waited reuse its answer.
        let mut cached = self.percona.lock().await;
        if let Some((answer, at)) = cached.as_ref() {
            let ttl = match answer {
                Lookup::Found(()) => PERCONA_FOUND_TTL,
                _ => PERCONA_RETRY_INTERVAL,
            };
            if at.elapsed() < ttl {
                return answer.clone();
            }
        }
        let answer = self.discover_percona().await;
        *cached = Some((answer.clone(), Instant::now()));
        answer
    }
}
