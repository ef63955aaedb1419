//! `handlers/auth.go` (login, refresh, me) and `handlers/users.go` (user
//! CRUD, admin reset, own password change), over `store/users.go`.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::model::{Ctx, TokenType, UserRecord};
use super::util::{new_uuid, rfc3339_nano, whole_secs};
use super::wire::{Body, HResult, Reply};

const INVALID_ROLE: &str = "Invalid role. Must be 'user', 'admin', or 'operator'";

/// `userToResponse` (auth.go): omitempty on display_name, email, uid, gid,
/// groups (an empty list is omitted) and last_login.
pub fn user_json(u: &UserRecord) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), u.id.clone().into());
    m.insert("username".into(), u.username.clone().into());
    if !u.display_name.is_empty() {
        m.insert("display_name".into(), u.display_name.clone().into());
    }
    if !u.email.is_empty() {
        m.insert("email".into(), u.email.clone().into());
    }
    m.insert("role".into(), u.role.clone().into());
    if let Some(uid) = u.uid {
        m.insert("uid".into(), uid.into());
    }
    if let Some(gid) = u.gid {
        m.insert("gid".into(), gid.into());
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    m.insert("enabled".into(), u.enabled.into());
    m.insert("must_change_password".into(), u.must_change_password.into());
    m.insert("created_at".into(), rfc3339_nano(u.created_at).into());
    if let Some(t) = u.last_login {
        m.insert("last_login".into(), rfc3339_nano(t).into());
    }
    Value::Object(m)
}

/// `LoginResponse` from a fresh `GenerateTokenPair`: `expires_in` is the
/// access lifetime in whole seconds, `expires_at` the exact access expiry
/// (the token itself expires at that instant truncated to the second).
fn login_response(ctx: &mut Ctx<'_>, user: &UserRecord) -> Value {
    let (access, refresh, access_exp) = ctx.st.issue_tokens(user);
    json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": whole_secs(ctx.st.access_ttl),
        "expires_at": rfc3339_nano(access_exp),
        "user": user_json(user),
    })
}

/// `models.ValidatePassword` inside `HashPasswordWithNT`; the handlers turn
/// its error into 500 `Failed to hash password`.
fn hash_password(password: &str) -> Result<(), Reply> {
    if (8..=72).contains(&password.len()) {
        Ok(())
    } else {
        Err(Reply::internal("Failed to hash password"))
    }
}

fn valid_role(role: &str) -> bool {
    matches!(role, "user" | "admin" | "operator")
}

/// POST /api/v1/auth/login — `AuthHandler.Login`.
pub fn login(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let username = d.string("username").unwrap_or_default();
    let password = d.string("password").unwrap_or_default();
    d.finish()?;
    if username.is_empty() || password.is_empty() {
        return Err(Reply::bad_request("Username and password are required"));
    }
    // store/users.go ValidateCredentials: GetUser (name or id), then the
    // enabled check, then bcrypt — a disabled account is 403 even with a
    // wrong password.
    let Some(i) = ctx.st.user_index(&username) else {
        return Err(Reply::unauthorized("Invalid username or password"));
    };
    if !ctx.st.users[i].enabled {
        return Err(Reply::forbidden("User account is disabled"));
    }
    if ctx.st.users[i].password != password {
        return Err(Reply::unauthorized("Invalid username or password"));
    }
    // UpdateLastLogin is a database write on every login (refresh has
    // none); the response carries the new last_login.
    ctx.st.users[i].last_login = Some(SystemTime::now());
    ctx.write();
    let user = ctx.st.users[i].clone();
    let resp = login_response(ctx, &user);
    Ok(Reply::ok(&resp))
}

/// POST /api/v1/auth/refresh — `AuthHandler.Refresh`. The refresh token is
/// in the JSON body; the user is re-read (role, groups, must_change fresh);
/// nothing is written (no last_login update) and the old token stays valid.
pub fn refresh(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let token = d.string("refresh_token").unwrap_or_default();
    d.finish()?;
    if token.is_empty() {
        return Err(Reply::bad_request("Refresh token is required"));
    }
    // ValidateRefreshToken: expiry is checked before the token type, so an
    // expired access token is "has expired" and a live one "Invalid".
    let claims = match ctx.st.validate_token(&token) {
        Err(true) => return Err(Reply::unauthorized("Refresh token has expired")),
        Err(false) => return Err(Reply::unauthorized("Invalid refresh token")),
        Ok(c) if c.token_type != TokenType::Refresh => {
            return Err(Reply::unauthorized("Invalid refresh token"));
        }
        Ok(c) => c,
    };
    let Some(i) = ctx.st.user_index(&claims.username) else {
        return Err(Reply::unauthorized("User not found"));
    };
    let user = ctx.st.users[i].clone();
    if !user.enabled {
        return Err(Reply::forbidden("User account is disabled"));
    }
    let resp = login_response(ctx, &user);
    Ok(Reply::ok(&resp))
}

/// GET /api/v1/auth/me — `AuthHandler.Me` (JWTAuth only: works for a
/// must-change-password token).
pub fn me(ctx: &mut Ctx<'_>) -> HResult {
    let claims = ctx.claims.clone().expect("JWTAuth ran");
    let Some(i) = ctx.st.user_index(&claims.username) else {
        return Err(Reply::unauthorized("User not found"));
    };
    Ok(Reply::ok(&user_json(&ctx.st.users[i])))
}

/// POST /api/v1/users/me/password — `UserHandler.ChangeOwnPassword`.
pub fn change_own_password(ctx: &mut Ctx<'_>) -> HResult {
    let claims = ctx.claims.clone().expect("JWTAuth ran");
    let mut d = Body::decode(ctx.body)?;
    let current = d.string("current_password").unwrap_or_default();
    let new = d.string("new_password").unwrap_or_default();
    d.finish()?;
    if new.is_empty() {
        return Err(Reply::bad_request("New password is required"));
    }
    let Some(i) = ctx.st.user_index(&claims.username) else {
        return Err(Reply::unauthorized("User not found"));
    };
    // The current password is optional only while must_change_password.
    if !ctx.st.users[i].must_change_password {
        if current.is_empty() {
            return Err(Reply::bad_request("Current password is required"));
        }
        if ctx.st.users[i].password != current {
            return Err(Reply::unauthorized("Current password is incorrect"));
        }
    }
    hash_password(&new)?;
    // UpdatePasswordAndFlags(claims.Username, ..., false): one transaction.
    let mut user = ctx.st.users[i].clone();
    ctx.st.users[i].password = new;
    ctx.st.users[i].must_change_password = false;
    ctx.write();
    user.must_change_password = false;
    let resp = login_response(ctx, &user);
    Ok(Reply::ok(&resp))
}

/// POST /api/v1/users — `UserHandler.Create`.
pub fn user_create(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let username = d.string("username").unwrap_or_default();
    let password = d.string("password").unwrap_or_default();
    let email = d.string("email").unwrap_or_default();
    let display_name = d.string("display_name").unwrap_or_default();
    let role = d.string("role").unwrap_or_default();
    let uid = d.uint32("uid");
    let gid = d.uint32("gid");
    let groups = d.strings("groups").unwrap_or_default();
    let _enabled = d.bool("enabled");
    let _share_permissions = d.string_map("share_permissions");
    d.finish()?;
    if username.is_empty() {
        return Err(Reply::bad_request("Username is required"));
    }
    if password.is_empty() {
        return Err(Reply::bad_request("Password is required"));
    }
    // The password is hashed (and length-checked) before the role check.
    hash_password(&password)?;
    let role = if role.is_empty() {
        "user".to_string()
    } else if valid_role(&role) {
        role
    } else {
        return Err(Reply::bad_request(INVALID_ROLE));
    };
    // store/users.go CreateUserWithGroups: missing groups are refused
    // before the insert.
    let unique = dedup(&groups);
    if unique
        .iter()
        .any(|g| !ctx.st.groups.iter().any(|x| &x.name == g))
    {
        return Err(Reply::bad_request(
            "One or more specified groups do not exist",
        ));
    }
    // Unique indexes: username and uid; either maps to ErrDuplicateUser.
    if ctx.st.users.iter().any(|u| u.username == username)
        || uid.is_some_and(|uid| ctx.st.users.iter().any(|u| u.uid == Some(uid)))
    {
        return Err(Reply::conflict("User already exists"));
    }
    let user = UserRecord {
        id: new_uuid(),
        username,
        password,
        // `Enabled bool gorm:"default:true"`: GORM substitutes the column
        // default for a Go zero value on INSERT (and writes it back into
        // the struct), so "enabled": false still creates an enabled user —
        // the same coercion store/shares.go works around for #514.
        enabled: true,
        must_change_password: role == "admin",
        role,
        uid,
        gid,
        display_name,
        email,
        created_at: SystemTime::now(),
        last_login: None,
        groups: in_table_order(ctx, unique),
    };
    ctx.st.users.push(user.clone());
    ctx.write();
    // share_permissions: best-effort grants; the fake models no permission
    // endpoints, so they are not kept.
    Ok(Reply::created(&user_json(&user)))
}

/// GET /api/v1/users — `UserHandler.List`.
pub fn user_list(ctx: &mut Ctx<'_>) -> HResult {
    let list: Vec<Value> = ctx.st.users.iter().map(user_json).collect();
    Ok(Reply::ok(&Value::Array(list)))
}

/// GET /api/v1/users/{username} — `UserHandler.Get`: admin or self (by the
/// literal URL segment), then GetUser by name or id.
pub fn user_get(ctx: &mut Ctx<'_>) -> HResult {
    let claims = ctx.claims.clone().expect("JWTAuth ran");
    let username = ctx.param(0).to_string();
    if claims.role != "admin" && claims.username != username {
        return Err(Reply::forbidden("Access denied"));
    }
    let Some(i) = ctx.st.user_index(&username) else {
        return Err(Reply::not_found("User not found"));
    };
    Ok(Reply::ok(&user_json(&ctx.st.users[i])))
}

/// PUT /api/v1/users/{username} — `UserHandler.Update`.
pub fn user_update(ctx: &mut Ctx<'_>) -> HResult {
    let token = ctx.param(0).to_string();
    let mut d = Body::decode(ctx.body)?;
    let email = d.string("email");
    let display_name = d.string("display_name");
    let role = d.string("role");
    let uid = d.uint32("uid");
    let gid = d.uint32("gid");
    let groups = d.strings("groups");
    let enabled = d.bool("enabled");
    let _share_permissions = d.string_map("share_permissions");
    d.finish()?;
    let Some(i) = ctx.st.user_index(&token) else {
        return Err(Reply::not_found("User not found"));
    };
    let mut user = ctx.st.users[i].clone();
    if let Some(v) = email {
        user.email = v;
    }
    if let Some(v) = display_name {
        user.display_name = v;
    }
    if let Some(v) = role {
        if !valid_role(&v) {
            return Err(Reply::bad_request(INVALID_ROLE));
        }
        user.role = v;
    }
    if let Some(v) = enabled {
        user.enabled = v;
    }
    if uid.is_some() {
        user.uid = uid;
    }
    if gid.is_some() {
        user.gid = gid;
    }
    // UpdateUser: a uid unique-index violation is a plain error → 500.
    if user.uid.is_some()
        && ctx
            .st
            .users
            .iter()
            .any(|u| u.id != user.id && u.uid == user.uid)
    {
        return Err(Reply::internal("Failed to update user"));
    }
    ctx.st.users[i] = user;
    ctx.write();
    if let Some(groups) = groups {
        // ReplaceUserGroups looks the user up by `username = ?` only, with
        // the raw URL segment: addressed by id, it fails (after UpdateUser
        // has already been written).
        let Some(j) = ctx.st.users.iter().position(|u| u.username == token) else {
            return Err(Reply::internal("Failed to update user groups"));
        };
        let unique = dedup(&groups);
        if unique
            .iter()
            .any(|g| !ctx.st.groups.iter().any(|x| &x.name == g))
        {
            return Err(Reply::bad_request(
                "One or more specified groups do not exist",
            ));
        }
        ctx.st.users[j].groups = in_table_order(ctx, unique);
    }
    let Some(i) = ctx.st.user_index(&token) else {
        return Err(Reply::internal("Failed to reload user"));
    };
    Ok(Reply::ok(&user_json(&ctx.st.users[i])))
}

/// DELETE /api/v1/users/{username} — `UserHandler.Remove`. Issued tokens stay
/// valid until they expire (stateless JWTs).
pub fn user_delete(ctx: &mut Ctx<'_>) -> HResult {
    let token = ctx.param(0).to_string();
    let Some(i) = ctx.st.user_index(&token) else {
        return Err(Reply::not_found("User not found"));
    };
    // store/users.go DeleteUser resolves first, so the admin guard holds
    // when the admin is addressed by id too.
    if ctx.st.users[i].username == "admin" {
        return Err(Reply::forbidden("Cannot delete admin user"));
    }
    ctx.st.users.remove(i);
    ctx.write();
    Ok(Reply::no_content())
}

/// POST /api/v1/users/{username}/password — `UserHandler.ResetPassword`:
/// 204; an admin-role target must change the password again.
pub fn user_reset_password(ctx: &mut Ctx<'_>) -> HResult {
    let token = ctx.param(0).to_string();
    let mut d = Body::decode(ctx.body)?;
    let _current = d.string("current_password");
    let new = d.string("new_password").unwrap_or_default();
    d.finish()?;
    if new.is_empty() {
        return Err(Reply::bad_request("New password is required"));
    }
    let Some(i) = ctx.st.user_index(&token) else {
        return Err(Reply::not_found("User not found"));
    };
    hash_password(&new)?;
    let must_change = ctx.st.users[i].role == "admin";
    // UpdatePasswordAndFlags(username, ...) matches `username = ?` with the
    // raw URL segment: addressed by id, no row matches → 500.
    let Some(j) = ctx.st.users.iter().position(|u| u.username == token) else {
        return Err(Reply::internal("Failed to update password"));
    };
    ctx.st.users[j].password = new;
    ctx.st.users[j].must_change_password = must_change;
    ctx.write();
    Ok(Reply::no_content())
}

/// Group names as `WHERE name IN ?` returns them: table order.
fn in_table_order(ctx: &Ctx<'_>, names: Vec<String>) -> Vec<String> {
    ctx.st
        .groups
        .iter()
        .filter(|g| names.contains(&g.name))
        .map(|g| g.name.clone())
        .collect()
}

/// store/helpers.go `dedup`: order-preserving.
fn dedup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}
