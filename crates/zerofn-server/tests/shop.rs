//! The bundled example app end to end: `checkout` asks `inventory` for stock through a granted
//! function-to-function call, charges the order at the payment provider through a granted
//! egress with a granted secret, and records it in its granted `orders` key-value bucket,
//! which `orders` reads back. Without each grant the step it allows fails and nothing is sold.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, request};
use zerofn_test_artifacts::{
    SHOP_CATALOG, SHOP_CHECKOUT, SHOP_INVENTORY, SHOP_ORDERS, SHOP_PAYMENTS,
};

/// The example's manifest, with the provider's address (where `zerofn up` serves) replaced by
/// the test server's.
fn manifest(server: &TestServer) -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/shop/zerofn.toml"
    ))
    .unwrap()
    .replace("127.0.0.1:8080", &server.addr.to_string())
}

const PAYMENTS_KEY: &str = "pk_test_4f9c2a7e1b";

/// Stores the provider's API key, then deploys `manifest`.
async fn deploy(server: &TestServer, manifest: &str) {
    server
        .server()
        .platform()
        .write_secret(
            "shop",
            "payments_key",
            zerofn_store::SecretWrite::Create,
            zeroize::Zeroizing::new(PAYMENTS_KEY.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    server
        .deploy_attaching(manifest, &COMPONENTS, common::shop_files())
        .await;
}

async fn checkout(server: &TestServer, order: &str) -> common::Reply {
    request(
        server.addr,
        "POST",
        "/checkout",
        &[("content-type", "application/json")],
        bytes::Bytes::from(order.to_string()),
    )
    .await
}

const COMPONENTS: [(&str, &str); 5] = [
    ("catalog", SHOP_CATALOG),
    ("checkout", SHOP_CHECKOUT),
    ("inventory", SHOP_INVENTORY),
    ("orders", SHOP_ORDERS),
    ("payments", SHOP_PAYMENTS),
];

#[tokio::test]
async fn checkout_checks_stock_with_inventory_through_its_grant() {
    let server = TestServer::start().await;
    deploy(&server, &manifest(&server)).await;

    let placed = checkout(&server, r#"{"items":[{"sku":"TEA-01","qty":2}]}"#).await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    assert_eq!(placed.json()["total_cents"], 900);

    let short = checkout(&server, r#"{"items":[{"sku":"COF-01","qty":9}]}"#).await;
    assert_eq!(short.status, 409, "{}", short.text());
    assert!(
        short.text().contains("only 8 of COF-01 in stock"),
        "{}",
        short.text()
    );
    let none = checkout(&server, r#"{"items":[{"sku":"MUG-01","qty":1}]}"#).await;
    assert_eq!(none.status, 409);

    let decisions = server.events("authz.decision").await;
    let calls: Vec<_> = decisions
        .iter()
        .filter(|d| d.event["detail"]["action"] == "invoke")
        .collect();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|d| d.event["outcome"] == "success"));
}

#[tokio::test]
async fn an_order_that_does_not_fit_its_schema_never_reaches_checkout() {
    let server = TestServer::start().await;
    deploy(&server, &manifest(&server)).await;
    for (order, why) in [
        (r#"{"items":[{"sku":"TEA-01","qty":0}]}"#, "qty below 1"),
        (
            r#"{"items":[{"sku":"TEA-01","qty":2,"price":1}]}"#,
            "unknown field",
        ),
        (r#"{"items":[]}"#, "no line"),
        (
            r#"{"items":[{"sku":"tea; drop","qty":1}]}"#,
            "malformed sku",
        ),
    ] {
        let refused = checkout(&server, order).await;
        assert_eq!(refused.status, 400, "{why}: {}", refused.text());
        assert!(
            refused.text().contains("input-schema-violation"),
            "{why}: {}",
            refused.text()
        );
    }
    // Refused before any sandbox: checkout never started, inventory was never asked.
    let starts = server.events("invocation.start").await;
    assert!(starts.is_empty(), "{starts:?}");
    let refusals = server.events("request.refused").await;
    assert_eq!(refusals.len(), 4);
    assert!(
        refusals
            .iter()
            .all(|r| r.event["reason"] == "input-schema-violation")
    );
}

#[tokio::test]
async fn an_order_is_charged_through_egress_with_a_secret_and_recorded_in_the_bucket() {
    let server = TestServer::start().await;
    deploy(&server, &manifest(&server)).await;
    let placed = checkout(&server, r#"{"items":[{"sku":"TEA-01","qty":2}]}"#).await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    let order = placed.json();
    assert!(
        order["charge_id"].as_str().unwrap().starts_with("ch_"),
        "{order}"
    );
    let order_id = order["order_id"].as_str().unwrap();

    // Written by checkout (write-only grant), read back by `orders` (read-only grant).
    let stored = server.get(&format!("/orders/{order_id}")).await;
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(stored.json(), order);
    assert_eq!(server.get("/orders/ord_0000000000000000").await.status, 404);

    // The egress went to the one granted destination, and was recorded.
    let exchanges = server.events("egress").await;
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(exchanges[0].event["function"], "checkout");
    assert_eq!(exchanges[0].event["detail"]["status"], 201);
    // What `policy suggest` needs to judge `allow_private`: the address connected to, and
    // every address decided (here the one literal).
    assert_eq!(exchanges[0].event["detail"]["range"], "loopback");
    assert_eq!(
        exchanges[0].event["detail"]["resolved_non_public"],
        serde_json::json!(["loopback"])
    );
    // Both functions read the key; no event or log line carries it.
    let reads = server.events("secret.read").await;
    let readers: std::collections::BTreeSet<_> = reads
        .iter()
        .filter(|e| e.event["outcome"] == "success")
        .map(|e| e.event["function"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        readers.into_iter().collect::<Vec<_>>(),
        ["checkout", "payments"]
    );
    let everything = server.audit(zerofn_store::AuditQuery::default()).await;
    assert!(
        everything
            .iter()
            .all(|e| !e.event.to_string().contains(PAYMENTS_KEY))
    );
}

#[tokio::test]
async fn without_the_grant_checkout_cannot_check_stock_and_sells_nothing() {
    let server = TestServer::start().await;
    let ungranted = manifest(&server).replace("invoke = [\"inventory\"]\n", "");
    assert_ne!(ungranted, manifest(&server));
    deploy(&server, &ungranted).await;
    let refused = checkout(&server, r#"{"items":[{"sku":"TEA-01","qty":2}]}"#).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("stock unavailable"),
        "{}",
        refused.text()
    );
    let decisions = server.events("authz.decision").await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].event["outcome"], "denied");
}

#[tokio::test]
async fn without_the_egress_grant_checkout_cannot_charge_and_records_nothing() {
    let server = TestServer::start().await;
    let manifest = manifest(&server);
    let egress_line = manifest
        .lines()
        .find(|line| line.starts_with("egress = "))
        .unwrap()
        .to_string();
    let ungranted = manifest.replace(&format!("{egress_line}\n"), "");
    deploy(&server, &ungranted).await;
    let refused = checkout(&server, r#"{"items":[{"sku":"TEA-01","qty":1}]}"#).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert!(
        refused.text().contains("HttpRequestDenied"),
        "{}",
        refused.text()
    );
    let denied = server.events("egress.denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].event["reason"], "egress-not-granted");
    let store = server.server().platform().store();
    let (keys, _) = store.kv_list_keys("shop", "orders", 0, 10).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn one_checkout_is_one_trace_from_the_request_to_the_key_value_write() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let server = TestServer::start().await;
    deploy(&server, &manifest(&server)).await;
    let placed = request(
        server.addr,
        "POST",
        "/checkout",
        &[
            ("content-type", "application/json"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
        bytes::Bytes::from(r#"{"items":[{"sku":"TEA-01","qty":2}]}"#),
    )
    .await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    let order_id = placed.json()["order_id"].as_str().unwrap().to_string();
    let answered = placed.headers["traceparent"].to_str().unwrap().to_string();
    assert!(answered.starts_with(&format!("00-{TRACE}-")), "{answered}");

    // checkout, inventory (called) and payments (reached by egress, continuing its span).
    let mut events = Vec::new();
    for _ in 0..200 {
        events = server
            .audit(zerofn_store::AuditQuery {
                trace_id: Some(TRACE.into()),
                limit: Some(10_000),
                ..Default::default()
            })
            .await;
        if events.iter().filter(|e| e.kind == "invocation.end").count() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for event in &events {
        for field in [
            "trace_id",
            "span_id",
            "parent_span_id",
            "identity",
            "caller",
            "version_id",
        ] {
            assert!(
                event.event.get(field).is_some(),
                "{field} missing: {}",
                event.event
            );
        }
    }
    // Key names and values are the guest's data: neither is recorded.
    assert!(
        events
            .iter()
            .all(|e| !e.event.to_string().contains(&order_id))
    );

    let tree = zerofn_server::traces::build(TRACE, &events).unwrap();
    assert_eq!(
        tree.invocations,
        3,
        "{}",
        zerofn_server::traces::render(&tree)
    );
    assert_eq!(
        tree.roots.len(),
        1,
        "{}",
        zerofn_server::traces::render(&tree)
    );
    let root = &tree.roots[0];
    assert_eq!(root.kind, "invocation");
    assert_eq!(root.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(answered.split('-').nth(2), Some(root.span_id.as_str()));
    assert!(
        root.summary
            .starts_with("POST /checkout  shop/checkout  201"),
        "{}",
        root.summary
    );

    let child = |kind: &str| {
        root.children
            .iter()
            .find(|n| n.kind == kind)
            .unwrap_or_else(|| {
                panic!(
                    "no {kind} under checkout: {}",
                    zerofn_server::traces::render(&tree)
                )
            })
    };
    // The callee's invocation is a child of the caller's call span.
    let call = child("invoke");
    assert_eq!(call.summary, "invoke shop/inventory  allowed");
    assert_eq!(call.children.len(), 1);
    assert_eq!(
        call.children[0].parent_span_id.as_deref(),
        Some(call.span_id.as_str())
    );
    assert!(
        call.children[0]
            .summary
            .starts_with("GET /inventory  shop/inventory  200")
    );
    assert_eq!(
        call.children[0].events[0]["caller"],
        "spiffe://zerofn.local/app/shop/fn/checkout"
    );
    assert_eq!(
        child("secret.read").summary,
        "secret.read payments_key  allowed"
    );
    // The destination is a function of this node: it continued the egress span.
    let egress = child("egress");
    assert!(
        egress.summary.starts_with("egress POST http://127.0.0.1:"),
        "{}",
        egress.summary
    );
    assert!(egress.summary.ends_with("  201"), "{}", egress.summary);
    assert_eq!(egress.children.len(), 1);
    assert!(
        egress.children[0]
            .summary
            .starts_with("POST /payments/charge  shop/payments  201")
    );
    assert!(
        egress.children[0]
            .children
            .iter()
            .any(|n| n.summary == "secret.read payments_key  allowed")
    );
    // The last write, in the same tree.
    assert_eq!(child("kv.write").summary, "kv.write orders set  1 key");
    assert_eq!(child("kv.write").events[0]["detail"]["keys"], 1);

    let text = zerofn_server::traces::render(&tree);
    assert!(
        text.starts_with(&format!("trace {TRACE}  (3 invocations, ")),
        "{text}"
    );
}
