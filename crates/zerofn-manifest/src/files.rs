//! Files a manifest refers to (a JWKS, a CA bundle, an input schema). The server never reads
//! the deployer's disk: the CLI reads them, they travel with the deploy bundle keyed by the
//! path written in the manifest, and each is a subject of the function's signed statement, so a
//! swapped key set is caught exactly like swapped code.

use crate::{Auth, Diagnostic, Diagnostics, Function, Manifest};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The largest referenced file accepted: key sets, CA bundles and schemas are small, and the
/// server keeps them in memory.
pub const MAX_ATTACHED_FILE_BYTES: usize = 1 << 20;

/// One file a function refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencedFile {
    /// The manifest field that names it (`functions.api.auth.jwt.jwks`).
    pub field: String,
    /// The path as written, with `/` separators: the file's key in the deploy bundle.
    pub written: String,
    /// The path resolved against the manifest's directory.
    pub path: PathBuf,
}

/// Referenced files' contents, by the path written in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachedFiles(BTreeMap<String, Vec<u8>>);

impl AttachedFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file written as `path`.
    pub fn insert(&mut self, path: impl Into<String>, bytes: Vec<u8>) {
        self.0.insert(path.into(), bytes);
    }

    /// The contents of the file written as `path`.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.0.get(path).map(Vec::as_slice)
    }

    /// Every file, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0
            .iter()
            .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
    }
}

impl FromIterator<(String, Vec<u8>)> for AttachedFiles {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Manifest {
    /// The files `function` refers to: a JWKS given as a path, an mTLS CA bundle, an input
    /// schema.
    pub fn referenced_files(&self, function: &Function) -> Vec<ReferencedFile> {
        let name = &function.name;
        let mut files = Vec::new();
        match &function.auth {
            Some(Auth::Jwt(jwt)) => {
                if let Some(path) = jwt.jwks_file() {
                    files.push(ReferencedFile {
                        field: format!("functions.{name}.auth.jwt.jwks"),
                        path: self.dir().join(&path),
                        written: path,
                    });
                }
            }
            Some(Auth::Mtls(mtls)) => files.push(ReferencedFile {
                field: format!("functions.{name}.auth.mtls.ca"),
                written: mtls.ca_written.clone(),
                path: mtls.ca.clone(),
            }),
            _ => {}
        }
        if let Some(input) = &function.input
            && let (Some(schema), Some(written)) = (&input.schema, &input.schema_file)
        {
            files.push(ReferencedFile {
                field: format!("functions.{name}.input.schema"),
                written: written.clone(),
                path: schema.clone(),
            });
        }
        files
    }

    /// Reads every file the manifest's functions refer to, for a deploy bundle. A missing,
    /// unreadable or oversized file is a located error (`missing-file`, `file-too-large`).
    pub fn read_referenced_files(&self) -> Result<AttachedFiles, Diagnostics> {
        let mut findings = self.diagnostics();
        let mut files = AttachedFiles::new();
        for function in self.functions() {
            for file in self.referenced_files(function) {
                // Read at most one byte past the limit: a path such as `/dev/zero` must not
                // run the CLI out of memory before the size check.
                let read = std::fs::File::open(&file.path).and_then(|f| {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(
                        &mut std::io::Read::take(f, MAX_ATTACHED_FILE_BYTES as u64 + 1),
                        &mut bytes,
                    )
                    .map(|_| bytes)
                });
                match read {
                    Ok(bytes) if bytes.len() <= MAX_ATTACHED_FILE_BYTES => {
                        files.insert(file.written, bytes);
                    }
                    Ok(_) => findings.push(self.file_finding(
                        &file,
                        "file-too-large",
                        format!(
                            "{} is larger than the limit of {MAX_ATTACHED_FILE_BYTES} bytes",
                            file.path.display()
                        ),
                        "referenced files (key sets, CA bundles, schemas) must be at most 1 MiB",
                    )),
                    Err(error) => findings.push(self.file_finding(
                        &file,
                        "missing-file",
                        format!("cannot read {}: {error}", file.path.display()),
                        "create the file, or fix the path (it is relative to the manifest's directory)",
                    )),
                }
            }
        }
        if findings.has_errors() {
            Err(findings)
        } else {
            Ok(files)
        }
    }

    /// On the server: every referenced file must have been sent (`missing-file`), none may be
    /// oversized (`file-too-large`), and nothing unreferenced may ride along
    /// (`file-not-referenced`: the platform keeps nothing it would not use).
    pub fn check_attached_files(&self, attached: &AttachedFiles) -> Diagnostics {
        let mut findings = self.diagnostics();
        let mut referenced = std::collections::BTreeSet::new();
        for function in self.functions() {
            for file in self.referenced_files(function) {
                match attached.get(&file.written) {
                    None => findings.push(self.file_finding(
                        &file,
                        "missing-file",
                        format!("`{}` was not sent with the deploy", file.written),
                        "deploy with `zerofn deploy`, which sends every file the manifest refers to",
                    )),
                    Some(bytes) if bytes.len() > MAX_ATTACHED_FILE_BYTES => {
                        findings.push(self.file_finding(
                            &file,
                            "file-too-large",
                            format!(
                                "`{}` is {} bytes, above the limit of {MAX_ATTACHED_FILE_BYTES}",
                                file.written,
                                bytes.len()
                            ),
                            "referenced files must be at most 1 MiB",
                        ))
                    }
                    Some(_) => {}
                }
                referenced.insert(file.written);
            }
        }
        for (path, _) in attached.iter() {
            if !referenced.contains(path) {
                findings.push(
                    Diagnostic::error(
                        "file-not-referenced",
                        self.path(),
                        format!(
                            "the deploy carries `{path}`, which no field of the manifest names"
                        ),
                    )
                    .help("send only the files the manifest refers to"),
                );
            }
        }
        findings
    }

    fn file_finding(
        &self,
        file: &ReferencedFile,
        rule: &'static str,
        message: String,
        help: &str,
    ) -> Diagnostic {
        let diagnostic = Diagnostic::error(rule, self.path(), message).field(file.field.clone());
        let diagnostic = match self.locate(&file.field) {
            Some(found) => diagnostic.at(self.source(), found.location.span, "this file"),
            None => diagnostic,
        };
        diagnostic.help(help)
    }
}
