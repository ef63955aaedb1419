//! The DittoFS fake (`tests/fake_dittofs`) answers as DittoFS v0.29.0 does,
//! for what the operator relies on. Each test names the Go source whose
//! behaviour it pins; requests go over plain HTTP/1.1 (hyper client) with the
//! `Host` header choosing the server.

mod fake_dittofs;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use fake_dittofs::{FakeDittoFs, ServerHandle, StoreTarget};
use http_body_util::BodyExt;
use serde_json::{Value, json};

const HOST: &str = "d-api.team.svc";
const ADMIN_PW: &str = "initial-pw-123";

struct Resp {
    status: u16,
    content_type: String,
    headers: http::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The `detail` of a problem+json answer.
    fn detail(&self) -> String {
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        self.json()["detail"].as_str().unwrap_or("").to_string()
    }
}

/// One request on a fresh connection.
async fn send(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> Resp {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.unwrap_or_default(),
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        content_type,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// A client of one server, optionally holding a bearer token.
#[derive(Clone)]
struct Api {
    port: u16,
    host: String,
    token: Option<String>,
}

impl Api {
    fn new(fake: &FakeDittoFs, host: &str) -> Api {
        Api {
            port: fake.port(),
            host: host.to_string(),
            token: None,
        }
    }

    fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        send(
            self.port,
            &self.host,
            method,
            path,
            auth.as_deref(),
            body.map(|b| b.to_string()),
        )
        .await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }

    /// Logs in and returns the whole LoginResponse.
    async fn login_response(&self, username: &str, password: &str) -> Value {
        let r = self
            .post(
                "/api/v1/auth/login",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    async fn login(&self, username: &str, password: &str) -> Api {
        let resp = self.login_response(username, password).await;
        self.with_token(resp["access_token"].as_str().unwrap())
    }
}

fn setup() -> (FakeDittoFs, ServerHandle, Api) {
    let fake = FakeDittoFs::start();
    let dfs = fake.add_server(HOST, ADMIN_PW);
    let api = Api::new(&fake, HOST);
    (fake, dfs, api)
}

async fn create_user(admin: &Api, username: &str, role: &str) {
    let r = admin
        .post(
            "/api/v1/users",
            json!({"username": username, "password": "user-pass-1", "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// A metadata store, a local fs store and a remote memory store.
async fn create_stores(admin: &Api) {
    let r = admin
        .post(
            "/api/v1/store/metadata",
            json!({"name": "meta", "type": "badger", "config": "{\"path\":\"/data/meta\"}"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .post(
            "/api/v1/store/block/local",
            json!({"name": "disk", "type": "fs", "config": "{\"path\":\"/data/blocks\"}"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .post(
            "/api/v1/store/block/remote",
            json!({"name": "mem", "type": "memory"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

// ---- first start, health, routing --------------------------------------------

/// cmd/dfs/commands/start.go runStart with DITTOFS_ADMIN_INITIAL_PASSWORD:
/// store/users.go EnsureAdminUser (no forced change when the env var set the
/// password), store/groups.go EnsureDefaultGroups, store/adapters.go
/// EnsureDefaultAdapters (nfs 12049, smb 1445, default settings rows), no
/// stores or shares; handlers/health.go envelopes.
#[tokio::test]
async fn first_start_matches_dfs_start() {
    let (_fake, dfs, api) = setup();

    let live = api.get("/health").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.content_type, "application/json");
    let live = live.json();
    assert_eq!(live["status"], "healthy");
    assert_eq!(live["data"]["service"], "dittofs");
    assert_eq!(live["data"]["control_plane_db"], "reachable");
    assert!(live["timestamp"].as_str().unwrap().ends_with('Z'));
    // r.Route("/health") serves "/health/" too.
    assert_eq!(api.get("/health/").await.status, 200);

    let ready = api.get("/health/ready").await.json();
    assert_eq!(ready["status"], "healthy");
    assert_eq!(ready["data"]["shares"], 0);
    assert_eq!(ready["data"]["metadata_stores"], 0);
    assert_eq!(ready["data"]["adapters"]["running"], 2);

    // router.go: GET / redirects to /health.
    let root = api.get("/").await;
    assert_eq!(root.status, 307);
    assert_eq!(root.headers["location"], "/health");

    let login = api.login_response("admin", ADMIN_PW).await;
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900, "15 min default access lifetime");
    let user = &login["user"];
    assert_eq!(user["username"], "admin");
    assert_eq!(user["role"], "admin");
    assert_eq!(user["uid"], 0);
    assert_eq!(user["display_name"], "Administrator");
    assert_eq!(user["groups"], json!(["admins"]));
    assert_eq!(user["must_change_password"], false);
    assert!(user["last_login"].is_string(), "login sets last_login");
    let admin = api.with_token(login["access_token"].as_str().unwrap());

    let adapters = admin.get("/api/v1/adapters").await.json();
    assert_eq!(adapters.as_array().unwrap().len(), 2);
    assert_eq!(adapters[0]["type"], "nfs");
    assert_eq!(adapters[0]["port"], 12049);
    assert_eq!(adapters[0]["enabled"], true);
    assert_eq!(adapters[0]["running"], true);
    assert_eq!(adapters[0]["status"]["status"], "healthy");
    assert!(adapters[0].get("config").is_none(), "empty config omitted");
    assert_eq!(adapters[1]["type"], "smb");
    assert_eq!(adapters[1]["port"], 1445);

    let nfs = admin.get("/api/v1/adapters/nfs/settings").await.json();
    assert_eq!(nfs["portmapper_enabled"], false);
    assert_eq!(nfs["portmapper_port"], 10111);
    assert_eq!(nfs["version"], 1);
    assert_eq!(nfs["blocked_operations"], json!([]));

    for path in [
        "/api/v1/store/metadata",
        "/api/v1/store/block/local",
        "/api/v1/store/block/remote",
        "/api/v1/shares",
    ] {
        assert_eq!(admin.get(path).await.json(), json!([]), "{path}");
    }
    assert_eq!(dfs.users().len(), 1);
    let eff = dfs.effective_nfs_settings().unwrap();
    assert!(!eff.portmapper_enabled && eff.listening && eff.adapter_port == 12049);
}

/// One listener, many servers chosen by Host; tokens are per server (each
/// real server signs with its own JWT secret).
#[tokio::test]
async fn servers_are_chosen_by_host() {
    let fake = FakeDittoFs::start();
    let a = fake.add_server("a-api.one.svc", "password-a1");
    let b = fake.add_server("b-api.two.svc", "password-b1");
    let api_a = Api::new(&fake, "a-api.one.svc:8080");
    let api_b = Api::new(&fake, "B-API.two.svc");

    let admin_a = api_a.login("admin", "password-a1").await;
    let r = api_b
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": "password-a1"}),
        )
        .await;
    assert_eq!(r.status, 401, "b has its own admin password");
    let admin_b = api_b.login("admin", "password-b1").await;

    create_user(&admin_a, "only-on-a", "user").await;
    assert_eq!(a.users().len(), 2);
    assert_eq!(b.users().len(), 1);

    // A token of server a is garbage to server b.
    let r = api_b
        .with_token(admin_a.token.as_deref().unwrap())
        .get("/api/v1/users")
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (401, "Invalid or expired token\n")
    );
    assert_eq!(admin_b.get("/api/v1/users").await.status, 200);

    let r = Api::new(&fake, "nobody.svc").get("/health").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text, "no DittoFS server at nobody.svc\n");

    let totals = fake.totals();
    assert_eq!(totals.servers, 2);
    assert_eq!(totals.db_writes, 3, "two logins and one user create");
    assert_eq!(totals.requests, a.request_count() + b.request_count());
}

/// chi v5: unknown routes are text/plain `404 page not found`; a known path
/// with another method is 405 with an empty body; a subrouter's middleware
/// runs before its own 404 (router.go mounts).
#[tokio::test]
async fn routing_follows_chi() {
    let (_fake, _dfs, api) = setup();
    let r = api.get("/api/v1/nothing-here").await;
    assert_eq!((r.status, r.text.as_str()), (404, "404 page not found\n"));
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    // There is no logout route (pkg/apiclient calls one anyway).
    assert_eq!(api.post("/api/v1/auth/logout", json!({})).await.status, 404);

    let r = api.get("/api/v1/auth/login").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    assert!(r.text.is_empty());

    // /groups is admin-only: the middleware answers before any 404.
    let r = api.get("/api/v1/groups/anything/at/all").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (401, "Authorization header required\n")
    );
    let admin = api.login("admin", ADMIN_PW).await;
    assert_eq!(
        admin.get("/api/v1/groups/anything/at/all").await.status,
        404
    );
    // GET /users/me is a user literally named "me" (use /auth/me).
    assert_eq!(
        admin.get("/api/v1/users/me").await.detail(),
        "User not found"
    );
}

// ---- authentication ----------------------------------------------------------

/// middleware/auth.go JWTAuth: text/plain http.Error bodies; the scheme is
/// case-insensitive; a refresh token is not an access token.
#[tokio::test]
async fn auth_middleware_texts() {
    let (fake, _dfs, api) = setup();
    let login = api.login_response("admin", ADMIN_PW).await;
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let port = fake.port();
    let get = |auth: Option<String>| async move {
        send(port, HOST, "GET", "/api/v1/users", auth.as_deref(), None).await
    };

    for auth in [
        None,
        Some("Basic abc".to_string()),
        Some(access.to_string()),
    ] {
        let r = get(auth).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.text, "Authorization header required\n");
        assert_eq!(r.content_type, "text/plain; charset=utf-8");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }
    assert_eq!(get(Some(format!("bearer {access}"))).await.status, 200);
    for bad in ["nonsense", refresh] {
        let r = get(Some(format!("Bearer {bad}"))).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (401, "Invalid or expired token\n")
        );
    }
}

/// handlers/auth.go Login/Refresh + auth/jwt_service.go: refresh token in the
/// body, expiry before type, stateless tokens, refresh re-reads the user.
#[tokio::test]
async fn login_refresh_and_expiry() {
    let (_fake, dfs, api) = setup();
    dfs.set_token_lifetimes(Duration::from_secs(2), Duration::from_secs(6));

    let r = api
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.detail(), "Invalid username or password");
    let r = api
        .post("/api/v1/auth/login", json!({"username": "admin"}))
        .await;
    assert_eq!(r.detail(), "Username and password are required");

    let login = api.login_response("admin", ADMIN_PW).await;
    assert_eq!(login["expires_in"], 2);
    let access = login["access_token"].as_str().unwrap().to_string();
    let refresh = login["refresh_token"].as_str().unwrap().to_string();
    let admin = api.with_token(&access);

    let r = api
        .post("/api/v1/auth/refresh", json!({"refresh_token": access}))
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Invalid refresh token".into())
    );
    let r = api.post("/api/v1/auth/refresh", json!({})).await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Refresh token is required".into())
    );
    let r = api
        .post("/api/v1/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.json()["access_token"], access.as_str());
    assert!(r.json()["user"]["role"] == "admin");

    // A user deleted after login keeps a working access token (stateless
    // JWT) but cannot refresh; a disabled one gets 403 on refresh.
    create_user(&admin, "gone", "operator").await;
    create_user(&admin, "off", "operator").await;
    let gone = api.login_response("gone", "user-pass-1").await;
    let off = api.login_response("off", "user-pass-1").await;
    assert_eq!(admin.delete("/api/v1/users/gone").await.status, 204);
    let r = admin
        .put("/api/v1/users/off", json!({"enabled": false}))
        .await;
    assert_eq!(r.json()["enabled"], false);
    let r = api
        .with_token(gone["access_token"].as_str().unwrap())
        .get("/api/v1/adapters")
        .await;
    assert_eq!(r.status, 200, "deleted user's token still valid");
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": gone["refresh_token"]}),
        )
        .await;
    assert_eq!((r.status, r.detail()), (401, "User not found".into()));
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": off["refresh_token"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (403, "User account is disabled".into())
    );
    let r = api
        .post(
            "/api/v1/auth/login",
            json!({"username": "off", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(r.status, 403, "disabled is checked before the password");

    // exp is whole seconds and valid while now < exp: gone after 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = admin.get("/api/v1/users").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (401, "Invalid or expired token\n")
    );
    let r = api
        .post("/api/v1/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, 200, "refresh token lives 6 s");

    dfs.set_token_lifetimes(Duration::from_secs(2), Duration::from_secs(2));
    let short = api.login_response("admin", ADMIN_PW).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": short["refresh_token"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Refresh token has expired".into())
    );
}

/// handlers/users.go Create (must_change only for role admin),
/// middleware/auth.go RequirePasswordChange (403 naming the account, /auth/me
/// and /users/me/password exempt), ChangeOwnPassword (current password
/// optional while must-change; fresh LoginResponse), ResetPassword (admin
/// targets must change again).
#[tokio::test]
async fn must_change_password_flow() {
    let (_fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    let r = admin
        .post(
            "/api/v1/users",
            json!({"username": "ops-admin", "password": "first-pass-1", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["must_change_password"], true);

    let login = api.login_response("ops-admin", "first-pass-1").await;
    assert_eq!(login["user"]["must_change_password"], true);
    let stuck = api.with_token(login["access_token"].as_str().unwrap());
    let r = stuck.get("/api/v1/shares").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text,
        "account \"ops-admin\" must set a new password before performing other operations; \
         run 'dfsctl user change-password' (as \"ops-admin\") to set one\n"
    );
    assert_eq!(stuck.get("/api/v1/auth/me").await.status, 200);

    let r = stuck
        .post(
            "/api/v1/users/me/password",
            json!({"new_password": "short"}),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (500, "Failed to hash password".into())
    );
    let r = stuck
        .post(
            "/api/v1/users/me/password",
            json!({"new_password": "second-pass-2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = r.json();
    assert_eq!(fresh["token_type"], "Bearer");
    assert_eq!(fresh["user"]["must_change_password"], false);
    let unstuck = api.with_token(fresh["access_token"].as_str().unwrap());
    assert_eq!(unstuck.get("/api/v1/shares").await.status, 200);
    // The old token still carries must_change_password=true.
    assert_eq!(stuck.get("/api/v1/shares").await.status, 403);

    // Now the current password is required and checked.
    let r = unstuck
        .post(
            "/api/v1/users/me/password",
            json!({"new_password": "third-pass-3"}),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (400, "Current password is required".into())
    );
    let r = unstuck
        .post(
            "/api/v1/users/me/password",
            json!({"current_password": "nope-nope", "new_password": "third-pass-3"}),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Current password is incorrect".into())
    );

    // Admin reset: 204, and an admin-role target must change again.
    let r = admin
        .post(
            "/api/v1/users/ops-admin/password",
            json!({"new_password": "reset-pass-4"}),
        )
        .await;
    assert_eq!(r.status, 204);
    let u = dfs
        .users()
        .into_iter()
        .find(|u| u.username == "ops-admin")
        .unwrap();
    assert!(u.must_change_password);
    create_user(&admin, "ops", "operator").await;
    let r = admin
        .post(
            "/api/v1/users/ops/password",
            json!({"new_password": "reset-pass-4"}),
        )
        .await;
    assert_eq!(r.status, 204);
    let u = dfs
        .users()
        .into_iter()
        .find(|u| u.username == "ops")
        .unwrap();
    assert!(!u.must_change_password);
}

/// handlers/users.go Create/Remove validation and store/users.go.
#[tokio::test]
async fn user_validation() {
    let (_fake, _dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    let post = |body: Value| {
        let admin = admin.clone();
        async move { admin.post("/api/v1/users", body).await }
    };
    let r = post(json!({"username": "x", "password": "short"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (500, "Failed to hash password".into())
    );
    let r = post(json!({"username": "x", "password": "long-enough", "role": "root"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (
            400,
            "Invalid role. Must be 'user', 'admin', or 'operator'".into()
        )
    );
    let r = post(json!({"username": "x", "password": "long-enough", "groups": ["nope"]})).await;
    assert_eq!(r.detail(), "One or more specified groups do not exist");
    // `Enabled bool gorm:"default:true"`: GORM writes the column default
    // for a Go false on INSERT, so the user comes out enabled.
    let r = post(
        json!({"username": "x", "password": "long-enough", "enabled": false,
                         "groups": ["operators"], "uid": 1001}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["enabled"], true);
    assert_eq!(r.json()["role"], "user");
    assert_eq!(r.json()["groups"], json!(["operators"]));
    let r = post(json!({"username": "x", "password": "long-enough"})).await;
    assert_eq!((r.status, r.detail()), (409, "User already exists".into()));
    let r = post(json!({"username": "y", "password": "long-enough", "uid": 1001})).await;
    assert_eq!(
        (r.status, r.detail()),
        (409, "User already exists".into()),
        "uid unique"
    );

    let r = admin.delete("/api/v1/users/admin").await;
    assert_eq!(
        (r.status, r.detail()),
        (403, "Cannot delete admin user".into())
    );
    let r = admin.delete("/api/v1/users/nobody").await;
    assert_eq!((r.status, r.detail()), (404, "User not found".into()));
}

/// router.go: GET /adapters is RequireRole("admin","operator"); every
/// /adapters/{type}/**, settings, stores, shares and user management are
/// RequireAdmin; /adapters/ports and GET /users/{self} are any user.
#[tokio::test]
async fn role_checks() {
    let (_fake, _dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    create_user(&admin, "svc-operator", "operator").await;
    create_user(&admin, "alice", "user").await;
    let op = api.login("svc-operator", "user-pass-1").await;
    let user = api.login("alice", "user-pass-1").await;

    assert_eq!(op.get("/api/v1/adapters").await.status, 200);
    for path in [
        "/api/v1/adapters/nfs",
        "/api/v1/adapters/nfs/settings",
        "/api/v1/store/metadata",
        "/api/v1/store/block/local",
        "/api/v1/shares",
        "/api/v1/users",
    ] {
        let r = op.get(path).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (403, "Admin access required\n"),
            "{path}"
        );
    }
    let r = op
        .patch(
            "/api/v1/adapters/nfs/settings",
            json!({"portmapper_enabled": true}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = user.get("/api/v1/adapters").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (403, "Insufficient permissions\n")
    );
    assert_eq!(user.get("/api/v1/adapters/ports").await.status, 200);
    assert_eq!(op.get("/api/v1/users/svc-operator").await.status, 200);
    let r = op.get("/api/v1/users/admin").await;
    assert_eq!((r.status, r.detail()), (403, "Access denied".into()));
}

// ---- adapters and settings -----------------------------------------------------

/// runtime/adapters/service.go UpdateAdapter (restart only on a listen
/// address or enabled change; 200 even when the restart fails) and
/// pkg/adapter/nfs/settings.go applyNFSSettings (portmapper settings are read
/// when the NFS adapter (re)starts); handlers/adapter_settings.go PATCH,
/// 422, dry_run, version.
#[tokio::test]
async fn adapter_updates_apply_live_and_portmapper_needs_a_restart() {
    let (_fake, dfs, api) = setup();
    dfs.set_status_cache_ttl(Duration::ZERO);
    let admin = api.login("admin", ADMIN_PW).await;

    for bad in [
        json!({"portmapper_port": 0}),
        json!({"portmapper_port": 70000}),
    ] {
        let r = admin.patch("/api/v1/adapters/nfs/settings", bad).await;
        assert_eq!(r.status, 422);
        let body = r.json();
        assert_eq!(body["title"], "Validation Failed");
        assert_eq!(
            body["errors"]["portmapper_port"],
            "must be between 1 and 65535"
        );
    }
    let writes = dfs.db_writes();
    let r = admin
        .patch(
            "/api/v1/adapters/nfs/settings?dry_run=true",
            json!({"portmapper_enabled": true}),
        )
        .await;
    assert_eq!(r.json()["portmapper_enabled"], true);
    assert_eq!(r.json()["version"], 1);
    assert_eq!(dfs.db_writes(), writes, "dry run writes nothing");

    let r = admin
        .patch(
            "/api/v1/adapters/nfs/settings",
            json!({"portmapper_enabled": true, "portmapper_port": 10111}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["portmapper_enabled"], true);
    assert_eq!(r.json()["version"], 2);
    assert_eq!(dfs.nfs_settings()["portmapper_enabled"], true);
    assert!(
        !dfs.effective_nfs_settings().unwrap().portmapper_enabled,
        "stored, not in effect"
    );

    // Same port, stays enabled: the listener is kept, nothing restarts.
    let r = admin
        .put(
            "/api/v1/adapters/nfs",
            json!({"enabled": true, "port": 12049}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(dfs.adapters()[0].starts, 1);
    assert!(!dfs.effective_nfs_settings().unwrap().portmapper_enabled);

    // A port change restarts the adapter in-process: now it takes effect.
    let r = admin
        .put("/api/v1/adapters/nfs", json!({"port": 2049}))
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(
        (body["port"].clone(), body["running"].clone()),
        (json!(2049), json!(true))
    );
    assert_eq!(body["status"]["status"], "healthy");
    let eff = dfs.effective_nfs_settings().unwrap();
    assert!(eff.portmapper_enabled && eff.portmapper_listening);
    assert_eq!((eff.adapter_port, eff.portmapper_port), (2049, 10111));
    assert_eq!(dfs.adapters()[0].starts, 2);

    // Disable, then enable: also a restart.
    let r = admin
        .put("/api/v1/adapters/nfs", json!({"enabled": false}))
        .await;
    assert_eq!(r.json()["running"], false);
    assert_eq!(r.json()["status"]["message"], "adapter nfs not running");
    assert!(dfs.effective_nfs_settings().is_none());
    admin
        .put("/api/v1/adapters/nfs", json!({"enabled": true}))
        .await;
    assert_eq!(dfs.adapters()[0].starts, 3);

    // A restart that cannot bind still answers 200: running, not healthy.
    let r = admin
        .put("/api/v1/adapters/smb", json!({"port": 2049}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["running"], true);
    assert_eq!(r.json()["status"]["status"], "unknown");
    assert_eq!(
        r.json()["status"]["message"],
        "SMB adapter has not started yet"
    );
    let ports = admin.get("/api/v1/adapters/ports").await.json();
    assert_eq!(
        ports[1],
        json!({"type": "smb", "port": 2049, "enabled": true, "running": true})
    );

    let r = admin.put("/api/v1/adapters/nope", json!({"port": 1})).await;
    assert_eq!((r.status, r.detail()), (404, "Adapter not found".into()));
    let r = admin
        .put("/api/v1/adapters/nfs", json!({"port": "2049"}))
        .await;
    assert_eq!((r.status, r.detail()), (400, "Invalid request body".into()));
}

/// runtime/checkers.go: adapter status reports are cached for 5 s and an
/// update does not invalidate them.
#[tokio::test]
async fn adapter_status_is_cached() {
    let (_fake, _dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    assert_eq!(
        admin.get("/api/v1/adapters").await.json()[1]["status"]["status"],
        "healthy"
    );
    let r = admin
        .put("/api/v1/adapters/smb", json!({"enabled": false}))
        .await
        .json();
    assert_eq!(r["running"], false);
    assert_eq!(r["status"]["status"], "healthy", "stale for up to 5 s");
}

/// pkg/controlplane/store/adapters.go UpdateNFSAdapterSettings: the v4_*
/// fields are validated but not in the column map, so they never persist;
/// every write bumps version; PUT replaces (absent fields are zero → 422).
#[tokio::test]
async fn settings_put_and_unpersisted_fields() {
    let (_fake, _dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    let r = admin
        .put(
            "/api/v1/adapters/nfs/settings",
            json!({"portmapper_enabled": true}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["errors"]["lease_time"],
        "must be between 10 and 3600"
    );

    let mut full = admin.get("/api/v1/adapters/nfs/settings").await.json();
    full["v4_max_minor_version"] = json!(1);
    let r = admin.put("/api/v1/adapters/nfs/settings", full).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["v4_max_minor_version"], 2, "not persisted");
    assert_eq!(r.json()["version"], 2);
    let r = admin
        .patch("/api/v1/adapters/nfs/settings", json!({}))
        .await;
    assert_eq!(r.json()["version"], 3, "an empty PATCH still writes");
    let r = admin.get("/api/v1/adapters/smb/settings").await.json();
    assert_eq!(r["max_dialect"], "SMB3.1.1");
}

// ---- stores -------------------------------------------------------------------

/// handlers/metadata_stores.go + runtime/init.go CreateMetadataStoreFromConfig
/// + handlers/helpers.go redactSecretJSON / mergeRedactedSecrets.
#[tokio::test]
async fn metadata_stores() {
    let (_fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    let create = |body: Value| {
        let admin = admin.clone();
        async move { admin.post("/api/v1/store/metadata", body).await }
    };

    // config is a JSON string on write...
    let r = create(json!({"name": "m", "type": "memory", "config": {"a": 1}})).await;
    assert_eq!((r.status, r.detail()), (400, "Invalid request body".into()));
    let pg = json!({"host": "pg.db.svc", "port": 5432, "database": "dfs",
                    "user": "dfs", "password": "s3cret"});
    let r = create(json!({"name": "pg", "type": "postgres", "config": pg.to_string()})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // ...and an object on read, secrets redacted.
    let body = r.json();
    assert_eq!(body["config"]["password"], "********");
    assert_eq!(body["config"]["host"], "pg.db.svc");
    assert_eq!(body["status"]["status"], "healthy");

    let r =
        create(json!({"name": "pg2", "type": "postgres", "config": "{\"database\":\"x\"}"})).await;
    assert_eq!(
        r.detail(),
        "Failed to create metadata store: postgres metadata store requires host"
    );
    let r = create(json!({"name": "b", "type": "badger", "config": "{}"})).await;
    assert_eq!(
        r.detail(),
        "Failed to create metadata store: badger metadata store requires path as string"
    );
    let r =
        create(json!({"name": "b", "type": "badger", "config": "{\"db_path\":\"/data/b\"}"})).await;
    assert_eq!(r.status, 201, "legacy db_path");
    let r = create(json!({"name": "x", "type": "tikv"})).await;
    assert_eq!(
        r.detail(),
        "Failed to create metadata store: unsupported metadata store type: tikv"
    );
    let r = create(json!({"name": "pg", "type": "memory"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (409, "Metadata store already exists".into())
    );
    // The store is opened before the duplicate check: re-posting a badger
    // store on a path already open fails on the directory lock, not 409.
    let r =
        create(json!({"name": "b", "type": "badger", "config": "{\"path\":\"/data/b/\"}"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.detail()
            .starts_with("Failed to create metadata store: metadata store at /data/b/ is locked"),
        "{}",
        r.detail()
    );

    // Read-modify-write with the redaction sentinel keeps the secret.
    let mut cfg = body["config"].clone();
    cfg["sslmode"] = json!("require");
    let r = admin
        .put(
            "/api/v1/store/metadata/pg",
            json!({"config": cfg.to_string()}),
        )
        .await;
    assert_eq!(r.status, 200);
    let stored = dfs
        .metadata_stores()
        .into_iter()
        .find(|m| m.name == "pg")
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.config).unwrap();
    assert_eq!(stored["password"], "s3cret");
    assert_eq!(stored["sslmode"], "require");

    // Addressed by UUID: found, but the runtime checker looks the UUID up as
    // a name.
    let id = body["id"].as_str().unwrap();
    let r = admin
        .get(&format!("/api/v1/store/metadata/{id}"))
        .await
        .json();
    assert_eq!(r["name"], "pg");
    assert_eq!(r["status"]["status"], "unknown");
    assert_eq!(admin.delete("/api/v1/store/metadata/pg").await.status, 204);
    let r = admin.get("/api/v1/store/metadata/pg").await;
    assert_eq!(
        (r.status, r.detail()),
        (404, "Metadata store not found".into())
    );

    dfs.refuse_store(StoreTarget::Metadata, Some("dial tcp: connection refused"));
    let r = create(json!({"name": "m2", "type": "memory"})).await;
    assert_eq!(
        r.detail(),
        "Failed to create metadata store: dial tcp: connection refused"
    );
}

/// handlers/block_stores.go + runtime/blockstore_init.go
/// ValidateBlockStoreConfig + pkg/block/remote/s3/store.go ValidateEndpoint.
#[tokio::test]
async fn block_stores_and_the_endpoint_check() {
    let (_fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    let post = |kind: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            admin
                .post(&format!("/api/v1/store/block/{kind}"), body)
                .await
        }
    };

    let r = post("tape", json!({"name": "t", "type": "fs"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (
            400,
            "Invalid block store kind: must be 'local' or 'remote'".into()
        )
    );
    let r = post("local", json!({"name": "t", "type": "s3"})).await;
    assert_eq!(r.detail(), "Store type 's3' is not valid for kind 'local'");
    let r = post(
        "local",
        json!({"name": "t", "type": "fs", "config": "{\"path\":\"data\"}"}),
    )
    .await;
    assert_eq!(
        r.detail(),
        "Invalid block store config: fs local block store path must be absolute, got \"data\""
    );
    let r = post(
        "local",
        json!({"name": "t", "type": "fs", "config": "{\"path\":\"/data/t\"}"}),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = post("local", json!({"name": "t", "type": "memory"})).await;
    assert_eq!(
        (r.status, r.detail()),
        (409, "Block store already exists".into())
    );
    assert_eq!(
        post("remote", json!({"name": "t", "type": "memory"}))
            .await
            .status,
        201,
        "(name, kind) is the unique key"
    );

    let s3 = |endpoint: &str, allow: bool| {
        json!({"bucket": "b", "access_key_id": "AKIA1", "secret_access_key": "shh",
               "endpoint": endpoint, "allow_private_endpoint": allow})
        .to_string()
    };
    let r = post(
        "remote",
        json!({"name": "s3", "type": "s3",
                                  "config": s3("http://minio.team.svc:9000", false)}),
    )
    .await;
    let detail = r.detail();
    assert_eq!(r.status, 400);
    assert!(
        detail.starts_with(
            "Invalid block store config: s3 block store: unsafe endpoint: host \"minio.team.svc\" \
             resolves to private/internal address 10."
        ) && detail.ends_with("(set allow_private_endpoint=true to permit)"),
        "{detail}"
    );
    let r = post(
        "remote",
        json!({"name": "lo", "type": "s3",
                                  "config": s3("localhost:9000", false)}),
    )
    .await;
    assert!(
        r.detail().contains("private/internal address 127.0.0.1"),
        "{}",
        r.detail()
    );
    let r = post(
        "remote",
        json!({"name": "md", "type": "s3",
                                  "config": s3("http://169.254.169.254", true)}),
    )
    .await;
    assert!(
        r.detail()
            .ends_with("resolves to link-local address 169.254.169.254 (cloud metadata)"),
        "{}",
        r.detail()
    );
    let r = post(
        "remote",
        json!({"name": "ftp", "type": "s3",
                                  "config": s3("ftp://x.example.com", false)}),
    )
    .await;
    assert!(r.detail().ends_with("scheme \"ftp\" must be http or https"));
    dfs.set_resolved_ip("evil.example.com", "10.1.2.3".parse::<IpAddr>().unwrap());
    let r = post(
        "remote",
        json!({"name": "evil", "type": "s3",
                                  "config": s3("https://evil.example.com", false)}),
    )
    .await;
    assert!(r.detail().contains("private/internal address 10.1.2.3"));
    dfs.set_unresolvable("gone.example.com");
    let r = post(
        "remote",
        json!({"name": "gone", "type": "s3",
                                  "config": s3("gone.example.com", false)}),
    )
    .await;
    assert!(
        r.detail().contains("resolve host \"gone.example.com\""),
        "{}",
        r.detail()
    );

    let r = post(
        "remote",
        json!({"name": "s3", "type": "s3",
                                  "config": s3("http://minio.team.svc:9000", true)}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cfg = &r.json()["config"];
    assert_eq!(cfg["secret_access_key"], "********");
    assert_eq!(cfg["access_key_id"], "AKIA1", "ends in _id: not a secret");
    assert_eq!(
        post(
            "remote",
            json!({"name": "aws", "type": "s3", "config": s3("", false)})
        )
        .await
        .status,
        201,
        "no endpoint: AWS, no check"
    );

    dfs.refuse_remote_store("bucket does not exist");
    let r = post(
        "remote",
        json!({"name": "later", "type": "s3",
                                  "config": s3("s3.example.com", false)}),
    )
    .await;
    assert_eq!(
        r.detail(),
        "Invalid block store config: bucket does not exist"
    );
    assert_eq!(dfs.block_stores("remote").len(), 3);
}

// ---- shares --------------------------------------------------------------------

/// handlers/shares.go Create/Update/Get/Remove and store/{metadata,block}.go
/// delete-in-use checks.
#[tokio::test]
async fn shares() {
    let (_fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    create_stores(&admin).await;
    let create = |body: Value| {
        let admin = admin.clone();
        async move { admin.post("/api/v1/shares", body).await }
    };

    let r = create(json!({"name": "export", "metadata_store_id": "nope",
                          "local_block_store": "disk"}))
    .await;
    assert_eq!(r.detail(), "Metadata store not found: nope");
    let r = create(json!({"name": "export", "metadata_store_id": "meta",
                          "local_block_store": "nope"}))
    .await;
    assert_eq!(r.detail(), "Local block store not found: nope");
    let remote_id = dfs.block_stores("remote")[0].id.clone();
    let r = create(json!({"name": "export", "metadata_store_id": "meta",
                          "local_block_store": remote_id}))
    .await;
    assert_eq!(
        r.detail(),
        format!("Local block store has the wrong kind: {remote_id}")
    );
    let r = create(json!({"name": "export", "metadata_store_id": "meta",
                          "local_block_store": "disk", "default_permission": "read_write"}))
    .await;
    assert_eq!(
        r.detail(),
        "Invalid default_permission: read_write (want none|read|read-write|admin)"
    );
    let r = create(json!({"name": "export", "local_block_store": "disk"})).await;
    assert_eq!(r.detail(), "Metadata store ID is required");

    let r = create(json!({"name": "//export", "metadata_store_id": "meta",
                          "local_block_store": "disk", "remote_block_store": "mem",
                          "quota_bytes": "10GiB", "retention_policy": "TTL",
                          "retention_ttl": "72h"}))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let share = r.json();
    let meta_id = dfs.metadata_stores()[0].id.clone();
    let disk_id = dfs.block_stores("local")[0].id.clone();
    assert_eq!(share["name"], "/export");
    assert_eq!(
        share["metadata_store_id"],
        meta_id.as_str(),
        "UUID, not the name"
    );
    assert_eq!(share["local_block_store_id"], disk_id.as_str());
    assert_eq!(share["remote_block_store_id"], remote_id.as_str());
    assert_eq!(share["default_permission"], "none");
    assert_eq!(share["enabled"], true);
    assert_eq!(share["quota_bytes"], "10.00GiB");
    assert_eq!(share["retention_policy"], "ttl");
    assert_eq!(share["retention_ttl"], "72h0m0s");
    assert_eq!(share["status"]["status"], "healthy");

    let r = create(json!({"name": "export", "metadata_store_id": meta_id,
                          "local_block_store": disk_id}))
    .await;
    assert_eq!((r.status, r.detail()), (409, "Share already exists".into()));

    // Update uses *_id names; create's names are unknown fields (ignored).
    let r = admin
        .put(
            "/api/v1/shares/export",
            json!({"remote_block_store": "", "default_permission": "read-write"}),
        )
        .await;
    assert_eq!(r.json()["remote_block_store_id"], remote_id.as_str());
    assert_eq!(r.json()["default_permission"], "read-write");
    let r = admin
        .put(
            "/api/v1/shares/export",
            json!({"remote_block_store_id": ""}),
        )
        .await;
    assert_eq!(r.json()["remote_block_store_id"], Value::Null);
    let r = admin
        .put("/api/v1/shares/export", json!({"default_permission": ""}))
        .await;
    assert_eq!(
        r.json()["default_permission"],
        "",
        "\"\" is accepted on update"
    );

    let id = share["id"].as_str().unwrap();
    assert_eq!(
        admin.get(&format!("/api/v1/shares/{id}")).await.json()["name"],
        "/export"
    );
    assert_eq!(admin.get("/api/v1/shares/%2Fexport").await.status, 200);
    assert_eq!(
        admin.get("/api/v1/shares/nope").await.detail(),
        "Share not found"
    );

    let r = admin.delete("/api/v1/store/metadata/meta").await;
    assert_eq!(
        (r.status, r.detail()),
        (
            409,
            "Cannot delete metadata store: it is in use by one or more shares".into()
        )
    );
    let r = admin.delete("/api/v1/store/block/local/disk").await;
    assert_eq!(
        (r.status, r.detail()),
        (
            409,
            "Cannot delete block store: it is in use by one or more shares".into()
        )
    );
    let ready = api.get("/health/ready").await.json();
    assert_eq!(ready["data"]["shares"], 1);

    assert!(dfs.delete_share("export"), "a human deletes it with dfsctl");
    assert_eq!(admin.get("/api/v1/shares").await.json(), json!([]));
    assert_eq!(
        admin.delete("/api/v1/store/block/local/disk").await.status,
        204
    );
    assert_eq!(
        admin.delete("/api/v1/store/metadata/meta").await.status,
        204
    );
}

// ---- writes, bodies, faults ----------------------------------------------------

/// Login writes last_login (handlers/auth.go UpdateLastLogin); refresh, me
/// and GETs write nothing; 409s write nothing; a no-op PUT still writes.
#[tokio::test]
async fn db_write_counting() {
    let (_fake, dfs, api) = setup();
    assert_eq!(dfs.db_writes(), 0);
    let login = api.login_response("admin", ADMIN_PW).await;
    assert_eq!(dfs.db_writes(), 1);
    let admin = api.with_token(login["access_token"].as_str().unwrap());
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": login["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    for path in [
        "/api/v1/auth/me",
        "/api/v1/adapters",
        "/api/v1/adapters/nfs",
        "/api/v1/adapters/nfs/settings",
        "/api/v1/users",
        "/api/v1/shares",
        "/health/ready",
    ] {
        assert_eq!(admin.get(path).await.status, 200, "{path}");
    }
    assert_eq!(dfs.db_writes(), 1);
    let r = admin
        .post(
            "/api/v1/users",
            json!({"username": "admin", "password": "long-enough"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(dfs.db_writes(), 1);
    assert_eq!(
        admin.put("/api/v1/adapters/nfs", json!({})).await.status,
        200
    );
    assert_eq!(dfs.db_writes(), 2);
    assert_eq!(dfs.adapters()[0].starts, 1, "but no restart");

    let log = dfs.requests();
    assert_eq!(log[0].path, "/api/v1/auth/login");
    assert_eq!((log[0].status, log[0].user.as_deref()), (200, None));
    let last = log.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("PUT", "/api/v1/adapters/nfs")
    );
    assert_eq!(last.user.as_deref(), Some("admin"));
    dfs.clear_requests();
    assert!(dfs.requests().is_empty());
}

/// handlers/helpers.go decodeJSONBody: 1 MiB cap → 413; decode errors →
/// 400 `Invalid request body`; unknown fields ignored; Go's encoding/json
/// matches field names case-insensitively and reads only the first value.
#[tokio::test]
async fn request_bodies_decode_like_go() {
    let (fake, _dfs, api) = setup();
    let port = fake.port();
    let login = |body: String| async move {
        send(port, HOST, "POST", "/api/v1/auth/login", None, Some(body)).await
    };
    let big = format!("{{\"username\":\"{}\"}}", "a".repeat(1 << 20));
    let r = login(big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.detail(), "request body exceeds the 1 MiB limit");
    for bad in ["", "{", "[]", "{\"username\": 1, \"password\": \"x\"}"] {
        let r = login(bad.to_string()).await;
        assert_eq!(
            (r.status, r.detail()),
            (400, "Invalid request body".into()),
            "{bad:?}"
        );
    }
    let r = login("null".to_string()).await;
    assert_eq!(r.detail(), "Username and password are required");
    let ok =
        format!("{{\"Username\":\"admin\",\"PASSWORD\":\"{ADMIN_PW}\",\"extra\":[1]}} trailing");
    assert_eq!(login(ok).await.status, 200);
    let _ = api;
}

/// Test controls: injected failures before routing, delayed answers after
/// the request was applied, the admin password changed by a human, a pod
/// restart picking up stored NFS settings.
#[tokio::test]
async fn test_controls() {
    let (fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;

    dfs.fail_next(2, 503);
    for _ in 0..2 {
        let r = admin.get("/api/v1/adapters").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["title"], "Service Unavailable");
    }
    assert_eq!(api.get("/health").await.status, 200);
    assert_eq!(admin.get("/api/v1/adapters").await.status, 200);

    dfs.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    let timed_out = tokio::time::timeout(
        Duration::from_millis(100),
        admin.post(
            "/api/v1/users",
            json!({"username": "late", "password": "long-enough"}),
        ),
    )
    .await;
    assert!(timed_out.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        dfs.users().iter().any(|u| u.username == "late"),
        "applied anyway"
    );
    assert!(admin.get("/health").await.status == 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    dfs.set_delay(Duration::ZERO);

    dfs.set_admin_password("changed-by-human");
    let r = api
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": ADMIN_PW}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        admin.get("/api/v1/users").await.status,
        200,
        "old token still valid"
    );
    let admin = api.login("admin", "changed-by-human").await;

    admin
        .patch(
            "/api/v1/adapters/nfs/settings",
            json!({"portmapper_enabled": true, "udp_enabled": true}),
        )
        .await;
    assert!(!dfs.effective_nfs_settings().unwrap().udp_enabled);
    dfs.restart();
    let eff = dfs.effective_nfs_settings().unwrap();
    assert!(eff.udp_enabled && eff.portmapper_enabled);
    assert_eq!(
        admin.get("/api/v1/users").await.status,
        200,
        "tokens survive"
    );

    dfs.set_adapter("smb", 0, false);
    let smb = &dfs.adapters()[1];
    assert!(!smb.enabled && !smb.running);
    dfs.set_port_occupied(12049, true);
    dfs.set_adapter("nfs", 12049, false);
    dfs.set_adapter("nfs", 12049, true);
    assert!(!dfs.adapters()[0].listening);
    drop(fake);
}

// ---- snapshot policies ---------------------------------------------------------

/// handlers/snapshot_policy.go (Upsert, Get, Remove, List) behind the /shares
/// group's RequireAdmin (router.go); pkg/schedule/interval.go ParseInterval;
/// parseOptionalDuration; snapshotNamePrefixRe; runtime/snapshot_policy.go (the
/// share must exist: mapSnapshotError's 404 "share not found"); policyToWire
/// (Duration.String(), ttl and name_prefix omitted when empty);
/// store/snapshot_policies.go (one row per share, list ordered by share, []
/// when none); store/shares.go DeleteShare (the policy goes with its share).
#[tokio::test]
async fn snapshot_policies() {
    let (_fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    create_stores(&admin).await;
    let r = admin
        .post(
            "/api/v1/shares",
            json!({"name": "/team/a", "metadata_store_id": "meta", "local_block_store": "disk"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    const POLICY: &str = "/api/v1/shares/team%2Fa/snapshot-policy";

    // Never null.
    let r = admin.get("/api/v1/snapshot-policies").await;
    assert_eq!((r.status, r.text.trim()), (200, "[]"));

    // Admin only, also for the list.
    create_user(&admin, "op", "operator").await;
    let op = api.login("op", "user-pass-1").await;
    for (method, path) in [
        ("PUT", POLICY),
        ("GET", POLICY),
        ("DELETE", POLICY),
        ("GET", "/api/v1/snapshot-policies"),
    ] {
        let r = op.call(method, path, Some(json!({"interval": "1h"}))).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (403, "Admin access required\n"),
            "{method} {path}"
        );
    }

    // Refused values, before the share is looked up.
    let writes = dfs.db_writes();
    for (body, detail) in [
        (json!({}), "invalid interval: schedule: empty interval"),
        (
            json!({"interval": "@monthly"}),
            "invalid interval: schedule: unknown shorthand \"@monthly\" (want @hourly, @daily, @weekly)",
        ),
        (
            json!({"interval": "0s"}),
            "invalid interval: schedule: interval must be positive, got \"0s\"",
        ),
        (
            json!({"interval": "1d"}),
            "invalid interval: schedule: invalid interval \"1d\": time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            json!({"interval": "1h", "ttl": "-1h"}),
            "invalid ttl: must be >= 0",
        ),
        (
            json!({"interval": "1h", "ttl": " 1h"}),
            "invalid ttl: time: invalid duration \" 1h\"",
        ),
        (
            json!({"interval": "1h", "keep_last": -1}),
            "keep_last must be >= 0",
        ),
        (
            json!({"interval": "1h", "name_prefix": "a/b"}),
            "invalid name_prefix: must match ^[A-Za-z0-9_-]{0,64}$",
        ),
    ] {
        let r = admin.put(POLICY, body.clone()).await;
        assert_eq!((r.status, r.detail()), (400, detail.to_string()), "{body}");
    }
    let r = admin
        .put(
            "/api/v1/shares/nope/snapshot-policy",
            json!({"interval": "1h"}),
        )
        .await;
    assert_eq!((r.status, r.detail()), (404, "share not found".into()));
    assert_eq!(dfs.db_writes(), writes, "refusals write nothing");

    // Created: canonical durations, enabled by default, empty prefix left out.
    let r = admin
        .put(
            POLICY,
            json!({"interval": " @Daily ", "ttl": "1.5h", "keep_last": 7}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let created = r.json();
    assert_eq!(created["share"], "/team/a");
    assert_eq!(created["interval"], "24h0m0s");
    assert_eq!(created["ttl"], "1h30m0s");
    assert_eq!(
        (created["keep_last"].clone(), created["enabled"].clone()),
        (json!(7), json!(true))
    );
    assert!(created.get("name_prefix").is_none() && created.get("last_run_at").is_none());
    assert_eq!(dfs.db_writes(), writes + 1);

    // Replaced whole, the creation time kept; a zero TTL is left out.
    let r = admin
        .put(
            "/api/v1/shares/%2Fteam%2Fa/snapshot-policy",
            json!({"interval": "90m", "ttl": "0", "enabled": false, "name_prefix": "nightly"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let replaced = r.json();
    assert_eq!(replaced["interval"], "1h30m0s");
    assert!(replaced.get("ttl").is_none(), "{replaced}");
    assert_eq!(replaced["keep_last"], 0);
    assert_eq!(replaced["enabled"], false);
    assert_eq!(replaced["name_prefix"], "nightly");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(admin.get(POLICY).await.json(), replaced);
    assert_eq!(dfs.snapshot_policies().len(), 1, "one per share");

    // Listed by share name.
    let r = admin
        .post(
            "/api/v1/shares",
            json!({"name": "/archive", "metadata_store_id": "meta", "local_block_store": "disk"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .put(
            "/api/v1/shares/archive/snapshot-policy",
            json!({"interval": "@hourly"}),
        )
        .await;
    assert_eq!(r.json()["interval"], "1h0m0s");
    let list = admin.get("/api/v1/snapshot-policies").await.json();
    let shares: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["share"].as_str().unwrap())
        .collect();
    assert_eq!(shares, ["/archive", "/team/a"]);

    // Removed: 204, then 404; the policy of a deleted share goes with it.
    let r = admin.delete(POLICY).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let r = admin.delete(POLICY).await;
    assert_eq!(
        (r.status, r.detail()),
        (404, "snapshot policy not found".into())
    );
    assert_eq!(admin.get(POLICY).await.status, 404);
    assert_eq!(admin.delete("/api/v1/shares/archive").await.status, 204);
    assert!(dfs.snapshot_policies().is_empty());

    // Running one now is not modelled.
    let r = admin
        .post("/api/v1/shares/archive/snapshot-policy/run", json!({}))
        .await;
    assert_eq!(r.status, 404);
}

// ---- identity providers -------------------------------------------------------

/// handlers/identity_providers.go: admin only (router.go `RequireAdmin`); 404
/// until configured; LDAP `ApplyDefaults` + `Validate` (400 with its words, an
/// empty bind password refused); the password redacted on read and kept when a
/// PUT sends it empty or redacted; Kerberos stored as sent, its machine secret
/// likewise, answered with `X-DittoFS-Apply: restart-required`.
#[tokio::test]
async fn identity_providers() {
    let (_fake, dfs, api) = setup();
    let admin = api.login("admin", ADMIN_PW).await;
    create_user(&admin, "svc-operator", "operator").await;
    let op = api.login("svc-operator", "user-pass-1").await;
    let r = op.get("/api/v1/identity-providers/ldap/config").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (403, "Admin access required\n")
    );
    for kind in ["ldap", "kerberos"] {
        let r = admin
            .get(&format!("/api/v1/identity-providers/{kind}/config"))
            .await;
        assert_eq!(
            (r.status, r.detail()),
            (404, "Identity provider not configured".into())
        );
    }
    let r = admin.get("/api/v1/identity-providers/radius/config").await;
    assert_eq!(
        (r.status, r.detail()),
        (404, "Unknown identity provider type".into())
    );

    let ldap =
        json!({"enabled": true, "url": "ldaps://dc", "base_dn": "dc=x", "bind_dn": "cn=svc,dc=x"});
    let writes = dfs.db_writes();
    let r = admin
        .put("/api/v1/identity-providers/ldap/config", ldap.clone())
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            400,
            "ldap.bind_password is required (an empty password performs an anonymous bind)".into()
        )
    );
    let mut plain = ldap.clone();
    plain["url"] = json!("ldap://dc");
    plain["bind_password"] = json!("pw");
    let r = admin
        .put("/api/v1/identity-providers/ldap/config", plain)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.detail().contains("plaintext ldap://"), "{}", r.text);
    assert_eq!(dfs.db_writes(), writes, "a refused PUT writes nothing");

    let mut with_pw = ldap.clone();
    with_pw["bind_password"] = json!("first-pw");
    let r = admin
        .put("/api/v1/identity-providers/ldap/config", with_pw)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(dfs.db_writes(), writes + 1);
    let got = admin
        .get("/api/v1/identity-providers/ldap/config")
        .await
        .json();
    assert_eq!(got["bind_password"], "********");
    assert_eq!(
        (got["user_attr"].as_str(), got["idmap"].as_str()),
        (Some("sAMAccountName"), Some("rfc2307"))
    );
    assert_eq!(
        (got["timeout"].as_str(), got["max_group_results"].as_i64()),
        (Some("10s"), Some(200))
    );
    // Read, modify, write back with the placeholder: the password stays.
    let mut back = got.clone();
    back["nested_groups"] = json!(true);
    assert_eq!(
        admin
            .put("/api/v1/identity-providers/ldap/config", back)
            .await
            .status,
        200
    );
    let row = dfs.identity_provider("ldap").expect("row");
    assert_eq!(
        (
            row["bind_password"].as_str(),
            row["nested_groups"].as_bool()
        ),
        (Some("first-pw"), Some(true))
    );

    let krb = json!({"enabled": true, "service_principal": "nfs/h@R"});
    let r = admin
        .put("/api/v1/identity-providers/kerberos/config", krb.clone())
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            400,
            "keytab_path is required when kerberos is enabled".into()
        )
    );
    let mut krb = krb;
    krb["keytab_path"] = json!("/kerberos/dittofs.keytab");
    krb["netbios_domain"] = json!("a.b");
    let r = admin
        .put("/api/v1/identity-providers/kerberos/config", krb.clone())
        .await;
    assert_eq!(r.status, 400);
    krb["netbios_domain"] = json!("R");
    krb["machine_account"] = json!({"enabled": true, "account_name": "D$", "secret": "m-pw"});
    let r = admin
        .put("/api/v1/identity-providers/kerberos/config", krb.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.headers
            .get("x-dittofs-apply")
            .and_then(|v| v.to_str().ok()),
        Some("restart-required")
    );
    assert_eq!(r.json()["machine_account"]["secret"], "********");
    assert_eq!(r.json()["realm"], "", "stored as sent: no defaults");
    krb["machine_account"]["secret"] = json!("");
    assert_eq!(
        admin
            .put("/api/v1/identity-providers/kerberos/config", krb)
            .await
            .status,
        200
    );
    let row = dfs.identity_provider("kerberos").expect("row");
    assert_eq!(row["machine_account"]["secret"], "m-pw");
}

/// cmd/dfs/commands/start.go resolveIdentityProviders: an enabled block seeds the
/// row at a start with none (server defaults applied, secrets from the
/// environment); a row that exists wins.
#[tokio::test]
async fn identity_providers_are_seeded_from_the_config_at_first_start() {
    let (_fake, dfs, _api) = setup();
    let config = "ldap:\n  enabled: true\n  url: ldaps://dc\n  base_dn: dc=x\n  bind_dn: cn=s\nkerberos:\n  enabled: true\n  keytab_path: /kerberos/dittofs.keytab\n  service_principal: nfs/h@EXAMPLE.COM\n";
    dfs.seed_identity(config, "bind", "");
    let ldap = dfs.identity_provider("ldap").expect("seeded");
    assert_eq!(
        (ldap["bind_password"].as_str(), ldap["user_attr"].as_str()),
        (Some("bind"), Some("sAMAccountName"))
    );
    let krb = dfs.identity_provider("kerberos").expect("seeded");
    assert_eq!(
        (krb["realm"].as_str(), krb["dns_domain"].as_str()),
        (Some("EXAMPLE.COM"), Some("example.com"))
    );
    dfs.seed_identity(&config.replace("dc=x", "dc=y"), "other", "");
    assert_eq!(
        dfs.identity_provider("ldap").expect("row")["base_dn"],
        "dc=x"
    );
}
