//! What each function of an app really did, read from the audit stream: the capability uses its
//! grants allowed (egress destinations and methods, secrets read, buckets read and written,
//! functions called), with how often and when, and what it tried and was refused. This is the
//! evidence `zerofn policy suggest` weighs each grant against.
//!
//! The same aggregation runs in the server (over the store, `GET /v1/apps/<app>/usage`) and in
//! the CLI (over a file of events as `zerofn audit tail --json` prints them), so a recorded
//! stream and a live one give the same answer. Events of other apps, and kinds that say nothing
//! about a capability use, are skipped: consumers of `zerofn.audit/v1` ignore what they do not
//! know.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The event kinds that are evidence of use: everything else is skipped. The server asks the
/// store for these only.
pub const KINDS: &[&str] = &[
    "invocation.start",
    "egress",
    "egress.denied",
    "authz.decision",
    "secret.read",
    "kv.read",
    "kv.write",
    "kv.denied",
];

/// Distinct uses (or refusals) kept per function and capability. A guest chooses the names it
/// asks for, so without a bound a hostile one could make the aggregate as large as the stream;
/// past it, uses are still counted in [`FunctionUsage::overflow`].
pub const MAX_DISTINCT: usize = 1000;

/// How often something happened in the window, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub count: u64,
    /// Milliseconds since the Unix epoch of the first and the last event counted.
    pub first_ms: i64,
    pub last_ms: i64,
    /// The id of the last event counted, when the events had ids (readable with
    /// `zerofn audit tail` or `GET /v1/audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<i64>,
}

impl Evidence {
    fn add(&mut self, at_ms: i64, id: Option<i64>) {
        if self.count == 0 || at_ms < self.first_ms {
            self.first_ms = at_ms;
        }
        if self.count == 0 || at_ms >= self.last_ms {
            self.last_ms = at_ms;
            if id.is_some() {
                self.last_event = id;
            }
        }
        self.count += 1;
    }

    /// Adds `other` to this evidence.
    pub fn merge(&mut self, other: &Evidence) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.first_ms < self.first_ms {
            self.first_ms = other.first_ms;
        }
        if self.count == 0 || other.last_ms >= self.last_ms {
            self.last_ms = other.last_ms;
            self.last_event = other.last_event.or(self.last_event);
        }
        self.count += other.count;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Outbound requests to one destination with one method that the platform let through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressUse {
    /// `scheme://host:port`, normalised as the platform compares it (never a path: the path
    /// may carry the caller's data and is not recorded).
    pub destination: String,
    pub method: String,
    pub evidence: Evidence,
    /// The non-public ranges (`loopback`, `rfc1918`, ...) the destination was reached at; empty
    /// when every address seen was public.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_public: Vec<String>,
    /// Exchanges whose address (and its range) is known: without any, whether the destination
    /// is public is unknown.
    #[serde(default)]
    pub addressed: u64,
}

/// A bucket's reads and writes. Reads are `kv.read` events (the first read through each bucket
/// an invocation opened), writes `kv.write` events (each write).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvUse {
    pub read: Evidence,
    pub write: Evidence,
}

/// Something the function tried and the platform refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// `egress`, `secret`, `kv` or `invoke`.
    pub capability: String,
    /// The destination, secret name, bucket or function asked for (as the guest wrote it, cut
    /// by the platform at 128 characters).
    pub target: String,
    /// The method (egress) or operation (key-value), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The rule that refused it (`egress-not-granted`, `kv-read-only`, ...).
    pub rule: String,
    pub evidence: Evidence,
}

/// What one function did in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUsage {
    pub invocations: Evidence,
    pub egress: Vec<EgressUse>,
    pub secrets: BTreeMap<String, Evidence>,
    pub kv: BTreeMap<String, KvUse>,
    pub invoke: BTreeMap<String, Evidence>,
    pub denied: Vec<Denial>,
    /// Uses and refusals not kept individually because [`MAX_DISTINCT`] were already kept.
    #[serde(default)]
    pub overflow: u64,
}

impl FunctionUsage {
    /// Whether anything at all was recorded for the function in the window.
    pub fn is_empty(&self) -> bool {
        self.invocations.is_empty()
            && self.egress.is_empty()
            && self.secrets.is_empty()
            && self.kv.is_empty()
            && self.invoke.is_empty()
            && self.denied.is_empty()
            && self.overflow == 0
    }
}

/// What each function of one app did in a window of the audit stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub app: String,
    /// The window: events at or after `since_ms` (none: from the beginning of the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Events read (of this app, in the window, of the kinds that matter).
    pub events: u64,
    /// The first and last event read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ms: Option<i64>,
    pub functions: BTreeMap<String, FunctionUsage>,
}

/// A file of events that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("line {line}: not a JSON audit event: {reason}")]
    Malformed { line: usize, reason: String },
}

impl Usage {
    /// An empty aggregate for `app`, counting events at or after `since_ms`.
    pub fn new(app: impl Into<String>, since_ms: Option<i64>) -> Self {
        Usage {
            app: app.into(),
            since_ms,
            ..Usage::default()
        }
    }

    /// Aggregates a file of events, one JSON object per line as `zerofn audit tail --json`
    /// prints them (blank lines skipped). A line that is not a JSON object, or an object
    /// without the envelope's `kind` and `at_ms`, is an error naming the line.
    pub fn from_json_lines(
        app: &str,
        since_ms: Option<i64>,
        text: &str,
    ) -> Result<Self, UsageError> {
        let mut usage = Usage::new(app, since_ms);
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let malformed = |reason: String| UsageError::Malformed {
                line: index + 1,
                reason,
            };
            let event: Value = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
            if !event.is_object() {
                return Err(malformed("expected a JSON object".into()));
            }
            if event["kind"].as_str().is_none() || event["at_ms"].as_i64().is_none() {
                return Err(malformed(
                    "an audit event has a string `kind` and an integer `at_ms`".into(),
                ));
            }
            usage.record(event["id"].as_i64(), &event);
        }
        Ok(usage)
    }

    /// Counts one event (`id` is its position in the stream, when known). Events of other apps,
    /// outside the window, without a function, or of kinds that are no evidence are skipped.
    pub fn record(&mut self, id: Option<i64>, event: &Value) {
        let text = |name: &str| event[name].as_str();
        let detail = |name: &str| event["detail"][name].as_str();
        let (Some(kind), Some(at_ms)) = (text("kind"), event["at_ms"].as_i64()) else {
            return;
        };
        if text("app") != Some(self.app.as_str()) || !KINDS.contains(&kind) {
            return;
        }
        if self.since_ms.is_some_and(|since| at_ms < since) {
            return;
        }
        let Some(function) = text("function") else {
            return;
        };
        let denied = text("outcome") == Some("denied");
        let success = text("outcome") == Some("success");
        let rule = text("reason").unwrap_or("denied").to_string();
        let usage = self.functions.entry(function.to_string()).or_default();
        let counted = match kind {
            "invocation.start" => {
                usage.invocations.add(at_ms, id);
                true
            }
            // One per exchange the platform allowed, whether or not a response came: the grant
            // was used either way.
            "egress" => match detail("destination") {
                Some(destination) => {
                    let method = detail("method").unwrap_or("GET");
                    // Every address the name resolved to was decided, not only the one
                    // connected to: a private one among them needed `allow_private` too.
                    let mut ranges: Vec<&str> = event["detail"]["resolved_non_public"]
                        .as_array()
                        .map(|all| all.iter().filter_map(Value::as_str).take(16).collect())
                        .unwrap_or_default();
                    ranges.extend(detail("range"));
                    let addressed = detail("range").is_some();
                    usage.egress_use(destination, method, addressed, &ranges, at_ms, id)
                }
                None => false,
            },
            "egress.denied" => {
                let target = detail("destination").unwrap_or("?");
                let method = detail("method").map(str::to_string);
                usage.denial("egress", target, method, &rule, at_ms, id)
            }
            "authz.decision" => match detail("action") {
                // Calls are decided, then run as the callee's invocation; the decision is the
                // caller's only record of the call.
                Some("invoke") => {
                    let callee = detail("resource").map(callee_name).unwrap_or("?");
                    if success {
                        usage.bounded_insert_invoke(callee, at_ms, id)
                    } else if denied {
                        usage.denial("invoke", callee, None, "invoke-denied", at_ms, id)
                    } else {
                        false
                    }
                }
                _ => false,
            },
            "secret.read" => {
                let name = detail("name").unwrap_or("?");
                // A granted read of a secret that is not stored (or does not open) still used
                // the grant: without it the guest gets an error instead of `none`.
                let granted_failure = text("outcome") == Some("failure")
                    && matches!(
                        text("reason"),
                        Some("secret-undefined" | "secret-unreadable")
                    );
                if success || granted_failure {
                    bounded(&mut usage.secrets, name, at_ms, id) || usage.overflowed()
                } else if denied {
                    usage.denial("secret", name, None, &rule, at_ms, id)
                } else {
                    false
                }
            }
            "kv.read" | "kv.write" if success => match detail("bucket") {
                Some(bucket) => usage.kv_use(bucket, kind == "kv.write", at_ms, id),
                None => false,
            },
            "kv.denied" => {
                let bucket = detail("bucket").unwrap_or("?");
                let operation = detail("operation").map(str::to_string);
                usage.denial("kv", bucket, operation, &rule, at_ms, id)
            }
            _ => false,
        };
        if counted {
            self.events += 1;
            self.first_ms = Some(self.first_ms.map_or(at_ms, |first| first.min(at_ms)));
            self.last_ms = Some(self.last_ms.map_or(at_ms, |last| last.max(at_ms)));
        }
    }

    /// What `function` did (nothing, if it does not appear in the window).
    pub fn function(&self, function: &str) -> Option<&FunctionUsage> {
        self.functions.get(function)
    }
}

/// The function name in a callee's SPIFFE ID (`spiffe://<domain>/app/<app>/fn/<function>`).
fn callee_name(resource: &str) -> &str {
    resource
        .rsplit_once("/fn/")
        .map_or(resource, |(_, name)| name)
}

/// Counts a use of `name` in `map`, keeping at most [`MAX_DISTINCT`] names.
fn bounded(map: &mut BTreeMap<String, Evidence>, name: &str, at_ms: i64, id: Option<i64>) -> bool {
    if let Some(evidence) = map.get_mut(name) {
        evidence.add(at_ms, id);
        return true;
    }
    if map.len() >= MAX_DISTINCT {
        return false;
    }
    map.entry(name.to_string()).or_default().add(at_ms, id);
    true
}

impl FunctionUsage {
    fn overflowed(&mut self) -> bool {
        self.overflow += 1;
        true
    }

    fn bounded_insert_invoke(&mut self, callee: &str, at_ms: i64, id: Option<i64>) -> bool {
        bounded(&mut self.invoke, callee, at_ms, id) || self.overflowed()
    }

    fn egress_use(
        &mut self,
        destination: &str,
        method: &str,
        addressed: bool,
        ranges: &[&str],
        at_ms: i64,
        id: Option<i64>,
    ) -> bool {
        let index = match self
            .egress
            .iter()
            .position(|u| u.destination == destination && u.method == method)
        {
            Some(index) => index,
            None if self.egress.len() >= MAX_DISTINCT => return self.overflowed(),
            None => {
                self.egress.push(EgressUse {
                    destination: destination.to_string(),
                    method: method.to_string(),
                    evidence: Evidence::default(),
                    non_public: Vec::new(),
                    addressed: 0,
                });
                self.egress.len() - 1
            }
        };
        let entry = &mut self.egress[index];
        entry.evidence.add(at_ms, id);
        if addressed {
            entry.addressed += 1;
        }
        for range in ranges {
            if *range != "public" && !entry.non_public.iter().any(|r| r == range) {
                entry.non_public.push(range.to_string());
                entry.non_public.sort();
            }
        }
        true
    }

    fn kv_use(&mut self, bucket: &str, write: bool, at_ms: i64, id: Option<i64>) -> bool {
        if !self.kv.contains_key(bucket) && self.kv.len() >= MAX_DISTINCT {
            return self.overflowed();
        }
        let entry = self.kv.entry(bucket.to_string()).or_default();
        if write {
            entry.write.add(at_ms, id);
        } else {
            entry.read.add(at_ms, id);
        }
        true
    }

    fn denial(
        &mut self,
        capability: &str,
        target: &str,
        operation: Option<String>,
        rule: &str,
        at_ms: i64,
        id: Option<i64>,
    ) -> bool {
        let existing = self.denied.iter().position(|d| {
            d.capability == capability
                && d.target == target
                && d.operation == operation
                && d.rule == rule
        });
        match existing {
            Some(index) => self.denied[index].evidence.add(at_ms, id),
            None if self.denied.len() >= MAX_DISTINCT => return self.overflowed(),
            None => {
                let mut evidence = Evidence::default();
                evidence.add(at_ms, id);
                self.denied.push(Denial {
                    capability: capability.to_string(),
                    target: target.to_string(),
                    operation,
                    rule: rule.to_string(),
                    evidence,
                });
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(events: &[Value]) -> Usage {
        let mut usage = Usage::new("shop", None);
        for (id, event) in events.iter().enumerate() {
            usage.record(Some(id as i64 + 1), event);
        }
        usage
    }

    #[test]
    fn events_of_other_apps_and_before_the_window_are_not_evidence() {
        let start = |app: &str, at: i64| json!({"kind": "invocation.start", "at_ms": at, "outcome": "success", "app": app, "function": "f"});
        let mut usage = Usage::new("shop", Some(100));
        usage.record(Some(1), &start("other", 150));
        usage.record(Some(2), &start("shop", 99));
        usage.record(Some(3), &start("shop", 100));
        assert_eq!(usage.events, 1);
        assert_eq!(usage.functions["f"].invocations.count, 1);
        assert_eq!(usage.functions["f"].invocations.last_event, Some(3));
    }

    #[test]
    fn a_hostile_guest_cannot_grow_the_aggregate_past_the_bound() {
        let events: Vec<Value> = (0..MAX_DISTINCT + 10)
            .map(|n| {
                json!({"kind": "egress.denied", "at_ms": 1, "outcome": "denied", "reason": "egress-not-granted",
                       "app": "shop", "function": "f", "detail": {"destination": format!("https://h{n}.example:443"), "method": "GET"}})
            })
            .collect();
        let usage = usage(&events);
        assert_eq!(usage.functions["f"].denied.len(), MAX_DISTINCT);
        assert_eq!(usage.functions["f"].overflow, 10);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let text = "{\"kind\":\"invocation.start\",\"at_ms\":1}\n\nnot json\n";
        let error = Usage::from_json_lines("shop", None, text).unwrap_err();
        assert!(error.to_string().starts_with("line 3: "), "{error}");
        let error = Usage::from_json_lines("shop", None, "[1,2]").unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
        let error = Usage::from_json_lines("shop", None, "{\"kind\":\"x\"}").unwrap_err();
        assert!(error.to_string().contains("at_ms"), "{error}");
    }
}
