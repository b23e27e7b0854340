//! The smallest grants that cover what each function did (`zerofn policy suggest`), as IAM
//! Access Analyzer proposes policies from CloudTrail: every grant of the manifest is kept,
//! narrowed or dropped against the [`Usage`] of the window, with its evidence; the result is a
//! manifest diff, findings (the same text, JSON and SARIF as admission) and a review per function.
//!
//! What the stream cannot show is never narrowed: an egress grant's path (paths are not
//! recorded), and the grants of a function that did not run in the window (no evidence either
//! way: flagged, kept). Refusals are evidence too, but never become grants: a refused use may
//! be a bug, or an attack.

use crate::diff::{self, EgressEntry, EgressSlot, GrantEdits};
use crate::usage::{Denial, EgressUse, Evidence, FunctionUsage, Usage};
use serde::Serialize;
use std::collections::BTreeMap;
use zerofn_admission::{Finding, Level, Rule, Severity};
use zerofn_manifest::{EgressRule, Function, HttpMethod, KvAccess, Manifest};

/// The rules `zerofn policy suggest` reports, for SARIF descriptors and the docs.
pub const RULES: &[Rule] = &[
    Rule {
        id: "use-grant-unused",
        level: Level::Warning,
        rationale: "The function did not use this grant in the window: it is attack surface a \
                    compromised function could use and the function itself does not need.",
        fix: "Remove it, as the suggested diff does; if it is used rarely (a monthly job), widen \
              the window with --since before deciding.",
    },
    Rule {
        id: "use-grant-broader",
        level: Level::Warning,
        rationale: "The grant allows more than the function used in the window: more hosts (a \
                    wildcard), more methods, non-public addresses, or key-value access it never \
                    exercised.",
        fix: "Narrow it to what was used, as the suggested diff does.",
    },
    Rule {
        id: "use-function-idle",
        level: Level::Warning,
        rationale: "The function did not run in the window, so its grants cannot be judged from \
                    use; they are kept.",
        fix: "Widen the window with --since, or review the grants against the component with \
              `zerofn lint`.",
    },
    Rule {
        id: "use-evidence-incomplete",
        level: Level::Warning,
        rationale: "The function used more distinct destinations, names or refusals than the \
                    usage keeps (1000 per capability): the rest were counted, not kept, so no \
                    grant of it can be shown unused and none is dropped or narrowed.",
        fix: "Review its grants by hand or with a shorter window (--since); a function that \
              reaches that many distinct targets may be probing what it can reach.",
    },
    Rule {
        id: "use-denied",
        level: Level::Warning,
        rationale: "The function tried to use a capability and the platform refused it: a grant \
                    it needs is missing, it has a bug, or it is probing what it can reach.",
        fix: "If the function needs it, grant it (suggest never adds grants); otherwise find out \
              why it tried: `zerofn audit tail --app APP --function FUNCTION --outcome denied`.",
    },
];

/// What happens to one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Used as granted.
    Keep,
    /// Used, but less than granted: replaced by `suggested`.
    Narrow,
    /// Not used in the window: removed.
    Drop,
    /// The function did not run in the window: kept, unjudged.
    Unverified,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Keep => "keep",
            Verdict::Narrow => "narrow",
            Verdict::Drop => "drop",
            Verdict::Unverified => "unverified",
        }
    }
}

/// One grant of the manifest, judged.
#[derive(Debug, Clone, Serialize)]
pub struct GrantReview {
    /// The manifest field, e.g. `functions.checkout.grants.egress[0]`.
    pub field: String,
    /// `egress`, `secrets`, `kv` or `invoke`.
    pub grant: &'static str,
    /// The grant as written.
    pub written: String,
    pub verdict: Verdict,
    /// What replaces it, as it will be written (for `narrow`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suggested: Vec<String>,
    /// Why: what was used, what was not.
    pub reason: String,
    /// Every use attributed to the grant.
    pub evidence: Evidence,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// One function's grants and refusals.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionReview {
    pub function: String,
    pub invocations: Evidence,
    /// True when nothing at all was recorded for the function in the window.
    pub idle: bool,
    /// Uses past the bound on distinct uses, counted but not kept: when any, no grant of the
    /// function is dropped or narrowed.
    #[serde(skip_serializing_if = "is_zero")]
    pub overflow: u64,
    pub grants: Vec<GrantReview>,
    pub denied: Vec<Denial>,
    /// Uses of egress destinations not covered by this manifest's grants (the stream saw
    /// another version of the app).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncovered: Vec<EgressUse>,
}

/// The whole suggestion for one app.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub app: String,
    /// The manifest judged, as named to the user.
    pub manifest: String,
    pub since_ms: Option<i64>,
    /// Events read, and the first and last of them.
    pub events: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub functions: Vec<FunctionReview>,
    pub findings: Vec<Finding>,
    /// The unified diff of the manifest (empty when nothing changes).
    pub diff: String,
    /// The manifest with the suggested grants.
    pub suggested_manifest: String,
}

/// Why no suggestion could be made.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("the usage is of app `{usage}`, the manifest is app `{manifest}`")]
    WrongApp { usage: String, manifest: String },
    #[error(transparent)]
    Edit(#[from] diff::DiffError),
    /// A defect of this module: the edited manifest must always be valid.
    #[error("the suggested manifest does not validate: {0}")]
    Invalid(String),
}

/// Judges every grant of `manifest` against `usage`. `manifest_name` is how the manifest is
/// named in the findings and the diff (a path relative to where the user is, or `zerofn.toml`).
pub fn suggest(
    manifest: &Manifest,
    manifest_name: &str,
    usage: &Usage,
) -> Result<Suggestion, SuggestError> {
    if usage.app != manifest.app_name() {
        return Err(SuggestError::WrongApp {
            usage: usage.app.clone(),
            manifest: manifest.app_name().to_string(),
        });
    }
    let empty = FunctionUsage::default();
    let mut functions = Vec::new();
    let mut findings = Vec::new();
    let mut edits = BTreeMap::new();
    for function in manifest.functions() {
        let used = usage.function(&function.name).unwrap_or(&empty);
        let review = review_function(manifest, function, used, &mut edits);
        findings.extend(function_findings(manifest, manifest_name, &review));
        functions.push(review);
    }
    let suggested_manifest = diff::apply(manifest.source(), &edits)?;
    // Whatever the edits did must still be a manifest, with the same functions.
    zerofn_manifest::parse(manifest.path(), &suggested_manifest)
        .map_err(|diagnostics| SuggestError::Invalid(diagnostics.to_string()))?;
    let file = manifest_name.trim_start_matches("./");
    Ok(Suggestion {
        app: usage.app.clone(),
        manifest: manifest_name.to_string(),
        since_ms: usage.since_ms,
        events: usage.events,
        first_ms: usage.first_ms,
        last_ms: usage.last_ms,
        functions,
        findings,
        diff: diff::unified(file, manifest.source(), &suggested_manifest),
        suggested_manifest,
    })
}

fn review_function(
    manifest: &Manifest,
    function: &Function,
    used: &FunctionUsage,
    edits: &mut BTreeMap<String, GrantEdits>,
) -> FunctionReview {
    let grants = &function.grants;
    let base = format!("functions.{}.grants", function.name);
    let idle = used.is_empty();
    // Past the bound on distinct uses, some uses were only counted: what was not kept cannot
    // show that a grant went unused, so nothing of the function is dropped or narrowed.
    let incomplete = used.overflow > 0;
    let hold = idle || incomplete;
    let mut reviews = Vec::new();
    let mut edit = GrantEdits::default();
    let locate = |field: &str| manifest.locate(field).map(|l| l.location);
    let mut grant = |field: String,
                     kind: &'static str,
                     written: String,
                     verdict: Verdict,
                     suggested: Vec<String>,
                     reason: String,
                     evidence: Evidence| {
        let location = locate(&field);
        let verdict = if hold && verdict != Verdict::Keep {
            Verdict::Unverified
        } else {
            verdict
        };
        let held = verdict == Verdict::Unverified;
        reviews.push(GrantReview {
            field,
            grant: kind,
            written,
            verdict,
            suggested: if held { Vec::new() } else { suggested },
            reason: if idle {
                "the function did not run in the window".into()
            } else if held {
                format!(
                    "{reason}; kept: {} use(s) past the bound of distinct uses were counted, not kept",
                    used.overflow
                )
            } else {
                reason
            },
            evidence,
            line: location.as_ref().map(|l| l.line),
            column: location.as_ref().map(|l| l.column),
        });
    };

    // Egress: each use goes to the grants that cover it, exact hosts before wildcards.
    let (attributed, uncovered) = attribute(&grants.egress, &used.egress);
    let mut slots = Vec::new();
    let mut egress_changed = false;
    for (index, rule) in grants.egress.iter().enumerate() {
        let uses = &attributed[index];
        let field = format!("{base}.egress[{index}]");
        let written = written_value(manifest, &field, &rule.as_written);
        let evidence = total(uses.iter().map(|u| &u.evidence));
        if uses.is_empty() {
            grant(
                field,
                "egress",
                written,
                Verdict::Drop,
                Vec::new(),
                "no request went to it in the window".into(),
                evidence,
            );
            egress_changed = true;
            continue;
        }
        let (entries, reasons) = narrow_egress(rule, uses);
        let original_host = if rule.any_subdomain {
            format!("*.{}", rule.host)
        } else {
            rule.host.clone()
        };
        let described = describe_uses(uses);
        if reasons.is_empty() {
            grant(
                field,
                "egress",
                written,
                Verdict::Keep,
                Vec::new(),
                described,
                evidence,
            );
            slots.push((EgressSlot::Original(index), rule_key(rule, &original_host)));
        } else {
            grant(
                field,
                "egress",
                written,
                Verdict::Narrow,
                entries.iter().map(|(e, _)| e.written()).collect(),
                format!("{described}; {}", reasons.join("; ")),
                evidence,
            );
            slots.extend(
                entries
                    .into_iter()
                    .map(|(e, key)| (EgressSlot::New(e), key)),
            );
            egress_changed = true;
        }
    }
    if egress_changed && !hold {
        edit.egress = Some(merge_slots(slots, &grants.egress));
    }

    // Secrets: read, or not.
    let mut kept = Vec::new();
    for (index, name) in grants.secrets.iter().enumerate() {
        let field = format!("{base}.secrets[{index}]");
        let written = written_value(manifest, &field, name);
        match used.secrets.get(name) {
            Some(evidence) => {
                kept.push(index);
                grant(
                    field,
                    "secrets",
                    written,
                    Verdict::Keep,
                    Vec::new(),
                    format!("read {}", times(evidence)),
                    evidence.clone(),
                );
            }
            None => grant(
                field,
                "secrets",
                written,
                Verdict::Drop,
                Vec::new(),
                "never read in the window".into(),
                Evidence::default(),
            ),
        }
    }
    if kept.len() != grants.secrets.len() && !hold {
        edit.secrets = Some(kept);
    }

    // Key-value: the access that was exercised.
    for (bucket, access) in &grants.kv {
        let field = format!("{base}.kv.{bucket}");
        let written = written_value(manifest, &field, access.as_str());
        let kv = used.kv.get(bucket).cloned().unwrap_or_default();
        let read = access.can_read() && !kv.read.is_empty();
        let write = access.can_write() && !kv.write.is_empty();
        let mut evidence = Evidence::default();
        if read {
            evidence.merge(&kv.read);
        }
        if write {
            evidence.merge(&kv.write);
        }
        let needed = match (read, write) {
            (true, true) => Some(KvAccess::ReadWrite),
            (true, false) => Some(KvAccess::Read),
            (false, true) => Some(KvAccess::Write),
            (false, false) => None,
        };
        let mut said = Vec::new();
        if access.can_read() {
            said.push(if read {
                // `kv.read` is recorded once per bucket and invocation, not once per read.
                format!(
                    "read in {} invocation(s), last {}",
                    kv.read.count,
                    timestamp(kv.read.last_ms)
                )
            } else {
                "never read".to_string()
            });
        }
        if access.can_write() {
            said.push(if write {
                format!("written {}", times(&kv.write))
            } else {
                "never written".to_string()
            });
        }
        let reason = said.join(", ");
        match needed {
            None => {
                grant(
                    field,
                    "kv",
                    written,
                    Verdict::Drop,
                    Vec::new(),
                    reason,
                    evidence,
                );
                edit.kv.insert(bucket.clone(), None);
            }
            Some(needed) if needed == *access => grant(
                field,
                "kv",
                written,
                Verdict::Keep,
                Vec::new(),
                reason,
                evidence,
            ),
            Some(needed) => {
                grant(
                    field,
                    "kv",
                    written,
                    Verdict::Narrow,
                    vec![format!("\"{}\"", needed.as_str())],
                    reason,
                    evidence,
                );
                edit.kv.insert(bucket.clone(), Some(needed));
            }
        }
    }
    if hold {
        edit.kv.clear();
    }

    // Calls: made, or not.
    let mut kept = Vec::new();
    for (index, callee) in grants.invoke.iter().enumerate() {
        let field = format!("{base}.invoke[{index}]");
        let written = written_value(manifest, &field, callee);
        match used.invoke.get(callee) {
            Some(evidence) => {
                kept.push(index);
                grant(
                    field,
                    "invoke",
                    written,
                    Verdict::Keep,
                    Vec::new(),
                    format!("called {}", times(evidence)),
                    evidence.clone(),
                );
            }
            None => grant(
                field,
                "invoke",
                written,
                Verdict::Drop,
                Vec::new(),
                "never called in the window".into(),
                Evidence::default(),
            ),
        }
    }
    if kept.len() != grants.invoke.len() && !hold {
        edit.invoke = Some(kept);
    }

    if !edit.is_empty() {
        edits.insert(function.name.clone(), edit);
    }
    FunctionReview {
        function: function.name.clone(),
        invocations: used.invocations.clone(),
        idle,
        overflow: used.overflow,
        grants: reviews,
        denied: used.denied.clone(),
        uncovered,
    }
}

/// The value of `field` as written in the manifest, else `fallback` quoted.
fn written_value(manifest: &Manifest, field: &str, fallback: &str) -> String {
    manifest
        .locate(field)
        .map(|located| located.written)
        .unwrap_or_else(|| format!("\"{fallback}\""))
}

fn total<'a>(evidence: impl Iterator<Item = &'a Evidence>) -> Evidence {
    let mut sum = Evidence::default();
    for e in evidence {
        sum.merge(e);
    }
    sum
}

/// `3 time(s), last 2026-11-02T10:00:00.000Z`.
fn times(evidence: &Evidence) -> String {
    format!(
        "{} time(s), last {}",
        evidence.count,
        timestamp(evidence.last_ms)
    )
}

/// RFC 3339 in UTC, to the millisecond.
pub fn timestamp(at_ms: i64) -> String {
    use std::fmt::Write as _;
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    // `humantime` refuses years past 9999 with a formatting error (which `to_string` would turn
    // into a panic): an events file can say anything, so such a time prints as it was given.
    let mut text = String::new();
    match write!(text, "{}", humantime::format_rfc3339_millis(time)) {
        Ok(()) => text,
        Err(_) => format!("{at_ms} ms since the epoch"),
    }
}

fn describe_uses(uses: &[&EgressUse]) -> String {
    let mut parts: Vec<String> = uses
        .iter()
        .map(|u| format!("{} {} {}", u.method, u.destination, times(&u.evidence)))
        .collect();
    parts.sort();
    parts.join(", ")
}

/// A destination as the platform records it: `scheme://host:port`.
struct Destination<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
}

fn parse_destination(text: &str) -> Option<Destination<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    Some(Destination {
        scheme,
        host,
        port: port.parse().ok()?,
    })
}

fn covers(rule: &EgressRule, destination: &Destination<'_>, method: &str) -> bool {
    let host = if rule.any_subdomain {
        destination
            .host
            .strip_suffix(rule.host.as_str())
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
    } else {
        destination.host == rule.host
    };
    rule.scheme == destination.scheme
        && rule.effective_port() == destination.port
        && host
        && (rule.methods.is_empty() || rule.methods.iter().any(|m| m.as_str() == method))
}

/// For each grant, the uses it is credited with: a use covered by a grant naming its host that
/// surely allowed it (any path; `allow_private` if a non-public address was seen) is credited
/// to the grants naming its host (the path, which would tell them apart, is not recorded);
/// otherwise to every grant covering it, wildcards included. Also the uses no grant covers.
fn attribute<'a>(
    rules: &[EgressRule],
    uses: &'a [EgressUse],
) -> (Vec<Vec<&'a EgressUse>>, Vec<EgressUse>) {
    let mut attributed = vec![Vec::new(); rules.len()];
    let mut uncovered = Vec::new();
    for egress in uses {
        let Some(destination) = parse_destination(&egress.destination) else {
            uncovered.push(egress.clone());
            continue;
        };
        let covering: Vec<usize> = (0..rules.len())
            .filter(|&i| covers(&rules[i], &destination, &egress.method))
            .collect();
        // An exact grant takes the use alone only when it surely allowed it: every path (the
        // path is not recorded) and, when a non-public address was involved, `allow_private`.
        // Otherwise a wildcard covering it may be what allowed it, and keeps the credit too.
        let private_seen = !egress.non_public.is_empty() || egress.addressed == 0;
        let sure = |rule: &EgressRule| {
            !rule.any_subdomain
                && matches!(rule.path_prefix.as_str(), "" | "/")
                && (rule.allow_private || !private_seen)
        };
        let credited = if covering.iter().any(|&i| sure(&rules[i])) {
            covering
                .iter()
                .copied()
                .filter(|&i| !rules[i].any_subdomain)
                .collect()
        } else {
            covering
        };
        if credited.is_empty() {
            uncovered.push(egress.clone());
        }
        for i in credited {
            attributed[i].push(egress);
        }
    }
    (attributed, uncovered)
}

/// The entries that cover exactly `uses` of `rule`, and what was narrowed (empty: nothing, the
/// grant is kept as written).
fn narrow_egress(
    rule: &EgressRule,
    uses: &[&EgressUse],
) -> (Vec<(EgressEntry, EgressKey)>, Vec<String>) {
    // One entry per host used (a wildcard becomes the hosts it was used for).
    let mut hosts: BTreeMap<&str, Vec<&EgressUse>> = BTreeMap::new();
    for egress in uses {
        let host = parse_destination(&egress.destination).map_or("", |d| d.host);
        hosts.entry(host).or_default().push(egress);
    }
    let mut reasons = Vec::new();
    if rule.any_subdomain {
        let names: Vec<&str> = hosts.keys().copied().collect();
        reasons.push(format!(
            "the wildcard was used for {} only",
            names.join(", ")
        ));
    }
    let mut entries = Vec::new();
    let mut narrowed_methods = false;
    let mut dropped_private = false;
    for (host, uses) in &hosts {
        let url = if rule.any_subdomain {
            with_host(&rule.as_written, host)
        } else {
            rule.as_written.clone()
        };
        let mut methods: Vec<HttpMethod> = Vec::new();
        let mut all_known = true;
        for egress in uses {
            match HttpMethod::ALL
                .into_iter()
                .find(|m| m.as_str() == egress.method)
            {
                Some(method) if !methods.contains(&method) => methods.push(method),
                Some(_) => {}
                None => all_known = false,
            }
        }
        methods.sort();
        let methods =
            if all_known && (rule.methods.is_empty() || methods.len() < rule.methods.len()) {
                narrowed_methods = true;
                methods
            } else {
                rule.methods.clone()
            };
        // `allow_private` goes only when addresses were seen and every one was public.
        let private_seen = uses.iter().any(|u| !u.non_public.is_empty());
        let addressed = uses.iter().all(|u| u.addressed > 0);
        let allow_private = rule.allow_private && (private_seen || !addressed);
        if rule.allow_private && !allow_private {
            dropped_private = true;
        }
        let key_host = if rule.any_subdomain {
            host.to_string()
        } else {
            rule.host.clone()
        };
        entries.push((
            EgressEntry {
                url,
                methods,
                allow_private,
            },
            rule_key(rule, &key_host),
        ));
    }
    if narrowed_methods {
        let used: Vec<String> = entries
            .iter()
            .flat_map(|(e, _)| e.methods.iter().map(|m| m.as_str().to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let granted = if rule.methods.is_empty() {
            "any method".to_string()
        } else {
            rule.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        reasons.push(format!("granted {granted}, used {} only", used.join(", ")));
    }
    if dropped_private {
        reasons.push("every address reached was public: allow_private is not needed".into());
    }
    (entries, reasons)
}

/// `as_written` with its authority's host replaced by `host` (the port and path as written).
fn with_host(as_written: &str, host: &str) -> String {
    let Some((scheme, rest)) = as_written.split_once("://") else {
        return as_written.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let port = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map(|(_, port)| format!(":{port}"))
        .unwrap_or_default();
    format!("{scheme}://{host}{port}{path}")
}

/// What makes two egress entries the same destination for the manifest: scheme, host (with
/// its `*.`), port and path prefix.
type EgressKey = (String, String, u16, String);

fn rule_key(rule: &EgressRule, host: &str) -> EgressKey {
    (
        rule.scheme.clone(),
        host.to_string(),
        rule.effective_port(),
        rule.path_prefix.clone(),
    )
}

/// Merges entries naming the same destination as an earlier one, which the manifest would
/// refuse as `duplicate-grant` (a wildcard narrowed to a host another grant names): one entry
/// with the union of their methods.
fn merge_slots(slots: Vec<(EgressSlot, EgressKey)>, rules: &[EgressRule]) -> Vec<EgressSlot> {
    let entry = |slot: &EgressSlot| match slot {
        EgressSlot::Original(i) => rules.get(*i).map(|r| EgressEntry {
            url: r.as_written.clone(),
            methods: r.methods.clone(),
            allow_private: r.allow_private,
        }),
        EgressSlot::New(entry) => Some(entry.clone()),
    };
    let mut merged: Vec<(EgressSlot, EgressKey)> = Vec::new();
    for (slot, key) in slots {
        match merged.iter().position(|(_, other)| *other == key) {
            Some(position) => {
                if let (Some(mut first), Some(second)) = (entry(&merged[position].0), entry(&slot))
                {
                    if first.methods.is_empty() || second.methods.is_empty() {
                        first.methods.clear();
                    } else {
                        for method in second.methods {
                            if !first.methods.contains(&method) {
                                first.methods.push(method);
                            }
                        }
                        first.methods.sort();
                    }
                    first.allow_private |= second.allow_private;
                    merged[position].0 = EgressSlot::New(first);
                }
            }
            None => merged.push((slot, key)),
        }
    }
    merged.into_iter().map(|(slot, _)| slot).collect()
}

/// The findings of one function's review.
fn function_findings(manifest: &Manifest, file: &str, review: &FunctionReview) -> Vec<Finding> {
    let name = &review.function;
    let mut findings = Vec::new();
    let at = |finding: Finding, field: &str| {
        let finding = finding.in_file(file).field(field);
        match manifest.locate(field) {
            Some(located) => finding
                .at(located.location.line, located.location.column)
                .value(located.written),
            None => finding,
        }
    };
    if review.idle {
        let field = format!("functions.{name}");
        let finding = Finding::new(
            "use-function-idle",
            Level::Warning,
            format!(
                "function `{name}` did not run in the window: its {} grant(s) are kept unjudged",
                review.grants.len()
            ),
        )
        .severity(Severity::Info)
        .help("widen the window with --since, or review its grants with `zerofn lint`");
        let finding = finding.in_file(file).field(&field);
        let finding = match manifest.function_location(name) {
            Some(location) => finding.at(location.line, location.column),
            None => finding,
        };
        findings.push(finding);
    }
    if review.overflow > 0 {
        let field = format!("functions.{name}.grants");
        let finding = Finding::new(
            "use-evidence-incomplete",
            Level::Warning,
            format!(
                "function `{name}` used more distinct targets than the usage keeps: {} use(s) were counted, not kept, so its grants are kept unjudged",
                review.overflow
            ),
        )
        .severity(Severity::Low)
        .help("review its grants by hand or with a shorter --since; so many distinct targets may be probing");
        findings.push(at(finding, &field));
    }
    for grant in &review.grants {
        let finding = match grant.verdict {
            Verdict::Keep | Verdict::Unverified => continue,
            Verdict::Drop => Finding::new(
                "use-grant-unused",
                Level::Warning,
                format!(
                    "function `{name}` did not use its {} grant {}: {}",
                    grant.grant, grant.written, grant.reason
                ),
            )
            .severity(if matches!(grant.grant, "egress" | "secrets") {
                Severity::Medium
            } else {
                Severity::Low
            })
            .help("remove it (the suggested diff does), or widen the window with --since"),
            Verdict::Narrow => {
                let broad =
                    grant.reason.contains("wildcard") || grant.reason.contains("allow_private");
                Finding::new(
                    "use-grant-broader",
                    Level::Warning,
                    format!(
                        "function `{name}`'s {} grant {} allows more than it used: {}",
                        grant.grant, grant.written, grant.reason
                    ),
                )
                .severity(if broad {
                    Severity::Medium
                } else {
                    Severity::Low
                })
                .help(format!("narrow it to {}", grant.suggested.join(", ")))
            }
        };
        findings.push(at(finding, &grant.field));
    }
    for denial in &review.denied {
        let what = match &denial.operation {
            Some(operation) => format!("{} {operation} {}", denial.capability, denial.target),
            None => format!("{} {}", denial.capability, denial.target),
        };
        let field = format!("functions.{name}.grants");
        let finding = Finding::new(
            "use-denied",
            Level::Warning,
            format!(
                "function `{name}` was refused {what} ({}) {}",
                denial.rule,
                times(&denial.evidence)
            ),
        )
        .severity(Severity::Low)
        .help(format!(
            "grant it if `{name}` needs it; otherwise investigate: zerofn audit tail --app {} --function {name} --outcome denied",
            manifest.app_name()
        ));
        let finding = if manifest.locate(&field).is_some() {
            at(finding, &field)
        } else {
            let finding = finding.in_file(file).field(format!("functions.{name}"));
            match manifest.function_location(name) {
                Some(location) => finding.at(location.line, location.column),
                None => finding,
            }
        };
        findings.push(finding);
    }
    findings
}

impl Suggestion {
    /// The suggestion for people: each function's grants with their verdict and evidence, its
    /// refusals, the findings, then the diff.
    pub fn render_text(&self) -> String {
        let mut text = format!("policy suggest: app `{}` ({})\n", self.app, self.manifest);
        let window = match (self.first_ms, self.last_ms) {
            (Some(first), Some(last)) => {
                format!(
                    "{} event(s) from {} to {}",
                    self.events,
                    timestamp(first),
                    timestamp(last)
                )
            }
            _ => "no event".to_string(),
        };
        let since = self
            .since_ms
            .map(|s| format!(" (window since {})", timestamp(s)))
            .unwrap_or_default();
        text.push_str(&format!("evidence: {window}{since}\n"));
        for function in &self.functions {
            let ran = if function.invocations.is_empty() {
                "no invocation".to_string()
            } else {
                format!("{} invocation(s)", function.invocations.count)
            };
            text.push_str(&format!("\n{}: {ran}\n", function.function));
            if function.grants.is_empty() {
                text.push_str("  (no grants)\n");
            }
            for grant in &function.grants {
                let suggested = if grant.suggested.is_empty() {
                    String::new()
                } else {
                    format!(" -> {}", grant.suggested.join(", "))
                };
                text.push_str(&format!(
                    "  {:<10} {} = {}{suggested}\n             {}\n",
                    grant.verdict.as_str(),
                    grant.field,
                    grant.written,
                    grant.reason
                ));
            }
            for denial in &function.denied {
                let operation = denial
                    .operation
                    .as_ref()
                    .map(|o| format!(" {o}"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "  {:<10} {}{operation} {} ({}), {}\n",
                    "refused",
                    denial.capability,
                    denial.target,
                    denial.rule,
                    times(&denial.evidence)
                ));
            }
            for egress in &function.uncovered {
                text.push_str(&format!(
                    "  {:<10} egress {} {} is not covered by this manifest's grants, {}\n",
                    "uncovered",
                    egress.method,
                    egress.destination,
                    times(&egress.evidence)
                ));
            }
        }
        if !self.findings.is_empty() {
            text.push('\n');
            text.push_str(&zerofn_admission::render_findings(&self.findings));
        }
        text.push('\n');
        if self.diff.is_empty() {
            text.push_str("no change suggested: every grant was used as granted\n");
        } else {
            text.push_str(&self.diff);
        }
        printable(&text)
    }
}

/// `text` with control characters other than newlines and tabs escaped: targets and names come
/// from guests (a bucket, a secret name as asked for) and must not steer the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
