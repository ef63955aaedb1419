//! `handlers/metadata_stores.go` and `handlers/block_stores.go`, with
//! `runtime/init.go` `CreateMetadataStoreFromConfig`,
//! `runtime/blockstore_init.go` `ValidateBlockStoreConfig`,
//! `pkg/block/remote/s3/store.go` `ValidateEndpoint`, the
//! `handlers/helpers.go` redaction rules and `store/{metadata,block}.go`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::model::{BlockStoreRecord, Ctx, MetadataStoreRecord, State, StoreTarget};
use super::util::{go_quote, new_uuid, rfc3339_nano};
use super::wire::{Body, HResult, Reply};

const REDACTED: &str = "********";

// ---- config blobs ---------------------------------------------------------

/// `GetConfig()` of a store row: `{}` for an empty blob, Go's
/// `json.Unmarshal` into `map[string]any` otherwise (`null` is an empty map).
fn get_config(blob: &str) -> Result<Map<String, Value>, String> {
    if blob.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(blob) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(format!(
            "failed to get config: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        )),
        Err(e) => Err(format!("failed to get config: {e}")),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "object",
    }
}

/// `isSecretKey`: contains "secret" or "password", or ends in "_key"
/// (case-insensitive) — so `access_key_id` stays in clear.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_lowercase();
    k.contains("secret") || k.contains("password") || k.ends_with("_key")
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if is_secret_key(k) {
                    *child = Value::String(REDACTED.into());
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `redactedConfigRaw`: the config as a JSON *value* (written as a string,
/// read as an object), secrets redacted; omitted when blank or not JSON.
pub fn redacted_config(blob: &str) -> Option<Value> {
    if blob.trim().is_empty() {
        return None;
    }
    let mut v: Value = serde_json::from_str(blob).ok()?;
    redact(&mut v);
    Some(v)
}

/// `mergeRedactedSecrets`: `"********"` values in the new blob take the
/// stored value at the same place; the new blob is kept verbatim when there
/// is nothing to restore.
fn merge_redacted(old: &str, new: &str) -> String {
    if new.trim().is_empty() || old.trim().is_empty() {
        return new.to_string();
    }
    let (Ok(Value::Object(old_obj)), Ok(Value::Object(mut new_obj))) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str::<Value>(new),
    ) else {
        return new.to_string();
    };
    if !restore_map(&old_obj, &mut new_obj) {
        return new.to_string();
    }
    Value::Object(new_obj).to_string()
}

fn restore_map(old: &Map<String, Value>, new: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    for (k, nv) in new.iter_mut() {
        let Some(ov) = old.get(k) else { continue };
        changed |= restore_value(ov, nv);
    }
    changed
}

fn restore_value(ov: &Value, nv: &mut Value) -> bool {
    match (ov, nv) {
        (ov, nv @ Value::String(_)) if nv.as_str() == Some(REDACTED) => {
            *nv = ov.clone();
            true
        }
        (Value::Object(o), Value::Object(n)) => restore_map(o, n),
        (Value::Array(o), Value::Array(n)) => {
            let mut changed = false;
            for (ov, nv) in o.iter().zip(n.iter_mut()) {
                changed |= restore_value(ov, nv);
            }
            changed
        }
        _ => false,
    }
}

/// `pathutil.ExpandPath` for a leading `~`.
fn expand_path(p: &str) -> String {
    if p == "~" {
        "/root".to_string()
    } else if let Some(rest) = p.strip_prefix("~/") {
        format!("/root/{rest}")
    } else {
        p.to_string()
    }
}

/// The directory badger locks, normalised so two spellings of one directory
/// collide as they do on the real `flock`.
fn lock_key(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    if !path.starts_with('/') {
        out.remove(0);
    }
    out
}

/// The badger directory a metadata store row opens, if it is badger.
pub fn badger_dir(store_type: &str, config: &str) -> Option<String> {
    if store_type != "badger" {
        return None;
    }
    let cfg = get_config(config).ok()?;
    let path = [cfg.get("path"), cfg.get("db_path")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|p| !p.is_empty())?;
    Some(lock_key(&expand_path(path)))
}

fn config_int64(cfg: &Map<String, Value>, key: &str) -> i64 {
    match cfg.get(key) {
        Some(Value::Number(n)) => n.as_f64().map(|f| f as i64).unwrap_or(0),
        _ => 0,
    }
}

/// `CreateMetadataStoreFromConfig`: instantiates the store. `Ok(Some(dir))`
/// for a badger store that now holds its directory lock.
fn open_metadata_store(st: &State, store_type: &str, blob: &str) -> Result<Option<String>, String> {
    let cfg = get_config(blob)?;
    let s = |k: &str| cfg.get(k).and_then(Value::as_str);
    let refused = || match st.refusals.get(&StoreTarget::Metadata) {
        Some(msg) => Err(msg.clone()),
        None => Ok(()),
    };
    match store_type {
        "memory" => {
            refused()?;
            Ok(None)
        }
        "badger" => {
            let path = [s("path"), s("db_path")]
                .into_iter()
                .flatten()
                .find(|p| !p.is_empty())
                .ok_or("badger metadata store requires path as string")?;
            let expanded = expand_path(path);
            for key in ["block_cache_mb", "index_cache_mb"] {
                let v = config_int64(&cfg, key);
                if v < 0 {
                    return Err(format!(
                        "badger metadata store {key} must be >= 0 (0 = auto), got {v}"
                    ));
                }
            }
            let dir = lock_key(&expanded);
            if st.open_badger_dirs.contains(&dir) {
                // pkg/metadata/store/badger/store.go around badger.Open's
                // directory lock error (dir_unix.go, y.Wrapf).
                return Err(format!(
                    "metadata store at {expanded} is locked by another process — a DittoFS \
                     server is almost certainly already running against this data directory. \
                     Stop it ('dfs stop', or kill the running dfs) before starting another, or \
                     point this share at a different db_path: Cannot acquire directory lock on \
                     {}.  Another process is using this Badger database. error: resource \
                     temporarily unavailable",
                    go_quote(&expanded)
                ));
            }
            refused()?;
            Ok(Some(dir))
        }
        "postgres" => {
            s("host").ok_or("postgres metadata store requires host")?;
            s("database")
                .or(s("dbname"))
                .ok_or("postgres metadata store requires database")?;
            s("user").ok_or("postgres metadata store requires user")?;
            s("password").ok_or("postgres metadata store requires password")?;
            // The real server connects (and migrates) here.
            refused()?;
            Ok(None)
        }
        "sqlite" => {
            [s("path"), s("db_path")]
                .into_iter()
                .flatten()
                .find(|p| !p.is_empty())
                .ok_or("sqlite metadata store requires path as string")?;
            refused()?;
            Ok(None)
        }
        other => Err(format!("unsupported metadata store type: {other}")),
    }
}

// ---- metadata stores --------------------------------------------------------

/// `Runtime.MetadataStoreChecker(name)`: looks the *name* up in the runtime
/// registry — so a store addressed by its UUID reports "not loaded".
fn meta_status(st: &State, name: &str) -> Value {
    let now = rfc3339_nano(SystemTime::now());
    if st.loaded_metadata_stores.contains(name) {
        json!({"status": "healthy", "checked_at": now})
    } else {
        json!({
            "status": "unknown",
            "message": format!("metadata store {name} not loaded"),
            "checked_at": now,
        })
    }
}

fn meta_json(st: &State, m: &MetadataStoreRecord, status_name: &str) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), m.id.clone().into());
    o.insert("name".into(), m.name.clone().into());
    o.insert("type".into(), m.store_type.clone().into());
    if let Some(c) = redacted_config(&m.config) {
        o.insert("config".into(), c);
    }
    o.insert("created_at".into(), rfc3339_nano(m.created_at).into());
    o.insert("status".into(), meta_status(st, status_name));
    Value::Object(o)
}

/// `getByNameOrID` on metadata stores.
fn meta_index(st: &State, token: &str) -> Option<usize> {
    st.metadata_stores
        .iter()
        .position(|m| m.name == token)
        .or_else(|| st.metadata_stores.iter().position(|m| m.id == token))
}

pub fn meta_lookup(st: &State, token: &str) -> Option<MetadataStoreRecord> {
    meta_index(st, token).map(|i| st.metadata_stores[i].clone())
}

/// POST /api/v1/store/metadata — `MetadataStoreHandler.Create`: the store is
/// instantiated *before* the duplicate-name check, and an instance whose row
/// then fails with 409 is never closed (a badger directory stays locked).
pub fn meta_create(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let name = d.string("name").unwrap_or_default();
    let store_type = d.string("type").unwrap_or_default();
    let config = d.string("config").unwrap_or_default();
    d.finish()?;
    if name.is_empty() {
        return Err(Reply::bad_request("Store name is required"));
    }
    if store_type.is_empty() {
        return Err(Reply::bad_request("Store type is required"));
    }
    let opened = open_metadata_store(ctx.st, &store_type, &config)
        .map_err(|e| Reply::bad_request(&format!("Failed to create metadata store: {e}")))?;
    if let Some(dir) = opened {
        ctx.st.open_badger_dirs.insert(dir);
    }
    if ctx.st.metadata_stores.iter().any(|m| m.name == name) {
        return Err(Reply::conflict("Metadata store already exists"));
    }
    let rec = MetadataStoreRecord {
        id: new_uuid(),
        name: name.clone(),
        store_type,
        config,
        created_at: SystemTime::now(),
    };
    ctx.st.metadata_stores.push(rec.clone());
    ctx.write();
    // RegisterMetadataStore (a failure, e.g. the name still registered from a
    // deleted store, is only logged).
    ctx.st.loaded_metadata_stores.insert(name.clone());
    Ok(Reply::created(&meta_json(ctx.st, &rec, &name)))
}

/// GET /api/v1/store/metadata.
pub fn meta_list(ctx: &mut Ctx<'_>) -> HResult {
    let list: Vec<Value> = ctx
        .st
        .metadata_stores
        .iter()
        .map(|m| meta_json(ctx.st, m, &m.name))
        .collect();
    Ok(Reply::ok(&Value::Array(list)))
}

/// GET /api/v1/store/metadata/{name} (name or UUID).
pub fn meta_get(ctx: &mut Ctx<'_>) -> HResult {
    let token = ctx.param(0).to_string();
    let m =
        meta_lookup(ctx.st, &token).ok_or_else(|| Reply::not_found("Metadata store not found"))?;
    Ok(Reply::ok(&meta_json(ctx.st, &m, &token)))
}

/// PUT /api/v1/store/metadata/{name}: `type` and `config` (a JSON string)
/// persisted as given (redacted secrets restored), without validation or
/// runtime reload; always a write.
pub fn meta_update(ctx: &mut Ctx<'_>) -> HResult {
    let token = ctx.param(0).to_string();
    let mut d = Body::decode(ctx.body)?;
    let store_type = d.string("type");
    let config = d.string("config");
    d.finish()?;
    let i =
        meta_index(ctx.st, &token).ok_or_else(|| Reply::not_found("Metadata store not found"))?;
    let rec = &mut ctx.st.metadata_stores[i];
    if let Some(t) = store_type {
        rec.store_type = t;
    }
    if let Some(c) = config {
        rec.config = merge_redacted(&rec.config, &c);
    }
    let rec = rec.clone();
    ctx.write();
    Ok(Reply::ok(&meta_json(ctx.st, &rec, &token)))
}

/// DELETE /api/v1/store/metadata/{name}: 409 while a share uses it. The
/// runtime instance is neither closed nor unregistered.
pub fn meta_delete(ctx: &mut Ctx<'_>) -> HResult {
    let token = ctx.param(0).to_string();
    let i =
        meta_index(ctx.st, &token).ok_or_else(|| Reply::not_found("Metadata store not found"))?;
    let id = ctx.st.metadata_stores[i].id.clone();
    if ctx.st.shares.iter().any(|s| s.metadata_store_id == id) {
        return Err(Reply::conflict(
            "Cannot delete metadata store: it is in use by one or more shares",
        ));
    }
    ctx.st.metadata_stores.remove(i);
    ctx.write();
    Ok(Reply::no_content())
}

// ---- block stores -----------------------------------------------------------

/// `extractKind`.
fn kind_param(ctx: &Ctx<'_>) -> Result<String, Reply> {
    match ctx.param(0) {
        k @ ("local" | "remote") => Ok(k.to_string()),
        _ => Err(Reply::bad_request(
            "Invalid block store kind: must be 'local' or 'remote'",
        )),
    }
}

/// `validateBlockStoreType`.
fn type_valid_for_kind(kind: &str, store_type: &str) -> bool {
    matches!(
        (kind, store_type),
        ("local", "fs" | "memory") | ("remote", "s3" | "memory")
    )
}

/// `GetBlockStore(name, kind)`: name then id (then id without a leading
/// `/`), scoped to the kind.
fn block_index(st: &State, token: &str, kind: &str) -> Option<usize> {
    let find = |pred: &dyn Fn(&BlockStoreRecord) -> bool| {
        st.block_stores
            .iter()
            .position(|b| b.kind == kind && pred(b))
    };
    find(&|b| b.name == token)
        .or_else(|| find(&|b| b.id == token))
        .or_else(|| {
            let trimmed = token.strip_prefix('/')?;
            find(&|b| b.id == trimmed)
        })
}

pub fn block_lookup(st: &State, token: &str, kind: &str) -> Option<BlockStoreRecord> {
    block_index(st, token, kind).map(|i| st.block_stores[i].clone())
}

/// `blockstoreprobe.Probe`: the fake has no disks or buckets to probe, so
/// every configured store reports healthy.
fn block_json(b: &BlockStoreRecord) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), b.id.clone().into());
    o.insert("name".into(), b.name.clone().into());
    o.insert("kind".into(), b.kind.clone().into());
    o.insert("type".into(), b.store_type.clone().into());
    if let Some(c) = redacted_config(&b.config) {
        o.insert("config".into(), c);
    }
    o.insert("created_at".into(), rfc3339_nano(b.created_at).into());
    o.insert(
        "status".into(),
        json!({"status": "healthy", "checked_at": rfc3339_nano(SystemTime::now())}),
    );
    Value::Object(o)
}

/// `runtime.ValidateBlockStoreConfig`, then an injected refusal for the kind
/// (standing in for a failing `os.MkdirAll` or any other failure).
fn validate_block_config(
    st: &State,
    kind: &str,
    store_type: &str,
    blob: &str,
) -> Result<(), String> {
    validate_block_structure(st, kind, store_type, blob)?;
    let target = if kind == "local" {
        StoreTarget::Local
    } else {
        StoreTarget::Remote
    };
    match st.refusals.get(&target) {
        Some(msg) => Err(msg.clone()),
        None => Ok(()),
    }
}

fn validate_block_structure(
    st: &State,
    kind: &str,
    store_type: &str,
    blob: &str,
) -> Result<(), String> {
    let cfg = get_config(blob)?;
    match (kind, store_type) {
        (_, "memory") => Ok(()),
        ("local", "fs") => {
            let raw = cfg
                .get("path")
                .ok_or("fs local block store requires path in config")?;
            let path = raw
                .as_str()
                .ok_or("fs local block store path must be a string")?;
            if path.is_empty() {
                return Err("fs local block store requires path in config".into());
            }
            if !expand_path(path).starts_with('/') {
                return Err(format!(
                    "fs local block store path must be absolute, got {}",
                    go_quote(path)
                ));
            }
            // Then os.MkdirAll(expanded, 0755): the fake touches no disk.
            Ok(())
        }
        ("remote", "s3") => {
            let s = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("");
            if s("bucket").is_empty() {
                return Err("s3 remote block store requires bucket in config".into());
            }
            if s("access_key_id").is_empty() {
                return Err("s3 remote block store requires access_key_id in config".into());
            }
            if s("secret_access_key").is_empty() {
                return Err("s3 remote block store requires secret_access_key in config".into());
            }
            let allow_private = cfg
                .get("allow_private_endpoint")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            validate_endpoint(st, s("endpoint"), allow_private)?;
            validate_compression(&cfg)?;
            validate_parallel_uploads(&cfg)
        }
        (k, t) => Err(format!("unsupported {k} block store type: {t}")),
    }
}

fn validate_compression(cfg: &Map<String, Value>) -> Result<(), String> {
    let Some(raw) = cfg.get("compression") else {
        return Ok(());
    };
    let Value::Object(obj) = raw else {
        return Err(format!(
            "compression: expected object, got {}",
            go_type_name(raw)
        ));
    };
    match obj.get("algo") {
        None => Ok(()),
        Some(Value::String(a)) if a == "zstd" || a == "lz4" => Ok(()),
        Some(Value::String(a)) => Err(format!(
            "compression.algo: unsupported value {} (want zstd or lz4)",
            go_quote(a)
        )),
        Some(other) => Err(format!(
            "compression.algo: expected string, got {}",
            go_type_name(other)
        )),
    }
}

fn validate_parallel_uploads(cfg: &Map<String, Value>) -> Result<(), String> {
    let Some(raw) = cfg.get("parallel_uploads") else {
        return Ok(());
    };
    let Some(n) = raw.as_f64() else {
        return Err(format!(
            "parallel_uploads: expected number, got {}",
            go_type_name(raw)
        ));
    };
    if n.fract() != 0.0 {
        return Err(format!("parallel_uploads: expected integer, got {n}"));
    }
    // engine.MaxParallelUploads = 256.
    if !(0.0..=256.0).contains(&n) {
        return Err(format!(
            "parallel_uploads: must be between 0 and 256 (got {})",
            n as i64
        ));
    }
    Ok(())
}

/// `%T` of a value decoded into `any`.
fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The deterministic stand-in for DNS: test-set answers first, then
/// `localhost` → 127.0.0.1, `*.svc`, `*.svc.cluster.local`, `*.cluster.local`
/// → a 10.96.x.y ClusterIP, anything else → a public 52.216.x.y address.
pub fn resolve(st: &State, host: &str) -> Option<IpAddr> {
    let host = host.to_ascii_lowercase();
    if let Some(answer) = st.resolver.get(&host) {
        return *answer;
    }
    let h = host.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let [_, _, x, y] = h.to_be_bytes();
    if host == "localhost" || host.ends_with(".localhost") {
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else if host.ends_with(".svc") || host.ends_with(".cluster.local") {
        Some(IpAddr::V4(Ipv4Addr::new(10, 96, x, y.max(1))))
    } else {
        Some(IpAddr::V4(Ipv4Addr::new(52, 216, x, y.max(1))))
    }
}

/// `s3store.ValidateEndpoint` (pkg/block/remote/s3/store.go).
pub fn validate_endpoint(st: &State, endpoint: &str, allow_private: bool) -> Result<(), String> {
    const E: &str = "s3 block store: unsafe endpoint";
    if endpoint.is_empty() {
        return Ok(());
    }
    // normalizeEndpoint: prepend https:// unless a valid scheme precedes "://".
    let has_scheme = endpoint.find("://").is_some_and(|i| {
        let scheme = &endpoint[..i];
        i > 0
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let normalized = if has_scheme {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    };
    let (scheme, rest) = normalized.split_once("://").expect("normalized");
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((h, _)) => h.to_string(),
            None => {
                return Err(format!(
                    "{E}: parse {}: parse {}: missing ']' in host",
                    go_quote(endpoint),
                    go_quote(&normalized)
                ));
            }
        }
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string()
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{E}: scheme {} must be http or https",
            go_quote(&scheme)
        ));
    }
    if host.is_empty() {
        return Err(format!("{E}: missing host in {}", go_quote(endpoint)));
    }
    let ip = match host.split('%').next().unwrap_or("").parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => resolve(st, &host).ok_or_else(|| {
            format!(
                "{E}: resolve host {}: lookup {host}: no such host",
                go_quote(&host)
            )
        })?,
    };
    check_endpoint_ip(ip, &host, allow_private)
}

/// `checkEndpointIP`.
fn check_endpoint_ip(ip: IpAddr, host: &str, allow_private: bool) -> Result<(), String> {
    const E: &str = "s3 block store: unsafe endpoint";
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let q = go_quote(host);
    let (unspecified, multicast, link_local, loopback, private, broadcast) = match ip {
        IpAddr::V4(a) => (
            a.is_unspecified(),
            a.is_multicast(),
            a.is_link_local(),
            a.is_loopback(),
            a.is_private(),
            a.is_broadcast(),
        ),
        IpAddr::V6(a) => (
            a.is_unspecified(),
            a.is_multicast(),
            a.is_unicast_link_local(),
            a.is_loopback(),
            a.is_unique_local(),
            false,
        ),
    };
    if unspecified {
        return Err(format!("{E}: host {q} resolves to unspecified address"));
    }
    if multicast {
        return Err(format!("{E}: host {q} resolves to multicast address"));
    }
    if link_local {
        return Err(format!(
            "{E}: host {q} resolves to link-local address {ip} (cloud metadata)"
        ));
    }
    if allow_private {
        return Ok(());
    }
    if loopback || private || broadcast {
        return Err(format!(
            "{E}: host {q} resolves to private/internal address {ip} (set allow_private_endpoint=true to permit)"
        ));
    }
    Ok(())
}

/// POST /api/v1/store/block/{kind} — `BlockStoreHandler.Create`.
pub fn block_create(ctx: &mut Ctx<'_>) -> HResult {
    let kind = kind_param(ctx)?;
    let mut d = Body::decode(ctx.body)?;
    let name = d.string("name").unwrap_or_default();
    let store_type = d.string("type").unwrap_or_default();
    let config = d.string("config").unwrap_or_default();
    d.finish()?;
    if name.is_empty() {
        return Err(Reply::bad_request("Store name is required"));
    }
    if store_type.is_empty() {
        return Err(Reply::bad_request("Store type is required"));
    }
    if !type_valid_for_kind(&kind, &store_type) {
        return Err(Reply::bad_request(&format!(
            "Store type '{store_type}' is not valid for kind '{kind}'"
        )));
    }
    validate_block_config(ctx.st, &kind, &store_type, &config)
        .map_err(|e| Reply::bad_request(&format!("Invalid block store config: {e}")))?;
    // Unique index (name, kind).
    if ctx
        .st
        .block_stores
        .iter()
        .any(|b| b.name == name && b.kind == kind)
    {
        return Err(Reply::conflict("Block store already exists"));
    }
    let rec = BlockStoreRecord {
        id: new_uuid(),
        name,
        kind,
        store_type,
        config,
        created_at: SystemTime::now(),
    };
    ctx.st.block_stores.push(rec.clone());
    ctx.write();
    Ok(Reply::created(&block_json(&rec)))
}

/// GET /api/v1/store/block/{kind}.
pub fn block_list(ctx: &mut Ctx<'_>) -> HResult {
    let kind = kind_param(ctx)?;
    let list: Vec<Value> = ctx
        .st
        .block_stores
        .iter()
        .filter(|b| b.kind == kind)
        .map(block_json)
        .collect();
    Ok(Reply::ok(&Value::Array(list)))
}

/// GET /api/v1/store/block/{kind}/{name}.
pub fn block_get(ctx: &mut Ctx<'_>) -> HResult {
    let kind = kind_param(ctx)?;
    let b = block_lookup(ctx.st, ctx.param(1), &kind)
        .ok_or_else(|| Reply::not_found("Block store not found"))?;
    Ok(Reply::ok(&block_json(&b)))
}

/// PUT /api/v1/store/block/{kind}/{name}: `type`/`config` re-validated (the
/// endpoint check included) when present; always a write.
pub fn block_update(ctx: &mut Ctx<'_>) -> HResult {
    let kind = kind_param(ctx)?;
    let token = ctx.param(1).to_string();
    let mut d = Body::decode(ctx.body)?;
    let store_type = d.string("type");
    let config = d.string("config");
    d.finish()?;
    let i = block_index(ctx.st, &token, &kind)
        .ok_or_else(|| Reply::not_found("Block store not found"))?;
    let mut rec = ctx.st.block_stores[i].clone();
    if let Some(t) = &store_type {
        if !type_valid_for_kind(&rec.kind, t) {
            return Err(Reply::bad_request(&format!(
                "Store type '{t}' is not valid for kind '{}'",
                rec.kind
            )));
        }
        rec.store_type = t.clone();
    }
    if let Some(c) = &config {
        rec.config = merge_redacted(&rec.config, c);
    }
    if store_type.is_some() || config.is_some() {
        validate_block_config(ctx.st, &rec.kind, &rec.store_type, &rec.config)
            .map_err(|e| Reply::bad_request(&format!("Invalid block store config: {e}")))?;
    }
    ctx.st.block_stores[i] = rec.clone();
    ctx.write();
    Ok(Reply::ok(&block_json(&rec)))
}

/// DELETE /api/v1/store/block/{kind}/{name}: 409 while a share uses it as
/// its local or remote store.
pub fn block_delete(ctx: &mut Ctx<'_>) -> HResult {
    let kind = kind_param(ctx)?;
    let i = block_index(ctx.st, ctx.param(1), &kind)
        .ok_or_else(|| Reply::not_found("Block store not found"))?;
    let id = ctx.st.block_stores[i].id.clone();
    if ctx.st.shares.iter().any(|s| {
        s.local_block_store_id == id || s.remote_block_store_id.as_deref() == Some(id.as_str())
    }) {
        return Err(Reply::conflict(
            "Cannot delete block store: it is in use by one or more shares",
        ));
    }
    ctx.st.block_stores.remove(i);
    ctx.write();
    Ok(Reply::no_content())
}
