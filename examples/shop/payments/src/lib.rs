//! `payments`: a stand-in for an external payment provider, so that the shop runs offline.
//!
//! `POST /payments/charge` with `Authorization: Bearer <key>` and
//! `{"order_id": "ord_...", "amount_cents": 900}` answers 201 with a charge id. The key is the
//! secret `payments_key`, which this function (like `checkout`) reads through `wasi:config`
//! because the manifest grants it; a caller without it gets 401. `checkout` reaches this route
//! through an `egress` grant, exactly as it would reach a provider on the internet.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use shop_model::http::{BodyError, path_and_query, read_body, respond_error, respond_json};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

wasip2::http::proxy::export!(Payments);

const MAX_BODY_BYTES: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    order_id: String,
    amount_cents: u64,
}

#[derive(Serialize)]
struct Charge {
    charge_id: String,
    order_id: String,
    amount_cents: u64,
}

struct Payments;

impl wasip2::exports::http::incoming_handler::Guest for Payments {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Post) {
            return respond_error(out, 405, "method not allowed");
        }
        let (path, _query) = path_and_query(&request);
        if path != "/payments/charge" {
            return respond_error(out, 404, "not found");
        }
        let expected = match shop_model::platform::config("payments_key") {
            Ok(key) => key,
            Err(why) => return respond_error(out, 503, &format!("provider not configured: {why}")),
        };
        let presented = bearer(&request);
        if !presented.is_some_and(|key| same(key.as_bytes(), expected.as_bytes())) {
            return respond_error(out, 401, "missing or wrong API key");
        }
        let body = match read_body(&request, MAX_BODY_BYTES) {
            Ok(body) => body,
            Err(BodyError::TooLarge { limit }) => {
                return respond_error(out, 413, &format!("body longer than {limit} bytes"));
            }
            Err(BodyError::Io(_)) => return respond_error(out, 400, "cannot read body"),
        };
        let charge: ChargeRequest = match serde_json::from_slice(&body) {
            Ok(charge) => charge,
            Err(error) => return respond_error(out, 400, &format!("malformed charge: {error}")),
        };
        if charge.amount_cents == 0 {
            return respond_error(out, 400, "nothing to charge");
        }
        respond_json(
            out,
            201,
            &Charge {
                charge_id: format!("ch_{:016x}", wasip2::random::random::get_random_u64()),
                order_id: charge.order_id,
                amount_cents: charge.amount_cents,
            },
        );
    }
}

/// The token of `Authorization: Bearer <token>`, if the request has one.
fn bearer(request: &IncomingRequest) -> Option<String> {
    let values = request.headers().get("authorization");
    let value = String::from_utf8(values.first()?.clone()).ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

/// Compares without stopping at the first difference, so timing does not reveal the key.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_compare_whole() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"ab"));
    }
}
