//! The operator's platform config file (`zerofn.config.toml`): listener, global concurrency,
//! limit defaults and ceilings, guest output caps, trust policy, advisory gate, admission
//! policies, the function listener's TLS, egress trust roots and the remote control listener. Every key is optional; unknown keys are
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
    advisories: Option<AdvisoriesSection>,
    #[serde(default)]
    admission: AdmissionSection,
    #[serde(default)]
    policy: PolicySection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    egress: EgressSection,
    control: Option<ControlSection>,
    #[serde(default)]
    secrets: SecretsSection,
    #[serde(default)]
    kv: KvSection,
    #[serde(default)]
    queues: QueuesSection,
    #[serde(default)]
    telemetry: TelemetrySection,
    #[serde(default)]
    response: ResponseSection,
    /// `[detection]`: the detectors' thresholds, windows and caps (`docs/detection.md`).
    #[serde(default)]
    detection: zerofn_detect::DetectorConfig,
}

/// `[telemetry]`: export of the audit stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetrySection {
    /// The OTLP/HTTP collector's base URL, `http://HOST:PORT`.
    otlp_endpoint: Option<String>,
    /// `service.name` of what is exported [default: `zerofn`].
    service_name: Option<String>,
}

/// `[response]`: the actions taken automatically per severity of a detection, and where
/// alerts go. A severity left out keeps its default; an empty list takes no action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseSection {
    low: Option<Vec<String>>,
    medium: Option<Vec<String>>,
    high: Option<Vec<String>>,
    critical: Option<Vec<String>>,
    /// An absolute `http://` or `https://` URL the `alert` action posts incidents to.
    webhook: Option<String>,
    webhook_timeout_ms: Option<u64>,
    webhook_attempts: Option<u32>,
}

impl ResponseSection {
    fn resolve(&self) -> Result<crate::response::ResponsePolicy, String> {
        use crate::response::{Action, ResponsePolicy};
        let webhook = match &self.webhook {
            None => {
                if self.webhook_timeout_ms.is_some() || self.webhook_attempts.is_some() {
                    return Err(
                        "`response.webhook_timeout_ms` and `response.webhook_attempts` need `response.webhook`".into(),
                    );
                }
                None
            }
            Some(url) => {
                let timeout = match self.webhook_timeout_ms {
                    None => crate::alert::DEFAULT_TIMEOUT,
                    Some(ms)
                        if ms > 0 && Duration::from_millis(ms) <= crate::alert::MAX_TIMEOUT =>
                    {
                        Duration::from_millis(ms)
                    }
                    Some(_) => {
                        return Err(format!(
                            "`response.webhook_timeout_ms` must be between 1 and {}",
                            crate::alert::MAX_TIMEOUT.as_millis()
                        ));
                    }
                };
                let attempts = match self.webhook_attempts {
                    None => crate::alert::DEFAULT_ATTEMPTS,
                    Some(n) if (1..=crate::alert::MAX_ATTEMPTS).contains(&n) => n,
                    Some(_) => {
                        return Err(format!(
                            "`response.webhook_attempts` must be between 1 and {}",
                            crate::alert::MAX_ATTEMPTS
                        ));
                    }
                };
                Some(crate::alert::Webhook {
                    url: crate::alert::Webhook::parse_url(url)?,
                    timeout,
                    attempts,
                })
            }
        };
        let mut policy = ResponsePolicy::defaults(webhook.is_some());
        for (name, written, slot) in [
            ("low", &self.low, &mut policy.low),
            ("medium", &self.medium, &mut policy.medium),
            ("high", &self.high, &mut policy.high),
            ("critical", &self.critical, &mut policy.critical),
        ] {
            let Some(written) = written else { continue };
            let mut actions = Vec::new();
            for action in written {
                let action =
                    Action::parse(action).map_err(|e| format!("`response.{name}`: {e}"))?;
                if actions.contains(&action) {
                    return Err(format!(
                        "`response.{name}` names `{}` twice",
                        action.as_str()
                    ));
                }
                if action == Action::Alert && webhook.is_none() {
                    return Err(format!(
                        "`response.{name}` names \"alert\" but no `response.webhook` is set: give the URL alerts are posted to, or remove \"alert\""
                    ));
                }
                actions.push(action);
            }
            *slot = actions;
        }
        policy.webhook = webhook;
        Ok(policy)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsSection {
    /// `"file"` (the default) or `"env"`.
    master_key: Option<String>,
    /// The key file, relative to the config file [default: `DATA_DIR/master.key`].
    master_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressSection {
    /// PEM CA certificates trusted (besides the system's) for `https` egress, relative to the
    /// config file.
    ca: Option<PathBuf>,
}

/// `[kv]`: limits on functions' key-value use. Each is a ceiling no function can go past.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KvSection {
    max_key_bytes: Option<u64>,
    max_value_bytes: Option<u64>,
    max_batch_keys: Option<u64>,
    max_batch_bytes: Option<u64>,
    max_keys_per_bucket: Option<u64>,
    max_bytes_per_app: Option<u64>,
}

/// The largest values `[kv]` accepts: a value is held whole in memory (sealed, opened, copied
/// into the guest), and a key is written into every event that names it.
const KV_MAX_KEY_BYTES: u64 = 64 << 10;
const KV_MAX_VALUE_BYTES: u64 = 64 << 20;
const KV_MAX_BATCH_BYTES: u64 = 256 << 20;

impl KvSection {
    fn resolve(&self) -> Result<crate::kv::KvLimits, String> {
        let mut limits = crate::kv::KvLimits::default();
        let pick = |name: &str, value: Option<u64>, default: u64, max: u64| match value {
            None => Ok(default),
            Some(0) => Err(format!("`kv.{name}` must be greater than 0")),
            Some(v) if v > max => Err(format!("`kv.{name}` is {v}; at most {max} is allowed")),
            Some(v) => Ok(v),
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        limits.max_key_bytes = size(pick(
            "max_key_bytes",
            self.max_key_bytes,
            limits.max_key_bytes as u64,
            KV_MAX_KEY_BYTES,
        )?);
        limits.max_value_bytes = size(pick(
            "max_value_bytes",
            self.max_value_bytes,
            limits.max_value_bytes as u64,
            KV_MAX_VALUE_BYTES,
        )?);
        limits.max_batch_keys = size(pick(
            "max_batch_keys",
            self.max_batch_keys,
            limits.max_batch_keys as u64,
            u64::from(u32::MAX),
        )?);
        limits.max_batch_bytes = size(pick(
            "max_batch_bytes",
            self.max_batch_bytes,
            limits.max_batch_bytes as u64,
            KV_MAX_BATCH_BYTES,
        )?);
        limits.max_keys_per_bucket = pick(
            "max_keys_per_bucket",
            self.max_keys_per_bucket,
            limits.max_keys_per_bucket,
            i64::MAX as u64,
        )?;
        limits.max_bytes_per_app = pick(
            "max_bytes_per_app",
            self.max_bytes_per_app,
            limits.max_bytes_per_app,
            i64::MAX as u64,
        )?;
        Ok(limits)
    }
}

/// `[queues]`: how the local queue worker retries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueuesSection {
    max_attempts: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    /// PEM CA certificates trusted (besides the system's) when fetching JWKS URLs, relative
    /// to the config file.
    jwks_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlSection {
    /// Where the remote control plane listens (TLS 1.3).
    listen: SocketAddr,
    /// PEM certificate chain and private key, relative to the config file; both or neither
    /// (then the built-in CA issues the listener's SVID).
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// Session lifetime in seconds [default: 900].
    session_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    /// Cedar guardrail files or directories, relative to the config file.
    #[serde(default)]
    guardrails: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdmissionSection {
    /// Rego files or directories of them, relative to the config file.
    #[serde(default)]
    policies: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvisoriesSection {
    /// Directory of OSV advisories, relative to the config file.
    db: PathBuf,
    /// `unknown`, `low`, `medium`, `high` or `critical`.
    block_at: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<SocketAddr>,
    max_concurrency: Option<u32>,
    shutdown_grace_ms: Option<u64>,
    /// The trust policy file, relative to the config file.
    trust_policy: Option<PathBuf>,
    /// The SPIFFE trust domain of function identities.
    trust_domain: Option<String>,
    /// `"off"` (plain HTTP, the default) or `"builtin"` (TLS with the built-in CA's SVID).
    tls: Option<String>,
    /// Lifetime of the node's server SVID, in seconds.
    svid_ttl_secs: Option<u64>,
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
        config.kv = file.kv.resolve().map_err(invalid)?;
        config.response = file.response.resolve().map_err(invalid)?;
        file.detection
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        config.detection = file.detection;
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
        if let Some(ca) = file.auth.jwks_ca {
            config.jwks_ca = Some(path.parent().unwrap_or(Path::new(".")).join(ca));
        }
        if let Some(ca) = file.egress.ca {
            config.egress_ca = Some(path.parent().unwrap_or(Path::new(".")).join(ca));
        }
        if let Some(policy) = file.server.trust_policy {
            config.trust_policy = Some(path.parent().unwrap_or(Path::new(".")).join(policy));
        }
        if let Some(advisories) = file.advisories {
            let block_at = advisories
                .block_at
                .parse()
                .map_err(|e: String| invalid(format!("`advisories.block_at`: {e}")))?;
            config.advisories = Some(crate::AdvisoryConfig {
                db: path.parent().unwrap_or(Path::new(".")).join(advisories.db),
                block_at,
            });
        }
        config.admission_policies = file
            .admission
            .policies
            .iter()
            .map(|p| path.parent().unwrap_or(Path::new(".")).join(p))
            .collect();
        config.guardrails = file
            .policy
            .guardrails
            .iter()
            .map(|p| path.parent().unwrap_or(Path::new(".")).join(p))
            .collect();
        if let Some(domain) = file.server.trust_domain {
            if !crate::calls::is_trust_domain(&domain) {
                return Err(invalid(format!(
                    "`server.trust_domain` `{domain}` is not a SPIFFE trust domain: use lowercase letters, digits, `.`, `-` and `_`"
                )));
            }
            config.trust_domain = domain;
        }
        if let Some(control) = file.control {
            let base = path.parent().unwrap_or(Path::new("."));
            let max = crate::operators::MAX_SESSION_TTL.as_secs();
            let session_ttl = match control.session_ttl_secs {
                None => crate::operators::DEFAULT_SESSION_TTL,
                Some(secs) if (1..=max).contains(&secs) => Duration::from_secs(secs),
                Some(_) => {
                    return Err(invalid(format!(
                        "`control.session_ttl_secs` must be between 1 and {max}"
                    )));
                }
            };
            // Half a pair is refused rather than completed with the built-in CA: the operator
            // meant to use files, and serving another certificate would surprise their clients.
            let certificate = match (control.tls_cert, control.tls_key) {
                (None, None) => crate::control::CertificateSource::Builtin,
                (Some(cert), Some(key)) => crate::control::CertificateSource::Files {
                    cert: base.join(cert),
                    key: base.join(key),
                },
                (Some(_), None) | (None, Some(_)) => {
                    return Err(invalid(
                        "`control.tls_cert` and `control.tls_key` go together: give both (a certificate chain and its key from files), or neither (the built-in CA issues the control plane's certificate)".into(),
                    ));
                }
            };
            config.remote_control = Some(crate::RemoteControlConfig {
                listen: control.listen,
                certificate,
                session_ttl,
            });
        }
        if let Some(tls) = file.server.tls {
            config.function_tls = tls.parse().map_err(|e: String| invalid(e))?;
        }
        if let Some(secs) = file.server.svid_ttl_secs {
            let ttl = Duration::from_secs(secs);
            if !(crate::certificates::MIN_SVID_TTL..=crate::certificates::MAX_SVID_TTL)
                .contains(&ttl)
            {
                return Err(invalid(format!(
                    "`server.svid_ttl_secs` must be between {} and {} seconds",
                    crate::certificates::MIN_SVID_TTL.as_secs(),
                    crate::certificates::MAX_SVID_TTL.as_secs()
                )));
            }
            config.svid_ttl = ttl;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.master_key = match (
            file.secrets.master_key.as_deref(),
            file.secrets.master_key_file,
        ) {
            (None | Some("file"), None) => None,
            (None | Some("file"), Some(key_file)) => {
                Some(zerofn_vault::MasterKeySource::File(base.join(key_file)))
            }
            (Some("env"), None) => Some(zerofn_vault::MasterKeySource::Environment),
            (Some("env"), Some(_)) => {
                return Err(invalid(
                    "`secrets.master_key = \"env\"` takes the key from ZEROFN_MASTER_KEY; remove `secrets.master_key_file`, or set `master_key = \"file\"`".into(),
                ));
            }
            (Some(other), _) => {
                return Err(invalid(format!(
                    "`secrets.master_key` is `{other}`; use \"file\" (a 0600 key file, `secrets.master_key_file`, default DATA_DIR/master.key) or \"env\" (ZEROFN_MASTER_KEY and ZEROFN_MASTER_KEY_PREVIOUS)"
                )));
            }
        };
        config.telemetry = match (file.telemetry.otlp_endpoint, file.telemetry.service_name) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(invalid(
                    "`telemetry.service_name` names what is exported to `telemetry.otlp_endpoint`; set the endpoint too, or remove it".into(),
                ));
            }
            (Some(endpoint), service_name) => {
                let service_name = service_name.unwrap_or_else(|| "zerofn".into());
                if service_name.is_empty()
                    || service_name.len() > 255
                    || service_name.chars().any(char::is_control)
                {
                    return Err(invalid(
                        "`telemetry.service_name` must be 1 to 255 printable characters".into(),
                    ));
                }
                Some(crate::otlp::TelemetryConfig {
                    otlp_endpoint: crate::otlp::TelemetryConfig::endpoint(&endpoint)
                        .map_err(invalid)?,
                    service_name,
                })
            }
        };
        if let Some(ms) = file.server.shutdown_grace_ms {
            config.shutdown_grace = Duration::from_millis(ms);
        }
        let q = &file.queues;
        let queues = &mut config.queues;
        if let Some(attempts) = q.max_attempts {
            if !(1..=100).contains(&attempts) {
                return Err(invalid(
                    "`queues.max_attempts` must be between 1 and 100".into(),
                ));
            }
            queues.max_attempts = attempts;
        }
        if let Some(ms) = q.retry_base_ms {
            queues.retry_base = Duration::from_millis(ms);
        }
        if let Some(ms) = q.retry_max_ms {
            queues.retry_max = Duration::from_millis(ms);
        }
        if queues.retry_base.is_zero() || queues.retry_max < queues.retry_base {
            return Err(invalid(
                "`queues.retry_base_ms` must be greater than 0 and at most `queues.retry_max_ms`"
                    .into(),
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zerofn.config.toml");
        std::fs::write(&path, text).unwrap();
        ServerConfig::from_file(&path, dir.path().join("data"))
    }

    #[test]
    fn every_section_overrides_the_defaults() {
        let config = load(
            "[server]\nlisten = \"127.0.0.1:9000\"\nmax_concurrency = 16\nshutdown_grace_ms = 500\ntrust_policy = \"policy/trust.toml\"\n\
             [limits.ceiling]\ntimeout_ms = 10000\nmemory_mb = 1024\n\
             [limits.defaults]\ntimeout_ms = 20000\n\
             [guest_output]\nmax_bytes_per_invocation = 1024\n",
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_concurrency, 16);
        assert_eq!(config.shutdown_grace, Duration::from_millis(500));
        assert!(config.trust_policy_path().ends_with("policy/trust.toml"));
        assert_eq!(config.limits.ceilings.timeout_ms, 10_000);
        assert_eq!(
            config.limits.defaults.timeout_ms, 10_000,
            "defaults lowered to the ceiling"
        );
        assert_eq!(
            config.runtime.max_memory_bytes,
            1024 << 20,
            "pool slots fit the ceiling"
        );
        assert_eq!(config.runtime.output.max_bytes_per_invocation, 1024);
        assert_eq!(
            config.function_tls,
            crate::FunctionTls::Off,
            "plain HTTP by default"
        );
        assert_eq!(config.egress_ca, None);
        let egress = load("[egress]\nca = \"certs/egress-ca.pem\"\n").unwrap();
        assert!(egress.egress_ca.unwrap().ends_with("certs/egress-ca.pem"));
        let tls = load("[server]\ntls = \"builtin\"\nsvid_ttl_secs = 600\n").unwrap();
        assert_eq!(tls.function_tls, crate::FunctionTls::Builtin);
        assert_eq!(tls.svid_ttl, Duration::from_secs(600));
    }

    #[test]
    fn the_control_listener_is_configured_only_when_named() {
        assert!(load("").unwrap().remote_control.is_none());
        let config = load(
            "[control]\nlisten = \"127.0.0.1:7443\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\nsession_ttl_secs = 60\n",
        )
        .unwrap();
        let remote = config.remote_control.unwrap();
        assert_eq!(remote.listen.port(), 7443);
        assert_eq!(remote.session_ttl, Duration::from_secs(60));
        let crate::control::CertificateSource::Files { cert, key } = remote.certificate else {
            panic!("both files named, yet {:?}", remote.certificate);
        };
        assert!(cert.ends_with("tls/cert.pem"));
        assert!(key.ends_with("tls/key.pem"));
        let builtin = load("[control]\nlisten = \"127.0.0.1:7443\"\n").unwrap();
        assert_eq!(
            builtin.remote_control.unwrap().certificate,
            crate::control::CertificateSource::Builtin,
            "no files: the built-in CA"
        );
        let too_long = load(
            "[control]\nlisten = \"127.0.0.1:7443\"\ntls_cert = \"c\"\ntls_key = \"k\"\nsession_ttl_secs = 999999\n",
        )
        .unwrap_err();
        assert!(
            too_long.to_string().contains("session_ttl_secs"),
            "{too_long}"
        );
        for half in ["tls_cert = \"c\"", "tls_key = \"k\""] {
            let error =
                load(&format!("[control]\nlisten = \"127.0.0.1:7443\"\n{half}\n")).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("`control.tls_cert` and `control.tls_key` go together"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_master_key_comes_from_a_file_or_the_environment_and_nothing_else() {
        let default = load("").unwrap();
        assert_eq!(default.master_key, None);
        assert!(
            default
                .master_key_source()
                .describe()
                .ends_with("data/master.key")
        );
        let file = load("[secrets]\nmaster_key_file = \"keys/master.key\"\n").unwrap();
        let Some(zerofn_vault::MasterKeySource::File(path)) = file.master_key else {
            panic!("{:?}", file.master_key)
        };
        assert!(path.ends_with("keys/master.key"));
        assert_eq!(
            load("[secrets]\nmaster_key = \"env\"\n")
                .unwrap()
                .master_key,
            Some(zerofn_vault::MasterKeySource::Environment)
        );
        for (text, expected) in [
            ("master_key = \"vault\"", "`secrets.master_key` is `vault`"),
            (
                "master_key = \"env\"\nmaster_key_file = \"k\"",
                "remove `secrets.master_key_file`",
            ),
            ("master_kee = \"env\"", "master_kee"),
        ] {
            let error = load(&format!("[secrets]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn kv_limits_are_set_and_checked() {
        let defaults = load("").unwrap().kv;
        assert_eq!(defaults, crate::kv::KvLimits::default());
        let kv =
            load("[kv]\nmax_key_bytes = 64\nmax_value_bytes = 1024\nmax_keys_per_bucket = 10\n")
                .unwrap()
                .kv;
        assert_eq!(
            (kv.max_key_bytes, kv.max_value_bytes, kv.max_keys_per_bucket),
            (64, 1024, 10)
        );
        assert_eq!(kv.max_bytes_per_app, defaults.max_bytes_per_app);
        for (text, field) in [
            ("[kv]\nmax_value_bytes = 0\n", "kv.max_value_bytes"),
            ("[kv]\nmax_key_bytes = 1000000\n", "kv.max_key_bytes"),
            ("[kv]\nmax_keys = 1\n", "max_keys"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
    }

    #[test]
    fn telemetry_is_exported_only_to_a_plain_http_endpoint_when_named() {
        assert_eq!(load("").unwrap().telemetry, None);
        let config = load("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n").unwrap();
        let telemetry = config.telemetry.unwrap();
        assert_eq!(telemetry.otlp_endpoint.as_str(), "http://127.0.0.1:4318/");
        assert_eq!(telemetry.service_name, "zerofn");
        for (text, expected) in [
            (
                "otlp_endpoint = \"https://collector:4318\"",
                "only `http://`",
            ),
            ("otlp_endpoint = \"collector:4318\"", "only `http://`"),
            (
                "otlp_endpoint = \"http://user:pw@collector:4318\"",
                "no credentials",
            ),
            (
                "otlp_endpoint = \"http://collector:4318/?x=1\"",
                "no credentials",
            ),
            ("service_name = \"edge\"", "set the endpoint too"),
            ("otlp_endpiont = \"http://x\"", "otlp_endpiont"),
        ] {
            let error = load(&format!("[telemetry]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn response_actions_are_configured_per_severity_and_fail_closed() {
        use crate::response::Action;
        let defaults = load("").unwrap().response;
        assert_eq!(
            defaults.high,
            [Action::Quarantine, Action::RevokeLeases],
            "no webhook, no alert"
        );
        assert!(defaults.webhook.is_none());
        let config = load(
            "[response]\nmedium = [\"alert\"]\nhigh = [\"revoke-leases\"]\nlow = []\nwebhook = \"http://127.0.0.1:9000/hook\"\nwebhook_attempts = 2\n",
        )
        .unwrap()
        .response;
        assert_eq!(config.medium, [Action::Alert]);
        assert_eq!(config.high, [Action::RevokeLeases]);
        assert_eq!(
            config.critical,
            [
                Action::Quarantine,
                Action::RevokeLeases,
                Action::Rollback,
                Action::Alert
            ],
            "an unnamed severity keeps its default"
        );
        let webhook = config.webhook.unwrap();
        assert_eq!(webhook.attempts, 2);
        assert_eq!(webhook.url.port_u16(), Some(9000));
        for (text, expected) in [
            ("high = [\"nuke\"]", "`nuke` is not a response action"),
            ("high = [\"alert\"]", "no `response.webhook` is set"),
            (
                "high = [\"quarantine\", \"quarantine\"]",
                "names `quarantine` twice",
            ),
            ("webhook = \"ftp://x/y\"", "http:// or https://"),
            ("webhook = \"/hook\"", "http:// or https://"),
            ("webhook_attempts = 2", "need `response.webhook`"),
            (
                "webhook = \"http://127.0.0.1/\"\nwebhook_attempts = 0",
                "webhook_attempts",
            ),
            ("severe = []", "severe"),
        ] {
            let error = load(&format!("[response]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn detection_thresholds_are_read_and_checked() {
        let config = load("[detection]\nwarmup_events = 5\nwindow_ms = 1000\n").unwrap();
        assert_eq!(config.detection.warmup_events, 5);
        assert_eq!(config.detection.window_ms, 1000);
        assert_eq!(
            load("").unwrap().detection,
            zerofn_detect::DetectorConfig::default()
        );
        let typo = load("[detection]\nwarmup = 5\n").unwrap_err().to_string();
        assert!(typo.contains("warmup"), "{typo}");
        let bad = load("[detection]\newma_alpha = 0.0\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("ewma_alpha"), "{bad}");
    }

    #[test]
    fn unknown_keys_and_zero_caps_fail_closed() {
        let typo = load("[limits.ceilng]\ntimeout_ms = 1\n").unwrap_err();
        assert!(typo.to_string().contains("ceilng"), "{typo}");
        let egress = load("[egress]\ncaa = \"x.pem\"\n").unwrap_err();
        assert!(egress.to_string().contains("caa"), "{egress}");
        let zero = load("[server]\nmax_concurrency = 0\n").unwrap_err();
        assert!(zero.to_string().contains("max_concurrency"), "{zero}");
        let zero_limit = load("[limits.ceiling]\nmemory_mb = 0\n").unwrap_err();
        assert!(zero_limit.to_string().contains("memory_mb"), "{zero_limit}");
        let tls = load("[server]\ntls = \"on\"\n").unwrap_err();
        assert!(tls.to_string().contains("`server.tls`"), "{tls}");
        let ttl = load("[server]\nsvid_ttl_secs = 1\n").unwrap_err();
        assert!(ttl.to_string().contains("svid_ttl_secs"), "{ttl}");
        let missing =
            ServerConfig::from_file(Path::new("/nonexistent/zerofn.config.toml"), "/tmp".into())
                .unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }));
    }
}
