//! The operator's own DittoFS account, and a session with it.
//!
//! The operator does not use the administrator's password beyond provisioning: it
//! creates its own user, keeps that user's password in a Secret it owns, and holds
//! a session: an access token in memory, renewed with the refresh token (a refresh
//! writes nothing in DittoFS; a login updates the user's `last_login`, so it is the
//! last resort). The steps, cheapest first:
//!
//! 1. the access token in memory, while it has more than [`RENEW_MARGIN`] left;
//! 2. a refresh, with the refresh token in memory or the one kept in the Secret;
//! 3. a login with the account's password (not when that password was generated
//!    in this pass);
//! 4. provisioning, with the administrator's password: create the account (or,
//!    when it exists and its password is not ours any more or its role was
//!    changed, reset it and give it its role back), then log in.
//!
//! A session whose token the server refuses (401: the pod restarted with another
//! signing key; 403: the account lost its role) is dropped by the caller, which
//! asks again without it (`controller/server.rs`).
//!
//! A user created (or reset) by an admin with role `admin` must change its password
//! before anything else (`users.go`, `Create` and `ResetPassword`); the account
//! sets the same password again, which clears the flag and returns fresh tokens.

use std::time::{Duration, Instant};

use super::api::{CreateUserRequest, LoginResponse, Role, UpdateUserRequest};
use super::{CallError, Sensitive, Server};

/// The name of the operator's DittoFS user.
pub const USERNAME: &str = "dittofs-operator";
/// Its role. DittoFS v0.29 has `admin`, `operator` and `user`; `operator` may only
/// list adapters (`pkg/controlplane/api/router.go`), while every change the
/// operator makes — adapters, their settings, stores, shares — is admin-only. So
/// the least role that can do what a DittoServer declares is `admin`.
pub const ROLE: Role = Role::Admin;
/// An access token is renewed when less than this is left.
pub const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// What the session is made from.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The administrator (`admin` in v0.29) and its password, as the pod's
    /// `DITTOFS_ADMIN_INITIAL_PASSWORD` gives it; `None` when that Secret cannot be
    /// read.
    pub admin_username: &'a str,
    pub admin_password: Option<&'a Sensitive>,
    /// The account's password, as kept in its Secret.
    pub password: &'a Sensitive,
    /// That password was generated in this pass (its Secret did not exist): no
    /// DittoFS account can have it yet, so a login with it is skipped, not sent to
    /// fail (a failed login is what a server's security monitoring counts).
    pub password_is_new: bool,
    /// The refresh token kept in the Secret, if any.
    pub stored_refresh: Option<&'a Sensitive>,
}

/// A session with the account.
#[derive(Clone, Debug)]
pub struct Session {
    pub access: Sensitive,
    pub access_expires: Instant,
    pub refresh: Sensitive,
}

/// How the session was obtained (the more work, the further down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obtained {
    /// The access token in memory was still good: no request.
    Kept,
    /// Renewed with a refresh token.
    Refreshed,
    /// Logged in with the account's password.
    LoggedIn,
    /// The account was created, or its password reset, with the admin's.
    Provisioned,
}

/// Why no session could be had.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The administrator's password does not log in any more (changed with dfsctl,
    /// or the Secret was regenerated for an existing database).
    #[error("the administrator password from Secret {secret} does not log in: {detail}")]
    AdminRefused { secret: String, detail: String },
    /// The administrator cannot act before it changes its own password.
    #[error(
        "the administrator must change its password before it can create the operator's account (Secret {secret})"
    )]
    AdminMustChangePassword { secret: String },
    /// The administrator's password could not be read.
    #[error("the administrator password is not readable from Secret {secret}")]
    AdminPasswordUnknown { secret: String },
    /// The account was given its role back, and still logs in without it.
    #[error(
        "the operator's account {USERNAME} logs in without the admin role even after it was given back; check the server's users (dfsctl user list)"
    )]
    RoleNotRestored,
    #[error(transparent)]
    Call(#[from] CallError),
}

/// A session for the account: kept, refreshed, logged in or provisioned, in that
/// order. `admin_secret` names the Secret of the admin password, for messages.
pub async fn session(
    server: &Server<'_>,
    credentials: &Credentials<'_>,
    current: Option<&Session>,
    admin_secret: &str,
) -> Result<(Session, Obtained), SessionError> {
    if let Some(current) = current
        && current.access_expires > Instant::now() + RENEW_MARGIN
    {
        return Ok((current.clone(), Obtained::Kept));
    }
    let refresh = current.map(|s| &s.refresh).or(credentials.stored_refresh);
    if let Some(refresh) = refresh {
        match server.refresh(refresh).await {
            Ok(answer) if !answer.user.must_change_password && answer.user.role == ROLE => {
                return Ok((started(answer), Obtained::Refreshed));
            }
            // Refused (expired, signed with another key, the user is gone or was
            // reset), or the account lost its role: log in instead.
            Ok(_) => {}
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !credentials.password_is_new {
        match login(server, credentials.password).await {
            Ok(Some(session)) => return Ok((session, Obtained::LoggedIn)),
            // The password works but someone changed the account's role.
            Ok(None) => {}
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    provision(server, credentials, admin_secret).await?;
    match login(server, credentials.password).await? {
        Some(session) => Ok((session, Obtained::Provisioned)),
        None => Err(SessionError::RoleNotRestored),
    }
}

/// Log in as the account; set the same password again when DittoFS asks for a
/// change (an admin-role user made or reset by an admin). `None`: the password
/// works, but the account no longer has [`ROLE`] (changed by hand), which
/// provisioning gives back.
async fn login(server: &Server<'_>, password: &Sensitive) -> Result<Option<Session>, CallError> {
    let answer = server.login(USERNAME, password).await?;
    if answer.user.role != ROLE {
        return Ok(None);
    }
    if !answer.user.must_change_password {
        return Ok(Some(started(answer)));
    }
    let changed = server
        .change_own_password(&answer.access_token, password)
        .await?;
    Ok(Some(started(changed)))
}

/// Create the account with the administrator, or give it our password again.
async fn provision(
    server: &Server<'_>,
    credentials: &Credentials<'_>,
    admin_secret: &str,
) -> Result<(), SessionError> {
    let Some(admin_password) = credentials.admin_password else {
        return Err(SessionError::AdminPasswordUnknown {
            secret: admin_secret.to_string(),
        });
    };
    let admin = match server
        .login(credentials.admin_username, admin_password)
        .await
    {
        Ok(admin) => admin,
        Err(e) if refused(&e) => {
            return Err(SessionError::AdminRefused {
                secret: admin_secret.to_string(),
                detail: match e {
                    CallError::Refused { status, detail, .. } => format!("{status} {detail}"),
                    other => other.to_string(),
                },
            });
        }
        Err(e) => return Err(e.into()),
    };
    if admin.user.must_change_password {
        return Err(SessionError::AdminMustChangePassword {
            secret: admin_secret.to_string(),
        });
    }
    let token = &admin.access_token;
    let create = CreateUserRequest {
        username: USERNAME,
        password: credentials.password,
        role: ROLE,
        display_name: "dittofs-operator (Kubernetes)",
        enabled: true,
    };
    match server.create_user(token, &create).await {
        Ok(()) => Ok(()),
        // It exists (its Secret was lost, or someone changed its password or role):
        // make it ours again.
        Err(e) if e.status() == Some(409) => {
            server
                .reset_password(token, USERNAME, credentials.password)
                .await?;
            let update = UpdateUserRequest {
                role: ROLE,
                enabled: true,
            };
            server.update_user(token, USERNAME, &update).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn started(answer: LoginResponse) -> Session {
    let lifetime = Duration::from_secs(u64::try_from(answer.expires_in).unwrap_or(0));
    Session {
        access: answer.access_token,
        access_expires: Instant::now() + lifetime,
        refresh: answer.refresh_token,
    }
}

/// The server said no to these credentials (401) or to this user (403 disabled).
fn refused(e: &CallError) -> bool {
    matches!(e.status(), Some(401 | 403))
}
