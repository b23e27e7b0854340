//! `zerofn incidents`, `zerofn release` and `zerofn report`: the operator's side of the
//! monitoring loop, through the control plane.

use super::control::percent_encode;
use super::operator::Target;
use crate::cli::{IncidentFilter, IncidentsCommand};
use crate::exit::{Code, Failure};
use zerofn_server::control::{IncidentDetail, ReleaseRequest, ResolveIncidentRequest};
use zerofn_server::report::{LoopReport, Timing};
use zerofn_server::response::Resolution;
use zerofn_store::{IncidentRecord, QuarantineRecord};

pub async fn run(
    command: Option<IncidentsCommand>,
    filter: IncidentFilter,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    match command {
        None => list(&filter, target, json).await,
        Some(IncidentsCommand::List { filter }) => list(&filter, target, json).await,
        Some(IncidentsCommand::Show { id }) => show(&id, target, json).await,
        Some(IncidentsCommand::Resolve {
            id,
            true_positive,
            false_positive,
            note,
        }) => {
            let resolution = match (true_positive, false_positive) {
                (true, false) => Resolution::TruePositive,
                (false, true) => Resolution::FalsePositive,
                _ => {
                    return Err(Failure::new(
                        Code::Refused,
                        "give exactly one of `--true-positive` and `--false-positive`",
                    ));
                }
            };
            let resolved: IncidentRecord = target
                .client()?
                .post(
                    &format!("/v1/incidents/{}/resolve", percent_encode(&id)),
                    &ResolveIncidentRequest { resolution, note },
                )
                .await?;
            let value = serde_json::to_value(&resolved).unwrap_or_default();
            crate::output::print(json, &value, || {
                format!(
                    "incident {} resolved as {}",
                    resolved.id,
                    resolved.resolution.as_deref().unwrap_or("?")
                )
            });
            Ok(())
        }
    }
}

async fn list(filter: &IncidentFilter, target: &Target, json: bool) -> Result<(), Failure> {
    let mut pairs = Vec::new();
    for (key, value) in [
        ("status", &filter.status),
        ("app", &filter.app),
        ("function", &filter.function),
    ] {
        if let Some(value) = value {
            pairs.push(format!("{key}={}", percent_encode(value)));
        }
    }
    let incidents: Vec<IncidentRecord> = target
        .client()?
        .get(&format!("/v1/incidents?{}", pairs.join("&")))
        .await?;
    let value = serde_json::to_value(&incidents).unwrap_or_default();
    crate::output::print(json, &value, || {
        if incidents.is_empty() {
            return "no incidents".to_string();
        }
        incidents
            .iter()
            .map(|i| {
                format!(
                    "{}  {:<8} {:<9} {}/{}  {}  {}",
                    i.id,
                    i.severity,
                    status(i),
                    i.app,
                    i.function,
                    i.detector,
                    i.summary
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn status(incident: &IncidentRecord) -> String {
    match &incident.resolution {
        Some(resolution) => resolution.clone(),
        None => incident.status.clone(),
    }
}

async fn show(id: &str, target: &Target, json: bool) -> Result<(), Failure> {
    let detail: IncidentDetail = target
        .client()?
        .get(&format!("/v1/incidents/{}", percent_encode(id)))
        .await?;
    let value = serde_json::to_value(&detail).unwrap_or_default();
    crate::output::print(json, &value, || {
        let i = &detail.incident;
        let mut text = format!(
            "incident {}\n  function   {}/{} (version {})\n  detector   {} ({})\n  summary    {}\n  status     {}\n  detected   {} ms after the offending event\n",
            i.id,
            i.app,
            i.function,
            i.version_id.as_deref().unwrap_or("unknown"),
            i.detector,
            i.severity,
            i.summary,
            status(i),
            i.opened_ms - i.offending_ms,
        );
        match i.responded_ms {
            Some(at) => text.push_str(&format!(
                "  responded  {} ms after it opened\n",
                at - i.opened_ms
            )),
            None => text.push_str("  responded  no action in force\n"),
        }
        if let Some(by) = &i.resolved_by {
            text.push_str(&format!(
                "  resolved   by {by}{}\n",
                i.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            ));
        }
        text.push_str("actions:\n");
        for a in &i.actions {
            text.push_str(&format!(
                "  +{:>5} ms  {:<13} {:<8} {}\n",
                a.at_ms - i.opened_ms,
                a.action,
                a.outcome,
                a.detail
            ));
        }
        text.push_str("evidence:\n");
        for row in &detail.evidence {
            text.push_str(&format!("  #{} {}\n", row.id, row.event));
        }
        text.trim_end().to_string()
    });
    Ok(())
}

pub async fn release(
    target_name: &str,
    function: Option<&str>,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    let (app, function) = match (target_name.split_once('/'), function) {
        (Some((app, function)), None) if !app.is_empty() && !function.is_empty() => {
            (app.to_string(), function.to_string())
        }
        (None, Some(function)) => (target_name.to_string(), function.to_string()),
        _ => {
            return Err(Failure::new(
                Code::Refused,
                format!(
                    "name the function as `APP/FUNCTION` or `APP FUNCTION`, not `{target_name}{}`",
                    function.map(|f| format!(" {f}")).unwrap_or_default()
                ),
            ));
        }
    };
    let released: QuarantineRecord = target
        .client()?
        .post(
            "/v1/quarantines/release",
            &ReleaseRequest {
                app: app.clone(),
                function: function.clone(),
            },
        )
        .await?;
    let value = serde_json::to_value(&released).unwrap_or_default();
    crate::output::print(json, &value, || {
        format!(
            "{app}/{function} released (it was quarantined by incident {}); resolve the incident with `zerofn incidents resolve {}`",
            released.incident_id, released.incident_id
        )
    });
    Ok(())
}

pub async fn report(target: &Target, json: bool) -> Result<(), Failure> {
    let report: LoopReport = target.client()?.get("/v1/report").await?;
    let value = serde_json::to_value(&report).unwrap_or_default();
    crate::output::print(json, &value, || report_text(&report));
    Ok(())
}

fn timing(t: &Timing) -> String {
    match (t.mean_ms, t.p99_ms) {
        (Some(mean), Some(p99)) => {
            format!("mean {mean:.1} ms, p99 {p99} ms ({} incidents)", t.count)
        }
        _ => "no data".to_string(),
    }
}

fn report_text(report: &LoopReport) -> String {
    let mut text = format!(
        "incidents          {} ({} open, {} true positive, {} false positive)\n",
        report.incidents, report.open, report.true_positives, report.false_positives
    );
    text.push_str(&format!(
        "false-positive rate {}\n",
        report
            .false_positive_rate
            .map_or("no incident resolved yet".to_string(), |r| format!(
                "{:.1}%",
                r * 100.0
            ))
    ));
    text.push_str(&format!(
        "time to detect     {}\n",
        timing(&report.time_to_detect)
    ));
    text.push_str(&format!(
        "time to respond    {}\n",
        timing(&report.time_to_respond)
    ));
    text.push_str(&format!(
        "rejected deploys   {}\n",
        report.rejected_deployments
    ));
    let join = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    text.push_str(&format!(
        "by detector        {}\n",
        join(&report.by_detector)
    ));
    text.push_str(&format!(
        "by severity        {}\n",
        join(&report.by_severity)
    ));
    text.push_str(&format!(
        "quarantined        {}\n",
        report.quarantined.len()
    ));
    for q in &report.quarantined {
        text.push_str(&format!(
            "  {}/{} by {}\n",
            q.app, q.function, q.incident_id
        ));
    }
    text.push_str("refusals by rule:\n");
    for r in &report.refusals_by_rule {
        text.push_str(&format!("  {:>7}  {:<18} {}\n", r.count, r.kind, r.rule));
    }
    text.trim_end().to_string()
}
