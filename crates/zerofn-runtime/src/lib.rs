//! The sandbox: a wasmtime engine that runs each invocation of a `wasi:http` component in a new
//! `Store` and instance, with no ambient authority, under per-invocation limits, and throws it
//! away when the invocation ends.
//!
//! **Architecture invariants**
//! - One invocation, one `Store`, one instance. Nothing is reused across invocations except the
//!   compiled code and the pre-instantiated handle, which hold no guest state.
//! - A guest gets no environment variables, arguments, directories, sockets or name lookup.
//!   Every WASI 0.2 interface is linked so ordinary components instantiate, and what the guest
//!   was not granted fails at call time with an error the guest can handle.
//! - Outbound HTTP goes to the platform's [`Outbound`], which decides it; what it does not take
//!   is refused (`HttpRequestDenied`) before any connection exists.
//! - `wasi:config/store` answers only through the platform's [`ConfigSource`] for the
//!   invocation; every value it hands over is redacted from the invocation's captured output
//!   and error details, and wiped from host memory when the invocation ends.
//! - `wasi:keyvalue` reaches only the buckets the platform's [`KeyValue`] opens; without one,
//!   every `open` is refused.
//! - This crate knows nothing of manifests, routes or the store: callers hand it bytes, limits
//!   and an invocation id; it hands back a response or a typed failure and records the
//!   invocation's start and end through the audit log.

mod compile_cache;
mod component;
mod config_store;
mod engine;
mod error;
mod guest_output;
mod invocation;
mod keyvalue;
mod limits;
mod linked;
mod outbound;
mod sandbox;
mod stop;

pub use compile_cache::{CompileCache, load_or_create_key};
pub use component::{ComponentOrigin, LoadedComponent};
pub use config_store::{ConfigFuture, ConfigRefusal, ConfigSource, ConfigValue, REDACTED};
pub use engine::{Runtime, RuntimeConfig};
pub use error::{FailureKind, InvocationFailure, LoadError};
pub use guest_output::{OutputBudget, OutputLimits, PLATFORM_STREAM};
pub use invocation::{Invocation, RequestBody, ResponseBody};
pub use keyvalue::{KeyPage, KeyValue, KvBucket, KvError, MAX_OPEN_BUCKETS, shown};
pub use limits::InvocationLimits;
pub use linked::{LINKED_INTERFACES, linked_as, links};
pub use outbound::{Outbound, OutboundBody, OutboundFuture, RequestOptions, Routed};
pub use stop::StopSignal;

/// The error type of request and response body streams.
pub use wasmtime_wasi_http::Error as BodyError;
