//! `/…/kv/<operation>`: `wasi:keyvalue` calls on the bucket and key given in the query, so
//! tests can try buckets that are not granted, keys that try to leave their bucket, oversized
//! keys and values, and concurrent increments. The route may sit under any prefix
//! (`/a/kv/get`), so several apps can serve it at once.
//!
//! Query values are percent-decoded (`%00` is a NUL byte). Answers are JSON:
//! `{"ok": <result>}` or `{"error": "access-denied" | "no-such-store" | "other", "message"}`.

use crate::push_json_string;
use bindings::wasi::keyvalue::{atomics, batch, store};

mod bindings {
    wit_bindgen::generate!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        generate_all,
    });
}

/// Runs `operation` with `query` and returns the JSON answer.
pub fn handle(operation: &str, query: &str, body: Vec<u8>) -> String {
    let param = |name: &str| param(query, name);
    let text = |name: &str| param(name).map(|v| String::from_utf8_lossy(&v).into_owned());
    let bucket_name = text("bucket").unwrap_or_default();
    // `key_len=N` builds a key of N `k`s, for keys longer than a request line should carry.
    let key = match text("key_len").and_then(|n| n.parse::<usize>().ok()) {
        Some(len) => "k".repeat(len),
        None => text("key").unwrap_or_default(),
    };
    let keys: Vec<String> = text("keys")
        .map(|k| k.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let value = param("value").unwrap_or(body);

    if operation == "open-many" {
        return open_many(
            &bucket_name,
            text("n").and_then(|n| n.parse().ok()).unwrap_or(1),
        );
    }
    let bucket = match store::open(&bucket_name) {
        Ok(bucket) => bucket,
        Err(error) => return failure("open", &error),
    };
    let result: Result<String, store::Error> = match operation {
        "open" => Ok("null".into()),
        "get" => bucket.get(&key).map(|v| optional_text(v.as_deref())),
        "set" => bucket.set(&key, &value).map(|()| "null".into()),
        "delete" => bucket.delete(&key).map(|()| "null".into()),
        "exists" => bucket.exists(&key).map(|e| e.to_string()),
        "list" => {
            let cursor = text("cursor").and_then(|c| c.parse().ok());
            bucket.list_keys(cursor).map(|page| {
                let mut json = String::from("{\"keys\":");
                crate::push_json_array(&mut json, &page.keys);
                json.push_str(",\"cursor\":");
                json.push_str(&page.cursor.map_or("null".into(), |c| c.to_string()));
                json.push('}');
                json
            })
        }
        "increment" => {
            let delta = text("delta").and_then(|d| d.parse().ok()).unwrap_or(1);
            atomics::increment(&bucket, &key, delta).map(|n| n.to_string())
        }
        "get-many" => batch::get_many(&bucket, &keys).map(|values| {
            let items: Vec<String> = values
                .iter()
                .map(|v| match v {
                    Some((key, value)) => format!("{key}={}", String::from_utf8_lossy(value)),
                    None => String::new(),
                })
                .collect();
            let mut json = String::new();
            crate::push_json_array(&mut json, &items);
            json
        }),
        "set-many" => {
            let entries: Vec<(String, Vec<u8>)> =
                keys.iter().map(|k| (k.clone(), value.clone())).collect();
            batch::set_many(&bucket, &entries).map(|()| "null".into())
        }
        "delete-many" => batch::delete_many(&bucket, &keys).map(|()| "null".into()),
        other => return format!("{{\"error\":\"no such operation\",\"message\":\"{other}\"}}"),
    };
    match result {
        Ok(json) => format!("{{\"ok\":{json}}}"),
        Err(error) => failure(operation, &error),
    }
}

/// Opens `bucket` `n` times, holding every handle: reports how many opened before a refusal.
fn open_many(bucket: &str, n: u32) -> String {
    let mut held = Vec::new();
    for _ in 0..n {
        match store::open(bucket) {
            Ok(handle) => held.push(handle),
            Err(error) => {
                let mut json = format!("{{\"opened\":{},\"refusal\":", held.len());
                json.push_str(&failure("open", &error));
                json.push('}');
                return json;
            }
        }
    }
    format!("{{\"opened\":{}}}", held.len())
}

fn failure(operation: &str, error: &store::Error) -> String {
    let (kind, message) = match error {
        store::Error::NoSuchStore => ("no-such-store", String::new()),
        store::Error::AccessDenied => ("access-denied", String::new()),
        store::Error::Other(message) => ("other", message.clone()),
    };
    let mut json = format!("{{\"error\":\"{kind}\",\"operation\":\"{operation}\",\"message\":");
    push_json_string(&mut json, &message);
    json.push('}');
    json
}

fn optional_text(value: Option<&[u8]>) -> String {
    match value {
        None => "null".into(),
        Some(bytes) => {
            let mut json = String::new();
            push_json_string(&mut json, &String::from_utf8_lossy(bytes));
            json
        }
    }
}

/// The percent-decoded value of `name` in `query` (exact name match).
fn param(query: &str, name: &str) -> Option<Vec<u8>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    unreachable!("checked above")
                };
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}
