//! The limits one invocation runs under, and the wasmtime resource limiter that enforces the
//! memory ceiling inside the store.

use std::time::Duration;

/// What one invocation may use. The platform derives these from the manifest, within the
/// operator's ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationLimits {
    /// Wall-clock time from the start of the invocation (the sandbox's creation) to the end of
    /// the guest's work.
    pub timeout: Duration,
    /// The most linear memory the guest may have, across all its memories.
    pub memory_bytes: u64,
    /// The largest request body the guest is given; beyond it the body stream fails.
    pub max_request_body_bytes: u64,
    /// The largest response body sent; beyond it the response is cut off.
    pub max_response_body_bytes: u64,
}

impl Default for InvocationLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            max_request_body_bytes: 1 << 20,
            max_response_body_bytes: 8 << 20,
        }
    }
}

/// Table elements one instance may have; generous for real components, small enough that a
/// table bomb fails quickly.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Enforces the memory ceiling and remembers whether the guest hit it, so that the failure can
/// be reported as a memory limit rather than as the trap the guest's allocator turns it into.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    memory_bytes: usize,
    in_use: usize,
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            in_use: 0,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Components may hold several memories; the ceiling is for all of them together.
        let in_use = self.in_use - current.min(self.in_use) + desired;
        if in_use > self.memory_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.in_use = in_use;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
