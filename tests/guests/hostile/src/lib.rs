//! `hostile`: an adversarial `wasi:http/proxy` guest for the platform's tests.
//!
//! The request path picks one attempt to escape, exhaust or probe the sandbox (see the
//! `match` in [`Hostile::handle`]). Routes that *observe* something answer with a report
//! the tests assert on (for example "every ambient-authority probe is an error"); routes
//! that *attack* (`/loop`, `/membomb`, `/recurse`, `/panic`, `/trap`) never answer, and the
//! tests check that the platform contains them.
//!
//! This is test code that misbehaves on purpose: never deploy it. It uses `unsafe` only in
//! `/marker`, which has to read memory the Rust abstract machine considers uninitialised;
//! each block says why it is sound enough for that purpose.
//!
//! Query strings are parsed by hand. Besides `wasip2`, the component depends on `wit-bindgen`
//! for the interfaces `wasip2` does not cover: `wasi:config` (WIT vendored in `wit/config`) and
//! `wasi:keyvalue` (`src/kv.rs`, WIT vendored in `wit/keyvalue`).

#[cfg(not(target_arch = "wasm32"))]
compile_error!("`hostile` is a Wasm component: build it with `--target wasm32-wasip2`");

mod kv;

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{self, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::OutputStream;

wasip2::http::proxy::export!(Hostile);

/// `wasi:config/store`, the interface through which functions read their granted secrets.
mod config {
    wit_bindgen::generate!({
        path: "wit/config",
        world: "wasi:config/imports",
    });
}

use config::wasi::config::store as config_store;

struct Hostile;

impl wasip2::exports::http::incoming_handler::Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));

        match path {
            "/count" => respond_text(out, 200, &count().to_string()),
            "/marker" => respond_json(out, &marker()),
            "/ambient" => respond_json(out, &ambient()),
            "/loop" => spin_forever(),
            "/sleep" => match query_number(query, "ms") {
                Some(ms) => {
                    sleep_in_host(ms);
                    respond_text(out, 200, "slept");
                }
                None => respond_text(out, 400, "expected ?ms=N"),
            },
            "/membomb" => exhaust_memory(),
            "/recurse" => {
                // Not reached: the recursion never returns.
                let depth = recurse(0);
                respond_text(out, 200, &depth.to_string());
            }
            "/recurse-native" => {
                // Not reached: exhausts the engine's own WebAssembly stack.
                let depth = recurse_native(0);
                respond_text(out, 200, &depth.to_string());
            }
            "/no-response" => {
                // Returns without ever setting the response.
                drop(out);
            }
            "/panic" => panic!("guest panic: secret-detail-xyz"),
            "/trap" => core::arch::wasm32::unreachable(),
            "/echo" => echo(&request, out),
            "/" if !request.headers().get("ce-specversion").is_empty() => event(&request, out),
            "/big" => match query_number(query, "bytes") {
                Some(bytes) => big(out, bytes),
                None => respond_text(out, 400, "expected ?bytes=N"),
            },
            "/print" => match query_number(query, "bytes") {
                Some(bytes) => {
                    print_to_stdio(bytes);
                    respond_text(out, 200, "printed");
                }
                None => respond_text(out, 400, "expected ?bytes=N"),
            },
            "/outbound" => match query_text(query, "url") {
                None => {
                    let mut json = String::from("{\"result\":");
                    push_json_string(&mut json, &outbound());
                    json.push('}');
                    respond_json(out, &json);
                }
                Some(url) => {
                    let method = query_text(query, "method").map(percent_decode);
                    let body = query_text(query, "body")
                        .map(percent_decode)
                        .filter(|body| !body.is_empty());
                    let first_byte_ms = query_number(query, "first_byte_ms");
                    respond_json(
                        out,
                        &fetch(
                            &percent_decode(url),
                            method.as_deref().unwrap_or("GET"),
                            body.as_deref(),
                            first_byte_ms,
                        ),
                    );
                }
            },
            "/outbound-many" => match (query_text(query, "url"), query_number(query, "n")) {
                (Some(url), Some(n)) => respond_json(out, &fetch_many(&percent_decode(url), n)),
                _ => respond_text(out, 400, "expected ?url=U&n=N"),
            },
            "/headers" => respond_json(out, &headers(&request)),
            "/call" => match (query_text(query, "host"), query_text(query, "path")) {
                (Some(host), Some(path)) => {
                    let method = match query_text(query, "method") {
                        Some("POST") => Method::Post,
                        _ => Method::Get,
                    };
                    respond_json(out, &call(host, &method, path, None))
                }
                _ => respond_text(out, 400, "expected ?host=H[&method=POST]&path=P"),
            },
            "/forward" => match (query_text(query, "host"), query_text(query, "path")) {
                // A compromised caller: relays whatever body it was sent to another function.
                (Some(host), Some(path)) => {
                    let content_type = request
                        .headers()
                        .get("content-type")
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                    match read_body(&request) {
                        Ok(body) => respond_json(
                            out,
                            &call(host, &Method::Post, path, Some((&content_type, &body))),
                        ),
                        Err(error) => respond_text(out, 400, &format!("cannot read body: {error}")),
                    }
                }
                _ => respond_text(out, 400, "expected ?host=H&path=P"),
            },
            "/pingpong" => match (
                query_text(query, "me"),
                query_text(query, "peer"),
                query_text(query, "app"),
            ) {
                (Some(me), Some(peer), Some(app)) => {
                    // Calls the peer, which calls back, and so on: only the platform's
                    // call-depth cap ends it.
                    let host = format!("{peer}.{app}.fn.internal");
                    let path = format!("/pingpong?me={peer}&peer={me}&app={app}");
                    respond_json(out, &call(&host, &Method::Get, &path, None));
                }
                _ => respond_text(out, 400, "expected ?me=A&peer=B&app=X"),
            },
            "/secret" => match query_text(query, "name") {
                Some(name) => respond_json(out, &read_secret(name)),
                None => respond_text(out, 400, "expected ?name=N"),
            },
            "/secret-all" => respond_json(out, &read_all_secrets()),
            "/secret-print" => match query_text(query, "name") {
                Some(name) => {
                    // What a careless function does: log the value it read.
                    if let Ok(Some(value)) = config_store::get(name) {
                        println!("the secret is {value}!");
                        eprintln!("secret={value}");
                    }
                    respond_text(out, 200, "printed");
                }
                None => respond_text(out, 400, "expected ?name=N"),
            },
            "/secret-error" => match query_text(query, "name") {
                // Puts the value it read into the error it sets instead of a response.
                Some(name) => {
                    let value = match config_store::get(name) {
                        Ok(Some(value)) => value,
                        _ => String::new(),
                    };
                    ResponseOutparam::set(
                        out,
                        Err(wasip2::http::types::ErrorCode::InternalError(Some(
                            format!("failed with {value}"),
                        ))),
                    );
                }
                None => respond_text(out, 400, "expected ?name=N"),
            },
            kv if kv.contains("/kv/") => {
                let operation = kv.rsplit_once("/kv/").map_or("", |(_, op)| op);
                let body = read_body(&request).unwrap_or_default();
                respond_json(out, &kv::handle(operation, query, body));
            }
            _ => respond_text(out, 404, "no such route"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------

/// `/count`: a counter that survives between requests only if the platform reuses an
/// instance. A fresh sandbox per invocation always answers 1.
/// `{"value": "..."}`, `{"value": null}` (no such value) or `{"error": "..."}`.
fn read_secret(name: &str) -> String {
    let mut json = String::from("{");
    match config_store::get(name) {
        Ok(Some(value)) => {
            json.push_str("\"value\":");
            push_json_string(&mut json, &value);
        }
        Ok(None) => json.push_str("\"value\":null"),
        Err(error) => {
            json.push_str("\"error\":");
            push_json_string(&mut json, &config_error(error));
        }
    }
    json.push('}');
    json
}

/// `{"names": [...]}` with every key `get-all` returned, or `{"error": "..."}`.
fn read_all_secrets() -> String {
    let mut json = String::from("{");
    match config_store::get_all() {
        Ok(pairs) => {
            json.push_str("\"names\":");
            let names: Vec<String> = pairs.into_iter().map(|(name, _)| name).collect();
            push_json_array(&mut json, &names);
        }
        Err(error) => {
            json.push_str("\"error\":");
            push_json_string(&mut json, &config_error(error));
        }
    }
    json.push('}');
    json
}

fn config_error(error: config_store::Error) -> String {
    match error {
        config_store::Error::Upstream(message) => format!("upstream: {message}"),
        config_store::Error::Io(message) => format!("io: {message}"),
    }
}

fn count() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed) + 1
}

/// The pattern `/marker` looks for and then leaves behind, to detect memory that one
/// invocation can see from another.
const MARKER: &[u8; 16] = b"ZEROFN-MARKER-01";
const WASM_PAGE_BYTES: usize = 64 * 1024;
/// Pages taken straight from `memory.grow`, bypassing the allocator.
const GROWN_PAGES: usize = 4;
/// Bytes taken from the allocator without initialising them.
const HEAP_PROBE_BYTES: usize = 1024 * 1024;

/// `/marker`: looks for another invocation's data in memory this one has just obtained,
/// then leaves the marker there for the next invocation to find.
///
/// * `nonzero_bytes` counts non-zero bytes in the freshly grown pages. The Wasm spec says
///   they are zero, so anything else means the host handed over dirty memory.
/// * `seen_marker` is true if either region held the marker.
/// * `heap_nonzero_bytes` is for information only: the allocator may legitimately hand
///   back memory this invocation freed earlier (while parsing the request, say).
fn marker() -> String {
    let mut grown = Scan::default();
    let old_pages = core::arch::wasm32::memory_grow::<0>(GROWN_PAGES);
    let grew = old_pages != usize::MAX;
    if grew {
        let start = core::ptr::with_exposed_provenance_mut::<u8>(old_pages * WASM_PAGE_BYTES);
        // SAFETY: `memory.grow` has just appended these pages to linear memory 0 and
        // returned their first page; the allocator only learns of pages it grows itself,
        // so nothing else in this program uses them.
        grown = unsafe { scan_and_mark(start, GROWN_PAGES * WASM_PAGE_BYTES) };
    }

    let layout = match Layout::from_size_align(HEAP_PROBE_BYTES, 16) {
        Ok(layout) => layout,
        Err(_) => unreachable!("1 MiB aligned to 16 is a valid layout"),
    };
    // SAFETY: the layout has a non-zero size.
    let heap = unsafe { std::alloc::alloc(layout) };
    if heap.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `heap` is a live allocation of `HEAP_PROBE_BYTES` that only we hold.
    let heap_scan = unsafe { scan_and_mark(heap, HEAP_PROBE_BYTES) };
    // SAFETY: allocated above with the same layout, and not used after this.
    unsafe { std::alloc::dealloc(heap, layout) };

    format!(
        "{{\"seen_marker\":{},\"nonzero_bytes\":{},\"grew\":{grew},\"heap_nonzero_bytes\":{}}}",
        grown.seen_marker || heap_scan.seen_marker,
        grown.nonzero_bytes,
        heap_scan.nonzero_bytes,
    )
}

#[derive(Default)]
struct Scan {
    seen_marker: bool,
    nonzero_bytes: usize,
}

/// Reports whether `len` bytes at `start` hold the marker or any non-zero byte, then
/// overwrites all of them with copies of the marker.
///
/// Reads and writes are volatile: Rust considers freshly allocated bytes uninitialised,
/// and a volatile access makes the compiler take whatever the host left in linear memory
/// at face value, and keeps the writes that nothing in this program reads again.
///
/// # Safety
/// `start..start + len` must be valid for reads and writes and used by nothing else.
unsafe fn scan_and_mark(start: *mut u8, len: usize) -> Scan {
    let mut scan = Scan::default();
    // How many bytes of the marker the bytes just read end with. `Z` occurs only at the
    // start of the marker, so after a mismatch a new match can only begin at a `Z`.
    let mut matched = 0;
    for i in 0..len {
        // SAFETY: `i < len`, and the caller vouches for the whole range.
        let byte = unsafe { start.add(i).read_volatile() };
        if byte != 0 {
            scan.nonzero_bytes += 1;
        }
        matched = if byte == MARKER[matched] {
            matched + 1
        } else {
            usize::from(byte == MARKER[0])
        };
        if matched == MARKER.len() {
            scan.seen_marker = true;
            matched = 0;
        }
    }
    for i in 0..len {
        // SAFETY: as above.
        unsafe { start.add(i).write_volatile(MARKER[i % MARKER.len()]) };
    }
    scan
}

/// `/ambient`: every way a guest built with `std` might reach ambient authority. Each
/// probe answers `"ok:..."` or `"err:<message>"`; a zero-trust host makes them all errors
/// and the lists empty, except `cwd`: wasi-libc emulates the working directory inside the
/// guest (`ok:/`) without asking the host. Only names are reported, never values or file
/// contents.
fn ambient() -> String {
    let env: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let root = report(std::fs::read_dir("/").map(|entries| format!("{} entries", entries.count())));
    let cwd = report(std::env::current_dir().map(|dir| dir.display().to_string()));
    let file_read =
        report(std::fs::read_to_string("/etc/passwd").map(|s| format!("{} bytes", s.len())));
    let tcp_connect = report(TcpStream::connect("127.0.0.1:1").map(|_| "connected".to_owned()));
    let dns = report(
        "example.com:80"
            .to_socket_addrs()
            .map(|addrs| format!("{} addresses", addrs.count())),
    );

    let mut json = String::from("{\"env\":");
    push_json_array(&mut json, &env);
    json.push_str(",\"args\":");
    push_json_array(&mut json, &args);
    for (key, value) in [
        ("preopens_or_root", root),
        ("cwd", cwd),
        ("file_read", file_read),
        ("tcp_connect", tcp_connect),
        ("dns", dns),
    ] {
        json.push(',');
        push_json_string(&mut json, key);
        json.push(':');
        push_json_string(&mut json, &value);
    }
    json.push('}');
    json
}

fn report(result: io::Result<String>) -> String {
    match result {
        Ok(detail) => format!("ok:{detail}"),
        Err(error) => format!("err:{error}"),
    }
}

/// `/loop`: burns CPU forever. `black_box` keeps the loop from being optimised away, so
/// only the host's deadline (epoch or fuel) can stop it.
fn spin_forever() -> ! {
    loop {
        black_box(());
    }
}

/// `/sleep`: blocks inside the host, not in guest code, so only a host-side deadline that
/// also covers blocking calls stops it early.
fn sleep_in_host(ms: u64) {
    let nanos = ms.saturating_mul(1_000_000);
    wasip2::clocks::monotonic_clock::subscribe_duration(nanos).block();
}

/// `/membomb`: allocates and touches 1 MiB after 1 MiB until the allocator fails, which
/// aborts (traps) the guest. The memory limit decides how far it gets.
fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // `vec![x; n]` writes every byte, so pages are really used, not just reserved;
        // `black_box` stops the compiler from eliding allocations nobody reads.
        hoard.push(vec![0x5a; 1024 * 1024]);
        black_box(&hoard);
    }
}

/// `/recurse`: recursion with a 1 KiB frame that the optimiser can neither turn into a
/// loop nor shrink, so it exhausts the stack (Wasm's and the shadow stack in linear memory).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[0] = depth.to_le_bytes()[0];
    black_box(&mut frame);
    // Never true; `black_box` hides that from the compiler and from the recursion lint.
    if black_box(depth) == u64::MAX {
        return depth;
    }
    // Using `frame` after the call keeps this from being a tail call.
    recurse(depth + 1).wrapping_add(u64::from(frame[black_box(0)]))
}

/// Unbounded recursion that keeps nothing in linear memory, so it exhausts the engine's native
/// WebAssembly stack (a `StackOverflow` trap) instead of Rust's shadow stack.
fn recurse_native(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse_native(black_box(depth + 1)).wrapping_add(black_box(1))
}

/// `/echo`: the request body and content type, sent back unchanged.
fn echo(request: &IncomingRequest, out: ResponseOutparam) {
    let content_type = request
        .headers()
        .get("content-type")
        .into_iter()
        .next()
        .unwrap_or_else(|| b"application/octet-stream".to_vec());
    match read_body(request) {
        Ok(body) => respond(out, 200, &content_type, |stream| stream.write_all(&body)),
        Err(error) => respond_text(out, 400, &format!("cannot read body: {error}")),
    }
}

/// `/` with a `ce-specversion` header: a CloudEvent in binary mode, as the schedule and queue
/// triggers deliver it. Prints one line `event {...}` (every `ce-*` header, the content type
/// and the body) to stdout for the tests to find in the guest logs, and answers 500 when the
/// body contains `"fail"` (so tests can make a delivery fail), 200 otherwise.
fn event(request: &IncomingRequest, out: ResponseOutparam) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers().entries() {
        if name.starts_with("ce-") || name == "content-type" {
            seen.insert(name, String::from_utf8_lossy(&value).into_owned());
        }
    }
    let body = match read_body(request) {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(error) => return respond_text(out, 400, &format!("cannot read body: {error}")),
    };
    let mut line = String::from("event {");
    for (name, value) in &seen {
        push_json_string(&mut line, name);
        line.push(':');
        push_json_string(&mut line, value);
        line.push(',');
    }
    line.push_str("\"body\":");
    push_json_string(&mut line, &body);
    line.push('}');
    println!("{line}");
    let status = if body.contains("\"fail\"") { 500 } else { 200 };
    respond_text(out, status, &line);
}

/// `/big`: a response body of `bytes` bytes of `a`, written 64 KiB at a time. The
/// `io::Write` impl of `wasip2` waits for the host's `check-write` budget, so this tests
/// the host's response limits and back-pressure, not the guest's patience.
fn big(out: ResponseOutparam, bytes: u64) {
    static CHUNK: [u8; 64 * 1024] = [b'a'; 64 * 1024];
    respond(out, 200, b"text/plain", |stream| {
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left).map_or(CHUNK.len(), |left| left.min(CHUNK.len()));
            stream.write_all(&CHUNK[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
}

/// `/print`: `bytes` bytes to stdout and as many to stderr, as lines of 99 `x` and a
/// newline, to test how the host captures and bounds guest logs.
fn print_to_stdio(bytes: u64) {
    const LINE: [u8; 100] = {
        let mut line = [b'x'; 100];
        line[99] = b'\n';
        line
    };
    fn write_lines(sink: &mut impl io::Write, bytes: u64) -> io::Result<()> {
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left).map_or(LINE.len(), |left| left.min(LINE.len()));
            sink.write_all(&LINE[..n])?;
            left -= n as u64;
        }
        sink.flush()
    }
    // The host may close or drop these streams; the test then looks at what it kept,
    // so a write error is not the guest's to report.
    let _ = write_lines(&mut io::stdout().lock(), bytes);
    let _ = write_lines(&mut io::stderr().lock(), bytes);
}

/// `/outbound`: an outgoing `wasi:http` request to `http://example.com/`. Returns `ok:<status>`
/// if it got through, otherwise the `ErrorCode` the host gave (a platform without an egress
/// grant answers `HttpRequestDenied`).
fn outbound() -> String {
    let request = OutgoingRequest::new(Fields::new());
    // These setters reject only malformed values, and these are constants.
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some("example.com"));
    let _ = request.set_path_with_query(Some("/"));
    match outgoing_handler::handle(request, None) {
        Err(code) => format!("{code:?}"),
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(response))) => format!("ok:{}", response.status()),
                Some(Ok(Err(code))) => format!("{code:?}"),
                Some(Err(())) => "err:response already taken".to_owned(),
                None => "err:response not ready".to_owned(),
            }
        }
    }
}

/// `/outbound?url=U[&method=M][&body=B][&first_byte_ms=N]` (each value percent-encoded): sends
/// `M U` with body `B`, splitting the URL naively at `://` and the next `/` so that whatever the
/// test writes as the authority (`user@host`, `0x7f000001`, `[::ffff:...]`) reaches the host
/// as written. Answers as [`exchange`] does.
fn fetch(url: &str, method: &str, body: Option<&str>, first_byte_ms: Option<u64>) -> String {
    let (scheme, authority, path) = split_url(url);
    let request = OutgoingRequest::new(Fields::new());
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| format!("{{\"error\":\"invalid {what}\"}}");
    if request.set_method(&method).is_err() {
        return invalid("method");
    }
    if request.set_scheme(Some(&scheme)).is_err() {
        return invalid("scheme");
    }
    if request.set_authority(Some(authority)).is_err() {
        return invalid("authority");
    }
    if request.set_path_with_query(Some(path)).is_err() {
        return invalid("path");
    }
    let options = first_byte_ms.map(|ms| {
        let options = wasip2::http::types::RequestOptions::new();
        let _ = options.set_first_byte_timeout(Some(ms.saturating_mul(1_000_000)));
        options
    });
    exchange(request, options, body)
}

/// Sends `request` (writing `body`, if any, once it is accepted) and answers
/// `{"status": N, "location": "...", "body": "..."}` or `{"error": "<ErrorCode>"}`.
fn exchange(
    request: OutgoingRequest,
    options: Option<wasip2::http::types::RequestOptions>,
    body: Option<&str>,
) -> String {
    // Without a body the request has none (not an empty stream), as a plain GET should.
    let outgoing_body = match body {
        Some(_) => match request.body() {
            Ok(outgoing_body) => Some(outgoing_body),
            Err(()) => return "{\"error\":\"invalid body\"}".to_owned(),
        },
        None => None,
    };
    let mut json = String::from("{");
    match outgoing_handler::handle(request, options) {
        Err(code) => {
            json.push_str("\"error\":");
            push_json_string(&mut json, &format!("{code:?}"));
        }
        Ok(response) => {
            // A refused request has no reader: the write fails, and the answer says why.
            if let Some(outgoing_body) = outgoing_body {
                if let Ok(mut stream) = outgoing_body.write() {
                    let _ = stream.write_all(body.unwrap_or("").as_bytes());
                    let _ = io::Write::flush(&mut stream);
                }
                let _ = OutgoingBody::finish(outgoing_body, None);
            }
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(response))) => {
                    let _ = write!(json, "\"status\":{},\"location\":", response.status());
                    let location = response
                        .headers()
                        .get("location")
                        .first()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    push_json_string(&mut json, &location);
                    json.push_str(",\"body\":");
                    let body = response
                        .consume()
                        .ok()
                        .and_then(|body| {
                            let mut bytes = Vec::new();
                            let mut stream = body.stream().ok()?;
                            let read = stream.read_to_end(&mut bytes);
                            drop(stream);
                            read.ok().map(|_| bytes)
                        })
                        .unwrap_or_default();
                    push_json_string(&mut json, &String::from_utf8_lossy(&body));
                }
                Some(Ok(Err(code))) => {
                    json.push_str("\"error\":");
                    push_json_string(&mut json, &format!("{code:?}"));
                }
                _ => json.push_str("\"error\":\"no response\""),
            }
        }
    }
    json.push('}');
    json
}

/// A URL split naively into scheme, authority (up to the first `/` or `?` after `://`, so
/// user info and odd host spellings stay in it) and path with query (`/` when empty).
fn split_url(url: &str) -> (Scheme, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.is_empty() { "/" } else { path };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    (scheme, authority, path)
}

/// `/outbound-many?url=U&n=N`: sends `n` GETs to `U` at once, keeping each pending, and
/// answers with the last one's fate as [`exchange`] does (the others are dropped unanswered).
fn fetch_many(url: &str, n: u64) -> String {
    let (scheme, authority, path) = split_url(url);
    let mut pending = Vec::new();
    for _ in 0..n {
        let request = OutgoingRequest::new(Fields::new());
        // These setters reject only malformed values; a refusal shows in the answer below.
        let _ = request.set_scheme(Some(&scheme));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(path));
        pending.push(outgoing_handler::handle(request, None));
    }
    let mut json = String::from("{");
    match pending.pop() {
        Some(Ok(response)) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(response))) => {
                    let _ = write!(json, "\"status\":{}", response.status());
                }
                Some(Ok(Err(code))) => {
                    json.push_str("\"error\":");
                    push_json_string(&mut json, &format!("{code:?}"));
                }
                _ => json.push_str("\"error\":\"no response\""),
            }
        }
        Some(Err(code)) => {
            json.push_str("\"error\":");
            push_json_string(&mut json, &format!("{code:?}"));
        }
        None => json.push_str("\"error\":\"n is 0\""),
    }
    json.push('}');
    json
}

/// `%XX` escapes decoded (`+` stays `+`); an invalid escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/call`: a GET (or `method=POST`) to `http://HOST/PATH` (another function, through the platform), forging the
/// identity headers only the platform may set and another trace's `traceparent`. Answers `{"status": N, "body": "..."}` or
/// `{"error": "..."}`. `/forward` sends `body` (its media type, its bytes) along.
fn call(host: &str, method: &Method, path: &str, body: Option<(&[u8], &[u8])>) -> String {
    let mut fields = vec![
        (
            "x-zerofn-caller".to_owned(),
            b"spiffe://evil.example/app/admin/fn/root".to_vec(),
        ),
        ("x-zerofn-caller-chain".to_owned(), b"forged".to_vec()),
        // Another trace's parentage: the platform's own span must replace it.
        (
            "traceparent".to_owned(),
            b"00-0badc0de0badc0de0badc0de0badc0de-0badc0de0badc0de-01".to_vec(),
        ),
    ];
    if let Some((content_type, _)) = body
        && !content_type.is_empty()
    {
        fields.push(("content-type".to_owned(), content_type.to_vec()));
    }
    let forged = Fields::from_list(&fields);
    let Ok(headers) = forged else {
        return "{\"error\":\"headers\"}".to_owned();
    };
    let request = OutgoingRequest::new(headers);
    // These setters reject only malformed values; a refusal shows in the answer below.
    let _ = request.set_method(method);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(host));
    let _ = request.set_path_with_query(Some(path));
    let outgoing = body.and_then(|(_, bytes)| Some((request.body().ok()?, bytes)));
    let mut json = String::from("{");
    let handled = outgoing_handler::handle(request, None);
    if let Some((outgoing, bytes)) = outgoing {
        // Written after the request is handed over, so that the host is already reading.
        if let Ok(mut stream) = outgoing.write() {
            let written = stream
                .write_all(bytes)
                .and_then(|()| io::Write::flush(&mut stream));
            drop(stream);
            if written.is_ok() {
                let _ = OutgoingBody::finish(outgoing, None);
            }
        }
    }
    match handled {
        Err(code) => {
            json.push_str("\"error\":");
            push_json_string(&mut json, &format!("{code:?}"));
        }
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(response))) => {
                    let _ = write!(json, "\"status\":{},\"body\":", response.status());
                    let body = response
                        .consume()
                        .ok()
                        .and_then(|body| {
                            let mut bytes = Vec::new();
                            let mut stream = body.stream().ok()?;
                            stream.read_to_end(&mut bytes).ok()?;
                            drop(stream);
                            Some(bytes)
                        })
                        .unwrap_or_default();
                    push_json_string(&mut json, &String::from_utf8_lossy(&body));
                }
                Some(Ok(Err(code))) => {
                    json.push_str("\"error\":");
                    push_json_string(&mut json, &format!("{code:?}"));
                }
                _ => json.push_str("\"error\":\"no response\""),
            }
        }
    }
    json.push('}');
    json
}

/// `/headers`: the request headers as a JSON object; repeated headers are joined with
/// `", "`, and values that are not UTF-8 are converted lossily.
fn headers(request: &IncomingRequest) -> String {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers().entries() {
        let value = String::from_utf8_lossy(&value);
        headers
            .entry(name)
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let mut json = String::from("{");
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, name);
        json.push(':');
        push_json_string(&mut json, value);
    }
    json.push('}');
    json
}

// ---------------------------------------------------------------------------------------
// HTTP and JSON helpers
// ---------------------------------------------------------------------------------------

/// The value of `name` in a query string such as `a=1&b=2`, parsed as a number.
fn query_number(query: &str, name: &str) -> Option<u64> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if key == name {
            value.parse().ok()
        } else {
            None
        }
    })
}

/// The value of `name` in a query string, as written (no percent-decoding).
fn query_text<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    // `path` takes the rest of the query, so a path may carry its own query string.
    if let Some(start) = query.find(&format!("{name}=")) {
        let value = &query[start + name.len() + 1..];
        if name == "path" {
            return Some(value);
        }
        return Some(value.split('&').next().unwrap_or(value));
    }
    None
}

/// The whole request body.
fn read_body(request: &IncomingRequest) -> io::Result<Vec<u8>> {
    let body = request
        .consume()
        .map_err(|()| io::Error::other("body already consumed"))?;
    let mut stream = body
        .stream()
        .map_err(|()| io::Error::other("body stream already taken"))?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    // The stream is a child of the body and must go first.
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

fn respond_text(out: ResponseOutparam, status: u16, text: &str) {
    respond(out, status, b"text/plain; charset=utf-8", |stream| {
        stream.write_all(text.as_bytes())
    });
}

fn respond_json(out: ResponseOutparam, json: &str) {
    respond(out, 200, b"application/json", |stream| {
        stream.write_all(json.as_bytes())
    });
}

/// Sends the status and headers, then lets `write_body` stream the body.
fn respond(
    out: ResponseOutparam,
    status: u16,
    content_type: &[u8],
    write_body: impl FnOnce(&mut OutputStream) -> io::Result<()>,
) {
    let headers = match Fields::from_list(&[("content-type".to_owned(), content_type.to_vec())]) {
        Ok(headers) => headers,
        // Only `/echo` passes a value from outside, and the host has already accepted it.
        Err(error) => panic!("invalid content-type: {error:?}"),
    };
    let response = OutgoingResponse::new(headers);
    // Every status this guest uses is valid; on failure the host sends its default (200).
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        unreachable!("the body of a new response is taken once")
    };
    ResponseOutparam::set(out, Ok(response));
    let Ok(mut stream) = body.write() else {
        unreachable!("the stream of a new body is taken once")
    };
    // `io::Write::flush`, not the inherent `flush` (which does not wait for the data to go out).
    let written = write_body(&mut stream).and_then(|()| io::Write::flush(&mut stream));
    drop(stream);
    // On a write error the client is gone: dropping the body unfinished tells the host so.
    if written.is_ok() {
        let _ = OutgoingBody::finish(body, None);
    }
}

fn push_json_array(json: &mut String, items: &[String]) {
    json.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(json, item);
    }
    json.push(']');
}

fn push_json_string(json: &mut String, s: &str) {
    json.push('"');
    for c in s.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}
