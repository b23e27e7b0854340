//! One admission finding.

use serde::{Deserialize, Serialize};

/// Whether a finding refuses the deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Refuses the deploy.
    Error,
    /// Reported; the deploy goes ahead.
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// How much a finding matters, for review tools that rank rather than refuse (`zerofn lint`,
/// threat models): ordered, so a CI gate is "fail at or above this severity".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The CVSS-like score code-scanning dashboards rank by (SARIF `security-severity`, as
    /// GitHub reads it: critical from 9.0, high from 7.0, medium from 4.0, low above 0).
    pub fn score(self) -> &'static str {
        match self {
            Severity::Info => "0.0",
            Severity::Low => "2.0",
            Severity::Medium => "5.0",
            Severity::High => "7.5",
            Severity::Critical => "9.5",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown severity `{s}`: use info, low, medium, high or critical")
            })
    }
}

/// One reason (or warning) admission found, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule's stable id: a built-in rule (see [`crate::RULES`]) or an operator policy's.
    pub rule: String,
    pub level: Level,
    /// How much it matters, where the tool that found it ranks findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub message: String,
    /// The manifest file the finding is about.
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field concerned, e.g. `functions.checkout.grants.egress[0]`.
    pub field: Option<String>,
    /// The offending value exactly as written.
    pub value: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Finding {
    /// A finding about `file` as a whole; chain [`Finding::at`] and friends to locate it.
    pub fn new(rule: impl Into<String>, level: Level, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.into(),
            level,
            severity: None,
            message: message.into(),
            file: String::new(),
            line: None,
            column: None,
            field: None,
            value: None,
            help: None,
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// `file:line:column`, or as much of it as is known.
    pub fn position(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.file),
            (Some(line), None) => format!("{}:{line}", self.file),
            _ => self.file.clone(),
        }
    }
}
