//! `zerofn build`: runs each function's build command in its working directory, once per
//! distinct command, with a progress display, and stops at the first failure with its output.

use crate::exit::{Code, Failure};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use zerofn_manifest::Manifest;
use zerofn_server::DeployBundle;

/// The manifest file name in an app directory.
pub const MANIFEST_FILE: &str = "zerofn.toml";

/// Loads `app_dir/zerofn.toml`.
pub fn load_manifest(app_dir: &Path) -> Result<Manifest, Failure> {
    Ok(zerofn_manifest::load(&app_dir.join(MANIFEST_FILE))?)
}

/// `zerofn build`: builds and prints what was built.
pub fn build_command(app_dir: &Path, json: bool) -> Result<(), Failure> {
    let (_, report) = build(app_dir, json)?;
    if json {
        crate::output::print(true, &serde_json::json!({ "built": report }), String::new);
    }
    Ok(())
}

/// Builds every function of the app in `app_dir`; returns its manifest and, per build step, what
/// ran and how long it took.
pub fn build(app_dir: &Path, json: bool) -> Result<(Manifest, Vec<serde_json::Value>), Failure> {
    let manifest = load_manifest(app_dir)?;
    let mut steps: BTreeMap<(String, PathBuf), Vec<String>> = BTreeMap::new();
    for function in manifest.functions() {
        if let Some(build) = &function.build {
            steps
                .entry((build.command.clone(), build.workdir.clone()))
                .or_default()
                .push(function.name.clone());
        }
    }
    let total = steps.len();
    let mut report = Vec::new();
    let mut built: BTreeMap<String, (Option<String>, SystemTime, SystemTime)> = BTreeMap::new();
    for (index, ((command, workdir), functions)) in steps.into_iter().enumerate() {
        let label = format!("[{}/{total}] {}", index + 1, functions.join(", "));
        let started = Instant::now();
        let start_time = SystemTime::now();
        let progress = spinner(&label, &command, json);
        let output = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(&workdir)
            .output();
        progress.finish_and_clear();
        let output = output.map_err(|e| {
            Failure::new(
                Code::BuildFailed,
                format!("cannot run `{command}` in {}: {e}", workdir.display()),
            )
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(Failure::new(
                Code::BuildFailed,
                format!(
                    "build of {} failed ({}): `{command}` in {}\n{}",
                    functions.join(", "),
                    output.status,
                    workdir.display(),
                    tail.join("\n")
                ),
            )
            .with_json(serde_json::json!({
                "error": "build failed",
                "functions": functions,
                "command": command,
                "workdir": workdir,
                "status": output.status.code(),
                "stderr": stderr,
            })));
        }
        let finished = SystemTime::now();
        for name in &functions {
            built.insert(name.clone(), (Some(command.clone()), start_time, finished));
        }
        let seconds = started.elapsed().as_secs_f64();
        if !json {
            eprintln!("  built {label} in {seconds:.1}s");
        }
        report.push(serde_json::json!({
            "functions": functions,
            "command": command,
            "workdir": workdir,
            "seconds": seconds,
        }));
    }
    // Every function gets an SBOM and provenance; a component built elsewhere has no command.
    let missing = manifest.check_components();
    if missing.has_errors() {
        return Err(missing.into());
    }
    for function in manifest.functions() {
        let now = SystemTime::now();
        let (command, started, finished) = built.remove(&function.name).unwrap_or((None, now, now));
        zerofn_provenance::write_build_artifacts(
            &manifest,
            function,
            command.as_deref(),
            started,
            finished,
        )
        .map_err(|e| Failure::new(Code::BuildFailed, e.to_string()))?;
    }
    Ok((manifest, report))
}

fn spinner(label: &str, command: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        if !json {
            eprintln!("  building {label}: {command}");
        }
        return ProgressBar::hidden();
    }
    let progress = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} ({elapsed})") {
        progress.set_style(style);
    }
    progress.set_message(format!("building {label}: {command}"));
    progress.enable_steady_tick(Duration::from_millis(100));
    progress
}

/// Loads the app in `app_dir` (building it first when `run_build`) and reads its components and
/// their signature bundles and SBOMs.
pub fn bundle(app_dir: &Path, run_build: bool, json: bool) -> Result<DeployBundle, Failure> {
    let manifest = if run_build {
        build(app_dir, json)?.0
    } else {
        load_manifest(app_dir)?
    };
    read_bundle(&manifest)
}

/// `zerofn up`'s path: like [`bundle`], then every function is signed with the data
/// directory's development key (created on first use), which only that data directory trusts.
pub fn bundle_with_dev_key(
    app_dir: &Path,
    run_build: bool,
    data_dir: &Path,
    json: bool,
) -> Result<DeployBundle, Failure> {
    let manifest = if run_build {
        build(app_dir, json)?.0
    } else {
        load_manifest(app_dir)?
    };
    let missing = manifest.check_components();
    if missing.has_errors() {
        return Err(missing.into());
    }
    let key = zerofn_server::trust::ensure_dev_key(data_dir)
        .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    for function in manifest.functions() {
        let paths = zerofn_provenance::ArtifactPaths::new(manifest.dir(), &function.name);
        if !paths.provenance.exists() {
            let now = SystemTime::now();
            zerofn_provenance::write_build_artifacts(&manifest, function, None, now, now)
                .map_err(|e| Failure::new(Code::BuildFailed, e.to_string()))?;
        }
        zerofn_provenance::sign_function(&manifest, function, &key)
            .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    }
    if !json {
        eprintln!(
            "signed with the development key {} (trusted for this data directory only)",
            key.public().key_id()
        );
    }
    read_bundle(&manifest)
}

/// Reads every function's component and every file the manifest refers to, for a deploy; a
/// missing one is a located diagnostic.
fn read_bundle(manifest: &zerofn_manifest::Manifest) -> Result<DeployBundle, Failure> {
    let missing = manifest.check_components();
    if missing.has_errors() {
        return Err(missing.into());
    }
    let mut components = std::collections::BTreeMap::new();
    for function in manifest.functions() {
        let bytes = std::fs::read(&function.component_path).map_err(|e| {
            Failure::new(
                Code::Refused,
                format!(
                    "cannot read the component of `{}` at {}: {e}",
                    function.name,
                    function.component_path.display()
                ),
            )
        })?;
        components.insert(function.name.clone(), bytes);
    }
    Ok(DeployBundle {
        manifest_path: manifest.path().display().to_string(),
        manifest: manifest.source().to_string(),
        components,
        attestations: read_attestations(manifest),
        files: manifest.read_referenced_files()?,
    })
}

/// The signature bundles and SBOMs that exist for the app's functions; a missing one is left
/// for the server to refuse, with its reason.
fn read_attestations(manifest: &Manifest) -> Vec<zerofn_store::Attestation> {
    manifest
        .functions()
        .filter_map(|function| {
            let paths = zerofn_provenance::ArtifactPaths::new(manifest.dir(), &function.name);
            let bundle = std::fs::read_to_string(&paths.bundle).ok()?;
            let sbom = std::fs::read_to_string(&paths.sbom).unwrap_or_default();
            Some(zerofn_store::Attestation {
                function: function.name.clone(),
                bundle,
                sbom,
            })
        })
        .collect()
}
