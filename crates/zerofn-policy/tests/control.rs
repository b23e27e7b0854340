//! The control plane's decision point: each role allowed exactly its actions, guardrails that
//! name control actions win over roles, unscoped guardrails stay with function actions.
#![allow(clippy::unwrap_used)]

use zerofn_policy::{CONTROL_ACTIONS, ControlPdp, ControlRequest, Guardrails, PolicyError, Role};

fn guardrails(text: &str) -> Result<Guardrails, PolicyError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.cedar"), text).unwrap();
    Guardrails::load(&[dir.path().to_path_buf()])
}

fn ask(pdp: &ControlPdp, operator: &str, role: Role, action: &str) -> zerofn_policy::Decision {
    pdp.decide(&ControlRequest {
        operator: operator.into(),
        role,
        action: action.into(),
        time: 1_700_000_000,
        method: "POST".into(),
        path: "/v1/x".into(),
    })
}

#[test]
fn each_role_is_allowed_exactly_its_actions() {
    let pdp = ControlPdp::build(&Guardrails::none()).unwrap();
    let expected = [
        (
            Role::Viewer,
            vec![
                "control.read",
                "control.audit.read",
                "control.incidents.read",
            ],
        ),
        (
            Role::Deployer,
            vec![
                "control.read",
                "control.audit.read",
                "control.incidents.read",
                "control.deploy",
                "control.rollback",
                "control.invoke",
                "control.queue.send",
            ],
        ),
        (
            Role::SecurityAdmin,
            vec![
                "control.read",
                "control.audit.read",
                "control.trust.reload",
                "control.api-key.manage",
                "control.ca.issue",
                "control.secrets.manage",
                "control.queue.send",
                "control.incidents.read",
                "control.incidents.manage",
                "control.release",
            ],
        ),
    ];
    for (role, allowed) in expected {
        for action in CONTROL_ACTIONS {
            let decision = ask(&pdp, "op", role, action);
            assert_eq!(
                decision.allowed,
                allowed.contains(&action),
                "{role} {action}: {decision:?}"
            );
            if decision.allowed {
                assert_eq!(decision.policies, [format!("role/{role}")]);
            } else {
                assert!(decision.policies.is_empty(), "default deny: {decision:?}");
            }
        }
    }
    let unknown = ask(&pdp, "op", Role::Deployer, "control.everything");
    assert!(!unknown.allowed);
    assert!(!unknown.errors.is_empty());
}

#[test]
fn a_guardrail_naming_a_control_action_beats_the_role() {
    let set = guardrails(
        r#"@id("bob-no-deploys")
forbid(principal == Operator::"bob", action in [Action::"control.deploy", Action::"control.rollback"], resource);
@id("risky")
forbid(principal, action, resource) when { principal.app == "legacy" || context.risk > 80 };
"#,
    )
    .unwrap();
    let pdp = ControlPdp::build(&set).unwrap();
    let bob = ask(&pdp, "bob", Role::Deployer, "control.deploy");
    assert!(!bob.allowed);
    assert_eq!(bob.policies, ["bob-no-deploys"]);
    assert!(ask(&pdp, "alice", Role::Deployer, "control.deploy").allowed);
    assert!(ask(&pdp, "bob", Role::Deployer, "control.read").allowed);
    // The unscoped guardrail reads function attributes: it stays with the functions' PDP,
    // which still builds with the control guardrail present.
    assert!(pdp.policy("risky").is_none());
    let functions = zerofn_policy::Pdp::build(&set, []).unwrap();
    assert!(functions.policy("risky").is_some());
    assert!(functions.policy("bob-no-deploys").is_none());
}

#[test]
fn a_control_guardrail_that_does_not_validate_is_refused() {
    let typo = guardrails(
        r#"forbid(principal, action == Action::"control.deploy", resource) when { context.tiem > 0 };"#,
    )
    .unwrap();
    assert!(matches!(
        ControlPdp::build(&typo),
        Err(PolicyError::Schema(_))
    ));
    let mixed = guardrails(
        r#"forbid(principal, action in [Action::"control.deploy", Action::"invoke"], resource);"#,
    )
    .unwrap();
    assert!(ControlPdp::build(&mixed).is_err());
}
