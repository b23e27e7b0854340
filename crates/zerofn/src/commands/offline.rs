//! What the offline commands (`admit`, `policy`, `threat-model`) read of the platform's
//! configuration, read as the server reads it, so that what passes here does not stop the
//! server.

use crate::exit::{Code, Failure};
use std::path::{Path, PathBuf};
use zerofn_policy::Guardrails;
use zerofn_server::ServerConfig;

fn refused(error: &dyn std::fmt::Display) -> Failure {
    Failure::new(Code::Refused, error.to_string())
}

/// The platform config in `config`, or the defaults for `data_dir` without one.
pub(super) fn platform_config(
    config: Option<&Path>,
    data_dir: PathBuf,
) -> Result<ServerConfig, Failure> {
    match config {
        Some(path) => ServerConfig::from_file(path, data_dir).map_err(|e| refused(&e)),
        None => Ok(ServerConfig::new(data_dir)),
    }
}

/// The guardrails of the config's `guardrails` and of `extra` files or directories. The server
/// also builds its control-plane PDP from them and refuses to start if that fails: so does
/// this, or a guardrail could pass here and stop the server.
pub(super) fn guardrails(config: &[PathBuf], extra: &[PathBuf]) -> Result<Guardrails, Failure> {
    let mut paths = config.to_vec();
    paths.extend(extra.iter().cloned());
    let guardrails = Guardrails::load(&paths).map_err(|e| refused(&e))?;
    zerofn_policy::ControlPdp::build(&guardrails).map_err(|e| refused(&e))?;
    Ok(guardrails)
}
