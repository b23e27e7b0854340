//! SVG through Graphviz's `dot`, when it is installed. Graphviz is an optional tool: without
//! it the DOT and Mermaid renderings still work, and asking for SVG says what is missing.

use std::io::Write;
use std::process::{Command, Stdio};

/// `dot -Tsvg` could not render the diagram.
#[derive(Debug, thiserror::Error)]
pub enum SvgError {
    #[error(
        "SVG needs Graphviz, and its `dot` program is not on PATH: install Graphviz (https://graphviz.org/download/, e.g. `apt-get install graphviz`), or use `--format dot` or `--format mermaid`"
    )]
    GraphvizMissing,
    #[error("running Graphviz's `dot`: {0}")]
    Io(#[from] std::io::Error),
    #[error("Graphviz's `dot` failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

/// Renders `dot_text` (from [`super::dot`]) with `dot -Tsvg`.
pub fn svg(dot_text: &str) -> Result<String, SvgError> {
    let mut child = match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SvgError::GraphvizMissing);
        }
        Err(e) => return Err(SvgError::Io(e)),
    };
    // Written from another thread: `dot` may start writing before it has read everything,
    // and a full pipe each way would deadlock.
    let stdin = child.stdin.take();
    let input = dot_text.to_string();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        if let Some(mut stdin) = stdin {
            stdin.write_all(input.as_bytes())?;
        }
        Ok(())
    });
    let output = child.wait_with_output()?;
    let written = writer
        .join()
        .map_err(|_| std::io::Error::other("the thread writing to `dot` panicked"))?;
    if !output.status.success() {
        return Err(SvgError::Failed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    written?;
    String::from_utf8(output.stdout)
        .map_err(|_| SvgError::Io(std::io::Error::other("`dot` wrote SVG that is not UTF-8")))
}
