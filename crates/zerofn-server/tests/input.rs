//! Input validation through the real path: a function with `[functions.<name>.input]` behind
//! the real listener, the hostile guest's `/echo` as its code. Every hostile body is refused
//! before a sandbox exists (no `invocation.start` for it), with its rule in problem details and
//! in a `request.refused` event, and the platform keeps serving. A compromised caller relaying
//! the same bodies through a function-to-function call is refused the same way, and schemas
//! that would fetch or do not compile never deploy.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Reply, TestServer, request};
use std::collections::BTreeMap;
use zerofn_manifest::AttachedFiles;
use zerofn_test_artifacts::HOSTILE;

const APP: &str = r#"[app]
name = "inputs"
version = "1.0.0"

[functions.orders]
component = "hostile.wasm"
trigger = { http = { route = "/echo", methods = ["GET", "POST"] } }
auth = { public = true }

[functions.orders.input]
schema = "schemas/order.json"
max_body_bytes = 1048576

[functions.relay]
component = "hostile.wasm"
trigger = { http = { route = "/forward", methods = ["POST"] } }
auth = { public = true }
grants = { invoke = ["orders"] }

[functions.counter]
component = "hostile.wasm"
trigger = { http = { route = "/count", methods = ["GET"] } }
auth = { public = true }
"#;

const ORDER_SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "item": {"type": "string", "maxLength": 64},
    "qty": {"$ref": "#/$defs/quantity"}
  },
  "required": ["item", "qty"],
  "additionalProperties": false,
  "$defs": {"quantity": {"type": "integer", "minimum": 1}}
}"##;

const TEN_MB: usize = 10 * 1024 * 1024;

async fn deploy(
    server: &TestServer,
    manifest: &str,
    schema: &str,
) -> Result<zerofn_server::DeployReport, zerofn_server::DeployError> {
    let components: BTreeMap<String, Vec<u8>> =
        zerofn_manifest::parse(std::path::Path::new(common::MANIFEST_PATH), manifest)
            .unwrap()
            .functions()
            .map(|f| (f.name.clone(), std::fs::read(HOSTILE).unwrap()))
            .collect();
    let mut files = AttachedFiles::new();
    files.insert("schemas/order.json", schema.as_bytes().to_vec());
    let attestations = common::sign_with_files(manifest, &components, &server.key, &files);
    server
        .deploy_with_files(manifest, components, attestations, files)
        .await
}

async fn post(server: &TestServer, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| vec![("content-type", ct)])
        .unwrap_or_default();
    request(
        server.addr,
        "POST",
        path,
        &headers,
        Bytes::copy_from_slice(body),
    )
    .await
}

/// Checks the refusal's status and rule, that it is in the audit stream under its invocation
/// id, and that no sandbox was started for it.
async fn assert_refused(server: &TestServer, reply: &Reply, status: u16, rule: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(
        reply.headers["content-type"], "application/problem+json",
        "{rule}"
    );
    let problem = reply.json();
    assert_eq!(problem["type"], format!("urn:zerofn:problem:{rule}"));
    let id = problem["invocation_id"].as_str().unwrap().to_string();
    let events = server
        .audit(zerofn_store::AuditQuery {
            invocation_id: Some(id.clone()),
            ..Default::default()
        })
        .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["request.refused"], "{rule}: {events:?}");
    assert_eq!(events[0].event["reason"], rule);
    assert_eq!(events[0].function.as_deref(), Some("orders"));
}

async fn still_serving(server: &TestServer) {
    let count = server.get("/count").await;
    assert_eq!((count.status, count.text()), (200, "1".to_string()));
    let good = post(
        server,
        "/echo",
        Some("application/json"),
        br#"{"item":"pen","qty":1}"#,
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.text());
}

#[tokio::test]
async fn a_valid_body_reaches_the_function_unchanged() {
    let server = TestServer::start().await;
    deploy(&server, APP, ORDER_SCHEMA).await.unwrap();
    let body = br#"{"item":"book","qty":2}"#;
    let reply = post(
        &server,
        "/echo",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body.as_deref().unwrap(), body);
    // A request that carries no body passes: there is nothing to check.
    assert_eq!(server.get("/echo").await.status, 200);
}

#[tokio::test]
async fn schema_violations_name_the_pointer_the_schema_location_and_the_keyword() {
    let server = TestServer::start().await;
    deploy(&server, APP, ORDER_SCHEMA).await.unwrap();

    let missing = post(
        &server,
        "/echo",
        Some("application/json"),
        br#"{"item":"book"}"#,
    )
    .await;
    assert_refused(&server, &missing, 400, "input-schema-violation").await;
    let errors = missing.json()["errors"].clone();
    assert_eq!(errors[0]["keyword"], "required", "{errors}");
    assert_eq!(errors[0]["instance"], "");
    assert_eq!(errors[0]["schema"], "/required");

    // Extra and wrongly typed fields: every error is listed, the offending values are not.
    let hostile = br#"{"item":"book","qty":"two","admin":true}"#;
    let reply = post(&server, "/echo", Some("application/json"), hostile).await;
    assert_refused(&server, &reply, 400, "input-schema-violation").await;
    let problem = reply.json();
    assert_eq!(problem["error_count"], 2, "{problem}");
    let errors = problem["errors"].as_array().unwrap();
    let typed = errors.iter().find(|e| e["keyword"] == "type").unwrap();
    assert_eq!(typed["instance"], "/qty");
    assert_eq!(typed["schema"], "/$defs/quantity/type");
    let extra = errors
        .iter()
        .find(|e| e["keyword"] == "additionalProperties")
        .unwrap();
    assert_eq!(extra["instance"], "");
    assert!(!problem.to_string().contains("\"two\""), "{problem}");

    // The audit event carries the locations too.
    let refused = server.events("request.refused").await;
    let last = refused.last().unwrap();
    assert_eq!(last.event["detail"]["errors"].as_array().unwrap().len(), 2);

    let negative = post(
        &server,
        "/echo",
        Some("application/json"),
        br#"{"item":"a","qty":0}"#,
    )
    .await;
    assert_refused(&server, &negative, 400, "input-schema-violation").await;
    assert_eq!(negative.json()["errors"][0]["keyword"], "minimum");
    still_serving(&server).await;
}

#[tokio::test]
async fn hostile_encodings_and_shapes_are_refused_before_any_parser_recurses() {
    let server = TestServer::start().await;
    deploy(&server, APP, ORDER_SCHEMA).await.unwrap();

    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let reply = post(&server, "/echo", Some("application/json"), deep.as_bytes()).await;
    assert_refused(&server, &reply, 400, "input-too-deep").await;
    assert_eq!(reply.json()["limit"], 64);
    let deep_object = "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000);
    let reply = post(
        &server,
        "/echo",
        Some("application/json"),
        deep_object.as_bytes(),
    )
    .await;
    assert_refused(&server, &reply, 400, "input-too-deep").await;

    let reply = post(
        &server,
        "/echo",
        Some("application/json"),
        b"{\"item\":\"\xc3\x28\",\"qty\":1}",
    )
    .await;
    assert_refused(&server, &reply, 400, "input-not-utf8").await;

    let reply = post(&server, "/echo", Some("application/json"), b"{\"item\":").await;
    assert_refused(&server, &reply, 400, "input-malformed-json").await;
    still_serving(&server).await;
}

#[tokio::test]
async fn wrong_media_types_are_refused() {
    let server = TestServer::start().await;
    deploy(&server, APP, ORDER_SCHEMA).await.unwrap();
    let body = br#"{"item":"book","qty":2}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=iso-8859-1"),
        Some("not a media type"),
        None,
    ] {
        let reply = post(&server, "/echo", content_type, body).await;
        assert_refused(&server, &reply, 415, "input-unsupported-media-type").await;
        assert_eq!(
            reply.json()["accept"],
            serde_json::json!(["application/json"])
        );
    }
    still_serving(&server).await;
}

#[tokio::test]
async fn a_ten_megabyte_body_is_refused_with_or_without_content_length() {
    let server = TestServer::start().await;
    deploy(&server, APP, ORDER_SCHEMA).await.unwrap();

    // With Content-Length: refused from the head, whatever follows.
    let (status, head) = raw_post(&server, "/echo", TEN_MB, false).await;
    assert_eq!(status, 413, "{head}");
    assert_audited_once(&server, &head, "input-body-too-large").await;

    // Chunked, no Content-Length: read up to the cap, then refused.
    let (status, head) = raw_post(&server, "/echo", TEN_MB, true).await;
    assert_eq!(status, 413, "{head}");
    assert_audited_once(&server, &head, "input-body-too-large").await;
    still_serving(&server).await;
}

/// The refusal whose response head is `head` is one `request.refused` event with `rule`.
async fn assert_audited_once(server: &TestServer, head: &str, rule: &str) {
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-zerofn-invocation-id: "))
        .unwrap()
        .trim()
        .to_string();
    let events = server
        .audit(zerofn_store::AuditQuery {
            invocation_id: Some(id),
            ..Default::default()
        })
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "request.refused");
    assert_eq!(events[0].event["reason"], rule);
}

#[tokio::test]
async fn a_compromised_caller_cannot_relay_what_the_listener_refuses() {
    let server = TestServer::start().await;
    deploy(&server, APP, ORDER_SCHEMA).await.unwrap();
    let server = &server;
    let relay = |body: Vec<u8>| async move {
        post(
            server,
            "/forward?host=orders.inputs.fn.internal&path=/echo",
            Some("application/json"),
            &body,
        )
        .await
    };

    let reply = relay(br#"{"item":"book","qty":2}"#.to_vec()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], 200, "{}", reply.text());

    let deep = "[".repeat(1000) + &"]".repeat(1000);
    for (body, rule) in [
        (
            br#"{"item":"book","qty":"2","admin":true}"#.to_vec(),
            "input-schema-violation",
        ),
        (b"{\"item\":\"\xff\",\"qty\":1}".to_vec(), "input-not-utf8"),
        (deep.into_bytes(), "input-too-deep"),
    ] {
        let reply = relay(body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let json = reply.json();
        assert_eq!(json["status"], 400, "{json}");
        let problem: serde_json::Value =
            serde_json::from_str(json["body"].as_str().unwrap()).unwrap();
        assert_eq!(problem["type"], format!("urn:zerofn:problem:{rule}"));
        let refused = server.events("request.refused").await;
        assert_eq!(refused.last().unwrap().event["reason"], rule);
        assert_eq!(refused.last().unwrap().function.as_deref(), Some("orders"));
    }
    still_serving(server).await;
}

#[tokio::test]
async fn schemas_that_fetch_or_do_not_compile_are_refused_at_admission() {
    let server = TestServer::start().await;
    for (schema, rule) in [
        (
            r#"{"properties":{"qty":{"$ref":"https://schemas.example.com/qty.json"}}}"#,
            "input-schema-external-ref",
        ),
        (r#"{"$ref":"other.json"}"#, "input-schema-external-ref"),
        (r#"{"type":"objekt"}"#, "input-schema-invalid"),
        (
            r#"{"$schema":"http://json-schema.org/draft-04/schema#"}"#,
            "input-schema-invalid",
        ),
        ("{not json", "input-schema-invalid"),
    ] {
        let Err(zerofn_server::DeployError::Refused(findings)) = deploy(&server, APP, schema).await
        else {
            panic!("{schema} was admitted");
        };
        let finding = findings
            .iter()
            .find(|f| f.is_error())
            .unwrap_or_else(|| panic!("{findings:?}"));
        assert_eq!(finding.rule, rule, "{schema}: {findings:?}");
        assert_eq!(
            finding.field.as_deref(),
            Some("functions.orders.input.schema")
        );
        assert!(finding.line.is_some());
    }
    let refused = server.events("deploy.refused").await;
    assert_eq!(refused.len(), 5);
}

#[tokio::test]
async fn a_function_without_input_streams_its_body_as_before() {
    let server = TestServer::start().await;
    server
        .deploy(
            &common::hostile_manifest("plain", ""),
            &[("hostile", HOSTILE)],
        )
        .await;
    let reply = post(&server, "/echo", Some("text/plain"), b"\xff anything \xfe").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_deref().unwrap(), b"\xff anything \xfe");
}

/// POSTs `size` bytes of JSON whitespace, chunked (64 KiB chunks, no `Content-Length`) or
/// with `Content-Length`; returns the response status and head. The writer gives up quietly
/// when the server stops reading.
async fn raw_post(server: &TestServer, path: &str, size: usize, chunked: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let framing = if chunked {
        "transfer-encoding: chunked".to_string()
    } else {
        format!("content-length: {size}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n{framing}\r\n\r\n",
        server.addr
    );
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
            }
            writer.write_all(&chunk).await?;
            if chunked {
                writer.write_all(b"\r\n").await?;
            }
            sent += chunk.len();
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = reader.read(&mut buffer).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        response.extend_from_slice(&buffer[..n]);
    }
    writing.abort();
    let head = String::from_utf8_lossy(&response).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, head)
}
