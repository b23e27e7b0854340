//! Stopping a running invocation from outside (the response loop's quarantine): the platform
//! keeps a [`StopSignal`] per invocation and raises it; the sandbox is then dropped, with its
//! lease, wherever the guest is (computing or blocked in a host call).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// A one-way switch shared by the platform and one invocation. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    wake: Notify,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the invocation: a guest that computes traps at the next epoch tick; one blocked
    /// in a host call is dropped at once.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
    }

    /// Whether [`StopSignal::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once the invocation is told to stop.
    pub async fn stopped(&self) {
        loop {
            // Registered before the check, so a `stop` between the two is not missed.
            let notified = self.inner.wake.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}
