//! The suggested grants as edits of `zerofn.toml` that keep everything else as written (comments,
//! order, layout, inline or standard tables), and the unified diff of them, ready for `git
//! apply` or a review.

use std::collections::BTreeMap;
use toml_edit::{Array, DocumentMut, InlineTable, Item, TableLike, Value};
use zerofn_manifest::{HttpMethod, KvAccess};

/// One egress entry as it will be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EgressEntry {
    pub url: String,
    /// Empty: any method.
    pub methods: Vec<HttpMethod>,
    pub allow_private: bool,
}

impl EgressEntry {
    /// The entry as a TOML value: a plain URL when it has nothing else to say.
    fn to_value(&self) -> Value {
        if self.methods.is_empty() && !self.allow_private {
            return Value::from(self.url.as_str());
        }
        let mut table = InlineTable::new();
        table.insert("url", Value::from(self.url.as_str()));
        if !self.methods.is_empty() {
            let methods: Array = self.methods.iter().map(|m| m.as_str()).collect();
            table.insert("methods", Value::Array(methods));
        }
        if self.allow_private {
            table.insert("allow_private", Value::from(true));
        }
        Value::InlineTable(table)
    }

    /// The entry as it is written, for people.
    pub fn written(&self) -> String {
        self.to_value().to_string().trim().to_string()
    }
}

/// An entry of a rewritten `egress` list: one kept as written, or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EgressSlot {
    Original(usize),
    New(EgressEntry),
}

/// What changes in one function's grants. Lists give what remains, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GrantEdits {
    pub egress: Option<Vec<EgressSlot>>,
    /// Indices of `secrets` kept.
    pub secrets: Option<Vec<usize>>,
    /// Buckets whose access changes (`None`: dropped).
    pub kv: BTreeMap<String, Option<KvAccess>>,
    /// Indices of `invoke` kept.
    pub invoke: Option<Vec<usize>>,
}

impl GrantEdits {
    pub fn is_empty(&self) -> bool {
        self.egress.is_none()
            && self.secrets.is_none()
            && self.kv.is_empty()
            && self.invoke.is_none()
    }
}

/// Why the edits could not be made (the manifest is not what was reviewed).
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("the manifest does not parse as TOML: {0}")]
    Toml(String),
    #[error("`{0}` is not where the manifest's grants say it is")]
    Missing(String),
}

/// Applies `edits` (by function) to `source`, the manifest's text.
pub(crate) fn apply(
    source: &str,
    edits: &BTreeMap<String, GrantEdits>,
) -> Result<String, DiffError> {
    let mut document: DocumentMut = source
        .parse()
        .map_err(|e: toml_edit::TomlError| DiffError::Toml(e.to_string()))?;
    for (function, edit) in edits.iter().filter(|(_, e)| !e.is_empty()) {
        let path = format!("functions.{function}.grants");
        let grants = document
            .get_mut("functions")
            .and_then(Item::as_table_like_mut)
            .and_then(|functions| functions.get_mut(function))
            .and_then(Item::as_table_like_mut)
            .and_then(|f| f.get_mut("grants"))
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| DiffError::Missing(path.clone()))?;
        if let Some(slots) = &edit.egress {
            rewrite_egress(grants, slots, &path)?;
        }
        if let Some(kept) = &edit.secrets {
            keep_indices(grants, "secrets", kept, &path)?;
        }
        if let Some(kept) = &edit.invoke {
            keep_indices(grants, "invoke", kept, &path)?;
        }
        if !edit.kv.is_empty() {
            let kv = grants
                .get_mut("kv")
                .and_then(Item::as_table_like_mut)
                .ok_or_else(|| DiffError::Missing(format!("{path}.kv")))?;
            for (bucket, access) in &edit.kv {
                match access {
                    None => remove_key(kv, bucket),
                    Some(access) => {
                        let item = kv
                            .get_mut(bucket)
                            .and_then(Item::as_value_mut)
                            .ok_or_else(|| DiffError::Missing(format!("{path}.kv.{bucket}")))?;
                        let decor = item.decor().clone();
                        *item = Value::from(access.as_str());
                        *item.decor_mut() = decor;
                    }
                }
            }
            if kv.is_empty() {
                remove_key(grants, "kv");
            }
        }
    }
    Ok(document.to_string())
}

/// Removes `key` from `table`. In an inline table `{ a = 1, b = 2 }` the space before `}` is
/// the last value's: the new last value takes it, so that the table still reads `{ a = 1 }`.
fn remove_key(table: &mut dyn TableLike, key: &str) {
    let last_suffix = table
        .iter()
        .last()
        .and_then(|(_, item)| item.as_value())
        .and_then(|value| value.decor().suffix())
        .cloned();
    table.remove(key);
    if let (Some(suffix), Some((_, last))) = (last_suffix, table.iter_mut().last())
        && let Some(value) = last.as_value_mut()
    {
        value.decor_mut().set_suffix(suffix);
    }
}

/// Keeps the elements of the array `grants.<key>` at `kept`, removing the key when none is.
fn keep_indices(
    grants: &mut dyn TableLike,
    key: &str,
    kept: &[usize],
    path: &str,
) -> Result<(), DiffError> {
    if kept.is_empty() {
        remove_key(grants, key);
        return Ok(());
    }
    let array = grants
        .get_mut(key)
        .and_then(Item::as_array_mut)
        .ok_or_else(|| DiffError::Missing(format!("{path}.{key}")))?;
    let values: Vec<Value> = kept
        .iter()
        .map(|&i| {
            array
                .get(i)
                .cloned()
                .ok_or_else(|| DiffError::Missing(format!("{path}.{key}[{i}]")))
        })
        .collect::<Result<_, _>>()?;
    relayout(array, values);
    Ok(())
}

/// Rewrites `grants.egress` as `slots`, removing it when empty.
fn rewrite_egress(
    grants: &mut dyn TableLike,
    slots: &[EgressSlot],
    path: &str,
) -> Result<(), DiffError> {
    if slots.is_empty() {
        remove_key(grants, "egress");
        return Ok(());
    }
    let missing = || DiffError::Missing(format!("{path}.egress"));
    let item = grants.get_mut("egress").ok_or_else(missing)?;
    if let Some(array) = item.as_array_mut() {
        let values: Vec<Value> = slots
            .iter()
            .map(|slot| match slot {
                EgressSlot::Original(i) => array.get(*i).cloned().ok_or_else(missing),
                EgressSlot::New(entry) => Ok(entry.to_value()),
            })
            .collect::<Result<_, _>>()?;
        relayout(array, values);
        return Ok(());
    }
    // `[[functions.<name>.grants.egress]]`: an array of tables.
    let tables = item.as_array_of_tables_mut().ok_or_else(missing)?;
    let mut rewritten = toml_edit::ArrayOfTables::new();
    for slot in slots {
        match slot {
            EgressSlot::Original(i) => rewritten.push(tables.get(*i).cloned().ok_or_else(missing)?),
            EgressSlot::New(entry) => {
                let mut table = toml_edit::Table::new();
                match entry.to_value() {
                    Value::InlineTable(inline) => {
                        for (key, value) in inline.iter() {
                            table.insert(key, Item::Value(value.clone()));
                        }
                    }
                    url => {
                        table.insert("url", Item::Value(url));
                    }
                }
                rewritten.push(table);
            }
        }
    }
    *tables = rewritten;
    Ok(())
}

/// Replaces the elements of `array` with `values`, each taking the layout (indentation,
/// comments) of the element that was at its position, so that a one-line list stays on one
/// line and a list with one entry per line keeps that.
fn relayout(array: &mut Array, values: Vec<Value>) {
    let decors: Vec<toml_edit::Decor> = array.iter().map(|v| v.decor().clone()).collect();
    array.clear();
    for (position, mut value) in values.into_iter().enumerate() {
        if let Some(decor) = decors.get(position).or(decors.last()) {
            *value.decor_mut() = decor.clone();
        }
        array.push_formatted(value);
    }
}

/// The unified diff from `old` to `new`, with `path` as both file names (`a/` and `b/`
/// prefixed, as `git apply` expects); empty when they are the same.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    // `a/` and `b/` stand for a tree's root: an absolute or `./` path would name a file no
    // `git apply` or `patch -p1` finds.
    let path = path.trim_start_matches("./").trim_start_matches('/');
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(function: &str, edit: GrantEdits) -> BTreeMap<String, GrantEdits> {
        BTreeMap::from([(function.to_string(), edit)])
    }

    #[test]
    fn comments_and_layout_outside_the_edit_are_kept() {
        let source = "# the app\n[app]\nname = \"a\" # inline\n\n[functions.f.grants]\n# why\nsecrets = [\"a\", \"b\", \"c\"]\nkv = { x = \"read-write\", y = \"read\" }\ninvoke = [\n  \"g\", # first\n  \"h\",\n]\n";
        let edit = GrantEdits {
            secrets: Some(vec![1]),
            kv: BTreeMap::from([("x".into(), Some(KvAccess::Write)), ("y".into(), None)]),
            invoke: Some(vec![1]),
            ..Default::default()
        };
        let out = apply(source, &edits("f", edit)).unwrap();
        assert_eq!(
            out,
            "# the app\n[app]\nname = \"a\" # inline\n\n[functions.f.grants]\n# why\nsecrets = [\"b\"]\nkv = { x = \"write\" }\ninvoke = [\n  \"h\",\n]\n"
        );
    }

    #[test]
    fn egress_entries_are_replaced_split_and_removed() {
        let source = "[functions.f]\ngrants = { egress = [\"https://*.example.com/v1\", \"https://x.test\"] }\n";
        let entry = |url: &str, methods: Vec<HttpMethod>| {
            EgressSlot::New(EgressEntry {
                url: url.into(),
                methods,
                allow_private: false,
            })
        };
        let edit = GrantEdits {
            egress: Some(vec![
                entry("https://a.example.com/v1", vec![HttpMethod::Get]),
                entry("https://b.example.com/v1", vec![]),
            ]),
            ..Default::default()
        };
        let out = apply(source, &edits("f", edit)).unwrap();
        assert_eq!(
            out,
            "[functions.f]\ngrants = { egress = [{ url = \"https://a.example.com/v1\", methods = [\"GET\"] }, \"https://b.example.com/v1\"] }\n"
        );
        let dropped = GrantEdits {
            egress: Some(vec![]),
            ..Default::default()
        };
        let out = apply(source, &edits("f", dropped)).unwrap();
        assert_eq!(out, "[functions.f]\ngrants = {}\n");
    }

    #[test]
    fn a_function_without_the_grants_it_was_reviewed_for_is_an_error() {
        let edit = GrantEdits {
            invoke: Some(vec![]),
            ..Default::default()
        };
        let error = apply("[functions.f]\n", &edits("f", edit)).unwrap_err();
        assert!(error.to_string().contains("functions.f.grants"), "{error}");
    }

    #[test]
    fn the_diff_is_unified_with_git_style_names() {
        let diff = unified("zerofn.toml", "a\nb\n", "a\nc\n");
        assert_eq!(
            diff,
            "--- a/zerofn.toml\n+++ b/zerofn.toml\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        );
        assert_eq!(unified("zerofn.toml", "a\n", "a\n"), "");
        assert!(
            unified("/tmp/app/zerofn.toml", "a\n", "b\n")
                .starts_with("--- a/tmp/app/zerofn.toml\n")
        );
        assert!(unified("./zerofn.toml", "a\n", "b\n").starts_with("--- a/zerofn.toml\n"));
    }
}
