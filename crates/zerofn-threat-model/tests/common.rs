//! Snapshot comparison shared by the tests: compare with a file, or rewrite it when
//! `ZEROFN_BLESS=1` is set (as the manifest's diagnostic snapshots do).

use std::path::Path;

/// Compares `actual` with the file at `expected`, or rewrites it when blessing.
pub fn snapshot(expected: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("ZEROFN_BLESS").is_some_and(|v| v == "1") {
        return std::fs::write(expected, actual)
            .map_err(|e| format!("{}: {e}", expected.display()));
    }
    match std::fs::read_to_string(expected) {
        Ok(text) if text == actual => Ok(()),
        Ok(text) => Err(format!(
            "{} differs (rerun with ZEROFN_BLESS=1 to accept):\n--- expected\n{text}\n--- actual\n{actual}",
            expected.display()
        )),
        Err(_) => Err(format!(
            "{} is missing (rerun with ZEROFN_BLESS=1 to create it); actual:\n{actual}",
            expected.display()
        )),
    }
}
