//! The audit stream: one schema for every decision the platform makes, and one writer that
//! appends those events (and the guests' captured output) to the embedded store.
//!
//! **Invariant:** nothing in zerofn records a security decision anywhere but through
//! [`AuditLog`]. Later guards (egress, secrets, policy) add event kinds here; they do not open
//! their own logs.

#![forbid(unsafe_code)]

mod event;
mod scope;
mod trace;
mod writer;

pub use event::{AuditEvent, Detail, EventKind, Outcome, SCHEMA};
pub use scope::InvocationScope;
pub use trace::{TRACEPARENT, TraceContext, TraceParentError};
pub use writer::{AuditLog, CommittedEvent, GuestOutputLine};
