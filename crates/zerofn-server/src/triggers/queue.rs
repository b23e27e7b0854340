//! The local queue trigger: events sent to a queue of an app (`zerofn queue send`) are checked,
//! stored, and delivered at least once to the function whose `trigger.queue` names the queue.
//!
//! An event is accepted only if it is a valid CloudEvent 1.0 and its `data` passes the
//! consumer's `input`, exactly as a request body would: hostile input is refused before it is
//! stored, with the same problem details and rule ids, and recorded (`queue.enqueue`). A queue
//! that no serving function consumes refuses every event (`queue-unknown`): nothing waits for
//! a consumer that may never come.
//!
//! Delivery: the worker leases due messages, invokes the consumer (binary mode, through
//! [`super::deliver`]), deletes a message on a 2xx, and otherwise makes it due again after an
//! exponential backoff. After [`QueueSettings::max_attempts`] failed attempts the message is
//! dead-lettered: kept with its last error, listed by `zerofn queue list`, recorded
//! (`queue.dead_letter`), never silently dropped. A message leased by a server that stopped
//! mid-delivery is delivered again when its lease runs out.

use super::{deliver, now_ms};
use crate::cloudevents::CloudEvent;
use crate::platform::Platform;
use crate::problem::Problem;
use crate::routes::ActiveFunction;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_store::QueueMessage;

/// Messages a queue may hold before new events are refused (`queue-full`): a stalled consumer
/// must not let senders fill the disk.
pub const MAX_PENDING_PER_QUEUE: u64 = 10_000;

/// How many messages the worker leases at once.
const LEASE_BATCH: u32 = 16;

/// The JSON nesting of stored events is already bounded by the consumer's `input` (at most
/// 100); this only stops the parser at the manifest's maximum when reading them back.
const STORED_EVENT_DEPTH: u32 = 100;

/// How the worker retries. The defaults suit production; tests make them small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Deliveries tried before a message is dead-lettered.
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// How often the worker looks for due messages when nothing wakes it.
    pub poll: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

impl QueueSettings {
    /// The wait after the `attempt`-th failed delivery (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry_base
            .checked_mul(factor)
            .unwrap_or(self.retry_max)
            .min(self.retry_max)
    }
}

/// What an accepted event became.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enqueued {
    pub app: String,
    pub queue: String,
    /// The consuming function.
    pub function: String,
    /// The event's `id`.
    pub event_id: String,
    /// The stored message's id.
    pub message_id: i64,
}

/// The function of `app` that consumes `queue`, if `app` serves one.
pub fn consumer(platform: &Platform, app: &str, queue: &str) -> Option<Arc<ActiveFunction>> {
    platform
        .routes()
        .app(app)?
        .functions
        .iter()
        .find(|f| f.trigger.queue() == Some(queue))
        .cloned()
}

/// Checks `body`, a CloudEvent in the structured JSON format, for `queue` of `app` and stores
/// it. Every outcome is a `queue.enqueue` event; a refusal is a problem marked recorded.
pub async fn enqueue(
    platform: &Platform,
    app: &str,
    queue: &str,
    body: &[u8],
) -> Result<Enqueued, Problem> {
    let result = check_and_store(platform, app, queue, body).await;
    let mut event = AuditEvent::new(
        EventKind::QueueEnqueue,
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Denied
        },
    )
    .detail("queue", queue);
    match &result {
        Ok(enqueued) => {
            event = event
                .function(enqueued.app.clone(), enqueued.function.clone())
                .reason("accepted")
                .detail("event_id", enqueued.event_id.clone())
                .detail("message_id", enqueued.message_id);
        }
        Err((problem, function)) => {
            event = event
                .reason(problem.code.clone())
                .detail("app", app)
                .detail("status", problem.status.as_u16());
            if let Some(function) = function {
                event = event
                    .function(function.app.clone(), function.name.clone())
                    .version(function.version_id.clone());
            }
            // Where the data broke its schema (pointers and keywords, never values).
            if let Some((_, errors)) = problem.extra.iter().find(|(key, _)| key == "errors") {
                event = event.detail("errors", errors.clone());
            }
        }
    }
    platform.audit().record(event).await;
    result.map_err(|(problem, _)| problem.already_recorded())
}

async fn check_and_store(
    platform: &Platform,
    app: &str,
    queue: &str,
    body: &[u8],
) -> Result<Enqueued, (Problem, Option<Arc<ActiveFunction>>)> {
    let routes = platform.routes();
    let Some(function) = consumer(platform, app, queue) else {
        return Err((
            Problem::new(
                StatusCode::NOT_FOUND,
                "queue-unknown",
                "No such queue",
                format!(
                    "No serving function of app `{app}` consumes queue `{queue}` (manifest field `trigger.queue.name`); events for it are refused, not kept."
                ),
            ),
            None,
        ));
    };
    let refuse = |problem: Problem| (problem, Some(function.clone()));
    if routes.app(app).is_some_and(|a| a.suspended.is_some()) {
        return Err(refuse(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "version-suspended",
            "Version suspended",
            format!("App `{app}` is suspended; redeploy or roll back before sending events."),
        )));
    }
    let depth = function
        .input
        .as_ref()
        .map_or(zerofn_manifest::InputSpec::DEFAULT_MAX_JSON_DEPTH, |g| {
            g.max_json_depth()
        });
    let event = CloudEvent::from_structured(body, depth).map_err(|error| {
        refuse(Problem::new(
            StatusCode::BAD_REQUEST,
            error.rule(),
            "Not a valid CloudEvent",
            format!("The event for queue `{queue}` is refused: {error}."),
        ))
    })?;
    match &function.input {
        Some(guard) => guard.check_event(&function.name, &event).map_err(refuse)?,
        None => {
            let size = event.data.as_ref().map_or(0, |d| d.len() as u64);
            if size > function.limits.max_request_body_bytes {
                return Err(refuse(
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request-body-too-large",
                        "Event data too large",
                        format!(
                            "The event's data is {size} bytes; function `{}` accepts at most {} (manifest field `limits.max_request_body_bytes`).",
                            function.name, function.limits.max_request_body_bytes
                        ),
                    )
                    .with("limit", function.limits.max_request_body_bytes),
                ));
            }
        }
    }
    let store_error = |error: zerofn_store::StoreError| {
        refuse(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store-error",
            "Store error",
            format!("The event could not be stored: {error}."),
        ))
    };
    let pending = platform
        .store()
        .queue_depth(app, queue)
        .map_err(store_error)?;
    if pending >= MAX_PENDING_PER_QUEUE {
        return Err(refuse(
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue-full",
                "Queue full",
                format!(
                    "Queue `{queue}` of app `{app}` holds {pending} undelivered messages, its limit; retry when its consumer has caught up (see `zerofn queue list`)."
                ),
            )
            .with("limit", MAX_PENDING_PER_QUEUE)
            .retry_after(1),
        ));
    }
    let message_id = platform
        .store()
        .enqueue(
            app,
            queue,
            &event.id,
            &event.to_json().to_string(),
            now_ms(),
        )
        .map_err(store_error)?;
    platform.queue_wake().notify_one();
    Ok(Enqueued {
        app: app.to_string(),
        queue: queue.to_string(),
        function: function.name.to_string(),
        event_id: event.id,
        message_id,
    })
}

/// Delivers due messages until `stopped`; a message in delivery when it stops stays leased
/// and is delivered again after its lease (at least once). `lease` must outlast the longest
/// invocation.
pub async fn run(
    platform: Arc<Platform>,
    settings: QueueSettings,
    lease: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut deliveries = tokio::task::JoinSet::new();
    loop {
        let leased = match platform
            .store()
            .lease_messages(now_ms(), lease_ms, LEASE_BATCH)
        {
            Ok(leased) => leased,
            Err(error) => {
                tracing::error!(%error, "queue messages not leased");
                Vec::new()
            }
        };
        let idle = leased.is_empty();
        for message in leased {
            let platform = platform.clone();
            deliveries.spawn(async move { deliver_message(&platform, &settings, message).await });
        }
        while deliveries.try_join_next().is_some() {}
        if !idle {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = platform.queue_wake().notified() => {}
            _ = stopped.changed() => break,
        }
    }
    // Deliveries under way finish (their invocations are bounded by the function's timeout).
    while deliveries.join_next().await.is_some() {}
}

/// One attempt at `message`, leased, with its attempt counted.
async fn deliver_message(platform: &Platform, settings: &QueueSettings, message: QueueMessage) {
    let outcome = match CloudEvent::from_structured(message.event.as_bytes(), STORED_EVENT_DEPTH) {
        Err(error) => Err((None, format!("stored event unreadable: {error}"))),
        Ok(event) => match consumer(platform, &message.app, &message.queue) {
            None => Err((None, "no serving function consumes the queue".to_string())),
            Some(function) => {
                let caller = format!("queue:{}", message.queue);
                let delivery = deliver(platform, &function, &event, "queue", &caller).await;
                if delivery.succeeded() {
                    Ok((function, delivery))
                } else {
                    let error = format!(
                        "status {} (invocation {})",
                        delivery.status, delivery.invocation_id
                    );
                    Err((Some((function, delivery)), error))
                }
            }
        },
    };
    let store = platform.store();
    let base = |kind, outcome| {
        AuditEvent::new(kind, outcome)
            .detail("queue", message.queue.clone())
            .detail("event_id", message.event_id.clone())
            .detail("message_id", message.id)
            .detail("attempt", message.attempts)
    };
    let with_function = |event: AuditEvent, function: &ActiveFunction, invocation: &str| {
        event
            .function(function.app.clone(), function.name.clone())
            .version(function.version_id.clone())
            .invocation(invocation)
    };
    match outcome {
        Ok((function, delivery)) => {
            if let Err(error) = store.delete_message(message.id) {
                // Kept: it will be delivered again, which at-least-once allows.
                tracing::error!(%error, message = message.id, "delivered message not deleted");
            }
            let event = base(EventKind::QueueDelivery, Outcome::Success)
                .reason("delivered")
                .detail("status", delivery.status);
            platform
                .audit()
                .record(with_function(event, &function, &delivery.invocation_id))
                .await;
        }
        Err((delivered, error)) => {
            let dead = message.attempts >= settings.max_attempts;
            let now = now_ms();
            let stored = if dead {
                store.dead_letter_message(message.id, now, &error)
            } else {
                let wait = i64::try_from(settings.backoff(message.attempts).as_millis())
                    .unwrap_or(i64::MAX);
                store.retry_message(message.id, now.saturating_add(wait), &error)
            };
            if let Err(store_error) = stored {
                tracing::error!(%store_error, message = message.id, "queue message state not saved");
            }
            let (kind, reason) = if dead {
                (EventKind::QueueDeadLetter, "attempts-exhausted")
            } else {
                (EventKind::QueueDelivery, "delivery-failed")
            };
            let mut event = base(kind, Outcome::Failure)
                .reason(reason)
                .detail("app", message.app.clone())
                .detail("error", error)
                .detail("max_attempts", settings.max_attempts);
            if let Some((function, delivery)) = &delivered {
                event = with_function(event, function, &delivery.invocation_id)
                    .detail("status", delivery.status);
            }
            platform.audit().record(event).await;
        }
    }
}
