//! The bundled example app end to end: `checkout` asks `inventory` for stock through a granted
//! function-to-function call, and refuses what is not in stock; without the grant it cannot
//! check stock and sells nothing. Each order it places is written to its granted `orders`
//! key-value bucket.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, request};
use zerofn_test_artifacts::{SHOP_CATALOG, SHOP_CHECKOUT, SHOP_INVENTORY};

fn manifest() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/shop/zerofn.toml"
    ))
    .unwrap()
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

const COMPONENTS: [(&str, &str); 3] = [
    ("catalog", SHOP_CATALOG),
    ("checkout", SHOP_CHECKOUT),
    ("inventory", SHOP_INVENTORY),
];

#[tokio::test]
async fn checkout_checks_stock_with_inventory_through_its_grant() {
    let server = TestServer::start().await;
    server.deploy(&manifest(), &COMPONENTS).await;

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
async fn checkout_records_each_order_in_its_granted_bucket() {
    let server = TestServer::start().await;
    server.deploy(&manifest(), &COMPONENTS).await;
    for placed in 1..=2 {
        let order = checkout(&server, r#"{"items":[{"sku":"TEA-01","qty":1}]}"#).await;
        assert_eq!(order.status, 201, "{}", order.text());
        assert_eq!(
            order.json()["orders_placed"],
            placed,
            "counted across invocations"
        );
    }
    // The bucket holds both orders and the count, sealed; a refused sale records nothing.
    let refused = checkout(&server, r#"{"items":[{"sku":"COF-01","qty":9}]}"#).await;
    assert_eq!(refused.status, 409);
    let store = server.server().platform().store();
    let (keys, _) = store.kv_list_keys("shop", "orders", 0, 10).unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().filter(|k| k.starts_with("order/ord_")).count() == 2);
    let count = server
        .server()
        .platform()
        .vault()
        .with_keyring(|keyring| store.kv_get(keyring, "shop", "orders", "count"))
        .unwrap();
    assert_eq!(count.as_deref().map(|c| c.as_slice()), Some(&b"2"[..]));
    let opens: Vec<_> = server
        .events("authz.decision")
        .await
        .into_iter()
        .filter(|d| d.event["detail"]["action"] == "kv.open")
        .collect();
    assert_eq!(opens.len(), 2);
    assert!(
        opens
            .iter()
            .all(|d| d.outcome == "success" && d.event["detail"]["access"] == "write")
    );
}

#[tokio::test]
async fn without_the_grant_checkout_cannot_check_stock_and_sells_nothing() {
    let server = TestServer::start().await;
    let ungranted = manifest().replace("invoke = [\"inventory\"], ", "");
    assert_ne!(ungranted, manifest());
    server.deploy(&ungranted, &COMPONENTS).await;
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
async fn without_the_kv_grant_checkout_records_and_sells_nothing() {
    let server = TestServer::start().await;
    let ungranted = manifest().replace(", kv = { orders = \"write\" }", "");
    assert_ne!(ungranted, manifest());
    server.deploy(&ungranted, &COMPONENTS).await;
    let refused = checkout(&server, r#"{"items":[{"sku":"TEA-01","qty":2}]}"#).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("order not recorded"),
        "{}",
        refused.text()
    );
    let denied = server.events("kv.denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].event["reason"], "kv-not-granted");
}
