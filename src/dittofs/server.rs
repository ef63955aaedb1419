//! One DittoFS server's REST API, call by call. Each method is one request; the
//! answers it expects are those of the v0.29 handler named in `api.rs`.

use http::Method;
use serde::Serialize;

use super::api::{self, path};
use super::client::Endpoint;
use super::tls::ClientTls;
use super::{CallError, Client, Sensitive};

/// The API of one server, at `http(s)://<name>-api.<namespace>.svc:<port>`.
#[derive(Clone)]
pub struct Server<'a> {
    client: &'a Client,
    endpoint: Endpoint,
}

impl<'a> Server<'a> {
    /// The server of DittoServer `name` in `namespace`, through its `<name>-api`
    /// Service on `port` (`spec.controlPlane.servicePort`); over HTTPS with `tls`.
    pub fn of(
        client: &'a Client,
        name: &str,
        namespace: &str,
        port: i32,
        tls: Option<ClientTls>,
    ) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        Self {
            client,
            endpoint: Endpoint {
                base: format!(
                    "{scheme}://{}.{namespace}.svc:{port}",
                    crate::names::api_service(name)
                ),
                tls,
            },
        }
    }

    /// Where calls go, and how they are secured.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        token: &Sensitive,
    ) -> Result<T, CallError> {
        self.client
            .call::<T, ()>(what, &self.endpoint, Method::GET, path, Some(token), None)
            .await
    }

    async fn send<T: serde::de::DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        token: Option<&Sensitive>,
        body: &B,
    ) -> Result<T, CallError> {
        self.client
            .call(what, &self.endpoint, method, path, token, Some(body))
            .await
    }

    async fn send_ignoring_body<B: Serialize + ?Sized>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        token: &Sensitive,
        body: &B,
    ) -> Result<(), CallError> {
        self.client
            .call_ignoring_body(what, &self.endpoint, method, path, Some(token), Some(body))
            .await
    }

    /// `POST /api/v1/auth/login`: 200 with tokens, 401 for a wrong password or an
    /// unknown user, 403 for a disabled one (`auth.go`, `Login`). Updates the user's
    /// `last_login`: a database write.
    pub async fn login(
        &self,
        username: &str,
        password: &Sensitive,
    ) -> Result<api::LoginResponse, CallError> {
        let body = api::LoginRequest { username, password };
        self.send(
            &format!("logging in as {username}"),
            Method::POST,
            path::LOGIN,
            None,
            &body,
        )
        .await
    }

    /// `POST /api/v1/auth/refresh`: a new pair; the old refresh token stays valid
    /// until it expires. Writes nothing (`auth.go`, `Refresh`).
    pub async fn refresh(
        &self,
        refresh_token: &Sensitive,
    ) -> Result<api::LoginResponse, CallError> {
        let body = api::RefreshRequest { refresh_token };
        self.send(
            "refreshing the session",
            Method::POST,
            path::REFRESH,
            None,
            &body,
        )
        .await
    }

    /// `POST /api/v1/users/me/password`: sets the caller's password and clears
    /// `must_change_password`; 200 with fresh tokens (`users.go`, `ChangeOwnPassword`).
    pub async fn change_own_password(
        &self,
        token: &Sensitive,
        new_password: &Sensitive,
    ) -> Result<api::LoginResponse, CallError> {
        let body = api::ChangePasswordRequest { new_password };
        self.send(
            "setting the account's password",
            Method::POST,
            path::OWN_PASSWORD,
            Some(token),
            &body,
        )
        .await
    }

    /// `POST /api/v1/users` (admin): 201, or 409 when the name is taken
    /// (`users.go`, `Create`).
    pub async fn create_user(
        &self,
        admin: &Sensitive,
        body: &api::CreateUserRequest<'_>,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("creating user {}", body.username),
            Method::POST,
            path::USERS,
            admin,
            body,
        )
        .await
    }

    /// `PUT /api/v1/users/{username}` (admin): 200, 404 (`users.go`, `Update`).
    pub async fn update_user(
        &self,
        admin: &Sensitive,
        username: &str,
        body: &api::UpdateUserRequest,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("updating user {username}"),
            Method::PUT,
            &path::user(username),
            admin,
            body,
        )
        .await
    }

    /// `POST /api/v1/users/{username}/password` (admin): 204; an admin-role user
    /// must then change it again (`users.go`, `ResetPassword`).
    pub async fn reset_password(
        &self,
        admin: &Sensitive,
        username: &str,
        new_password: &Sensitive,
    ) -> Result<(), CallError> {
        let body = api::ResetPasswordRequest { new_password };
        self.send_ignoring_body(
            &format!("resetting the password of {username}"),
            Method::POST,
            &path::user_password(username),
            admin,
            &body,
        )
        .await
    }

    /// `GET /api/v1/adapters` (admin or operator role).
    pub async fn adapters(&self, token: &Sensitive) -> Result<Vec<api::Adapter>, CallError> {
        self.get("listing adapters", path::ADAPTERS, token).await
    }

    /// `PUT /api/v1/adapters/{type}` (admin): applied live; 200 even when the
    /// adapter failed to restart (`adapters.go`, `Update`).
    pub async fn update_adapter(
        &self,
        token: &Sensitive,
        kind: &str,
        body: &api::UpdateAdapterRequest,
    ) -> Result<api::Adapter, CallError> {
        self.send(
            &format!("updating the {kind} adapter"),
            Method::PUT,
            &path::adapter(kind),
            Some(token),
            body,
        )
        .await
    }

    /// `GET /api/v1/adapters/nfs/settings` (admin; creates the row if missing,
    /// `adapter_settings.go`, `GetSettings`).
    pub async fn nfs_settings(&self, token: &Sensitive) -> Result<api::NfsSettings, CallError> {
        self.get(
            "reading the NFS adapter settings",
            &path::adapter_settings("nfs"),
            token,
        )
        .await
    }

    /// `PATCH /api/v1/adapters/nfs/settings` (admin): stored; the portmapper
    /// follows at the adapter's next start.
    pub async fn patch_nfs_settings(
        &self,
        token: &Sensitive,
        body: &api::PatchNfsSettingsRequest,
    ) -> Result<api::NfsSettings, CallError> {
        self.send(
            "turning on the NFS portmapper",
            Method::PATCH,
            &path::adapter_settings("nfs"),
            Some(token),
            body,
        )
        .await
    }

    /// `GET /api/v1/store/metadata` (admin).
    pub async fn metadata_stores(&self, token: &Sensitive) -> Result<Vec<api::Store>, CallError> {
        self.get("listing metadata stores", path::METADATA_STORES, token)
            .await
    }

    /// `POST /api/v1/store/metadata` (admin): 201; 400 when the store cannot be
    /// opened; 409 when the name is taken (`metadata_stores.go`, `Create`).
    pub async fn create_metadata_store(
        &self,
        token: &Sensitive,
        body: &api::CreateStoreRequest<'_>,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("creating metadata store {}", body.name),
            Method::POST,
            path::METADATA_STORES,
            token,
            body,
        )
        .await
    }

    /// `GET /api/v1/store/block/{kind}` (admin).
    pub async fn block_stores(
        &self,
        token: &Sensitive,
        kind: &str,
    ) -> Result<Vec<api::Store>, CallError> {
        self.get(
            &format!("listing {kind} block stores"),
            &path::block_stores(kind),
            token,
        )
        .await
    }

    /// `POST /api/v1/store/block/{kind}` (admin): 201; 400 for a config the server
    /// refuses (an S3 endpoint on a private address, …); 409 when the name is taken
    /// (`block_stores.go`, `Create`).
    pub async fn create_block_store(
        &self,
        token: &Sensitive,
        kind: &str,
        body: &api::CreateStoreRequest<'_>,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("creating {kind} block store {}", body.name),
            Method::POST,
            &path::block_stores(kind),
            token,
            body,
        )
        .await
    }

    /// `PUT /api/v1/store/block/{kind}/{name}` (admin): the config re-validated and
    /// stored (`block_stores.go`, `Update`).
    pub async fn update_block_store(
        &self,
        token: &Sensitive,
        kind: &str,
        name: &str,
        body: &api::UpdateStoreRequest,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("updating {kind} block store {name}"),
            Method::PUT,
            &path::block_store(kind, name),
            token,
            body,
        )
        .await
    }

    /// `GET /api/v1/shares` (admin).
    pub async fn shares(&self, token: &Sensitive) -> Result<Vec<api::Share>, CallError> {
        self.get("listing shares", path::SHARES, token).await
    }

    /// `POST /api/v1/shares` (admin): 201; 400 for an unknown store; 409 when the
    /// name is taken (`shares.go`, `Create`).
    pub async fn create_share(
        &self,
        token: &Sensitive,
        body: &api::CreateShareRequest<'_>,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("creating share {}", body.name),
            Method::POST,
            path::SHARES,
            token,
            body,
        )
        .await
    }

    /// `PUT /api/v1/shares/{name}` (admin): partial, applied live (`shares.go`,
    /// `Update`).
    pub async fn update_share(
        &self,
        token: &Sensitive,
        name: &str,
        body: &api::UpdateShareRequest,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("updating share {name}"),
            Method::PUT,
            &path::share(name),
            token,
            body,
        )
        .await
    }

    /// `GET /api/v1/snapshot-policies` (admin): every share's policy, by share
    /// name; `[]` when none (`handlers/snapshot_policy.go`, `List`).
    pub async fn snapshot_policies(
        &self,
        token: &Sensitive,
    ) -> Result<Vec<api::SnapshotPolicy>, CallError> {
        self.get("listing snapshot policies", path::SNAPSHOT_POLICIES, token)
            .await
    }

    /// `PUT /api/v1/shares/{name}/snapshot-policy` (admin): creates or replaces the
    /// share's policy; 400 for a value it refuses, 404 `share not found`
    /// (`handlers/snapshot_policy.go`, `Upsert`).
    pub async fn upsert_snapshot_policy(
        &self,
        token: &Sensitive,
        share: &str,
        body: &api::UpsertSnapshotPolicyRequest,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("setting the snapshot policy of share {share}"),
            Method::PUT,
            &path::snapshot_policy(share),
            token,
            body,
        )
        .await
    }

    /// `GET /api/v1/identity-providers/{type}/config` (admin): the stored row, its
    /// secret redacted; `None` for 404, "not configured" (`identity_providers.go`,
    /// `GetConfig`).
    pub async fn identity_provider<T: serde::de::DeserializeOwned>(
        &self,
        token: &Sensitive,
        kind: &str,
    ) -> Result<Option<T>, CallError> {
        match self
            .get(
                &format!("reading the {kind} identity provider"),
                &path::identity_provider_config(kind),
                token,
            )
            .await
        {
            Ok(config) => Ok(Some(config)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /api/v1/identity-providers/{type}/config` (admin): validated and stored
    /// whole; 400 with the server's reason. LDAP applies live; Kerberos at the next
    /// start (the answer says `X-DittoFS-Apply: restart-required`), except the
    /// machine account's credential, which the SMB adapter reloads
    /// (`identity_providers.go`, `PutConfig`).
    pub async fn put_identity_provider<B: Serialize>(
        &self,
        token: &Sensitive,
        kind: &str,
        body: &B,
    ) -> Result<(), CallError> {
        self.send_ignoring_body(
            &format!("writing the {kind} identity provider"),
            Method::PUT,
            &path::identity_provider_config(kind),
            token,
            body,
        )
        .await
    }

    /// `DELETE /api/v1/shares/{name}/snapshot-policy` (admin): 204; 404 `snapshot
    /// policy not found` (`handlers/snapshot_policy.go`, `Remove`).
    pub async fn delete_snapshot_policy(
        &self,
        token: &Sensitive,
        share: &str,
    ) -> Result<(), CallError> {
        self.client
            .call_ignoring_body::<()>(
                &format!("removing the snapshot policy of share {share}"),
                &self.endpoint,
                Method::DELETE,
                &path::snapshot_policy(share),
                Some(token),
                None,
            )
            .await
    }
}
