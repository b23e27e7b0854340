//! `checkout`: validates a basket, prices it and places the order.
//!
//! `POST /checkout` with `{"items": [{"sku": "TEA-01", "qty": 2}]}` answers 201 with the
//! order: an id, the total and one priced line per item. Anything else (malformed JSON,
//! unknown fields or SKUs, a quantity outside 1..=100, too many lines) is a 400 that says
//! what was wrong.
//!
//! Prices come from the shared product list. Stock comes from the `inventory` function,
//! called through the platform (`http://inventory.shop.fn.internal/...`), which the manifest
//! allows with `grants = { invoke = ["inventory"] }`: a line asking for more than is in
//! stock is a 409. Without the grant the platform refuses the call (403), and so does this
//! function (503): it never sells what it could not check.
//!
//! Then it charges the total at the payment provider: `POST` to the config value
//! `payments_url`, reached through an `egress` grant naming exactly that URL, with the secret
//! `payments_key` (read through `wasi:config`, granted to this function, never in its
//! environment) as a bearer token. A refused or failed charge is a 502 and nothing is stored.
//! Last, the order with its charge id is written to the `orders` key-value bucket, which the
//! manifest grants this function `write` on (and the `orders` function `read`).

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use shop_model::http::{BodyError, get, path_and_query, read_body, respond_error, respond_json};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

wasip2::http::proxy::export!(Checkout);

/// A basket is a few lines of JSON; anything longer is refused unread.
const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_LINES: usize = 20;
const MAX_QTY: u32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRequest {
    items: Vec<LineRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRequest {
    sku: String,
    qty: u32,
}

#[derive(Serialize)]
struct Order {
    order_id: String,
    charge_id: String,
    total_cents: u64,
    items: Vec<OrderLine>,
}

#[derive(Serialize)]
struct ChargeRequest<'a> {
    order_id: &'a str,
    amount_cents: u64,
}

#[derive(Deserialize)]
struct Charge {
    charge_id: String,
}

#[derive(Serialize)]
struct OrderLine {
    sku: &'static str,
    name: &'static str,
    qty: u32,
    unit_price_cents: u64,
    line_total_cents: u64,
}

struct Checkout;

impl wasip2::exports::http::incoming_handler::Guest for Checkout {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Post) {
            return respond_error(out, 405, "method not allowed");
        }
        let (path, _query) = path_and_query(&request);
        if path != "/checkout" {
            return respond_error(out, 404, "not found");
        }
        let body = match read_body(&request, MAX_BODY_BYTES) {
            Ok(body) => body,
            Err(BodyError::TooLarge { limit }) => {
                return respond_error(out, 413, &format!("body longer than {limit} bytes"));
            }
            Err(BodyError::Io(_)) => return respond_error(out, 400, "cannot read body"),
        };
        let order_request: OrderRequest = match serde_json::from_slice(&body) {
            Ok(order_request) => order_request,
            Err(error) => return respond_error(out, 400, &format!("malformed order: {error}")),
        };
        if let Err((status, message)) = check_stock(&order_request) {
            return respond_error(out, status, &message);
        }
        let (items, total_cents) = match price(&order_request) {
            Ok(priced) => priced,
            Err(message) => return respond_error(out, 400, &message),
        };
        let order_id = new_order_id();
        let charge_id = match charge(&order_id, total_cents) {
            Ok(charge_id) => charge_id,
            Err((status, message)) => return respond_error(out, status, &message),
        };
        let order = Order {
            order_id,
            charge_id,
            total_cents,
            items,
        };
        let stored = serde_json::to_vec(&order)
            .map_err(|e| e.to_string())
            .and_then(|json| shop_model::platform::kv_set("orders", &order.order_id, &json));
        match stored {
            Ok(()) => respond_json(out, 201, &order),
            Err(why) => respond_error(
                out,
                500,
                &format!("charged ({}) but not recorded: {why}", order.charge_id),
            ),
        }
    }
}

/// The priced lines and the total, or why the basket is not acceptable.
fn price(order_request: &OrderRequest) -> Result<(Vec<OrderLine>, u64), String> {
    if order_request.items.is_empty() {
        return Err("an order needs at least one item".to_owned());
    }
    if order_request.items.len() > MAX_LINES {
        return Err(format!("an order has at most {MAX_LINES} lines"));
    }
    let mut lines = Vec::with_capacity(order_request.items.len());
    let mut total_cents: u64 = 0;
    for line in &order_request.items {
        let Some(product) = shop_model::product(&line.sku) else {
            return Err(format!("unknown sku {:?}", line.sku));
        };
        if !(1..=MAX_QTY).contains(&line.qty) {
            return Err(format!(
                "qty for {} must be between 1 and {MAX_QTY}",
                product.sku
            ));
        }
        // Bounded by MAX_LINES * MAX_QTY * the largest price, far below u64::MAX;
        // checked anyway so a future price list cannot make it wrap.
        let line_total_cents = product
            .price_cents
            .checked_mul(u64::from(line.qty))
            .ok_or("order total too large")?;
        total_cents = total_cents
            .checked_add(line_total_cents)
            .ok_or("order total too large")?;
        lines.push(OrderLine {
            sku: product.sku,
            name: product.name,
            qty: line.qty,
            unit_price_cents: product.price_cents,
            line_total_cents,
        });
    }
    Ok((lines, total_cents))
}

#[derive(Deserialize)]
struct StockLevel {
    in_stock: u32,
}

/// Asks `inventory` whether every line is in stock: 409 with what is missing, or 503 when
/// stock cannot be known.
fn check_stock(order_request: &OrderRequest) -> Result<(), (u16, String)> {
    for line in order_request.items.iter().take(MAX_LINES) {
        let Some(product) = shop_model::product(&line.sku) else {
            // Unknown SKUs are refused by pricing, with their own message.
            continue;
        };
        let path = format!("/inventory?sku={}", product.sku);
        let unavailable = |why: String| (503, format!("stock unavailable: {why}"));
        let (status, body) = get("inventory.shop.fn.internal", &path, 4096).map_err(unavailable)?;
        if status != 200 {
            return Err(unavailable(format!("inventory answered {status}")));
        }
        let level: StockLevel = serde_json::from_slice(&body)
            .map_err(|error| unavailable(format!("unreadable answer: {error}")))?;
        if line.qty > level.in_stock {
            return Err((
                409,
                format!(
                    "only {} of {} in stock, {} asked",
                    level.in_stock, product.sku, line.qty
                ),
            ));
        }
    }
    Ok(())
}

/// Charges `total_cents` for the order at the payment provider; its charge id, or the
/// status and message to answer with.
fn charge(order_id: &str, total_cents: u64) -> Result<String, (u16, String)> {
    let unavailable = |why: String| (503, format!("payments unavailable: {why}"));
    let url = shop_model::platform::config("payments_url").map_err(unavailable)?;
    let key = shop_model::platform::config("payments_key").map_err(unavailable)?;
    let body = serde_json::to_vec(&ChargeRequest {
        order_id,
        amount_cents: total_cents,
    })
    .map_err(|e| unavailable(e.to_string()))?;
    let authorization = format!("Bearer {key}");
    let (status, answer) = shop_model::http::post_json(
        &url,
        &[("authorization", authorization.as_str())],
        &body,
        4096,
    )
    .map_err(|why| (502, format!("payment failed: {why}")))?;
    if status != 201 {
        return Err((
            502,
            format!("payment refused: the provider answered {status}"),
        ));
    }
    let charge: Charge = serde_json::from_slice(&answer)
        .map_err(|e| (502, format!("unreadable payment answer: {e}")))?;
    Ok(charge.charge_id)
}

/// A new, unguessable order id from the host's cryptographically secure random source.
fn new_order_id() -> String {
    format!("ord_{:016x}", wasip2::random::random::get_random_u64())
}

#[cfg(test)]
mod tests {
    use super::{OrderRequest, price};

    fn priced(json: &str) -> Result<u64, String> {
        let order_request: OrderRequest =
            serde_json::from_str(json).map_err(|error| error.to_string())?;
        price(&order_request).map(|(_, total_cents)| total_cents)
    }

    #[test]
    fn baskets_are_priced_or_refused() {
        assert_eq!(priced(r#"{"items":[{"sku":"TEA-01","qty":2}]}"#), Ok(900));
        assert_eq!(
            priced(r#"{"items":[{"sku":"TEA-01","qty":1},{"sku":"MUG-01","qty":1}]}"#),
            Ok(2250)
        );
        for refused in [
            r#"{"items":[]}"#,
            r#"{"items":[{"sku":"NOPE","qty":1}]}"#,
            r#"{"items":[{"sku":"TEA-01","qty":0}]}"#,
            r#"{"items":[{"sku":"TEA-01","qty":101}]}"#,
            r#"{"items":[{"sku":"TEA-01","qty":-1}]}"#,
            r#"{"items":[{"sku":"TEA-01","qty":1,"price_cents":1}]}"#,
            r#"{"items":"#,
        ] {
            assert!(priced(refused).is_err(), "{refused} was accepted");
        }
    }
}
