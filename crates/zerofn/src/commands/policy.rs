//! `zerofn policy explain` and `zerofn policy test`: the PDP, offline, over an app's grants and
//! the operator's guardrails, exactly as the server builds it. `zerofn policy suggest`: the
//! smallest grants from the audit stream (`zerofn_review::suggest`).

use crate::cli::{PolicyCommand, PolicySources};
use crate::exit::{Code, Failure};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use zerofn_policy::{AccessRequest, Capability, FunctionRef, Pdp, RequestContext};

pub fn run(command: PolicyCommand, data_dir: PathBuf, json: bool) -> Result<(), Failure> {
    match command {
        PolicyCommand::Explain {
            app_dir,
            function,
            action,
            resource,
            method,
            risk,
            policies,
        } => {
            let (pdp, app) = decision_point(&app_dir, &policies, data_dir)?;
            let capability = Capability::parse(&action, &resource, &method)
                .map_err(|e| Failure::new(Code::Refused, e))?;
            let decision = pdp.decide(&request(&app, &function, capability, risk));
            let sources: Vec<serde_json::Value> = decision
                .policies
                .iter()
                .filter_map(|id| {
                    pdp.policy(id).map(|(text, file)| {
                        serde_json::json!({"id": id, "file": file.map(|f| f.display().to_string()), "text": text})
                    })
                })
                .collect();
            let value = serde_json::json!({
                "allowed": decision.allowed,
                "explanation": decision.explanation(),
                "policies": sources,
                "errors": decision.errors,
            });
            crate::output::print(json, &value, || {
                let mut text = format!(
                    "{}: {} {action} {resource}\n{}",
                    if decision.allowed { "ALLOW" } else { "DENY" },
                    function,
                    decision.explanation()
                );
                for source in &sources {
                    let file = source["file"]
                        .as_str()
                        .map(|f| format!(" ({f})"))
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "\n\n{}{file}:\n{}",
                        source["id"].as_str().unwrap_or_default(),
                        source["text"].as_str().unwrap_or_default()
                    ));
                }
                text
            });
            Ok(())
        }
        PolicyCommand::Test { cases, policies } => test(&cases, &policies, data_dir, json),
        // Dispatched to [`suggest`], which talks to the server.
        PolicyCommand::Suggest { .. } => Err(Failure::new(
            Code::Failure,
            "policy suggest is not an offline command",
        )),
    }
}

/// A cases file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    /// The app directory whose grants are tested, relative to the cases file.
    app: PathBuf,
    #[serde(rename = "case", default)]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    function: String,
    action: String,
    resource: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    risk: i64,
    /// `allow` or `deny`.
    expect: String,
    /// When given, the policies that must decide it (ids, any order).
    policies: Option<Vec<String>>,
}

fn get() -> String {
    "GET".into()
}

fn test(
    path: &Path,
    sources: &PolicySources,
    data_dir: PathBuf,
    json: bool,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            Code::Failure,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let cases: Cases = toml::from_str(&text).map_err(|e| {
        Failure::new(
            Code::Refused,
            format!("{} is not a cases file: {e}", path.display()),
        )
    })?;
    let app_dir = path.parent().unwrap_or(Path::new(".")).join(&cases.app);
    let (pdp, app) = decision_point(&app_dir, sources, data_dir)?;
    let mut results = Vec::new();
    for case in &cases.cases {
        let outcome = match (
            Capability::parse(&case.action, &case.resource, &case.method),
            case.expect.as_str(),
        ) {
            (Err(e), _) => Err(e),
            (_, expect) if expect != "allow" && expect != "deny" => {
                Err(format!("`expect` is `{expect}`: use allow or deny"))
            }
            (Ok(capability), expect) => {
                let decision = pdp.decide(&request(&app, &case.function, capability, case.risk));
                let mut problems = Vec::new();
                if decision.allowed != (expect == "allow") {
                    problems.push(format!("expected {expect}, got {}", decision.explanation()));
                }
                if let Some(expected) = &case.policies {
                    let mut expected = expected.clone();
                    expected.sort();
                    if expected != decision.policies {
                        problems.push(format!(
                            "expected policies {expected:?}, got {:?}",
                            decision.policies
                        ));
                    }
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            }
        };
        results.push((case.name.clone(), outcome));
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let value = serde_json::json!({
        "passed": results.len() - failed,
        "failed": failed,
        "cases": results.iter().map(|(name, r)| serde_json::json!({
            "name": name, "passed": r.is_ok(), "reason": r.as_ref().err(),
        })).collect::<Vec<_>>(),
    });
    crate::output::print(json, &value, || {
        let mut text: Vec<String> = results
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => format!("PASS {name}"),
                Err(reason) => format!("FAIL {name}: {reason}"),
            })
            .collect();
        text.push(format!(
            "{} passed, {failed} failed",
            results.len() - failed
        ));
        text.join("\n")
    });
    if failed > 0 {
        return Err(
            Failure::new(Code::Failure, format!("{failed} policy case(s) failed"))
                .with_json(serde_json::Value::Null),
        );
    }
    Ok(())
}

fn request(app: &str, function: &str, capability: Capability, risk: i64) -> AccessRequest {
    AccessRequest {
        principal: FunctionRef::new(app, function),
        capability,
        context: RequestContext {
            invocation_id: "policy-cli".into(),
            caller_chain: Vec::new(),
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            risk,
        },
    }
}

/// The PDP for the app in `app_dir` and the guardrails, and the app's name.
fn decision_point(
    app_dir: &Path,
    sources: &PolicySources,
    data_dir: PathBuf,
) -> Result<(Pdp, String), Failure> {
    let manifest = zerofn_manifest::load(&app_dir.join(zerofn_manifest::MANIFEST_FILE))?;
    // Without `--config`, only the guardrails named on the command line (not the defaults').
    let configured = match &sources.config {
        Some(config) => super::offline::platform_config(Some(config), data_dir)?.guardrails,
        None => Vec::new(),
    };
    let guardrails = super::offline::guardrails(&configured, &sources.guardrails)?;
    let app = manifest.app_name().to_string();
    let pdp = Pdp::build(
        &guardrails,
        manifest
            .functions()
            .map(|f| (FunctionRef::new(&app, &f.name), &f.grants))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| Failure::new(Code::Refused, e.to_string()))?;
    Ok((pdp, app))
}

/// `zerofn policy suggest`'s arguments.
pub struct SuggestArgs {
    pub app: String,
    pub since: Option<String>,
    pub manifest: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub format: crate::cli::SuggestFormat,
}

/// The window when none is given and the events come from the server.
const DEFAULT_WINDOW: &str = "7d";

pub async fn suggest(
    args: SuggestArgs,
    target: Result<super::operator::Target, Failure>,
    json: bool,
) -> Result<(), Failure> {
    use crate::cli::SuggestFormat;
    use zerofn_review::usage::Usage;
    let since = match (&args.since, &args.events) {
        (Some(since), _) => Some(since.as_str()),
        (None, None) => Some(DEFAULT_WINDOW),
        (None, Some(_)) => None,
    };
    let since_ms = since.map(window_start).transpose()?;
    if args.events.is_some() && args.manifest.is_none() {
        return Err(Failure::new(
            Code::Refused,
            "--events needs --manifest: with a recorded stream, name the manifest to judge (e.g. --manifest zerofn.toml)",
        ));
    }
    // The usage (and the deployed manifest) from the server, unless both come from files.
    let served = match &args.events {
        Some(_) => None,
        None => {
            let path = match since_ms {
                Some(since) => format!(
                    "/v1/apps/{}/usage?since_ms={since}",
                    super::control::percent_encode(&args.app)
                ),
                None => format!(
                    "/v1/apps/{}/usage",
                    super::control::percent_encode(&args.app)
                ),
            };
            let answer: zerofn_server::control::AppUsage = target?.client()?.get(&path).await?;
            Some(answer)
        }
    };
    let usage = match (&args.events, &served) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Failure::new(
                    Code::Failure,
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            Usage::from_json_lines(&args.app, since_ms, &text).map_err(|e| {
                Failure::new(
                    Code::Refused,
                    format!("{}: {e} (expected one audit event per line, as `zerofn audit tail --json` prints them)", file.display()),
                )
            })?
        }
        (None, Some(served)) => served.usage.clone(),
        (None, None) => Usage::new(&args.app, since_ms),
    };
    let (manifest, name) = match (&args.manifest, &served) {
        (Some(path), _) => {
            let manifest = zerofn_manifest::load(path)
                .map_err(|diagnostics| Failure::new(Code::Refused, diagnostics.to_string()))?;
            (manifest, path.display().to_string())
        }
        (None, Some(served)) => {
            let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), &served.manifest)
                .map_err(|diagnostics| {
                    Failure::new(
                        Code::Failure,
                        format!(
                            "the deployed manifest of `{}` no longer parses: {diagnostics}",
                            args.app
                        ),
                    )
                })?;
            (manifest, "zerofn.toml".to_string())
        }
        (None, None) => {
            return Err(Failure::new(
                Code::Refused,
                "name the manifest with --manifest",
            ));
        }
    };
    let suggestion = zerofn_review::suggest::suggest(&manifest, &name, &usage)
        .map_err(|e| Failure::new(Code::Refused, e.to_string()))?;
    let format = if json {
        SuggestFormat::Json
    } else {
        args.format
    };
    match format {
        SuggestFormat::Text => print!("{}", suggestion.render_text()),
        SuggestFormat::Diff => print!("{}", suggestion.diff),
        SuggestFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&suggestion).unwrap_or_default()
        ),
        SuggestFormat::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&zerofn_admission::sarif_with_rules(
                &suggestion.findings,
                zerofn_review::suggest::RULES
            ))
            .unwrap_or_default()
        ),
    }
    Ok(())
}

/// The start of the window `since` (`7d`, `36h`) before now, in milliseconds since the epoch.
fn window_start(since: &str) -> Result<i64, Failure> {
    let duration = humantime::parse_duration(since).map_err(|e| {
        Failure::new(
            Code::Refused,
            format!("--since `{since}` is not a duration ({e}): write it as 7d, 36h or 30m"),
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let start = now.saturating_sub(duration);
    Ok(i64::try_from(start.as_millis()).unwrap_or(i64::MAX))
}
