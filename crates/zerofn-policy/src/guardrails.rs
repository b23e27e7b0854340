//! The operator's guardrails: organisation-wide `forbid` policies in `.cedar` files. They win
//! over any grant (in Cedar a matching `forbid` always beats a `permit`). A guardrail file may
//! not `permit`: permissions come only from signed manifests.

use crate::PolicyError;
use cedar_policy::{Effect, Policy, PolicyId, PolicySet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Loaded guardrail policies, each with its id and the file it came from.
#[derive(Debug, Clone, Default)]
pub struct Guardrails {
    pub(crate) policies: Vec<(Policy, PathBuf)>,
}

impl Guardrails {
    /// No guardrails.
    pub fn none() -> Self {
        Self::default()
    }

    /// Loads every `.cedar` file named in `paths` (a directory contributes its `.cedar` files,
    /// recursively, in name order). A policy's id is its `@id("...")` annotation, else
    /// `guardrail/<file, relative to the directory named>/<index>`. Ids starting with
    /// `grant/` are reserved for grants.
    pub fn load(paths: &[PathBuf]) -> Result<Self, PolicyError> {
        // Each file with the name it is known by in default ids: its path below the directory
        // it was found in (or its file name), so files of the same name do not clash.
        let mut files = Vec::new();
        for path in paths {
            let found = cedar_files(path)?;
            if found.is_empty() {
                return Err(PolicyError::Empty(path.clone()));
            }
            for file in found {
                let name = file
                    .strip_prefix(path)
                    .ok()
                    .filter(|rest| !rest.as_os_str().is_empty())
                    .or_else(|| file.file_name().map(Path::new))
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                files.push((file, name));
            }
        }
        let mut policies = Vec::new();
        for (file, stem) in files {
            let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::Io {
                path: file.clone(),
                source,
            })?;
            let set = PolicySet::from_str(&text).map_err(|e| PolicyError::Invalid {
                path: file.clone(),
                reason: format!("{e:?}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            })?;
            if set.templates().next().is_some() {
                return Err(PolicyError::Invalid {
                    path: file.clone(),
                    reason: "templates are not supported in guardrails".into(),
                });
            }
            // Keep the order the file declares them in, for stable ids.
            let mut in_file: Vec<&Policy> = set.policies().collect();
            in_file.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<usize>()
                    .unwrap_or(usize::MAX)
            });
            for (index, policy) in in_file.into_iter().enumerate() {
                let id = policy
                    .annotation("id")
                    .map_or_else(|| format!("guardrail/{stem}/{index}"), str::to_string);
                if policy.effect() == Effect::Permit {
                    return Err(PolicyError::PermitInGuardrails { path: file, id });
                }
                if id.starts_with("grant/") {
                    return Err(PolicyError::Invalid {
                        path: file,
                        reason: format!(
                            "policy id `{id}`: ids starting with `grant/` are the platform's (for grants)"
                        ),
                    });
                }
                policies.push((policy.new_id(PolicyId::new(id)), file.clone()));
            }
        }
        Ok(Guardrails { policies })
    }

    /// How many guardrail policies there are.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

fn cedar_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    // A symbolic link to a directory is refused, neither followed (a link loop would recurse
    // forever) nor skipped (the rules behind it would silently not apply); an unreadable
    // entry is refused too.
    let mut entries: Vec<(PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let entry_path = entry.path();
        if kind.is_symlink() && entry_path.is_dir() {
            return Err(io(std::io::Error::other(format!(
                "{} is a symbolic link to a directory, which is not followed: name the directory itself",
                entry_path.display()
            ))));
        }
        entries.push((entry_path, kind.is_dir()));
    }
    entries.sort();
    let mut files = Vec::new();
    for (entry, is_dir) in entries {
        if is_dir {
            files.extend(cedar_files(&entry)?);
        } else if entry.extension().is_some_and(|ext| ext == "cedar") {
            files.push(entry);
        }
    }
    Ok(files)
}
