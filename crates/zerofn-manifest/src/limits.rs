//! Resource limits: what a manifest asks for, and the operator's policy that bounds it.
//!
//! A manifest may leave any limit out (the policy's default applies) but may never exceed the
//! policy's ceiling: `check_deployable` fails closed with `limit-above-ceiling` instead of
//! clamping, so an app never runs with limits its author did not expect.

use serde::Deserialize;

/// Limits as written in a manifest's `limits = { ... }`; `None` means "use the default".
/// Parsing guarantees every present value is greater than zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsSpec {
    /// Wall-clock time for one invocation, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory for one instance, in MiB.
    pub memory_mb: Option<u64>,
    /// Invocations of this function running at once.
    pub max_concurrency: Option<u32>,
    /// Largest request body accepted, in bytes.
    pub max_request_body_bytes: Option<u64>,
    /// Largest response body returned, in bytes.
    pub max_response_body_bytes: Option<u64>,
    /// Requests per second the function accepts from everyone together (token refill rate).
    pub requests_per_second: Option<u64>,
    /// Requests the function accepts at once above its rate (token bucket size).
    pub burst: Option<u64>,
    /// Requests per second the function accepts from one caller.
    pub caller_requests_per_second: Option<u64>,
    /// Requests one caller may send at once above its rate.
    pub caller_burst: Option<u64>,
}

/// Limits with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedLimits {
    /// Wall-clock time for one invocation, in milliseconds.
    pub timeout_ms: u64,
    /// Linear memory for one instance, in MiB.
    pub memory_mb: u64,
    /// Invocations of this function running at once.
    pub max_concurrency: u32,
    /// Largest request body accepted, in bytes.
    pub max_request_body_bytes: u64,
    /// Largest response body returned, in bytes.
    pub max_response_body_bytes: u64,
    /// Requests per second from everyone together.
    pub requests_per_second: u64,
    /// Requests at once above the rate, from everyone together.
    pub burst: u64,
    /// Requests per second from one caller.
    pub caller_requests_per_second: u64,
    /// Requests at once above the rate, from one caller.
    pub caller_burst: u64,
}

/// The operator's limits: defaults for what a manifest leaves out, ceilings it may not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Used where a manifest sets nothing; never above `ceilings` when built by
    /// [`LimitPolicy::default`] or [`LimitPolicyConfig::resolve`], and clamped to them anyway
    /// when applied.
    pub defaults: ResolvedLimits,
    /// The largest value a manifest may ask for.
    pub ceilings: ResolvedLimits,
}

const MIB: u64 = 1024 * 1024;

impl Default for LimitPolicy {
    /// Safe defaults: 5 s, 64 MiB, 32 concurrent, 1 MiB requests, 8 MiB responses, 500
    /// requests/s (burst 1000) in all and 100/s (burst 200) per caller; ceilings: 60 s, 512 MiB,
    /// 256 concurrent, 16 MiB requests, 64 MiB responses, 10 000 requests/s (burst 20 000).
    fn default() -> Self {
        LimitPolicy {
            defaults: ResolvedLimits {
                timeout_ms: 5_000,
                memory_mb: 64,
                max_concurrency: 32,
                max_request_body_bytes: MIB,
                max_response_body_bytes: 8 * MIB,
                requests_per_second: 500,
                burst: 1_000,
                caller_requests_per_second: 100,
                caller_burst: 200,
            },
            ceilings: ResolvedLimits {
                timeout_ms: 60_000,
                memory_mb: 512,
                max_concurrency: 256,
                max_request_body_bytes: 16 * MIB,
                max_response_body_bytes: 64 * MIB,
                requests_per_second: 10_000,
                burst: 20_000,
                caller_requests_per_second: 10_000,
                caller_burst: 20_000,
            },
        }
    }
}

/// One limit that a manifest asked to set above the policy's ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The key, e.g. `"timeout_ms"`.
    pub field: &'static str,
    /// What the manifest asked for.
    pub requested: u64,
    /// The ceiling.
    pub ceiling: u64,
}

impl LimitPolicy {
    /// The policy's defaults, each lowered to its ceiling if above it.
    pub fn effective_defaults(&self) -> ResolvedLimits {
        let (d, c) = (&self.defaults, &self.ceilings);
        ResolvedLimits {
            timeout_ms: d.timeout_ms.min(c.timeout_ms),
            memory_mb: d.memory_mb.min(c.memory_mb),
            max_concurrency: d.max_concurrency.min(c.max_concurrency),
            max_request_body_bytes: d.max_request_body_bytes.min(c.max_request_body_bytes),
            max_response_body_bytes: d.max_response_body_bytes.min(c.max_response_body_bytes),
            requests_per_second: d.requests_per_second.min(c.requests_per_second),
            burst: d.burst.min(c.burst),
            caller_requests_per_second: d
                .caller_requests_per_second
                .min(c.caller_requests_per_second),
            caller_burst: d.caller_burst.min(c.caller_burst),
        }
    }

    /// Fills the gaps in `spec` with defaults, or lists every value above its ceiling.
    pub fn resolve(&self, spec: &LimitsSpec) -> Result<ResolvedLimits, Vec<LimitExceeded>> {
        let defaults = self.effective_defaults();
        let mut exceeded = Vec::new();
        let mut pick = |field: &'static str, requested: Option<u64>, default: u64, ceiling: u64| {
            match requested {
                Some(requested) if requested > ceiling => {
                    exceeded.push(LimitExceeded {
                        field,
                        requested,
                        ceiling,
                    });
                    default
                }
                Some(requested) => requested,
                None => default,
            }
        };
        let c = &self.ceilings;
        let resolved = ResolvedLimits {
            timeout_ms: pick(
                "timeout_ms",
                spec.timeout_ms,
                defaults.timeout_ms,
                c.timeout_ms,
            ),
            memory_mb: pick("memory_mb", spec.memory_mb, defaults.memory_mb, c.memory_mb),
            // Both sides fit in u32, so the minimum does too.
            max_concurrency: u32::try_from(pick(
                "max_concurrency",
                spec.max_concurrency.map(u64::from),
                u64::from(defaults.max_concurrency),
                u64::from(c.max_concurrency),
            ))
            .unwrap_or(defaults.max_concurrency),
            max_request_body_bytes: pick(
                "max_request_body_bytes",
                spec.max_request_body_bytes,
                defaults.max_request_body_bytes,
                c.max_request_body_bytes,
            ),
            max_response_body_bytes: pick(
                "max_response_body_bytes",
                spec.max_response_body_bytes,
                defaults.max_response_body_bytes,
                c.max_response_body_bytes,
            ),
            requests_per_second: pick(
                "requests_per_second",
                spec.requests_per_second,
                defaults.requests_per_second,
                c.requests_per_second,
            ),
            burst: pick("burst", spec.burst, defaults.burst, c.burst),
            caller_requests_per_second: pick(
                "caller_requests_per_second",
                spec.caller_requests_per_second,
                defaults.caller_requests_per_second,
                c.caller_requests_per_second,
            ),
            caller_burst: pick(
                "caller_burst",
                spec.caller_burst,
                defaults.caller_burst,
                c.caller_burst,
            ),
        };
        if exceeded.is_empty() {
            Ok(resolved)
        } else {
            Err(exceeded)
        }
    }
}

/// The `[limits]` section of the platform config (`zerofn.config.toml`), as written:
///
/// ```toml
/// [limits.defaults]
/// timeout_ms = 10000
///
/// [limits.ceiling]
/// timeout_ms = 30000
/// memory_mb = 256
/// ```
///
/// Every key is optional and falls back to [`LimitPolicy::default`]; unknown keys are errors.
/// Embed it in the platform config type as `limits: LimitPolicyConfig` (with `#[serde(default)]`)
/// and call [`LimitPolicyConfig::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitPolicyConfig {
    /// `[limits.defaults]`
    #[serde(default)]
    pub defaults: LimitsConfig,
    /// `[limits.ceiling]`
    #[serde(default)]
    pub ceiling: LimitsConfig,
}

/// The keys of `[limits.defaults]` and `[limits.ceiling]`: the same as a manifest's `limits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// See [`ResolvedLimits::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`ResolvedLimits::memory_mb`].
    pub memory_mb: Option<u64>,
    /// See [`ResolvedLimits::max_concurrency`].
    pub max_concurrency: Option<u32>,
    /// See [`ResolvedLimits::max_request_body_bytes`].
    pub max_request_body_bytes: Option<u64>,
    /// See [`ResolvedLimits::max_response_body_bytes`].
    pub max_response_body_bytes: Option<u64>,
    /// See [`ResolvedLimits::requests_per_second`].
    pub requests_per_second: Option<u64>,
    /// See [`ResolvedLimits::burst`].
    pub burst: Option<u64>,
    /// See [`ResolvedLimits::caller_requests_per_second`].
    pub caller_requests_per_second: Option<u64>,
    /// See [`ResolvedLimits::caller_burst`].
    pub caller_burst: Option<u64>,
}

/// The platform config's limits cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitPolicyError {
    /// A zero limit would make every invocation fail; it is almost certainly a mistake.
    #[error("`limits.{section}.{field}` must be greater than 0")]
    Zero {
        /// `"defaults"` or `"ceiling"`.
        section: &'static str,
        /// The key.
        field: &'static str,
    },
}

impl LimitsConfig {
    fn overlay(
        &self,
        base: ResolvedLimits,
        section: &'static str,
    ) -> Result<ResolvedLimits, LimitPolicyError> {
        fn nonzero<T: Copy + PartialEq + Default>(
            value: Option<T>,
            base: T,
            section: &'static str,
            field: &'static str,
        ) -> Result<T, LimitPolicyError> {
            match value {
                Some(v) if v == T::default() => Err(LimitPolicyError::Zero { section, field }),
                Some(v) => Ok(v),
                None => Ok(base),
            }
        }
        Ok(ResolvedLimits {
            timeout_ms: nonzero(self.timeout_ms, base.timeout_ms, section, "timeout_ms")?,
            memory_mb: nonzero(self.memory_mb, base.memory_mb, section, "memory_mb")?,
            max_concurrency: nonzero(
                self.max_concurrency,
                base.max_concurrency,
                section,
                "max_concurrency",
            )?,
            max_request_body_bytes: nonzero(
                self.max_request_body_bytes,
                base.max_request_body_bytes,
                section,
                "max_request_body_bytes",
            )?,
            max_response_body_bytes: nonzero(
                self.max_response_body_bytes,
                base.max_response_body_bytes,
                section,
                "max_response_body_bytes",
            )?,
            requests_per_second: nonzero(
                self.requests_per_second,
                base.requests_per_second,
                section,
                "requests_per_second",
            )?,
            burst: nonzero(self.burst, base.burst, section, "burst")?,
            caller_requests_per_second: nonzero(
                self.caller_requests_per_second,
                base.caller_requests_per_second,
                section,
                "caller_requests_per_second",
            )?,
            caller_burst: nonzero(
                self.caller_burst,
                base.caller_burst,
                section,
                "caller_burst",
            )?,
        })
    }
}

impl LimitPolicyConfig {
    /// The policy this config describes: unset keys take [`LimitPolicy::default`]'s values,
    /// then defaults are lowered to the ceilings where above them (so lowering a ceiling alone
    /// is enough to lower the default too).
    pub fn resolve(&self) -> Result<LimitPolicy, LimitPolicyError> {
        let builtin = LimitPolicy::default();
        let ceilings = self.ceiling.overlay(builtin.ceilings, "ceiling")?;
        let defaults = self.defaults.overlay(builtin.defaults, "defaults")?;
        let policy = LimitPolicy { defaults, ceilings };
        Ok(LimitPolicy {
            defaults: policy.effective_defaults(),
            ceilings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_defaults_are_within_ceilings() {
        let p = LimitPolicy::default();
        assert_eq!(p.effective_defaults(), p.defaults);
    }

    #[test]
    fn config_overlays_and_clamps_defaults() {
        let config: LimitPolicyConfig =
            toml::from_str("[defaults]\nmemory_mb = 128\n[ceiling]\ntimeout_ms = 1000\n").unwrap();
        let p = config.resolve().unwrap();
        assert_eq!(p.ceilings.timeout_ms, 1000);
        assert_eq!(
            p.defaults.timeout_ms, 1000,
            "default lowered to the ceiling"
        );
        assert_eq!(p.defaults.memory_mb, 128);
        assert_eq!(p.ceilings.memory_mb, 512);
    }

    #[test]
    fn config_rejects_unknown_keys_and_zero() {
        assert!(toml::from_str::<LimitPolicyConfig>("[ceilings]\n").is_err());
        assert!(toml::from_str::<LimitPolicyConfig>("[ceiling]\ntimeout = 1\n").is_err());
        let config: LimitPolicyConfig = toml::from_str("[ceiling]\nmemory_mb = 0\n").unwrap();
        assert_eq!(
            config.resolve(),
            Err(LimitPolicyError::Zero {
                section: "ceiling",
                field: "memory_mb"
            })
        );
    }

    #[test]
    fn resolve_fills_defaults_and_reports_every_excess() {
        let p = LimitPolicy::default();
        let spec = LimitsSpec {
            timeout_ms: Some(2000),
            ..LimitsSpec::default()
        };
        let r = p.resolve(&spec).unwrap();
        assert_eq!(r.timeout_ms, 2000);
        assert_eq!(r.memory_mb, 64);
        let spec = LimitsSpec {
            timeout_ms: Some(60_001),
            max_concurrency: Some(1000),
            ..LimitsSpec::default()
        };
        let err = p.resolve(&spec).unwrap_err();
        assert_eq!(err.len(), 2);
        assert_eq!(err[0].field, "timeout_ms");
        assert_eq!(err[0].ceiling, 60_000);
        assert_eq!(err[1].field, "max_concurrency");
    }
}
