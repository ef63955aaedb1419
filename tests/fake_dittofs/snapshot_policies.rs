//! `handlers/snapshot_policy.go` (upsert, get, delete, list) over
//! `runtime/snapshot_policy.go`, `store/snapshot_policies.go`,
//! `models/snapshot_policy.go`, `pkg/schedule/interval.go` and
//! `dto/snapshot_policy.go`. `POST .../snapshot-policy/run` is not modelled.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::model::{Ctx, SnapshotPolicyRecord};
use super::shares::normalize_share_name;
use super::util::{go_duration_string, go_parse_duration, go_quote, rfc3339_nano};
use super::wire::{Body, HResult, Reply};

/// `schedule.ParseInterval`: trimmed; the three shorthands in any case; any
/// other `@…` refused; else a Go duration above zero. Nanoseconds.
fn parse_interval(s: &str) -> Result<i64, String> {
    const HOUR: i64 = 3_600_000_000_000;
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("schedule: empty interval".into());
    }
    match trimmed.to_lowercase().as_str() {
        "@hourly" => return Ok(HOUR),
        "@daily" => return Ok(24 * HOUR),
        "@weekly" => return Ok(7 * 24 * HOUR),
        _ => {}
    }
    if trimmed.starts_with('@') {
        return Err(format!(
            "schedule: unknown shorthand {} (want @hourly, @daily, @weekly)",
            go_quote(trimmed)
        ));
    }
    let d = go_parse_duration(trimmed)
        .map_err(|e| format!("schedule: invalid interval {}: {e}", go_quote(s)))?;
    if d <= 0 {
        return Err(format!(
            "schedule: interval must be positive, got {}",
            go_quote(s)
        ));
    }
    Ok(d as i64)
}

/// `parseOptionalDuration`: `""` or `"0"` is none; untrimmed; negative refused.
fn parse_optional_duration(s: &str) -> Result<i64, String> {
    if s.is_empty() || s == "0" {
        return Ok(0);
    }
    let d = go_parse_duration(s)?;
    if d < 0 {
        return Err("must be >= 0".into());
    }
    Ok(d as i64)
}

/// `snapshotNamePrefixRe`: `^[A-Za-z0-9_-]{0,64}$`.
fn valid_prefix(p: &str) -> bool {
    p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `policyToWire`: durations as `Duration.String()`, the TTL only when above
/// zero, the prefix only when set (`omitempty`), no `last_run_at` (the fake's
/// scheduler never runs).
pub fn policy_json(p: &SnapshotPolicyRecord) -> Value {
    let mut o = Map::new();
    o.insert("share".into(), p.share_name.clone().into());
    o.insert("enabled".into(), p.enabled.into());
    o.insert("interval".into(), go_duration_string(p.interval_ns).into());
    o.insert("keep_last".into(), p.keep_last.into());
    if p.ttl_ns > 0 {
        o.insert("ttl".into(), go_duration_string(p.ttl_ns).into());
    }
    if !p.name_prefix.is_empty() {
        o.insert("name_prefix".into(), p.name_prefix.clone().into());
    }
    o.insert("created_at".into(), rfc3339_nano(p.created_at).into());
    o.insert("updated_at".into(), rfc3339_nano(p.updated_at).into());
    Value::Object(o)
}

/// `resolveShare`: the normalised `{name}`; `/` alone is no name.
fn share_param(ctx: &Ctx<'_>) -> Result<String, Reply> {
    let name = normalize_share_name(ctx.param(0));
    if name == "/" {
        return Err(Reply::bad_request("share name is required"));
    }
    Ok(name)
}

/// `decodeBody` (`handlers/snapshot.go`): an empty body is no error; a bad one
/// is 400 `invalid request body: <decoder error>` (the fake's text after the
/// colon is not Go's).
fn decode(ctx: &Ctx<'_>) -> Result<(String, i64, String, Option<bool>, String), Reply> {
    let relabel = |r: Reply| {
        if r.status == 400 {
            Reply::bad_request("invalid request body: json: cannot decode the request")
        } else {
            r
        }
    };
    if ctx
        .body
        .as_ref()
        .is_some_and(|b| b.iter().all(u8::is_ascii_whitespace))
    {
        return Ok((String::new(), 0, String::new(), None, String::new()));
    }
    let mut d = Body::decode(ctx.body).map_err(relabel)?;
    let interval = d.string("interval").unwrap_or_default();
    let keep_last = d.int("keep_last").unwrap_or(0);
    let ttl = d.string("ttl").unwrap_or_default();
    let enabled = d.bool("enabled");
    let name_prefix = d.string("name_prefix").unwrap_or_default();
    d.finish().map_err(relabel)?;
    Ok((interval, keep_last, ttl, enabled, name_prefix))
}

/// PUT /api/v1/shares/{name}/snapshot-policy — `Upsert`: the body is checked
/// before the share (a 400 wins over the 404); `enabled` defaults to true; an
/// update keeps `created_at` (`ON CONFLICT (share_name)`); always a write.
pub fn upsert(ctx: &mut Ctx<'_>) -> HResult {
    let name = share_param(ctx)?;
    let (interval, keep_last, ttl, enabled, name_prefix) = decode(ctx)?;
    let interval_ns = parse_interval(&interval)
        .map_err(|e| Reply::bad_request(&format!("invalid interval: {e}")))?;
    let ttl_ns = parse_optional_duration(&ttl)
        .map_err(|e| Reply::bad_request(&format!("invalid ttl: {e}")))?;
    if keep_last < 0 {
        return Err(Reply::bad_request("keep_last must be >= 0"));
    }
    if !name_prefix.is_empty() && !valid_prefix(&name_prefix) {
        return Err(Reply::bad_request(
            "invalid name_prefix: must match ^[A-Za-z0-9_-]{0,64}$",
        ));
    }
    // runtime.UpsertSnapshotPolicy: GetShare by name first;
    // ErrShareNotFound is mapped by mapSnapshotError (handlers/snapshot.go).
    if !ctx.st.shares.iter().any(|s| s.name == name) {
        return Err(Reply::not_found("share not found"));
    }
    let now = SystemTime::now();
    let record = SnapshotPolicyRecord {
        share_name: name.clone(),
        enabled: enabled.unwrap_or(true),
        interval_ns,
        keep_last,
        ttl_ns,
        name_prefix,
        created_at: now,
        updated_at: now,
    };
    let policies = &mut ctx.st.snapshot_policies;
    let saved = match policies.iter_mut().find(|p| p.share_name == name) {
        Some(p) => {
            *p = SnapshotPolicyRecord {
                created_at: p.created_at,
                ..record
            };
            p.clone()
        }
        None => {
            policies.push(record.clone());
            record
        }
    };
    ctx.write();
    Ok(Reply::ok(&policy_json(&saved)))
}

/// GET /api/v1/shares/{name}/snapshot-policy — `Get`.
pub fn get(ctx: &mut Ctx<'_>) -> HResult {
    let name = share_param(ctx)?;
    let p = ctx
        .st
        .snapshot_policies
        .iter()
        .find(|p| p.share_name == name)
        .ok_or_else(|| Reply::not_found("snapshot policy not found"))?;
    Ok(Reply::ok(&policy_json(p)))
}

/// DELETE /api/v1/shares/{name}/snapshot-policy — `Remove`: 204; no row is
/// `ErrSnapshotPolicyNotFound`, 404 (`store/snapshot_policies.go`).
pub fn delete(ctx: &mut Ctx<'_>) -> HResult {
    let name = share_param(ctx)?;
    let before = ctx.st.snapshot_policies.len();
    ctx.st.snapshot_policies.retain(|p| p.share_name != name);
    if ctx.st.snapshot_policies.len() == before {
        return Err(Reply::not_found("snapshot policy not found"));
    }
    ctx.write();
    Ok(Reply::no_content())
}

/// GET /api/v1/snapshot-policies — `List`: ordered by share name, `[]` when
/// none (`store/snapshot_policies.go`, `ListSnapshotPolicies`).
pub fn list(ctx: &mut Ctx<'_>) -> HResult {
    let mut policies: Vec<&SnapshotPolicyRecord> = ctx.st.snapshot_policies.iter().collect();
    policies.sort_by(|a, b| a.share_name.cmp(&b.share_name));
    Ok(Reply::ok(&Value::Array(
        policies.into_iter().map(policy_json).collect(),
    )))
}
