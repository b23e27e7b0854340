//! The single writer: events and guest output go through a bounded channel to one thread that
//! appends them to the store in batches (one transaction per batch), so recording an event costs
//! the invocation a channel send, not a disk write.

use crate::AuditEvent;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};
use zerofn_store::{LogRow, Store};

/// How many entries may wait for the writer before `record` makes callers wait (backpressure
/// instead of loss).
const QUEUE_CAPACITY: usize = 65_536;
/// The most entries written in one transaction.
const MAX_BATCH: usize = 4_096;
/// How long the writer waits between polls while entries are arriving: the most an event waits
/// before its batch is written.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);
/// Empty polls (about 100 ms) before the writer parks until the next entry.
const IDLE_POLLS_BEFORE_PARKING: u32 = 50;

/// One line a guest wrote, tagged with the invocation that wrote it.
#[derive(Debug, Clone)]
pub struct GuestOutputLine {
    pub app: String,
    pub function: String,
    pub invocation_id: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub line: String,
}

enum Entry {
    Event(AuditEvent),
    Log(GuestOutputLine),
    Flush(oneshot::Sender<()>),
}

/// An event as the store committed it: from here on it survives a crash of the process.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// The id the store gave it (its position in the stream).
    pub id: i64,
    pub event: AuditEvent,
}

/// How many committed events a slow subscriber may fall behind before it is told it lagged
/// (it then reads what it missed from the store).
const SUBSCRIBER_CAPACITY: usize = 65_536;

/// The handle every part of zerofn records through. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    sender: mpsc::Sender<Entry>,
    committed: broadcast::Sender<Arc<CommittedEvent>>,
}

impl AuditLog {
    /// Starts the writer thread over `store`. It runs until every handle is dropped, then
    /// writes what is left and stops.
    pub fn start(store: Store) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (committed, _) = broadcast::channel(SUBSCRIBER_CAPACITY);
        let publish = committed.clone();
        std::thread::Builder::new()
            .name("zerofn-audit-writer".into())
            .spawn(move || write_loop(store, receiver, publish))?;
        Ok(Self { sender, committed })
    }

    /// Every event from now on, once it is committed, in stream order. A subscriber that
    /// falls more than 65 536 events behind receives `Lagged` and should read the gap from
    /// the store by id.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedEvent>> {
        self.committed.subscribe()
    }

    /// Records an event. Waits only if the writer is far behind.
    pub async fn record(&self, event: AuditEvent) {
        log_event(&event);
        if self.sender.send(Entry::Event(event)).await.is_err() {
            tracing::error!("audit writer has stopped; event not stored");
        }
    }

    /// Records captured guest output.
    pub async fn guest_output(&self, lines: Vec<GuestOutputLine>) {
        for line in lines {
            if self.sender.send(Entry::Log(line)).await.is_err() {
                tracing::error!("audit writer has stopped; guest output not stored");
                return;
            }
        }
    }

    /// Waits until everything recorded before this call is committed to the store.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Entry::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn log_event(event: &AuditEvent) {
    let invocation = matches!(
        event.kind,
        crate::EventKind::InvocationStart | crate::EventKind::InvocationEnd
    );
    if invocation {
        tracing::debug!(
            kind = event.kind.as_str(),
            outcome = event.outcome.as_str(),
            reason = event.reason.as_deref(),
            invocation = event.invocation_id.as_deref(),
            app = event.app.as_deref(),
            function = event.function.as_deref(),
            "audit"
        );
    } else {
        tracing::info!(
            kind = event.kind.as_str(),
            outcome = event.outcome.as_str(),
            reason = event.reason.as_deref(),
            app = event.app.as_deref(),
            function = event.function.as_deref(),
            "audit"
        );
    }
}

fn write_loop(
    store: Store,
    mut receiver: mpsc::Receiver<Entry>,
    committed: broadcast::Sender<Arc<CommittedEvent>>,
) {
    let mut events = Vec::new();
    let mut logs = Vec::new();
    let mut flushes = Vec::new();
    let mut idle_polls = 0u32;
    loop {
        // While entries keep coming, poll on a short timer instead of parking on the channel:
        // a parked receiver makes every `record` pay for waking this thread (a futex call on
        // the invocation's hot path). After a quiet spell, park until the next entry.
        let first = match receiver.try_recv() {
            Ok(entry) => {
                idle_polls = 0;
                entry
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if idle_polls < IDLE_POLLS_BEFORE_PARKING => {
                idle_polls += 1;
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            Err(mpsc::error::TryRecvError::Empty) => match receiver.blocking_recv() {
                Some(entry) => {
                    idle_polls = 0;
                    entry
                }
                None => break,
            },
        };
        let mut next = Some(first);
        while let Some(entry) = next {
            match entry {
                Entry::Event(event) => events.push(event),
                Entry::Log(line) => logs.push(LogRow {
                    id: 0,
                    at_ms: zerofn_store::now_ms(),
                    app: line.app,
                    function: line.function,
                    invocation_id: line.invocation_id,
                    stream: line.stream.to_string(),
                    line: line.line,
                }),
                Entry::Flush(done) => flushes.push(done),
            }
            next = if events.len() + logs.len() < MAX_BATCH {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        let ids = store_batch(&store, &events, &logs);
        for (id, event) in ids.into_iter().zip(events.drain(..)) {
            // No subscriber is not an error: the event is in the store either way.
            let _ = committed.send(Arc::new(CommittedEvent { id, event }));
        }
        events.clear();
        logs.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes audit events and guest output in separate transactions, so a guest that fills the
/// disk with output cannot take audit events down with it; events are retried before they are
/// reported lost.
fn store_batch(store: &Store, events: &[AuditEvent], logs: &[LogRow]) -> Vec<i64> {
    let mut ids = Vec::new();
    if !events.is_empty() {
        let rows: Vec<_> = events.iter().map(AuditEvent::to_row).collect();
        let mut attempt = 0;
        loop {
            match store.append(&rows, &[]) {
                Ok(stored) => {
                    ids = stored;
                    break;
                }
                Err(error) => {
                    attempt += 1;
                    if attempt == EVENT_WRITE_ATTEMPTS {
                        tracing::error!(%error, events = events.len(), "audit events not stored");
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50 * attempt as u64));
                }
            }
        }
    }
    if !logs.is_empty()
        && let Err(error) = store.append(&[], logs)
    {
        tracing::error!(%error, lines = logs.len(), "guest output not stored");
    }
    ids
}

/// How often a batch of events is tried before it is reported lost.
const EVENT_WRITE_ATTEMPTS: u32 = 5;
