//! `handlers/health.go` with the `handlers/response.go` envelope
//! `{status, timestamp, data?, error?}`. Public, no token.

use std::time::SystemTime;

use serde_json::json;

use super::model::Ctx;
use super::util::{go_duration_secs, rfc3339_nano, rfc3339_secs};
use super::wire::{HResult, Reply};

/// GET /health — `HealthHandler.Liveness`: always 200; the control-plane DB
/// of the fake is always reachable.
pub fn liveness(ctx: &mut Ctx<'_>) -> HResult {
    let uptime = ctx.st.started_instant.elapsed();
    // uptime.Round(time.Second).String() and int64(uptime.Seconds()).
    let rounded = (uptime.as_millis() as i64 + 500) / 1000;
    Ok(Reply::ok(&json!({
        "status": "healthy",
        "timestamp": rfc3339_nano(SystemTime::now()),
        "data": {
            "service": "dittofs",
            "started_at": rfc3339_secs(ctx.st.started_at),
            "uptime": go_duration_secs(rounded),
            "uptime_sec": uptime.as_secs(),
            "control_plane_db": "reachable",
        },
    })))
}

/// GET /health/ready — `HealthHandler.Readiness`: always 200 once the
/// runtime exists; counts loaded shares and metadata stores and running
/// adapters (a running adapter that failed to bind still counts).
pub fn readiness(ctx: &mut Ctx<'_>) -> HResult {
    let types: Vec<&str> = ctx.st.running.iter().map(|(k, _)| k.as_str()).collect();
    let mut data = json!({
        "shares": ctx.st.loaded_shares.len(),
        "metadata_stores": ctx.st.loaded_metadata_stores.len(),
        "adapters": {"running": types.len(), "types": types},
    });
    if ctx.st.nfs_state_manager {
        // No NFSv4 clients to reclaim on a fresh fake: no grace period.
        data["grace_period"] = json!({
            "active": false,
            "remaining_seconds": 0,
            "expected_clients": 0,
            "reclaimed_clients": 0,
        });
    }
    Ok(Reply::ok(&json!({
        "status": "healthy",
        "timestamp": rfc3339_nano(SystemTime::now()),
        "data": data,
    })))
}
