//! The schedule trigger: each `trigger.schedule` function of an active version gets a
//! `dev.zerofn.schedule.tick` event at every time its cron expression matches (UTC).
//!
//! Ticks are not a backlog: a tick missed while the server was stopped (or while the task was
//! late) is not replayed, the next one is the next match after now. A tick that comes while the
//! function's previous tick is still running is skipped and recorded (`trigger.skipped`,
//! reason `previous-run-in-progress`), so a slow function never piles up sandboxes. The task
//! follows the route table: a deploy or rollback adds, changes or removes schedules at once.

use super::{deliver, event_source};
use crate::cloudevents::CloudEvent;
use crate::platform::Platform;
use crate::routes::{ActiveFunction, RouteTable};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_manifest::{Schedule, Trigger};

/// The CloudEvents `type` of a tick.
pub const TICK_TYPE: &str = "dev.zerofn.schedule.tick";

/// How long the task sleeps when no function has a schedule (a route change wakes it sooner).
const IDLE: Duration = Duration::from_secs(3600);

/// One scheduled function.
struct Entry {
    function: Arc<ActiveFunction>,
    schedule: Schedule,
    /// The next match; `None` when the expression matches nothing any more.
    next: Option<DateTime<Utc>>,
    /// Set while a tick of this function runs.
    running: Arc<AtomicBool>,
}

/// Runs the schedules until `stopped`, then waits up to `grace` for ticks still running.
pub async fn run(platform: Arc<Platform>, mut stopped: watch::Receiver<bool>, grace: Duration) {
    let mut changes = platform.route_changes();
    let mut entries = BTreeMap::new();
    rebuild(&mut entries, &platform.routes(), utc_now());
    let mut running = tokio::task::JoinSet::new();
    loop {
        let now = utc_now();
        for entry in entries.values_mut() {
            if let Some(next) = entry.next
                && next <= now
            {
                fire(&platform, entry, next, &mut running).await;
                // Missed matches are not replayed: the next tick is the first after now.
                entry.next = entry.schedule.next_after(&now);
            }
        }
        while running.try_join_next().is_some() {}
        let wait = entries
            .values()
            .filter_map(|e| e.next)
            .min()
            .map_or(IDLE, |next| (next - now).to_std().unwrap_or(Duration::ZERO));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                rebuild(&mut entries, &platform.routes(), utc_now());
            }
            _ = stopped.changed() => break,
        }
    }
    let _ = tokio::time::timeout(grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
}

/// Brings `entries` in line with `routes`: a function whose version and expression did not
/// change keeps its next tick; a new or changed one starts from the first match after `now`.
fn rebuild(
    entries: &mut BTreeMap<(String, String), Entry>,
    routes: &RouteTable,
    now: DateTime<Utc>,
) {
    let mut next_entries = BTreeMap::new();
    for function in routes.apps().flat_map(|app| app.functions.iter()) {
        let Trigger::Schedule(schedule) = &function.trigger else {
            continue;
        };
        let key = (function.app.to_string(), function.name.to_string());
        let entry = match entries.remove(&key) {
            Some(old)
                if old.function.version_id == function.version_id && old.schedule == *schedule =>
            {
                Entry {
                    function: function.clone(),
                    ..old
                }
            }
            old => Entry {
                function: function.clone(),
                schedule: schedule.clone(),
                next: schedule.next_after(&now),
                // A run of the previous version still counts as the function running.
                running: old.map_or_else(|| Arc::new(AtomicBool::new(false)), |o| o.running),
            },
        };
        next_entries.insert(key, entry);
    }
    *entries = next_entries;
}

/// Starts one tick of `entry`, or records why it was skipped.
async fn fire(
    platform: &Arc<Platform>,
    entry: &Entry,
    scheduled: DateTime<Utc>,
    running: &mut tokio::task::JoinSet<()>,
) {
    let function = &entry.function;
    let suspended = platform
        .routes()
        .app(&function.app)
        .is_some_and(|app| app.suspended.is_some());
    let skipped = if suspended {
        Some("version-suspended")
    } else if entry.running.swap(true, Ordering::AcqRel) {
        Some("previous-run-in-progress")
    } else {
        None
    };
    if let Some(reason) = skipped {
        platform
            .audit()
            .record(
                AuditEvent::new(EventKind::TriggerSkipped, Outcome::Denied)
                    .reason(reason)
                    .function(function.app.clone(), function.name.clone())
                    .version(function.version_id.clone())
                    .detail("trigger", "schedule")
                    .detail("cron", entry.schedule.cron())
                    .detail("scheduled", rfc3339(scheduled)),
            )
            .await;
        return;
    }
    let event = tick(function, &entry.schedule, scheduled);
    let platform = platform.clone();
    let function = function.clone();
    let flag = entry.running.clone();
    running.spawn(async move {
        let delivery = deliver(
            &platform,
            &function,
            &event,
            "schedule",
            crate::correlation::SCHEDULE,
        )
        .await;
        tracing::debug!(
            app = %function.app,
            function = %function.name,
            event = %event.id,
            invocation = %delivery.invocation_id,
            status = delivery.status,
            "schedule tick delivered"
        );
        flag.store(false, Ordering::Release);
    });
}

/// The event of one tick: its data says which expression matched and when.
pub fn tick(
    function: &ActiveFunction,
    schedule: &Schedule,
    scheduled: DateTime<Utc>,
) -> CloudEvent {
    let mut event = CloudEvent::new(
        uuid::Uuid::now_v7().to_string(),
        event_source(&function.app, &function.name),
        TICK_TYPE,
    );
    event.time = Some(rfc3339(scheduled));
    event.datacontenttype = Some("application/json".into());
    event.data = Some(bytes::Bytes::from(
        serde_json::json!({"cron": schedule.cron(), "scheduled": rfc3339(scheduled)}).to_string(),
    ));
    event
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn utc_now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(super::now_ms()).unwrap_or_default()
}
