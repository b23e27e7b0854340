//! `wasi:config/store` for one sandbox. The runtime knows nothing of secrets or grants: each
//! read is handed to the platform's [`ConfigSource`] for the invocation, which decides, fetches
//! and records it. What the guest is given is remembered ([`Revealed`], wiped when dropped) so
//! that it can be redacted from the invocation's captured output and error details.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::{Zeroize as _, Zeroizing};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/config",
        world: "wasi:config/imports",
        imports: { default: async | trappable },
    });
}

use bindings::wasi::config::store as wit;

/// A value handed to a guest: wiped when dropped.
pub type ConfigValue = Zeroizing<String>;

/// The platform's answer to a read.
pub type ConfigFuture<T> = Pin<Box<dyn Future<Output = Result<T, ConfigRefusal>> + Send>>;

/// Why a read was refused. The text reaches the guest as `wasi:config` `upstream` error, so it
/// says what to fix and never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRefusal(pub String);

/// The platform's side of one invocation's `wasi:config/store`.
pub trait ConfigSource: Send + Sync + 'static {
    /// The value of `name`, `None` when there is no such value, or why it is refused.
    fn get(&self, name: String) -> ConfigFuture<Option<ConfigValue>>;
    /// Every name and value this invocation may read, or why that is refused.
    fn get_all(&self) -> ConfigFuture<Vec<(String, ConfigValue)>>;
}

/// The replacement of a value found in output or error details.
pub const REDACTED: &str = "[redacted]";

/// Every value one invocation was given, kept so it can be redacted from what the invocation
/// leaves behind; wiped when the last clone is dropped.
#[derive(Clone, Default)]
pub(crate) struct Revealed(Arc<Mutex<Vec<ConfigValue>>>);

impl Revealed {
    fn lock(&self) -> MutexGuard<'_, Vec<ConfigValue>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember(&self, value: ConfigValue) {
        let mut values = self.lock();
        if !value.is_empty() && !values.iter().any(|v| **v == *value) {
            values.push(value);
            // Longest first, so a value that contains another is redacted whole.
            values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// `bytes` with every value replaced by [`REDACTED`]. When the output was cut off at a cap
    /// (`truncated`), a trailing piece that begins a value is redacted too. The input is wiped.
    pub(crate) fn redact(&self, mut bytes: Vec<u8>, truncated: bool) -> Vec<u8> {
        let values = self.lock();
        if values.is_empty() {
            return bytes;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes.as_slice();
        'scan: while !rest.is_empty() {
            for value in values.iter() {
                if rest.starts_with(value.as_bytes()) {
                    out.extend_from_slice(REDACTED.as_bytes());
                    rest = &rest[value.len()..];
                    continue 'scan;
                }
            }
            if truncated
                && values
                    .iter()
                    .any(|v| v.len() > rest.len() && v.as_bytes().starts_with(rest))
            {
                out.extend_from_slice(REDACTED.as_bytes());
                break;
            }
            out.push(rest[0]);
            rest = &rest[1..];
        }
        bytes.zeroize();
        out
    }

    /// [`Revealed::redact`] for text (error details).
    pub(crate) fn redact_text(&self, text: String) -> String {
        let redacted = self.redact(text.into_bytes(), false);
        String::from_utf8(redacted)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// The `wasi:config/store` host of one sandbox.
pub(crate) struct ConfigHost {
    source: Option<Arc<dyn ConfigSource>>,
    revealed: Revealed,
}

impl ConfigHost {
    pub(crate) fn new(source: Option<Arc<dyn ConfigSource>>, revealed: Revealed) -> Self {
        Self { source, revealed }
    }

    fn refused(message: impl Into<String>) -> wit::Error {
        wit::Error::Upstream(message.into())
    }
}

const NOTHING_GRANTED: &str = "this invocation has no configuration store";

impl wit::Host for ConfigHost {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, wit::Error>> {
        let Some(source) = &self.source else {
            return Ok(Err(Self::refused(NOTHING_GRANTED)));
        };
        Ok(match off_the_fiber(source.get(key)).await {
            Ok(Some(value)) => {
                // This copy goes to the component model, which writes it into the guest's
                // memory and frees it; the kept one is wiped at the end of the invocation.
                let for_guest = String::clone(&value);
                self.revealed.remember(value);
                Ok(Some(for_guest))
            }
            Ok(None) => Ok(None),
            Err(ConfigRefusal(message)) => Err(Self::refused(message)),
        })
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, wit::Error>> {
        let Some(source) = &self.source else {
            return Ok(Err(Self::refused(NOTHING_GRANTED)));
        };
        Ok(match off_the_fiber(source.get_all()).await {
            Ok(pairs) => Ok(pairs
                .into_iter()
                .map(|(name, value)| {
                    let for_guest = String::clone(&value);
                    self.revealed.remember(value);
                    (name, for_guest)
                })
                .collect()),
            Err(ConfigRefusal(message)) => Err(Self::refused(message)),
        })
    }
}

/// Runs the platform's answer as its own task. Host calls run on the guest's fiber, a small
/// stack whose bounds stack probes cannot see (the Cedar PDP refuses to evaluate there, taking
/// it for a stack overflow); platform code belongs on a worker's stack.
async fn off_the_fiber<T: Send + 'static>(answer: ConfigFuture<T>) -> Result<T, ConfigRefusal> {
    tokio::spawn(answer)
        .await
        .unwrap_or_else(|_| Err(ConfigRefusal("the configuration store failed".into())))
}

/// Links `wasi:config/store` into `linker`, served by each sandbox's [`ConfigHost`].
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<crate::sandbox::Sandbox>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, HasConfig>(linker, |sandbox| &mut sandbox.config)
}

struct HasConfig;

impl wasmtime::component::HasData for HasConfig {
    type Data<'a> = &'a mut ConfigHost;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revealed(values: &[&str]) -> Revealed {
        let revealed = Revealed::default();
        for value in values {
            revealed.remember(Zeroizing::new(value.to_string()));
        }
        revealed
    }

    #[test]
    fn values_are_redacted_wherever_they_appear() {
        let r = revealed(&["hunter2", "hunter2-long", "x"]);
        let out = r.redact(b"a hunter2-long b hunter2\nxy".to_vec(), false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a [redacted] b [redacted]\n[redacted]y"
        );
        assert_eq!(r.redact_text("nothing here".into()), "nothing here");
        assert_eq!(
            revealed(&[]).redact(b"hunter2".to_vec(), true),
            b"hunter2".to_vec()
        );
    }

    #[test]
    fn a_value_cut_off_at_the_cap_is_redacted_too() {
        let r = revealed(&["hunter2"]);
        let out = r.redact(b"key=hunt".to_vec(), true);
        assert_eq!(out, b"key=[redacted]".to_vec());
        // Not cut off: a prefix alone is not the value.
        assert_eq!(r.redact(b"key=hunt".to_vec(), false), b"key=hunt".to_vec());
    }
}
