//! `zerofn threat-model`: reads the manifest, the trust policy and the guardrails as `zerofn
//! admit` and `zerofn policy` read them, and writes the model in the format asked for.

use crate::cli::ThreatModelFormat;
use crate::exit::{Code, Failure};
use std::path::{Path, PathBuf};
use zerofn_threat_model::{Deployment, Signer, Status, render};

pub fn threat_model(
    app_dir: &Path,
    config: Option<&Path>,
    guardrails: &[PathBuf],
    format: ThreatModelFormat,
    output: Option<&Path>,
    fail_on: Option<zerofn_admission::Severity>,
    data_dir: PathBuf,
) -> Result<(), Failure> {
    let refused = |e: &dyn std::fmt::Display| Failure::new(Code::Refused, e.to_string());
    let manifest = zerofn_manifest::load(&app_dir.join(zerofn_manifest::MANIFEST_FILE))?;
    let config = super::offline::platform_config(config, data_dir)?;
    let trust =
        zerofn_server::trust::TrustPolicy::load(&config.trust_policy_path(), &config.data_dir)
            .map_err(|e| refused(&e))?;
    let guardrails = super::offline::guardrails(&config.guardrails, guardrails)?;
    let deployment = Deployment {
        signers: signers(&trust, manifest.app_name(), &config.data_dir)?,
        listener_tls: config.function_tls == zerofn_server::FunctionTls::Builtin,
        guardrails,
    };
    let model = zerofn_threat_model::build(&manifest, &deployment).map_err(|e| refused(&e))?;
    let text = match format {
        ThreatModelFormat::Markdown => render::markdown(&model),
        ThreatModelFormat::Json => render::json(&model),
        ThreatModelFormat::Mermaid => render::mermaid(&model),
        ThreatModelFormat::Dot => render::dot(&model),
        ThreatModelFormat::Svg => render::svg(&render::dot(&model))
            .map_err(|e| Failure::new(Code::Failure, e.to_string()))?,
    };
    match output {
        Some(path) => std::fs::write(path, &text).map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("cannot write {}: {e}", path.display()),
            )
        })?,
        None => print!("{text}"),
    }
    if let Some(threshold) = fail_on {
        let gaps = model
            .threats
            .iter()
            .filter(|t| t.status == Status::Gap && t.severity >= threshold)
            .count();
        if gaps > 0 {
            // The model is already written, in the format asked for.
            return Err(Failure::new(
                Code::Refused,
                format!("{gaps} gap(s) of severity {threshold} or more"),
            )
            .with_json(serde_json::Value::Null));
        }
    }
    Ok(())
}

/// The keys the trust policy lets sign `app` now, by name, with the data directory's
/// development key told apart by its key id (a policy entry may use any name).
fn signers(
    trust: &zerofn_server::trust::TrustPolicy,
    app: &str,
    data_dir: &Path,
) -> Result<Vec<Signer>, Failure> {
    let dev_path = data_dir.join(zerofn_server::trust::DEV_PUBLIC_KEY_FILE);
    let development = if dev_path.exists() {
        let pem = std::fs::read_to_string(&dev_path).map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("cannot read {}: {e}", dev_path.display()),
            )
        })?;
        let key = zerofn_signing::PublicKey::from_pem(&pem).map_err(|e| {
            Failure::new(
                Code::Refused,
                format!("development key {}: {e}", dev_path.display()),
            )
        })?;
        Some(key.key_id())
    } else {
        None
    };
    let mut signers: Vec<Signer> = Vec::new();
    for key in trust.keys_for(app) {
        let id = key.key_id();
        let Some(entry) = trust.key(&id) else {
            continue;
        };
        let signer = Signer {
            name: entry.name.clone(),
            development: development.as_deref() == Some(id.as_str()),
        };
        if !signers.contains(&signer) {
            signers.push(signer);
        }
    }
    Ok(signers)
}
