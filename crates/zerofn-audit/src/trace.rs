//! W3C Trace Context (`traceparent`, version 00): the ids that tie every event of one request
//! together, from the first call at the edge to the last key-value write.
//!
//! A context names the current span and the span that caused it. The platform accepts a
//! caller's `traceparent` at the edge (or starts a trace), gives each invocation, outbound call
//! and capability use its own span under the invocation's, and sends the context on with every
//! call it makes. Ids are kept as lowercase hex, the form they take in headers and events, so
//! that stamping an event copies no bytes.

use std::fmt;
use std::sync::Arc;

/// The header name, as the specification spells it.
pub const TRACEPARENT: &str = "traceparent";

/// Where an event sits in a trace.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: Arc<str>,
    span_id: Arc<str>,
    parent_span_id: Option<Arc<str>>,
    sampled: bool,
}

/// Why a `traceparent` header was not accepted. The platform then starts a new trace (as the
/// specification requires), and says so in the invocation's events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("traceparent is not `00-<32 hex>-<16 hex>-<2 hex>`")]
    Malformed,
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    #[error("traceparent trace id or parent id is all zeros")]
    ZeroId,
}

impl TraceContext {
    /// A new trace, with a random trace id and a root span.
    pub fn start() -> Self {
        Self {
            trace_id: random_hex::<16>(),
            span_id: random_hex::<8>(),
            parent_span_id: None,
            sampled: true,
        }
    }

    /// The context a caller sent: a new span of ours whose parent is the caller's span.
    ///
    /// Versions above 00 are read as 00 (their first four fields), as the specification asks
    /// of a version-00 reader; anything else malformed is refused.
    pub fn continue_from(traceparent: &str) -> Result<Self, TraceParentError> {
        let value = traceparent.trim();
        let mut fields = value.split('-');
        let (Some(version), Some(trace_id), Some(parent_id), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TraceParentError::Malformed);
        };
        if !is_lower_hex(version, 2) || !is_lower_hex(trace_id, 32) {
            return Err(TraceParentError::Malformed);
        }
        if !is_lower_hex(parent_id, 16) || !is_lower_hex(flags, 2) {
            return Err(TraceParentError::Malformed);
        }
        if version == "ff" {
            return Err(TraceParentError::ForbiddenVersion);
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && fields.next().is_some() {
            return Err(TraceParentError::Malformed);
        }
        if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
            return Err(TraceParentError::ZeroId);
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| TraceParentError::Malformed)?;
        Ok(Self {
            trace_id: trace_id.into(),
            span_id: random_hex::<8>(),
            parent_span_id: Some(parent_id.into()),
            sampled: flags & 1 == 1,
        })
    }

    /// The caller's context if it sent a valid one, otherwise a new trace.
    pub fn from_header(traceparent: Option<&str>) -> Self {
        traceparent
            .and_then(|value| Self::continue_from(value).ok())
            .unwrap_or_else(Self::start)
    }

    /// A span caused by this one (an outbound call, a capability use), in the same trace.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            span_id: random_hex::<8>(),
            parent_span_id: Some(self.span_id.clone()),
            sampled: self.sampled,
        }
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &Arc<str> {
        &self.trace_id
    }

    /// The 16-hex-digit id of this span.
    pub fn span_id(&self) -> &Arc<str> {
        &self.span_id
    }

    /// The span that caused this one, if any.
    pub fn parent_span_id(&self) -> Option<&Arc<str>> {
        self.parent_span_id.as_ref()
    }

    /// Whether the caller asked for this trace to be recorded (the `sampled` flag). zerofn
    /// records every event whatever the flag says; the flag is passed on unchanged.
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The `traceparent` header that makes this span the parent of the receiver's.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `N` random bytes as lowercase hex, never all zeros (an all-zero id is invalid).
fn random_hex<const N: usize>() -> Arc<str> {
    let mut bytes = [0u8; N];
    loop {
        // The OS generator failing is not something a trace id can recover from; a
        // time-derived id keeps the request going and stays unique enough for correlation.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(1);
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (nanos >> ((i % 16) * 8)) as u8;
            }
        }
        if bytes.iter().any(|&b| b != 0) {
            return hex::encode(bytes).into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_parent_with_a_new_span() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::continue_from(parent).unwrap();
        assert_eq!(&**context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            context.parent_span_id().map(|s| &**s),
            Some("00f067aa0ba902b7")
        );
        assert_ne!(&**context.span_id(), "00f067aa0ba902b7");
        assert!(context.sampled());
        let sent = context.traceparent();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(sent.ends_with("-01"));
    }

    #[test]
    fn refuses_malformed_parents() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(
                TraceContext::continue_from(bad),
                Err(TraceParentError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            TraceContext::continue_from("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceParentError::ForbiddenVersion)
        );
        assert_eq!(
            TraceContext::continue_from("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(TraceParentError::ZeroId)
        );
        assert_eq!(
            TraceContext::continue_from("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Err(TraceParentError::ZeroId)
        );
    }

    #[test]
    fn reads_a_later_version_as_00() {
        let context = TraceContext::continue_from(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future",
        )
        .unwrap();
        assert!(!context.sampled());
        assert!(context.traceparent().ends_with("-00"));
    }

    #[test]
    fn a_child_is_in_the_same_trace_under_its_parent() {
        let root = TraceContext::start();
        assert_eq!(root.trace_id().len(), 32);
        assert_eq!(root.span_id().len(), 16);
        assert!(root.parent_span_id().is_none());
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_eq!(child.parent_span_id(), Some(root.span_id()));
        assert_ne!(child.span_id(), root.span_id());
        let invalid = TraceContext::from_header(Some("garbage"));
        assert!(invalid.parent_span_id().is_none());
    }
}
