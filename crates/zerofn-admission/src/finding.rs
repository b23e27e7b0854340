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

/// One reason (or warning) admission found, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule's stable id: a built-in rule (see [`crate::RULES`]) or an operator policy's.
    pub rule: String,
    pub level: Level,
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
