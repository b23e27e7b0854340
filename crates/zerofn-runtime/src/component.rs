//! A compiled, linked and pre-instantiated component: everything about a function version that
//! can be shared between invocations, and nothing that belongs to one.

use crate::LoadError;
use crate::sandbox::Sandbox;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A component ready to serve: instantiating it is a matter of microseconds.
pub struct LoadedComponent {
    digest: String,
    pub(crate) pre: ProxyPre<Sandbox>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    pub(crate) fn compile(
        engine: &Engine,
        linker: &Linker<Sandbox>,
        digest: String,
        bytes: &[u8],
    ) -> Result<Self, LoadError> {
        let component =
            Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            LoadError::Link(format!(
                "it does not export `wasi:http/incoming-handler` (is it a wasi:http component?): {e:#}"
            ))
        })?;
        Ok(Self { digest, pre })
    }

    /// The `sha256:` digest of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
