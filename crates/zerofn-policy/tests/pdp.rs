//! The PDP with real Cedar over grants compiled from real manifests: what a grant allows,
//! everything it does not, guardrails that win over grants, and policies that fail closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use zerofn_policy::{
    AccessRequest, Capability, Destination, FunctionRef, Guardrails, Pdp, PolicyError,
    RequestContext,
};

const MANIFEST: &str = r#"
[app]
name = "shop"
version = "1.0.0"

[functions.checkout]
component = "c.wasm"
trigger = { http = { route = "/checkout", methods = ["POST"] } }
auth = { public = true }

[functions.checkout.grants]
invoke = ["inventory"]
secrets = ["stripe_key"]
kv = { carts = "read-write", prices = "read" }
egress = ["https://api.stripe.com/v1", "http://ledger.internal.example:8080"]

[functions.inventory]
component = "i.wasm"
trigger = { http = { route = "/inventory" } }
auth = { public = true }

[functions.payments]
component = "p.wasm"
trigger = { http = { route = "/payments" } }
auth = { public = true }
"#;

fn pdp(guardrails: &Guardrails) -> Result<Pdp, PolicyError> {
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), MANIFEST).unwrap();
    Pdp::build(
        guardrails,
        manifest
            .functions()
            .map(|f| (FunctionRef::new("shop", &f.name), &f.grants))
            .collect::<Vec<_>>(),
    )
}

fn ask(pdp: &Pdp, function: &str, capability: Capability) -> zerofn_policy::Decision {
    ask_with(pdp, function, capability, 0)
}

fn ask_with(
    pdp: &Pdp,
    function: &str,
    capability: Capability,
    risk: i64,
) -> zerofn_policy::Decision {
    pdp.decide(&AccessRequest {
        principal: FunctionRef::new("shop", function),
        capability,
        context: RequestContext {
            invocation_id: "inv-1".into(),
            caller_chain: vec![],
            time: 1_800_000_000,
            risk,
        },
    })
}

fn egress(scheme: &str, host: &str, port: u16, path: &str) -> Capability {
    Capability::Egress(Destination::new(scheme, host, port, path, "GET"))
}

fn guardrails(text: &str) -> Result<Guardrails, PolicyError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.cedar"), text).unwrap();
    Guardrails::load(&[dir.path().to_path_buf()])
}

#[test]
fn a_grant_allows_exactly_what_it_names_and_says_so() {
    let pdp = pdp(&Guardrails::none()).unwrap();
    let invoke = ask(
        &pdp,
        "checkout",
        Capability::Invoke {
            callee: "inventory".into(),
        },
    );
    assert!(invoke.allowed, "{invoke:?}");
    assert_eq!(invoke.policies, ["grant/shop/checkout/invoke/inventory"]);
    assert!(
        invoke
            .explanation()
            .contains("grant/shop/checkout/invoke/inventory")
    );

    let secret = ask(
        &pdp,
        "checkout",
        Capability::SecretRead {
            name: "stripe_key".into(),
        },
    );
    assert!(secret.allowed);
    let read = ask(
        &pdp,
        "checkout",
        Capability::KvRead {
            bucket: "prices".into(),
        },
    );
    assert!(read.allowed);
    let write = ask(
        &pdp,
        "checkout",
        Capability::KvWrite {
            bucket: "carts".into(),
        },
    );
    assert!(write.allowed);
}

#[test]
fn everything_not_granted_is_denied_by_default() {
    let pdp = pdp(&Guardrails::none()).unwrap();
    for (function, capability) in [
        (
            "checkout",
            Capability::Invoke {
                callee: "payments".into(),
            },
        ),
        (
            "checkout",
            Capability::Invoke {
                callee: "checkout".into(),
            },
        ),
        (
            "inventory",
            Capability::Invoke {
                callee: "checkout".into(),
            },
        ),
        (
            "inventory",
            Capability::SecretRead {
                name: "stripe_key".into(),
            },
        ),
        (
            "checkout",
            Capability::SecretRead {
                name: "other".into(),
            },
        ),
        (
            "checkout",
            Capability::KvWrite {
                bucket: "prices".into(),
            },
        ),
        (
            "checkout",
            Capability::KvRead {
                bucket: "sessions".into(),
            },
        ),
        (
            "ghost",
            Capability::Invoke {
                callee: "inventory".into(),
            },
        ),
    ] {
        let decision = ask(&pdp, function, capability.clone());
        assert!(!decision.allowed, "{function} {capability:?}: {decision:?}");
        assert!(decision.policies.is_empty(), "{decision:?}");
        assert!(
            decision.explanation().contains("default deny"),
            "{decision:?}"
        );
    }
}

#[test]
fn egress_matches_scheme_host_port_and_path_prefix() {
    let pdp = pdp(&Guardrails::none()).unwrap();
    let allowed = [
        egress("https", "api.stripe.com", 443, "/v1"),
        egress("https", "api.stripe.com", 443, "/v1/charges"),
        egress("http", "ledger.internal.example", 8080, "/anything"),
    ];
    for capability in allowed {
        let decision = ask(&pdp, "checkout", capability.clone());
        assert!(decision.allowed, "{capability:?}: {decision:?}");
    }
    let denied = [
        egress("https", "api.stripe.com", 443, "/v10"),
        egress("https", "api.stripe.com", 443, "/"),
        egress("http", "api.stripe.com", 443, "/v1"),
        egress("https", "api.stripe.com", 8443, "/v1"),
        egress("https", "evil.api.stripe.com", 443, "/v1"),
        egress("http", "ledger.internal.example", 80, "/"),
    ];
    for capability in denied {
        let decision = ask(&pdp, "checkout", capability.clone());
        assert!(!decision.allowed, "{capability:?}: {decision:?}");
    }
    assert!(
        !ask(
            &pdp,
            "inventory",
            egress("https", "api.stripe.com", 443, "/v1")
        )
        .allowed
    );
}

#[test]
fn a_guardrail_forbid_beats_a_manifest_grant_and_names_itself() {
    let rails = guardrails(
        r#"
@id("no-ledger-over-http")
forbid(principal, action == Action::"egress", resource)
when { context.destination.scheme == "http" };

forbid(principal in App::"shop", action == Action::"invoke", resource == Function::"shop/inventory")
when { context.risk > 50 };
"#,
    )
    .unwrap();
    assert_eq!(rails.len(), 2);
    let pdp = pdp(&rails).unwrap();
    let ledger = ask(
        &pdp,
        "checkout",
        egress("http", "ledger.internal.example", 8080, "/"),
    );
    assert!(!ledger.allowed);
    assert_eq!(ledger.policies, ["no-ledger-over-http"]);
    assert!(
        ledger
            .explanation()
            .contains("denied by no-ledger-over-http")
    );
    let (text, file) = pdp.policy("no-ledger-over-http").unwrap();
    assert!(text.contains("forbid"));
    assert!(file.unwrap().ends_with("org.cedar"));

    let calm = ask_with(
        &pdp,
        "checkout",
        Capability::Invoke {
            callee: "inventory".into(),
        },
        10,
    );
    assert!(calm.allowed, "{calm:?}");
    let risky = ask_with(
        &pdp,
        "checkout",
        Capability::Invoke {
            callee: "inventory".into(),
        },
        90,
    );
    assert!(!risky.allowed);
    assert_eq!(risky.policies, ["guardrail/org.cedar/1"]);
}

#[test]
fn guardrails_may_not_permit() {
    let error =
        guardrails("permit(principal, action == Action::\"invoke\", resource);").unwrap_err();
    assert!(
        matches!(error, PolicyError::PermitInGuardrails { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("only `forbid`"), "{error}");
}

#[test]
fn a_guardrail_with_a_typo_is_refused_instead_of_failing_open() {
    // `context.destination.hots` does not exist: unchecked, this forbid would error at every
    // decision and be skipped, which is failing open.
    let rails = guardrails(
        "forbid(principal, action == Action::\"egress\", resource) when { context.destination.hots == \"x\" };",
    )
    .unwrap();
    let error = pdp(&rails).unwrap_err();
    assert!(matches!(error, PolicyError::Schema(_)), "{error}");
    assert!(error.to_string().contains("hots"), "{error}");

    let syntax = guardrails("forbid(principal, action, resource) when {").unwrap_err();
    assert!(matches!(syntax, PolicyError::Invalid { .. }), "{syntax}");
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Guardrails::load(&[empty.path().to_path_buf()]),
        Err(PolicyError::Empty(_))
    ));
}

#[test]
fn manifest_text_cannot_change_a_policy() {
    assert_eq!(
        zerofn_policy::grants::literal("a\"); permit(principal,action,resource);//"),
        "\"a\\\"); permit(principal,action,resource);//\""
    );
    assert_eq!(zerofn_policy::grants::literal("x\\y\n"), "\"x\\\\y\\u{a}\"");
}

#[test]
fn guardrail_ids_may_not_pose_as_grants_and_same_named_files_do_not_clash() {
    let error = guardrails(
        "@id(\"grant/shop/checkout/invoke/payments\")\nforbid(principal, action, resource);",
    )
    .unwrap_err();
    assert!(error.to_string().contains("`grant/`"), "{error}");

    let root = tempfile::tempdir().unwrap();
    for team in ["payments", "search"] {
        std::fs::create_dir_all(root.path().join(team)).unwrap();
        std::fs::write(
            root.path().join(team).join("rules.cedar"),
            "forbid(principal, action == Action::\"egress\", resource) when { context.risk > 90 };",
        )
        .unwrap();
    }
    let rails = Guardrails::load(&[root.path().to_path_buf()]).unwrap();
    assert_eq!(rails.len(), 2);
    let pdp = pdp(&rails).unwrap();
    let ids: Vec<&str> = pdp
        .policy_ids()
        .filter(|id| id.starts_with("guardrail/"))
        .collect();
    assert_eq!(
        ids,
        [
            "guardrail/payments/rules.cedar/0",
            "guardrail/search/rules.cedar/0"
        ]
    );
}

#[test]
#[cfg(unix)]
fn a_linked_directory_among_guardrails_is_refused_not_followed_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("org.cedar"),
        "forbid(principal, action, resource) when { context.risk > 90 };",
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let error = Guardrails::load(&[dir.path().to_path_buf()]).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
}

const EGRESS_MANIFEST: &str = r#"
[app]
name = "net"
version = "1.0.0"

[functions.caller]
component = "c.wasm"
trigger = { http = { route = "/c" } }
auth = { public = true }

[functions.caller.grants]
egress = [
  { url = "https://api.example.com/api", methods = ["POST", "PUT"] },
  "https://*.cdn.example.com",
  { url = "http://127.0.0.1:8080", allow_private = true },
  { url = "http://internal.example.com/", methods = ["GET"], allow_private = true },
]
"#;

fn resolved(mut capability: Capability, address: &str, private: bool) -> Capability {
    if let Capability::Egress(destination) = &mut capability {
        destination.address = Some(address.parse().unwrap());
        destination.private = private;
    }
    capability
}

fn with_method(mut capability: Capability, method: &str) -> Capability {
    if let Capability::Egress(destination) = &mut capability {
        destination.method = method.into();
    }
    capability
}

#[test]
fn egress_grants_limit_methods_path_segments_subdomains_and_private_addresses() {
    use zerofn_policy::grants::{EgressMiss, egress_miss};
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), EGRESS_MANIFEST).unwrap();
    let grants = &manifest.function("caller").unwrap().grants;
    let pdp = Pdp::build(
        &Guardrails::none(),
        [(FunctionRef::new("net", "caller"), grants)],
    )
    .unwrap();
    let api = |path: &str, method: &str| {
        with_method(egress("https", "api.example.com", 443, path), method)
    };
    let cases = [
        (api("/api", "POST"), None),
        (api("/api/orders", "PUT"), None),
        (api("/api/orders", "GET"), Some(EgressMiss::Method)),
        (api("/apix", "POST"), Some(EgressMiss::Path)),
        (api("/", "POST"), Some(EgressMiss::Path)),
        (
            egress("http", "api.example.com", 443, "/api"),
            Some(EgressMiss::SchemeOrPort),
        ),
        (
            egress("https", "api.example.com", 8443, "/api"),
            Some(EgressMiss::SchemeOrPort),
        ),
        (
            resolved(api("/api", "POST"), "10.0.0.1", true),
            Some(EgressMiss::Private),
        ),
        (resolved(api("/api", "POST"), "93.184.216.34", false), None),
        (egress("https", "a.cdn.example.com", 443, "/x"), None),
        (egress("https", "a.b.cdn.example.com", 443, "/"), None),
        (
            egress("https", "cdn.example.com", 443, "/"),
            Some(EgressMiss::Host),
        ),
        (
            egress("https", "evilcdn.example.com", 443, "/"),
            Some(EgressMiss::Host),
        ),
        (
            resolved(egress("http", "127.0.0.1", 8080, "/"), "127.0.0.1", true),
            None,
        ),
        (
            resolved(
                egress("http", "internal.example.com", 80, "/"),
                "10.1.2.3",
                true,
            ),
            None,
        ),
        (
            with_method(
                resolved(
                    egress("http", "internal.example.com", 80, "/"),
                    "10.1.2.3",
                    true,
                ),
                "POST",
            ),
            Some(EgressMiss::Method),
        ),
        (
            egress("https", "example.org", 443, "/"),
            Some(EgressMiss::Host),
        ),
    ];
    for (capability, miss) in cases {
        let Capability::Egress(destination) = &capability else {
            unreachable!()
        };
        assert_eq!(egress_miss(grants, destination), miss, "{destination:?}");
        let decision = ask_in(&pdp, "net", "caller", capability.clone());
        assert_eq!(
            decision.allowed,
            miss.is_none(),
            "the PDP and the explanation disagree on {destination:?}: {decision:?}"
        );
    }
}

#[test]
fn a_guardrail_sees_the_resolved_address() {
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), EGRESS_MANIFEST).unwrap();
    let grants = &manifest.function("caller").unwrap().grants;
    let rails = guardrails(
        r#"
@id("no-loopback-targets")
forbid(principal, action == Action::"egress", resource)
when { context.destination.address like "127.*" };
"#,
    )
    .unwrap();
    let pdp = Pdp::build(&rails, [(FunctionRef::new("net", "caller"), grants)]).unwrap();
    let before = ask_in(
        &pdp,
        "net",
        "caller",
        egress("http", "internal.example.com", 80, "/"),
    );
    assert!(before.allowed, "{before:?}");
    let after = ask_in(
        &pdp,
        "net",
        "caller",
        resolved(
            egress("http", "internal.example.com", 80, "/"),
            "127.0.0.1",
            true,
        ),
    );
    assert!(!after.allowed);
    assert_eq!(after.policies, ["no-loopback-targets"]);
}

fn ask_in(pdp: &Pdp, app: &str, function: &str, capability: Capability) -> zerofn_policy::Decision {
    pdp.decide(&AccessRequest {
        principal: FunctionRef::new(app, function),
        capability,
        context: RequestContext::default(),
    })
}
