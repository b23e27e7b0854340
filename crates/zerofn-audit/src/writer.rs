//! The single writer: events and guest output go through a bounded channel to one thread that
//! appends them to the store in batches (one transaction per batch), so recording an event costs
//! the invocation a channel send, not a disk write.
//!
//! The writer is also the only place events get their ids and chain hashes (see `chain`): it
//! reads the chain's head from the store when it starts, links each batch to it before the
//! transaction, and moves its head only when the transaction commits, so a batch is chained
//! whole or not at all. Every 10 000 events or 60 seconds (whichever comes first), and when
//! asked at shutdown, it signs the head as a checkpoint in the same transaction.

use crate::chain::{ChainHead, link_hash};
use crate::checkpoint::CheckpointKey;
use crate::{AuditEvent, EventKind, Outcome};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use zerofn_store::{ChainedAuditRow, CheckpointRow, LogRow, Store};

/// How many entries may wait for the writer before `record` makes callers wait (backpressure
/// instead of loss).
const QUEUE_CAPACITY: usize = 65_536;
/// The most entries written in one transaction.
const MAX_BATCH: usize = 4_096;
/// How long the writer waits between polls while entries are arriving: the most an event waits
/// before its batch is written.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// Empty polls (about 100 ms) before the writer parks until the next entry.
const IDLE_POLLS_BEFORE_PARKING: u32 = 50;

/// When the writer signs the chain's head.
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    pub key: Arc<CheckpointKey>,
    /// After this many events since the last checkpoint.
    pub every_events: u64,
    /// Or after this long, if any event came since.
    pub every: Duration,
}

impl CheckpointPolicy {
    /// 10 000 events or 60 seconds, whichever comes first.
    pub fn new(key: Arc<CheckpointKey>) -> Self {
        Self {
            key,
            every_events: 10_000,
            every: Duration::from_secs(60),
        }
    }
}

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
    Checkpoint(oneshot::Sender<()>),
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
    checkpoint_key: Option<Arc<CheckpointKey>>,
}

impl AuditLog {
    /// Starts the writer thread over `store`, chaining events but signing no checkpoints. It
    /// runs until every handle is dropped, then writes what is left and stops.
    pub fn start(store: Store) -> std::io::Result<Self> {
        Self::start_with(store, None)
    }

    /// Starts the writer thread over `store`, continuing the chain from the head stored there
    /// and, with a policy, signing checkpoints.
    pub fn start_with(
        store: Store,
        checkpoints: Option<CheckpointPolicy>,
    ) -> std::io::Result<Self> {
        let head = ChainHead::read(&store).map_err(|e| {
            std::io::Error::other(format!("cannot read the audit chain's head: {e}"))
        })?;
        let last_checkpoint = store.last_audit_checkpoint().map_err(|e| {
            std::io::Error::other(format!("cannot read the last audit checkpoint: {e}"))
        })?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (committed, _) = broadcast::channel(SUBSCRIBER_CAPACITY);
        let checkpoint_key = checkpoints.as_ref().map(|p| p.key.clone());
        let writer = Writer {
            store,
            committed: committed.clone(),
            head,
            // The checkpoint event follows the head it signs: nothing is new until an event
            // after that one.
            covered: last_checkpoint.map_or(0, |c| c.event_id + 1),
            since_checkpoint: 0,
            last_checkpoint_at: Instant::now(),
            policy: checkpoints,
        };
        std::thread::Builder::new()
            .name("zerofn-audit-writer".into())
            .spawn(move || writer.run(receiver))?;
        Ok(Self {
            sender,
            committed,
            checkpoint_key,
        })
    }

    /// The public key checkpoints are signed with, when this log signs them.
    pub fn checkpoint_key(&self) -> Option<&zerofn_signing::PublicKey> {
        self.checkpoint_key.as_deref().map(CheckpointKey::public)
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

    /// Records an event and waits until it is committed: for actions acknowledged to an
    /// operator, whose answer must not outlive their record.
    pub async fn record_durable(&self, event: AuditEvent) {
        self.record(event).await;
        self.flush().await;
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

    /// Waits until everything recorded before this call is committed to the store: from then
    /// on it survives a crash of the process.
    pub async fn flush(&self) {
        self.wait_for(Entry::Flush).await;
    }

    /// Commits everything recorded before this call and signs the chain's head as a
    /// checkpoint (if this log signs checkpoints and anything is new): for a clean shutdown.
    pub async fn checkpoint(&self) {
        self.wait_for(Entry::Checkpoint).await;
    }

    async fn wait_for(&self, entry: fn(oneshot::Sender<()>) -> Entry) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(entry(done)).await.is_ok() {
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

/// The writer thread's state.
struct Writer {
    store: Store,
    committed: broadcast::Sender<Arc<CommittedEvent>>,
    /// The last committed event.
    head: ChainHead,
    /// The id of the last event a checkpoint covers (the checkpoint event itself).
    covered: i64,
    since_checkpoint: u64,
    last_checkpoint_at: Instant,
    policy: Option<CheckpointPolicy>,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Entry>) {
        let mut events = Vec::new();
        let mut logs = Vec::new();
        let mut flushes = Vec::new();
        let mut idle_polls = 0u32;
        // Only for parking with a deadline (a checkpoint due while no events come).
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        loop {
            let mut forced = false;
            // While entries keep coming, poll on a short timer instead of parking on the
            // channel: a parked receiver makes every `record` pay for waking this thread (a
            // futex call on the invocation's hot path). After a quiet spell, park until the
            // next entry, or until a checkpoint is due.
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
                Err(mpsc::error::TryRecvError::Empty) => {
                    let parked = match (self.checkpoint_deadline(), &timer) {
                        (Some(deadline), Ok(timer)) => timer.block_on(async {
                            tokio::time::timeout(deadline, receiver.recv()).await
                        }),
                        _ => Ok(receiver.blocking_recv()),
                    };
                    match parked {
                        Ok(Some(entry)) => {
                            idle_polls = 0;
                            entry
                        }
                        Ok(None) => break,
                        Err(_elapsed) => {
                            self.commit(&mut events, &mut logs, false);
                            continue;
                        }
                    }
                }
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
                    Entry::Checkpoint(done) => {
                        forced = true;
                        flushes.push(done);
                    }
                }
                next = if events.len() + logs.len() < MAX_BATCH {
                    receiver.try_recv().ok()
                } else {
                    None
                };
            }
            self.commit(&mut events, &mut logs, forced);
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
        // Every handle is gone: sign what is left.
        self.commit(&mut events, &mut logs, true);
    }

    /// How long until a checkpoint is due, if events came since the last one.
    fn checkpoint_deadline(&self) -> Option<Duration> {
        let policy = self.policy.as_ref()?;
        (self.head.id > self.covered).then(|| {
            policy
                .every
                .saturating_sub(self.last_checkpoint_at.elapsed())
        })
    }

    /// Chains and stores a batch of events (with a checkpoint when one is due, or `forced`
    /// and anything is new), then publishes them; stores guest output separately.
    fn commit(&mut self, events: &mut Vec<AuditEvent>, logs: &mut Vec<LogRow>, forced: bool) {
        let mut head = self.head;
        let mut rows = Vec::with_capacity(events.len() + 1);
        for event in events.iter() {
            let row = event.to_row();
            head.id += 1;
            head.hash = link_hash(&head.hash, head.id, row.json.as_bytes());
            rows.push(ChainedAuditRow {
                id: head.id,
                hash: head.hash,
                row,
            });
        }
        let since = self.since_checkpoint + rows.len() as u64;
        let due = self.policy.as_ref().is_some_and(|policy| {
            head.id > self.covered
                && (forced
                    || since >= policy.every_events
                    || self.last_checkpoint_at.elapsed() >= policy.every)
        });
        let mut checkpoint = None;
        if due && let Some(policy) = &self.policy {
            let signed = policy.key.sign(head.id, &head.hash, zerofn_store::now_ms());
            let event = checkpoint_event(&signed);
            let row = event.to_row();
            head.id += 1;
            head.hash = link_hash(&head.hash, head.id, row.json.as_bytes());
            rows.push(ChainedAuditRow {
                id: head.id,
                hash: head.hash,
                row,
            });
            events.push(event);
            checkpoint = Some(signed);
        }
        if !rows.is_empty() && self.store_events(&rows, checkpoint.as_ref()) {
            self.head = head;
            self.since_checkpoint = since;
            if checkpoint.is_some() {
                self.covered = head.id;
                self.since_checkpoint = 0;
                self.last_checkpoint_at = Instant::now();
            }
            for (row, event) in rows.iter().zip(events.drain(..)) {
                // No subscriber is not an error: the event is in the store either way.
                let _ = self
                    .committed
                    .send(Arc::new(CommittedEvent { id: row.id, event }));
            }
        }
        events.clear();
        // Guest output goes in its own transaction, so a guest that fills the disk with output
        // cannot take audit events down with it.
        if !logs.is_empty()
            && let Err(error) = self.store.append(&[], None, logs)
        {
            tracing::error!(%error, lines = logs.len(), "guest output not stored");
        }
        logs.clear();
    }

    /// Stores one chained batch, retrying before it is reported lost. Nothing of a batch that
    /// fails is stored, so the head stays where it was and the next batch reuses its ids.
    fn store_events(&self, rows: &[ChainedAuditRow], checkpoint: Option<&CheckpointRow>) -> bool {
        let mut attempt = 0;
        loop {
            match self.store.append(rows, checkpoint, &[]) {
                Ok(()) => return true,
                Err(error) => {
                    attempt += 1;
                    if attempt == EVENT_WRITE_ATTEMPTS {
                        tracing::error!(%error, events = rows.len(), "audit events not stored");
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50 * attempt as u64));
                }
            }
        }
    }
}

/// The event that records a checkpoint in the stream itself.
fn checkpoint_event(checkpoint: &CheckpointRow) -> AuditEvent {
    AuditEvent::new(EventKind::AuditCheckpoint, Outcome::Success)
        .detail("event_id", checkpoint.event_id)
        .detail("hash", hex::encode(&checkpoint.hash))
        .detail("key_id", checkpoint.key_id.clone())
}

/// How often a batch of events is tried before it is reported lost.
const EVENT_WRITE_ATTEMPTS: u32 = 5;
