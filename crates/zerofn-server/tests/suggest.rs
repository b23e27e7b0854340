//! `zerofn policy suggest` on a recorded audit stream: the shop runs with more grants than it
//! needs, and the suggestion from what it really did is exactly the shop's own grants, every
//! grant it did not use flagged. The stream is read as the CLI reads it, through the control
//! plane (`GET /v1/apps/<app>/usage`) and as exported JSON lines.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, request};
use zerofn_review::suggest::{Verdict, suggest};
use zerofn_review::usage::Usage;
use zerofn_server::control::{AppUsage, ControlClient};
use zerofn_test_artifacts::{
    SHOP_CATALOG, SHOP_CHECKOUT, SHOP_INVENTORY, SHOP_ORDERS, SHOP_PAYMENTS,
};

const COMPONENTS: [(&str, &str); 5] = [
    ("catalog", SHOP_CATALOG),
    ("checkout", SHOP_CHECKOUT),
    ("inventory", SHOP_INVENTORY),
    ("orders", SHOP_ORDERS),
    ("payments", SHOP_PAYMENTS),
];

fn shop_manifest() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/shop/zerofn.toml"
    ))
    .unwrap()
}

/// The shop with every function granted more than it uses: a second secret, a read-write
/// bucket, a call it never makes, any method to the provider, a destination it never reaches.
fn over_granted(shop: &str) -> String {
    let broad = shop
        .replace(
            "invoke = [\"inventory\"]\nsecrets = [\"payments_key\"]\nkv = { orders = \"write\" }",
            "invoke = [\"inventory\", \"catalog\"]\nsecrets = [\"payments_key\", \"spare_key\"]\nkv = { orders = \"read-write\" }",
        )
        .replace(
            "egress = [{ url = \"http://127.0.0.1:8080/payments/charge\", methods = [\"POST\"], allow_private = true }]",
            "egress = [{ url = \"http://127.0.0.1:8080/payments/charge\", allow_private = true }, \"https://api.example.com/v1\"]",
        )
        .replace(
            "grants = { kv = { orders = \"read\" } }",
            "grants = { kv = { orders = \"read-write\" } }",
        );
    assert_ne!(broad, shop);
    broad
}

#[tokio::test]
async fn suggest_on_the_recorded_shop_stream_proposes_exactly_the_grants_used() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let shop = shop_manifest().replace("127.0.0.1:8080", &addr);
    let deployed = over_granted(&shop_manifest()).replace("127.0.0.1:8080", &addr);
    for name in ["payments_key", "spare_key"] {
        server
            .server()
            .platform()
            .write_secret(
                "shop",
                name,
                zerofn_store::SecretWrite::Create,
                zeroize::Zeroizing::new(b"pk_test_4f9c2a7e1b".to_vec()),
            )
            .await
            .unwrap();
    }
    server
        .deploy_attaching(&deployed, &COMPONENTS, common::shop_files())
        .await;

    // The shop's traffic: an order placed (inventory called, the provider charged, the order
    // written), read back, and the catalog browsed.
    let placed = request(
        server.addr,
        "POST",
        "/checkout",
        &[("content-type", "application/json")],
        bytes::Bytes::from(r#"{"items":[{"sku":"TEA-01","qty":2}]}"#),
    )
    .await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    let order_id = placed.json()["order_id"].as_str().unwrap().to_string();
    let stored = server.get(&format!("/orders/{order_id}")).await;
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(server.get("/catalog").await.status, 200);

    // What the CLI reads: the usage and the deployed manifest, through the control plane.
    let client = ControlClient::new(server.server().control_socket());
    let answer: AppUsage = client.get("/v1/apps/shop/usage?since_ms=0").await.unwrap();
    assert_eq!(answer.manifest, deployed);
    let manifest =
        zerofn_manifest::parse(std::path::Path::new("zerofn.toml"), &answer.manifest).unwrap();
    let suggestion = suggest(&manifest, "zerofn.toml", &answer.usage).unwrap();

    // Applied, the suggestion is the shop's own grants, function by function.
    let suggested = zerofn_manifest::parse(
        std::path::Path::new("zerofn.toml"),
        &suggestion.suggested_manifest,
    )
    .unwrap();
    let expected = zerofn_manifest::parse(std::path::Path::new("zerofn.toml"), &shop).unwrap();
    for function in expected.functions() {
        let got = &suggested.function(&function.name).unwrap().grants;
        let mut want = function.grants.clone();
        // Paths are not recorded, so the path prefix stays as granted; `as_written` is the
        // narrowed spelling.
        for (got, want) in got.egress.iter().zip(want.egress.iter_mut()) {
            want.as_written.clone_from(&got.as_written);
        }
        assert_eq!(got, &want, "function {}", function.name);
    }

    // Every grant not used is flagged, each with its manifest line.
    let verdict = |field: &str| {
        suggestion
            .functions
            .iter()
            .flat_map(|f| &f.grants)
            .find(|g| g.field == field)
            .unwrap_or_else(|| panic!("no review of {field}"))
            .verdict
    };
    assert_eq!(
        verdict("functions.checkout.grants.invoke[0]"),
        Verdict::Keep
    );
    assert_eq!(
        verdict("functions.checkout.grants.invoke[1]"),
        Verdict::Drop
    );
    assert_eq!(
        verdict("functions.checkout.grants.secrets[1]"),
        Verdict::Drop
    );
    assert_eq!(
        verdict("functions.checkout.grants.egress[0]"),
        Verdict::Narrow
    );
    assert_eq!(
        verdict("functions.checkout.grants.egress[1]"),
        Verdict::Drop
    );
    assert_eq!(
        verdict("functions.checkout.grants.kv.orders"),
        Verdict::Narrow
    );
    assert_eq!(
        verdict("functions.orders.grants.kv.orders"),
        Verdict::Narrow
    );
    assert_eq!(
        verdict("functions.payments.grants.secrets[0]"),
        Verdict::Keep
    );
    let unused: Vec<_> = suggestion
        .findings
        .iter()
        .filter(|f| f.rule == "use-grant-unused")
        .map(|f| (f.field.clone().unwrap(), f.line.is_some(), f.help.is_some()))
        .collect();
    assert_eq!(
        unused,
        [
            (
                "functions.checkout.grants.egress[1]".to_string(),
                true,
                true
            ),
            (
                "functions.checkout.grants.secrets[1]".to_string(),
                true,
                true
            ),
            (
                "functions.checkout.grants.invoke[1]".to_string(),
                true,
                true
            ),
        ]
    );
    // The evidence: counts and last use.
    let kept = suggestion
        .functions
        .iter()
        .find(|f| f.function == "checkout")
        .unwrap();
    let call = kept
        .grants
        .iter()
        .find(|g| g.field.ends_with("invoke[0]"))
        .unwrap();
    assert_eq!(call.evidence.count, 1);
    assert!(call.evidence.last_event.is_some());
    // `inventory` ran, has no grants, and nothing is said about it; nobody called `catalog`'s
    // grants into question (it has none).
    assert!(!suggestion.diff.is_empty());

    // The same stream exported as `zerofn audit tail --json` prints it gives the same answer.
    let rows = server
        .audit(zerofn_store::AuditQuery {
            app: Some("shop".into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await;
    let lines: String = rows
        .iter()
        .map(|row| {
            let mut event = row.event.clone();
            event["id"] = row.id.into();
            format!("{event}\n")
        })
        .collect();
    let from_file = Usage::from_json_lines("shop", Some(0), &lines).unwrap();
    assert_eq!(from_file, answer.usage);

    // The diff, stable apart from the server's port.
    let diff = suggestion.diff.replace(&addr, "127.0.0.1:PORT");
    snapshot("suggest-shop.diff", &diff);
}

#[tokio::test]
async fn the_usage_route_refuses_an_unknown_app_and_a_bad_window() {
    let server = TestServer::start().await;
    let client = ControlClient::new(server.server().control_socket());
    let error = client
        .get::<AppUsage>("/v1/apps/nope/usage")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("Unknown app") && error.contains("`nope`"),
        "{error}"
    );
    server
        .deploy(
            common::HELLO_MANIFEST,
            &[("hello", zerofn_test_artifacts::HELLO)],
        )
        .await;
    for query in ["since_ms=yesterday", "since=1", "since_ms=1&since_ms=2"] {
        let error = client
            .get::<AppUsage>(&format!("/v1/apps/greet/usage?{query}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("since_ms"), "{query}: {error}");
    }
}

/// Compares `actual` with `tests/snapshots/<name>`; `ZEROFN_BLESS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("ZEROFN_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with ZEROFN_BLESS=1", path.display()));
    assert_eq!(
        actual, expected,
        "snapshot {name} (ZEROFN_BLESS=1 rewrites it)"
    );
}
