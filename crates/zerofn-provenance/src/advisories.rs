//! Dependency analysis: the packages of a function's SBOM against a local database of
//! advisories in the OSV format (the format of RustSec's and GitHub's advisory exports), so CI
//! can refuse a build that ships a known-vulnerable crate.

use crate::ProvenanceError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Severities, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "low" => Self::Low,
            "moderate" | "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => Self::Unknown,
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match Self::parse(s) {
            Self::Unknown if !s.eq_ignore_ascii_case("unknown") => Err(format!(
                "unknown severity `{s}`: use low, medium, high, critical or unknown"
            )),
            severity => Ok(severity),
        }
    }
}

/// One advisory that applies to a package of the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub package: String,
    pub version: String,
    pub advisory: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub summary: String,
    /// The first fixed version, when the advisory names one.
    pub fixed: Option<String>,
}

#[derive(Deserialize)]
struct Advisory {
    id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: serde_json::Value,
}

#[derive(Deserialize)]
struct Affected {
    package: Package,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    database_specific: serde_json::Value,
}

#[derive(Deserialize)]
struct Package {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
}

/// A loaded advisory database.
pub struct AdvisoryDatabase {
    advisories: Vec<Advisory>,
}

impl AdvisoryDatabase {
    /// Reads every `*.json` file under `dir` (recursively) as one OSV advisory.
    pub fn load(dir: &Path) -> Result<Self, ProvenanceError> {
        let mut files = Vec::new();
        collect_json(dir, &mut files)?;
        files.sort();
        let mut advisories = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| ProvenanceError::Io {
                path: path.clone(),
                source,
            })?;
            let advisory: Advisory =
                serde_json::from_str(&text).map_err(|e| ProvenanceError::Malformed {
                    path: path.clone(),
                    reason: format!("not an OSV advisory: {e}"),
                })?;
            advisories.push(advisory);
        }
        Ok(Self { advisories })
    }

    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisories that apply to the `pkg:cargo` components of a CycloneDX SBOM.
    pub fn check_sbom(&self, sbom: &serde_json::Value) -> Vec<Finding> {
        let mut findings = Vec::new();
        let components = sbom["components"].as_array().cloned().unwrap_or_default();
        for component in components {
            let (Some(name), Some(version)) =
                (component["name"].as_str(), component["version"].as_str())
            else {
                continue;
            };
            if !component["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
            {
                continue;
            }
            findings.extend(self.check_package(name, version));
        }
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.package.cmp(&b.package)));
        findings
    }

    fn check_package(&self, name: &str, version: &str) -> Vec<Finding> {
        // A version that is not semver can still be listed verbatim; ranges then cannot be
        // evaluated and count as affecting it (fail closed).
        let parsed = semver::Version::parse(version).ok();
        let mut findings = Vec::new();
        for advisory in &self.advisories {
            for affected in &advisory.affected {
                if affected.package.ecosystem != "crates.io" || affected.package.name != name {
                    continue;
                }
                let listed = affected.versions.iter().any(|v| v == version);
                let in_range = affected
                    .ranges
                    .iter()
                    .filter(|r| r.kind == "SEMVER" || r.kind == "ECOSYSTEM")
                    .any(|r| parsed.as_ref().is_none_or(|v| affects(r, v)));
                if listed || in_range {
                    findings.push(Finding {
                        package: name.to_string(),
                        version: version.to_string(),
                        advisory: advisory.id.clone(),
                        aliases: advisory.aliases.clone(),
                        severity: severity(advisory, affected),
                        summary: advisory.summary.clone(),
                        fixed: parsed.as_ref().and_then(|v| first_fixed(affected, v)),
                    });
                }
            }
        }
        findings
    }
}

/// OSV range semantics: events sorted by version; `introduced` opens, `fixed` closes
/// (exclusive), `last_affected` closes (inclusive). An event whose version does not parse makes
/// the range count as affecting (fail closed).
fn affects(range: &Range, version: &semver::Version) -> bool {
    let parse = |v: &str| {
        if v == "0" {
            Some(semver::Version::new(0, 0, 0))
        } else {
            semver::Version::parse(v).ok()
        }
    };
    enum Edge {
        Introduced,
        Fixed,
        LastAffected,
    }
    let mut events = Vec::new();
    for event in &range.events {
        for (value, edge) in [
            (&event.introduced, Edge::Introduced),
            (&event.fixed, Edge::Fixed),
            (&event.last_affected, Edge::LastAffected),
        ] {
            if let Some(value) = value {
                let Some(parsed) = parse(value) else {
                    return true;
                };
                events.push((parsed, edge));
            }
        }
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    let mut affected = false;
    for (at, edge) in events {
        match edge {
            Edge::Introduced if *version >= at => affected = true,
            Edge::Fixed if *version >= at => affected = false,
            Edge::LastAffected if *version > at => affected = false,
            _ => {}
        }
    }
    affected
}

fn first_fixed(affected: &Affected, version: &semver::Version) -> Option<String> {
    affected
        .ranges
        .iter()
        .flat_map(|r| r.events.iter())
        .filter_map(|e| e.fixed.clone())
        .filter(|f| semver::Version::parse(f).is_ok_and(|f| f > *version))
        .min_by(|a, b| {
            let a = semver::Version::parse(a).ok();
            let b = semver::Version::parse(b).ok();
            a.cmp(&b)
        })
}

/// The advisory's severity: GitHub's `database_specific.severity`, else RustSec's
/// informational flag, else unknown.
fn severity(advisory: &Advisory, affected: &Affected) -> Severity {
    for source in [&advisory.database_specific, &affected.database_specific] {
        if let Some(text) = source["severity"].as_str() {
            return Severity::parse(text);
        }
    }
    Severity::Unknown
}

fn collect_json(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ProvenanceError> {
    let io = |source| ProvenanceError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // Symbolic links are not followed: a link loop must not recurse forever.
        if entry.file_type().map_err(io)?.is_dir() {
            collect_json(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    Ok(())
}
