//! `zerofn queue send` and `zerofn queue list`: events for an app's local queues, through the
//! control plane. The server judges every event (CloudEvents 1.0, then the consumer's
//! `input`); this command only assembles one from flags when no event file is given.

use super::operator::Target;
use crate::cli::QueueCommand;
use crate::exit::{Code, Failure};
use std::path::Path;
use zerofn_server::control::{QueueListing, SendEventRequest};
use zerofn_server::triggers::queue::Enqueued;

pub async fn run(command: QueueCommand, target: &Target, json: bool) -> Result<(), Failure> {
    match command {
        QueueCommand::Send {
            app,
            queue,
            event,
            ty,
            source,
            id,
            subject,
            data,
            data_type,
        } => {
            let event = match (event, ty) {
                (Some(path), _) => read_event(&path)?,
                (None, Some(ty)) => assemble(&ty, &source, id, subject, data, &data_type)?,
                (None, None) => {
                    return Err(Failure::new(
                        Code::Refused,
                        "give an event: `--event FILE` (`-` for stdin) with a CloudEvent in JSON, \
                         or `--type TYPE` (with `--data JSON`) to make one",
                    ));
                }
            };
            let enqueued: Enqueued = target
                .client()?
                .post(
                    &format!("/v1/apps/{app}/queues/{queue}"),
                    &SendEventRequest { event },
                )
                .await?;
            let value = serde_json::to_value(&enqueued).unwrap_or_default();
            crate::output::print(json, &value, || {
                format!(
                    "queued event {} as message {} on {}/{} (consumer `{}`)",
                    enqueued.event_id,
                    enqueued.message_id,
                    enqueued.app,
                    enqueued.queue,
                    enqueued.function
                )
            });
        }
        QueueCommand::List { app, queue } => {
            let listing: QueueListing = target
                .client()?
                .get(&format!("/v1/apps/{app}/queues/{queue}"))
                .await?;
            let value = serde_json::to_value(&listing).unwrap_or_default();
            crate::output::print(json, &value, || listing_text(&listing));
        }
    }
    Ok(())
}

fn listing_text(listing: &QueueListing) -> String {
    let mut text = format!(
        "{}/{}: consumer {}, {} pending, {} dead\n",
        listing.app,
        listing.queue,
        listing
            .consumer
            .as_deref()
            .map_or("none (events are refused)".to_string(), |f| format!(
                "`{f}`"
            )),
        listing.pending.len(),
        listing.dead.len()
    );
    for (state, messages) in [("pending", &listing.pending), ("dead", &listing.dead)] {
        for m in messages {
            text.push_str(&format!(
                "  {state:<8} #{:<6} event {}  attempts {}  {}\n",
                m.id,
                m.event_id,
                m.attempts,
                m.last_error.as_deref().unwrap_or("")
            ));
        }
    }
    text.trim_end().to_string()
}

/// The event file as text (`-`: stdin), unparsed: the server's parser is the one that counts.
fn read_event(path: &Path) -> Result<String, Failure> {
    let bytes = if path.as_os_str() == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)
            .map_err(|e| Failure::new(Code::Failure, format!("cannot read stdin: {e}")))?;
        buffer
    } else {
        std::fs::read(path).map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("cannot read {}: {e}", path.display()),
            )
        })?
    };
    String::from_utf8(bytes).map_err(|_| {
        Failure::new(
            Code::Refused,
            format!("{} is not UTF-8; a CloudEvent in JSON is", path.display()),
        )
    })
}

/// A structured-mode CloudEvent from flags.
fn assemble(
    ty: &str,
    source: &str,
    id: Option<String>,
    subject: Option<String>,
    data: Option<String>,
    data_type: &str,
) -> Result<String, Failure> {
    let mut event = serde_json::json!({
        "specversion": "1.0",
        "id": id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        "source": source,
        "type": ty,
    });
    if let Some(subject) = subject {
        event["subject"] = subject.into();
    }
    if let Some(data) = data {
        event["datacontenttype"] = data_type.into();
        let json_type = data_type == "application/json" || data_type.ends_with("+json");
        event["data"] = if json_type {
            serde_json::from_str(&data).map_err(|e| {
                Failure::new(
                    Code::Refused,
                    format!("`--data` is not JSON ({e}); give JSON, or another `--data-type`"),
                )
            })?
        } else {
            data.into()
        };
    }
    Ok(event.to_string())
}
