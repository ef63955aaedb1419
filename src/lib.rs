//! dittofs-operator: admission webhook + reconciler for DittoFS servers.
//!
//! Layout: [`crd`] (the API), [`defaults`] and [`effective`] (what will run),
//! [`validation`] (the one validation core), [`resources`] (pure builders),
//! [`cli`] (offline commands).
pub mod certs;
pub mod cli;
pub mod crd;
pub mod defaults;
pub mod effective;
pub mod manifest;
pub mod names;
pub mod resources;
pub mod telemetry;
pub mod validation;
