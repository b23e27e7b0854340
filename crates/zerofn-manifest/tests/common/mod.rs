//! Snapshot helper shared by the integration tests: compare with a file, or rewrite it when
//! `ZEROFN_BLESS=1` is set (like trybuild and snapbox).

use std::path::Path;

/// True when expected files should be rewritten instead of compared.
pub fn blessing() -> bool {
    std::env::var_os("ZEROFN_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the file at `expected`; returns a description of any difference.
pub fn snapshot(expected: &Path, actual: &str) -> Result<(), String> {
    if blessing() {
        std::fs::write(expected, actual).map_err(|e| format!("{}: {e}", expected.display()))?;
        return Ok(());
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
