//! The DittoFS v0.29 control-plane API as the operator speaks it: paths, request and
//! response bodies, JSON names exactly as the server's handlers declare them. Every
//! type cites the handler it mirrors (`internal/controlplane/api/handlers/` unless
//! said otherwise, at tag v0.29.0 of `marmos91/dittofs`). Fields the operator does
//! not read are not declared: unknown fields are ignored on decode.

use serde::{Deserialize, Serialize};

use super::Sensitive;

/// Where each call goes (`pkg/controlplane/api/router.go`, `NewRouter`).
pub mod path {
    pub const LOGIN: &str = "/api/v1/auth/login";
    pub const REFRESH: &str = "/api/v1/auth/refresh";
    pub const OWN_PASSWORD: &str = "/api/v1/users/me/password";
    pub const USERS: &str = "/api/v1/users";
    pub const ADAPTERS: &str = "/api/v1/adapters";
    pub const METADATA_STORES: &str = "/api/v1/store/metadata";
    pub const SHARES: &str = "/api/v1/shares";
    pub const SNAPSHOT_POLICIES: &str = "/api/v1/snapshot-policies";
    pub const IDENTITY_PROVIDERS: &str = "/api/v1/identity-providers";

    /// `/api/v1/identity-providers/{type}/config` (`ldap` or `kerberos`).
    pub fn identity_provider_config(kind: &str) -> String {
        format!("{IDENTITY_PROVIDERS}/{}/config", super::escape(kind))
    }

    /// `/api/v1/users/{username}`.
    pub fn user(username: &str) -> String {
        format!("{USERS}/{}", super::escape(username))
    }
    /// `/api/v1/users/{username}/password` (admin reset).
    pub fn user_password(username: &str) -> String {
        format!("{}/password", user(username))
    }
    /// `/api/v1/adapters/{type}`.
    pub fn adapter(kind: &str) -> String {
        format!("{ADAPTERS}/{}", super::escape(kind))
    }
    /// `/api/v1/adapters/{type}/settings`.
    pub fn adapter_settings(kind: &str) -> String {
        format!("{}/settings", adapter(kind))
    }
    /// `/api/v1/store/block/{kind}` (`local` or `remote`).
    pub fn block_stores(kind: &str) -> String {
        format!("/api/v1/store/block/{}", super::escape(kind))
    }
    /// `/api/v1/store/block/{kind}/{name}`.
    pub fn block_store(kind: &str, name: &str) -> String {
        format!("{}/{}", block_stores(kind), super::escape(name))
    }
    /// `/api/v1/shares/{name}`: the name without its leading `/`, escaped
    /// (`pkg/apiclient/shares.go`; the handler unescapes and normalises it).
    pub fn share(name: &str) -> String {
        format!("{SHARES}/{}", super::escape(name.trim_start_matches('/')))
    }
    /// `/api/v1/shares/{name}/snapshot-policy`, the share named as [`share`] does.
    pub fn snapshot_policy(share_name: &str) -> String {
        format!("{}/snapshot-policy", share(share_name))
    }
}

/// Percent-encode one path segment (everything but unreserved characters).
fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The roles DittoFS v0.29 knows (`pkg/controlplane/models/user.go`, `UserRole`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    User,
}

/// `POST /api/v1/auth/login` (`auth.go`, `LoginRequest`).
#[derive(Serialize)]
pub struct LoginRequest<'a> {
    pub username: &'a str,
    pub password: &'a Sensitive,
}

/// `POST /api/v1/auth/refresh`: the refresh token travels in the body
/// (`auth.go`, `RefreshRequest`).
#[derive(Serialize)]
pub struct RefreshRequest<'a> {
    pub refresh_token: &'a Sensitive,
}

/// The answer of login, refresh and a password change (`auth.go`, `LoginResponse`).
#[derive(Deserialize, Debug)]
pub struct LoginResponse {
    pub access_token: Sensitive,
    pub refresh_token: Sensitive,
    /// Lifetime of the access token, in seconds. Nothing tells the refresh token's.
    pub expires_in: i64,
    pub user: UserResponse,
}

/// `auth.go`, `UserResponse` (the fields the operator reads).
#[derive(Deserialize, Debug)]
pub struct UserResponse {
    pub username: String,
    pub role: Role,
    #[serde(default)]
    pub must_change_password: bool,
}

/// `POST /api/v1/users/me/password` (`users.go`, `ChangePasswordRequest`): the
/// current password is not asked while `must_change_password` is set.
#[derive(Serialize)]
pub struct ChangePasswordRequest<'a> {
    pub new_password: &'a Sensitive,
}

/// `POST /api/v1/users` (`users.go`, `CreateUserRequest`). An admin-role user made
/// by an admin starts with `must_change_password` (`users.go`, `Create`).
#[derive(Serialize)]
pub struct CreateUserRequest<'a> {
    pub username: &'a str,
    pub password: &'a Sensitive,
    pub role: Role,
    pub display_name: &'a str,
    pub enabled: bool,
}

/// `PUT /api/v1/users/{username}` (`users.go`, `UpdateUserRequest`, partial).
#[derive(Serialize)]
pub struct UpdateUserRequest {
    pub role: Role,
    pub enabled: bool,
}

/// `POST /api/v1/users/{username}/password` (`users.go`, `ResetPassword`).
#[derive(Serialize)]
pub struct ResetPasswordRequest<'a> {
    pub new_password: &'a Sensitive,
}

/// An adapter as `GET /api/v1/adapters` lists it (`adapters.go`, `AdapterResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Adapter {
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    /// "An entry exists in the adapter service": stays true when the listener
    /// failed to bind (`runtime/adapters/service.go`); `status` is the signal.
    pub running: bool,
    pub port: i32,
    #[serde(default)]
    pub status: HealthReport,
}

/// `pkg/health/types.go`, `Report` (without its clock).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HealthReport {
    /// `healthy`, `degraded`, `unhealthy`, `unknown` or `disabled`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
}

/// `PUT /api/v1/adapters/{type}` (`adapters.go`, `UpdateAdapterRequest`): partial;
/// a port or `enabled` change restarts the adapter inside the running server.
#[derive(Clone, Serialize, Debug, PartialEq, Eq)]
pub struct UpdateAdapterRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// The NFS adapter settings the operator reads (`adapter_settings.go`,
/// `NFSSettingsResponse`). The portmapper settings take effect when the adapter
/// (re)starts (`pkg/adapter/nfs/settings.go`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NfsSettings {
    pub portmapper_enabled: bool,
    pub portmapper_port: i32,
}

/// `PATCH /api/v1/adapters/nfs/settings` (`adapter_settings.go`,
/// `PatchNFSSettingsRequest`, partial).
#[derive(Serialize)]
pub struct PatchNfsSettingsRequest {
    pub portmapper_enabled: bool,
}

/// A metadata or block store as listed (`metadata_stores.go`,
/// `MetadataStoreResponse`; `block_stores.go`, `BlockStoreResponse`). `config`
/// comes back as a JSON object, secrets redacted (`helpers.go`, `redactSecretJSON`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Store {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: serde_json::Value,
}

/// `POST /api/v1/store/metadata` and `POST /api/v1/store/block/{kind}`
/// (`CreateMetadataStoreRequest`, `CreateBlockStoreRequest`): `config` is a JSON
/// object serialised into a string, as `pkg/apiclient/stores.go` sends it.
#[derive(Serialize)]
pub struct CreateStoreRequest<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub config: String,
}

/// `PUT /api/v1/store/block/{kind}/{name}` (`UpdateBlockStoreRequest`): the new
/// config, re-validated by the server; persisted only (`block_stores.go`, `Update`).
#[derive(Serialize)]
pub struct UpdateStoreRequest {
    pub config: String,
}

/// A share as listed (`shares.go`, `ShareResponse`): stores by id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Share {
    pub id: String,
    /// Always with one leading `/` (`shares.go`, `normalizeShareName`).
    pub name: String,
    pub metadata_store_id: String,
    pub local_block_store_id: String,
    #[serde(default)]
    pub remote_block_store_id: Option<String>,
    pub read_only: bool,
    pub enabled: bool,
    pub default_permission: String,
}

/// `POST /api/v1/shares` (`shares.go`, `CreateShareRequest`): stores by name or id,
/// under other field names than the update's.
#[derive(Serialize, Debug)]
pub struct CreateShareRequest<'a> {
    pub name: &'a str,
    pub metadata_store_id: &'a str,
    pub local_block_store: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_block_store: Option<&'a str>,
    pub read_only: bool,
    pub default_permission: &'a str,
}

/// `PUT /api/v1/shares/{name}` (`shares.go`, `UpdateShareRequest`, partial): the
/// two fields the operator changes in place, both applied live.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct UpdateShareRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_permission: Option<String>,
}

/// A snapshot policy as listed (`pkg/controlplane/api/dto/snapshot_policy.go`,
/// `SnapshotPolicy`): durations in Go's `Duration.String()` form (`24h0m0s`), the
/// TTL and the prefix left out when zero or empty.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SnapshotPolicy {
    /// With one leading `/` (`normalizeShareName`).
    pub share: String,
    pub enabled: bool,
    pub interval: String,
    pub keep_last: i64,
    #[serde(default)]
    pub ttl: String,
    #[serde(default)]
    pub name_prefix: String,
}

/// `PUT /api/v1/shares/{name}/snapshot-policy` (`dto/snapshot_policy.go`,
/// `UpsertSnapshotPolicyRequest`): the whole policy; `enabled` defaults to true
/// server-side when left out, so it is always sent.
#[derive(Clone, Serialize, Debug, PartialEq, Eq)]
pub struct UpsertSnapshotPolicyRequest {
    pub interval: String,
    pub keep_last: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ttl: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_prefix: String,
}

/// An error answer of a handler (`problem.go`, `Problem`); the middleware and
/// unknown routes answer in plain text instead.
#[derive(Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_their_segments() {
        assert_eq!(path::share("/export"), "/api/v1/shares/export");
        assert_eq!(path::share("/a/b c"), "/api/v1/shares/a%2Fb%20c");
        assert_eq!(
            path::snapshot_policy("/team/a"),
            "/api/v1/shares/team%2Fa/snapshot-policy"
        );
        assert_eq!(
            path::block_store("remote", "s3"),
            "/api/v1/store/block/remote/s3"
        );
        assert_eq!(
            path::user_password("dittofs-operator"),
            "/api/v1/users/dittofs-operator/password"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let login: LoginResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a.b.c", "refresh_token": "d.e.f", "token_type": "Bearer",
            "expires_in": 900, "expires_at": "2026-01-01T00:00:00Z",
            "user": {"username": "u", "role": "admin", "enabled": true,
                     "must_change_password": true, "id": "x", "created_at": "2026-01-01T00:00:00Z"}
        }))
        .expect("login response");
        let shown = format!("{login:?}");
        assert!(
            !shown.contains("a.b.c") && !shown.contains("d.e.f"),
            "{shown}"
        );
        assert!(login.user.must_change_password);
    }
}

/// What `GET /api/v1/identity-providers/{type}/config` answers in place of a
/// stored secret (`redactedSecret`, `handlers/helpers.go`); a PUT carrying it, or
/// an empty one, keeps the stored secret (`identity_providers.go`).
pub const REDACTED_SECRET: &str = "********";

/// `ldapConfigDTO` (`identity_providers.go`): what GET answers (defaults applied,
/// the bind password redacted) and PUT takes (the whole row).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapConfig {
    pub enabled: bool,
    pub url: String,
    pub start_tls: bool,
    pub allow_plaintext: bool,
    pub base_dn: String,
    pub bind_dn: String,
    #[serde(skip_serializing_if = "Sensitive::is_empty")]
    pub bind_password: Sensitive,
    pub user_attr: String,
    pub realm: String,
    pub idmap: String,
    pub nested_groups: bool,
    /// A Go duration; empty: the server's default.
    pub timeout: String,
    pub max_group_results: i64,
    pub tls: LdapTls,
}

/// `ldapTLSDTO` (`identity_providers.go`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapTls {
    pub ca_cert_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub insecure_skip_verify: bool,
    pub min_version: String,
}

/// `KerberosConfigDTO` (`identity_providers.go`): stored as sent, no defaults
/// applied; the machine account's secret redacted on GET.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KerberosConfig {
    pub enabled: bool,
    pub keytab_path: String,
    pub service_principal: String,
    pub realm: String,
    pub netbios_domain: String,
    pub dns_domain: String,
    pub krb5_conf: String,
    /// Go durations; empty: the server's defaults at start (`kerberosDTOToConfig`,
    /// `cmd/dfs/commands/start.go`).
    pub max_clock_skew: String,
    pub context_ttl: String,
    pub max_contexts: i64,
    pub machine_account: KerberosMachineAccount,
}

/// `KerberosMachineAccountDTO` (`identity_providers.go`): every field omitted
/// when empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KerberosMachineAccount {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub keytab_path: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dc_address: Vec<String>,
    #[serde(skip_serializing_if = "Sensitive::is_empty")]
    pub secret: Sensitive,
}
