//! The operator's platform config file (`zerofn.config.toml`): listener, global concurrency,
//! limit defaults and ceilings, guest output caps. Every key is optional; unknown keys are
//! errors, so a typo never silently leaves a ceiling at its default.

use crate::ServerConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zerofn_manifest::LimitPolicyConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    limits: LimitPolicyConfig,
    #[serde(default)]
    guest_output: GuestOutputSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<SocketAddr>,
    max_concurrency: Option<u32>,
    shutdown_grace_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestOutputSection {
    max_bytes_per_invocation: Option<usize>,
    bytes_per_second: Option<u64>,
    burst_bytes: Option<u64>,
}

/// The platform config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read platform config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("platform config {path} is invalid:\n{message}")]
    Invalid { path: PathBuf, message: String },
}

impl ServerConfig {
    /// The defaults for `data_dir`, overridden by the config file at `path`.
    pub fn from_file(path: &Path, data_dir: PathBuf) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: ConfigFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut config = Self::new(data_dir);
        config.limits = file.limits.resolve().map_err(|e| invalid(e.to_string()))?;
        if let Some(listen) = file.server.listen {
            config.listen = listen;
        }
        if let Some(cap) = file.server.max_concurrency {
            if cap == 0 {
                return Err(invalid(
                    "`server.max_concurrency` must be greater than 0".into(),
                ));
            }
            config.max_concurrency = cap;
            config.runtime.max_instances = config.runtime.max_instances.max(cap);
        }
        if let Some(ms) = file.server.shutdown_grace_ms {
            config.shutdown_grace = Duration::from_millis(ms);
        }
        let output = &mut config.runtime.output;
        let g = &file.guest_output;
        output.max_bytes_per_invocation = g
            .max_bytes_per_invocation
            .unwrap_or(output.max_bytes_per_invocation);
        output.bytes_per_second = g.bytes_per_second.unwrap_or(output.bytes_per_second);
        output.burst_bytes = g.burst_bytes.unwrap_or(output.burst_bytes);
        config.runtime.max_memory_bytes = config
            .runtime
            .max_memory_bytes
            .max(config.limits.ceilings.memory_mb.saturating_mul(1 << 20));
        Ok(config)
    }
}
