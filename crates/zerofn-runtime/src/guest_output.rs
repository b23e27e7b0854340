//! Capture of a guest's stdout and stderr: bounded per invocation and rate-limited per function,
//! so a guest cannot flood memory or the disk, and tagged with the invocation id on the way to
//! the platform log.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use zerofn_audit::GuestOutputLine;

/// The stream name of the platform's own notices in the log (dropped output), so a guest cannot
/// forge one by printing the same text.
pub const PLATFORM_STREAM: &str = "zerofn";

/// Caps on guest output.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    /// Bytes kept per stream per invocation; the rest is counted and dropped.
    pub max_bytes_per_invocation: usize,
    /// Sustained bytes per second a function may log, across its invocations.
    pub bytes_per_second: u64,
    /// Bytes a function may log in a burst above the sustained rate.
    pub burst_bytes: u64,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_bytes_per_invocation: 64 << 10,
            bytes_per_second: 256 << 10,
            burst_bytes: 1 << 20,
        }
    }
}

/// A function's logging allowance: a token bucket shared by all its invocations.
#[derive(Debug, Clone)]
pub struct OutputBudget {
    bucket: Arc<Mutex<TokenBucket>>,
}

#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    refilled: Instant,
}

impl OutputBudget {
    /// A full bucket for a function, under `limits`.
    pub fn new(limits: &OutputLimits) -> Self {
        let burst = limits.burst_bytes as f64;
        Self {
            bucket: Arc::new(Mutex::new(TokenBucket {
                tokens: burst,
                rate: limits.bytes_per_second as f64,
                burst,
                refilled: Instant::now(),
            })),
        }
    }

    /// Takes up to `wanted` bytes of allowance; returns how many were granted.
    fn take(&self, wanted: usize) -> usize {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(bucket.burst);
        bucket.refilled = now;
        let granted = (wanted as f64).min(bucket.tokens.max(0.0));
        bucket.tokens -= granted;
        granted as usize
    }
}

/// One stream's captured bytes. Writes always succeed from the guest's point of view: output
/// beyond the cap is counted, not kept, so a chatty guest neither traps nor blocks.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl CapturedOutput {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, data: &[u8]) {
        let mut captured = self.lock();
        let room = captured.cap.saturating_sub(captured.bytes.len());
        let kept = room.min(data.len());
        captured.bytes.extend_from_slice(&data[..kept]);
        captured.dropped += (data.len() - kept) as u64;
    }

    /// Turns what was captured into log lines, within the function's budget, with a final line
    /// saying how much was dropped and why.
    pub(crate) fn into_lines(
        self,
        stream: &'static str,
        budget: &OutputBudget,
        revealed: &crate::config_store::Revealed,
        tag: impl Fn(&'static str, String) -> GuestOutputLine,
    ) -> Vec<GuestOutputLine> {
        let captured = std::mem::replace(
            &mut *self.lock(),
            Captured {
                bytes: Vec::new(),
                cap: 0,
                dropped: 0,
            },
        );
        if captured.bytes.is_empty() && captured.dropped == 0 {
            return Vec::new();
        }
        // Redacted before anything is counted or kept: no value the invocation read leaves it.
        let mut bytes = revealed.redact(captured.bytes, captured.dropped > 0);
        let granted = budget.take(bytes.len());
        let mut lines: Vec<GuestOutputLine> = bytes[..granted]
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| tag(stream, String::from_utf8_lossy(line).into_owned()))
            .collect();
        let over_rate = bytes.len() - granted;
        zeroize::Zeroize::zeroize(&mut bytes);
        if captured.dropped > 0 {
            lines.push(tag(
                PLATFORM_STREAM,
                format!(
                    "[zerofn] {} bytes of output dropped: over the per-invocation cap",
                    captured.dropped
                ),
            ));
        }
        if over_rate > 0 {
            lines.push(tag(
                PLATFORM_STREAM,
                format!(
                    "[zerofn] {over_rate} bytes of output dropped: over the function's rate limit"
                ),
            ));
        }
        lines
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
