//! `handlers/shares.go` (create, list, get, update, delete) over
//! `store/shares.go`, `models/share.go`, `pkg/block/retention.go` and
//! `internal/bytesize`.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::adapters::{NFS_OPERATIONS, SMB_OPERATIONS};
use super::model::{Ctx, ShareRecord, State};
use super::stores::{block_lookup, meta_lookup};
use super::util::{
    format_byte_size, go_duration_secs, go_parse_duration, go_quote, new_uuid, parse_byte_size,
    path_pattern_is_valid, percent_decode, rfc3339_nano,
};
use super::wire::{Body, HResult, Reply};

/// `normalizeShareName`: URL-unescape, trim every leading `/`, add one.
pub fn normalize_share_name(name: &str) -> String {
    let decoded = percent_decode(name).unwrap_or_else(|| name.to_string());
    format!("/{}", decoded.trim_start_matches('/'))
}

/// `getByNameOrID` on shares: name, id, then id without the leading `/`
/// (a share addressed by UUID arrives normalised as `/<uuid>`).
fn share_index(st: &State, token: &str) -> Option<usize> {
    st.shares
        .iter()
        .position(|s| s.name == token)
        .or_else(|| st.shares.iter().position(|s| s.id == token))
        .or_else(|| {
            let trimmed = token.strip_prefix('/')?;
            st.shares.iter().position(|s| s.id == trimmed)
        })
}

/// `resolveBlockStoreRef`: name-or-id within the kind, then any store by
/// id (a wrong kind is its own 400); `writeBlockStoreRefError` texts.
fn resolve_block_ref(st: &State, reference: &str, kind: &str, tier: &str) -> Result<String, Reply> {
    if let Some(b) = block_lookup(st, reference, kind) {
        return Ok(b.id);
    }
    match st.block_stores.iter().find(|b| b.id == reference) {
        None => Err(Reply::bad_request(&format!(
            "{tier} block store not found: {reference}"
        ))),
        Some(_) => Err(Reply::bad_request(&format!(
            "{tier} block store has the wrong kind: {reference}"
        ))),
    }
}

fn valid_permission(p: &str) -> bool {
    matches!(p, "none" | "read" | "read-write" | "admin")
}

fn invalid_permission(p: &str) -> Reply {
    Reply::bad_request(&format!(
        "Invalid default_permission: {p} (want none|read|read-write|admin)"
    ))
}

/// `isValidBlockedOperation`: a known NFS or SMB operation.
fn check_blocked_ops(ops: &[String]) -> Result<(), Reply> {
    match ops
        .iter()
        .find(|op| !NFS_OPERATIONS.contains(&op.as_str()) && !SMB_OPERATIONS.contains(&op.as_str()))
    {
        Some(op) => Err(Reply::bad_request(&format!(
            "Unknown blocked operation: {op}"
        ))),
        None => Ok(()),
    }
}

/// `block.ParseRetentionPolicy`: blank → lru, case-insensitive.
fn parse_retention(s: &str) -> Result<String, Reply> {
    let t = s.trim();
    if t.is_empty() {
        return Ok("lru".into());
    }
    let p = t.to_lowercase();
    if matches!(p.as_str(), "pin" | "ttl" | "lru") {
        Ok(p)
    } else {
        Err(Reply::bad_request(&format!(
            "invalid retention policy {}: must be one of pin, ttl, lru",
            go_quote(t)
        )))
    }
}

/// `time.ParseDuration` as the handler reports it; nanoseconds.
fn parse_ttl(s: &str) -> Result<i128, Reply> {
    go_parse_duration(s)
        .map_err(|e| Reply::bad_request(&format!("Invalid retention TTL duration: {e}")))
}

/// `block.ValidateRetentionPolicy`.
fn validate_retention(policy: &str, ttl_ns: i128) -> Result<(), Reply> {
    if policy == "ttl" && ttl_ns <= 0 {
        return Err(Reply::bad_request(
            "retention policy \"ttl\" requires a positive TTL duration",
        ));
    }
    Ok(())
}

fn parse_size(field: &str, s: &str) -> Result<i64, Reply> {
    parse_byte_size(s)
        .map(|b| b as i64)
        .map_err(|e| Reply::bad_request(&format!("Invalid {field}: {e}")))
}

/// `metadata.ValidateExcludePatterns` (`path.Match` syntax).
fn check_patterns(patterns: &[String]) -> Result<(), Reply> {
    match patterns.iter().find(|p| !path_pattern_is_valid(p)) {
        Some(p) => Err(Reply::bad_request(&format!(
            "invalid exclude pattern {}: syntax error in pattern",
            go_quote(p)
        ))),
        None => Ok(()),
    }
}

/// `ShareHandler.shareToResponseWithUsage`: the fake stores no data, so
/// usage is 0; the status is the runtime's view of the share.
pub fn share_json(st: &State, s: &ShareRecord) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), s.id.clone().into());
    o.insert("name".into(), s.name.clone().into());
    o.insert(
        "metadata_store_id".into(),
        s.metadata_store_id.clone().into(),
    );
    o.insert(
        "local_block_store_id".into(),
        s.local_block_store_id.clone().into(),
    );
    o.insert(
        "remote_block_store_id".into(),
        s.remote_block_store_id
            .clone()
            .map_or(Value::Null, Value::from),
    );
    o.insert("read_only".into(), s.read_only.into());
    o.insert("enabled".into(), s.enabled.into());
    o.insert("encrypt_data".into(), s.encrypt_data.into());
    o.insert(
        "default_permission".into(),
        s.default_permission.clone().into(),
    );
    if let Some(uid) = s.owner_uid {
        o.insert("owner_uid".into(), uid.into());
    }
    if let Some(gid) = s.owner_gid {
        o.insert("owner_gid".into(), gid.into());
    }
    if !s.blocked_operations.is_empty() {
        o.insert("blocked_operations".into(), json!(s.blocked_operations));
    }
    // GetRetentionPolicy: an unparsable stored value reads as lru.
    let policy = parse_retention(&s.retention_policy).unwrap_or_else(|_| "lru".into());
    o.insert("retention_policy".into(), policy.into());
    if s.retention_ttl_secs > 0 {
        o.insert(
            "retention_ttl".into(),
            go_duration_secs(s.retention_ttl_secs).into(),
        );
    }
    for (key, v) in [
        ("local_store_size", s.local_store_size),
        ("read_buffer_size", s.read_buffer_size),
        ("quota_bytes", s.quota_bytes),
    ] {
        if v > 0 {
            o.insert(key.into(), format_byte_size(v as u64).into());
        }
    }
    o.insert("used_bytes".into(), 0.into());
    o.insert("physical_bytes".into(), 0.into());
    o.insert("usage_percent".into(), 0.into());
    for (key, v) in [
        (
            "acl_flag_inherited_canonicalization",
            s.acl_flag_inherited_canonicalization,
        ),
        ("access_based_enumeration", s.access_based_enumeration),
        ("change_notify_disabled", s.change_notify_disabled),
        ("streams_disabled", s.streams_disabled),
        ("continuous_availability", s.continuous_availability),
        ("allow_mfsymlink", s.allow_mfsymlink),
        ("trash_enabled", s.trash_enabled),
        ("trash_restrict_to_admin", s.trash_restrict_to_admin),
    ] {
        o.insert(key.into(), v.into());
    }
    o.insert("trash_retention_days".into(), s.trash_retention_days.into());
    o.insert("trash_max_bytes".into(), s.trash_max_bytes.into());
    if !s.trash_exclude_patterns.is_empty() {
        o.insert(
            "trash_exclude_patterns".into(),
            json!(s.trash_exclude_patterns),
        );
    }
    o.insert("created_at".into(), rfc3339_nano(s.created_at).into());
    o.insert("updated_at".into(), rfc3339_nano(s.updated_at).into());
    let now = rfc3339_nano(SystemTime::now());
    let status = if st.loaded_shares.contains(&s.name) {
        json!({"status": "healthy", "checked_at": now})
    } else {
        json!({
            "status": "unknown",
            "message": format!("share not found: share {} not found", s.name),
            "checked_at": now,
        })
    };
    o.insert("status".into(), status);
    Value::Object(o)
}

/// POST /api/v1/shares — `ShareHandler.Create`. Store references by name or
/// UUID (the response carries UUIDs); note `local_block_store` /
/// `remote_block_store` here versus `*_id` on update.
pub fn create(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let name = d.string("name").unwrap_or_default();
    let meta_ref = d.string("metadata_store_id").unwrap_or_default();
    let local_ref = d.string("local_block_store").unwrap_or_default();
    let remote_ref = d.string("remote_block_store");
    let read_only = d.bool("read_only").unwrap_or(false);
    let owner = d.string("owner").unwrap_or_default();
    let encrypt_data = d.bool("encrypt_data").unwrap_or(false);
    let default_permission = d.string("default_permission").unwrap_or_default();
    let blocked = d.strings("blocked_operations");
    let retention_policy = d.string("retention_policy").unwrap_or_default();
    let retention_ttl = d.string("retention_ttl").unwrap_or_default();
    let local_store_size = d.string("local_store_size").unwrap_or_default();
    let read_buffer_size = d.string("read_buffer_size").unwrap_or_default();
    let quota_bytes = d.string("quota_bytes").unwrap_or_default();
    let acl = d.bool("acl_flag_inherited_canonicalization");
    let abe = d.bool("access_based_enumeration");
    let cn_disabled = d.bool("change_notify_disabled");
    let streams_disabled = d.bool("streams_disabled");
    let ca = d.bool("continuous_availability");
    let mfsymlink = d.bool("allow_mfsymlink");
    let trash_enabled = d.bool("trash_enabled");
    let trash_days = d.int("trash_retention_days");
    let trash_admin = d.bool("trash_restrict_to_admin");
    let trash_max = d.int("trash_max_bytes");
    let trash_patterns = d.strings("trash_exclude_patterns").unwrap_or_default();
    d.finish()?;

    if name.is_empty() {
        return Err(Reply::bad_request("Share name is required"));
    }
    let name = normalize_share_name(&name);
    if meta_ref.is_empty() {
        return Err(Reply::bad_request("Metadata store ID is required"));
    }
    if local_ref.is_empty() {
        return Err(Reply::bad_request("Local block store is required"));
    }
    let meta = meta_lookup(ctx.st, &meta_ref)
        .ok_or_else(|| Reply::bad_request(&format!("Metadata store not found: {meta_ref}")))?;
    let local_id = resolve_block_ref(ctx.st, &local_ref, "local", "Local")?;
    let remote_id = match remote_ref.filter(|r| !r.is_empty()) {
        Some(r) => Some(resolve_block_ref(ctx.st, &r, "remote", "Remote")?),
        None => None,
    };
    // Default "none" (deny); the raw string is validated (#1180).
    let default_permission = if default_permission.is_empty() {
        "none".to_string()
    } else if valid_permission(&default_permission) {
        default_permission
    } else {
        return Err(invalid_permission(&default_permission));
    };
    if let Some(ops) = &blocked {
        check_blocked_ops(ops)?;
    }
    let policy = parse_retention(&retention_policy)?;
    let ttl_ns = if retention_ttl.is_empty() {
        0
    } else {
        parse_ttl(&retention_ttl)?
    };
    validate_retention(&policy, ttl_ns)?;
    let size = |field: &str, s: &str| {
        if s.is_empty() {
            Ok(0)
        } else {
            parse_size(field, s)
        }
    };
    let local_store_size = size("local_store_size", &local_store_size)?;
    let read_buffer_size = size("read_buffer_size", &read_buffer_size)?;
    let quota_bytes = size("quota_bytes", &quota_bytes)?;
    if trash_days.is_some_and(|v| v < 0) {
        return Err(Reply::bad_request("trash_retention_days must be >= 0"));
    }
    if trash_max.is_some_and(|v| v < 0) {
        return Err(Reply::bad_request("trash_max_bytes must be >= 0"));
    }
    // The owner's UID owns the share root; GID defaults to the UID.
    let (owner_uid, owner_gid) = if owner.is_empty() {
        (None, None)
    } else {
        let i = ctx.st.user_index(&owner).ok_or_else(|| {
            Reply::bad_request(&format!("Owner user {} not found", go_quote(&owner)))
        })?;
        let u = &ctx.st.users[i];
        let uid = u.uid.ok_or_else(|| {
            Reply::bad_request(&format!("Owner user {} has no UID", go_quote(&owner)))
        })?;
        (Some(uid), Some(u.gid.unwrap_or(uid)))
    };
    check_patterns(&trash_patterns)?;
    if ctx.st.shares.iter().any(|s| s.name == name) {
        return Err(Reply::conflict("Share already exists"));
    }
    let now = SystemTime::now();
    let share = ShareRecord {
        id: new_uuid(),
        name: name.clone(),
        metadata_store_id: meta.id.clone(),
        local_block_store_id: local_id,
        remote_block_store_id: remote_id,
        read_only,
        enabled: true,
        encrypt_data,
        default_permission,
        owner_uid,
        owner_gid,
        blocked_operations: blocked.unwrap_or_default(),
        retention_policy: policy,
        retention_ttl_secs: (ttl_ns / 1_000_000_000) as i64,
        local_store_size,
        read_buffer_size,
        quota_bytes,
        acl_flag_inherited_canonicalization: acl.unwrap_or(true),
        access_based_enumeration: abe.unwrap_or(false),
        change_notify_disabled: cn_disabled.unwrap_or(false),
        streams_disabled: streams_disabled.unwrap_or(false),
        continuous_availability: ca.unwrap_or(false),
        allow_mfsymlink: mfsymlink.unwrap_or(false),
        trash_enabled: trash_enabled.unwrap_or(false),
        trash_retention_days: trash_days.unwrap_or(0),
        trash_restrict_to_admin: trash_admin.unwrap_or(false),
        trash_max_bytes: trash_max.unwrap_or(0),
        trash_exclude_patterns: trash_patterns,
        created_at: now,
        updated_at: now,
    };
    ctx.st.shares.push(share.clone());
    ctx.write();
    // runtime.AddShare: needs the metadata store loaded; a failure is only
    // logged and the answer is still 201.
    if ctx.st.loaded_metadata_stores.contains(&meta.name) {
        ctx.st.loaded_shares.insert(name);
    }
    Ok(Reply::created(&share_json(ctx.st, &share)))
}

/// GET /api/v1/shares.
pub fn list(ctx: &mut Ctx<'_>) -> HResult {
    let list: Vec<Value> = ctx
        .st
        .shares
        .iter()
        .map(|s| share_json(ctx.st, s))
        .collect();
    Ok(Reply::ok(&Value::Array(list)))
}

fn name_param(ctx: &Ctx<'_>) -> Result<String, Reply> {
    let name = normalize_share_name(ctx.param(0));
    if name == "/" {
        return Err(Reply::bad_request("Share name is required"));
    }
    Ok(name)
}

/// GET /api/v1/shares/{name} (name without the leading slash, or UUID).
pub fn get(ctx: &mut Ctx<'_>) -> HResult {
    let name = name_param(ctx)?;
    let i = share_index(ctx.st, &name).ok_or_else(|| Reply::not_found("Share not found"))?;
    Ok(Reply::ok(&share_json(ctx.st, &ctx.st.shares[i])))
}

/// PUT /api/v1/shares/{name} — `ShareHandler.Update`: every field optional;
/// `local_block_store_id` / `remote_block_store_id` (name or UUID, resolved;
/// `""` clears the remote), `metadata_store_id` stored verbatim (not
/// resolved), `default_permission` `""` accepted; always a write. `name`,
/// `owner` and `enabled` cannot change here.
pub fn update(ctx: &mut Ctx<'_>) -> HResult {
    let name = name_param(ctx)?;
    let mut d = Body::decode(ctx.body)?;
    let meta_id = d.string("metadata_store_id");
    let local_ref = d.string("local_block_store_id");
    let remote_ref = d.string("remote_block_store_id");
    let read_only = d.bool("read_only");
    let encrypt_data = d.bool("encrypt_data");
    let default_permission = d.string("default_permission");
    let blocked = d.strings("blocked_operations");
    let retention_policy = d.string("retention_policy");
    let retention_ttl = d.string("retention_ttl");
    let local_store_size = d.string("local_store_size");
    let read_buffer_size = d.string("read_buffer_size");
    let quota_bytes = d.string("quota_bytes");
    let acl = d.bool("acl_flag_inherited_canonicalization");
    let abe = d.bool("access_based_enumeration");
    let cn_disabled = d.bool("change_notify_disabled");
    let streams_disabled = d.bool("streams_disabled");
    let ca = d.bool("continuous_availability");
    let mfsymlink = d.bool("allow_mfsymlink");
    let trash_enabled = d.bool("trash_enabled");
    let trash_days = d.int("trash_retention_days");
    let trash_admin = d.bool("trash_restrict_to_admin");
    let trash_max = d.int("trash_max_bytes");
    let trash_patterns = d.strings("trash_exclude_patterns");
    d.finish()?;
    let i = share_index(ctx.st, &name).ok_or_else(|| Reply::not_found("Share not found"))?;
    let mut s = ctx.st.shares[i].clone();

    if let Some(v) = meta_id {
        s.metadata_store_id = v;
    }
    if let Some(r) = local_ref {
        s.local_block_store_id = resolve_block_ref(ctx.st, &r, "local", "Local")?;
    }
    if let Some(r) = remote_ref {
        s.remote_block_store_id = if r.is_empty() {
            None
        } else {
            Some(resolve_block_ref(ctx.st, &r, "remote", "Remote")?)
        };
    }
    // A binding change is hot-rebound (RebindShareBlockStore); the fake's
    // rebind always succeeds, so no `warnings`.
    for (field, v) in [
        (&mut s.read_only, read_only),
        (&mut s.encrypt_data, encrypt_data),
        (&mut s.acl_flag_inherited_canonicalization, acl),
        (&mut s.access_based_enumeration, abe),
        (&mut s.change_notify_disabled, cn_disabled),
        (&mut s.streams_disabled, streams_disabled),
        (&mut s.continuous_availability, ca),
        (&mut s.allow_mfsymlink, mfsymlink),
        (&mut s.trash_enabled, trash_enabled),
    ] {
        if let Some(v) = v {
            *field = v;
        }
    }
    if let Some(v) = trash_days {
        if v < 0 {
            return Err(Reply::bad_request("trash_retention_days must be >= 0"));
        }
        s.trash_retention_days = v;
    }
    if let Some(v) = trash_admin {
        s.trash_restrict_to_admin = v;
    }
    if let Some(v) = trash_max {
        if v < 0 {
            return Err(Reply::bad_request("trash_max_bytes must be >= 0"));
        }
        s.trash_max_bytes = v;
    }
    if let Some(p) = trash_patterns {
        check_patterns(&p)?;
        s.trash_exclude_patterns = p;
    }
    if let Some(p) = default_permission {
        if !p.is_empty() && !valid_permission(&p) {
            return Err(invalid_permission(&p));
        }
        s.default_permission = p;
    }
    if let Some(ops) = blocked {
        check_blocked_ops(&ops)?;
        s.blocked_operations = ops;
    }
    if let Some(p) = retention_policy {
        let policy = parse_retention(&p)?;
        let ttl_ns = match &retention_ttl {
            Some(t) => parse_ttl(t)?,
            None => s.retention_ttl_secs as i128 * 1_000_000_000,
        };
        validate_retention(&policy, ttl_ns)?;
        s.retention_policy = policy;
        s.retention_ttl_secs = (ttl_ns / 1_000_000_000) as i64;
    } else if let Some(t) = retention_ttl {
        let ttl_ns = parse_ttl(&t)?;
        let current = parse_retention(&s.retention_policy).unwrap_or_else(|_| "lru".into());
        validate_retention(&current, ttl_ns)?;
        s.retention_ttl_secs = (ttl_ns / 1_000_000_000) as i64;
    }
    if let Some(v) = local_store_size {
        s.local_store_size = parse_size("local_store_size", &v)?;
    }
    if let Some(v) = read_buffer_size {
        s.read_buffer_size = parse_size("read_buffer_size", &v)?;
    }
    if let Some(v) = quota_bytes {
        s.quota_bytes = if v.is_empty() || v == "0" {
            0
        } else {
            parse_size("quota_bytes", &v)?
        };
    }
    s.updated_at = SystemTime::now();
    ctx.st.shares[i] = s.clone();
    ctx.write();
    Ok(Reply::ok(&share_json(ctx.st, &s)))
}

/// DELETE /api/v1/shares/{name}: the runtime removal (by the normalised URL
/// name, best effort) comes first, then the row (name or UUID).
pub fn delete(ctx: &mut Ctx<'_>) -> HResult {
    let name = name_param(ctx)?;
    ctx.st.loaded_shares.remove(&name);
    let i = share_index(ctx.st, &name).ok_or_else(|| Reply::not_found("Share not found"))?;
    let share = ctx.st.shares.remove(i);
    // The share's snapshot policy goes with it, in the same transaction
    // (`store/shares.go`, `DeleteShare`).
    ctx.st
        .snapshot_policies
        .retain(|p| p.share_name != share.name);
    ctx.write();
    Ok(Reply::no_content())
}
