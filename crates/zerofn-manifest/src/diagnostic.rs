//! Located diagnostics: what went wrong, where in which file, and how to fix it.
//!
//! A [`Diagnostic`] is plain data so that callers can match on [`Diagnostic::code`] and machines
//! can read [`Diagnostics::to_json`]; people read [`Diagnostics::render`], which draws rustc-like
//! snippets with `annotate-snippets`. [`Diagnostics`] keeps the text of every file it points
//! into, because a snippet cannot be drawn from a span alone.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The manifest cannot be used as written.
    Error,
    /// The manifest is accepted, but something in it will not behave as its author may expect.
    Warning,
}

impl Severity {
    /// `"error"` or `"warning"`, as rendered and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position in a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// 1-based line of `span.start`.
    pub line: usize,
    /// 1-based column of `span.start`, counted in characters.
    pub column: usize,
    /// Byte range into the file's text.
    pub span: Range<usize>,
}

impl Location {
    /// Locates `span` in `source`, computing its line and column.
    pub fn new(source: &str, span: Range<usize>) -> Location {
        // Spans come from the TOML parser and always fall on char boundaries; clamping keeps a
        // stray span (e.g. from a caller) from panicking while slicing.
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let before = &source[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source[line_start..start].chars().count() + 1;
        Location {
            line,
            column,
            span: start..end,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A second place in the same file that explains the first, e.g. an earlier definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Where.
    pub location: Location,
    /// What it has to do with the diagnostic, shown next to the span.
    pub label: String,
}

/// One finding about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable kebab-case identifier, e.g. `"unknown-key"`; see `docs/manifest.md` for the list.
    pub code: &'static str,
    /// One line saying what is wrong.
    pub message: String,
    /// The file the diagnostic is about, as the caller named it.
    pub file: PathBuf,
    /// Where in `file`; `None` when the problem is the file as a whole (e.g. it is missing).
    pub location: Option<Location>,
    /// The offending value exactly as written, when there is one.
    pub value: Option<String>,
    /// The field concerned as a path, e.g. `functions.checkout.grants.egress[0]`.
    pub field: Option<String>,
    /// Short text drawn under the span.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Other places that explain this one (drawn as secondary spans).
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// An error about `file` with no location yet; chain the builder methods to fill it in.
    pub fn error(code: &'static str, file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: file.to_path_buf(),
            location: None,
            value: None,
            field: None,
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    /// A warning about `file`; see [`Diagnostic::error`].
    pub fn warning(code: &'static str, file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, message)
        }
    }

    /// Points the diagnostic at `span` of `source` and records the text there as the value.
    pub fn at(mut self, source: &str, span: Range<usize>, label: impl Into<String>) -> Diagnostic {
        let location = Location::new(source, span);
        let written = &source[location.span.clone()];
        if !written.is_empty() {
            self.value = Some(written.to_string());
        }
        self.location = Some(location);
        self.label = label.into();
        self
    }

    /// Like [`Diagnostic::at`] but without recording a value, for spans that cover a key or
    /// a whole table rather than an offending value.
    pub fn at_key(mut self, source: &str, span: Range<usize>, label: impl Into<String>) -> Self {
        self.location = Some(Location::new(source, span));
        self.label = label.into();
        self
    }

    /// Names the field concerned (`functions.checkout.grants.egress[0]`).
    pub fn field(mut self, path: impl Into<String>) -> Diagnostic {
        self.field = Some(path.into());
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary span.
    pub fn related(mut self, source: &str, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push(Related {
            location: Location::new(source, span),
            label: label.into(),
        });
        self
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// This diagnostic as a JSON object:
    /// `{"severity","code","message","file","line","column","field","value","help"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": self.severity.as_str(),
            "code": self.code,
            "message": self.message,
            "file": self.file.display().to_string(),
            "line": self.location.as_ref().map(|l| l.line),
            "column": self.location.as_ref().map(|l| l.column),
            "field": self.field,
            "value": self.value,
            "help": self.help,
        })
    }
}

/// An ordered set of diagnostics together with the text of the files they point into.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    sources: BTreeMap<PathBuf, Arc<str>>,
}

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    /// Remembers the text of `file` so that diagnostics pointing into it render with snippets.
    pub fn add_source(&mut self, file: &Path, text: impl Into<Arc<str>>) {
        self.sources.insert(file.to_path_buf(), text.into());
    }

    /// Appends a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Appends all of `other`, sources included.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
        self.sources.extend(other.sources);
    }

    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The diagnostics in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// Orders diagnostics by file and position, so output reads top to bottom.
    pub(crate) fn sort(&mut self) {
        self.items.sort_by_key(|d| {
            let start = d.location.as_ref().map(|l| l.span.start);
            (d.file.clone(), start)
        });
    }

    /// All diagnostics as rustc-like text, separated by blank lines. `color` adds ANSI styles.
    pub fn render(&self, color: bool) -> String {
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        }
        .decor_style(DecorStyle::Ascii);
        let mut out = String::new();
        for diagnostic in &self.items {
            let source = self.sources.get(&diagnostic.file).map(|s| &**s);
            let group = to_group(diagnostic, source);
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&renderer.render(&[group]));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    /// All diagnostics as a JSON array; see [`Diagnostic::to_json`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.items.iter().map(Diagnostic::to_json).collect())
    }
}

fn to_group<'a>(diagnostic: &'a Diagnostic, source: Option<&'a str>) -> Group<'a> {
    let level = match diagnostic.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let title = level
        .primary_title(diagnostic.message.as_str())
        .id(diagnostic.code);
    let path = diagnostic.file.display().to_string();
    let mut group = match (&diagnostic.location, source) {
        (Some(location), Some(source)) => {
            let mut snippet = Snippet::source(source).path(path).annotation(
                AnnotationKind::Primary
                    .span(location.span.clone())
                    .label(non_empty(&diagnostic.label)),
            );
            for related in &diagnostic.related {
                snippet = snippet.annotation(
                    AnnotationKind::Context
                        .span(related.location.span.clone())
                        .label(non_empty(&related.label)),
                );
            }
            title.element(snippet)
        }
        (Some(location), None) => title.element(
            Origin::path(path)
                .line(location.line)
                .char_column(location.column),
        ),
        (None, _) => title.element(Origin::path(path)),
    };
    if let Some(help) = &diagnostic.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    group
}

fn non_empty(label: &str) -> Option<&str> {
    (!label.is_empty()).then_some(label)
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}
