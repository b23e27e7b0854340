//! The rules of `zerofn lint`: what each finds, why it matters, how to fix it, and how much it
//! matters. Ids are stable: CI configurations and SARIF dashboards refer to them.

use zerofn_admission::{Level, Rule, Severity};

/// A lint rule and the severity of its findings.
#[derive(Debug, Clone, Copy)]
pub struct LintRule {
    pub rule: Rule,
    pub severity: Severity,
}

const fn rule(
    id: &'static str,
    level: Level,
    severity: Severity,
    rationale: &'static str,
    fix: &'static str,
) -> LintRule {
    LintRule {
        rule: Rule {
            id,
            level,
            rationale,
            fix,
        },
        severity,
    }
}

use Level::{Error, Warning};
use Severity::{Critical, High, Low, Medium};

/// Every rule `zerofn lint` applies.
pub const LINT_RULES: &[LintRule] = &[
    rule(
        "component-unreadable",
        Error,
        Critical,
        "A component that cannot be read or is not a valid WebAssembly component cannot be reviewed, and would not deploy.",
        "Build the function (`zerofn build`) so that `component` names a wasm32-wasip2 component.",
    ),
    rule(
        "import-unlinked",
        Error,
        Critical,
        "The platform does not link this interface (another platform's, or a version it does not implement), so the deploy fails to link the component.",
        "Build against the interfaces zerofn links (WASI 0.2, `wasi:config/store@0.2.0-rc.1`, `wasi:keyvalue@0.2.0-draft`); see docs/least-privilege.md.",
    ),
    rule(
        "import-without-grant",
        Warning,
        High,
        "The component imports a capability its grants do not give it: every call is refused at run time, so that code path can never work.",
        "Grant what the code needs (`egress` or `invoke` for outbound HTTP, `kv` for key-value with the access it uses, `secrets` or `config` for `wasi:config`), or remove the code that uses it.",
    ),
    rule(
        "import-refused",
        Warning,
        Low,
        "The platform links this interface so that ordinary components instantiate, but refuses every call through it (no network, no files, no listing of secrets).",
        "Nothing to grant: remove the code that uses it, or expect its calls to fail.",
    ),
    rule(
        "unused-egress-grant",
        Warning,
        Medium,
        "The component does not import `wasi:http/outgoing-handler`, so the destination is never reached by this code; the grant only widens what a replaced or compromised version could reach.",
        "Remove the `egress` entry.",
    ),
    rule(
        "unused-invoke-grant",
        Warning,
        Low,
        "The component does not import `wasi:http/outgoing-handler`, so it can never call another function; the grant is dead weight in the trust graph.",
        "Remove the `invoke` entry.",
    ),
    rule(
        "unused-kv-grant",
        Warning,
        Low,
        "The component cannot use the bucket with the access granted (it does not import `wasi:keyvalue`, or not the operations the access allows).",
        "Remove the `kv` entry, or grant the access the component uses.",
    ),
    rule(
        "unused-secret-grant",
        Warning,
        Medium,
        "The component does not import `wasi:config/store.get`, so it never reads the secret; a granted secret is one more place a leak could come from.",
        "Remove the name from `secrets`.",
    ),
    rule(
        "kv-access-broader-than-use",
        Warning,
        Medium,
        "The grant allows reads and writes, but the component's imports can only read (or only write) the bucket.",
        "Grant only the access the imports can use: `read` or `write`.",
    ),
    rule(
        "egress-wildcard-host",
        Warning,
        Medium,
        "`*.host` reaches every subdomain, present and future, including ones someone else may come to control.",
        "Name each host the function calls.",
    ),
    rule(
        "egress-plain-http",
        Warning,
        Medium,
        "Plain `http` is readable and changeable by anyone on the path, including any secret the function sends.",
        "Use `https`.",
    ),
    rule(
        "egress-allow-private",
        Warning,
        Medium,
        "`allow_private` lets the destination resolve to loopback, private or link-local addresses: the platform's own network, the usual target of request forgery.",
        "Remove `allow_private` unless the destination really is on a private network, and then name it exactly.",
    ),
    rule(
        "egress-any-method",
        Warning,
        Low,
        "A destination without `methods` may be sent any method, including ones that change or delete data there.",
        "Write the entry as `{ url = \"...\", methods = [\"GET\"] }` with the methods the function uses.",
    ),
    rule(
        "egress-any-path",
        Warning,
        Low,
        "A destination without a path reaches every path of the host.",
        "Add the path prefix the function calls: `https://api.example.com/v1/orders`.",
    ),
];

/// The rules as [`Rule`]s, for SARIF rule descriptors.
pub fn rules() -> Vec<Rule> {
    LINT_RULES.iter().map(|r| r.rule).collect()
}

/// The rule called `id`.
pub fn lint_rule(id: &str) -> Option<&'static LintRule> {
    LINT_RULES.iter().find(|r| r.rule.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_no_admission_rule_shares_one() {
        let mut ids: Vec<_> = LINT_RULES.iter().map(|r| r.rule.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), LINT_RULES.len());
        for id in ids {
            assert!(zerofn_admission::rule(id).is_none(), "{id}");
        }
    }
}
