//! HTTP helpers over the raw `wasi:http` types: read a bounded body, read the query
//! string, and answer with JSON.

use std::io::{self, Read as _, Write as _};

use serde::Serialize;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

/// The request's path and query string, split at the first `?` (the query may be empty).
pub fn path_and_query(request: &IncomingRequest) -> (String, String) {
    let path_with_query = request.path_with_query().unwrap_or_default();
    match path_with_query.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (path_with_query, String::new()),
    }
}

/// The first value of `name` in a query string such as `a=1&b=2`, percent-decoded
/// (`+` stands for a space). `None` if the parameter is absent or not valid UTF-8.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key).as_deref() == Some(name) {
            percent_decode(value)
        } else {
            None
        }
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut input = s.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            byte => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is longer than the handler accepts.
    TooLarge { limit: usize },
    /// The host could not deliver the body.
    Io(io::Error),
}

/// The whole request body, refusing bodies longer than `limit` bytes. The platform bounds
/// bodies too; each handler still states what it is prepared to accept.
pub fn read_body(request: &IncomingRequest, limit: usize) -> Result<Vec<u8>, BodyError> {
    let body = request
        .consume()
        .map_err(|()| BodyError::Io(io::Error::other("body already consumed")))?;
    let stream = body
        .stream()
        .map_err(|()| BodyError::Io(io::Error::other("body stream already taken")))?;
    let mut bytes = Vec::new();
    // One byte over the limit is enough to know the body is too long.
    let limit_plus_one = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let read = stream.take(limit_plus_one).read_to_end(&mut bytes);
    // The stream is a child of the body and was dropped by `take` above.
    drop(IncomingBody::finish(body));
    read.map_err(BodyError::Io)?;
    if bytes.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Answers with `status` and `value` as JSON.
pub fn respond_json(out: ResponseOutparam, status: u16, value: &impl Serialize) {
    match serde_json::to_vec(value) {
        Ok(json) => respond(out, status, &json),
        Err(_) => respond_error(out, 500, "internal error"),
    }
}

/// Answers with `status` and `{"error": message}`.
pub fn respond_error(out: ResponseOutparam, status: u16, message: &str) {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
    }
    // Serialising a struct of one string cannot fail.
    let json = serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default();
    respond(out, status, &json);
}

/// Answers with `status` and `json`, bytes that already are JSON.
pub fn respond(out: ResponseOutparam, status: u16, json: &[u8]) {
    let Ok(headers) =
        Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
    else {
        unreachable!("a constant, valid header")
    };
    let response = OutgoingResponse::new(headers);
    // Every status the shop uses is valid.
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        unreachable!("the body of a new response is taken once")
    };
    ResponseOutparam::set(out, Ok(response));
    let Ok(mut stream) = body.write() else {
        unreachable!("the stream of a new body is taken once")
    };
    // `io::Write` waits until the host accepts the bytes (the inherent `flush` would not).
    // A failure means the client has gone; dropping the body unfinished tells the host so.
    let written = stream
        .write_all(json)
        .and_then(|()| io::Write::flush(&mut stream));
    drop(stream);
    if written.is_ok() {
        let _ = OutgoingBody::finish(body, None);
    }
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_params_are_found_and_decoded() {
        assert_eq!(query_param("sku=TEA-01", "sku").as_deref(), Some("TEA-01"));
        assert_eq!(
            query_param("a=1&sku=TEA%2D01", "sku").as_deref(),
            Some("TEA-01")
        );
        assert_eq!(query_param("a=1+2", "a").as_deref(), Some("1 2"));
        assert_eq!(query_param("skus=x", "sku"), None);
        assert_eq!(query_param("sku=%zz", "sku"), None);
        assert_eq!(query_param("sku", "sku").as_deref(), Some(""));
    }
}

/// A `GET http://{authority}{path_with_query}`: the status and up to `limit` bytes of body, or
/// why there is none. On zerofn, `<function>.<app>.fn.internal` reaches another function of
/// the app when the manifest grants `invoke` for it; the platform refuses everything else.
pub fn get(authority: &str, path_with_query: &str, limit: usize) -> Result<(u16, Vec<u8>), String> {
    send(
        &OutgoingCall {
            method: Method::Get,
            scheme: Scheme::Http,
            authority,
            path_with_query,
            headers: &[],
            body: &[],
        },
        limit,
    )
}

/// `POST url` with a JSON body and extra headers. On zerofn, an `http(s)://` URL outside the
/// platform is reached only through an `egress` grant naming it.
pub fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: usize,
) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("not an http(s) URL: {url:?}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let mut all_headers = vec![("content-type", "application/json")];
    all_headers.extend_from_slice(headers);
    send(
        &OutgoingCall {
            method: Method::Post,
            scheme,
            authority,
            path_with_query: path,
            headers: &all_headers,
            body,
        },
        limit,
    )
}

struct OutgoingCall<'a> {
    method: Method,
    scheme: Scheme,
    authority: &'a str,
    path_with_query: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

fn send(call: &OutgoingCall<'_>, limit: usize) -> Result<(u16, Vec<u8>), String> {
    let header_list: Vec<(String, Vec<u8>)> = call
        .headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&header_list).map_err(|e| format!("bad header: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&call.method)
        .map_err(|()| "invalid method".to_owned())?;
    request
        .set_scheme(Some(&call.scheme))
        .map_err(|()| "invalid scheme".to_owned())?;
    request
        .set_authority(Some(call.authority))
        .map_err(|()| format!("invalid authority {:?}", call.authority))?;
    request
        .set_path_with_query(Some(call.path_with_query))
        .map_err(|()| format!("invalid path {:?}", call.path_with_query))?;
    let body = request
        .body()
        .map_err(|()| "request body already taken".to_owned())?;
    let response = outgoing_handler::handle(request, None).map_err(|code| format!("{code:?}"))?;
    if !call.body.is_empty() {
        let mut stream = body
            .write()
            .map_err(|()| "request stream already taken".to_owned())?;
        stream
            .write_all(call.body)
            .and_then(|()| io::Write::flush(&mut stream))
            .map_err(|e| e.to_string())?;
    }
    OutgoingBody::finish(body, None).map_err(|code| format!("{code:?}"))?;
    response.subscribe().block();
    let response = match response.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        Some(Err(())) | None => return Err("no response".to_owned()),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "response body already taken".to_owned())?;
    let mut stream = body
        .stream()
        .map_err(|()| "response stream already taken".to_owned())?;
    let mut bytes = Vec::new();
    (&mut stream)
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    drop(stream);
    if bytes.len() > limit {
        return Err(format!("response longer than {limit} bytes"));
    }
    Ok((status, bytes))
}
