//! Talking to a DittoFS v0.29 server through its REST API (the control plane).
//!
//! - `api.rs`: the wire: paths, request and response bodies, as the v0.29 handlers
//!   declare them (each cites its source file);
//! - `client.rs`: HTTP, bounded calls, the resolver (system, or a test's table);
//! - `server.rs`: one server's calls, typed;
//! - `account.rs`: the operator's own DittoFS account and its session;
//! - `plan.rs`: pure: what differs between the spec and the live server, and what
//!   may be changed in place; the rest is drift.
//!
//! Passwords and tokens are [`Sensitive`]: never printed, never in an error.

pub mod account;
pub mod api;
pub mod client;
pub mod plan;
pub mod server;
pub mod tls;

pub use client::{CallError, Client, Resolver};
pub use server::Server;

/// A password or token: its `Debug` says nothing, it has no `Display`, and it is
/// read only through [`Sensitive::expose`], where it is sent.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends or stores it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sensitive(..)")
    }
}
