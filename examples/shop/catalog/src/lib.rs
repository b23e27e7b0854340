//! `catalog`: the shop's product list.
//!
//! * `GET /catalog` lists every product;
//! * `GET /catalog/<sku>` returns one product, or 404.
//!
//! The manifest routes the prefix `/catalog/...` here, so this handler sees both forms.

#![forbid(unsafe_code)]

use shop_model::http::{path_and_query, respond_error, respond_json};
use shop_model::{PRODUCTS, product};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

wasip2::http::proxy::export!(Catalog);

struct Catalog;

impl wasip2::exports::http::incoming_handler::Guest for Catalog {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Get) {
            return respond_error(out, 405, "method not allowed");
        }
        let (path, _query) = path_and_query(&request);
        match path.as_str() {
            "/catalog" | "/catalog/" => respond_json(out, 200, &PRODUCTS),
            path => match path.strip_prefix("/catalog/").and_then(product) {
                Some(product) => respond_json(out, 200, product),
                None => respond_error(out, 404, "no such product"),
            },
        }
    }
}
