//! Triggers that are not HTTP requests from outside: a schedule (`trigger.schedule`) and a local
//! queue (`trigger.queue`). Both deliver a CloudEvent 1.0 to the function as an HTTP `POST /`
//! in binary content mode, through [`Platform::invoke`] like any request: the function's
//! `input`, limits, rate and concurrency caps, token and audit all apply.
//!
//! **Invariant:** an event reaches a function only through [`deliver`]; there is no second
//! path into a sandbox.

pub mod queue;
pub mod schedule;

use crate::cloudevents::{CloudEvent, Mode};
use crate::correlation::Origin;
use crate::platform::Platform;
use crate::rate_limit::{Buckets, Caller};
use crate::routes::ActiveFunction;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;

/// The path events are delivered to, as Knative and other CloudEvents senders do.
pub const DELIVERY_PATH: &str = "/";

/// The `source` of the events the platform produces for a function.
pub fn event_source(app: &str, function: &str) -> String {
    format!("/zerofn/apps/{app}/functions/{function}")
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub invocation_id: String,
    /// The function's status, or the platform's when it refused (a 4xx/5xx problem).
    pub status: u16,
}

impl Delivery {
    /// Whether the function accepted the event (a 2xx).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Delivers `event` to `function` in binary mode and waits for the whole response. `trigger`
/// names the rate-limit caller (`trigger:schedule`, `trigger:queue`): platform-made events
/// are charged to the function's own bucket. `caller` is who the audit stream says asked
/// (`schedule`, `queue:<name>`). The invocation continues the trace of the event's
/// `traceparent` extension attribute (the CloudEvents distributed-tracing extension), if it
/// has a valid one, and starts a trace otherwise.
pub async fn deliver(
    platform: &Platform,
    function: &Arc<ActiveFunction>,
    event: &CloudEvent,
    trigger: &str,
    caller: &str,
) -> Delivery {
    let origin = Origin::from_traceparent(
        uuid::Uuid::now_v7().to_string(),
        caller,
        event
            .extensions
            .get(zerofn_audit::TRACEPARENT)
            .map(String::as_str),
    );
    let invocation_id = origin.invocation_id.to_string();
    let request = match event.to_http(Mode::Binary, DELIVERY_PATH) {
        Ok(request) => request,
        Err(error) => {
            // Attribute values were checked when the event was made or accepted; a header
            // that still does not encode is refused like a malformed request.
            tracing::error!(%error, "event does not encode as an HTTP request");
            return Delivery {
                invocation_id,
                status: 400,
            };
        }
    };
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("localhost"),
    );
    let request = hyper::Request::from_parts(parts, Full::new(body));
    if let Err(refused) = platform
        .check_rates(
            function,
            &Caller::Identity(format!("trigger:{trigger}")),
            Buckets::Function,
            &origin,
        )
        .await
    {
        return Delivery {
            invocation_id,
            status: refused.status().as_u16(),
        };
    }
    let response = platform.invoke(function, origin, request).await;
    let status = response.status().as_u16();
    // A body cut off at its cap or deadline is a failed delivery, whatever the head said.
    let status = match response.into_body().collect().await {
        Ok(_) => status,
        Err(_) => 502,
    };
    Delivery {
        invocation_id,
        status,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
