//! The input guard: what a request body (or an event's `data`) must look like before a
//! function's code sees it, per the function's `[functions.<name>.input]`.
//!
//! A function that declares `input` gets its body read by the platform, never more than its
//! cap, and checked in this order before any sandbox exists: media type (415), size (413, also
//! for chunked bodies without `Content-Length`), then for JSON: UTF-8, nesting depth by a flat
//! scan before any parser runs, well-formedness, and the JSON Schema (all 400). Each refusal is
//! a problem-details response naming its rule; schema violations list the instance location
//! (a JSON pointer), the schema location and the keyword of each error, capped.
//!
//! Schemas are JSON Schema 2020-12, compiled once at install. Nothing is fetched: an external
//! `$ref` (or a `$schema` other than 2020-12) is an admission refusal, as is a schema that does
//! not compile.

use crate::problem::Problem;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use zerofn_manifest::{AttachedFiles, InputSpec};

/// The most schema errors one refusal lists; the rest are counted.
pub const MAX_REPORTED_ERRORS: usize = 10;
/// The longest error message a refusal carries.
const MAX_MESSAGE_CHARS: usize = 200;
/// The one dialect accepted in `$schema`.
const DIALECT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A function's compiled `input` checks.
pub struct InputGuard {
    /// Accepted media types, lowercase, without parameters; empty means any.
    content_types: Vec<String>,
    max_body_bytes: u64,
    max_json_depth: u32,
    /// The body must be JSON whatever its media type says: a schema describes JSON.
    schema: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for InputGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputGuard")
            .field("content_types", &self.content_types)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_json_depth", &self.max_json_depth)
            .field("schema", &self.schema.is_some())
            .finish()
    }
}

/// Why a schema cannot be installed: an admission finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRefusal {
    /// `input-schema-invalid` or `input-schema-external-ref`.
    pub rule: &'static str,
    pub message: String,
}

impl InputGuard {
    /// Compiles `spec`, reading its schema from `files` (the deploy's attached files).
    /// `max_request_body_bytes` is the function's limit, the body cap when `input` sets none.
    pub fn compile(
        spec: &InputSpec,
        files: &AttachedFiles,
        max_request_body_bytes: u64,
    ) -> Result<Self, SchemaRefusal> {
        let schema = match &spec.schema_file {
            Some(file) => {
                let bytes = files.get(file).ok_or_else(|| SchemaRefusal {
                    rule: "input-schema-invalid",
                    message: format!("the schema file `{file}` was not sent with the deploy"),
                })?;
                Some(compile_schema(bytes)?)
            }
            None => None,
        };
        Ok(Self {
            content_types: spec.accepted_content_types(),
            max_body_bytes: spec
                .max_body_bytes
                .unwrap_or(max_request_body_bytes)
                .min(max_request_body_bytes),
            max_json_depth: spec.json_depth(),
            schema,
        })
    }

    /// The largest body accepted.
    pub fn max_json_depth(&self) -> u32 {
        self.max_json_depth
    }

    /// The largest body accepted, in bytes.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// Reads `request`'s body (at most the cap, by `deadline`) and checks it. Returns the
    /// request with its body buffered, or the refusal for `function`.
    pub async fn check_request<B>(
        &self,
        function: &str,
        request: hyper::Request<B>,
        deadline: tokio::time::Instant,
    ) -> Result<hyper::Request<Bytes>, Problem>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<zerofn_runtime::BodyError>,
    {
        let content_type = self.check_content_type(
            function,
            request.method(),
            request.headers().get(http::header::CONTENT_TYPE),
        )?;
        if let Some(length) = declared_length(request.headers())
            && length > self.max_body_bytes
        {
            return Err(self.too_large(function, Some(length)));
        }
        let (parts, body) = request.into_parts();
        let bytes = match tokio::time::timeout_at(deadline, read_capped(body, self.max_body_bytes))
            .await
        {
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "input-body-timeout",
                    "Request body too slow",
                    format!(
                        "The body of the request to `{function}` did not arrive within the function's time limit (`limits.timeout_ms`)."
                    ),
                ));
            }
            Ok(Err(ReadError::TooLarge)) => return Err(self.too_large(function, None)),
            Ok(Err(ReadError::Body(error))) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "input-body-unreadable",
                    "Request body unreadable",
                    format!("The request body could not be read: {error}."),
                ));
            }
            Ok(Ok(bytes)) => bytes,
        };
        if content_type.is_some() || !bytes.is_empty() {
            self.check_data(function, content_type.as_deref(), &bytes)?;
        }
        Ok(hyper::Request::from_parts(parts, bytes))
    }

    /// Checks a CloudEvent's `data` exactly as a request body: its `datacontenttype` (the JSON
    /// format's default `application/json` when absent) against the accepted media types, then
    /// size, encoding, depth and schema. An event without data passes like a bodiless request.
    pub fn check_event(
        &self,
        function: &str,
        event: &crate::cloudevents::CloudEvent,
    ) -> Result<(), Problem> {
        let Some(data) = &event.data else {
            return Ok(());
        };
        let header = http::HeaderValue::from_str(event.data_media_type()).ok();
        let media_type = match header {
            Some(header) => {
                self.check_content_type(function, &http::Method::POST, Some(&header))?
            }
            None => self.check_content_type(function, &http::Method::POST, None)?,
        };
        self.check_data(function, media_type.as_deref(), data)
    }

    /// Checks a complete body (a request's, or an event's `data`) whose media type is
    /// `content_type` (already checked against the accepted ones).
    pub fn check_data(
        &self,
        function: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), Problem> {
        if body.len() as u64 > self.max_body_bytes {
            return Err(self.too_large(function, Some(body.len() as u64)));
        }
        let is_json = self.schema.is_some() || content_type.is_some_and(is_json_media_type);
        if !is_json {
            return Ok(());
        }
        let text = std::str::from_utf8(body).map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "input-not-utf8",
                "Body is not UTF-8",
                format!(
                    "JSON must be UTF-8 (RFC 8259); byte {} of the body is not.",
                    error.valid_up_to()
                ),
            )
            .with("offset", error.valid_up_to())
        })?;
        if let Some(offset) = depth_exceeded(text.as_bytes(), self.max_json_depth) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "input-too-deep",
                "JSON nested too deep",
                format!(
                    "Function `{function}` accepts JSON nested at most {} levels deep (manifest field `input.max_json_depth`); the body goes deeper at byte {offset}.",
                    self.max_json_depth
                ),
            )
            .with("limit", self.max_json_depth)
            .with("offset", offset));
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "input-malformed-json",
                "Body is not JSON",
                format!(
                    "The body is not well-formed JSON: {} at line {}, column {}.",
                    error_class(&error),
                    error.line(),
                    error.column()
                ),
            )
        })?;
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let mut errors = Vec::new();
        let mut total = 0usize;
        for error in schema.iter_errors(&value) {
            total += 1;
            if errors.len() < MAX_REPORTED_ERRORS {
                errors.push(serde_json::json!({
                    "instance": error.instance_path().as_str(),
                    "schema": error.schema_path().as_str(),
                    "keyword": error.kind().keyword(),
                    "message": truncate(&error.masked().to_string(), MAX_MESSAGE_CHARS),
                }));
            }
        }
        if total == 0 {
            return Ok(());
        }
        let first = errors
            .first()
            .and_then(|e| e.get("instance"))
            .and_then(|p| p.as_str())
            .unwrap_or_default();
        let first = if first.is_empty() { "/" } else { first };
        Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "input-schema-violation",
            "Body does not match the schema",
            format!(
                "The body breaks {total} rule{} of the input schema of `{function}` (manifest field `input.schema`), first at `{first}`.",
                if total == 1 { "" } else { "s" }
            ),
        )
        .with("errors", errors)
        .with("error_count", total))
    }

    /// The request's media type if it may be sent to the function. A request without a body
    /// (no `Content-Type`, a method that carries no content) passes: there is nothing to check.
    fn check_content_type(
        &self,
        function: &str,
        method: &http::Method,
        header: Option<&http::HeaderValue>,
    ) -> Result<Option<String>, Problem> {
        let refuse = |sent: &str| {
            let accepted = if self.content_types.is_empty() {
                "any media type".to_string()
            } else {
                self.content_types.join(", ")
            };
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "input-unsupported-media-type",
                "Unsupported media type",
                format!(
                    "Function `{function}` accepts {accepted} (manifest field `input.content_types`), not {sent}."
                ),
            )
            .with("accept", self.content_types.clone())
        };
        let Some(header) = header else {
            let bodiless = matches!(
                *method,
                http::Method::GET
                    | http::Method::HEAD
                    | http::Method::DELETE
                    | http::Method::OPTIONS
            );
            if bodiless || self.content_types.is_empty() {
                return Ok(None);
            }
            return Err(refuse("a request without Content-Type"));
        };
        let Some((media_type, charset_ok)) = header.to_str().ok().and_then(parse_media_type) else {
            return Err(refuse("an unreadable Content-Type"));
        };
        if !charset_ok {
            return Err(refuse(&format!(
                "`{media_type}` in a charset other than UTF-8"
            )));
        }
        if !self.content_types.is_empty() && !self.content_types.contains(&media_type) {
            return Err(refuse(&format!("`{media_type}`")));
        }
        Ok(Some(media_type))
    }

    fn too_large(&self, function: &str, length: Option<u64>) -> Problem {
        let size = match length {
            Some(length) => format!("The body is {length} bytes"),
            None => "The body is larger than that".to_string(),
        };
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "input-body-too-large",
            "Request body too large",
            format!(
                "Function `{function}` accepts bodies of at most {} bytes (manifest field `input.max_body_bytes`, else `limits.max_request_body_bytes`). {size}.",
                self.max_body_bytes
            ),
        )
        .with("limit", self.max_body_bytes)
    }
}

/// Compiles a JSON Schema 2020-12 document, fetching nothing.
pub fn compile_schema(bytes: &[u8]) -> Result<jsonschema::Validator, SchemaRefusal> {
    let invalid = |message: String| SchemaRefusal {
        rule: "input-schema-invalid",
        message,
    };
    let schema: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|error| invalid(format!("the schema is not JSON: {error}")))?;
    if let Some(dialect) = schema.get("$schema") {
        let dialect = dialect.as_str().unwrap_or_default();
        if dialect.trim_end_matches('#') != DIALECT_2020_12 {
            return Err(invalid(format!(
                "`$schema` is `{dialect}`; zerofn validates with JSON Schema 2020-12 only (`{DIALECT_2020_12}`)"
            )));
        }
    }
    let refused = Arc::new(Mutex::new(Vec::new()));
    let built = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_retriever(RefuseRetrieval(refused.clone()))
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(&schema);
    let asked: Vec<String> = refused
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    match built {
        Ok(validator) => Ok(validator),
        Err(_) if !asked.is_empty() => Err(SchemaRefusal {
            rule: "input-schema-external-ref",
            message: format!(
                "the schema refers to {}, outside the schema file; the platform fetches nothing",
                asked.join(", ")
            ),
        }),
        Err(error) => Err(invalid(format!(
            "the schema does not compile: {} (at `{}`)",
            truncate(&error.to_string(), MAX_MESSAGE_CHARS),
            error.schema_path().as_str()
        ))),
    }
}

/// Records every URI the compiler asks for and refuses it: schemas are self-contained.
struct RefuseRetrieval(Arc<Mutex<Vec<String>>>);

impl jsonschema::Retrieve for RefuseRetrieval {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(format!("`{uri}`"));
        Err(format!("external reference `{uri}` refused").into())
    }
}

/// Where `json` first nests deeper than `max` arrays and objects (its byte offset), if it
/// does. One pass, no recursion and no allocation, so that a document nested 100 000 deep costs
/// a scan and nothing else; brackets inside strings (with escapes) do not count. Malformed
/// input is not judged here: the parser does that next.
pub fn depth_exceeded(json: &[u8], max: u32) -> Option<usize> {
    let mut depth: u32 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, byte) in json.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if *byte == b'\\' {
                escaped = true;
            } else if *byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(offset);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Whether a media type (lowercase, no parameters) is JSON: `application/json` or `*/*+json`.
pub fn is_json_media_type(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// `type/subtype` lowercased, and whether any `charset` parameter is UTF-8; `None` when the
/// value is not a media type.
pub fn parse_media_type(value: &str) -> Option<(String, bool)> {
    let mut parts = value.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    let (kind, sub) = media_type.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !token(kind) || !token(sub) {
        return None;
    }
    let mut charset_ok = true;
    for parameter in parts {
        let (name, value) = parameter.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"');
            charset_ok = value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8");
        }
    }
    Some((media_type, charset_ok))
}

enum ReadError {
    TooLarge,
    Body(String),
}

/// The whole body, or `TooLarge` as soon as it passes `cap`: never more than `cap` bytes (plus
/// the one frame that crossed it) are held.
async fn read_capped<B>(body: B, cap: u64) -> Result<Bytes, ReadError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<zerofn_runtime::BodyError>,
{
    let mut body = std::pin::pin!(body);
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| ReadError::Body(error.into().to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() as u64 + data.len() as u64 > cap {
                return Err(ReadError::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The parser's error class without the text it quotes (which is the caller's input).
fn error_class(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "invalid data",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(schema: Option<&str>, spec: impl FnOnce(&mut InputSpec)) -> InputGuard {
        let mut files = AttachedFiles::new();
        let mut input = InputSpec {
            schema: None,
            schema_file: None,
            content_types: Vec::new(),
            max_body_bytes: None,
            max_json_depth: None,
        };
        if let Some(schema) = schema {
            files.insert("schema.json", schema.as_bytes().to_vec());
            input.schema = Some("schema.json".into());
            input.schema_file = Some("schema.json".into());
        }
        spec(&mut input);
        InputGuard::compile(&input, &files, 1 << 20).unwrap()
    }

    #[test]
    fn event_data_is_checked_like_a_body() {
        use crate::cloudevents::CloudEvent;
        let guard = guard(Some(r#"{"type":"object","required":["qty"]}"#), |_| {});
        let mut event = CloudEvent::new("1", "/orders", "order.created");
        assert!(guard.check_event("f", &event).is_ok());
        event.data = Some(Bytes::from_static(br#"{"qty":1}"#));
        assert!(guard.check_event("f", &event).is_ok());
        event.data = Some(Bytes::from_static(br#"{"item":"x"}"#));
        assert_eq!(
            guard.check_event("f", &event).unwrap_err().code,
            "input-schema-violation"
        );
        event.datacontenttype = Some("text/plain".into());
        assert_eq!(
            guard.check_event("f", &event).unwrap_err().code,
            "input-unsupported-media-type"
        );
        event.datacontenttype = Some("application/json".into());
        event.data = Some(Bytes::from("[".repeat(100_000) + &"]".repeat(100_000)));
        assert_eq!(
            guard.check_event("f", &event).unwrap_err().code,
            "input-too-deep"
        );
    }

    #[test]
    fn depth_scan_counts_brackets_outside_strings_only() {
        assert_eq!(depth_exceeded(b"[[[]]]", 3), None);
        assert_eq!(depth_exceeded(b"[[[[]]]]", 3), Some(3));
        assert_eq!(depth_exceeded(br#"{"a":"[[[[[[","b":{"c":1}}"#, 2), None);
        assert_eq!(depth_exceeded(br#"["\"[[[[["]"#, 1), None);
        assert_eq!(depth_exceeded(br#"["\\",[[1]]]"#, 2), Some(7));
        // 100 000 levels: a scan, no recursion.
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(depth_exceeded(deep.as_bytes(), 64), Some(64));
    }

    #[test]
    fn media_types_are_compared_without_parameters() {
        assert_eq!(
            parse_media_type("Application/JSON; charset=UTF-8"),
            Some(("application/json".into(), true))
        );
        assert_eq!(
            parse_media_type("application/json; charset=latin1"),
            Some(("application/json".into(), false))
        );
        assert_eq!(parse_media_type("json"), None);
        assert_eq!(parse_media_type("text/plain; broken"), None);
        assert!(is_json_media_type("application/cloudevents+json"));
        assert!(!is_json_media_type("text/plain"));
    }

    #[test]
    fn schema_errors_name_the_instance_schema_location_and_keyword() {
        let guard = guard(
            Some(
                r#"{"type":"object","properties":{"qty":{"type":"integer"}},"required":["qty"],"additionalProperties":false}"#,
            ),
            |_| {},
        );
        assert!(
            guard
                .check_data("f", Some("application/json"), br#"{"qty":2}"#)
                .is_ok()
        );
        let problem = guard
            .check_data("f", Some("application/json"), br#"{"qty":"2","x":1}"#)
            .unwrap_err();
        assert_eq!(problem.code, "input-schema-violation");
        let json = problem.to_json();
        let errors = json["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "{json}");
        let qty = errors.iter().find(|e| e["keyword"] == "type").unwrap();
        assert_eq!(qty["instance"], "/qty");
        assert_eq!(qty["schema"], "/properties/qty/type");
        assert!(
            errors
                .iter()
                .any(|e| e["keyword"] == "additionalProperties")
        );
    }

    #[test]
    fn many_schema_errors_are_capped_and_counted() {
        let guard = guard(
            Some(r#"{"type":"array","items":{"type":"string"}}"#),
            |_| {},
        );
        let body = format!("[{}]", vec!["1"; 50].join(","));
        let json = guard
            .check_data("f", None, body.as_bytes())
            .unwrap_err()
            .to_json();
        assert_eq!(
            json["errors"].as_array().unwrap().len(),
            MAX_REPORTED_ERRORS
        );
        assert_eq!(json["error_count"], 50);
    }

    #[test]
    fn hostile_bodies_are_refused_by_rule() {
        let guard = guard(Some(r#"{"type":"object"}"#), |i| i.max_json_depth = Some(4));
        let code = |body: &[u8]| {
            guard
                .check_data("f", Some("application/json"), body)
                .unwrap_err()
                .code
        };
        assert_eq!(code(b"{\"a\":\"\xff\"}"), "input-not-utf8");
        assert_eq!(code(b"[[[[[1]]]]]"), "input-too-deep");
        assert_eq!(code(b"{\"a\":"), "input-malformed-json");
        assert_eq!(code(b"[]"), "input-schema-violation");
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(code(deep.as_bytes()), "input-too-deep");
    }

    #[test]
    fn schemas_that_fetch_or_do_not_compile_are_refused_by_rule() {
        let refuse = |schema: &str| compile_schema(schema.as_bytes()).unwrap_err();
        let external = refuse(r#"{"$ref":"https://example.com/order.json"}"#);
        assert_eq!(external.rule, "input-schema-external-ref", "{external:?}");
        assert!(external.message.contains("https://example.com/order.json"));
        assert_eq!(
            refuse(r#"{"properties":{"a":{"$ref":"file:///etc/passwd"}}}"#).rule,
            "input-schema-external-ref"
        );
        assert_eq!(refuse(r#"{"type":"integre"}"#).rule, "input-schema-invalid");
        assert_eq!(refuse("not json").rule, "input-schema-invalid");
        assert_eq!(
            refuse(r#"{"$schema":"http://json-schema.org/draft-07/schema#"}"#).rule,
            "input-schema-invalid"
        );
        assert_eq!(
            refuse(r#"{"format":"no-such-format"}"#).rule,
            "input-schema-invalid"
        );
        // Internal references resolve without fetching.
        assert!(
            compile_schema(
                br##"{"$defs":{"q":{"type":"integer"}},"properties":{"qty":{"$ref":"#/$defs/q"}}}"##
            )
            .is_ok()
        );
    }
}
