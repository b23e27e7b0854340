//! The built-in rules: what each protects against and how to satisfy it. Rule ids are stable;
//! they appear in refusals, in the audit stream, in SARIF and in the refusal counters.

use crate::Level;
use serde::Serialize;

/// A built-in admission rule: what it protects against and how to satisfy it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub rationale: &'static str,
    pub fix: &'static str,
}

/// The built-in rules that admission applies beyond the manifest's syntax.
pub const RULES: &[Rule] = &[
    Rule {
        id: "manifest-invalid",
        level: Level::Error,
        rationale: "A manifest that does not parse grants nothing and is not guessed at.",
        fix: "Fix each diagnostic where it points (`zerofn admit APP_DIR` lists them all).",
    },
    Rule {
        id: "input-schema-invalid",
        level: Level::Error,
        rationale: "A schema that does not compile as JSON Schema 2020-12 checks nothing; guessing what it meant would let hostile input through.",
        fix: "Fix the schema (`$schema`, if written, must be https://json-schema.org/draft/2020-12/schema; formats must be known ones), then sign again.",
    },
    Rule {
        id: "input-schema-external-ref",
        level: Level::Error,
        rationale: "A schema that fetches parts of itself at run time is only as trustworthy as the network and the files it reaches, none of which were signed.",
        fix: "Inline the referenced schema under `$defs` and refer to it as `#/$defs/...`.",
    },
    Rule {
        id: "input-body-above-limit",
        level: Level::Error,
        rationale: "Two body caps that disagree would silently enforce the smaller one.",
        fix: "Lower `input.max_body_bytes`, or raise `limits.max_request_body_bytes` with it.",
    },
    Rule {
        id: "unknown-invoke-target",
        level: Level::Error,
        rationale: "A grant that names something undefined grants whatever takes that name later.",
        fix: "Name a function of this app, or remove the grant.",
    },
    Rule {
        id: "grant-undefined",
        level: Level::Error,
        rationale: "A grant that names something undefined grants whatever takes that name later.",
        fix: "Store the secret first (`zerofn secrets set APP NAME`), or remove the grant.",
    },
    Rule {
        id: "grant-unchecked",
        level: Level::Warning,
        rationale: "`zerofn admit` runs without the server's store, so it cannot tell whether a granted secret exists.",
        fix: "Nothing to do offline: deploy refuses the grant (`grant-undefined`) if the secret is not stored.",
    },
    Rule {
        id: "self-invoke",
        level: Level::Error,
        rationale: "A function granted itself feeds unbounded recursion.",
        fix: "Remove the function's own name from `invoke`.",
    },
    Rule {
        id: "missing-auth",
        level: Level::Error,
        rationale: "A route nobody declared public must not become public by omission (HTTP functions only: schedule and queue functions have no outside caller).",
        fix: "Add `[functions.<name>.auth]` with `public = true`, or an authentication method.",
    },
    Rule {
        id: "public-route",
        level: Level::Warning,
        rationale: "A route anyone may call should be a reviewed decision, never an accident.",
        fix: "Keep `public = true` for public content; require `api-key` authentication otherwise.",
    },
    Rule {
        id: "wildcard-egress",
        level: Level::Warning,
        rationale: "A `*.` destination reaches any host an attacker can register under the domain.",
        fix: "Name each host the function calls (operators may refuse `*.` grants in a Rego policy).",
    },
    Rule {
        id: "private-egress",
        level: Level::Warning,
        rationale: "`allow_private` lets a function reach loopback, private and link-local addresses: the platform's own network.",
        fix: "Remove `allow_private` unless the destination is a private service the function needs.",
    },
    Rule {
        id: "input-schema-missing",
        level: Level::Warning,
        rationale: "A write route (or a queue function) without a schema hands hostile bodies to code.",
        fix: "Declare `input.schema`: bodies that break it are refused before the function runs.",
    },
    Rule {
        id: "limit-above-ceiling",
        level: Level::Error,
        rationale: "No manifest may grant itself more than the operator allows.",
        fix: "Lower the limit, or ask the operator to raise the ceiling.",
    },
    Rule {
        id: "unsigned",
        level: Level::Error,
        rationale: "Only signed code runs.",
        fix: "`zerofn build`, then `zerofn sign --key KEY`.",
    },
    Rule {
        id: "signer-not-trusted",
        level: Level::Error,
        rationale: "A signature only counts from a key trusted for this app.",
        fix: "Sign with a trusted key, or add the key to the trust policy for this app.",
    },
    Rule {
        id: "signer-revoked",
        level: Level::Error,
        rationale: "A revoked key signs nothing.",
        fix: "Sign again with a key that is not revoked.",
    },
    Rule {
        id: "bad-signature",
        level: Level::Error,
        rationale: "An altered bundle proves nothing.",
        fix: "Sign again; never edit bundles.",
    },
    Rule {
        id: "malformed-bundle",
        level: Level::Error,
        rationale: "Only standard Sigstore bundles with in-toto statements are verified.",
        fix: "Produce the bundle with `zerofn sign`.",
    },
    Rule {
        id: "provenance-missing",
        level: Level::Error,
        rationale: "Code without provenance cannot be traced to its build.",
        fix: "Run `zerofn build` before `zerofn sign`.",
    },
    Rule {
        id: "component-not-signed",
        level: Level::Error,
        rationale: "The component changed after it was signed.",
        fix: "Sign the component you deploy.",
    },
    Rule {
        id: "config-not-signed",
        level: Level::Error,
        rationale: "Permissions changed after signing are as dangerous as code changed after signing.",
        fix: "Review the configuration change and sign again.",
    },
    Rule {
        id: "sbom-missing",
        level: Level::Error,
        rationale: "Without an SBOM, dependencies cannot be checked.",
        fix: "Run `zerofn build`.",
    },
    Rule {
        id: "sbom-not-signed",
        level: Level::Error,
        rationale: "Dependencies are only judged from the SBOM that was signed, not one sent alongside.",
        fix: "`zerofn build`, then `zerofn sign` again.",
    },
    Rule {
        id: "file-not-signed",
        level: Level::Error,
        rationale: "A file the manifest refers to (a JWKS, a CA bundle) decides who may call; swapping it must break the signature like swapping code.",
        fix: "Review the file, then `zerofn sign` again.",
    },
    Rule {
        id: "missing-file",
        level: Level::Error,
        rationale: "A function is deployed with every file its manifest names, or not at all.",
        fix: "Create the file or fix the path (relative to the manifest); `zerofn deploy` sends it.",
    },
    Rule {
        id: "file-too-large",
        level: Level::Error,
        rationale: "Key sets, CA bundles and schemas are small; the server keeps them in memory.",
        fix: "Keep referenced files under 1 MiB.",
    },
    Rule {
        id: "file-not-referenced",
        level: Level::Error,
        rationale: "The platform stores nothing it would not use.",
        fix: "Send only the files the manifest refers to.",
    },
    Rule {
        id: "auth-unusable",
        level: Level::Error,
        rationale: "An `auth` whose keys cannot be read would refuse every caller, or worse.",
        fix: "Give `auth.jwt.jwks` a JWK set with at least one public signing key (RSA, EC or OKP).",
    },
    Rule {
        id: "missing-component",
        level: Level::Error,
        rationale: "A version is deployed whole or not at all.",
        fix: "`zerofn build` every function, then deploy again.",
    },
    Rule {
        id: "unexpected-component",
        level: Level::Error,
        rationale: "Code the manifest does not declare is not deployed.",
        fix: "Declare the function in the manifest, or stop sending its component.",
    },
    Rule {
        id: "policy-error",
        level: Level::Error,
        rationale: "An operator policy that fails to evaluate must not pass anything by accident.",
        fix: "Fix the policy (the message says where), then deploy again.",
    },
    Rule {
        id: "blocking-advisory",
        level: Level::Error,
        rationale: "Known-vulnerable dependencies do not ship.",
        fix: "Upgrade the package to a fixed version (`zerofn deps`).",
    },
];

/// The built-in rule with `id`, if it is one.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}
