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
    server.deploy(manifest, &COMPONENTS).await;
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
