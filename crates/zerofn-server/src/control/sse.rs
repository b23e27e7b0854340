//! Reading server-sent events (the WHATWG `text/event-stream` format) on the client side: what
//! `zerofn audit tail --follow` reads from `GET /v1/audit/stream`.

use super::ControlError;
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The longest line accepted from a server: an audit event is far smaller, and a stream that
/// never ends its line must not take the client's memory.
pub const MAX_LINE: usize = 4 << 20;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field (the audit event's id), if the message had one.
    pub id: Option<String>,
    /// The `event:` field; `message` when absent, as the format says.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// The events of one response body, in order.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    buffer: BytesMut,
    parser: Parser,
    ended: bool,
}

impl EventStream {
    pub(super) fn new(body: Incoming) -> Self {
        Self {
            body,
            buffer: BytesMut::new(),
            parser: Parser::default(),
            ended: false,
        }
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ControlError> {
        loop {
            while let Some(line) = take_line(&mut self.buffer, self.ended) {
                if let Some(event) = self.parser.line(&line) {
                    return Ok(Some(event));
                }
            }
            if self.ended {
                return Ok(None);
            }
            if self.buffer.len() > MAX_LINE {
                return Err(ControlError::Transport(format!(
                    "the event stream sent a line longer than {MAX_LINE} bytes"
                )));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => return Err(ControlError::Transport(error.to_string())),
                None => self.ended = true,
            }
        }
    }
}

/// Takes one line (without its `\n`, `\r\n` or `\r`) off the front of `buffer`. At the end
/// of the body, what is left is the last line.
fn take_line(buffer: &mut BytesMut, ended: bool) -> Option<Vec<u8>> {
    let end = buffer.iter().position(|&b| b == b'\n' || b == b'\r');
    match end {
        // A `\r` last in the buffer may be the first half of `\r\n`: wait for more.
        Some(i) if buffer[i] == b'\r' && i + 1 == buffer.len() && !ended => None,
        Some(i) => {
            let line = buffer[..i].to_vec();
            let skip = if buffer[i] == b'\r' && buffer.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            buffer.advance(i + skip);
            Some(line)
        }
        None if ended && !buffer.is_empty() => {
            let line = buffer.to_vec();
            buffer.clear();
            Some(line)
        }
        None => None,
    }
}

/// The event being read: fields accumulate until a blank line dispatches them.
#[derive(Debug, Default)]
struct Parser {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl Parser {
    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let id = self.id.take();
            let event = self.event.take();
            // A block without data is no event (comments, keep-alives).
            let data = self.data.take()?;
            return Some(SseEvent {
                id,
                event: event.unwrap_or_else(|| "message".into()),
                data,
            });
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Vec<SseEvent> {
        let mut buffer = BytesMut::from(text);
        let mut parser = Parser::default();
        let mut events = Vec::new();
        while let Some(line) = take_line(&mut buffer, true) {
            events.extend(parser.line(&line));
        }
        events
    }

    #[test]
    fn reads_events_comments_and_line_endings() {
        let events = parse(
            b": open\n\nid: 7\nevent: deploy\ndata: {\"a\":1}\n\n: keep-alive\r\n\r\ndata:x\rdata: y\r\r",
        );
        assert_eq!(
            events,
            [
                SseEvent {
                    id: Some("7".into()),
                    event: "deploy".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    event: "message".into(),
                    data: "x\ny".into()
                }
            ]
        );
    }

    #[test]
    fn a_lone_carriage_return_waits_for_the_next_chunk() {
        let mut buffer = BytesMut::from(&b"data: a\r"[..]);
        assert_eq!(take_line(&mut buffer, false), None);
        buffer.extend_from_slice(b"\n");
        assert_eq!(take_line(&mut buffer, false), Some(b"data: a".to_vec()));
        assert!(buffer.is_empty());
    }
}
