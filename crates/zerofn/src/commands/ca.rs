//! `zerofn ca`: the built-in CA's bundle, and client certificates for callers of `mtls`
//! functions, through the control plane.

use crate::cli::CaCommand;
use crate::exit::{Code, Failure};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};
use zerofn_server::control::{CaBundle, IssueCertificateRequest, IssuedClientCertificate};

/// The files `zerofn ca issue` writes into its directory.
const CERTIFICATE_FILE: &str = "svid.pem";
const KEY_FILE: &str = "svid.key.pem";
const BUNDLE_FILE: &str = "bundle.pem";

pub async fn run(
    command: CaCommand,
    target: &super::operator::Target,
    json: bool,
) -> Result<(), Failure> {
    let client = target.client()?;
    match command {
        CaCommand::Bundle { out } => {
            let bundle: CaBundle = client.get("/v1/ca/bundle").await?;
            let value = serde_json::to_value(&bundle).unwrap_or_default();
            match out {
                Some(path) => {
                    write(&path, bundle.bundle_pem.as_bytes())?;
                    crate::output::print(json, &value, || {
                        format!(
                            "wrote the CA bundle of trust domain {} to {}",
                            bundle.trust_domain,
                            path.display()
                        )
                    });
                }
                None => {
                    crate::output::print(json, &value, || bundle.bundle_pem.trim_end().to_string())
                }
            }
        }
        CaCommand::Issue {
            spiffe_id,
            out,
            ttl,
        } => {
            let key = zerofn_identity::SvidKey::generate()
                .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
            let issued: IssuedClientCertificate = client
                .post(
                    "/v1/ca/issue",
                    &IssueCertificateRequest {
                        spiffe_id,
                        public_key_pem: key.public_key_pem().to_string(),
                        ttl_secs: Some(ttl.as_secs()),
                    },
                )
                .await?;
            std::fs::create_dir_all(&out).map_err(|e| {
                Failure::new(
                    Code::Failure,
                    format!("cannot create {}: {e}", out.display()),
                )
            })?;
            zerofn_identity::ca::write_private(
                &out.join(KEY_FILE),
                key.private_key_pem().as_bytes(),
            )
            .map_err(|e| {
                Failure::new(
                    Code::Failure,
                    format!("cannot write {}: {e}", out.join(KEY_FILE).display()),
                )
            })?;
            write(
                &out.join(CERTIFICATE_FILE),
                issued.certificate_pem.as_bytes(),
            )?;
            write(&out.join(BUNDLE_FILE), issued.bundle_pem.as_bytes())?;
            let mut value = serde_json::to_value(&issued).unwrap_or_default();
            value["certificate_file"] = out.join(CERTIFICATE_FILE).display().to_string().into();
            value["key_file"] = out.join(KEY_FILE).display().to_string().into();
            value["bundle_file"] = out.join(BUNDLE_FILE).display().to_string().into();
            crate::output::print(json, &value, || {
                let until = UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(issued.not_after_ms).unwrap_or_default());
                format!(
                    "issued {} (serial {}, valid until {})\n  certificate: {}\n  private key: {}\n  CA bundle:   {}",
                    issued.spiffe_id,
                    issued.serial,
                    humantime::format_rfc3339_seconds(until),
                    out.join(CERTIFICATE_FILE).display(),
                    out.join(KEY_FILE).display(),
                    out.join(BUNDLE_FILE).display()
                )
            });
        }
    }
    Ok(())
}

fn write(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, contents).map_err(|e| {
        Failure::new(
            Code::Failure,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}
