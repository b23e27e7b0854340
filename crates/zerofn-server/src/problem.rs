//! RFC 9457 problem details: every refusal the platform sends says, in words and in JSON, which
//! rule refused the request and what to do about it.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::borrow::Cow;
use zerofn_runtime::ResponseBody;

/// The header that carries the invocation id on every response, success or refusal.
pub const INVOCATION_ID_HEADER: &str = "x-zerofn-invocation-id";

/// A refusal or failure, ready to become a `application/problem+json` response.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable rule id, also the last segment of the `type` URI.
    pub code: Cow<'static, str>,
    pub title: &'static str,
    pub detail: String,
    /// Extension members, in insertion order (a list rather than a map keeps `Problem` small
    /// whichever map type `serde_json` is built with).
    pub extra: Vec<(String, Value)>,
    pub retry_after_secs: Option<u32>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<Challenge>,
    /// Whether the refusal is already in the audit stream (so the adapter must not record it
    /// twice).
    pub recorded: bool,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        title: &'static str,
        detail: String,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            title,
            detail,
            extra: Vec::new(),
            retry_after_secs: None,
            challenge: None,
            recorded: false,
        }
    }

    /// Marks the refusal as already recorded in the audit stream.
    pub fn already_recorded(mut self) -> Self {
        self.recorded = true;
        self
    }

    /// Adds a member to the problem object (RFC 9457 extension members).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.retain(|(k, _)| k != key);
        self.extra.push((key.to_string(), value.into()));
        self
    }

    /// Asks the client to retry after `secs` seconds (429 and 503).
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Tells the client how to authenticate (`WWW-Authenticate`, for a 401).
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(challenge);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "type": format!("urn:zerofn:problem:{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra.iter().cloned());
        }
        body
    }

    /// The HTTP response, tagged with the invocation id.
    pub fn into_response(self, invocation_id: &str) -> hyper::Response<ResponseBody> {
        let mut problem = self.with("invocation_id", invocation_id);
        let retry_after = problem.retry_after_secs.take();
        let body = problem.to_json().to_string();
        let mut response = hyper::Response::new(full_body(body));
        *response.status_mut() = problem.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Ok(id) = HeaderValue::from_str(invocation_id) {
            headers.insert(INVOCATION_ID_HEADER, id);
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = problem.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge.as_str()),
            );
        }
        response
    }
}

/// How a 401 asks the client to authenticate (`WWW-Authenticate`, RFC 9110 §11.6.1; bearer
/// errors from RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// An API key in a header.
    ApiKey,
    /// A bearer token, none (or none readable) presented.
    Bearer,
    /// A bearer token was presented and refused.
    BearerInvalidToken,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::ApiKey => "ApiKey",
            Challenge::Bearer => "Bearer realm=\"zerofn\"",
            Challenge::BearerInvalidToken => "Bearer realm=\"zerofn\", error=\"invalid_token\"",
        }
    }
}

/// A complete body in the runtime's response body type.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
