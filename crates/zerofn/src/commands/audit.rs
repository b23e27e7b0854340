//! `zerofn audit verify|key`: the audit chain's integrity, as the running server sees it (the
//! CLI never opens the store itself).

use super::operator::Target;
use crate::cli::AuditCommand;
use crate::exit::{Code, Failure};
use std::path::Path;
use zerofn_audit::VerifyReport;
use zerofn_server::control::AuditKey;

pub async fn run(command: AuditCommand, target: &Target, json: bool) -> Result<(), Failure> {
    match command {
        AuditCommand::Verify { key } => verify(key.as_deref(), target, json).await,
        AuditCommand::Key => key(target, json).await,
    }
}

async fn verify(key: Option<&Path>, target: &Target, json: bool) -> Result<(), Failure> {
    let pem = key
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    Code::Failure,
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        })
        .transpose()?;
    let path = match &pem {
        Some(pem) => format!(
            "/v1/audit/verify?key={}",
            url::form_urlencoded::byte_serialize(pem.as_bytes()).collect::<String>()
        ),
        None => "/v1/audit/verify".to_string(),
    };
    let report: VerifyReport = target.client()?.get(&path).await?;
    let value = serde_json::to_value(&report).unwrap_or_default();
    if report.intact {
        crate::output::print(json, &value, || report.render());
        return Ok(());
    }
    Err(Failure::new(Code::ChainBroken, report.render()).with_json(value))
}

async fn key(target: &Target, json: bool) -> Result<(), Failure> {
    let key: AuditKey = target.client()?.get("/v1/audit/key").await?;
    let value = serde_json::to_value(&key).unwrap_or_default();
    crate::output::print(json, &value, || key.public_key_pem.trim_end().to_string());
    Ok(())
}
