//! The zerofn platform: the HTTP trigger that routes requests to functions, the control plane
//! on a private Unix socket, and the deploy/rollback/restore operations over the embedded store
//! and the sandbox runtime.
//!
//! **Architecture invariants**
//! - Every error of configuration is raised by [`start`] before any socket accepts a connection.
//! - Function traffic and the control plane never share a listener.
//! - Every refusal is a problem-details response and an audit event.

#![forbid(unsafe_code)]

pub mod admission;
pub mod alert;
pub mod authn;
pub mod calls;
pub mod certificates;
pub mod cloudevents;
pub(crate) mod committed;
mod config;
pub mod control;
pub mod correlation;
pub mod egress;
mod error;
pub mod input;
pub mod kv;
pub mod metrics;
mod monitor;
pub mod operators;
pub mod otlp;
mod platform;
pub mod problem;
mod quarantine;
pub mod rate_limit;
pub mod report;
pub mod response;
mod routes;
pub mod secrets;
mod server;
pub mod signatures;
mod tls_roots;
pub mod traces;
mod trigger;
pub mod triggers;
pub mod trust;
pub mod vault;

pub use config::ConfigError;
pub use error::DeployError;
pub use platform::{
    DeployBundle, DeployReport, FunctionSummary, Platform, TrustReload, TrustSource,
};
pub use routes::{ActiveApp, ActiveFunction};
pub use server::{
    AdvisoryConfig, COMPILED_DIR, DEFAULT_NODE_NAME, FunctionTls, NODE_SECRET_FILE,
    RemoteControlConfig, RunningServer, ServerConfig, ServerError, start,
};
