//! Export of the audit stream over OTLP (HTTP with protobuf bodies) when `[telemetry]
//! otlp_endpoint` is configured: every committed event as a log record, and invocations and
//! the capability uses that have spans of their own (egress, secret reads, key-value writes)
//! as spans with the W3C ids from the events, so that they join the caller's trace.
//!
//! One task follows the committed stream and exports in batches. Export never slows an
//! invocation: the task reads the broadcast the audit writer already sends (a bounded buffer
//! that never blocks the writer); when the task falls behind, the events it missed, and every
//! batch the collector does not take, are dropped, counted (`zerofn_otlp_events_total{outcome=
//! "dropped"}`) and warned about. The store stays the record; the export is a copy.

use crate::committed::{Followed, Follower};
use crate::metrics::Metrics;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter as _, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use zerofn_audit::EventKind;

/// The most events sent in one export request.
const MAX_BATCH: usize = 512;
/// How long an event waits for its batch to fill.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// How long one export request may take before it is given up (and its batch dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Invocation starts remembered until their end arrives (for the span's start time).
const MAX_OPEN_INVOCATIONS: usize = 16_384;

/// `[telemetry]`: where audit events are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://HOST:PORT`); logs go to `/v1/logs` and
    /// spans to `/v1/traces` under it.
    pub otlp_endpoint: url::Url,
    /// `service.name` of the exported resource.
    pub service_name: String,
}

impl TelemetryConfig {
    /// Checks an endpoint as written in the config: `http://HOST[:PORT][/PATH]`, no user
    /// information, query or fragment.
    pub fn endpoint(text: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("`telemetry.otlp_endpoint` `{text}` is not a URL: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "`telemetry.otlp_endpoint` `{text}`: only `http://` is supported (OTLP over HTTP with protobuf bodies); point it at a collector on this host or a private network"
            ));
        }
        if url.host_str().is_none_or(str::is_empty)
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!(
                "`telemetry.otlp_endpoint` `{text}` must be `http://HOST[:PORT][/PATH]` (no credentials, query or fragment)"
            ));
        }
        Ok(url)
    }

    fn signal_url(&self, signal: &str) -> String {
        format!(
            "{}/v1/{signal}",
            self.otlp_endpoint.as_str().trim_end_matches('/')
        )
    }
}

/// The exporters, built before anything serves.
pub(crate) struct Exporter {
    logs: opentelemetry_otlp::LogExporter,
    spans: opentelemetry_otlp::SpanExporter,
    /// Makes log records; the provider has no processors (the task exports them itself).
    logger: SdkLogger,
    _provider: SdkLoggerProvider,
    scope: InstrumentationScope,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    pub(crate) fn new(config: &TelemetryConfig) -> Result<Self, String> {
        let mut logs = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.signal_url("logs"))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.signal_url("traces"))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .build();
        opentelemetry_sdk::logs::LogExporter::set_resource(&mut logs, &resource);
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut spans, &resource);
        let provider = SdkLoggerProvider::builder().build();
        let scope = InstrumentationScope::builder("zerofn.audit")
            .with_version(zerofn_audit::SCHEMA)
            .build();
        Ok(Self {
            logs,
            spans,
            logger: provider.logger_with_scope(scope.clone()),
            _provider: provider,
            scope,
        })
    }
}

/// Follows the committed stream and exports it until `stopped`.
pub(crate) async fn run(
    exporter: Exporter,
    platform: Arc<crate::Platform>,
    after: Option<i64>,
    mut stopped: watch::Receiver<bool>,
) {
    let metrics = platform.metrics();
    let store = platform.store().clone();
    let mut follower =
        match Follower::start(platform.audit(), store, after, Default::default()).await {
            Ok(follower) => follower.dropping_on_lag(),
            Err(error) => {
                tracing::error!(%error, "OTLP export not started");
                return;
            }
        };
    let mut batch = Batch::default();
    let mut deadline = None;
    loop {
        let flush_at = deadline.unwrap_or_else(|| tokio::time::Instant::now() + BATCH_DELAY);
        tokio::select! {
            next = follower.next() => match next {
                Ok(Some(event)) => {
                    batch.add(&exporter, &event);
                    deadline.get_or_insert(flush_at);
                    if batch.len() >= MAX_BATCH {
                        batch.send(&exporter, metrics).await;
                        deadline = None;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(%error, "OTLP export stopped");
                    break;
                }
            },
            _ = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                batch.send(&exporter, metrics).await;
                deadline = None;
            }
            _ = stopped.changed() => break,
        }
        let missed = follower.take_dropped();
        if missed > 0 {
            metrics.otlp_dropped(missed);
            tracing::warn!(
                missed,
                "OTLP export fell behind the audit stream; events dropped from the export (the store keeps them)"
            );
        }
    }
    batch.send(&exporter, metrics).await;
}

/// Events waiting to be sent: each as a log record, some as spans too.
#[derive(Default)]
struct Batch {
    records: Vec<SdkLogRecord>,
    spans: Vec<SpanData>,
    /// When each open invocation started (ms), by invocation id.
    starts: HashMap<String, i64>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn add(&mut self, exporter: &Exporter, event: &Followed) {
        let json = event.to_json();
        let kind = EventKind::parse(event.kind());
        let at_ms = json["at_ms"].as_i64().unwrap_or(0);
        let attributes = attributes(event, &json);
        let context = trace_context(event);
        let mut record = exporter.logger.create_log_record();
        if let Some(kind) = kind {
            record.set_event_name(kind.as_str());
        }
        record.set_timestamp(time(at_ms, 0));
        record.set_observed_timestamp(SystemTime::now());
        let (severity, text) = match event.outcome() {
            "success" => (Severity::Info, "INFO"),
            "denied" => (Severity::Warn, "WARN"),
            _ => (Severity::Error, "ERROR"),
        };
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_body(AnyValue::String(json.to_string().into()));
        for attribute in &attributes {
            record.add_attribute(attribute.key.clone(), to_any(&attribute.value));
        }
        if let Some((trace_id, span_id, _)) = context {
            record.set_trace_context(trace_id, span_id, Some(TraceFlags::SAMPLED));
        }
        self.records.push(record);

        let Some(kind) = kind else { return };
        if kind == EventKind::InvocationStart {
            if let Some(id) = event.field("invocation_id") {
                if self.starts.len() >= MAX_OPEN_INVOCATIONS {
                    // Invocations that never ended (a crash) must not grow this forever; the
                    // spans of the ones still open fall back to their duration.
                    self.starts.clear();
                }
                self.starts.insert(id.to_string(), at_ms);
            }
            return;
        }
        let span_kind = match kind {
            EventKind::InvocationEnd => SpanKind::Server,
            EventKind::Egress | EventKind::EgressDenied => SpanKind::Client,
            EventKind::SecretRead
            | EventKind::KvRead
            | EventKind::KvWrite
            | EventKind::KvDenied => SpanKind::Internal,
            _ => return,
        };
        let Some((trace_id, span_id, parent)) = context else {
            return;
        };
        let end_us = at_ms.saturating_mul(1000);
        let started_ms = event
            .field("invocation_id")
            .filter(|_| kind == EventKind::InvocationEnd)
            .and_then(|id| self.starts.remove(id));
        let duration_us = json["detail"]["duration_us"]
            .as_i64()
            .or_else(|| json["detail"]["duration_ms"].as_i64().map(|ms| ms * 1000))
            .unwrap_or(0);
        let start_us = match started_ms {
            Some(ms) => ms.saturating_mul(1000).min(end_us),
            None => end_us.saturating_sub(duration_us.max(0)),
        };
        let name = match (event.field("app"), event.field("function")) {
            (Some(app), Some(function)) => format!("{} {app}/{function}", span_name(kind)),
            _ => span_name(kind).to_string(),
        };
        self.spans.push(SpanData {
            span_context: SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent.unwrap_or(SpanId::INVALID),
            // An invocation's parent is the caller's span, in another process or function.
            parent_span_is_remote: kind == EventKind::InvocationEnd && parent.is_some(),
            span_kind,
            name: name.into(),
            start_time: time(0, start_us),
            end_time: time(0, end_us),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: match event.outcome() {
                "success" => Status::Ok,
                _ => Status::error(event.field("reason").unwrap_or("failed").to_string()),
            },
            instrumentation_scope: exporter.scope.clone(),
        });
    }

    /// Sends what is waiting; a batch the collector does not take is dropped and counted.
    async fn send(&mut self, exporter: &Exporter, metrics: &Metrics) {
        let records = std::mem::take(&mut self.records);
        let spans = std::mem::take(&mut self.spans);
        if !records.is_empty() {
            let count = records.len() as u64;
            let pairs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                records.iter().map(|r| (r, &exporter.scope)).collect();
            let sent =
                tokio::time::timeout(EXPORT_TIMEOUT, exporter.logs.export(LogBatch::new(&pairs)))
                    .await;
            match sent {
                Ok(Ok(())) => metrics.otlp_exported(count),
                Ok(Err(error)) => dropped(metrics, count, "log records", &error.to_string()),
                Err(_) => dropped(metrics, count, "log records", "timed out"),
            }
        }
        if !spans.is_empty() {
            let count = spans.len() as u64;
            let sent = tokio::time::timeout(EXPORT_TIMEOUT, exporter.spans.export(spans)).await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(error)) => dropped(metrics, count, "spans", &error.to_string()),
                Err(_) => dropped(metrics, count, "spans", "timed out"),
            }
        }
    }
}

fn dropped(metrics: &Metrics, count: u64, what: &str, error: &str) {
    // Spans are copies of events already counted as log records; only records count.
    if what == "log records" {
        metrics.otlp_dropped(count);
    }
    tracing::warn!(count, %error, "OTLP export failed; {what} dropped (the store keeps the events)");
}

fn span_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::InvocationEnd => "invocation",
        other => other.as_str(),
    }
}

/// The event's trace id, span id and parent span id, when it has valid ones.
fn trace_context(event: &Followed) -> Option<(TraceId, SpanId, Option<SpanId>)> {
    let trace_id = TraceId::from_hex(event.field("trace_id")?).ok()?;
    let span_id = SpanId::from_hex(event.field("span_id")?).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let parent = event
        .field("parent_span_id")
        .and_then(|id| SpanId::from_hex(id).ok())
        .filter(|id| *id != SpanId::INVALID);
    Some((trace_id, span_id, parent))
}

/// The envelope fields as attributes (`zerofn.kind`, `zerofn.outcome`, ...).
fn attributes(event: &Followed, json: &Value) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("zerofn.event.id", event.id()),
        KeyValue::new("zerofn.kind", event.kind().to_string()),
        KeyValue::new("zerofn.outcome", event.outcome().to_string()),
    ];
    for (field, key) in [
        ("reason", "zerofn.reason"),
        ("app", "zerofn.app"),
        ("function", "zerofn.function"),
        ("version_id", "zerofn.version_id"),
        ("identity", "zerofn.identity"),
        ("caller", "zerofn.caller"),
        ("invocation_id", "zerofn.invocation_id"),
    ] {
        if let Some(value) = json[field].as_str() {
            attributes.push(KeyValue::new(key, value.to_string()));
        }
    }
    attributes
}

fn to_any(value: &opentelemetry::Value) -> AnyValue {
    match value {
        opentelemetry::Value::I64(n) => AnyValue::Int(*n),
        opentelemetry::Value::Bool(b) => AnyValue::Boolean(*b),
        opentelemetry::Value::F64(f) => AnyValue::Double(*f),
        other => AnyValue::String(other.as_str().into_owned().into()),
    }
}

fn time(ms: i64, us: i64) -> SystemTime {
    let micros = u64::try_from(ms.saturating_mul(1000).saturating_add(us)).unwrap_or(0);
    UNIX_EPOCH + Duration::from_micros(micros)
}
