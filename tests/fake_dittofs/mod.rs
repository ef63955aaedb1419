//! An in-memory fake of the DittoFS **v0.29.0** control-plane REST API,
//! written from the v0.29.0 Go source (`marmos91/dittofs`; every
//! non-obvious answer names the Go file it comes from), for the integration
//! tests (`mod fake_dittofs;`) and the benchmarks (`#[path]`).
//!
//! One [`FakeDittoFs`] listens on `127.0.0.1:<port>` (plain HTTP/1.1, axum 0.8,
//! on its own thread and current-thread tokio runtime, so it works from any
//! test or bench) and serves any number of independent DittoFS servers,
//! chosen by the request's `Host` header without the port (`d-api.team.svc`,
//! as the operator would address a Service). Register each with
//! [`FakeDittoFs::add_server`]; a request for an unregistered host answers
//! `503` text/plain `no DittoFS server at <host>` (a real unknown host would
//! not resolve; one listener cannot refuse per host).
//!
//! ```ignore
//! let fake = FakeDittoFs::start();
//! let dfs = fake.add_server("d-api.team.svc", "initial-pw-123");
//! dfs.set_token_lifetimes(Duration::from_secs(2), Duration::from_secs(10));
//! // ... point the operator's client at 127.0.0.1:fake.port() with that Host ...
//! assert_eq!(dfs.db_writes(), 1); // its login
//! ```
//!
//! # First start (`cmd/dfs/commands/start.go` + `store.Ensure*`)
//!
//! `admin` (role admin, UID 0, display name `Administrator`, in group
//! `admins`) with the given password as `DITTOFS_ADMIN_INITIAL_PASSWORD`
//! (so `must_change_password:false`); groups `admins`(0), `operators`(999),
//! `users`(1000); adapters `nfs` 12049 and `smb` 1445, both enabled and
//! started; default NFS/SMB settings rows (version 1, portmapper off on
//! 10111); no stores, no shares, no identity providers. The fake reads no
//! config file: a test seeds the identity providers as a first start with a
//! `config.yaml` would, with [`ServerHandle::seed_identity`].
//!
//! # Modelled endpoints (everything else: chi's text/plain `404 page not found`)
//!
//! Routing, 404/405 and middleware order follow `pkg/controlplane/api/router.go`
//! (see `router.rs`); the middleware texts are `middleware/auth.go`'s.
//!
//! | Route | Access |
//! |---|---|
//! | `GET /` (307 → `/health`), `GET /health`, `GET /health/ready` | public |
//! | `POST /api/v1/auth/login`, `POST /api/v1/auth/refresh` | public |
//! | `GET /api/v1/auth/me`, `POST /api/v1/users/me/password` | any token, also must-change |
//! | `GET /api/v1/users/{username}` | any token (handler: admin or self) |
//! | `GET /api/v1/adapters/ports` | any token |
//! | `GET /api/v1/adapters` | admin or operator |
//! | `POST/GET /api/v1/users`, `PUT/DELETE /api/v1/users/{u}`, `POST /api/v1/users/{u}/password` | admin |
//! | `POST /api/v1/adapters`, `GET/PUT /api/v1/adapters/{type}` | admin |
//! | `GET/PUT/PATCH /api/v1/adapters/{type}/settings` (`?force=true`, `?dry_run=true`) | admin |
//! | `POST/GET /api/v1/store/metadata`, `GET/PUT/DELETE .../{name}` | admin |
//! | `POST/GET /api/v1/store/block/{kind}`, `GET/PUT/DELETE .../{name}` | admin |
//! | `POST/GET /api/v1/shares`, `GET/PUT/DELETE /api/v1/shares/{name}` | admin |
//! | `PUT/GET/DELETE /api/v1/shares/{name}/snapshot-policy`, `GET /api/v1/snapshot-policies` | admin |
//! | `GET/PUT /api/v1/identity-providers/{type}/config` (`identity.rs`) | admin |
//!
//! Every route under the protected group gets `RequirePasswordChange`: a
//! must-change token is refused (403, text naming the account) everywhere
//! except `/auth/me` and `/users/me/password`.
//!
//! # Tokens
//!
//! Opaque random strings mapped server-side to the JWT claims (user id,
//! username, role, groups, `must_change_password`, `token_type`, `exp`).
//! As with the real stateless HS256 JWTs, a token stays valid until `exp`
//! whatever happens to its user (deleted, disabled, role changed, password
//! changed); `exp` is whole seconds and a token is valid while `now < exp`
//! (golang-jwt v5), so the token dies up to 1 s *before* the `expires_at` the
//! login answer reports. Use lifetimes of 2 s or more in tests. Tokens are
//! per server (distinct JWT secrets).
//!
//! # Database writes
//!
//! [`ServerHandle::db_writes`] counts API requests that wrote to the
//! control-plane database, once per request, exactly where the Go handlers
//! write: every login (`UpdateLastLogin`), every successful create / update /
//! delete — including updates that change nothing (`PUT` of an adapter,
//! store or share, a settings `PUT`/`PATCH`, which also bumps `version`) —
//! and a few failing requests that wrote before failing (a user `PUT` with an
//! unknown group, `POST /adapters` of an unknown type). Refresh, `/auth/me`,
//! GETs, dry runs, validation failures and 409s write nothing. Test controls
//! are not counted: the counter measures what API clients caused.
//!
//! # Adapters and the NFS settings in effect
//!
//! `PUT /adapters/{type}` is applied live as `runtime/adapters/service.go`
//! `UpdateAdapter` does: the adapter keeps running when it stays enabled on
//! the same `config.bind_address` + port (0 = the type's default), otherwise
//! it is stopped and, if enabled, started again. A start registers the
//! adapter (`running:true`) even when its listener cannot bind (a port used
//! by the other adapter or the portmapper, outside 1..65535, or made busy
//! with [`ServerHandle::set_port_occupied`]); the status then stays
//! `unknown` / `NFS adapter has not started yet`, and the PUT still answers
//! 200. Status reports are cached per adapter for 5 s
//! (`runtime/checkers.go`; [`ServerHandle::set_status_cache_ttl`]) and never
//! invalidated by an update. The portmapper/UDP settings are read only when
//! the NFS adapter starts: [`ServerHandle::effective_nfs_settings`] shows
//! what the running adapter started with, while `GET .../settings` shows
//! what is stored.
//!
//! # Deliberate simplifications
//!
//! - Unmodelled real routes (groups, permissions, share status/enable/
//!   disable, snapshots, running a snapshot policy now, adapter delete/status, settings defaults/reset, store
//!   health/status, ...) answer 404 after their subrouter's middleware; whole
//!   unmodelled subrouters never answer 405.
//! - JSON keys come out sorted (Go writes struct order); numbers keep their
//!   exact value (Go round-trips store configs through float64).
//! - Store, share and block-store statuses are `healthy` whenever the runtime
//!   holds the entity (no disks, buckets or databases are probed); they are
//!   not cached. Usage counters are 0.
//! - Creating a postgres store never connects, an fs block store never
//!   creates its directory, s3 is never contacted: use
//!   [`ServerHandle::refuse_store`] to make creation fail as those would.
//!   Badger directory locks are modelled (per server, never released until
//!   [`ServerHandle::restart`]).
//! - DNS is the deterministic table of [`ServerHandle::set_resolved_ip`].
//! - `share_permissions` on users, group membership APIs, the SMB/NFS share
//!   adapter configs and the SID/LDAP paths are not kept.
//! - Request JSON: field names match case-insensitively as in Go, but when a
//!   body holds two spellings of one field the exact one wins (Go: the last).
//!   JSON syntax errors inside store configs are reported with serde's text,
//!   not Go's (`invalid character ...`).
//! - Chi routes on `RawPath` only when the path holds an escaped `/`.
//! - No TLS, no request timeouts (`middleware.Timeout(30s)`), no
//!   `X-Request-Id`.

#![allow(dead_code)]

mod adapters;
mod auth;
mod health;
mod identity;
mod model;
mod router;
mod shares;
mod snapshot_policies;
mod stores;
mod util;
mod wire;

pub use model::{
    AdapterView, BlockStoreRecord, EffectiveNfsSettings, MetadataStoreRecord, RequestRecord,
    ShareRecord, SnapshotPolicyRecord, StoreTarget, UserRecord,
};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::response::Response;
use serde_json::Value;

use model::{RawRequest, State};

/// Counters summed over every server of one [`FakeDittoFs`] (for benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub servers: usize,
    pub requests: u64,
    pub db_writes: u64,
}

/// The listener and the servers behind it. Dropping it stops the listener.
pub struct FakeDittoFs {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Inner {
    servers: RwLock<HashMap<String, ServerHandle>>,
    log_requests: Mutex<bool>,
}

/// One DittoFS server: test controls and read access. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

struct Shared {
    host: String,
    state: Mutex<State>,
    delay: Mutex<Duration>,
}

/// Accept TLS connections and serve `app` on each, until the task is dropped.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors, say: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

impl FakeDittoFs {
    /// Binds `127.0.0.1:0` and serves on a dedicated thread.
    pub fn start() -> FakeDittoFs {
        Self::serve(None)
    }

    /// [`FakeDittoFs::start`] over HTTPS only, as a server whose
    /// `controlplane.tls` is set: `config` holds its certificate and, for mutual
    /// TLS, its client verifier (`internal/tlsconfig/tlsconfig.go`, `ServerConfig`:
    /// `RequireAndVerifyClientCert` when `client_ca` is set). A handshake it refuses
    /// never reaches a handler, `/health` included.
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> FakeDittoFs {
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(config)))
    }

    fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeDittoFs {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Inner {
            servers: RwLock::new(HashMap::new()),
            log_requests: Mutex::new(true),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app_inner = inner.clone();
        std::thread::Builder::new()
            .name(format!("fake-dittofs-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake DittoFS runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let app = axum::Router::new().fallback(serve).with_state(app_inner);
                    match tls {
                        None => {
                            let _ = axum::serve(listener, app)
                                .with_graceful_shutdown(async {
                                    let _ = rx.await;
                                })
                                .await;
                        }
                        Some(acceptor) => {
                            tokio::select! {
                                _ = serve_tls(listener, acceptor, app) => {}
                                _ = rx => {}
                            }
                        }
                    }
                });
            })
            .expect("spawn fake DittoFS thread");
        FakeDittoFs {
            inner,
            addr,
            shutdown: Some(tx),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts a DittoFS server for `host` (matched case-insensitively,
    /// without port) as a first `dfs start` with
    /// `DITTOFS_ADMIN_INITIAL_PASSWORD=admin_password` (8..72 bytes, or the
    /// real server would not start: panics). Replaces any server of that host.
    pub fn add_server(&self, host: &str, admin_password: &str) -> ServerHandle {
        let host = host.to_ascii_lowercase();
        let mut state = State::first_start(&host, admin_password);
        state.log_requests = *self.inner.log_requests.lock().unwrap();
        let handle = ServerHandle {
            shared: Arc::new(Shared {
                host: host.clone(),
                state: Mutex::new(state),
                delay: Mutex::new(Duration::ZERO),
            }),
        };
        self.inner
            .servers
            .write()
            .unwrap()
            .insert(host, handle.clone());
        handle
    }

    /// The server registered for `host`.
    pub fn server(&self, host: &str) -> Option<ServerHandle> {
        self.inner
            .servers
            .read()
            .unwrap()
            .get(&host.to_ascii_lowercase())
            .cloned()
    }

    /// Removes a server: its host then answers 503.
    pub fn remove_server(&self, host: &str) -> Option<ServerHandle> {
        self.inner
            .servers
            .write()
            .unwrap()
            .remove(&host.to_ascii_lowercase())
    }

    fn all(&self) -> Vec<ServerHandle> {
        self.inner
            .servers
            .read()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    /// Requests answered and database writes, over all servers.
    pub fn totals(&self) -> Totals {
        self.all().iter().fold(Totals::default(), |t, s| Totals {
            servers: t.servers + 1,
            requests: t.requests + s.request_count(),
            db_writes: t.db_writes + s.db_writes(),
        })
    }

    /// Every server's request log (grouped by server).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.all().iter().flat_map(ServerHandle::requests).collect()
    }

    /// Clears every server's request log (counters are kept).
    pub fn clear_requests(&self) {
        self.all().iter().for_each(ServerHandle::clear_requests);
    }

    /// Keeps (default) or stops keeping request logs, for every server
    /// present and added later; counters always count. For long benches.
    pub fn set_request_log(&self, keep: bool) {
        *self.inner.log_requests.lock().unwrap() = keep;
        self.all().iter().for_each(|s| s.set_request_log(keep));
    }
}

impl Drop for FakeDittoFs {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl ServerHandle {
    fn st(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// The `Host` this server answers.
    pub fn host(&self) -> &str {
        &self.shared.host
    }

    // ---- test controls ----------------------------------------------------

    /// A human changed the admin password (`dfsctl user change-password` as
    /// admin): the new password works, `must_change_password` is false,
    /// issued tokens stay valid.
    pub fn set_admin_password(&self, password: &str) {
        let mut st = self.st();
        let i = st.user_index("admin").expect("admin exists");
        st.users[i].password = password.to_string();
        st.users[i].must_change_password = false;
    }

    /// `dfsctl adapter edit <type> --port <port> --enabled <enabled>`: the
    /// same update and live restart as `PUT /api/v1/adapters/{type}`.
    pub fn set_adapter(&self, adapter_type: &str, port: i64, enabled: bool) {
        let mut st = self.st();
        let i = st
            .adapter_index(adapter_type)
            .unwrap_or_else(|| panic!("no adapter {adapter_type}"));
        st.edit_adapter(i, Some(enabled), Some(port), None);
    }

    /// `dfsctl share delete <name>` (with or without the leading `/`).
    /// Returns whether the share existed.
    pub fn delete_share(&self, name: &str) -> bool {
        let name = shares::normalize_share_name(name);
        let mut st = self.st();
        st.loaded_shares.remove(&name);
        let before = st.shares.len();
        st.shares.retain(|s| s.name != name);
        st.snapshot_policies.retain(|p| p.share_name != name);
        st.shares.len() != before
    }

    /// `controlplane.jwt.access_token_duration` /
    /// `refresh_token_duration` for tokens issued from now on (defaults
    /// 15 min and 7 days). Tokens are whole seconds: use ≥ 2 s.
    pub fn set_token_lifetimes(&self, access: Duration, refresh: Duration) {
        let mut st = self.st();
        st.access_ttl = access;
        st.refresh_ttl = refresh;
    }

    /// The adapter status cache TTL (default 5 s, `StatusCacheTTL`); zero
    /// makes every answer probe afresh.
    pub fn set_status_cache_ttl(&self, ttl: Duration) {
        let mut st = self.st();
        st.status_ttl = ttl;
        st.status_cache.clear();
    }

    /// Answers the next `n` requests under `/api/` with `status` and a
    /// problem+json body (`detail: "injected failure (fake DittoFS)"`),
    /// before any routing or authentication; nothing is applied. Health
    /// probes are not affected. `n = 0` cancels.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.st().fail_next = (n > 0).then_some((n, status));
    }

    /// Delays every answer of this server by `delay` (zero: none). The
    /// request is applied at once and only its answer waits, so a client
    /// that times out cannot tell whether it took effect.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Makes store creation (and block-store re-validation on `PUT`) of
    /// `target` fail with 400 and `message` once the request is otherwise
    /// valid — as an unreachable postgres, a failing `MkdirAll` or a broken
    /// badger directory would. `None` clears it.
    pub fn refuse_store(&self, target: StoreTarget, message: Option<&str>) {
        let mut st = self.st();
        match message {
            Some(m) => st.refusals.insert(target, m.to_string()),
            None => st.refusals.remove(&target),
        };
    }

    /// `refuse_store(StoreTarget::Remote, Some(message))`.
    pub fn refuse_remote_store(&self, message: &str) {
        self.refuse_store(StoreTarget::Remote, Some(message));
    }

    /// What the server's DNS answers for `host` (the s3 endpoint check).
    /// Default table: `localhost` → 127.0.0.1; `*.svc`, `*.svc.cluster.local`,
    /// `*.cluster.local` → a 10.96.x.y ClusterIP; anything else → a public
    /// 52.216.x.y address. IP literals are never looked up.
    pub fn set_resolved_ip(&self, host: &str, ip: IpAddr) {
        self.st()
            .resolver
            .insert(host.to_ascii_lowercase(), Some(ip));
    }

    /// Makes `host` fail to resolve (`lookup <host>: no such host`).
    pub fn set_unresolvable(&self, host: &str) {
        self.st().resolver.insert(host.to_ascii_lowercase(), None);
    }

    /// Marks a port of the server's pod as held by another process: an
    /// adapter (or the portmapper) starting on it fails to bind.
    pub fn set_port_occupied(&self, port: i64, occupied: bool) {
        let mut st = self.st();
        if occupied {
            st.occupied_ports.insert(port);
        } else {
            st.occupied_ports.remove(&port);
        }
    }

    /// Restarts the process with the same database (a pod restart): the
    /// runtime is rebuilt, enabled adapters start with the stored settings,
    /// badger locks are released and retaken by the stored stores, issued
    /// tokens stay valid.
    pub fn restart(&self) {
        self.st().restart();
    }

    /// Restarts the process as [`ServerHandle::restart`] does, with a new JWT
    /// signing secret (`controlplane.jwt.secret`, the pod rolled after its Secret
    /// changed): every token issued before is refused from now on, as HS256 JWTs
    /// signed with the old key are (`auth/jwt_service.go`, `ValidateToken`).
    pub fn restart_with_new_jwt_secret(&self) {
        let mut st = self.st();
        st.tokens.clear();
        st.restart();
    }

    // ---- read access --------------------------------------------------------

    /// Adapter rows with their runtime state, in database order (nfs, smb).
    pub fn adapters(&self) -> Vec<AdapterView> {
        let st = self.st();
        st.adapters.iter().map(|a| st.adapter_view(a)).collect()
    }

    /// The portmapper/UDP settings the running NFS adapter started with
    /// (`None` while it is not running).
    pub fn effective_nfs_settings(&self) -> Option<EffectiveNfsSettings> {
        self.st()
            .instance("nfs")
            .and_then(|i| i.effective_nfs.clone())
    }

    /// The stored NFS settings, as `GET /api/v1/adapters/nfs/settings` shows.
    pub fn nfs_settings(&self) -> Value {
        adapters::settings_json(&self.st().nfs_settings)
    }

    /// The stored SMB settings, as `GET /api/v1/adapters/smb/settings` shows.
    pub fn smb_settings(&self) -> Value {
        adapters::settings_json(&self.st().smb_settings)
    }

    pub fn shares(&self) -> Vec<ShareRecord> {
        self.st().shares.clone()
    }

    /// Snapshot policy rows, by share name.
    pub fn snapshot_policies(&self) -> Vec<SnapshotPolicyRecord> {
        let mut policies = self.st().snapshot_policies.clone();
        policies.sort_by(|a, b| a.share_name.cmp(&b.share_name));
        policies
    }

    /// The `ldap` or `kerberos` identity-provider row, secrets in clear.
    pub fn identity_provider(&self, kind: &str) -> Option<Value> {
        let st = self.st();
        match kind {
            "ldap" => st.ldap_row.clone(),
            _ => st.kerberos_row.clone(),
        }
    }

    /// Store a row as `dfsctl` would (`PUT .../config`); not counted.
    pub fn set_identity_provider(&self, kind: &str, row: Value) {
        let mut st = self.st();
        match kind {
            "ldap" => st.ldap_row = Some(row),
            _ => st.kerberos_row = Some(row),
        }
    }

    /// A start with this `config.yaml` and these secrets in the environment: the
    /// identity-provider rows it seeds when there are none (`resolveIdentityProviders`,
    /// `cmd/dfs/commands/start.go`). Not counted.
    pub fn seed_identity(&self, config_yaml: &str, bind_password: &str, machine_secret: &str) {
        let mut st = self.st();
        let st = &mut *st;
        identity::seed(
            &mut st.ldap_row,
            &mut st.kerberos_row,
            config_yaml,
            bind_password,
            machine_secret,
        );
    }

    /// Metadata store rows (configs as stored, secrets in clear).
    pub fn metadata_stores(&self) -> Vec<MetadataStoreRecord> {
        self.st().metadata_stores.clone()
    }

    /// Block store rows of `kind` (`local` or `remote`).
    pub fn block_stores(&self, kind: &str) -> Vec<BlockStoreRecord> {
        self.st()
            .block_stores
            .iter()
            .filter(|b| b.kind == kind)
            .cloned()
            .collect()
    }

    pub fn users(&self) -> Vec<UserRecord> {
        self.st().users.clone()
    }

    /// API requests that wrote to the database (see the module docs).
    pub fn db_writes(&self) -> u64 {
        self.st().db_writes
    }

    /// Requests answered since the start (not reset by `clear_requests`).
    pub fn request_count(&self) -> u64 {
        self.st().request_count
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.st().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.st().requests.clear();
    }

    /// Keeps (default) or stops keeping this server's request log.
    pub fn set_request_log(&self, keep: bool) {
        let mut st = self.st();
        st.log_requests = keep;
        if !keep {
            st.requests.clear();
        }
    }
}

/// The `Host` without port, lowercased (`[v6]` loses its brackets).
fn host_of(req: &axum::extract::Request) -> String {
    let raw = req
        .headers()
        .get(::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw.as_str(),
        }
    };
    host.to_ascii_lowercase()
}

async fn serve(AxumState(inner): AxumState<Arc<Inner>>, req: axum::extract::Request) -> Response {
    let host = host_of(&req);
    let server = inner.servers.read().unwrap().get(&host).cloned();
    let Some(server) = server else {
        return into_response(wire::Reply::http_error(
            503,
            &format!("no DittoFS server at {host}"),
        ));
    };
    let (parts, body) = req.into_parts();
    // Read at most 8 MiB; anything larger is "too large" for decodeJSONBody.
    let body = axum::body::to_bytes(body, 8 << 20)
        .await
        .ok()
        .map(|b| b.to_vec());
    let raw = RawRequest {
        method: parts.method.as_str().to_string(),
        raw_path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        authorization: parts
            .headers
            .get(::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let reply = server.st().handle(&raw);
    let delay = *server.shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    into_response(reply)
}

fn into_response(reply: wire::Reply) -> Response {
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(axum::body::Body::from(reply.body))
        .expect("valid response")
}
