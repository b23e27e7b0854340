//! Data-driven parse tests: every `cases/<name>.toml` is parsed and, if rejected, its rendered
//! diagnostics are compared with `cases/<name>.stderr`. The table below also pins each
//! diagnostic's code, line and column, so a blessed snapshot cannot hide a wrong location, and
//! a case file without a table entry (or the reverse) fails the test.

// Test helpers outside `#[test]` functions: a panic is how they report a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A diagnostic as `(code, line, column)`.
type Expected = (&'static str, usize, usize);

/// `(case name, every expected diagnostic in order)`; an empty list means "parses".
const CASES: &[(&str, &[Expected])] = &[
    ("absolute-component", &[("invalid-path", 6, 13)]),
    ("auth-on-schedule", &[("auth-not-applicable", 9, 1)]),
    ("bad-cron", &[("invalid-cron", 7, 33)]),
    ("bad-queue-name", &[("invalid-name", 7, 30)]),
    ("bad-content-type", &[("invalid-input", 10, 18)]),
    ("duplicate-method", &[("duplicate-method", 7, 69)]),
    ("duplicate-route", &[("duplicate-route", 11, 30)]),
    (
        "duplicate-route-default-methods",
        &[("duplicate-route", 11, 30)],
    ),
    (
        "config-shadows-secret",
        &[("config-shadows-secret", 9, 68), ("invalid-name", 9, 91)],
    ),
    ("duplicate-secret", &[("duplicate-grant", 10, 28)]),
    ("egress-bad-scheme", &[("invalid-egress", 10, 11)]),
    ("egress-bare-wildcard", &[("invalid-egress", 10, 11)]),
    ("egress-no-scheme", &[("invalid-egress", 10, 11)]),
    ("egress-query", &[("invalid-egress", 10, 11)]),
    ("egress-userinfo", &[("invalid-egress", 10, 11)]),
    ("egress-wildcard-in-host", &[("invalid-egress", 10, 11)]),
    ("egress-duplicate", &[("duplicate-grant", 10, 46)]),
    (
        "egress-table-errors",
        &[
            ("invalid-methods", 11, 48),
            ("unknown-method", 12, 47),
            ("unknown-method", 12, 54),
            ("duplicate-method", 12, 70),
            ("invalid-egress", 13, 11),
            ("invalid-egress", 14, 11),
        ],
    ),
    ("egress-table-missing-url", &[("missing-key", 10, 11)]),
    ("egress-table-unknown-key", &[("unknown-key", 10, 46)]),
    ("egress-wrong-type", &[("invalid-type", 10, 11)]),
    ("empty-auth", &[("invalid-auth", 9, 1)]),
    ("empty-build-command", &[("invalid-build", 8, 21)]),
    ("empty-functions", &[("no-functions", 5, 1)]),
    ("empty-methods", &[("invalid-methods", 7, 53)]),
    ("grants-not-a-list", &[("invalid-type", 10, 11)]),
    ("huge-integer", &[("invalid-type", 8, 37)]),
    ("input-depth-too-large", &[("invalid-input", 10, 18)]),
    ("invalid-app-name", &[("invalid-name", 2, 8)]),
    ("invalid-function-name", &[("invalid-name", 5, 12)]),
    ("invalid-secret-name", &[("invalid-name", 10, 12)]),
    ("invalid-version", &[("invalid-version", 3, 11)]),
    ("invoke-self", &[("self-invoke", 10, 11)]),
    ("invoke-unknown", &[("unknown-invoke-target", 10, 11)]),
    ("jwt-missing-issuer", &[("missing-key", 10, 7)]),
    ("jwt-symmetric-algorithm", &[("invalid-auth", 10, 120)]),
    ("kv-bad-bucket-name", &[("invalid-name", 10, 8)]),
    ("kv-bad-mode", &[("invalid-value", 10, 17)]),
    ("missing-app", &[("missing-key", 1, 1)]),
    ("missing-app-name", &[("missing-key", 1, 1)]),
    ("missing-component-key", &[("missing-key", 5, 1)]),
    ("missing-trigger", &[("missing-trigger", 7, 11)]),
    (
        "multiple-errors",
        &[
            ("invalid-name", 2, 8),
            ("invalid-route", 7, 30),
            ("invalid-egress", 10, 11),
            ("invalid-name", 11, 12),
        ],
    ),
    ("negative-limit", &[("invalid-limit", 8, 30)]),
    ("no-functions", &[("no-functions", 1, 1)]),
    ("ok-egress-tables", &[]),
    ("ok-full-example", &[]),
    ("ok-same-route-disjoint-methods", &[]),
    ("ok-schedule-and-queue", &[]),
    ("public-false", &[("invalid-auth", 10, 10)]),
    ("route-dot-dot", &[("invalid-route", 7, 30)]),
    ("route-no-leading-slash", &[("invalid-route", 7, 30)]),
    ("route-wildcard", &[("invalid-route", 7, 30)]),
    ("route-with-query", &[("invalid-route", 7, 30)]),
    ("toml-syntax", &[("toml-syntax", 5, 20)]),
    ("two-auth-methods", &[("conflicting-auth", 11, 11)]),
    ("two-trigger-kinds", &[("conflicting-trigger", 7, 54)]),
    ("unknown-function-key", &[("unknown-key", 8, 1)]),
    ("unknown-limits-key", &[("unknown-key", 8, 12)]),
    (
        "unknown-method",
        &[("unknown-method", 7, 62), ("unknown-method", 7, 70)],
    ),
    ("unknown-top-level-key", &[("unknown-key", 5, 2)]),
    ("unknown-trigger-kind", &[("unknown-key", 7, 13)]),
    ("wrong-type-limit", &[("invalid-type", 8, 25)]),
    ("zero-limit", &[("invalid-limit", 8, 43)]),
];

#[test]
fn cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        on_disk, in_table,
        "every case file needs a table entry and vice versa"
    );

    let mut failures = Vec::new();
    for (name, expected) in CASES {
        if let Err(failure) = check(&dir, name, expected) {
            failures.push(format!("case `{name}`: {failure}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check(dir: &Path, name: &str, expected: &[Expected]) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
    // A relative path keeps the rendered output the same on every machine.
    let path = PathBuf::from(format!("tests/cases/{name}.toml"));
    let stderr = dir.join(format!("{name}.stderr"));
    let diagnostics = match zerofn_manifest::parse(&path, &text) {
        Ok(_) if expected.is_empty() => {
            return match stderr.exists() {
                true => Err("parses, but a .stderr file exists; delete it".into()),
                false => Ok(()),
            };
        }
        Ok(_) => return Err(format!("parsed, but expected {expected:?}")),
        Err(diagnostics) => diagnostics,
    };

    let actual: Vec<(&str, usize, usize)> = diagnostics
        .iter()
        .map(|d| {
            let l = d.location.as_ref().expect("parse diagnostics are located");
            (d.code, l.line, l.column)
        })
        .collect();
    let mut problems = Vec::new();
    if actual != expected {
        problems.push(format!("diagnostics {actual:?}, expected {expected:?}"));
    }
    assert!(diagnostics.has_errors());
    for d in &diagnostics {
        assert_eq!(d.file, path);
        assert!(
            d.help.is_some(),
            "every parse error says how to fix it: {d:?}"
        );
    }
    let json = diagnostics.to_json();
    let json = json.as_array().unwrap();
    assert_eq!(json.len(), diagnostics.len());
    for (j, (code, line, column)) in json.iter().zip(&actual) {
        assert_eq!(j["severity"], "error");
        assert_eq!(j["code"], *code);
        assert_eq!(j["line"], *line);
        assert_eq!(j["column"], *column);
        assert_eq!(j["file"], path.display().to_string());
    }
    if let Err(diff) = common::snapshot(&stderr, &diagnostics.render(false)) {
        problems.push(diff);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
