//! What the platform gives a function besides HTTP, through standard WASI interfaces:
//! config values and granted secrets (`wasi:config/store`) and key-value buckets
//! (`wasi:keyvalue/store`). zerofn hands over only what the manifest grants; everything else is
//! an error here, never a silent empty value.

#[allow(unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "zerofn:shop/platform",
        generate_all,
    });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::store as keyvalue;

/// A config value or granted secret, by name; an error if it is missing or refused.
pub fn config(name: &str) -> Result<String, String> {
    match config::get(name) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(format!("`{name}` is not set")),
        Err(config::Error::Upstream(why) | config::Error::Io(why)) => {
            Err(format!("`{name}` is not available: {why}"))
        }
    }
}

fn kv_error(error: keyvalue::Error) -> String {
    match error {
        keyvalue::Error::NoSuchStore => "no such bucket".to_owned(),
        keyvalue::Error::AccessDenied => "access denied".to_owned(),
        keyvalue::Error::Other(why) => why,
    }
}

/// Stores `value` under `key` in `bucket`.
pub fn kv_set(bucket: &str, key: &str, value: &[u8]) -> Result<(), String> {
    let bucket = keyvalue::open(bucket).map_err(kv_error)?;
    bucket.set(key, value).map_err(kv_error)
}

/// The value under `key` in `bucket`, if any.
pub fn kv_get(bucket: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    let bucket = keyvalue::open(bucket).map_err(kv_error)?;
    bucket.get(key).map_err(kv_error)
}
