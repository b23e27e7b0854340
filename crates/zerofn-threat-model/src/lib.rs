//! Threat models derived from what an app declares: its manifest, the operator's trust policy
//! and guardrails. The data-flow model (entry points, functions, data stores, external
//! destinations, internal calls, trust boundaries), the STRIDE threats of each element tied to
//! the control zerofn applies or the gap where none does, and its renderings (Markdown, JSON,
//! Mermaid, Graphviz DOT).

#![forbid(unsafe_code)]
