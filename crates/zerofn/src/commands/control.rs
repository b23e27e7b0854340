//! Commands that talk to a running server through the control plane of the data directory:
//! deploy, apps, versions, rollback, invoke, logs.

use super::build;
use crate::exit::{Code, Failure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::path::{Path, PathBuf};
use zerofn_server::DeployReport;
use zerofn_server::control::{
    AppListing, ControlClient, DeployRequest, InvokeRequest, InvokeResponse, RollbackRequest,
};
use zerofn_store::{LogQuery, LogRow, VersionRecord};

use super::operator::Target;

pub async fn deploy(
    app_dir: &Path,
    run_build: bool,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    let bundle = build::bundle(app_dir, run_build, json)?;
    let request = DeployRequest {
        manifest_path: bundle.manifest_path,
        manifest: bundle.manifest,
        components: bundle
            .components
            .into_iter()
            .map(|(name, bytes)| (name, BASE64.encode(bytes)))
            .collect(),
        attestations: bundle.attestations,
        files: bundle
            .files
            .iter()
            .map(|(path, bytes)| (path.to_string(), BASE64.encode(bytes)))
            .collect(),
    };
    let report: DeployReport = target.client()?.post("/v1/deploy", &request).await?;
    print_report(&report, "deployed", json);
    Ok(())
}

fn print_report(report: &DeployReport, verb: &str, json: bool) {
    if !json && !report.warnings_text.is_empty() {
        eprintln!("{}", report.warnings_text);
    }
    let value = serde_json::to_value(report).unwrap_or_default();
    crate::output::print(json, &value, || {
        let mut text = format!(
            "{verb} {} {} (version {})\n",
            report.app, report.app_version, report.version_id
        );
        for f in &report.functions {
            text.push_str(&format!("  {:<12} {}\n", f.name, f.trigger));
        }
        text.trim_end().to_string()
    });
}

pub async fn apps(target: &Target, json: bool) -> Result<(), Failure> {
    let apps: Vec<AppListing> = target.client()?.get("/v1/apps").await?;
    let value = serde_json::to_value(&apps).unwrap_or_default();
    crate::output::print(json, &value, || {
        if apps.is_empty() {
            return "no apps deployed".into();
        }
        apps.iter()
            .map(|a| {
                let state = if a.serving { "serving" } else { "NOT SERVING" };
                format!(
                    "{:<16} {:<10} {}  {state}",
                    a.app,
                    a.app_version,
                    short(&a.active_version_id)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `zerofn api-key create|list|revoke`.
pub async fn api_key(
    command: crate::cli::ApiKeyCommand,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    use crate::cli::ApiKeyCommand;
    use zerofn_server::control::{CreateApiKeyRequest, CreatedApiKey};
    let client = target.client()?;
    match command {
        ApiKeyCommand::Create {
            app,
            functions,
            name,
            expires_in,
        } => {
            let functions = if functions.is_empty() {
                vec!["*".to_string()]
            } else {
                functions
            };
            let created: CreatedApiKey = client
                .post(
                    "/v1/api-keys",
                    &CreateApiKeyRequest {
                        app,
                        functions,
                        name,
                        expires_in_secs: expires_in.map(|d| d.as_secs()),
                    },
                )
                .await?;
            let value = serde_json::to_value(&created).unwrap_or_default();
            crate::output::print(json, &value, || {
                format!(
                    "{}\n(key {} for {} of {}; shown once: store it now)",
                    created.key,
                    created.record.id,
                    created.record.functions.join(", "),
                    created.record.app
                )
            });
        }
        ApiKeyCommand::List { app } => {
            let keys: Vec<zerofn_store::ApiKeyRecord> =
                client.get(&format!("/v1/api-keys?app={app}")).await?;
            let value = serde_json::to_value(&keys).unwrap_or_default();
            crate::output::print(json, &value, || {
                if keys.is_empty() {
                    return format!("no API keys for {app}");
                }
                keys.iter()
                    .map(|k| {
                        let state = match (k.revoked_ms, k.expires_ms) {
                            (Some(_), _) => "revoked".to_string(),
                            (None, Some(at)) => format!("expires at {at} ms"),
                            (None, None) => "no expiry".to_string(),
                        };
                        format!(
                            "{}  {:<24} {}  {state}",
                            k.id,
                            k.functions.join(","),
                            k.name
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ApiKeyCommand::Revoke { id } => {
            let value: serde_json::Value = client
                .post(&format!("/v1/api-keys/{id}/revoke"), &serde_json::json!({}))
                .await?;
            crate::output::print(json, &value, || format!("revoked {id}"));
        }
    }
    Ok(())
}

/// `zerofn metrics`: the exposition as the server writes it (already machine-readable).
pub async fn metrics(target: &Target) -> Result<(), Failure> {
    let text = target.client()?.get_text("/v1/metrics").await?;
    print!("{text}");
    Ok(())
}

pub async fn versions(app: &str, target: &Target, json: bool) -> Result<(), Failure> {
    let versions: Vec<VersionRecord> = target
        .client()?
        .get(&format!("/v1/apps/{app}/versions"))
        .await?;
    let value = serde_json::to_value(&versions).unwrap_or_default();
    crate::output::print(json, &value, || {
        versions
            .iter()
            .map(|v| {
                format!(
                    "{}  {:<10} created {}",
                    v.version_id, v.app_version, v.created_ms
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `zerofn trace`: the tree is built by the server; this prints it.
pub async fn trace(trace_id: &str, target: &Target, json: bool) -> Result<(), Failure> {
    if !zerofn_server::traces::is_trace_id(trace_id) {
        return Err(Failure::new(
            Code::Failure,
            format!(
                "`{trace_id}` is not a trace id: use the 32 lowercase hex digits of a trace (the second field of a `traceparent` header, or `trace_id` in an audit event)"
            ),
        ));
    }
    let tree: zerofn_server::traces::TraceTree = target
        .client()?
        .get(&format!("/v1/traces/{trace_id}"))
        .await?;
    let value = serde_json::to_value(&tree).unwrap_or_default();
    crate::output::print(json, &value, || {
        zerofn_server::traces::render(&tree).trim_end().to_string()
    });
    Ok(())
}

pub async fn rollback(
    app: &str,
    to: Option<&str>,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    let request = RollbackRequest {
        to: to.map(str::to_string),
    };
    let report: DeployReport = target
        .client()?
        .post(&format!("/v1/apps/{app}/rollback"), &request)
        .await?;
    print_report(&report, "rolled back to", json);
    Ok(())
}

pub struct InvokeArgs {
    pub app: String,
    pub function: String,
    pub method: String,
    pub path: Option<String>,
    pub headers: Vec<String>,
    pub data: Option<String>,
    pub data_file: Option<PathBuf>,
}

pub async fn invoke(args: InvokeArgs, target: &Target, json: bool) -> Result<(), Failure> {
    let body = match (&args.data, &args.data_file) {
        (Some(data), _) => data.as_bytes().to_vec(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)
                .map_err(|e| Failure::new(Code::Failure, format!("cannot read stdin: {e}")))?;
            buffer
        }
        (None, Some(path)) => std::fs::read(path).map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("cannot read {}: {e}", path.display()),
            )
        })?,
        (None, None) => Vec::new(),
    };
    let mut headers = Vec::new();
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(Failure::new(
                Code::Refused,
                format!("header `{header}` is not `NAME: VALUE`"),
            ));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let client = target.client()?;
    let path = match args.path {
        Some(path) => path,
        None => default_path(&client, &args.app, &args.function).await?,
    };
    let request = InvokeRequest {
        app: args.app,
        function: args.function,
        method: args.method.to_uppercase(),
        path,
        headers,
        body_base64: BASE64.encode(body),
    };
    let response: InvokeResponse = client.post("/v1/invoke", &request).await?;
    let body = BASE64
        .decode(response.body_base64.as_bytes())
        .unwrap_or_default();
    if json {
        let value = serde_json::json!({
            "invocation_id": response.invocation_id,
            "status": response.status,
            "headers": response.headers,
            "body": String::from_utf8_lossy(&body),
        });
        crate::output::print(true, &value, String::new);
    } else {
        eprintln!(
            "HTTP {} (invocation {})",
            response.status, response.invocation_id
        );
        use std::io::Write as _;
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(&body);
        let _ = stdout.flush();
    }
    if response.status >= 400 {
        return Err(Failure::new(
            Code::FunctionError,
            format!("the function answered HTTP {}", response.status),
        ));
    }
    Ok(())
}

/// The function's route, without a trailing `/...`, so `invoke` works without `--path`.
async fn default_path(
    client: &ControlClient,
    app: &str,
    function: &str,
) -> Result<String, Failure> {
    let apps: Vec<AppListing> = client.get("/v1/apps").await?;
    apps.iter()
        .filter(|a| a.app == app)
        .flat_map(|a| a.functions.iter())
        .find(|f| f.name == function && !f.route.is_empty())
        .map(|f| f.route.trim_end_matches("/...").to_string())
        .map(|p| if p.is_empty() { "/".to_string() } else { p })
        .ok_or_else(|| {
            Failure::new(
                Code::Refused,
                format!("app `{app}` has no serving function `{function}` (see `zerofn apps`)"),
            )
        })
}

pub async fn logs(
    mut query: LogQuery,
    follow: bool,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    let client = target.client()?;
    loop {
        let path = format!("/v1/logs?{}", encode_query(&query));
        let rows: Vec<LogRow> = client.get(&path).await?;
        for row in &rows {
            if json {
                println!("{}", serde_json::to_string(row).unwrap_or_default());
            } else {
                println!(
                    "{} {}/{} {} {}: {}",
                    row.at_ms,
                    row.app,
                    row.function,
                    short(&row.invocation_id),
                    row.stream,
                    printable(&row.line)
                );
            }
        }
        if !follow {
            return Ok(());
        }
        if let Some(last) = rows.last() {
            query.after_id = Some(last.id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn encode_query(query: &LogQuery) -> String {
    let mut pairs = Vec::new();
    let mut add = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            pairs.push(format!("{key}={}", percent_encode(&value)));
        }
    };
    add("app", query.app.clone());
    add("function", query.function.clone());
    add("invocation_id", query.invocation_id.clone());
    add("after_id", query.after_id.map(|v| v.to_string()));
    add("limit", query.limit.map(|v| v.to_string()));
    pairs.join("&")
}

pub(super) fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn short(id: &str) -> &str {
    let start = id.find(':').map(|i| i + 1).unwrap_or(0);
    let end = (start + 12).min(id.len());
    id.get(start..end).unwrap_or(id)
}

pub async fn trust_reload(target: &Target, json: bool) -> Result<(), Failure> {
    let outcome: zerofn_server::TrustReload = target
        .client()?
        .post("/v1/trust/reload", &serde_json::json!({}))
        .await?;
    let value = serde_json::to_value(&outcome).unwrap_or_default();
    crate::output::print(json, &value, || {
        let mut text = String::from("trust policy reloaded");
        for (app, reason) in &outcome.suspended {
            text.push_str(&format!("\n  suspended {app}: {reason}"));
        }
        for app in &outcome.resumed {
            text.push_str(&format!("\n  resumed {app}"));
        }
        text
    });
    Ok(())
}

/// A guest-written line made safe for a terminal: control characters (escape sequences that
/// could rewrite the screen or the title) are shown escaped.
pub(super) fn printable(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `zerofn admit`: the deploy checks, all of them, without deploying.
pub fn admit(
    app_dir: &Path,
    config: Option<&Path>,
    policies: &[PathBuf],
    format: crate::cli::ReportFormat,
    data_dir: PathBuf,
) -> Result<(), Failure> {
    use crate::cli::ReportFormat;
    let refused = |e: &dyn std::fmt::Display| Failure::new(Code::Refused, e.to_string());
    let mut config = super::offline::platform_config(config, data_dir)?;
    config.admission_policies.extend(policies.iter().cloned());
    let trust =
        zerofn_server::trust::TrustPolicy::load(&config.trust_policy_path(), &config.data_dir)
            .map_err(|e| refused(&e))?;
    let gate = config.advisory_gate().map_err(|e| refused(&e))?;
    let operator = config.operator_policy().map_err(|e| refused(&e))?;
    let bundle = build::bundle(app_dir, false, true)?;
    let admission = zerofn_server::admission::admit(
        &bundle,
        &zerofn_server::admission::AdmissionPolicies {
            limits: &config.limits,
            trust: &trust,
            advisories: gate.as_ref(),
            operator: operator.as_ref(),
            definitions: &zerofn_server::admission::Offline,
        },
    );
    let findings = &admission.findings;
    match format {
        ReportFormat::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&zerofn_admission::sarif(findings)).unwrap_or_default()
        ),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"admitted": admission.is_admitted(), "findings": findings})
            )
            .unwrap_or_default()
        ),
        ReportFormat::Text => println!("{}", zerofn_admission::render_text(findings)),
    }
    if !admission.is_admitted() {
        // The report is already on stdout, in the format asked for.
        return Err(Failure::new(
            Code::Refused,
            format!("admission refused: {} error(s)", admission.errors()),
        )
        .with_json(serde_json::Value::Null));
    }
    Ok(())
}
