//! The audit stream: one schema for every decision the platform makes, and one writer that
//! appends those events (and the guests' captured output) to the embedded store, hash-chained
//! and periodically checkpointed under the node's key, so that `verify` can tell whether the
//! stored stream was edited, and where.
//!
//! **Invariant:** nothing in zerofn records a security decision anywhere but through
//! [`AuditLog`]. Later guards (egress, secrets, policy) add event kinds here; they do not open
//! their own logs.
//!
//! **Invariant:** only the writer thread gives events their ids and hashes; nothing in zerofn
//! updates or deletes a stored event.

#![forbid(unsafe_code)]

mod chain;
mod checkpoint;
mod event;
mod scope;
mod trace;
mod verify;
mod writer;

pub use chain::{ChainHead, GENESIS, link_hash};
pub use checkpoint::{
    CHECKPOINT_KEY_FILE, CHECKPOINT_PAYLOAD_TYPE, CHECKPOINT_STATEMENT_TYPE, CheckpointKey,
    CheckpointKeyError, CheckpointStatement,
};
pub use event::{AuditEvent, Detail, EventKind, Outcome, SCHEMA};
pub use scope::InvocationScope;
pub use trace::{TRACEPARENT, TraceContext, TraceParentError};
pub use verify::{BreakKind, Finding, VerifyReport, verify};
pub use writer::{AuditLog, CheckpointPolicy, CommittedEvent, GuestOutputLine};
