//! `inventory`: how many of a product are in stock.
//!
//! `GET /inventory?sku=TEA-01` answers `{"sku": "TEA-01", "in_stock": 120}`; a missing
//! `sku` is a 400, an unknown one a 404. The stock table is this function's own data:
//! the checkout function will ask for it through a granted `invoke`, not read it.

#![forbid(unsafe_code)]

use serde::Serialize;
use shop_model::http::{path_and_query, query_param, respond_error, respond_json};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

wasip2::http::proxy::export!(Inventory);

/// Units in stock, by SKU. Every product in `shop_model::PRODUCTS` has a row.
const STOCK: &[(&str, u32)] = &[
    ("TEA-01", 120),
    ("TEA-02", 35),
    ("COF-01", 8),
    ("MUG-01", 0),
    ("POT-01", 14),
];

#[derive(Serialize)]
struct StockLevel<'a> {
    sku: &'a str,
    in_stock: u32,
}

struct Inventory;

impl wasip2::exports::http::incoming_handler::Guest for Inventory {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Get) {
            return respond_error(out, 405, "method not allowed");
        }
        let (path, query) = path_and_query(&request);
        if path != "/inventory" {
            return respond_error(out, 404, "not found");
        }
        let Some(sku) = query_param(&query, "sku").filter(|sku| !sku.is_empty()) else {
            return respond_error(out, 400, "missing query parameter `sku`");
        };
        match STOCK.iter().find(|(known, _)| *known == sku) {
            Some(&(sku, in_stock)) => respond_json(out, 200, &StockLevel { sku, in_stock }),
            None => respond_error(out, 404, "unknown sku"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_product_has_a_stock_row() {
        for product in shop_model::PRODUCTS {
            assert!(
                super::STOCK.iter().any(|(sku, _)| *sku == product.sku),
                "{} has no stock row",
                product.sku
            );
        }
    }
}
