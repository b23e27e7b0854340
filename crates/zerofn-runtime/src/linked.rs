//! What the runtime's linker defines: the interfaces a component may import and still be
//! deployed. Review tools (`zerofn lint`) read this list instead of keeping their own copy; a
//! test builds a component importing each candidate interface and checks the real linker
//! agrees with [`links`] both ways, so the list cannot drift from `Runtime::new`.

/// Every interface `Runtime::new` links, with the version it links. WASI 0.2 comes from
/// wasmtime-wasi and wasmtime-wasi-http; `wasi:config` and `wasi:keyvalue` are the platform's
/// own implementations of the drafts vendored under `wit/`.
pub const LINKED_INTERFACES: &[&str] = &[
    "wasi:io/error@0.2.12",
    "wasi:io/poll@0.2.12",
    "wasi:io/streams@0.2.12",
    "wasi:clocks/monotonic-clock@0.2.12",
    "wasi:clocks/wall-clock@0.2.12",
    "wasi:random/random@0.2.12",
    "wasi:random/insecure@0.2.12",
    "wasi:random/insecure-seed@0.2.12",
    "wasi:cli/environment@0.2.12",
    "wasi:cli/exit@0.2.12",
    "wasi:cli/stdin@0.2.12",
    "wasi:cli/stdout@0.2.12",
    "wasi:cli/stderr@0.2.12",
    "wasi:cli/terminal-input@0.2.12",
    "wasi:cli/terminal-output@0.2.12",
    "wasi:cli/terminal-stdin@0.2.12",
    "wasi:cli/terminal-stdout@0.2.12",
    "wasi:cli/terminal-stderr@0.2.12",
    // Linked so that components built with a standard library instantiate; the sandbox has no
    // preopened directory and no network, so every call through them fails.
    "wasi:filesystem/types@0.2.12",
    "wasi:filesystem/preopens@0.2.12",
    "wasi:sockets/network@0.2.12",
    "wasi:sockets/instance-network@0.2.12",
    "wasi:sockets/ip-name-lookup@0.2.12",
    "wasi:sockets/tcp@0.2.12",
    "wasi:sockets/tcp-create-socket@0.2.12",
    "wasi:sockets/udp@0.2.12",
    "wasi:sockets/udp-create-socket@0.2.12",
    "wasi:http/types@0.2.12",
    "wasi:http/outgoing-handler@0.2.12",
    "wasi:config/store@0.2.0-rc.1",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
];

/// Whether the linker satisfies an import called `name` (`wasi:cli/stdout@0.2.0`), by
/// wasmtime's rule for versions: an exact match, or the same semver-compatible track (same
/// major version; for `0.x`, same minor). A pre-release version matches only itself.
pub fn links(name: &str) -> bool {
    LINKED_INTERFACES
        .iter()
        .any(|linked| *linked == name || same_track(linked, name))
}

/// The linked interface an import called `name` resolves to, if any.
pub fn linked_as(name: &str) -> Option<&'static str> {
    LINKED_INTERFACES
        .iter()
        .find(|linked| **linked == name || same_track(linked, name))
        .copied()
}

fn same_track(a: &str, b: &str) -> bool {
    match (track(a), track(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The name up to the compatible part of its version (`wasi:cli/stdout@0.2`), as wasmtime's
/// `alternate_lookup_key` computes it; `None` when only an exact match links.
fn track(name: &str) -> Option<(&str, u64, u64)> {
    let (base, version) = name.split_once('@')?;
    let version = version.split('+').next()?;
    if version.contains('-') {
        return None;
    }
    let mut parts = version.split('.');
    let major: u64 = parts.next()?.parse().ok()?;
    let minor: u64 = parts.next()?.parse().ok()?;
    let _patch: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    match (major, minor) {
        (0, 0) => None,
        (0, minor) => Some((base, 0, minor)),
        (major, _) => Some((base, major, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_wasmtimes_rule() {
        assert!(links("wasi:cli/stdout@0.2.0"));
        assert!(links("wasi:cli/stdout@0.2.12"));
        assert!(links("wasi:cli/stdout@0.2.99"));
        assert!(!links("wasi:cli/stdout@0.3.0"));
        assert!(!links("wasi:cli/stdout"));
        assert!(links("wasi:keyvalue/store@0.2.0-draft"));
        assert!(!links("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(!links("wasi:keyvalue/store@0.1.0"));
        assert!(!links("wasi:config/store@0.2.0"));
        assert!(!links("fermyon:spin/key-value@2.0.0"));
        assert_eq!(
            linked_as("wasi:http/outgoing-handler@0.2.0"),
            Some("wasi:http/outgoing-handler@0.2.12")
        );
    }

    /// Interfaces a component could import that the runtime does not link: the rest of the
    /// WASI 0.2 packages, other versions, other platforms' interfaces.
    const NOT_LINKED: &[&str] = &[
        "wasi:clocks/timezone@0.2.12",
        "wasi:cli/run@0.2.12",
        "wasi:cli/stdout@0.3.0",
        "wasi:cli/stdout@1.0.0",
        "wasi:http/incoming-handler@0.2.12",
        "wasi:http/outgoing-handler@0.3.0-rc-2025-09-16",
        "wasi:keyvalue/watcher@0.2.0-draft",
        "wasi:keyvalue/store@0.1.0",
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:config/store@0.2.0-draft",
        "wasi:config/runtime@0.2.0-rc.1",
        "fermyon:spin/key-value@2.0.0",
        "fermyon:spin/variables@2.0.0",
        "wasi:nn/inference@0.2.0-rc-2024-10-28",
    ];

    /// Versions older than the linked ones, which components built against an older WASI
    /// import.
    const OLDER: &[&str] = &[
        "wasi:cli/environment@0.2.0",
        "wasi:io/streams@0.2.3",
        "wasi:http/outgoing-handler@0.2.0",
        "wasi:sockets/tcp@0.2.6",
    ];

    /// A component that imports a function `func()` under the interface's name. The linker
    /// refuses it either way, but says why: "expected function found instance" when an instance
    /// of that name (or a compatible version) is defined, "implementation is missing" when
    /// nothing is. (An instance import would not do: one with no exports links whether or not
    /// the linker defines it.)
    fn importing(name: &str) -> Vec<u8> {
        let mut component = wasm_encoder::ComponentBuilder::default();
        let (ty, encoder) = component.ty(None);
        encoder
            .function()
            .params([] as [(&str, wasm_encoder::ComponentValType); 0])
            .result(None);
        component.import(name, wasm_encoder::ComponentTypeRef::Func(ty));
        component.finish()
    }

    /// What the real linker says of an import called `name`.
    fn real_linker_links(runtime: &crate::Runtime, name: &str) -> bool {
        let component =
            wasmtime::component::Component::new(&runtime.inner.engine, importing(name)).unwrap();
        let Err(error) = runtime.inner.linker.instantiate_pre(&component) else {
            panic!("{name}: a function import cannot be satisfied by an interface");
        };
        let error = format!("{error:#}");
        let defined = error.contains("expected function found instance");
        let missing = error.contains("implementation is missing");
        assert!(
            defined != missing,
            "{name}: unexpected linker error: {error}"
        );
        defined
    }

    #[tokio::test]
    async fn the_list_is_what_the_real_linker_links() {
        let data = tempfile::tempdir().unwrap();
        let store = zerofn_store::Store::open(data.path()).unwrap();
        let audit = zerofn_audit::AuditLog::start(store).unwrap();
        let runtime = crate::Runtime::new(crate::RuntimeConfig::default(), audit).unwrap();
        let candidates = LINKED_INTERFACES.iter().chain(NOT_LINKED).chain(OLDER);
        for name in candidates {
            let linked = real_linker_links(&runtime, name);
            assert_eq!(linked, links(name), "{name}: the real linker says {linked}");
        }
        for name in NOT_LINKED {
            assert!(!links(name), "{name}");
        }
        for name in OLDER {
            assert!(links(name), "{name}");
        }
    }
}
