//! `shop-model`: what the shop's functions share, the product list and the few HTTP and
//! JSON helpers every handler needs.
//!
//! In a real shop the products would live in a database; here they are a constant so the
//! example has no state to set up.

// Only the generated `wasi:config`/`wasi:keyvalue` bindings in `platform` use `unsafe`.
#![deny(unsafe_code)]

pub mod http;
pub mod platform;

use serde::Serialize;

/// A product on sale. Prices are integer cents, never floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Product {
    pub sku: &'static str,
    pub name: &'static str,
    pub price_cents: u64,
}

/// Every product the shop sells, in catalogue order.
pub const PRODUCTS: &[Product] = &[
    Product {
        sku: "TEA-01",
        name: "Green tea",
        price_cents: 450,
    },
    Product {
        sku: "TEA-02",
        name: "Earl Grey",
        price_cents: 520,
    },
    Product {
        sku: "COF-01",
        name: "Espresso beans",
        price_cents: 1290,
    },
    Product {
        sku: "MUG-01",
        name: "Stoneware mug",
        price_cents: 1800,
    },
    Product {
        sku: "POT-01",
        name: "Glass teapot",
        price_cents: 3450,
    },
];

/// The product with this SKU, if the shop sells it.
pub fn product(sku: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|product| product.sku == sku)
}
