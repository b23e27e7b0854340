//! The order book: every placed order is kept in the app's `orders` bucket through the
//! standard `wasi:keyvalue` interfaces (WIT in `wit/keyvalue`). The manifest grants
//! `kv = { orders = "write" }`: checkout records orders and counts them, and cannot read them
//! back; the platform encrypts them at rest.

use bindings::wasi::keyvalue::{atomics, store};

mod bindings {
    wit_bindgen::generate!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        generate_all,
    });
}

/// Keeps `order` (its JSON) under `order/<id>` and returns how many orders have been placed.
pub fn record(order_id: &str, order: &[u8]) -> Result<u64, String> {
    let explain = |error: store::Error| match error {
        store::Error::NoSuchStore => "no such bucket".to_owned(),
        store::Error::AccessDenied => "the `orders` bucket is not granted".to_owned(),
        store::Error::Other(message) => message,
    };
    let orders = store::open("orders").map_err(explain)?;
    orders
        .set(&format!("order/{order_id}"), order)
        .map_err(explain)?;
    atomics::increment(&orders, "count", 1).map_err(explain)
}
