//! One DittoFS server: the control-plane database rows (users, groups,
//! adapters and their settings, stores, shares), the runtime around them
//! (running adapters, loaded metadata stores and shares, open badger
//! directories), the token table, and the observation counters.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::router::{self, Ep, Mw, Target};
use super::util::{Time, new_token, new_uuid, percent_decode};
use super::wire::{Reply, status_text};
use super::{adapters, auth, health, identity, shares, snapshot_policies, stores};

/// `jwt.access_token_duration` default (15m) and
/// `jwt.refresh_token_duration` default (168h), `auth/jwt_service.go`.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// `runtime/checkers.go` `StatusCacheTTL`.
pub const DEFAULT_STATUS_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Access,
    Refresh,
}

/// What a signed JWT carries (`auth/claims.go`); the fake keeps it
/// server-side behind an opaque token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub groups: Vec<String>,
    pub token_type: TokenType,
    pub must_change_password: bool,
    /// `exp` in unix seconds (jwt `NumericDate` truncates to seconds).
    pub exp: i64,
}

/// A `users` row (`models/user.go`). The password is kept in clear: the fake
/// has no bcrypt.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub password: String,
    pub enabled: bool,
    pub must_change_password: bool,
    pub role: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub display_name: String,
    pub email: String,
    pub created_at: SystemTime,
    pub last_login: Option<SystemTime>,
    /// Group memberships (`user_groups`), by name.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub name: String,
    pub gid: Option<u32>,
}

/// An `adapters` row (`models/adapter.go`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterRecord {
    pub id: String,
    pub adapter_type: String,
    pub enabled: bool,
    pub port: i64,
    /// The JSON blob as stored (`""` when never set).
    pub config: String,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// The NFS settings that only take effect when the NFS adapter (re)starts
/// (`pkg/adapter/nfs/settings.go` `applyNFSSettings`: the portmapper and UDP
/// sidecars are started by `Serve`), as the running adapter started with
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveNfsSettings {
    /// The port the running NFS adapter was started on (0 resolved to 12049).
    pub adapter_port: i64,
    /// Whether the NFS listener bound (a bind failure leaves `running:true`).
    pub listening: bool,
    pub portmapper_enabled: bool,
    pub portmapper_port: i64,
    pub portmapper_register_with_system: bool,
    pub udp_enabled: bool,
    /// Whether the embedded portmapper bound its port (a failure only logs
    /// a WARN in the real server).
    pub portmapper_listening: bool,
}

/// A running adapter (an entry in `runtime/adapters/service.go`'s map).
#[derive(Debug, Clone)]
pub struct Instance {
    /// `adapter.Port()`: the configured port, 0 resolved to the default.
    pub port: i64,
    /// `config.bind_address` when it started.
    pub bind_address: String,
    /// Whether `Serve` bound its listener.
    pub listening: bool,
    pub effective_nfs: Option<EffectiveNfsSettings>,
}

/// An adapter as the tests see it: the row plus the runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterView {
    pub id: String,
    pub adapter_type: String,
    pub enabled: bool,
    pub port: i64,
    /// The stored config, parsed (`{}` when empty).
    pub config: Value,
    /// An entry exists in the adapter service (`IsAdapterRunning`).
    pub running: bool,
    /// The listener is bound (`status.status == "healthy"`).
    pub listening: bool,
    /// How many times the adapter was started (first start included).
    pub starts: u64,
}

/// Settings rows (`nfs_adapter_settings` / `smb_adapter_settings`): the
/// API-visible fields by JSON name, plus the monotonic `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsRecord {
    pub values: Map<String, Value>,
    pub version: i64,
}

/// A `metadata_stores` row.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataStoreRecord {
    pub id: String,
    pub name: String,
    pub store_type: String,
    /// The JSON blob exactly as written (secrets in clear).
    pub config: String,
    pub created_at: SystemTime,
}

/// A `block_store_configs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockStoreRecord {
    pub id: String,
    pub name: String,
    /// `local` or `remote`.
    pub kind: String,
    pub store_type: String,
    pub config: String,
    pub created_at: SystemTime,
}

/// A `shares` row (the fields the API reads or writes).
#[derive(Debug, Clone, PartialEq)]
pub struct ShareRecord {
    pub id: String,
    /// Normalised, with one leading `/`.
    pub name: String,
    pub metadata_store_id: String,
    pub local_block_store_id: String,
    pub remote_block_store_id: Option<String>,
    pub read_only: bool,
    pub enabled: bool,
    pub encrypt_data: bool,
    pub default_permission: String,
    pub owner_uid: Option<u32>,
    pub owner_gid: Option<u32>,
    pub blocked_operations: Vec<String>,
    pub retention_policy: String,
    pub retention_ttl_secs: i64,
    pub local_store_size: i64,
    pub read_buffer_size: i64,
    pub quota_bytes: i64,
    pub acl_flag_inherited_canonicalization: bool,
    pub access_based_enumeration: bool,
    pub change_notify_disabled: bool,
    pub streams_disabled: bool,
    pub continuous_availability: bool,
    pub allow_mfsymlink: bool,
    pub trash_enabled: bool,
    pub trash_retention_days: i64,
    pub trash_restrict_to_admin: bool,
    pub trash_max_bytes: i64,
    pub trash_exclude_patterns: Vec<String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// A `snapshot_policies` row (`models/snapshot_policy.go`): one per share
/// (unique `share_name`), durations in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotPolicyRecord {
    pub share_name: String,
    pub enabled: bool,
    pub interval_ns: i64,
    pub keep_last: i64,
    pub ttl_ns: i64,
    pub name_prefix: String,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The `Host` the request was routed by (without port).
    pub host: String,
    pub method: String,
    /// The request path as sent (no query).
    pub path: String,
    pub status: u16,
    /// The user of a valid access token in the `Authorization` header,
    /// whatever the route (so `None` for login, refresh and health).
    pub user: Option<String>,
}

/// Which kind of store creation a [`super::ServerHandle::refuse_store`]
/// failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreTarget {
    /// `POST /api/v1/store/metadata`: 400 `Failed to create metadata store: <msg>`
    /// (as when postgres is unreachable or badger cannot open).
    Metadata,
    /// `POST|PUT /api/v1/store/block/local`: 400 `Invalid block store config: <msg>`
    /// (as when `MkdirAll` fails).
    Local,
    /// `POST|PUT /api/v1/store/block/remote`: 400 `Invalid block store config: <msg>`.
    Remote,
}

/// The parts of an HTTP request the handlers read.
#[derive(Debug)]
pub struct RawRequest {
    pub method: String,
    /// As sent (percent-encoded), without the query.
    pub raw_path: String,
    pub query: Option<String>,
    /// The `Authorization` header (first value), if any.
    pub authorization: Option<String>,
    /// The body, or `None` when it was too large to read.
    pub body: Option<Vec<u8>>,
}

/// Everything one DittoFS server holds.
pub struct State {
    pub host: String,
    // configuration and injected faults
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub status_ttl: Duration,
    pub fail_next: Option<(u32, u16)>,
    pub refusals: HashMap<StoreTarget, String>,
    pub resolver: HashMap<String, Option<IpAddr>>,
    pub occupied_ports: HashSet<i64>,
    // database
    pub users: Vec<UserRecord>,
    pub groups: Vec<GroupRecord>,
    pub adapters: Vec<AdapterRecord>,
    pub nfs_settings: SettingsRecord,
    pub smb_settings: SettingsRecord,
    pub metadata_stores: Vec<MetadataStoreRecord>,
    pub block_stores: Vec<BlockStoreRecord>,
    pub shares: Vec<ShareRecord>,
    pub snapshot_policies: Vec<SnapshotPolicyRecord>,
    /// Identity-provider rows, secrets in clear (`identity.rs`).
    pub ldap_row: Option<Value>,
    pub kerberos_row: Option<Value>,
    // runtime
    pub started_at: SystemTime,
    pub started_instant: Instant,
    pub running: Vec<(String, Instance)>,
    pub adapter_starts: HashMap<String, u64>,
    pub nfs_state_manager: bool,
    pub status_cache: HashMap<String, (Instant, Value)>,
    pub loaded_metadata_stores: HashSet<String>,
    pub open_badger_dirs: HashSet<String>,
    pub loaded_shares: HashSet<String>,
    pub tokens: HashMap<String, Claims>,
    // observation
    pub db_writes: u64,
    pub request_count: u64,
    pub log_requests: bool,
    pub requests: Vec<RequestRecord>,
}

/// Per-request handler context.
pub struct Ctx<'a> {
    pub st: &'a mut State,
    pub method: &'a str,
    /// `r.URL.Path` (decoded).
    pub path: String,
    pub query: Option<&'a str>,
    pub params: Vec<String>,
    pub claims: Option<Claims>,
    pub authorization: Option<&'a str>,
    pub body: &'a Option<Vec<u8>>,
    /// Set by a handler that wrote to the database (counted once).
    pub wrote: bool,
}

impl Ctx<'_> {
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    /// Marks this request as having written to the control-plane database.
    pub fn write(&mut self) {
        self.wrote = true;
    }
}

impl State {
    /// First start of `dfs start` (`cmd/dfs/commands/start.go` `runStart`):
    /// `EnsureAdminUser` with `DITTOFS_ADMIN_INITIAL_PASSWORD` set (so
    /// `must_change_password=false`), `EnsureDefaultGroups`,
    /// `EnsureDefaultAdapters` (+ default settings rows), no stores, no
    /// shares, then `rt.Serve` starts the enabled adapters.
    pub fn first_start(host: &str, admin_password: &str) -> State {
        // models/credential.go ValidatePassword: EnsureAdminUser fails and
        // `dfs start` exits with "failed to ensure admin user".
        assert!(
            (8..=72).contains(&admin_password.len()),
            "DITTOFS_ADMIN_INITIAL_PASSWORD must be 8..72 bytes, or dfs start exits"
        );
        let now = SystemTime::now();
        let mut st = State {
            host: host.to_string(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            status_ttl: DEFAULT_STATUS_TTL,
            fail_next: None,
            refusals: HashMap::new(),
            resolver: HashMap::new(),
            occupied_ports: HashSet::new(),
            users: Vec::new(),
            groups: Vec::new(),
            adapters: Vec::new(),
            nfs_settings: adapters::default_nfs_settings(),
            smb_settings: adapters::default_smb_settings(),
            metadata_stores: Vec::new(),
            block_stores: Vec::new(),
            shares: Vec::new(),
            snapshot_policies: Vec::new(),
            ldap_row: None,
            kerberos_row: None,
            started_at: now,
            started_instant: Instant::now(),
            running: Vec::new(),
            adapter_starts: HashMap::new(),
            nfs_state_manager: false,
            status_cache: HashMap::new(),
            loaded_metadata_stores: HashSet::new(),
            open_badger_dirs: HashSet::new(),
            loaded_shares: HashSet::new(),
            tokens: HashMap::new(),
            db_writes: 0,
            request_count: 0,
            log_requests: true,
            requests: Vec::new(),
        };
        // models/admin.go DefaultAdminUser: UID 0, "Administrator".
        st.users.push(UserRecord {
            id: new_uuid(),
            username: "admin".to_string(),
            password: admin_password.to_string(),
            enabled: true,
            must_change_password: false,
            role: "admin".to_string(),
            uid: Some(0),
            gid: None,
            display_name: "Administrator".to_string(),
            email: String::new(),
            created_at: now,
            last_login: None,
            groups: Vec::new(),
        });
        // store/groups.go EnsureDefaultGroups, then admin joins "admins".
        for (name, gid) in [("admins", 0), ("operators", 999), ("users", 1000)] {
            st.groups.push(GroupRecord {
                name: name.to_string(),
                gid: Some(gid),
            });
        }
        st.users[0].groups.push("admins".to_string());
        // store/adapters.go EnsureDefaultAdapters: nfs 12049 and smb 1445.
        for (kind, port) in [("nfs", 12049), ("smb", 1445)] {
            st.adapters.push(AdapterRecord {
                id: new_uuid(),
                adapter_type: kind.to_string(),
                enabled: true,
                port,
                config: String::new(),
                created_at: now,
                updated_at: now,
            });
        }
        st.serve();
        st
    }

    /// `rt.Serve`: `LoadAdaptersFromStore` starts every enabled adapter.
    fn serve(&mut self) {
        let enabled: Vec<String> = self
            .adapters
            .iter()
            .filter(|a| a.enabled)
            .map(|a| a.adapter_type.clone())
            .collect();
        for kind in enabled {
            self.start_adapter(&kind);
        }
    }

    /// A process restart (a pod restart with the same database): the runtime
    /// is rebuilt from the rows; tokens stay valid (same JWT secret).
    pub fn restart(&mut self) {
        self.running.clear();
        self.status_cache.clear();
        self.open_badger_dirs.clear();
        self.loaded_metadata_stores.clear();
        self.loaded_shares.clear();
        self.nfs_state_manager = false;
        self.started_at = SystemTime::now();
        self.started_instant = Instant::now();
        // InitializeFromStore: load metadata stores (badger opens its dir).
        for m in &self.metadata_stores {
            if let Some(dir) = stores::badger_dir(&m.store_type, &m.config) {
                self.open_badger_dirs.insert(dir);
            }
            self.loaded_metadata_stores.insert(m.name.clone());
        }
        // LoadSharesFromStore.
        for s in &self.shares {
            self.loaded_shares.insert(s.name.clone());
        }
        self.serve();
    }

    // ---- users and tokens -------------------------------------------------

    /// `getByNameOrID` on users: username first, then id.
    pub fn user_index(&self, token: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.username == token)
            .or_else(|| self.users.iter().position(|u| u.id == token))
    }

    /// `JWTService.GenerateTokenPair`: returns (access, refresh, access expiry).
    pub fn issue_tokens(&mut self, user: &UserRecord) -> (String, String, Time) {
        let now = SystemTime::now();
        let access_exp = now + self.access_ttl;
        let refresh_exp = now + self.refresh_ttl;
        if self.tokens.len() > 50_000 {
            let now_s = super::util::unix_secs(now);
            self.tokens.retain(|_, c| c.exp > now_s);
        }
        let mut make = |token_type, exp: Time| {
            let token = new_token();
            self.tokens.insert(
                token.clone(),
                Claims {
                    user_id: user.id.clone(),
                    username: user.username.clone(),
                    role: user.role.clone(),
                    groups: user.groups.clone(),
                    token_type,
                    must_change_password: user.must_change_password,
                    exp: super::util::unix_secs(exp),
                },
            );
            token
        };
        let access = make(TokenType::Access, access_exp);
        let refresh = make(TokenType::Refresh, refresh_exp);
        (access, refresh, access_exp)
    }

    /// `JWTService.ValidateToken`: `Err(true)` when expired, `Err(false)` when
    /// unknown. A token is valid while `now < exp` (golang-jwt v5).
    pub fn validate_token(&self, token: &str) -> Result<Claims, bool> {
        let claims = self.tokens.get(token).ok_or(false)?;
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if now.as_secs_f64() >= claims.exp as f64 {
            return Err(true);
        }
        Ok(claims.clone())
    }

    pub fn validate_access(&self, token: &str) -> Option<Claims> {
        self.validate_token(token)
            .ok()
            .filter(|c| c.token_type == TokenType::Access)
    }

    // ---- adapters ---------------------------------------------------------

    pub fn adapter_index(&self, kind: &str) -> Option<usize> {
        self.adapters.iter().position(|a| a.adapter_type == kind)
    }

    pub fn instance(&self, kind: &str) -> Option<&Instance> {
        self.running.iter().find(|(k, _)| k == kind).map(|(_, i)| i)
    }

    fn ports_in_use(&self, except: &str) -> HashSet<i64> {
        let mut used = self.occupied_ports.clone();
        for (kind, inst) in &self.running {
            if kind == except {
                continue;
            }
            if inst.listening {
                used.insert(inst.port);
            }
            if let Some(eff) = &inst.effective_nfs
                && eff.portmapper_listening
            {
                used.insert(eff.portmapper_port);
            }
        }
        used
    }

    /// `adapters.Service.startAdapter` + `registerAndRunAdapterLocked`: the
    /// entry is registered at once (so `running:true`); `Serve` then binds
    /// asynchronously, and a bind failure is only logged — the entry stays.
    /// For NFS, `SetRuntime` first re-reads the settings
    /// (`RefreshNFSSettings`), so the portmapper/UDP settings in effect are
    /// the stored ones at this moment.
    pub fn start_adapter(&mut self, kind: &str) {
        let Some(i) = self.adapter_index(kind) else {
            return;
        };
        if self.instance(kind).is_some() {
            return;
        }
        let a = self.adapters[i].clone();
        let port = adapters::resolve_port(&a.adapter_type, a.port);
        let mut used = self.ports_in_use(kind);
        let effective_nfs = (kind == "nfs").then(|| {
            let v = &self.nfs_settings.values;
            let pm_enabled = v["portmapper_enabled"].as_bool().unwrap_or(false);
            let pm_port = v["portmapper_port"].as_i64().unwrap_or(0);
            // auxservices.go: the portmapper starts before the NFS listener;
            // a bind failure is a WARN.
            let pm_listening =
                pm_enabled && (1..=65535).contains(&pm_port) && !used.contains(&pm_port);
            if pm_listening {
                used.insert(pm_port);
            }
            EffectiveNfsSettings {
                adapter_port: port,
                listening: false,
                portmapper_enabled: pm_enabled,
                portmapper_port: pm_port,
                portmapper_register_with_system: v["portmapper_register_with_system"]
                    .as_bool()
                    .unwrap_or(false),
                udp_enabled: v["udp_enabled"].as_bool().unwrap_or(false),
                portmapper_listening: pm_listening,
            }
        });
        let listening = (1..=65535).contains(&port) && !used.contains(&port);
        let effective_nfs = effective_nfs.map(|mut e| {
            e.listening = listening;
            e
        });
        if kind == "nfs" {
            // The NFS client provider (and its grace-period state) exists
            // once the NFS adapter has had its runtime set.
            self.nfs_state_manager = true;
        }
        *self.adapter_starts.entry(kind.to_string()).or_default() += 1;
        self.running.push((
            kind.to_string(),
            Instance {
                port,
                bind_address: adapters::bind_address(&a.config),
                listening,
                effective_nfs,
            },
        ));
    }

    pub fn stop_adapter(&mut self, kind: &str) {
        self.running.retain(|(k, _)| k != kind);
    }

    /// `adapters.Service.UpdateAdapter` after the row was written: keep the
    /// running adapter when it stays enabled on the same listen address
    /// (`config.bind_address` + resolved port), otherwise stop it and start
    /// it again if enabled. A failed restart is only logged.
    pub fn reload_adapter(&mut self, kind: &str) {
        let Some(i) = self.adapter_index(kind) else {
            return;
        };
        let a = self.adapters[i].clone();
        if let Some(inst) = self.instance(kind)
            && a.enabled
            && inst.bind_address == adapters::bind_address(&a.config)
            && inst.port == adapters::resolve_port(&a.adapter_type, a.port)
        {
            return;
        }
        self.stop_adapter(kind);
        if a.enabled {
            self.start_adapter(kind);
        }
    }

    /// The adapter row update of `AdapterHandler.Update` followed by the live
    /// reload (shared with the `set_adapter` test control, which plays
    /// `dfsctl adapter edit`).
    pub fn edit_adapter(
        &mut self,
        i: usize,
        enabled: Option<bool>,
        port: Option<i64>,
        config: Option<Map<String, Value>>,
    ) {
        let a = &mut self.adapters[i];
        if let Some(v) = enabled {
            a.enabled = v;
        }
        if let Some(v) = port {
            a.port = v;
        }
        if let Some(c) = config {
            a.config = Value::Object(c).to_string();
        }
        a.updated_at = SystemTime::now();
        let kind = a.adapter_type.clone();
        self.reload_adapter(&kind);
    }

    /// `Runtime.AdapterChecker(kind).Healthcheck`: a `health.Report` cached
    /// for `status_ttl` (never invalidated by an update, only by a delete),
    /// keeping the original `checked_at`.
    pub fn adapter_status(&mut self, kind: &str) -> Value {
        if let Some((at, report)) = self.status_cache.get(kind)
            && at.elapsed() < self.status_ttl
        {
            return report.clone();
        }
        let now = super::util::rfc3339_nano(SystemTime::now());
        let report = match self.instance(kind) {
            None => json!({
                "status": "unknown",
                "message": format!("adapter {kind} not running"),
                "checked_at": now,
            }),
            // BaseAdapter.Healthcheck: started flag set only once the
            // listener is bound. (NFSAdapter/SMB "disabled" is unreachable:
            // the factory always sets Enabled: true.)
            Some(inst) if !inst.listening => json!({
                "status": "unknown",
                "message": format!("{} adapter has not started yet", kind.to_uppercase()),
                "checked_at": now,
            }),
            Some(_) => json!({"status": "healthy", "checked_at": now}),
        };
        self.status_cache
            .insert(kind.to_string(), (Instant::now(), report.clone()));
        report
    }

    pub fn adapter_view(&self, a: &AdapterRecord) -> AdapterView {
        let inst = self.instance(&a.adapter_type);
        AdapterView {
            id: a.id.clone(),
            adapter_type: a.adapter_type.clone(),
            enabled: a.enabled,
            port: a.port,
            config: Value::Object(adapters::parse_config(&a.config)),
            running: inst.is_some(),
            listening: inst.is_some_and(|i| i.listening),
            starts: self
                .adapter_starts
                .get(&a.adapter_type)
                .copied()
                .unwrap_or(0),
        }
    }

    // ---- requests ---------------------------------------------------------

    /// Answers one request: injected failures, routing, middleware, handler,
    /// then the log and the write counter.
    pub fn handle(&mut self, req: &RawRequest) -> Reply {
        let log_user = bearer_token(req.authorization.as_deref())
            .and_then(|t| self.validate_access(t))
            .map(|c| c.username);
        let reply = self.answer(req);
        self.request_count += 1;
        if self.log_requests {
            self.requests.push(RequestRecord {
                host: self.host.clone(),
                method: req.method.clone(),
                path: req.raw_path.clone(),
                status: reply.status,
                user: log_user,
            });
        }
        reply
    }

    fn answer(&mut self, req: &RawRequest) -> Reply {
        if req.raw_path.starts_with("/api/")
            && let Some((n, status)) = self.fail_next
        {
            self.fail_next = (n > 1).then_some((n - 1, status));
            return Reply::problem(
                status,
                &status_text(status),
                "injected failure (fake DittoFS)",
            );
        }
        let decoded = percent_decode(&req.raw_path).unwrap_or_else(|| req.raw_path.clone());
        // chi routes on RawPath when Go keeps one (an escaped '/' is the case
        // that matters: share names with inner slashes), else on Path.
        let lower = req.raw_path.to_ascii_lowercase();
        let routing_path = if lower.contains("%2f") {
            req.raw_path.clone()
        } else {
            decoded.clone()
        };
        let routed = router::route(&req.method, &routing_path);
        let mut ctx = Ctx {
            st: self,
            method: &req.method,
            path: decoded,
            query: req.query.as_deref(),
            params: routed.params,
            claims: None,
            authorization: req.authorization.as_deref(),
            body: &req.body,
            wrote: false,
        };
        let reply = run(&mut ctx, &routed.mws, &routed.target);
        if ctx.wrote {
            self.db_writes += 1;
        }
        reply
    }
}

/// `extractBearerToken` (middleware/auth.go): `SplitN(h, " ", 2)`, scheme
/// compared case-insensitively, the rest taken verbatim.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let h = header.filter(|h| !h.is_empty())?;
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("Bearer").then_some(token)
}

fn run(ctx: &mut Ctx<'_>, mws: &[Mw], target: &Target) -> Reply {
    for mw in mws {
        if let Err(reply) = middleware(ctx, *mw) {
            return reply;
        }
    }
    match target {
        Target::NotFound => Reply::chi_not_found(),
        Target::MethodNotAllowed(allowed) => Reply::method_not_allowed(allowed),
        Target::Endpoint(ep) => match dispatch(ctx, *ep) {
            Ok(r) | Err(r) => r,
        },
    }
}

/// `internal/controlplane/api/middleware/auth.go`.
fn middleware(ctx: &mut Ctx<'_>, mw: Mw) -> Result<(), Reply> {
    match mw {
        Mw::Jwt => {
            let Some(token) = bearer_token(ctx.authorization) else {
                return Err(Reply::http_error(401, "Authorization header required"));
            };
            match ctx.st.validate_access(token) {
                Some(claims) => ctx.claims = Some(claims),
                // Expired, unknown, or a refresh token: one message.
                None => return Err(Reply::http_error(401, "Invalid or expired token")),
            }
        }
        Mw::PasswordChange => {
            let claims = ctx
                .claims
                .as_ref()
                .ok_or_else(|| Reply::http_error(401, "Authentication required"))?;
            let mut path = ctx.path.trim_end_matches('/');
            if path.is_empty() {
                path = "/";
            }
            if path != "/api/v1/users/me/password" && claims.must_change_password {
                let u = super::util::go_quote(&claims.username);
                return Err(Reply::http_error(
                    403,
                    &format!(
                        "account {u} must set a new password before performing other operations; \
                         run 'dfsctl user change-password' (as {u}) to set one"
                    ),
                ));
            }
        }
        Mw::Admin => {
            let claims = ctx
                .claims
                .as_ref()
                .ok_or_else(|| Reply::http_error(401, "Authentication required"))?;
            if claims.role != "admin" {
                return Err(Reply::http_error(403, "Admin access required"));
            }
        }
        Mw::AdminOrOperator => {
            let claims = ctx
                .claims
                .as_ref()
                .ok_or_else(|| Reply::http_error(401, "Authentication required"))?;
            if claims.role != "admin" && claims.role != "operator" {
                return Err(Reply::http_error(403, "Insufficient permissions"));
            }
        }
    }
    Ok(())
}

fn dispatch(ctx: &mut Ctx<'_>, ep: Ep) -> super::wire::HResult {
    match ep {
        Ep::RootRedirect => Ok(Reply::temporary_redirect("/health")),
        Ep::Liveness => health::liveness(ctx),
        Ep::Readiness => health::readiness(ctx),
        Ep::Login => auth::login(ctx),
        Ep::Refresh => auth::refresh(ctx),
        Ep::Me => auth::me(ctx),
        Ep::ChangeOwnPassword => auth::change_own_password(ctx),
        Ep::UserGet => auth::user_get(ctx),
        Ep::UserCreate => auth::user_create(ctx),
        Ep::UserList => auth::user_list(ctx),
        Ep::UserUpdate => auth::user_update(ctx),
        Ep::UserDelete => auth::user_delete(ctx),
        Ep::UserResetPassword => auth::user_reset_password(ctx),
        Ep::AdapterPorts => adapters::list_ports(ctx),
        Ep::AdapterList => adapters::list(ctx),
        Ep::AdapterCreate => adapters::create(ctx),
        Ep::AdapterGet => adapters::get(ctx),
        Ep::AdapterUpdate => adapters::update(ctx),
        Ep::SettingsGet => adapters::settings_get(ctx),
        Ep::SettingsPut => adapters::settings_write(ctx, false),
        Ep::SettingsPatch => adapters::settings_write(ctx, true),
        Ep::MetaCreate => stores::meta_create(ctx),
        Ep::MetaList => stores::meta_list(ctx),
        Ep::MetaGet => stores::meta_get(ctx),
        Ep::MetaUpdate => stores::meta_update(ctx),
        Ep::MetaDelete => stores::meta_delete(ctx),
        Ep::BlockCreate => stores::block_create(ctx),
        Ep::BlockList => stores::block_list(ctx),
        Ep::BlockGet => stores::block_get(ctx),
        Ep::BlockUpdate => stores::block_update(ctx),
        Ep::BlockDelete => stores::block_delete(ctx),
        Ep::ShareCreate => shares::create(ctx),
        Ep::ShareList => shares::list(ctx),
        Ep::ShareGet => shares::get(ctx),
        Ep::ShareUpdate => shares::update(ctx),
        Ep::ShareDelete => shares::delete(ctx),
        Ep::PolicyUpsert => snapshot_policies::upsert(ctx),
        Ep::PolicyGet => snapshot_policies::get(ctx),
        Ep::PolicyDelete => snapshot_policies::delete(ctx),
        Ep::PolicyList => snapshot_policies::list(ctx),
        Ep::IdentityProviderGet => identity::get(ctx),
        Ep::IdentityProviderPut => identity::put(ctx),
        Ep::Unmodelled => Ok(Reply::chi_not_found()),
    }
}
