//! Exit codes, documented in `docs/cli.md`. Scripts may rely on them.

/// The process exit code of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success = 0,
    /// Anything not covered below.
    Failure = 1,
    // 2 is clap's usage error.
    /// The manifest or a deploy was refused (diagnostics were printed).
    Refused = 3,
    /// No server is running for the data directory.
    NotRunning = 4,
    /// A function's build command failed.
    BuildFailed = 5,
    /// `invoke`: the function answered with a status of 400 or more.
    FunctionError = 6,
    /// `audit verify`: the audit chain is broken (the findings were printed).
    ChainBroken = 7,
}

impl From<Code> for std::process::ExitCode {
    fn from(code: Code) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// A command's failure: what to print and which code to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// Machine-readable detail for `--json`.
    pub json: serde_json::Value,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code,
            json: serde_json::json!({"error": message}),
            message,
        }
    }

    pub fn with_json(mut self, json: serde_json::Value) -> Self {
        self.json = json;
        self
    }
}

impl From<zerofn_manifest::Diagnostics> for Failure {
    fn from(diagnostics: zerofn_manifest::Diagnostics) -> Self {
        Self {
            code: Code::Refused,
            message: diagnostics.render(output::stderr_is_terminal()),
            json: serde_json::json!({"error": "manifest refused", "diagnostics": diagnostics.to_json()}),
        }
    }
}

impl From<zerofn_server::control::ControlError> for Failure {
    fn from(error: zerofn_server::control::ControlError) -> Self {
        use zerofn_server::control::ControlError;
        match &error {
            ControlError::NotRunning { .. } => Self::new(Code::NotRunning, error.to_string()),
            ControlError::Refused { problem, .. } => {
                let mut message = error.to_string();
                if let Some(diagnostics) = problem.get("diagnostics") {
                    message = format!("deploy refused\n{}", render_json_diagnostics(diagnostics));
                }
                if let Some(findings) = problem.get("findings").and_then(|f| {
                    serde_json::from_value::<Vec<zerofn_admission::Finding>>(f.clone()).ok()
                }) {
                    message = format!(
                        "deploy refused\n{}",
                        zerofn_admission::render_text(&findings)
                    );
                }
                Self::new(Code::Refused, message).with_json(problem.clone())
            }
            ControlError::Unreachable { .. } => Self::new(Code::NotRunning, error.to_string()),
            ControlError::Transport(_) | ControlError::Remote(_) => {
                Self::new(Code::Failure, error.to_string())
            }
        }
    }
}

impl From<zerofn_server::DeployError> for Failure {
    fn from(error: zerofn_server::DeployError) -> Self {
        let json = error.to_json();
        match error {
            zerofn_server::DeployError::Manifest(diagnostics) => diagnostics.into(),
            other => Self::new(Code::Refused, other.to_string()).with_json(json),
        }
    }
}

/// Diagnostics that came back from the server as JSON, for people.
fn render_json_diagnostics(diagnostics: &serde_json::Value) -> String {
    let Some(items) = diagnostics.as_array() else {
        return diagnostics.to_string();
    };
    items
        .iter()
        .map(|d| {
            let at = match (d["line"].as_u64(), d["column"].as_u64()) {
                (Some(line), Some(column)) => format!(":{line}:{column}"),
                _ => String::new(),
            };
            let help = d["help"]
                .as_str()
                .map(|h| format!("\n  help: {h}"))
                .unwrap_or_default();
            format!(
                "{}[{}]: {}\n  --> {}{at}{help}",
                d["severity"].as_str().unwrap_or("error"),
                d["code"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or(""),
                d["file"].as_str().unwrap_or(""),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

use crate::output;
