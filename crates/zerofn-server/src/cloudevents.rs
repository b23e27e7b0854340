//! CloudEvents 1.0 over HTTP: reading an event from a request (structured or binary content
//! mode) and writing one as a request, per the CloudEvents 1.0.2 specification, its HTTP
//! protocol binding and its JSON event format.
//!
//! Written from the specification rather than with the `cloudevents-sdk` crate: the SDK pulls
//! in a second HTTP stack, `chrono` and integrations for frameworks zerofn does not use, while
//! the platform needs a few hundred lines: the four required attributes, the optional ones, the
//! extension naming rule, the two content modes and percent-encoding of header values. Parsing
//! is strict (hostile input is refused with a rule, never repaired) and never recursive beyond
//! the JSON depth the caller allows.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use std::collections::BTreeMap;

/// The only `specversion` accepted.
pub const SPEC_VERSION: &str = "1.0";
/// The media type of an event in structured mode, JSON format.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// The media type of a batch of events (not accepted).
const BATCH_JSON: &str = "application/cloudevents-batch+json";
/// The prefix of binary-mode attribute headers.
const HEADER_PREFIX: &str = "ce-";
/// Extension attribute names the specification recommends at most.
const MAX_NAME_LEN: usize = 20;
/// The JSON nesting a structured event's envelope may have beyond its `data`.
const ENVELOPE_DEPTH: u32 = 2;

/// How an event travels in an HTTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole event as `application/cloudevents+json`.
    Structured,
    /// Attributes in `ce-*` headers, `data` as the body, `datacontenttype` as `Content-Type`.
    Binary,
}

/// One CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    /// `id`: non-empty; unique per `source`.
    pub id: String,
    /// `source`: a non-empty URI-reference.
    pub source: String,
    /// `type`: non-empty, e.g. `dev.zerofn.schedule.tick`.
    pub ty: String,
    /// `datacontenttype`: the media type of `data`.
    pub datacontenttype: Option<String>,
    /// `dataschema`: a URI.
    pub dataschema: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `time`: an RFC 3339 timestamp.
    pub time: Option<String>,
    /// Extension attributes, by name, in their string form.
    pub extensions: BTreeMap<String, String>,
    /// `data` as bytes: JSON text when it came as JSON, the decoded bytes of `data_base64`, or
    /// a binary-mode body.
    pub data: Option<Bytes>,
}

/// Why a message is not a valid CloudEvent. Each has a stable rule id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the required attribute `{0}` is missing")]
    MissingAttribute(&'static str),
    #[error("the attribute `{0}` must be a non-empty string")]
    InvalidAttribute(String),
    #[error("`specversion` is `{0}`; only `1.0` is accepted")]
    WrongSpecVersion(String),
    #[error(
        "`{0}` is not a valid attribute name: names are 1 to 20 lowercase ASCII letters and digits"
    )]
    BadAttributeName(String),
    #[error("the header `{0}` is not valid UTF-8 after percent-decoding")]
    NotUtf8Header(String),
    #[error("the attribute `{0}` appears twice")]
    DuplicateAttribute(String),
    #[error("the event is not a JSON object in the CloudEvents JSON format: {0}")]
    Malformed(String),
    #[error("batched events (`{BATCH_JSON}`) are not accepted; send one event per request")]
    Batch,
    #[error(
        "the request carries no event: no `ce-specversion` header and no `{STRUCTURED_JSON}` body"
    )]
    NotAnEvent,
}

impl EventError {
    /// The rule id, for problem details and the audit stream.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::MissingAttribute(_) => "event-attribute-missing",
            Self::InvalidAttribute(_) => "event-attribute-invalid",
            Self::WrongSpecVersion(_) => "event-specversion-unsupported",
            Self::BadAttributeName(_) => "event-attribute-name-invalid",
            Self::NotUtf8Header(_) => "event-header-not-utf8",
            Self::DuplicateAttribute(_) => "event-attribute-duplicate",
            Self::Malformed(_) => "event-malformed",
            Self::Batch => "event-batch-unsupported",
            Self::NotAnEvent => "event-missing",
        }
    }
}

impl CloudEvent {
    /// A new event with the required attributes and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// The media type of `data`: `datacontenttype`, or `application/json` when it is absent
    /// (the JSON event format's default).
    pub fn data_media_type(&self) -> &str {
        self.datacontenttype
            .as_deref()
            .unwrap_or("application/json")
    }

    /// Reads the event a request carries: structured mode when its `Content-Type` is
    /// `application/cloudevents+json` (the body is first scanned for nesting deeper than
    /// `max_data_depth` plus the envelope, before any parser runs), binary mode when it has a
    /// `ce-specversion` header.
    pub fn from_http(
        headers: &HeaderMap,
        body: Bytes,
        max_data_depth: u32,
    ) -> Result<Self, EventError> {
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::input::parse_media_type)
            .map(|(media_type, _)| media_type);
        match media_type.as_deref() {
            Some(STRUCTURED_JSON) => Self::from_structured(&body, max_data_depth),
            Some(BATCH_JSON) => Err(EventError::Batch),
            _ if headers.contains_key("ce-specversion") => Self::from_binary(headers, body),
            _ => Err(EventError::NotAnEvent),
        }
    }

    /// Reads an event in the JSON event format.
    pub fn from_structured(json: &[u8], max_data_depth: u32) -> Result<Self, EventError> {
        let text = std::str::from_utf8(json)
            .map_err(|_| EventError::Malformed("the body is not UTF-8".into()))?;
        if crate::input::depth_exceeded(
            text.as_bytes(),
            max_data_depth.saturating_add(ENVELOPE_DEPTH),
        )
        .is_some()
        {
            return Err(EventError::Malformed(format!(
                "nested deeper than {max_data_depth} levels"
            )));
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            EventError::Malformed(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let serde_json::Value::Object(members) = value else {
            return Err(EventError::Malformed("not a JSON object".into()));
        };
        let mut event = Self::new("", "", "");
        let mut seen = Seen::default();
        let mut data = None;
        let mut data_base64 = None;
        for (name, value) in members {
            match name.as_str() {
                "data" => data = Some(value),
                "data_base64" => data_base64 = Some(value),
                _ => {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Bool(b) => b.to_string(),
                        serde_json::Value::Number(n) if n.is_i64() => n.to_string(),
                        _ => return Err(EventError::InvalidAttribute(name)),
                    };
                    event.set(&name, text, &mut seen)?;
                }
            }
        }
        event.data = match (data, data_base64) {
            (Some(_), Some(_)) => {
                return Err(EventError::Malformed(
                    "both `data` and `data_base64` are present".into(),
                ));
            }
            (Some(serde_json::Value::Null), None) | (None, None) => None,
            // JSON data of a non-JSON media type is a string holding the data itself.
            (Some(serde_json::Value::String(s)), None)
                if !crate::input::is_json_media_type(event.data_media_type()) =>
            {
                Some(Bytes::from(s))
            }
            (Some(value), None) => Some(Bytes::from(value.to_string())),
            (None, Some(serde_json::Value::String(encoded))) => Some(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|_| EventError::Malformed("`data_base64` is not base64".into()))?,
            )),
            (None, Some(_)) => {
                return Err(EventError::Malformed(
                    "`data_base64` is not a string".into(),
                ));
            }
        };
        seen.finish(&event)?;
        Ok(event)
    }

    /// Reads an event in binary mode: `ce-*` headers (values percent-decoded, UTF-8), the body
    /// as `data` and `Content-Type` as `datacontenttype`.
    pub fn from_binary(headers: &HeaderMap, body: Bytes) -> Result<Self, EventError> {
        let mut event = Self::new("", "", "");
        let mut seen = Seen::default();
        for (name, value) in headers {
            let Some(attribute) = name.as_str().strip_prefix(HEADER_PREFIX) else {
                continue;
            };
            if attribute == "datacontenttype" {
                // In binary mode the media type is the `Content-Type` header, never a ce- one.
                return Err(EventError::BadAttributeName(name.as_str().to_string()));
            }
            let decoded = percent_decode(value.as_bytes())
                .ok_or_else(|| EventError::NotUtf8Header(name.as_str().to_string()))?;
            event.set(attribute, decoded, &mut seen)?;
        }
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let text = std::str::from_utf8(content_type.as_bytes())
                .map_err(|_| EventError::NotUtf8Header("content-type".into()))?;
            event.datacontenttype = Some(text.to_string());
        }
        event.data = (!body.is_empty()).then_some(body);
        seen.finish(&event)?;
        Ok(event)
    }

    /// The event as an HTTP request to `uri` (`POST`), in `mode`.
    pub fn to_http(&self, mode: Mode, uri: &str) -> Result<http::Request<Bytes>, http::Error> {
        let builder = http::Request::builder().method(http::Method::POST).uri(uri);
        match mode {
            Mode::Structured => builder
                .header(header::CONTENT_TYPE, STRUCTURED_JSON)
                .body(Bytes::from(self.to_json().to_string())),
            Mode::Binary => {
                let mut builder = builder;
                for (name, value) in self.attributes() {
                    if name == "datacontenttype" {
                        continue;
                    }
                    builder =
                        builder.header(format!("{HEADER_PREFIX}{name}"), percent_encode(value));
                }
                if let Some(media_type) = &self.datacontenttype {
                    builder = builder.header(header::CONTENT_TYPE, media_type.as_str());
                }
                builder.body(self.data.clone().unwrap_or_default())
            }
        }
    }

    /// The event in the JSON event format.
    pub fn to_json(&self) -> serde_json::Value {
        let mut members = serde_json::Map::new();
        for (name, value) in self.attributes() {
            members.insert(name.to_string(), value.into());
        }
        if let Some(data) = &self.data {
            if crate::input::is_json_media_type(self.data_media_type())
                && let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
            {
                members.insert("data".into(), value);
            } else if let Ok(text) = std::str::from_utf8(data)
                && self.data_media_type().starts_with("text/")
            {
                members.insert("data".into(), text.into());
            } else {
                members.insert(
                    "data_base64".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(data)
                        .into(),
                );
            }
        }
        serde_json::Value::Object(members)
    }

    /// Every attribute that is set, by name (`specversion` included).
    pub fn attributes(&self) -> Vec<(&str, &str)> {
        let mut attributes = vec![
            ("specversion", SPEC_VERSION),
            ("id", self.id.as_str()),
            ("source", self.source.as_str()),
            ("type", self.ty.as_str()),
        ];
        let optional = [
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
            ("subject", &self.subject),
            ("time", &self.time),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                attributes.push((name, value.as_str()));
            }
        }
        attributes.extend(
            self.extensions
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        attributes
    }

    fn set(&mut self, name: &str, value: String, seen: &mut Seen) -> Result<(), EventError> {
        if !valid_name(name) {
            return Err(EventError::BadAttributeName(name.to_string()));
        }
        if !seen.names.insert(name.to_string()) {
            return Err(EventError::DuplicateAttribute(name.to_string()));
        }
        match name {
            "specversion" => seen.specversion = Some(value),
            "id" => self.id = value,
            "source" => self.source = value,
            "type" => self.ty = value,
            "datacontenttype" => self.datacontenttype = Some(value),
            "dataschema" => self.dataschema = Some(value),
            "subject" => self.subject = Some(value),
            "time" => {
                if !is_rfc3339(&value) {
                    return Err(EventError::InvalidAttribute("time".into()));
                }
                self.time = Some(value);
            }
            _ => {
                self.extensions.insert(name.to_string(), value);
            }
        }
        Ok(())
    }
}

/// What a parse has seen, to check the required attributes at the end.
#[derive(Default)]
struct Seen {
    names: std::collections::BTreeSet<String>,
    specversion: Option<String>,
}

impl Seen {
    fn finish(self, event: &CloudEvent) -> Result<(), EventError> {
        match self.specversion.as_deref() {
            None => return Err(EventError::MissingAttribute("specversion")),
            Some(SPEC_VERSION) => {}
            Some(other) => return Err(EventError::WrongSpecVersion(other.to_string())),
        }
        for (name, value) in [
            ("id", &event.id),
            ("source", &event.source),
            ("type", &event.ty),
        ] {
            if !self.names.contains(name) {
                return Err(EventError::MissingAttribute(name));
            }
            if value.is_empty() {
                return Err(EventError::InvalidAttribute(name.to_string()));
            }
        }
        Ok(())
    }
}

/// Attribute names: lowercase ASCII letters and digits (CloudEvents 1.0 §3.1.1), at most the
/// recommended 20 characters, and not the JSON format's reserved `data` members.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name != "data"
}

/// An RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, shape only.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Decodes `%XX` escapes (HTTP binding §3.1.3.2) and requires UTF-8.
fn percent_decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes what a header value may not carry as is: space, `"`, `%`, and everything outside
/// printable ASCII (HTTP binding §3.1.3.2).
fn percent_encode(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    // Only printable ASCII is left, which is always a valid header value.
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    const BINARY: &[(&str, &[u8])] = &[
        ("ce-specversion", b"1.0"),
        ("ce-id", b"A234-1234-1234"),
        ("ce-source", b"/orders/eu"),
        ("ce-type", b"com.example.order.created"),
        ("ce-time", b"2018-04-05T17:31:00Z"),
        ("ce-tenant", b"acme%20corp"),
        ("content-type", b"application/json"),
    ];

    #[test]
    fn structured_mode_reads_attributes_extensions_and_data() {
        let body = br#"{"specversion":"1.0","id":"1","source":"/orders","type":"order.created",
            "datacontenttype":"application/json","priority":3,"urgent":true,"data":{"qty":2}}"#;
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
        );
        let event = CloudEvent::from_http(&h, Bytes::from_static(body), 8).unwrap();
        assert_eq!(
            (event.id.as_str(), event.ty.as_str()),
            ("1", "order.created")
        );
        assert_eq!(event.extensions["priority"], "3");
        assert_eq!(event.extensions["urgent"], "true");
        assert_eq!(event.data.as_deref(), Some(&br#"{"qty":2}"#[..]));

        let base64 = br#"{"specversion":"1.0","id":"2","source":"s","type":"t",
            "datacontenttype":"application/octet-stream","data_base64":"AAEC"}"#;
        let event = CloudEvent::from_structured(base64, 8).unwrap();
        assert_eq!(event.data.as_deref(), Some(&[0u8, 1, 2][..]));
    }

    #[test]
    fn binary_mode_reads_headers_and_round_trips() {
        let event =
            CloudEvent::from_http(&headers(BINARY), Bytes::from_static(b"{\"qty\":2}"), 8).unwrap();
        assert_eq!(event.source, "/orders/eu");
        assert_eq!(event.extensions["tenant"], "acme corp");
        assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(event.time.as_deref(), Some("2018-04-05T17:31:00Z"));

        for mode in [Mode::Binary, Mode::Structured] {
            let request = event.to_http(mode, "/").unwrap();
            let (parts, body) = request.into_parts();
            let again = CloudEvent::from_http(&parts.headers, body, 8).unwrap();
            assert_eq!(again, event, "{mode:?}");
        }
        let binary = event.to_http(Mode::Binary, "/").unwrap();
        assert_eq!(binary.headers()["ce-tenant"], "acme%20corp");
        assert_eq!(binary.headers()["content-type"], "application/json");
    }

    #[test]
    fn malformed_events_are_refused_by_rule() {
        let structured = |json: &str| {
            CloudEvent::from_structured(json.as_bytes(), 8)
                .unwrap_err()
                .rule()
        };
        assert_eq!(
            structured(r#"{"specversion":"1.0","source":"s","type":"t"}"#),
            "event-attribute-missing"
        );
        assert_eq!(
            structured(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#),
            "event-specversion-unsupported"
        );
        assert_eq!(
            structured(r#"{"id":"1","source":"s","type":"t"}"#),
            "event-attribute-missing"
        );
        assert_eq!(
            structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","Bad_Name":"x"}"#),
            "event-attribute-name-invalid"
        );
        assert_eq!(
            structured(
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","waytoolongextensionname1":"x"}"#
            ),
            "event-attribute-name-invalid"
        );
        assert_eq!(
            structured(r#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#),
            "event-attribute-invalid"
        );
        assert_eq!(
            structured(r#"{"specversion":"1.0","id":{"x":1},"source":"s","type":"t"}"#),
            "event-attribute-invalid"
        );
        assert_eq!(
            structured(
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}"#
            ),
            "event-attribute-invalid"
        );
        assert_eq!(
            structured(
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}"#
            ),
            "event-malformed"
        );
        assert_eq!(structured("[1]"), "event-malformed");
        let deep = format!(
            r#"{{"specversion":"1.0","id":"1","source":"s","type":"t","data":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(structured(&deep), "event-malformed");

        let binary = |extra: &[(&str, &[u8])], drop: &str| {
            let mut pairs: Vec<(&str, &[u8])> =
                BINARY.iter().copied().filter(|(n, _)| *n != drop).collect();
            pairs.extend_from_slice(extra);
            CloudEvent::from_http(&headers(&pairs), Bytes::new(), 8)
                .unwrap_err()
                .rule()
        };
        assert_eq!(binary(&[], "ce-id"), "event-attribute-missing");
        assert_eq!(
            binary(&[("ce-bad-name", b"x")], ""),
            "event-attribute-name-invalid"
        );
        assert_eq!(
            binary(&[("ce-note", b"caf\xc3")], ""),
            "event-header-not-utf8"
        );
        assert_eq!(
            binary(&[("ce-note", b"caf%C3")], ""),
            "event-header-not-utf8"
        );
        assert_eq!(binary(&[("ce-note", b"%G1")], ""), "event-header-not-utf8");
        assert_eq!(
            binary(&[("ce-id", b"again")], ""),
            "event-attribute-duplicate"
        );
        assert_eq!(
            binary(&[("ce-datacontenttype", b"text/plain")], ""),
            "event-attribute-name-invalid"
        );
        assert_eq!(
            CloudEvent::from_http(&HeaderMap::new(), Bytes::new(), 8)
                .unwrap_err()
                .rule(),
            "event-missing"
        );
    }
}
