//! dittofs-operator: admission webhook + reconciler for DittoFS servers.
//!
//! Layout (see `docs/architecture.md`):
//! - the API and the one core: [`crd`], [`defaults`] and [`effective`] (what will
//!   run), [`secret_files`] (where each Secret the server reads as a file is),
//!   [`validation`] (shared by webhook, reconciler and CLI), [`resources`] (pure
//!   builders — Service ports are decided in `resources::service`);
//! - the servers: [`webhook`] (HTTPS admission), [`certs`] (certificate bootstrap),
//!   [`controller`] (reconciler), [`dittofs`] (the DittoFS REST API client),
//!   [`leader`] (Lease), [`probes`], [`shutdown`]; [`scope`] says which namespaces
//!   they serve;
//! - the edges: [`cli`], [`manifest`] (reading YAML), [`api_error`] (what a 404
//!   means), [`rbac`], [`policy`] and [`schema`] (generated artifacts),
//!   [`telemetry`], [`names`], [`duration`].
pub mod api_error;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod defaults;
pub mod dittofs;
pub mod duration;
pub mod effective;
pub mod leader;
pub mod manifest;
pub mod names;
pub mod policy;
pub mod probes;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod scope;
pub mod secret_files;
pub mod shutdown;
pub mod telemetry;
pub mod validation;
pub mod webhook;
