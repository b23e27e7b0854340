//! The toolchain a component says it was made with: the `producers` custom sections of its core
//! modules (language, processed-by, sdk).

use serde::Serialize;
use wasmparser::{KnownCustom, Parser, Payload};

/// One `producers` entry, e.g. `processed-by: rustc 1.95.0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Producer {
    pub field: String,
    pub name: String,
    pub version: String,
}

/// Every `producers` entry of `component` and its nested modules, deduplicated and sorted. A
/// malformed binary yields what could be read before the error.
pub fn producers(component: &[u8]) -> Vec<Producer> {
    let mut found = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        let KnownCustom::Producers(reader) = section.as_known() else {
            continue;
        };
        for field in reader.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                found.push(Producer {
                    field: field.name.to_string(),
                    name: value.name.to_string(),
                    version: value.version.to_string(),
                });
            }
        }
    }
    found.sort();
    found.dedup();
    found
}
