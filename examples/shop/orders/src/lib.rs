//! `orders`: returns a placed order.
//!
//! `GET /orders/<order id>` answers the order `checkout` stored in the `orders` key-value
//! bucket, or 404. The manifest grants this function `read` on the bucket and `checkout`
//! `write`: neither can do the other's part.

#![forbid(unsafe_code)]

use shop_model::http::{path_and_query, respond, respond_error};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

wasip2::http::proxy::export!(Orders);

struct Orders;

impl wasip2::exports::http::incoming_handler::Guest for Orders {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Get) {
            return respond_error(out, 405, "method not allowed");
        }
        let (path, _query) = path_and_query(&request);
        let Some(order_id) = path.strip_prefix("/orders/").filter(|id| valid_id(id)) else {
            return respond_error(out, 404, "not found");
        };
        match shop_model::platform::kv_get("orders", order_id) {
            // Stored by `checkout` as JSON; returned as stored.
            Ok(Some(order)) => respond(out, 200, &order),
            Ok(None) => respond_error(out, 404, "no such order"),
            Err(why) => respond_error(out, 503, &format!("orders unavailable: {why}")),
        }
    }
}

/// Order ids are `ord_` and 16 hex digits; anything else cannot name an order.
fn valid_id(id: &str) -> bool {
    id.strip_prefix("ord_")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_order_ids_are_looked_up() {
        assert!(super::valid_id("ord_0123456789abcdef"));
        for bad in [
            "",
            "ord_",
            "ord_0123",
            "../secrets",
            "ord_0123456789abcdeg",
            "x_0123456789abcdef",
        ] {
            assert!(!super::valid_id(bad), "{bad}");
        }
    }
}
