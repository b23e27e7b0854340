//! The SARIF zerofn writes is valid SARIF 2.1.0: checked against the OASIS schema, for findings
//! with and without locations, fields, values and help, built-in and operator rules alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use zerofn_admission::{Finding, Level, Rule, Severity, render_text, sarif, sarif_with_rules};

const SCHEMA: &str = include_str!("schemas/sarif-schema-2.1.0.json");

fn findings() -> Vec<Finding> {
    vec![
        Finding::new(
            "wildcard-egress",
            Level::Warning,
            "function `checkout` may reach any subdomain through `https://*.example.com`",
        )
        .in_file("shop/zerofn.toml")
        .at(12, 3)
        .field("functions.checkout.grants.egress[1]")
        .value("\"https://*.example.com\"")
        .help("name each host the function calls"),
        Finding::new("egress-plain-http", Level::Error, "clear text to http://x")
            .in_file("shop/zerofn.toml")
            .field("functions.checkout.grants.egress[0]"),
        Finding::new("input-schema-missing", Level::Warning, "no schema")
            .in_file("shop/zerofn.toml")
            .at(5, 1),
        Finding::new("policy-error", Level::Error, "an operator policy failed").in_file(""),
        Finding::new("unused-grant", Level::Warning, "kv grant never usable")
            .in_file("shop/zerofn.toml")
            .at(9, 1)
            .severity(Severity::Medium),
        Finding::new("unused-grant", Level::Warning, "egress grant never usable")
            .in_file("shop/zerofn.toml")
            .at(10, 1)
            .severity(Severity::High),
    ]
}

const REVIEW_RULES: &[Rule] = &[Rule {
    id: "unused-grant",
    level: Level::Warning,
    rationale: "A grant the code cannot use is attack surface for the next version.",
    fix: "Remove the grant.",
}];

#[test]
fn findings_with_severities_rank_their_rule_and_stay_valid_sarif() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let log = sarif_with_rules(&findings(), REVIEW_RULES);
    assert!(validator.is_valid(&log), "{log:#}");
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let unused = rules.iter().find(|r| r["id"] == "unused-grant").unwrap();
    // The rule ranks as its worst finding; its descriptor comes from the catalogue given.
    assert_eq!(unused["properties"]["security-severity"], "7.5");
    assert_eq!(unused["help"]["text"], "Remove the grant.");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results[4]["properties"]["severity"], "medium");
    assert!(results[0].get("properties").is_none());
    assert!(render_text(&findings()).contains("warning[unused-grant] (high): egress grant"));
}

#[test]
fn severities_parse_in_order_and_refuse_unknown_names() {
    let parsed: Vec<Severity> = ["info", "LOW", "medium", "High", "critical"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] < w[1]));
    let error = "severe".parse::<Severity>().unwrap_err();
    assert!(
        error.contains("info, low, medium, high or critical"),
        "{error}"
    );
}

#[test]
fn sarif_output_is_valid_against_the_oasis_schema() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for findings in [findings(), Vec::new()] {
        let log = sarif(&findings);
        let errors: Vec<String> = validator
            .iter_errors(&log)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{log:#}");
    }
}

#[test]
fn the_schema_check_catches_invalid_sarif() {
    // So that the test above cannot pass by accident: a log with a wrong level is refused.
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut log = sarif(&findings());
    log["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&log));
}

#[test]
fn sarif_results_carry_rule_location_field_and_rule_metadata() {
    let log = sarif(&findings());
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    let first = &results[0];
    assert_eq!(first["ruleId"], "wildcard-egress");
    let index = first["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "wildcard-egress");
    assert_eq!(rules[index]["defaultConfiguration"]["level"], "warning");
    assert!(rules[index]["fullDescription"]["text"].as_str().is_some());
    let location = &first["locations"][0];
    assert_eq!(location["physicalLocation"]["region"]["startLine"], 12);
    assert_eq!(location["physicalLocation"]["region"]["startColumn"], 3);
    assert_eq!(
        location["logicalLocations"][0]["fullyQualifiedName"],
        "functions.checkout.grants.egress[1]"
    );
    // An operator's rule has no built-in metadata, but is still declared.
    assert!(rules.iter().any(|r| r["id"] == "egress-plain-http"));
}

#[test]
fn text_names_rule_position_field_value_and_fix() {
    let text = render_text(&findings());
    assert!(
        text.contains("warning[wildcard-egress]: function `checkout`"),
        "{text}"
    );
    assert!(text.contains("--> shop/zerofn.toml:12:3"), "{text}");
    assert!(
        text.contains("= field: functions.checkout.grants.egress[1] = \"https://*.example.com\""),
        "{text}"
    );
    assert!(text.contains("= help: name each host"), "{text}");
    assert!(text.ends_with("refused: 2 error(s)"), "{text}");
    assert_eq!(render_text(&[]), "admitted");
}
