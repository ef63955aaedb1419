//! `handlers/adapters.go` and `handlers/adapter_settings.go`, over
//! `store/adapters.go`, `models/adapter*.go` and
//! `runtime/adapters/service.go`.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::model::{AdapterRecord, Ctx, SettingsRecord};
use super::util::{new_uuid, query_get, rfc3339_nano};
use super::wire::{Body, HResult, Reply};

/// `models.DefaultPort`: what a zero port resolves to. (The default adapter
/// *row* for smb says 1445; the model constant says 12445.)
pub fn resolve_port(kind: &str, port: i64) -> i64 {
    match (kind, port) {
        (_, p) if p != 0 => p,
        ("nfs", _) => 12049,
        ("smb", _) => 12445,
        _ => 0,
    }
}

/// `AdapterConfig.GetConfig`: `{}` when empty or unparsable.
pub fn parse_config(config: &str) -> Map<String, Value> {
    if config.is_empty() {
        return Map::new();
    }
    serde_json::from_str(config).unwrap_or_default()
}

/// `adapterBindAddress` (runtime/adapters/service.go).
pub fn bind_address(config: &str) -> String {
    parse_config(config)
        .get("bind_address")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `adapterToResponse` + `running` and the cached status report.
fn adapter_json(ctx: &mut Ctx<'_>, a: &AdapterRecord, running: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), a.id.clone().into());
    m.insert("type".into(), a.adapter_type.clone().into());
    m.insert("enabled".into(), a.enabled.into());
    m.insert("running".into(), running.into());
    m.insert("port".into(), a.port.into());
    let config = parse_config(&a.config);
    if !config.is_empty() {
        m.insert("config".into(), Value::Object(config));
    }
    m.insert("created_at".into(), rfc3339_nano(a.created_at).into());
    m.insert("updated_at".into(), rfc3339_nano(a.updated_at).into());
    m.insert("status".into(), ctx.st.adapter_status(&a.adapter_type));
    Value::Object(m)
}

/// GET /api/v1/adapters — `AdapterHandler.List` (admin or operator).
pub fn list(ctx: &mut Ctx<'_>) -> HResult {
    let adapters = ctx.st.adapters.clone();
    let list: Vec<Value> = adapters
        .iter()
        .map(|a| {
            let running = ctx.st.instance(&a.adapter_type).is_some();
            adapter_json(ctx, a, running)
        })
        .collect();
    Ok(Reply::ok(&Value::Array(list)))
}

/// GET /api/v1/adapters/ports — `AdapterHandler.ListPorts` (any user).
pub fn list_ports(ctx: &mut Ctx<'_>) -> HResult {
    let list: Vec<Value> = ctx
        .st
        .adapters
        .iter()
        .map(|a| {
            json!({
                "type": a.adapter_type,
                "port": a.port,
                "enabled": a.enabled,
                "running": ctx.st.instance(&a.adapter_type).is_some(),
            })
        })
        .collect();
    Ok(Reply::ok(&Value::Array(list)))
}

/// GET /api/v1/adapters/{type} — `AdapterHandler.Get` (admin only).
pub fn get(ctx: &mut Ctx<'_>) -> HResult {
    let kind = ctx.param(0).to_string();
    let Some(i) = ctx.st.adapter_index(&kind) else {
        return Err(Reply::not_found("Adapter not found"));
    };
    let a = ctx.st.adapters[i].clone();
    let running = ctx.st.instance(&kind).is_some();
    Ok(Reply::ok(&adapter_json(ctx, &a, running)))
}

/// POST /api/v1/adapters — `AdapterHandler.Create`: persists, then starts
/// regardless of `enabled`; a start failure (the factory knows only nfs and
/// smb) rolls the row back → 500. The 201 body has `running:false`.
pub fn create(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let kind = d.string("type").unwrap_or_default();
    let _enabled = d.bool("enabled");
    let port = d.int("port").unwrap_or(0);
    let config = d.object("config");
    d.finish()?;
    if kind.is_empty() {
        return Err(Reply::bad_request("Adapter type is required"));
    }
    if ctx.st.adapter_index(&kind).is_some() {
        return Err(Reply::conflict("Adapter already exists"));
    }
    ctx.write();
    if kind != "nfs" && kind != "smb" {
        // "unknown adapter type: X" from the factory; the row is deleted.
        return Err(Reply::internal("Failed to create adapter"));
    }
    let now = SystemTime::now();
    let a = AdapterRecord {
        id: new_uuid(),
        adapter_type: kind.clone(),
        // `Enabled bool gorm:"default:true"`: false is coerced to true.
        enabled: true,
        port,
        config: config
            .map(|c| Value::Object(c).to_string())
            .unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    ctx.st.adapters.push(a.clone());
    if kind == "nfs" {
        ctx.st.nfs_settings = default_nfs_settings();
    } else {
        ctx.st.smb_settings = default_smb_settings();
    }
    ctx.st.start_adapter(&kind);
    Ok(Reply::created(&adapter_json(ctx, &a, false)))
}

/// PUT /api/v1/adapters/{type} — `AdapterHandler.Update`: a partial update
/// (`enabled`, `port` unvalidated, `config` replacing the map), written
/// (always: `updated_at`), then applied live by
/// `adapters.Service.UpdateAdapter`. 200 even when the restart failed.
pub fn update(ctx: &mut Ctx<'_>) -> HResult {
    let kind = ctx.param(0).to_string();
    let mut d = Body::decode(ctx.body)?;
    let enabled = d.bool("enabled");
    let port = d.int("port");
    let config = d.object("config");
    d.finish()?;
    let Some(i) = ctx.st.adapter_index(&kind) else {
        return Err(Reply::not_found("Adapter not found"));
    };
    ctx.st.edit_adapter(i, enabled, port, config);
    ctx.write();
    let a = ctx.st.adapters[i].clone();
    let running = ctx.st.instance(&kind).is_some();
    Ok(Reply::ok(&adapter_json(ctx, &a, running)))
}

// ---- settings -------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Bool,
    Ops,
}

/// A settings field: JSON name, type, and whether `Update*AdapterSettings`
/// writes it (the NFSv4 minor-version fields are accepted and validated but
/// missing from the store's column map, so they never persist).
struct Field(&'static str, Kind, bool);

const NFS_FIELDS: &[Field] = &[
    Field("min_version", Kind::Str, true),
    Field("max_version", Kind::Str, true),
    Field("lease_time", Kind::Int, true),
    Field("grace_period", Kind::Int, true),
    Field("delegation_recall_timeout", Kind::Int, true),
    Field("callback_timeout", Kind::Int, true),
    Field("lease_break_timeout", Kind::Int, true),
    Field("max_connections", Kind::Int, true),
    Field("max_clients", Kind::Int, true),
    Field("max_compound_ops", Kind::Int, true),
    Field("max_read_size", Kind::Int, true),
    Field("max_write_size", Kind::Int, true),
    Field("preferred_transfer_size", Kind::Int, true),
    Field("delegations_enabled", Kind::Bool, true),
    Field("max_delegations", Kind::Int, true),
    Field("dir_deleg_batch_window_ms", Kind::Int, true),
    Field("v4_min_minor_version", Kind::Int, false),
    Field("v4_max_minor_version", Kind::Int, false),
    Field("v4_max_connections_per_session", Kind::Int, false),
    Field("blocked_operations", Kind::Ops, true),
    Field("portmapper_enabled", Kind::Bool, true),
    Field("portmapper_port", Kind::Int, true),
    Field("portmapper_register_with_system", Kind::Bool, true),
    Field("udp_enabled", Kind::Bool, true),
    Field("mdns_enabled", Kind::Bool, true),
];

const SMB_FIELDS: &[Field] = &[
    Field("min_dialect", Kind::Str, true),
    Field("max_dialect", Kind::Str, true),
    Field("session_timeout", Kind::Int, true),
    Field("oplock_break_timeout", Kind::Int, true),
    Field("max_connections", Kind::Int, true),
    Field("max_sessions", Kind::Int, true),
    Field("enable_encryption", Kind::Bool, true),
    Field("signing", Kind::Str, true),
    Field("directory_leasing_enabled", Kind::Bool, true),
    Field("blocked_operations", Kind::Ops, true),
    Field("mdns_enabled", Kind::Bool, true),
    Field("wsdiscovery_enabled", Kind::Bool, true),
];

/// `models.NewDefaultNFSSettings` (portmapper off, port 10111).
pub fn default_nfs_settings() -> SettingsRecord {
    let v = json!({
        "min_version": "3", "max_version": "4.1",
        "lease_time": 90, "grace_period": 90, "delegation_recall_timeout": 90,
        "callback_timeout": 5, "lease_break_timeout": 35,
        "max_connections": 0, "max_clients": 10000, "max_compound_ops": 50,
        "max_read_size": 1048576, "max_write_size": 1048576, "preferred_transfer_size": 1048576,
        "delegations_enabled": true, "max_delegations": 10000, "dir_deleg_batch_window_ms": 50,
        "v4_min_minor_version": 0, "v4_max_minor_version": 2, "v4_max_connections_per_session": 16,
        "blocked_operations": [],
        "portmapper_enabled": false, "portmapper_port": 10111,
        "portmapper_register_with_system": false, "udp_enabled": false, "mdns_enabled": false,
    });
    SettingsRecord {
        values: v.as_object().cloned().unwrap_or_default(),
        version: 1,
    }
}

/// `models.NewDefaultSMBSettings`.
pub fn default_smb_settings() -> SettingsRecord {
    let v = json!({
        "min_dialect": "SMB2.0", "max_dialect": "SMB3.1.1",
        "session_timeout": 900, "oplock_break_timeout": 35,
        "max_connections": 0, "max_sessions": 10000,
        "enable_encryption": false, "signing": "", "directory_leasing_enabled": true,
        "blocked_operations": [], "mdns_enabled": false, "wsdiscovery_enabled": false,
    });
    SettingsRecord {
        values: v.as_object().cloned().unwrap_or_default(),
        version: 1,
    }
}

/// `nfsSettingsToResponse` / `smbSettingsToResponse`.
pub fn settings_json(s: &SettingsRecord) -> Value {
    let mut m = s.values.clone();
    m.insert("version".into(), s.version.into());
    Value::Object(m)
}

/// GET /api/v1/adapters/{type}/settings.
pub fn settings_get(ctx: &mut Ctx<'_>) -> HResult {
    let kind = ctx.param(0).to_string();
    if ctx.st.adapter_index(&kind).is_none() {
        return Err(Reply::not_found("Adapter not found"));
    }
    match kind.as_str() {
        "nfs" => Ok(Reply::ok(&settings_json(&ctx.st.nfs_settings))),
        "smb" => Ok(Reply::ok(&settings_json(&ctx.st.smb_settings))),
        _ => Err(Reply::bad_request(&format!(
            "Unsupported adapter type: {kind}"
        ))),
    }
}

/// PUT (`patch == false`, full replace: absent fields become zero values)
/// and PATCH (only present fields) of /api/v1/adapters/{type}/settings, with
/// `?force=true` (skip validation) and `?dry_run=true` (answer the merged
/// result without writing). A real write bumps `version`, even when nothing
/// changed.
pub fn settings_write(ctx: &mut Ctx<'_>, patch: bool) -> HResult {
    let kind = ctx.param(0).to_string();
    let force = query_get(ctx.query, "force") == "true";
    let dry_run = query_get(ctx.query, "dry_run") == "true";
    if ctx.st.adapter_index(&kind).is_none() {
        return Err(Reply::not_found("Adapter not found"));
    }
    let (fields, current) = match kind.as_str() {
        "nfs" => (NFS_FIELDS, ctx.st.nfs_settings.clone()),
        "smb" => (SMB_FIELDS, ctx.st.smb_settings.clone()),
        _ => {
            return Err(Reply::bad_request(&format!(
                "Unsupported adapter type: {kind}"
            )));
        }
    };
    let mut d = Body::decode(ctx.body)?;
    let mut merged = current.clone();
    for Field(name, k, _) in fields {
        let value: Option<Value> = match k {
            Kind::Str => d.string(name).map(Value::from),
            Kind::Int => d.int(name).map(Value::from),
            Kind::Bool => d.bool(name).map(Value::from),
            Kind::Ops => d.strings(name).map(|v| json!(v)),
        };
        let value = match (value, patch) {
            (Some(v), _) => v,
            (None, true) => continue,
            (None, false) => match k {
                Kind::Str => json!(""),
                Kind::Int => json!(0),
                Kind::Bool => json!(false),
                Kind::Ops => json!([]),
            },
        };
        merged.values.insert((*name).to_string(), value);
    }
    d.finish()?;
    let errors = if kind == "nfs" {
        validate_nfs(&merged.values)
    } else {
        validate_smb(&merged.values)
    };
    if !errors.is_empty() && !force {
        return Err(Reply::validation_failed(errors));
    }
    if dry_run {
        return Ok(Reply::ok(&settings_json(&merged)));
    }
    let mut stored = current;
    for Field(name, _, persisted) in fields {
        if *persisted {
            stored
                .values
                .insert((*name).to_string(), merged.values[*name].clone());
        }
    }
    stored.version += 1;
    if kind == "nfs" {
        ctx.st.nfs_settings = stored.clone();
    } else {
        ctx.st.smb_settings = stored.clone();
    }
    ctx.write();
    Ok(Reply::ok(&settings_json(&stored)))
}

fn int(v: &Map<String, Value>, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn range(errs: &mut Map<String, Value>, v: &Map<String, Value>, key: &str, min: i64, max: i64) {
    let x = int(v, key);
    if x < min || x > max {
        errs.insert(
            key.into(),
            format!("must be between {min} and {max}").into(),
        );
    }
}

fn first_unknown_op(v: &Map<String, Value>, valid: &[&str]) -> Option<String> {
    v.get("blocked_operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|op| !valid.contains(op))
        .map(str::to_string)
}

/// `validNFSOperations` (handlers/adapter_settings.go).
pub const NFS_OPERATIONS: &[&str] = &[
    "NULL",
    "GETATTR",
    "SETATTR",
    "LOOKUP",
    "ACCESS",
    "READLINK",
    "READ",
    "WRITE",
    "CREATE",
    "MKDIR",
    "SYMLINK",
    "MKNOD",
    "REMOVE",
    "RMDIR",
    "RENAME",
    "LINK",
    "READDIR",
    "READDIRPLUS",
    "FSSTAT",
    "FSINFO",
    "PATHCONF",
    "COMMIT",
    "OPEN",
    "CLOSE",
    "LOCK",
    "LOCKT",
    "LOCKU",
    "DELEGRETURN",
    "PUTFH",
    "PUTROOTFH",
    "GETFH",
    "SAVEFH",
    "RESTOREFH",
    "VERIFY",
    "NVERIFY",
    "SECINFO",
    "SETCLIENTID",
    "RENEW",
];

/// `validSMBOperations`.
pub const SMB_OPERATIONS: &[&str] = &[
    "NEGOTIATE",
    "SESSION_SETUP",
    "LOGOFF",
    "TREE_CONNECT",
    "TREE_DISCONNECT",
    "CREATE",
    "CLOSE",
    "FLUSH",
    "READ",
    "WRITE",
    "LOCK",
    "IOCTL",
    "CANCEL",
    "ECHO",
    "QUERY_DIRECTORY",
    "CHANGE_NOTIFY",
    "QUERY_INFO",
    "SET_INFO",
    "OPLOCK_BREAK",
];

/// `validateNFSSettings` with `DefaultNFSSettingsValidRange`.
fn validate_nfs(v: &Map<String, Value>) -> Map<String, Value> {
    let mut errs = Map::new();
    for key in ["min_version", "max_version"] {
        let s = v.get(key).and_then(Value::as_str).unwrap_or("");
        if !["3", "4.0", "4.1"].contains(&s) {
            errs.insert(key.into(), "must be one of: [3 4.0 4.1]".into());
        }
    }
    range(&mut errs, v, "lease_time", 10, 3600);
    range(&mut errs, v, "grace_period", 10, 3600);
    range(&mut errs, v, "delegation_recall_timeout", 10, 600);
    range(&mut errs, v, "callback_timeout", 1, 60);
    range(&mut errs, v, "lease_break_timeout", 5, 120);
    range(&mut errs, v, "max_connections", 0, 100000);
    range(&mut errs, v, "max_clients", 1, 1000000);
    range(&mut errs, v, "max_compound_ops", 4, 1000);
    range(&mut errs, v, "max_read_size", 4096, 16777216);
    range(&mut errs, v, "max_write_size", 4096, 16777216);
    range(&mut errs, v, "preferred_transfer_size", 4096, 16777216);
    range(&mut errs, v, "portmapper_port", 1, 65535);
    range(&mut errs, v, "max_delegations", 0, 1000000);
    range(&mut errs, v, "dir_deleg_batch_window_ms", 0, 5000);
    range(&mut errs, v, "v4_min_minor_version", 0, 2);
    range(&mut errs, v, "v4_max_minor_version", 0, 2);
    if int(v, "v4_min_minor_version") > int(v, "v4_max_minor_version") {
        errs.insert(
            "v4_min_minor_version".into(),
            "must be <= v4_max_minor_version".into(),
        );
    }
    range(&mut errs, v, "v4_max_connections_per_session", 0, 1024);
    if let Some(op) = first_unknown_op(v, NFS_OPERATIONS) {
        errs.insert(
            "blocked_operations".into(),
            format!("unknown NFS operation: {op}").into(),
        );
    }
    errs
}

/// `validateSMBSettings` with `DefaultSMBSettingsValidRange`.
fn validate_smb(v: &Map<String, Value>) -> Map<String, Value> {
    let mut errs = Map::new();
    let dialects = ["SMB2.0", "SMB2.1", "SMB3.0", "SMB3.0.2", "SMB3.1.1"];
    for key in ["min_dialect", "max_dialect"] {
        let s = v.get(key).and_then(Value::as_str).unwrap_or("");
        if !dialects.contains(&s) {
            errs.insert(
                key.into(),
                "must be one of: [SMB2.0 SMB2.1 SMB3.0 SMB3.0.2 SMB3.1.1]".into(),
            );
        }
    }
    let signing = v.get("signing").and_then(Value::as_str).unwrap_or("");
    if !signing.is_empty() && !["disabled", "enabled", "required"].contains(&signing) {
        errs.insert(
            "signing".into(),
            "must be empty (inherit) or one of: [disabled enabled required]".into(),
        );
    }
    range(&mut errs, v, "session_timeout", 60, 86400);
    range(&mut errs, v, "oplock_break_timeout", 5, 120);
    range(&mut errs, v, "max_connections", 0, 100000);
    range(&mut errs, v, "max_sessions", 1, 1000000);
    if let Some(op) = first_unknown_op(v, SMB_OPERATIONS) {
        errs.insert(
            "blocked_operations".into(),
            format!("unknown SMB operation: {op}").into(),
        );
    }
    errs
}
