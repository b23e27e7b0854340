//! `zerofn keygen`, `sign` and `verify`: key pairs, signing an app's functions, and checking a
//! bundle by hand. Passphrases come from a file or the terminal, never from argv.

use super::build::load_manifest;
use crate::cli::PassphraseArgs;
use crate::exit::{Code, Failure};
use std::io::IsTerminal;
use std::path::Path;
use zerofn_signing::{Algorithm, Bundle, PrivateKey, PublicKey, SigningError};
use zeroize::Zeroizing;

/// A passphrase, zeroed when dropped.
type Secret = Zeroizing<Vec<u8>>;

pub fn keygen(
    algorithm: &str,
    output: &Path,
    passphrase: &PassphraseArgs,
    no_passphrase: bool,
    json: bool,
) -> Result<(), Failure> {
    let algorithm: Algorithm = algorithm
        .parse()
        .map_err(|e: String| Failure::new(Code::Refused, e))?;
    let private_path = output.with_extension("key");
    let public_path = output.with_extension("pub");
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(Failure::new(
                Code::Refused,
                format!("{} exists; choose another --output", path.display()),
            ));
        }
    }
    let secret = if no_passphrase {
        None
    } else {
        Some(read_passphrase(passphrase, true)?)
    };
    let key = PrivateKey::generate(algorithm).map_err(signing_failure)?;
    key.write_pem_file(&private_path, secret.as_ref().map(|s| s.as_slice()))
        .map_err(|e| io(&private_path, e))?;
    std::fs::write(&public_path, key.public().to_pem()).map_err(|e| io(&public_path, e))?;
    let key_id = key.public().key_id();
    crate::output::print(
        json,
        &serde_json::json!({
            "algorithm": algorithm.as_str(),
            "key_id": key_id,
            "private_key": private_path,
            "public_key": public_path,
            "encrypted": secret.is_some(),
        }),
        || {
            format!(
                "wrote {} ({}, {}) and {}\nkey id {key_id}",
                private_path.display(),
                algorithm.as_str(),
                if secret.is_some() {
                    "encrypted"
                } else {
                    "NOT encrypted"
                },
                public_path.display()
            )
        },
    );
    Ok(())
}

pub fn sign(
    app_dir: &Path,
    key_path: &Path,
    passphrase: &PassphraseArgs,
    json: bool,
) -> Result<(), Failure> {
    let manifest = load_manifest(app_dir)?;
    let key = load_private_key(key_path, passphrase)?;
    let mut signed = Vec::new();
    for function in manifest.functions() {
        let paths = zerofn_provenance::sign_function(&manifest, function, &key).map_err(|e| {
            Failure::new(
                Code::Refused,
                format!("cannot sign `{}`: {e}", function.name),
            )
        })?;
        signed.push(serde_json::json!({
            "function": function.name,
            "bundle": paths.bundle,
            "config_sha256": manifest.config_digest(function),
        }));
    }
    let key_id = key.public().key_id();
    crate::output::print(
        json,
        &serde_json::json!({"app": manifest.app_name(), "key_id": key_id, "signed": signed}),
        || {
            let mut text = format!("signed {} with key {key_id}\n", manifest.app_name());
            for s in &signed {
                text.push_str(&format!(
                    "  {:<12} {}\n",
                    s["function"].as_str().unwrap_or_default(),
                    s["bundle"].as_str().unwrap_or_default()
                ));
            }
            text.trim_end().to_string()
        },
    );
    Ok(())
}

pub fn verify(
    bundle_path: &Path,
    key_path: &Path,
    component: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(bundle_path).map_err(|e| io(bundle_path, e))?;
    let pem = std::fs::read_to_string(key_path).map_err(|e| io(key_path, e))?;
    let key = PublicKey::from_pem(&pem).map_err(signing_failure)?;
    let bundle = Bundle::from_json(&text).map_err(signing_failure)?;
    let verified = bundle.verify(&[key]).map_err(signing_failure)?;
    let statement = &verified.statement;
    if let Some(path) = component {
        let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
        let digest = zerofn_signing::Subject::sha256("", &bytes);
        let matches = statement.subject.iter().any(|s| {
            s.name.ends_with(zerofn_provenance::COMPONENT_SUFFIX) && s.digest == digest.digest
        });
        if !matches {
            return Err(Failure::new(
                Code::Refused,
                format!(
                    "{} is not the signed component: its digest is in no subject",
                    path.display()
                ),
            ));
        }
    }
    let builder = &statement.predicate["runDetails"]["builder"]["id"];
    let command = &statement.predicate["buildDefinition"]["externalParameters"]["command"];
    crate::output::print(
        json,
        &serde_json::json!({
            "verified": true,
            "key_id": verified.key_id,
            "subjects": statement.subject,
            "predicate_type": statement.predicate_type,
            "builder": builder,
            "command": command,
        }),
        || {
            let mut text = format!("verified: signed by key {}\n", verified.key_id);
            for subject in &statement.subject {
                text.push_str(&format!(
                    "  {}  sha256:{}\n",
                    subject.name,
                    subject.sha256_hex().unwrap_or("?")
                ));
            }
            text.push_str(&format!(
                "  predicate {} (builder {}, command {})",
                statement.predicate_type, builder, command
            ));
            text
        },
    );
    Ok(())
}

/// `zerofn deps`: every function's SBOM against the advisory database.
pub fn deps(app_dir: &Path, db: &Path, fail_on: &str, json: bool) -> Result<(), Failure> {
    let threshold: zerofn_provenance::Severity = fail_on
        .parse()
        .map_err(|e: String| Failure::new(Code::Refused, e))?;
    let manifest = load_manifest(app_dir)?;
    let database = zerofn_provenance::AdvisoryDatabase::load(db)
        .map_err(|e| Failure::new(Code::Failure, format!("advisory database: {e}")))?;
    let mut report = Vec::new();
    for function in manifest.functions() {
        let paths = zerofn_provenance::ArtifactPaths::new(manifest.dir(), &function.name);
        let text = std::fs::read_to_string(&paths.sbom).map_err(|e| {
            Failure::new(
                Code::Refused,
                format!("{}: {e} (run `zerofn build` first)", paths.sbom.display()),
            )
        })?;
        let sbom: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Failure::new(Code::Refused, format!("{}: {e}", paths.sbom.display())))?;
        for finding in database.check_sbom(&sbom) {
            report.push((function.name.clone(), finding));
        }
    }
    let blocking = report
        .iter()
        .filter(|(_, f)| f.severity >= threshold)
        .count();
    let value = serde_json::json!({
        "advisories_checked": database.len(),
        "findings": report.iter().map(|(function, f)| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            v["function"] = serde_json::Value::from(function.as_str());
            v
        }).collect::<Vec<_>>(),
        "blocking": blocking,
    });
    // With --json a blocking result is printed once, as the failure's document.
    let print_json = json && blocking == 0;
    if print_json || !json {
        print_findings(json, &value, &report, database.len());
    }
    if blocking > 0 {
        return Err(Failure::new(
            Code::Refused,
            format!("{blocking} finding(s) at or above `{fail_on}`"),
        )
        .with_json(value));
    }
    Ok(())
}

fn print_findings(
    json: bool,
    value: &serde_json::Value,
    report: &[(String, zerofn_provenance::Finding)],
    checked: usize,
) {
    crate::output::print(json, value, || {
        if report.is_empty() {
            return format!("no known advisories ({checked} checked)");
        }
        let mut text = String::new();
        for (function, f) in report {
            text.push_str(&format!(
                "{:<9} {} {}@{} in `{function}`: {}{}\n",
                format!("{:?}", f.severity).to_lowercase(),
                f.advisory,
                f.package,
                f.version,
                f.summary,
                f.fixed
                    .as_ref()
                    .map(|v| format!(" (fixed in {v})"))
                    .unwrap_or_default()
            ));
        }
        text.trim_end().to_string()
    });
}

/// Reads a private key, asking for its passphrase only if it is encrypted.
pub fn load_private_key(path: &Path, passphrase: &PassphraseArgs) -> Result<PrivateKey, Failure> {
    let pem = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    match PrivateKey::from_pem(&pem, None) {
        Err(SigningError::PassphraseRequired) => {
            let secret = read_passphrase(passphrase, false)?;
            PrivateKey::from_pem(&pem, Some(secret.as_slice())).map_err(signing_failure)
        }
        other => other.map_err(signing_failure),
    }
}

fn read_passphrase(args: &PassphraseArgs, confirm: bool) -> Result<Secret, Failure> {
    if let Some(path) = &args.passphrase_file {
        let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| io(path, e))?);
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(Failure::new(
                Code::Refused,
                format!("{} is empty", path.display()),
            ));
        }
        return Ok(bytes);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Code::Refused,
            "a passphrase is needed: pass --passphrase-file FILE (or --no-passphrase for keygen)",
        ));
    }
    let first = rpassword::prompt_password("passphrase: ")
        .map_err(|e| Failure::new(Code::Failure, format!("cannot read the passphrase: {e}")))?;
    if confirm {
        let again = rpassword::prompt_password("passphrase again: ")
            .map_err(|e| Failure::new(Code::Failure, format!("cannot read the passphrase: {e}")))?;
        if again != first {
            return Err(Failure::new(Code::Refused, "the passphrases differ"));
        }
    }
    Ok(Zeroizing::new(first.into_bytes()))
}

fn signing_failure(error: SigningError) -> Failure {
    Failure::new(Code::Refused, error.to_string())
}

fn io(path: &Path, error: std::io::Error) -> Failure {
    Failure::new(Code::Failure, format!("{}: {error}", path.display()))
}
