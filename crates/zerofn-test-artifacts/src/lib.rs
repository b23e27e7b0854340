//! Paths of the guest components the platform's tests and benches run.
//!
//! The build script compiles `tests/guests` and the examples under `examples/` for
//! `wasm32-wasip2`, each as its own Cargo workspace with `--locked`, into this crate's
//! `OUT_DIR`. Each constant is the absolute path of one component; read it with
//! `std::fs::read`. Building this crate therefore needs the `wasm32-wasip2` target, which
//! `rust-toolchain.toml` installs.
//!
//! **Invariant**: the guests are built from the committed sources and lock files only;
//! nothing from the outer build (flags, wrappers, target directory) leaks into them, so a
//! test runs the same bytes under `cargo test`, `cargo clippy` or a coverage run.

#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
