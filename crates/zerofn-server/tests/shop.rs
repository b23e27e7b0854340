//! The bundled example app end to end: `checkout` asks `inventory` for stock through a granted
//! function-to-function call, and refuses what is not in stock; without the grant it cannot
//! check stock and sells nothing.

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
    assert_eq!(decisions.len(), 3);
    assert!(decisions.iter().all(|d| d.event["outcome"] == "success"));
}

#[tokio::test]
async fn without_the_grant_checkout_cannot_check_stock_and_sells_nothing() {
    let server = TestServer::start().await;
    let ungranted = manifest().replace("grants = { invoke = [\"inventory\"] }", "");
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
