//! Typed errors: why a component could not be loaded, and why an invocation failed.

use std::fmt;

/// A component could not be prepared for serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid WebAssembly component (or are a core module).
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component imports something zerofn does not provide, or does not export
    /// `wasi:http/incoming-handler`.
    #[error("the component cannot run on zerofn: {0}")]
    Link(String),
    /// The engine could not be configured (an operator setting is out of range).
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why an invocation failed. Each kind maps to one HTTP status at the trigger and one `reason`
/// in the audit stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The wall-clock deadline passed.
    Timeout,
    /// The guest tried to grow memory past its ceiling.
    MemoryLimit,
    /// The guest exhausted its stack.
    StackOverflow,
    /// The guest trapped (including Rust panics, which abort with `unreachable`).
    Trap,
    /// The guest returned without setting a response.
    NoResponse,
    /// The guest set an error instead of a response.
    GuestError,
    /// No sandbox could be created (the instance pool is exhausted or instantiation failed).
    Instantiation,
    /// The platform stopped it before its deadline (its function was quarantined).
    Stopped,
}

impl FailureKind {
    /// The stable reason code used in the audit stream and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory-limit",
            Self::StackOverflow => "stack-overflow",
            Self::Trap => "trap",
            Self::NoResponse => "no-response",
            Self::GuestError => "guest-error",
            Self::Instantiation => "instantiation-failed",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A failed invocation. `detail` is for the platform log only: it may contain guest-controlled
/// text and must never reach the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invocation {invocation_id} failed: {kind}")]
pub struct InvocationFailure {
    pub kind: FailureKind,
    pub invocation_id: String,
    pub detail: String,
}
