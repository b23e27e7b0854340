//! Verifying the stored audit chain: a walk over every event in id order, in pages (so that
//! millions of rows are never loaded at once), that recomputes each link hash, checks each
//! indexed column against the event text, and checks each signed checkpoint. A break is
//! located (the event id), named (edited, deleted, inserted, reordered, truncated, a bad
//! checkpoint) and shown with the expected and found hash prefixes.
//!
//! How breaks are told apart: a stored hash binds its event's original id and predecessor.
//! When a row does not follow from the row before it, the walk looks for the position and
//! predecessor it *does* follow from among its neighbours: found at another id, it was moved
//! (reordered, or renumbered to make room for an inserted row); found nowhere, its content or
//! hash was changed.

use crate::chain::{GENESIS, link_hash, short};
use crate::checkpoint::{self, CheckpointStatement};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use zerofn_signing::PublicKey;
use zerofn_store::{CheckpointRow, Store, StoreError, StoredAuditRow};

/// Rows read per page.
const PAGE: u32 = 4_096;
/// How far (in rows and in ids) the walk looks for where a broken row belongs.
const WINDOW: usize = 8;
/// How many broken rows get that search; after that they are only reported, so that a table
/// rewritten wholesale is still verified in linear time.
const SEARCH_BUDGET: u32 = 1_000;
/// Findings listed in a report; the rest are counted.
const MAX_FINDINGS: usize = 100;

/// What kind of break a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakKind {
    /// The record does not match its hash: its text or its hash was changed.
    Edited,
    /// An indexed column disagrees with the event text (the column was edited).
    ColumnMismatch,
    /// Records are missing from the middle of the chain.
    Deleted,
    /// A record that is not part of the chain was inserted.
    Inserted,
    /// Records are out of their original order.
    Reordered,
    /// A record after the start of the chain has no hash.
    MissingHash,
    /// Records were removed from the end of the log.
    Truncated,
    /// A checkpoint's signature does not verify with the trusted key, or it is malformed.
    CheckpointInvalid,
    /// A validly signed checkpoint names a hash the chain no longer has at its event.
    CheckpointMismatch,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edited => "edited",
            Self::ColumnMismatch => "column-mismatch",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::MissingHash => "missing-hash",
            Self::Truncated => "truncated",
            Self::CheckpointInvalid => "checkpoint-invalid",
            Self::CheckpointMismatch => "checkpoint-mismatch",
        }
    }
}

/// One break, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: BreakKind,
    /// The event id where it is (the first of a range).
    pub id: i64,
    /// The last event id of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<i64>,
    pub detail: String,
    /// The hash the chain expects there (first 8 bytes, hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The hash found there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// No finding.
    pub intact: bool,
    /// Events read.
    pub events: u64,
    /// Events before the chain began (stored before schema version 9, without a hash).
    pub unchained: u64,
    /// The first chained event.
    pub chained_from: Option<i64>,
    pub last_id: Option<i64>,
    /// The last event's hash (hex).
    pub head_hash: Option<String>,
    /// Checkpoints read.
    pub checkpoints: u64,
    /// The event id of the last checkpoint that verified and matches the chain.
    pub last_checkpoint: Option<i64>,
    /// Chained events after that checkpoint: protected by the chain, not yet by a signature.
    pub after_last_checkpoint: u64,
    /// The keys checkpoints were checked against.
    pub key_ids: Vec<String>,
    /// In event id order.
    pub findings: Vec<Finding>,
    /// Findings beyond the first 100, counted but not listed.
    pub findings_omitted: u64,
}

impl VerifyReport {
    /// The report for people.
    pub fn render(&self) -> String {
        let range = match (self.chained_from.or(self.last_id), self.last_id) {
            (Some(first), Some(last)) => format!(" (ids {first}..={last})"),
            _ => String::new(),
        };
        let mut text = if self.intact {
            format!(
                "audit chain intact: {} events{range}, {} checkpoints",
                self.events, self.checkpoints
            )
        } else {
            format!(
                "audit chain BROKEN: {} findings in {} events{range}, {} checkpoints",
                self.findings.len() as u64 + self.findings_omitted,
                self.events,
                self.checkpoints
            )
        };
        match self.last_checkpoint {
            Some(id) => text.push_str(&format!(
                "\nlast valid checkpoint at event {id}, signed by {}; {} events after it are chained but not yet signed",
                self.key_ids.join(", "),
                self.after_last_checkpoint
            )),
            None if self.events > self.unchained => {
                text.push_str("\nno valid checkpoint yet: the chain is not signed")
            }
            None => {}
        }
        if self.unchained > 0 {
            text.push_str(&format!(
                "\n{} events before the chain began are not protected",
                self.unchained
            ));
        }
        for finding in &self.findings {
            let at = match finding.last_id {
                Some(last) if last != finding.id => format!("ids {}..={last}", finding.id),
                _ => format!("id {}", finding.id),
            };
            text.push_str(&format!(
                "\n  {at}: {}: {}",
                finding.kind.as_str(),
                finding.detail
            ));
            if let (Some(expected), Some(found)) = (&finding.expected, &finding.found) {
                text.push_str(&format!(" (expected {expected}…, found {found}…)"));
            }
        }
        if self.findings_omitted > 0 {
            text.push_str(&format!(
                "\n  ... and {} more findings",
                self.findings_omitted
            ));
        }
        text
    }
}

/// Walks the whole stored chain and reports every break it finds, checking checkpoints
/// against `trusted_keys` (the node's checkpoint key, or one exported from it).
pub fn verify(store: &Store, trusted_keys: &[PublicKey]) -> Result<VerifyReport, StoreError> {
    let tail = store.audit_tail()?;
    let mut walk = Walk {
        store,
        trusted: trusted_keys,
        up_to: tail.last_id.unwrap_or(0),
        loaded_after: 0,
        exhausted: false,
        buffer: VecDeque::new(),
        position: 0,
        previous: None,
        pending: Vec::new(),
        checkpoints: VecDeque::new(),
        checkpoints_after: 0,
        checkpoints_exhausted: false,
        searches_left: SEARCH_BUDGET,
        chained: 0,
        chained_at_checkpoint: None,
        findings: Vec::new(),
        report: VerifyReport {
            intact: true,
            events: 0,
            unchained: 0,
            chained_from: None,
            last_id: None,
            head_hash: None,
            checkpoints: 0,
            last_checkpoint: None,
            after_last_checkpoint: 0,
            key_ids: trusted_keys.iter().map(PublicKey::key_id).collect(),
            findings: Vec::new(),
            findings_omitted: 0,
        },
    };
    walk.run()?;
    walk.finish(tail.highest_id_given)
}

/// A stored row as the walk keeps it.
struct Row {
    id: i64,
    hash: Option<[u8; 32]>,
    json: String,
}

/// The last chained row processed: what the next one must follow from.
#[derive(Clone, Copy)]
struct Previous {
    id: i64,
    /// The id it was chained at (differs from `id` for a moved row).
    original_id: i64,
    hash: [u8; 32],
}

/// Consecutive broken rows, kept until a sound row ends them so that they are named together.
enum Segment {
    Unexplained {
        id: i64,
        expected: [u8; 32],
        found: [u8; 32],
    },
    Moved {
        first: i64,
        last: i64,
        offset: i64,
        examples: Vec<(i64, i64)>,
    },
}

/// A run of moved rows: the first and last id, and a few (id now, id chained at) examples.
type MovedRun = (i64, i64, Vec<(i64, i64)>);

struct Walk<'a> {
    store: &'a Store,
    trusted: &'a [PublicKey],
    up_to: i64,
    loaded_after: i64,
    exhausted: bool,
    buffer: VecDeque<Row>,
    /// Index in `buffer` of the next row to process; rows before it are kept as context.
    position: usize,
    previous: Option<Previous>,
    pending: Vec<Segment>,
    checkpoints: VecDeque<(CheckpointRow, Option<CheckpointStatement>)>,
    checkpoints_after: i64,
    checkpoints_exhausted: bool,
    searches_left: u32,
    /// Chained rows processed, and how many there were when the last good checkpoint's row
    /// came up.
    chained: u64,
    chained_at_checkpoint: Option<u64>,
    findings: Vec<Finding>,
    report: VerifyReport,
}

impl Walk<'_> {
    fn run(&mut self) -> Result<(), StoreError> {
        loop {
            while !self.exhausted && self.buffer.len() <= self.position + WINDOW {
                self.load_page()?;
            }
            if self.position >= self.buffer.len() {
                break;
            }
            self.check_checkpoints_before(self.buffer[self.position].id)?;
            self.process();
            self.position += 1;
            while self.position > WINDOW {
                self.buffer.pop_front();
                self.position -= 1;
            }
        }
        self.flush_pending();
        Ok(())
    }

    fn load_page(&mut self) -> Result<(), StoreError> {
        let page = self
            .store
            .audit_chain_page(self.loaded_after, self.up_to, PAGE)?;
        if page.len() < PAGE as usize {
            self.exhausted = true;
        }
        for stored in page {
            self.loaded_after = stored.id;
            self.check_columns(&stored);
            self.buffer.push_back(Row {
                id: stored.id,
                hash: stored
                    .hash
                    .as_deref()
                    .map(|h| <[u8; 32]>::try_from(h).unwrap_or([0xff; 32])),
                json: stored.event,
            });
        }
        Ok(())
    }

    fn add(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// The indexed columns are copies of the event's fields; a query filtering on an edited
    /// column would otherwise mislead without the hash noticing.
    fn check_columns(&mut self, row: &StoredAuditRow) {
        #[derive(Deserialize)]
        struct Indexed<'a> {
            at_ms: Option<i64>,
            #[serde(borrow)]
            kind: Option<Cow<'a, str>>,
            #[serde(borrow)]
            outcome: Option<Cow<'a, str>>,
            #[serde(borrow)]
            invocation_id: Option<Cow<'a, str>>,
            #[serde(borrow)]
            app: Option<Cow<'a, str>>,
            #[serde(borrow)]
            function: Option<Cow<'a, str>>,
            #[serde(borrow)]
            trace_id: Option<Cow<'a, str>>,
        }
        // Text that is not an event fails its hash; there is nothing to compare columns with.
        let Ok(event) = serde_json::from_str::<Indexed<'_>>(&row.event) else {
            return;
        };
        let text = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_string);
        let compared = [
            (
                "at_ms",
                Some(row.at_ms.to_string()),
                event.at_ms.map(|v| v.to_string()),
            ),
            ("kind", Some(row.kind.clone()), text(&event.kind)),
            ("outcome", Some(row.outcome.clone()), text(&event.outcome)),
            (
                "invocation_id",
                row.invocation_id.clone(),
                text(&event.invocation_id),
            ),
            ("app", row.app.clone(), text(&event.app)),
            ("function", row.function.clone(), text(&event.function)),
            ("trace_id", row.trace_id.clone(), text(&event.trace_id)),
        ];
        for (column, stored, in_event) in compared {
            if stored != in_event {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
                self.add(Finding {
                    kind: BreakKind::ColumnMismatch,
                    id: row.id,
                    last_id: None,
                    detail: format!(
                        "column `{column}` says {} but the event says {}: the column was edited",
                        show(&stored),
                        show(&in_event)
                    ),
                    expected: None,
                    found: None,
                });
            }
        }
    }

    fn process(&mut self) {
        let index = self.position;
        let (id, hash) = (self.buffer[index].id, self.buffer[index].hash);
        self.report.events += 1;
        self.report.last_id = Some(id);
        let Some(hash) = hash else {
            match self.previous.as_mut() {
                None => self.report.unchained += 1,
                Some(previous) => {
                    // Keep following from the last hash, at this id, so that the next row
                    // is not taken for one after a deletion.
                    previous.id = id;
                    previous.original_id = id;
                    self.flush_pending();
                    self.add(Finding {
                        kind: BreakKind::MissingHash,
                        id,
                        last_id: None,
                        detail: "the record has no hash although the chain began before it: it was inserted, or its hash removed".into(),
                        expected: None,
                        found: None,
                    });
                }
            }
            return;
        };
        self.report.head_hash = Some(hex::encode(hash));
        self.chained += 1;
        let previous = match self.previous {
            Some(previous) => previous,
            None => {
                self.report.chained_from = Some(id);
                // With no older rows, the chain begins at id 1: rows before this one were
                // deleted.
                let before = if self.report.unchained == 0 {
                    0
                } else {
                    id - 1
                };
                Previous {
                    id: before,
                    original_id: before,
                    hash: GENESIS,
                }
            }
        };
        let (expected, renumbered) = {
            let json = self.buffer[index].json.as_bytes();
            (
                link_hash(&previous.hash, id, json),
                link_hash(&previous.hash, previous.original_id + 1, json) == hash,
            )
        };
        let original_id = if id > previous.id + 1 {
            // The rows in between are gone; this row followed the last of them, so it is
            // taken as the new base rather than reported again.
            self.flush_pending();
            self.add(Finding {
                kind: BreakKind::Deleted,
                id: previous.id + 1,
                last_id: Some(id - 1),
                detail: match id - previous.id - 1 {
                    1 => format!("record {} is missing: it was deleted", id - 1),
                    missing => format!(
                        "{missing} records are missing between ids {} and {id}: they were deleted",
                        previous.id
                    ),
                },
                expected: None,
                found: None,
            });
            id
        } else if expected == hash {
            self.flush_pending();
            id
        } else if renumbered {
            self.moved(id, previous.original_id + 1);
            previous.original_id + 1
        } else {
            match self.search(index, hash) {
                Some(original) if original == id => {
                    // Sound in itself, after a predecessor that was moved: the move is
                    // reported where it is.
                    self.flush_pending();
                    id
                }
                Some(original) => {
                    self.moved(id, original);
                    original
                }
                None => {
                    self.pending.push(Segment::Unexplained {
                        id,
                        expected,
                        found: hash,
                    });
                    id
                }
            }
        };
        self.previous = Some(Previous {
            id,
            original_id,
            hash,
        });
    }

    /// The id this row was chained at, if it follows from the chain start or one of its
    /// neighbours at an id near its own.
    fn search(&mut self, index: usize, hash: [u8; 32]) -> Option<i64> {
        if self.searches_left == 0 {
            return None;
        }
        self.searches_left -= 1;
        let id = self.buffer[index].id;
        let json = self.buffer[index].json.as_bytes();
        let low = index.saturating_sub(WINDOW);
        let high = (index + WINDOW).min(self.buffer.len() - 1);
        let predecessors = std::iter::once(GENESIS).chain(
            (low..=high)
                .filter(|&i| i != index)
                .filter_map(|i| self.buffer[i].hash),
        );
        let window = WINDOW as i64;
        for predecessor in predecessors {
            for candidate in (id - window).max(1)..=id + window {
                if link_hash(&predecessor, candidate, json) == hash {
                    return Some(candidate);
                }
            }
        }
        None
    }

    fn moved(&mut self, id: i64, original: i64) {
        let offset = id - original;
        if let Some(Segment::Moved {
            last,
            offset: run_offset,
            examples,
            ..
        }) = self.pending.last_mut()
            && *last == id - 1
            && *run_offset == offset
        {
            *last = id;
            if examples.len() < 3 {
                examples.push((id, original));
            }
            return;
        }
        self.pending.push(Segment::Moved {
            first: id,
            last: id,
            offset,
            examples: vec![(id, original)],
        });
    }

    /// Names the broken rows collected since the last sound one.
    fn flush_pending(&mut self) {
        let segments = std::mem::take(&mut self.pending);
        let mut segments = segments.into_iter().peekable();
        let mut reordered: Vec<MovedRun> = Vec::new();
        let mut first_segment = true;
        while let Some(segment) = segments.next() {
            let leading = std::mem::replace(&mut first_segment, false);
            match segment {
                // Every row from here on sits one id above the one it was chained at, right
                // after a row that links: that row was slipped in, with a computed hash.
                Segment::Moved {
                    first,
                    last,
                    offset: 1,
                    ..
                } if leading => self.add(Finding {
                    kind: BreakKind::Inserted,
                    id: first - 1,
                    last_id: None,
                    detail: format!(
                        "record {} was inserted: records {first}..={last} were renumbered up by one to make room",
                        first - 1
                    ),
                    expected: None,
                    found: None,
                }),
                Segment::Moved {
                    first,
                    last,
                    examples,
                    ..
                } => reordered.push((first, last, examples)),
                Segment::Unexplained {
                    id,
                    expected,
                    found,
                } => {
                    self.flush_reordered(&mut reordered);
                    let shifted = match segments.peek() {
                        Some(Segment::Moved {
                            first,
                            last,
                            offset,
                            ..
                        }) if *first == id + 1 && offset.abs() == 1 => Some((*last, *offset)),
                        _ => None,
                    };
                    let (kind, last_id, detail) = match shifted {
                        Some((last, 1)) => (
                            BreakKind::Inserted,
                            None,
                            format!(
                                "record {id} is not part of the chain: it was inserted, and records {}..={last} renumbered up by one to make room",
                                id + 1
                            ),
                        ),
                        Some((last, _)) => (
                            BreakKind::Deleted,
                            Some(last),
                            format!(
                                "a record was deleted at id {id} and records {id}..={last} renumbered down by one to close the gap"
                            ),
                        ),
                        None => (
                            BreakKind::Edited,
                            None,
                            format!(
                                "record {id} does not match its hash: its content or hash was changed (or record {} was rewritten together with its hash)",
                                id - 1
                            ),
                        ),
                    };
                    if shifted.is_some() {
                        segments.next();
                    }
                    self.add(Finding {
                        kind,
                        id,
                        last_id,
                        detail,
                        expected: Some(short(&expected)),
                        found: Some(short(&found)),
                    });
                }
            }
        }
        self.flush_reordered(&mut reordered);
    }

    fn flush_reordered(&mut self, runs: &mut Vec<MovedRun>) {
        let (Some(first), Some(last)) = (runs.first().map(|r| r.0), runs.last().map(|r| r.1))
        else {
            return;
        };
        let moves: Vec<String> = runs
            .iter()
            .flat_map(|(_, _, examples)| examples.iter())
            .take(4)
            .map(|(now, was)| format!("id {now} was written as id {was}"))
            .collect();
        runs.clear();
        self.add(Finding {
            kind: BreakKind::Reordered,
            id: first,
            last_id: Some(last),
            detail: format!(
                "records are out of their original order: {}",
                moves.join(", ")
            ),
            expected: None,
            found: None,
        });
    }

    /// Checks the checkpoints whose event comes before the row `id` (or is it).
    fn check_checkpoints_before(&mut self, id: i64) -> Result<(), StoreError> {
        loop {
            if self.checkpoints.is_empty() && !self.checkpoints_exhausted {
                self.load_checkpoints()?;
            }
            let Some((row, _)) = self.checkpoints.front() else {
                return Ok(());
            };
            if row.event_id > id {
                return Ok(());
            }
            let Some((row, statement)) = self.checkpoints.pop_front() else {
                return Ok(());
            };
            let Some(statement) = statement else { continue };
            let at = self
                .buffer
                .get(self.position)
                .filter(|r| r.id == statement.event_id)
                .and_then(|r| r.hash);
            match at {
                Some(hash) if hex::encode(hash) == statement.hash => {
                    self.report.last_checkpoint = Some(statement.event_id);
                    // Checked before its row is processed: that row is not "after" it.
                    self.chained_at_checkpoint = Some(self.chained + 1);
                }
                Some(hash) => self.add(Finding {
                    kind: BreakKind::CheckpointMismatch,
                    id: statement.event_id,
                    last_id: None,
                    detail: format!(
                        "the checkpoint signed at {} names another hash for this event: records up to it were rewritten",
                        row.at_ms
                    ),
                    expected: Some(statement.hash.chars().take(16).collect()),
                    found: Some(short(&hash)),
                }),
                None => self.add(Finding {
                    kind: BreakKind::CheckpointMismatch,
                    id: statement.event_id,
                    last_id: None,
                    detail: "a signed checkpoint names this event, which is no longer in the log (or has no hash): it was deleted".into(),
                    expected: Some(statement.hash.chars().take(16).collect()),
                    found: None,
                }),
            }
        }
    }

    fn load_checkpoints(&mut self) -> Result<(), StoreError> {
        let page = self.store.audit_checkpoints(self.checkpoints_after, PAGE)?;
        if page.len() < PAGE as usize {
            self.checkpoints_exhausted = true;
        }
        for row in page {
            self.checkpoints_after = row.event_id;
            self.report.checkpoints += 1;
            let statement = match checkpoint::open(&row, self.trusted) {
                Ok(statement) => statement,
                Err(reason) => {
                    self.add(Finding {
                        kind: BreakKind::CheckpointInvalid,
                        id: row.event_id,
                        last_id: None,
                        detail: format!(
                            "the checkpoint of this event (key {}) does not verify: {reason}",
                            row.key_id
                        ),
                        expected: None,
                        found: None,
                    });
                    self.checkpoints.push_back((row, None));
                    continue;
                }
            };
            if statement.event_id != row.event_id || statement.hash != hex::encode(&row.hash) {
                self.add(Finding {
                    kind: BreakKind::CheckpointInvalid,
                    id: row.event_id,
                    last_id: None,
                    detail: format!(
                        "the checkpoint's columns disagree with what it signed (event {}, hash {}…): the columns were edited",
                        statement.event_id,
                        statement.hash.chars().take(16).collect::<String>()
                    ),
                    expected: None,
                    found: None,
                });
            }
            self.checkpoints.push_back((row, Some(statement)));
        }
        Ok(())
    }

    fn finish(mut self, highest_id_given: Option<i64>) -> Result<VerifyReport, StoreError> {
        // Checkpoints beyond the last row read: written since the walk began, or naming
        // records removed from the end.
        let now = self.store.audit_tail()?.last_id.unwrap_or(0);
        let last = self.report.last_id.unwrap_or(0);
        loop {
            if self.checkpoints.is_empty() && !self.checkpoints_exhausted {
                self.load_checkpoints()?;
            }
            let Some((row, statement)) = self.checkpoints.pop_front() else {
                break;
            };
            if statement.is_some() && row.event_id > now {
                self.add(Finding {
                    kind: BreakKind::Truncated,
                    id: row.event_id,
                    last_id: None,
                    detail: format!(
                        "a signed checkpoint names event {} but the log ends at {last}: records after {last} were removed",
                        row.event_id
                    ),
                    expected: Some(hex::encode(&row.hash).chars().take(16).collect()),
                    found: None,
                });
            }
        }
        if let Some(given) = highest_id_given.filter(|&given| given > last) {
            self.add(Finding {
                kind: BreakKind::Truncated,
                id: last + 1,
                last_id: Some(given),
                detail: format!(
                    "ids up to {given} were given out but the log ends at {last}: records after {last} were removed"
                ),
                expected: None,
                found: None,
            });
        }
        let mut findings = self.findings;
        findings.sort_by_key(|f| f.id);
        self.report.intact = findings.is_empty();
        self.report.findings_omitted = findings.len().saturating_sub(MAX_FINDINGS) as u64;
        findings.truncate(MAX_FINDINGS);
        self.report.findings = findings;
        self.report.after_last_checkpoint = self.chained - self.chained_at_checkpoint.unwrap_or(0);
        Ok(self.report)
    }
}
