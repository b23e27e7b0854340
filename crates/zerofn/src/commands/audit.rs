//! `zerofn audit ...`: the audit stream (newest events first, then live) and its chain's
//! integrity, as the running server sees it (the CLI never opens the store itself).

use super::operator::Target;
use crate::cli::AuditCommand;
use crate::exit::{Code, Failure};
use std::path::Path;
use std::time::Duration;
use zerofn_audit::VerifyReport;
use zerofn_server::control::{AuditKey, ControlClient, ControlError, StreamFilter};
use zerofn_store::AuditRow;

/// A stream silent for this long (three keep-alives missed) is taken as dead and reopened.
const SILENCE: Duration = Duration::from_secs(45);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub async fn run(command: AuditCommand, target: &Target, json: bool) -> Result<(), Failure> {
    match command {
        AuditCommand::Verify { key } => verify(key.as_deref(), target, json).await,
        AuditCommand::Key => key(target, json).await,
        AuditCommand::Tail {
            follow,
            app,
            function,
            kinds,
            outcome,
            trace,
            invocation,
            limit,
        } => {
            // The server's own parser checks the filter, so a typo fails here with the
            // message the server would give, before anything is sent.
            let mut query = url_pairs(&[
                ("app", app),
                ("function", function),
                ("outcome", outcome),
                ("trace_id", trace),
                ("invocation_id", invocation),
            ]);
            for kind in kinds {
                query.push(("kind".into(), kind));
            }
            let encoded = encode(&query);
            let filter = StreamFilter::parse(&encoded, None).map_err(|problem| {
                Failure::new(Code::Refused, problem.detail.clone()).with_json(problem.to_json())
            })?;
            tail(filter, limit, follow, &target.client()?, json).await
        }
    }
}

async fn tail(
    filter: StreamFilter,
    limit: u32,
    follow: bool,
    client: &ControlClient,
    json: bool,
) -> Result<(), Failure> {
    // Even with `--limit 0` the newest id is read: it is where following starts, so a
    // reconnection before the first event still misses nothing.
    let (rows, newest) = newest(client, &filter, limit.max(1)).await?;
    let skip = rows.len().saturating_sub(limit as usize);
    for row in &rows[skip..] {
        print_event(row.id, &row.event, json);
    }
    if !follow {
        return Ok(());
    }
    follow_stream(filter, newest, client, json).await
}

/// The newest `limit` matching events, oldest first, and the id to follow from (the newest
/// event read, matching or not, so nothing between it and the stream is missed).
async fn newest(
    client: &ControlClient,
    filter: &StreamFilter,
    limit: u32,
) -> Result<(Vec<AuditRow>, i64), Failure> {
    let mut query = filter.store_query();
    // Filters the store cannot apply are applied here, over the largest window it returns.
    let local = filter.kinds.len() > 1 || filter.outcome.is_some();
    query.limit = Some(if local { 10_000 } else { limit });
    let mut pairs = vec![(
        "limit".to_string(),
        query.limit.unwrap_or(limit).to_string(),
    )];
    for (name, value) in [
        ("app", query.app),
        ("function", query.function),
        ("invocation_id", query.invocation_id),
        ("kind", query.kind),
        ("trace_id", query.trace_id),
    ] {
        if let Some(value) = value {
            pairs.push((name.to_string(), value));
        }
    }
    let rows: Vec<AuditRow> = client.get(&format!("/v1/audit?{}", encode(&pairs))).await?;
    let newest = rows.last().map_or(0, |row| row.id);
    let rows = rows
        .into_iter()
        .filter(|row| filter.matches_row(row))
        .collect();
    Ok((rows, newest))
}

/// Follows `/v1/audit/stream`, reopening it after the last event seen whenever it ends.
async fn follow_stream(
    mut filter: StreamFilter,
    after: i64,
    client: &ControlClient,
    json: bool,
) -> Result<(), Failure> {
    filter.after_id = Some(after);
    let mut last_id = after;
    let path = format!("/v1/audit/stream?{}", filter.to_query());
    let mut backoff = Duration::from_millis(250);
    loop {
        let resume = last_id.to_string();
        match client.stream(&path, Some(&resume)).await {
            Ok(mut stream) => loop {
                match tokio::time::timeout(SILENCE, stream.next()).await {
                    Ok(Ok(Some(event))) => {
                        backoff = Duration::from_millis(250);
                        let Some(id) = event.id.as_deref().and_then(|id| id.parse().ok()) else {
                            continue;
                        };
                        let value = serde_json::from_str(&event.data)
                            .unwrap_or(serde_json::Value::String(event.data));
                        print_event(id, &value, json);
                        last_id = id;
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "audit stream interrupted; reconnecting");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!("audit stream silent; reconnecting");
                        break;
                    }
                }
            },
            // A server that is restarting, or busy with other streams, is waited for;
            // anything else it refuses is final.
            Err(ControlError::Refused { status: 503, .. })
            | Err(ControlError::NotRunning { .. })
            | Err(ControlError::Unreachable { .. })
            | Err(ControlError::Transport(_)) => {}
            Err(error) => return Err(error.into()),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn print_event(id: i64, event: &serde_json::Value, json: bool) {
    if json {
        let mut line = event.clone();
        if let Some(object) = line.as_object_mut() {
            object.insert("id".into(), id.into());
        }
        println!("{line}");
        return;
    }
    let text = |name: &str| event[name].as_str().unwrap_or("");
    let mut line = format!(
        "{} #{id} {} {}",
        timestamp(event["at_ms"].as_i64().unwrap_or(0)),
        text("kind"),
        text("outcome"),
    );
    match (event["app"].as_str(), event["function"].as_str()) {
        (Some(app), Some(function)) => line.push_str(&format!(" {app}/{function}")),
        (Some(app), None) => line.push_str(&format!(" {app}")),
        _ => {}
    }
    for (label, field) in [
        ("reason", "reason"),
        ("caller", "caller"),
        ("invocation", "invocation_id"),
        ("trace", "trace_id"),
    ] {
        if let Some(value) = event[field].as_str() {
            line.push_str(&format!(" {label}={value}"));
        }
    }
    // Fields come from callers and guests (a reason, a caller name): never let them steer
    // the terminal.
    println!("{}", super::control::printable(&line));
}

/// RFC 3339 in UTC, to the millisecond.
fn timestamp(at_ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

fn url_pairs(pairs: &[(&str, Option<String>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
        .collect()
}

fn encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", super::control::percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn verify(key: Option<&Path>, target: &Target, json: bool) -> Result<(), Failure> {
    let pem = key
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    Code::Failure,
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        })
        .transpose()?;
    let path = match &pem {
        Some(pem) => format!(
            "/v1/audit/verify?key={}",
            url::form_urlencoded::byte_serialize(pem.as_bytes()).collect::<String>()
        ),
        None => "/v1/audit/verify".to_string(),
    };
    let report: VerifyReport = target.client()?.get(&path).await?;
    let value = serde_json::to_value(&report).unwrap_or_default();
    if report.intact {
        crate::output::print(json, &value, || report.render());
        return Ok(());
    }
    Err(Failure::new(Code::ChainBroken, report.render()).with_json(value))
}

async fn key(target: &Target, json: bool) -> Result<(), Failure> {
    let key: AuditKey = target.client()?.get("/v1/audit/key").await?;
    let value = serde_json::to_value(&key).unwrap_or_default();
    crate::output::print(json, &value, || key.public_key_pem.trim_end().to_string());
    Ok(())
}
