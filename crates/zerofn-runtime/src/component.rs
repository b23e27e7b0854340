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
    origin: ComponentOrigin,
    pub(crate) pre: ProxyPre<Sandbox>,
}

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentOrigin {
    /// Compiled from the component's bytes.
    Compiled,
    /// Read from the authenticated on-disk cache.
    Cache,
    /// Compiled because the cache entry was not authentic; the entry was discarded.
    Recompiled { rejected: String },
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
        Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    pub(crate) fn link(
        linker: &Linker<Sandbox>,
        digest: String,
        component: &Component,
        origin: ComponentOrigin,
    ) -> Result<Self, LoadError> {
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            LoadError::Link(format!(
                "it does not export `wasi:http/incoming-handler` (is it a wasi:http component?): {e:#}"
            ))
        })?;
        Ok(Self {
            digest,
            origin,
            pre,
        })
    }

    /// Where the machine code came from.
    pub fn origin(&self) -> &ComponentOrigin {
        &self.origin
    }

    /// The `sha256:` digest of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
