//! Routing as `pkg/controlplane/api/router.go` `NewRouter` builds it with chi
//! v5.1.0, for the modelled routes.
//!
//! chi semantics reproduced here:
//! - `r.Route(p, fn)` / `Mount` matches `p`, `p/` and `p/*`; the subrouter's
//!   own `Use` middleware runs before it routes, so a path under a mount
//!   that the subrouter does not know gets that middleware first and then
//!   the text/plain `404 page not found` (or a 405).
//! - Middleware of an inline `r.Group` wraps only the routes (and mounts)
//!   registered in it.
//! - Static segments win over `{param}` segments, which win over a mount's
//!   catch-all; a method mismatch on a better match falls through to a worse
//!   one, and only when nothing serves the method is the answer 405 (empty
//!   body, one `Allow` header per method).
//! - A `{param}` never matches an empty segment.
//!
//! Real routes that the fake does not model are registered as
//! [`Ep::Unmodelled`] where they sit next to modelled ones (so 404 vs 405 is
//! right); whole unmodelled subrouters (`/groups`, `/settings`, ...) keep
//! their middleware and then answer 404 for every path and method.

/// Middleware from `internal/controlplane/api/middleware/auth.go`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mw {
    /// `JWTAuth`.
    Jwt,
    /// `RequirePasswordChange("/api/v1/users/me/password")`.
    PasswordChange,
    /// `RequireAdmin()`.
    Admin,
    /// `RequireRole("admin", "operator")`.
    AdminOrOperator,
}

/// The modelled handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ep {
    RootRedirect,
    Liveness,
    Readiness,
    Login,
    Refresh,
    Me,
    ChangeOwnPassword,
    UserGet,
    UserCreate,
    UserList,
    UserUpdate,
    UserDelete,
    UserResetPassword,
    AdapterPorts,
    AdapterList,
    AdapterCreate,
    AdapterGet,
    AdapterUpdate,
    SettingsGet,
    SettingsPut,
    SettingsPatch,
    MetaCreate,
    MetaList,
    MetaGet,
    MetaUpdate,
    MetaDelete,
    BlockCreate,
    BlockList,
    BlockGet,
    BlockUpdate,
    BlockDelete,
    ShareCreate,
    ShareList,
    ShareGet,
    ShareUpdate,
    ShareDelete,
    PolicyUpsert,
    PolicyGet,
    PolicyDelete,
    PolicyList,
    IdentityProviderGet,
    IdentityProviderPut,
    /// A real v0.29.0 route the fake does not implement: answers 404.
    Unmodelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Endpoint(Ep),
    NotFound,
    MethodNotAllowed(Vec<&'static str>),
}

/// Where a request goes: the middleware that runs first (outermost first),
/// the target, and the `{param}` values in path order.
#[derive(Debug, Clone)]
pub struct Routed {
    pub mws: Vec<Mw>,
    pub target: Target,
    pub params: Vec<String>,
}

#[derive(Clone, Copy)]
enum Sub {
    Top,
    Health,
    V1,
    Auth,
    OwnPassword,
    Users,
    Shares,
    SnapshotPolicy,
    SnapshotPolicies,
    Store,
    StoreBlock,
    StoreMeta,
    Adapters,
    AdapterType,
    Settings,
    IdentityProviders,
    Unmodelled,
}

enum Item {
    Row {
        pat: &'static str,
        method: &'static str,
        ep: Ep,
        mws: &'static [Mw],
    },
    Mount {
        pat: &'static str,
        mws: &'static [Mw],
        sub: Sub,
    },
}

const fn row(pat: &'static str, method: &'static str, ep: Ep) -> Item {
    Item::Row {
        pat,
        method,
        ep,
        mws: &[],
    }
}

const fn row_mw(pat: &'static str, method: &'static str, ep: Ep, mws: &'static [Mw]) -> Item {
    Item::Row {
        pat,
        method,
        ep,
        mws,
    }
}

const fn mount(pat: &'static str, mws: &'static [Mw], sub: Sub) -> Item {
    Item::Mount { pat, mws, sub }
}

use Mw::{Admin, AdminOrOperator, Jwt, PasswordChange};

/// The protected group's inline middleware (`JWTAuth` +
/// `RequirePasswordChange`), plus `RequireAdmin` for subrouters that `Use` it.
const PROTECTED: &[Mw] = &[Jwt, PasswordChange];
const PROTECTED_ADMIN: &[Mw] = &[Jwt, PasswordChange, Admin];

fn items(sub: Sub) -> Vec<Item> {
    use Ep::*;
    match sub {
        // NewRouter: health routes, the root redirect, /api/v1. (pprof and
        // /api/v1/grace are not registered under a default `dfs start`.)
        Sub::Top => vec![
            row("/", "GET", RootRedirect),
            mount("/health", &[], Sub::Health),
            mount("/api/v1", &[], Sub::V1),
        ],
        Sub::Health => vec![row("/", "GET", Liveness), row("/ready", "GET", Readiness)],
        Sub::V1 => vec![
            mount("/auth", &[], Sub::Auth),
            // r.Route("/users/me/password") with r.Use(JWTAuth) only.
            mount("/users/me/password", &[Jwt], Sub::OwnPassword),
            mount("/users", PROTECTED, Sub::Users),
            mount("/groups", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/shares", PROTECTED_ADMIN, Sub::Shares),
            mount("/snapshot-policies", PROTECTED_ADMIN, Sub::SnapshotPolicies),
            mount("/blockstore", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/store", PROTECTED_ADMIN, Sub::Store),
            mount("/adapters", PROTECTED, Sub::Adapters),
            mount("/identity-mappings", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/sid-mappings", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/system", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/settings", PROTECTED_ADMIN, Sub::Unmodelled),
            mount(
                "/identity-providers",
                PROTECTED_ADMIN,
                Sub::IdentityProviders,
            ),
            mount("/clients", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/mounts", PROTECTED_ADMIN, Sub::Unmodelled),
            mount("/durable-handles", PROTECTED_ADMIN, Sub::Unmodelled),
        ],
        Sub::Auth => vec![
            row("/login", "POST", Login),
            row("/refresh", "POST", Refresh),
            row_mw("/me", "GET", Me, &[Jwt]),
        ],
        Sub::OwnPassword => vec![row("/", "POST", ChangeOwnPassword)],
        Sub::Users => vec![
            // Self-access allowed: the handler checks admin-or-self.
            row("/{username}", "GET", UserGet),
            row_mw("/", "POST", UserCreate, &[Admin]),
            row_mw("/", "GET", UserList, &[Admin]),
            row_mw("/{username}", "PUT", UserUpdate, &[Admin]),
            row_mw("/{username}", "DELETE", UserDelete, &[Admin]),
            row_mw("/{username}/password", "POST", UserResetPassword, &[Admin]),
        ],
        Sub::Shares => vec![
            row("/", "POST", ShareCreate),
            row("/", "GET", ShareList),
            row("/{name}", "GET", ShareGet),
            row("/{name}", "PUT", ShareUpdate),
            row("/{name}", "DELETE", ShareDelete),
            row("/{name}/status", "GET", Unmodelled),
            row("/{name}/disable", "POST", Unmodelled),
            row("/{name}/enable", "POST", Unmodelled),
            row("/{name}/permissions", "GET", Unmodelled),
            mount("/{name}/snapshots", &[], Sub::Unmodelled),
            mount("/{name}/snapshot-policy", &[], Sub::SnapshotPolicy),
            mount("/{name}/trash", &[], Sub::Unmodelled),
        ],
        // Admin from the parent /shares group.
        Sub::SnapshotPolicy => vec![
            row("/", "PUT", PolicyUpsert),
            row("/", "GET", PolicyGet),
            row("/", "DELETE", PolicyDelete),
            row("/run", "POST", Unmodelled),
        ],
        Sub::SnapshotPolicies => vec![row("/", "GET", PolicyList)],
        Sub::Store => vec![
            mount("/block/{kind}", &[], Sub::StoreBlock),
            mount("/metadata", &[], Sub::StoreMeta),
        ],
        Sub::StoreBlock => vec![
            row("/", "POST", BlockCreate),
            row("/", "GET", BlockList),
            row("/{name}", "GET", BlockGet),
            row("/{name}", "PUT", BlockUpdate),
            row("/{name}", "DELETE", BlockDelete),
            row("/{name}/health", "GET", Unmodelled),
            row("/{name}/status", "GET", Unmodelled),
        ],
        Sub::StoreMeta => vec![
            row("/", "POST", MetaCreate),
            row("/", "GET", MetaList),
            row("/{name}", "GET", MetaGet),
            row("/{name}", "PUT", MetaUpdate),
            row("/{name}", "DELETE", MetaDelete),
            row("/{name}/health", "GET", Unmodelled),
            row("/{name}/status", "GET", Unmodelled),
        ],
        Sub::Adapters => vec![
            // Port discovery: any authenticated user.
            row("/ports", "GET", AdapterPorts),
            // Read endpoint: admin + operator (list only).
            row_mw("/", "GET", AdapterList, &[AdminOrOperator]),
            // Write endpoints + individual get: admin only.
            row_mw("/", "POST", AdapterCreate, &[Admin]),
            mount("/{type}", &[Admin], Sub::AdapterType),
        ],
        Sub::AdapterType => vec![
            row("/", "GET", AdapterGet),
            row("/", "PUT", AdapterUpdate),
            row("/", "DELETE", Unmodelled),
            row("/status", "GET", Unmodelled),
            mount("/settings", &[], Sub::Settings),
            row("/mounts", "GET", Unmodelled),
            mount("/netgroups", &[], Sub::Unmodelled),
            mount("/identity-mappings", &[], Sub::Unmodelled),
        ],
        Sub::Settings => vec![
            row("/", "GET", SettingsGet),
            row("/", "PUT", SettingsPut),
            row("/", "PATCH", SettingsPatch),
            row("/defaults", "GET", Unmodelled),
            row("/reset", "POST", Unmodelled),
        ],
        // router.go: `r.Route("/identity-providers")` with `RequireAdmin`.
        Sub::IdentityProviders => vec![
            row("/", "GET", Unmodelled),
            row("/{type}/config", "GET", IdentityProviderGet),
            row("/{type}/config", "PUT", IdentityProviderPut),
            row("/{type}/test", "POST", Unmodelled),
        ],
        Sub::Unmodelled => Vec::new(),
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

fn is_param(seg: &str) -> bool {
    seg.starts_with('{') && seg.ends_with('}')
}

/// Matches pattern segments against path segments (prefix when `mount`).
/// Returns the priority key (0 static, 1 param, 2 catch-all), the captured
/// params and, for a mount, the remaining sub-path.
fn match_pattern(
    pat: &str,
    path_segs: &[&str],
    is_mount: bool,
) -> Option<(Vec<u8>, Vec<String>, String)> {
    let pat_segs = segments(pat);
    if path_segs.len() < pat_segs.len() || (!is_mount && path_segs.len() != pat_segs.len()) {
        return None;
    }
    let mut key = Vec::with_capacity(pat_segs.len() + 1);
    let mut params = Vec::new();
    for (p, s) in pat_segs.iter().zip(path_segs) {
        if is_param(p) {
            if s.is_empty() {
                return None;
            }
            key.push(1);
            params.push((*s).to_string());
        } else if p == s {
            key.push(0);
        } else {
            return None;
        }
    }
    let rest = &path_segs[pat_segs.len()..];
    if !rest.is_empty() {
        key.push(2);
    }
    Some((key, params, format!("/{}", rest.join("/"))))
}

/// Routes `method` + `path` (the path chi routes on: `RawPath` when set,
/// else the decoded path).
pub fn route(method: &str, path: &str) -> Routed {
    let mut routed = Routed {
        mws: Vec::new(),
        target: Target::NotFound,
        params: Vec::new(),
    };
    resolve(Sub::Top, method, path, &mut routed);
    routed
}

fn resolve(sub: Sub, method: &str, path: &str, acc: &mut Routed) {
    let segs = segments(path);
    let mut cands: Vec<(Vec<u8>, usize, Vec<String>, String)> = Vec::new();
    let table = items(sub);
    for (i, item) in table.iter().enumerate() {
        let (pat, is_mount) = match item {
            Item::Row { pat, .. } => (*pat, false),
            Item::Mount { pat, .. } => (*pat, true),
        };
        if let Some((key, params, rest)) = match_pattern(pat, &segs, is_mount) {
            cands.push((key, i, params, rest));
        }
    }
    cands.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut allowed: Vec<&'static str> = Vec::new();
    for (_, i, params, rest) in cands {
        match &table[i] {
            Item::Row {
                method: m, ep, mws, ..
            } => {
                if *m == method {
                    acc.mws.extend_from_slice(mws);
                    acc.params.extend(params);
                    acc.target = Target::Endpoint(*ep);
                    return;
                }
                if !allowed.contains(m) {
                    allowed.push(m);
                }
            }
            Item::Mount { mws, sub, .. } => {
                acc.mws.extend_from_slice(mws);
                acc.params.extend(params);
                resolve(*sub, method, &rest, acc);
                return;
            }
        }
    }
    acc.target = if allowed.is_empty() {
        Target::NotFound
    } else {
        Target::MethodNotAllowed(allowed)
    };
}
