//! `zerofn secrets`: an app's secrets through the control plane, and master keys. A value is
//! read from stdin, the terminal or a file, held in memory that is wiped, and sent only in a
//! request body.

use super::operator::Target;
use crate::cli::{SecretValueArgs, SecretsCommand};
use crate::exit::{Code, Failure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::io::{IsTerminal as _, Read as _};
use zerofn_server::control::{SecretNameRequest, SecretValueRequest};
use zerofn_server::secrets::{Deleted, MAX_SECRET_BYTES};
use zerofn_server::vault::Rotation;
use zerofn_store::SecretRecord;
use zeroize::Zeroizing;

pub async fn run(command: SecretsCommand, target: &Target, json: bool) -> Result<(), Failure> {
    match command {
        SecretsCommand::Set { app, name, value } => {
            write(target, "set", app, name, &value, json).await
        }
        SecretsCommand::Rotate { app, name, value } => {
            write(target, "rotate", app, name, &value, json).await
        }
        SecretsCommand::List { app } => {
            let records: Vec<SecretRecord> = target
                .client()?
                .get(&format!("/v1/secrets?app={app}"))
                .await?;
            let value = serde_json::to_value(&records).unwrap_or_default();
            crate::output::print(json, &value, || {
                if records.is_empty() {
                    return format!("no secrets for {app}");
                }
                records
                    .iter()
                    .map(|r| {
                        format!(
                            "{:<24} v{:<4} created {}  rotated {}",
                            r.name, r.version, r.created_ms, r.rotated_ms
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        SecretsCommand::Delete { app, name } => {
            let deleted: Deleted = target
                .client()?
                .post("/v1/secrets/delete", &SecretNameRequest { app, name })
                .await?;
            if !json && !deleted.still_granted_to.is_empty() {
                eprintln!(
                    "warning: {} still grant{} it; their reads now find nothing",
                    deleted.still_granted_to.join(", "),
                    if deleted.still_granted_to.len() == 1 {
                        "s"
                    } else {
                        ""
                    }
                );
            }
            let value = serde_json::to_value(&deleted).unwrap_or_default();
            crate::output::print(json, &value, || {
                format!("deleted secret {} of {}", deleted.name, deleted.app)
            });
            Ok(())
        }
        SecretsCommand::RotateMaster => {
            let rotation: Rotation = target
                .client()?
                .post("/v1/secrets/rotate-master", &serde_json::json!({}))
                .await?;
            let value = serde_json::to_value(&rotation).unwrap_or_default();
            crate::output::print(json, &value, || {
                let mut text = format!(
                    "master key rotated: current {}, retired {}; {} sealed item(s) re-wrapped",
                    rotation.current_key_id,
                    rotation.retired_key_ids.join(", "),
                    rotation.rows.rewrapped
                );
                for row in &rotation.rows.unopened {
                    text.push_str(&format!(
                        "\nwarning: {} ({}) does not open and was left as it was: {}",
                        row.context, row.table, row.error
                    ));
                }
                text
            });
            Ok(())
        }
        SecretsCommand::GenerateMasterKey => generate_master_key(json),
    }
}

/// Prints a new master key for `ZEROFN_MASTER_KEY`.
pub fn generate_master_key(json: bool) -> Result<(), Failure> {
    let key = zerofn_vault::MasterKey::generate()
        .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    let encoded = key.encode();
    let value = serde_json::json!({"key": encoded.as_str(), "id": key.id()});
    crate::output::print(json, &value, || encoded.to_string());
    Ok(())
}

async fn write(
    target: &Target,
    action: &str,
    app: String,
    name: String,
    source: &SecretValueArgs,
    json: bool,
) -> Result<(), Failure> {
    let value = read_value(source, &app, &name)?;
    let request = SecretValueRequest {
        app,
        name,
        value_base64: BASE64.encode(value.as_slice()),
    };
    let record: SecretRecord = target
        .client()?
        .post(&format!("/v1/secrets/{action}"), &request)
        .await?;
    let value = serde_json::to_value(&record).unwrap_or_default();
    crate::output::print(json, &value, || {
        format!(
            "secret {} of {} is at version {}",
            record.name, record.app, record.version
        )
    });
    Ok(())
}

/// The value, from the file, the terminal or stdin; refused if empty or too large.
fn read_value(
    source: &SecretValueArgs,
    app: &str,
    name: &str,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let refused = |message: String| Failure::new(Code::Refused, message);
    let mut value = Zeroizing::new(Vec::new());
    let cap = MAX_SECRET_BYTES as u64 + 1;
    if let Some(path) = &source.from_file {
        let file = std::fs::File::open(path)
            .map_err(|e| Failure::new(Code::Failure, format!("{}: {e}", path.display())))?;
        file.take(cap)
            .read_to_end(&mut value)
            .map_err(|e| Failure::new(Code::Failure, format!("{}: {e}", path.display())))?;
    } else if std::io::stdin().is_terminal() {
        let typed = Zeroizing::new(
            rpassword::prompt_password(format!("value of secret {name} of {app}: "))
                .map_err(|e| Failure::new(Code::Failure, format!("cannot read the value: {e}")))?,
        );
        value.extend_from_slice(typed.as_bytes());
    } else {
        std::io::stdin()
            .lock()
            .take(cap)
            .read_to_end(&mut value)
            .map_err(|e| Failure::new(Code::Failure, format!("cannot read stdin: {e}")))?;
        // `echo value |` and here-documents end with a newline that is not part of the value.
        if value.ends_with(b"\n") {
            value.pop();
            if value.ends_with(b"\r") {
                value.pop();
            }
        }
    }
    if value.is_empty() {
        return Err(refused(
            "the value is empty: pipe it on stdin (`zerofn secrets set APP NAME < file`) or use --from-file FILE".into(),
        ));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(refused(format!(
            "the value is larger than {MAX_SECRET_BYTES} bytes, the most a secret holds"
        )));
    }
    Ok(value)
}
