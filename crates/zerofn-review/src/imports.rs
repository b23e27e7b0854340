//! What a component can ask the platform for, read from its imports without compiling it.
//!
//! A component model binary lists each interface it imports and, per interface, only the
//! functions its code uses (wit-component drops the rest): the shop's `orders` imports
//! `wasi:keyvalue/store` with `open` and `[method]bucket.get` and nothing that writes. That list
//! is an upper bound on what the code can do, whatever the grants say; [`Capabilities`] reads
//! it as the capabilities zerofn grants, independently of the interfaces' versions.

use std::collections::{BTreeMap, BTreeSet};
use wasmparser::component_types::ComponentEntityType;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// Components larger than this are not read: no function needs more, and a review tool must
/// not be the thing a hostile file exhausts.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// One top-level import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The name exactly as imported: `wasi:keyvalue/store@0.2.0-draft`.
    pub name: String,
    /// `wasi:keyvalue`; `None` for a plain (non-interface) name.
    pub package: Option<String>,
    /// `store`.
    pub interface: Option<String>,
    /// `0.2.0-draft`.
    pub version: Option<String>,
    /// The functions imported through it (for an instance), sorted.
    pub functions: BTreeSet<String>,
}

impl Import {
    /// `wasi:keyvalue/store`: the interface without its version.
    pub fn unversioned(&self) -> &str {
        self.name.split('@').next().unwrap_or(&self.name)
    }
}

/// Why a component's imports could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is {0} bytes, above the {MAX_COMPONENT_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("not a WebAssembly component: it is a core module (build for wasm32-wasip2)")]
    CoreModule,
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
}

/// The top-level imports of the component `bytes`, after validating it (a file that does not
/// validate would not deploy, and its import list could not be trusted).
pub fn read_imports(bytes: &[u8]) -> Result<Vec<Import>, ImportError> {
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(ImportError::TooLarge(bytes.len()));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(ImportError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(ImportError::Invalid(
            "the file does not start with the component header".into(),
        ));
    }
    let types = Validator::new_with_features(WasmFeatures::default())
        .validate_all(bytes)
        .map_err(|e| ImportError::Invalid(e.to_string()))?;
    let types = types.as_ref();
    let mut imports = Vec::new();
    // Only the outermost component's imports reach the host; nested components and modules
    // import from their parent.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ImportError::Invalid(e.to_string()))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    let import = import.map_err(|e| ImportError::Invalid(e.to_string()))?;
                    let name = import.name.name.to_string();
                    let functions = match types.component_item_for_import(&name).map(|i| i.ty) {
                        Some(ComponentEntityType::Instance(id)) => types
                            .get(id)
                            .map(|instance| {
                                instance
                                    .exports
                                    .iter()
                                    .filter(|(_, item)| {
                                        matches!(item.ty, ComponentEntityType::Func(_))
                                    })
                                    .map(|(name, _)| name.clone())
                                    .collect()
                            })
                            .unwrap_or_default(),
                        _ => BTreeSet::new(),
                    };
                    imports.push(parse_name(name, functions));
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

fn parse_name(name: String, functions: BTreeSet<String>) -> Import {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version.to_string())),
        None => (name.as_str(), None),
    };
    let (package, interface) = match path.split_once('/') {
        Some((package, interface)) if package.contains(':') => {
            (Some(package.to_string()), Some(interface.to_string()))
        }
        _ => (None, None),
    };
    Import {
        package,
        interface,
        version,
        functions,
        name,
    }
}

/// Why the platform refuses calls through an import it links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// `wasi:sockets/*`: no function is ever given a network (egress goes through
    /// `wasi:http/outgoing-handler`).
    Sockets,
    /// `wasi:filesystem/*`: no function has a preopened directory.
    Filesystem,
    /// `wasi:config/store.get-all`: listing would reveal every granted secret at once.
    ConfigGetAll,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Sockets => {
                "sockets: no function is given a network; outbound HTTP goes through `wasi:http/outgoing-handler` and the `egress` grants"
            }
            Refusal::Filesystem => {
                "the filesystem: no function has a preopened directory, so there is nothing to open"
            }
            Refusal::ConfigGetAll => {
                "`wasi:config/store.get-all`: listing every value is always refused; read each name with `get`"
            }
        }
    }
}

/// What the imports let the component ask for, in zerofn's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `wasi:http/outgoing-handler.handle`: outbound HTTP, to `egress` destinations and to
    /// `invoke`d functions.
    pub outbound_http: bool,
    /// Opens buckets (`wasi:keyvalue/store.open`).
    pub kv_open: bool,
    /// Reads from a bucket: `get`, `exists`, `list-keys`, `get-many`.
    pub kv_read: bool,
    /// Writes to a bucket: `set`, `delete`, `increment`, `set-many`, `delete-many`.
    pub kv_write: bool,
    /// `wasi:config/store.get`: secrets and plain configuration values.
    pub config_get: bool,
    /// Imports the platform links but refuses every call through, with the interfaces.
    pub refused: BTreeMap<Refusal, BTreeSet<String>>,
    /// Imports the platform does not link: the component cannot be deployed.
    pub unlinked: Vec<String>,
}

/// Key-value functions that read and that write, as the platform's enforcement point
/// classifies them (`increment` needs `write`).
const KV_READS: &[&str] = &[
    "[method]bucket.get",
    "[method]bucket.exists",
    "[method]bucket.list-keys",
    "get-many",
];
const KV_WRITES: &[&str] = &[
    "[method]bucket.set",
    "[method]bucket.delete",
    "increment",
    "set-many",
    "delete-many",
];

impl Capabilities {
    /// Classifies `imports`; what the platform links is asked of the runtime
    /// ([`zerofn_runtime::links`]).
    pub fn of(imports: &[Import]) -> Self {
        let mut capabilities = Capabilities::default();
        for import in imports {
            if !zerofn_runtime::links(&import.name) {
                capabilities.unlinked.push(import.name.clone());
                continue;
            }
            let has = |f: &str| import.functions.contains(f);
            match (import.package.as_deref(), import.interface.as_deref()) {
                (Some("wasi:http"), Some("outgoing-handler")) => {
                    capabilities.outbound_http |= has("handle");
                }
                (Some("wasi:keyvalue"), Some("store" | "atomics" | "batch")) => {
                    capabilities.kv_open |= has("open");
                    capabilities.kv_read |= KV_READS.iter().any(|f| has(f));
                    capabilities.kv_write |= KV_WRITES.iter().any(|f| has(f));
                }
                (Some("wasi:config"), Some("store")) => {
                    capabilities.config_get |= has("get");
                    if has("get-all") {
                        capabilities
                            .refused
                            .entry(Refusal::ConfigGetAll)
                            .or_default()
                            .insert(import.name.clone());
                    }
                }
                (Some("wasi:sockets"), Some(_)) => {
                    capabilities
                        .refused
                        .entry(Refusal::Sockets)
                        .or_default()
                        .insert(import.unversioned().to_string());
                }
                (Some("wasi:filesystem"), Some(_)) => {
                    capabilities
                        .refused
                        .entry(Refusal::Filesystem)
                        .or_default()
                        .insert(import.unversioned().to_string());
                }
                _ => {}
            }
        }
        capabilities
    }

    /// Whether the component can use a key-value bucket at all: it must open one, then read or
    /// write it.
    pub fn kv(&self) -> bool {
        self.kv_open && (self.kv_read || self.kv_write)
    }
}
