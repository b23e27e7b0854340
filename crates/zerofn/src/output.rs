//! Printing results for people (text) or scripts (`--json`, one JSON document on stdout).

use crate::exit::Failure;
use std::io::IsTerminal;

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Prints a command's result: `json` on stdout with `--json`, otherwise `text`.
pub fn print(json_mode: bool, json: &serde_json::Value, text: impl FnOnce() -> String) {
    if json_mode {
        println!(
            "{}",
            serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
        );
    } else {
        let text = text();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// Prints a failure: JSON on stdout with `--json` (so scripts read one stream), and always a
/// sentence on stderr.
pub fn failure(failure: &Failure, json_mode: bool) {
    // A command that already printed its own report leaves `json` null.
    if json_mode && !failure.json.is_null() {
        println!(
            "{}",
            serde_json::to_string_pretty(&failure.json).unwrap_or_default()
        );
    }
    if failure.message.starts_with("error") || failure.message.contains("\n  --> ") {
        eprintln!("{}", failure.message);
    } else {
        eprintln!("error: {}", failure.message);
    }
}
