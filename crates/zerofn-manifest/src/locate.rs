//! Field paths (`functions.checkout.grants.egress[0]`) resolved to where they are written, and
//! the manifest as a JSON document for policies that want to read it. Admission findings and
//! operator policies name fields this way; this module turns the name back into a line and a
//! column so that every refusal points at the text that caused it.

use crate::Location;
use toml::de::{DeTable, DeValue};

/// A field found in the manifest text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub location: Location,
    /// The value exactly as written (for a table: its header or inline text).
    pub written: String,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(std::borrow::Cow<'a, str>),
    Index(usize),
}

/// Splits `functions.checkout.grants.egress[0]` into keys and indices. Keys that are not bare
/// TOML keys may be quoted: `functions."odd.name"`. Returns `None` for a malformed path.
fn parse_path(path: &str) -> Option<Vec<Step<'_>>> {
    let mut steps = Vec::new();
    let mut rest = path;
    let mut expect_key = true;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            steps.push(Step::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
            expect_key = false;
            continue;
        }
        if !expect_key {
            rest = rest.strip_prefix('.')?;
        }
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"')?;
            steps.push(Step::Key(after[..end].into()));
            rest = &after[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Key(rest[..end].into()));
            rest = &rest[end..];
        }
        expect_key = false;
    }
    (!steps.is_empty()).then_some(steps)
}

/// Where `path` is written in `source`, if the text parses and the field is there.
pub(crate) fn locate(source: &str, path: &str) -> Option<Located> {
    let steps = parse_path(path)?;
    let document = DeTable::parse(source).ok()?;
    let mut table: &DeTable<'_> = document.get_ref();
    let mut span = document.span();
    let mut current: Option<&DeValue<'_>> = None;
    for step in &steps {
        let next = match (step, current) {
            (Step::Key(key), None | Some(DeValue::Table(_))) => {
                if let Some(DeValue::Table(inner)) = current {
                    table = inner;
                }
                table
                    .iter()
                    .find(|(k, _)| k.get_ref().as_ref() == key.as_ref())
                    .map(|(_, v)| v)?
            }
            (Step::Index(index), Some(DeValue::Array(array))) => array.get(*index)?,
            _ => return None,
        };
        span = next.span();
        current = Some(next.get_ref());
    }
    let location = Location::new(source, span);
    let written = source[location.span.clone()].to_string();
    Some(Located { location, written })
}

/// `source`, already known to parse, as a JSON value (TOML datetimes become strings).
pub(crate) fn to_json(source: &str) -> serde_json::Value {
    toml::from_str::<toml::Table>(source)
        .ok()
        .and_then(|table| serde_json::to_value(table).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"[app]
name = "shop"

[functions.checkout]
component = "c.wasm"

[functions.checkout.grants]
egress = [
  "https://api.example.com",
  "https://*.example.org",
]
"#;

    #[test]
    fn finds_array_elements_with_line_and_column() {
        let found = locate(SOURCE, "functions.checkout.grants.egress[1]").unwrap();
        assert_eq!((found.location.line, found.location.column), (10, 3));
        assert_eq!(found.written, "\"https://*.example.org\"");
    }

    #[test]
    fn finds_keys_and_quoted_keys() {
        let found = locate(SOURCE, "app.name").unwrap();
        assert_eq!(found.location.line, 2);
        assert_eq!(found.written, "\"shop\"");
        assert!(locate(SOURCE, r#"functions."checkout".component"#).is_some());
    }

    #[test]
    fn absent_or_malformed_paths_are_none() {
        for path in [
            "",
            "functions.cart",
            "functions.checkout.grants.egress[2]",
            "functions.checkout.grants.egress[x]",
            "functions..checkout",
            "app.name[0]",
            "functions.checkout.grants.egress[0].host",
            "[",
        ] {
            assert!(locate(SOURCE, path).is_none(), "{path}");
        }
    }

    #[test]
    fn the_document_as_json() {
        let json = to_json(SOURCE);
        assert_eq!(
            json["functions"]["checkout"]["grants"]["egress"][0],
            "https://api.example.com"
        );
    }
}
