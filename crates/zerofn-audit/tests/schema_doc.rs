//! `docs/audit-events.md` is the schema's documentation: every kind has its section, so the
//! document cannot fall behind the code.

use zerofn_audit::EventKind;

const DOC: &str = include_str!("../../../docs/audit-events.md");

#[test]
fn every_kind_has_a_section_in_the_schema_document() {
    let headings: Vec<&str> = DOC
        .lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|rest| rest.strip_suffix('`'))
        .collect();
    let missing: Vec<&str> = EventKind::ALL
        .iter()
        .map(|kind| kind.as_str())
        .filter(|kind| !headings.contains(kind))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/audit-events.md has no `### `<kind>`` section for {missing:?}"
    );
    // And no section for a kind that does not exist, in the order of `EventKind::ALL`.
    let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(headings, known, "sections must follow EventKind::ALL");
    for field in [
        "schema",
        "kind",
        "at_ms",
        "outcome",
        "reason",
        "invocation_id",
        "app",
        "function",
        "version_id",
        "identity",
        "caller",
        "trace_id",
        "span_id",
        "parent_span_id",
        "detail",
    ] {
        assert!(
            DOC.contains(&format!("| `{field}` |")),
            "the envelope table does not document `{field}`"
        );
    }
}
