//! Egress through the real path: the hostile guest asks for URLs the test picks, a real server
//! decides them, and real servers on loopback count every connection they see. A refusal must
//! reach the guest as `HttpRequestDenied`, leave the destination untouched (no connection),
//! name its rule in an `egress.denied` event, and leave the platform serving.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::TestServer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use zerofn_store::AuditRow;
use zerofn_test_artifacts::HOSTILE;

/// An app `net` whose function `hostile` is granted `egress` (the array's contents).
fn manifest(egress: &str, limits: &str) -> String {
    common::hostile_manifest_with(
        "net",
        limits,
        &format!("\n[functions.hostile.grants]\negress = [{egress}]\n"),
    )
}

async fn deployed(server: &TestServer, egress: &str) -> zerofn_server::DeployReport {
    deployed_with(server, egress, "timeout_ms = 10000").await
}

async fn deployed_with(
    server: &TestServer,
    egress: &str,
    limits: &str,
) -> zerofn_server::DeployReport {
    server
        .deploy(&manifest(egress, limits), &[("hostile", HOSTILE)])
        .await
}

/// Every byte but the unreserved ones percent-encoded, so the URL reaches the guest intact.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The guest's `METHOD url` (with `body`), as the guest reports it.
async fn fetch(server: &TestServer, method: &str, url: &str, body: &str) -> serde_json::Value {
    fetch_with(server, method, url, body, "").await
}

async fn fetch_with(
    server: &TestServer,
    method: &str,
    url: &str,
    body: &str,
    extra: &str,
) -> serde_json::Value {
    let reply = server
        .get(&format!(
            "/outbound?url={}&method={method}&body={}{extra}",
            encode(url),
            encode(body)
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn assert_denied(answer: &serde_json::Value) {
    assert_eq!(answer["error"], "ErrorCode::HttpRequestDenied", "{answer}");
}

/// Events of `kind`, waiting until there are at least `n`: an exchange is recorded when its
/// body ends, which can be just after the guest answered.
async fn events(server: &TestServer, kind: &str, n: usize) -> Vec<AuditRow> {
    for _ in 0..500 {
        let found = server.events(kind).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} `{kind}` events");
}

/// The `egress.denied` event of the last refusal, which must name `rule`.
async fn last_denial(server: &TestServer, rule: &str) -> serde_json::Value {
    let denied = server.events("egress.denied").await;
    let last = denied.last().expect("a refusal is recorded").event.clone();
    assert_eq!(last["reason"], rule, "{last}");
    assert_eq!(last["outcome"], "denied", "{last}");
    last
}

/// What an upstream server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    host: String,
    body: String,
}

/// An HTTP (or HTTPS) server on loopback that counts every TCP connection it accepts.
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Seen>>>,
    /// The server name each TLS client asked for (SNI).
    names: Arc<Mutex<Vec<Option<String>>>>,
}

impl Upstream {
    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

/// `/api/hello` says hello, `/api/echo` echoes the body, `/api/redirect` redirects to
/// `redirect_to`, anything else is 404.
async fn upstream(tls: Option<Arc<rustls::ServerConfig>>, redirect_to: &str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let names = Arc::new(Mutex::new(Vec::new()));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let redirect_to = redirect_to.to_string();
    let (counted, seen, named) = (connections.clone(), requests.clone(), names.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (seen, named, redirect_to) = (seen.clone(), named.clone(), redirect_to.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let redirect_to = redirect_to.clone();
                        async move {
                            use http_body_util::BodyExt as _;
                            let method = request.method().to_string();
                            let path = request
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let host = request
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let body = String::from_utf8_lossy(&body).into_owned();
                            seen.lock().unwrap().push(Seen {
                                method,
                                path: path.clone(),
                                host,
                                body: body.clone(),
                            });
                            let builder = hyper::Response::builder();
                            let response = match path.split('?').next().unwrap_or_default() {
                                "/api/hello" => {
                                    builder.status(200).body("hello from upstream".into())
                                }
                                "/api/echo" => builder.status(200).body(body),
                                "/api/redirect" => builder
                                    .status(302)
                                    .header("location", redirect_to)
                                    .body(String::new()),
                                _ => builder.status(404).body("no".into()),
                            }
                            .unwrap();
                            Ok::<_, std::convert::Infallible>(
                                response.map(|b| http_body_util::Full::new(Bytes::from(b))),
                            )
                        }
                    },
                );
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let name = stream.get_ref().1.server_name().map(str::to_string);
                        named.lock().unwrap().push(name);
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        connections,
        requests,
        names,
    }
}

async fn plain_upstream() -> Upstream {
    upstream(None, "http://127.0.0.1:9/").await
}

/// A plain upstream, and a server whose function is granted it: the grant's URL is
/// `http://127.0.0.1:<port><path>`, with `allow_private` and the keys in `more`.
async fn granted_upstream(path: &str, more: &str) -> (Upstream, TestServer) {
    let up = plain_upstream().await;
    let server = TestServer::start().await;
    let grant = format!(
        r#"{{ url = "http://127.0.0.1:{}{path}", allow_private = true{more} }}"#,
        up.port()
    );
    deployed(&server, &grant).await;
    (up, server)
}

/// A server that reads requests and never answers; counts connections accepted and closed.
struct Stall {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

async fn stall() -> Stall {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (a, c) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Stall {
        addr,
        accepted,
        closed,
    }
}

/// The platform still serves: the guest answers, and a granted call still goes through.
async fn still_serving(server: &TestServer) {
    let reply = server.get("/count").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "1");
}

#[tokio::test]
async fn a_granted_http_call_reaches_a_loopback_server_and_is_audited_and_counted() {
    let up = plain_upstream().await;
    let server = TestServer::start().await;
    let report = deployed(
        &server,
        &format!(
            r#"{{ url = "http://127.0.0.1:{}/api", methods = ["GET", "POST"], allow_private = true }}"#,
            up.port()
        ),
    )
    .await;
    assert!(
        report.warnings_text.contains("private-egress"),
        "{}",
        report.warnings_text
    );
    let url = format!("http://127.0.0.1:{}/api/echo?token=query-secret", up.port());
    let answer = fetch(&server, "POST", &url, "ping from the guest").await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "ping from the guest");

    let seen = up.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/api/echo?token=query-secret");
    assert_eq!(seen[0].host, format!("127.0.0.1:{}", up.port()));
    assert_eq!(seen[0].body, "ping from the guest");

    let exchanged = events(&server, "egress", 1).await;
    let event = &exchanged[0].event;
    assert_eq!(event["outcome"], "success", "{event}");
    assert_eq!(
        event["detail"]["destination"],
        format!("http://127.0.0.1:{}", up.port())
    );
    assert_eq!(event["detail"]["address"], "127.0.0.1");
    assert_eq!(event["detail"]["status"], 200);
    assert_eq!(event["detail"]["method"], "POST");
    assert_eq!(event["detail"]["bytes_sent"], 19);
    assert_eq!(event["detail"]["bytes_received"], 19);
    assert_eq!(event["detail"]["body"], "complete");
    // The path and query may carry data: no event holds them.
    let all = server.audit(Default::default()).await;
    assert!(
        all.iter()
            .all(|row| !row.event.to_string().contains("query-secret")),
        "the query leaked into the audit stream"
    );
    let decisions = server.events("authz.decision").await;
    assert!(
        decisions
            .iter()
            .any(|row| row.event["detail"]["action"] == "egress"
                && row.event["outcome"] == "success"
                && row.event["reason"]
                    .as_str()
                    .unwrap()
                    .contains("grant/net/hostile/egress/0")),
        "{decisions:?}"
    );

    let metrics = server.server().platform().metrics().encode();
    for line in [
        "zerofn_egress_requests_total{app=\"net\",function=\"hostile\",outcome=\"allowed\"} 1",
        "zerofn_egress_sent_bytes_total{app=\"net\",function=\"hostile\"} 19",
        "zerofn_egress_received_bytes_total{app=\"net\",function=\"hostile\"} 19",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn a_granted_https_call_verifies_the_certificate_against_the_egress_ca() {
    let (ca_pem, tls) = common::tls_server(&["localhost"]);
    let up = upstream(Some(tls), "http://127.0.0.1:9/").await;
    let grant = format!(
        r#"{{ url = "https://localhost:{}/api", allow_private = true }}"#,
        up.port()
    );
    let url = format!("https://localhost:{}/api/hello", up.port());

    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("egress-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let trusting = TestServer::start_with(|config| config.egress_ca = Some(ca_file.clone())).await;
    deployed(&trusting, &grant).await;
    let answer = fetch(&trusting, "GET", &url, "").await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "hello from upstream");
    assert_eq!(
        up.names
            .lock()
            .unwrap()
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("localhost"),
        "SNI names the granted host"
    );
    assert_eq!(up.requests()[0].host, format!("localhost:{}", up.port()));
    let exchanged = events(&trusting, "egress", 1).await;
    assert_eq!(exchanged[0].event["detail"]["status"], 200);

    // Without the CA the certificate is refused, and the request never reaches the server.
    let requests_before = up.requests().len();
    let untrusting = TestServer::start().await;
    deployed(&untrusting, &grant).await;
    let answer = fetch(&untrusting, "GET", &url, "").await;
    assert_eq!(
        answer["error"], "ErrorCode::TlsCertificateError",
        "{answer}"
    );
    assert_eq!(up.requests().len(), requests_before);
    let failed = events(&untrusting, "egress", 1).await;
    assert_eq!(failed[0].event["outcome"], "failure");
    assert_eq!(failed[0].event["reason"], "tls-certificate-refused");
    let metrics = untrusting.server().platform().metrics().encode();
    assert!(
        metrics.contains(
            "zerofn_egress_requests_total{app=\"net\",function=\"hostile\",outcome=\"failed\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn hosts_ports_and_schemes_not_granted_are_refused_before_any_connection() {
    let (up, server) = granted_upstream("/api", "").await;
    let other = plain_upstream().await;
    for url in [
        "http://not-granted.example/".to_string(),
        format!("http://127.0.0.1:{}/api/hello", other.port()),
        format!("https://127.0.0.1:{}/api/hello", up.port()),
        format!("http://127.0.0.2:{}/api/hello", up.port()),
        format!("http://localhost:{}/api/hello", up.port()),
    ] {
        let answer = fetch(&server, "GET", &url, "").await;
        assert_denied(&answer);
        let denial = last_denial(&server, "egress-not-granted").await;
        assert!(
            denial["detail"]["help"]
                .as_str()
                .unwrap()
                .contains("functions.hostile.grants.egress"),
            "{denial}"
        );
    }
    assert_eq!(up.connections(), 0);
    assert_eq!(other.connections(), 0);
    let denial = server.events("egress.denied").await;
    assert_eq!(
        denial[1].event["detail"]["destination"],
        format!("http://127.0.0.1:{}", other.port())
    );
    still_serving(&server).await;
    let answer = fetch(
        &server,
        "GET",
        &format!("http://127.0.0.1:{}/api/hello", up.port()),
        "",
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let metrics = server.server().platform().metrics().encode();
    assert!(
        metrics.contains("zerofn_egress_refusals_total{app=\"net\",function=\"hostile\",rule=\"egress-not-granted\"} 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn user_info_in_the_url_is_refused_whichever_side_of_the_at_is_granted() {
    let (up, server) = granted_upstream("", "").await;
    let port = up.port();
    for url in [
        format!("http://user@127.0.0.1:{port}/api/hello"),
        format!("http://user:password@127.0.0.1:{port}/api/hello"),
        format!("http://127.0.0.1:{port}@evil.example/api/hello"),
        format!("http://127.0.0.1@127.0.0.1:{port}/api/hello"),
    ] {
        assert_denied(&fetch(&server, "GET", &url, "").await);
        let denial = last_denial(&server, "egress-userinfo").await;
        assert!(
            !denial.to_string().contains("password"),
            "the user info leaked: {denial}"
        );
    }
    assert_eq!(up.connections(), 0);
    still_serving(&server).await;
}

#[tokio::test]
async fn loopback_and_metadata_literals_are_refused_in_every_spelling() {
    let up = plain_upstream().await;
    let port = up.port();
    let server = TestServer::start().await;
    // Granted by address but without `allow_private`: every spelling normalises to the granted
    // host and is then refused for what it is.
    deployed(
        &server,
        &format!(r#""http://127.0.0.1:{port}", "http://169.254.169.254""#),
    )
    .await;
    for host in [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f000001",
        "0x7f.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ] {
        let answer = fetch(
            &server,
            "GET",
            &format!("http://{host}:{port}/api/hello"),
            "",
        )
        .await;
        assert_denied(&answer);
        let denial = last_denial(&server, "egress-private-address").await;
        assert_eq!(denial["detail"]["address"], "127.0.0.1", "{host}");
        assert_eq!(denial["detail"]["range"], "loopback", "{host}");
        assert_eq!(
            denial["detail"]["destination"],
            format!("http://127.0.0.1:{port}"),
            "{host}"
        );
    }
    for host in [
        "169.254.169.254",
        "2852039166",
        "0251.0376.0251.0376",
        "0xa9fea9fe",
        "0xA9.0xFE.0xA9.0xFE",
        "[::ffff:169.254.169.254]",
    ] {
        let answer = fetch(
            &server,
            "GET",
            &format!("http://{host}/latest/meta-data/"),
            "",
        )
        .await;
        assert_denied(&answer);
        let denial = last_denial(&server, "egress-private-address").await;
        assert_eq!(denial["detail"]["address"], "169.254.169.254", "{host}");
        assert_eq!(denial["detail"]["range"], "link-local", "{host}");
    }
    // Other loopback and unspecified addresses are simply not granted.
    for host in ["[::1]", "0.0.0.0", "[::]", "127.0.0.2"] {
        let answer = fetch(&server, "GET", &format!("http://{host}:{port}/"), "").await;
        assert_denied(&answer);
        last_denial(&server, "egress-not-granted").await;
    }
    assert_eq!(up.connections(), 0);
    still_serving(&server).await;
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_without_allow_private() {
    let up = plain_upstream().await;
    let port = up.port();
    let server = TestServer::start().await;
    deployed(&server, &format!(r#""http://localhost:{port}""#)).await;
    let answer = fetch(
        &server,
        "GET",
        &format!("http://localhost:{port}/api/hello"),
        "",
    )
    .await;
    assert_denied(&answer);
    let denial = last_denial(&server, "egress-private-address").await;
    let address = denial["detail"]["address"].as_str().unwrap().to_string();
    assert!(address == "127.0.0.1" || address == "::1", "{denial}");
    assert_eq!(denial["detail"]["range"], "loopback");
    assert_eq!(up.connections(), 0);
    // The name was granted: the first decision allowed it, the resolved address did not.
    let decisions = server.events("authz.decision").await;
    let phases: Vec<(&str, &str)> = decisions
        .iter()
        .map(|row| {
            (
                row.event["detail"]["phase"].as_str().unwrap_or_default(),
                row.event["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(phases.contains(&("request", "success")), "{phases:?}");
    assert!(phases.contains(&("resolved", "denied")), "{phases:?}");
    still_serving(&server).await;

    // With `allow_private`, the same name is reached.
    let allowed = TestServer::start().await;
    deployed(
        &allowed,
        &format!(r#"{{ url = "http://localhost:{port}", allow_private = true }}"#),
    )
    .await;
    let answer = fetch(
        &allowed,
        "GET",
        &format!("http://localhost:{port}/api/hello"),
        "",
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(up.requests()[0].host, format!("localhost:{port}"));
}

#[tokio::test]
async fn a_redirect_reaches_the_guest_and_is_not_followed() {
    let elsewhere = plain_upstream().await;
    let up = upstream(
        None,
        &format!("http://127.0.0.1:{}/stolen", elsewhere.port()),
    )
    .await;
    let server = TestServer::start().await;
    deployed(
        &server,
        &format!(
            r#"{{ url = "http://127.0.0.1:{}/api", allow_private = true }}"#,
            up.port()
        ),
    )
    .await;
    let answer = fetch(
        &server,
        "GET",
        &format!("http://127.0.0.1:{}/api/redirect", up.port()),
        "",
    )
    .await;
    assert_eq!(answer["status"], 302, "{answer}");
    assert_eq!(
        answer["location"],
        format!("http://127.0.0.1:{}/stolen", elsewhere.port())
    );
    assert_eq!(up.requests().len(), 1);
    assert_eq!(elsewhere.connections(), 0, "the redirect was followed");
    let exchanged = events(&server, "egress", 1).await;
    assert_eq!(exchanged.len(), 1);
    assert_eq!(exchanged[0].event["detail"]["status"], 302);

    // The guest following it itself is a request like any other: not granted.
    assert_denied(&fetch(&server, "GET", answer["location"].as_str().unwrap(), "").await);
    last_denial(&server, "egress-not-granted").await;
    assert_eq!(elsewhere.connections(), 0);
}

#[tokio::test]
async fn methods_and_paths_outside_the_grant_are_refused() {
    let (up, server) = granted_upstream("/api", r#", methods = ["GET"]"#).await;
    let port = up.port();
    for method in ["POST", "PUT", "DELETE"] {
        let answer = fetch(
            &server,
            method,
            &format!("http://127.0.0.1:{port}/api/echo"),
            "x",
        )
        .await;
        assert_denied(&answer);
        let denial = last_denial(&server, "egress-method-not-allowed").await;
        assert_eq!(denial["detail"]["method"], method);
    }
    for path in [
        "/apix",
        "/",
        "/ap",
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/API/hello",
    ] {
        let answer = fetch(
            &server,
            "GET",
            &format!("http://127.0.0.1:{port}{path}"),
            "",
        )
        .await;
        assert_denied(&answer);
        let denial = last_denial(&server, "egress-path-not-granted").await;
        assert_eq!(
            denial["detail"]["destination"],
            format!("http://127.0.0.1:{port}"),
            "never the path: {denial}"
        );
    }
    assert_eq!(up.connections(), 0);
    for path in ["/api", "/api/hello", "/api/./hello"] {
        let answer = fetch(
            &server,
            "GET",
            &format!("http://127.0.0.1:{port}{path}"),
            "",
        )
        .await;
        assert!(answer["status"].is_u64(), "{path}: {answer}");
    }
    assert_eq!(
        up.requests()
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        ["/api", "/api/hello", "/api/hello"],
        "what was matched is what was sent"
    );
}

#[tokio::test]
async fn an_operator_guardrail_wins_over_a_grant_and_is_named() {
    let up = plain_upstream().await;
    let port = up.port();
    let rails = tempfile::tempdir().unwrap();
    std::fs::write(
        rails.path().join("egress.cedar"),
        format!(
            "@id(\"no-port-{port}\")\nforbid(principal, action == Action::\"egress\", resource)\nwhen {{ context.destination.port == {port} }};\n"
        ),
    )
    .unwrap();
    let server =
        TestServer::start_with(|config| config.guardrails = vec![rails.path().to_path_buf()]).await;
    deployed(
        &server,
        &format!(r#"{{ url = "http://127.0.0.1:{port}", allow_private = true }}"#),
    )
    .await;
    let answer = fetch(
        &server,
        "GET",
        &format!("http://127.0.0.1:{port}/api/hello"),
        "",
    )
    .await;
    assert_denied(&answer);
    let denial = last_denial(&server, "egress-guardrail").await;
    assert_eq!(
        denial["detail"]["policies"],
        serde_json::json!([format!("no-port-{port}")])
    );
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn an_exchange_never_outlives_its_timeouts_or_the_invocation() {
    let stalled = stall().await;
    let port = stalled.addr.port();
    let server = TestServer::start().await;
    deployed_with(
        &server,
        &format!(r#"{{ url = "http://127.0.0.1:{port}", allow_private = true }}"#),
        "timeout_ms = 1000",
    )
    .await;
    // The guest's first-byte timeout ends the wait with the error it asked for.
    let answer = fetch_with(
        &server,
        "GET",
        &format!("http://127.0.0.1:{port}/"),
        "",
        "&first_byte_ms=100",
    )
    .await;
    assert_eq!(
        answer["error"], "ErrorCode::ConnectionReadTimeout",
        "{answer}"
    );
    let failed = events(&server, "egress", 1).await;
    assert_eq!(failed[0].event["reason"], "response-timeout");

    // Without one, the invocation's deadline ends it, and the connection with it.
    let reply = server
        .get(&format!(
            "/outbound?url={}",
            encode(&format!("http://127.0.0.1:{port}/"))
        ))
        .await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    let ended = events(&server, "egress", 2).await;
    assert_eq!(
        ended[1].event["reason"], "invocation-ended",
        "{:?}",
        ended[1].event
    );
    for _ in 0..500 {
        if stalled.closed.load(Ordering::SeqCst) == stalled.accepted.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stalled.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(
        stalled.closed.load(Ordering::SeqCst),
        2,
        "a connection outlived its invocation"
    );
}

#[tokio::test]
async fn an_egress_grant_opens_no_socket_to_the_guest() {
    let (up, server) = granted_upstream("", "").await;
    let reply = server.get("/ambient").await;
    assert_eq!(reply.status, 200);
    let ambient = reply.json();
    for probe in ["tcp_connect", "dns"] {
        let result = ambient[probe].as_str().unwrap();
        assert!(result.starts_with("err:"), "{probe}: {result}");
    }
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn a_wildcard_grant_covers_subdomains_only_and_deploys_with_a_warning() {
    let server = TestServer::start().await;
    let report = deployed(&server, r#""https://*.example.com""#).await;
    assert!(
        report.warnings_text.contains("wildcard-egress"),
        "{}",
        report.warnings_text
    );
    // The domain itself and look-alikes are not granted; nothing is resolved for them.
    for url in [
        "https://example.com/",
        "https://evilexample.com/",
        "https://example.com.evil.test/",
        "http://api.example.com/",
    ] {
        assert_denied(&fetch(&server, "GET", url, "").await);
        last_denial(&server, "egress-not-granted").await;
    }
}

#[tokio::test]
async fn an_invocation_holds_a_bounded_number_of_exchanges_open() {
    let stalled = stall().await;
    let port = stalled.addr.port();
    let server = TestServer::start().await;
    deployed(
        &server,
        &format!(r#"{{ url = "http://127.0.0.1:{port}", allow_private = true }}"#),
    )
    .await;
    let n = zerofn_server::egress::MAX_IN_FLIGHT + 1;
    let reply = server
        .get(&format!(
            "/outbound-many?url={}&n={n}",
            encode(&format!("http://127.0.0.1:{port}/"))
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["error"], "ErrorCode::ConnectionLimitReached");
    let denial = last_denial(&server, "egress-in-flight-limit").await;
    assert_eq!(
        denial["detail"]["destination"],
        format!("http://127.0.0.1:{port}")
    );
    assert!(stalled.accepted.load(Ordering::SeqCst) <= zerofn_server::egress::MAX_IN_FLIGHT);
    still_serving(&server).await;
}
