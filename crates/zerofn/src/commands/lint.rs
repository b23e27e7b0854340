//! `zerofn lint`: the least-privilege review of an app, offline, for people and for CI.

use super::build;
use crate::cli::ReportFormat;
use crate::exit::{Code, Failure};
use std::path::Path;
use zerofn_admission::{Finding, Severity};

/// Reviews the app in `app_dir` and prints the findings in `format`; fails (exit 3) when one is
/// at least `fail_on`.
pub fn lint(app_dir: &Path, format: ReportFormat, fail_on: Severity) -> Result<(), Failure> {
    let manifest = build::load_manifest(app_dir)?;
    let findings = zerofn_review::lint(&manifest);
    let failing = zerofn_review::at_or_above(&findings, fail_on);
    println!("{}", render(&findings, format, fail_on));
    if failing > 0 {
        // The report is already on stdout, in the format asked for.
        return Err(Failure::new(
            Code::Refused,
            format!("lint: {failing} finding(s) at or above `{fail_on}`"),
        )
        .with_json(serde_json::Value::Null));
    }
    Ok(())
}

fn render(findings: &[Finding], format: ReportFormat, fail_on: Severity) -> String {
    match format {
        ReportFormat::Sarif => {
            serde_json::to_string_pretty(&zerofn_review::lint::sarif(findings)).unwrap_or_default()
        }
        ReportFormat::Json => {
            serde_json::to_string_pretty(&zerofn_review::lint::json(findings, fail_on))
                .unwrap_or_default()
        }
        ReportFormat::Text => zerofn_review::lint::render_text(findings, fail_on),
    }
}
