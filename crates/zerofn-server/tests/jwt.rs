//! Callers with bearer tokens (`auth.jwt`), through the real trigger, with real signatures: a
//! good token reaches the function, which sees the verified claims and never the token; every
//! kind of bad token is refused with its own rule before any sandbox exists; key sets come from
//! a signed file or from an https URL that is fetched again when the issuer rotates its keys.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{Reply, TestServer, request};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use zerofn_manifest::AttachedFiles;
use zerofn_test_artifacts::HOSTILE;

const ISSUER: &str = "https://login.example.test";
const AUDIENCE: &str = "orders-api";
/// A test-only RSA key (PKCS#1 DER), generated for these tests.
const RSA_KEY: &[u8] = include_bytes!("fixtures/jwt-issuer-rsa.pkcs1.der");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/jwt-issuer-rsa.pub.pem");

fn manifest(jwks: &str, extra: &str) -> String {
    format!(
        r#"[app]
name = "orders"
version = "1.0.0"

[functions.list]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/headers", methods = ["GET"] }} }}

[functions.list.auth.jwt]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks = "{jwks}"
{extra}
"#
    )
}

/// An issuer's signing key: its private half signs tokens, its public half goes in a JWKS.
struct IssuerKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
}

impl IssuerKey {
    fn ec(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
        }
    }

    fn rsa(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(RSA_KEY),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn jwks(keys: &[&IssuerKey]) -> Vec<u8> {
    serde_json::to_vec(&JwkSet {
        keys: keys.iter().map(|k| k.jwk()).collect(),
    })
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "exp": now() + 300,
        "iat": now(),
        "tenant": "acme",
    })
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    claims[key] = value;
    claims
}

/// A token with an arbitrary header, signed (or not) as the test says.
fn raw_token(header: serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode(signature)
    )
}

async fn get(server: &TestServer, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    request(
        server.addr,
        "GET",
        "/headers",
        &headers,
        bytes::Bytes::new(),
    )
    .await
}

async fn bearer(server: &TestServer, token: &str) -> Reply {
    get(server, Some(&format!("Bearer {token}"))).await
}

async fn deploy_with_jwks_file(server: &TestServer, manifest: &str, jwks: Vec<u8>) {
    let mut files = AttachedFiles::new();
    files.insert("keys/jwks.json", jwks);
    deploy_files(server, manifest, files).await.unwrap();
}

async fn deploy_files(
    server: &TestServer,
    manifest: &str,
    files: AttachedFiles,
) -> Result<zerofn_server::DeployReport, zerofn_server::DeployError> {
    let components: BTreeMap<String, Vec<u8>> =
        [("list".to_string(), std::fs::read(HOSTILE).unwrap())].into();
    let attestations = common::sign_with_files(manifest, &components, &server.key, &files);
    server
        .deploy_with_files(manifest, components, attestations, files)
        .await
}

fn assert_refused(reply: &Reply, status: u16, rule: &str, token: &str) {
    assert_eq!(reply.status, status, "{rule}: {}", reply.text());
    let body = reply.json();
    assert_eq!(
        body["type"],
        format!("urn:zerofn:problem:{rule}"),
        "{rule}: {body}"
    );
    assert!(
        token.is_empty() || !reply.text().contains(token),
        "a refusal must not echo the token: {}",
        reply.text()
    );
    if status == 401 {
        let challenge = reply.headers.get("www-authenticate").unwrap();
        assert!(challenge.to_str().unwrap().starts_with("Bearer"));
    }
}

#[tokio::test]
async fn a_good_token_reaches_the_function_as_verified_claims_and_never_as_a_token() {
    let server = TestServer::start().await;
    let key = IssuerKey::ec("k1");
    deploy_with_jwks_file(
        &server,
        &manifest("keys/jwks.json", "required_claims = [\"tenant\"]"),
        jwks(&[&key]),
    )
    .await;
    let token = key.sign(&claims());
    let reply = bearer(&server, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["x-zerofn-jwt-sub"], "user-42");
    assert_eq!(seen["x-zerofn-jwt-iss"], ISSUER);
    let payload: serde_json::Value = serde_json::from_slice(
        &B64.decode(seen["x-zerofn-jwt-payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["tenant"], "acme");
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert!(!reply.text().contains(&token));

    // A forged claim header from the caller is replaced, not believed.
    let forged = request(
        server.addr,
        "GET",
        "/headers",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-zerofn-jwt-sub", "admin"),
        ],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(forged.json()["x-zerofn-jwt-sub"], "user-42");

    // Within the bounded clock skew (60 s) an expired token still passes; beyond it, no.
    let just_expired = key.sign(&with(claims(), "exp", (now() - 20).into()));
    assert_eq!(bearer(&server, &just_expired).await.status, 200);

    let events = server.events("authn.decision").await;
    let allowed = events.iter().find(|e| e.outcome == "success").unwrap();
    let detail = &allowed.event["detail"];
    assert_eq!(detail["method"], "jwt");
    assert_eq!(detail["subject"], "user-42");
    assert_eq!(detail["credential"], "k1");
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_with_its_own_rule() {
    let server = TestServer::start().await;
    let key = IssuerKey::ec("k1");
    let rsa = IssuerKey::rsa("r1");
    deploy_with_jwks_file(
        &server,
        &manifest("keys/jwks.json", "required_claims = [\"tenant\"]"),
        jwks(&[&key, &rsa]),
    )
    .await;

    // Signed by a key the issuer never published, under a published kid: a forgery.
    let forger = IssuerKey::ec("k1");
    let forged = forger.sign(&claims());
    // `alg: none`, unsigned.
    let none = raw_token(
        serde_json::json!({"alg": "none", "kid": "k1"}),
        &claims(),
        b"",
    );
    // HS256 keyed with the issuer's public RSA key: the classic key-confusion forgery.
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("r1".into());
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(RSA_PUBLIC)).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("forged", forged, "jwt-bad-signature"),
        ("alg none", none, "jwt-algorithm-not-allowed"),
        (
            "HS256 with the public key",
            confused,
            "jwt-algorithm-not-allowed",
        ),
        (
            "expired beyond the skew",
            key.sign(&with(claims(), "exp", (now() - 120).into())),
            "jwt-expired",
        ),
        (
            "not yet valid",
            key.sign(&with(claims(), "nbf", (now() + 600).into())),
            "jwt-not-yet-valid",
        ),
        (
            "wrong audience",
            key.sign(&with(claims(), "aud", "billing-api".into())),
            "jwt-wrong-audience",
        ),
        (
            "wrong issuer",
            key.sign(&with(claims(), "iss", "https://evil.example".into())),
            "jwt-wrong-issuer",
        ),
        (
            "no exp",
            key.sign(&{
                let mut c = claims();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
            "jwt-claim-missing",
        ),
        (
            "required claim missing",
            key.sign(&{
                let mut c = claims();
                c.as_object_mut().unwrap().remove("tenant");
                c
            }),
            "jwt-claim-missing",
        ),
        (
            "unknown kid",
            IssuerKey::ec("k9").sign(&claims()),
            "jwt-unknown-key",
        ),
        (
            "crit header",
            raw_token(
                serde_json::json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
                &claims(),
                b"sig",
            ),
            "jwt-malformed",
        ),
        ("not a JWS", "abc.def".into(), "jwt-malformed"),
    ];
    for (name, token, rule) in &cases {
        let reply = bearer(&server, token).await;
        assert_refused(&reply, 401, rule, token);
        eprintln!("{name}: refused with {rule}");
    }
    assert_refused(&get(&server, None).await, 401, "jwt-missing", "");
    assert_refused(
        &get(&server, Some("Basic dXNlcjpwYXNz")).await,
        401,
        "jwt-missing",
        "dXNlcjpwYXNz",
    );

    // The RSA key is accepted for RS256, the algorithm it is for.
    let good_rsa = rsa.sign(&claims());
    assert_eq!(bearer(&server, &good_rsa).await.status, 200);

    let denied = server.events("authn.decision").await;
    let denied: Vec<_> = denied.iter().filter(|e| e.outcome == "denied").collect();
    assert_eq!(denied.len(), cases.len() + 2);
    for event in denied {
        for (_, token, _) in &cases {
            assert!(
                token.len() < 20 || !event.event.to_string().contains(token.as_str()),
                "the audit log must not hold tokens"
            );
        }
    }
}

#[tokio::test]
async fn the_algorithm_allow_list_is_the_manifests() {
    let server = TestServer::start().await;
    let key = IssuerKey::ec("k1");
    let rsa = IssuerKey::rsa("r1");
    deploy_with_jwks_file(
        &server,
        &manifest("keys/jwks.json", "algorithms = [\"ES256\"]"),
        jwks(&[&key, &rsa]),
    )
    .await;
    assert_eq!(bearer(&server, &key.sign(&claims())).await.status, 200);
    let token = rsa.sign(&claims());
    assert_refused(
        &bearer(&server, &token).await,
        401,
        "jwt-algorithm-not-allowed",
        &token,
    );
}

#[tokio::test]
async fn the_jwks_file_is_signed_sent_and_kept_with_the_version() {
    let server = TestServer::start().await;
    let key = IssuerKey::ec("k1");
    let app = manifest("keys/jwks.json", "");
    let components: BTreeMap<String, Vec<u8>> =
        [("list".to_string(), std::fs::read(HOSTILE).unwrap())].into();
    let mut signed_files = AttachedFiles::new();
    signed_files.insert("keys/jwks.json", jwks(&[&key]));
    let attestations = common::sign_with_files(&app, &components, &server.key, &signed_files);

    // A key set swapped after signing: the attacker's key would be trusted.
    let attacker = IssuerKey::ec("k1");
    let mut swapped = AttachedFiles::new();
    swapped.insert("keys/jwks.json", jwks(&[&attacker]));
    let refused = server
        .deploy_with_files(&app, components.clone(), attestations.clone(), swapped)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("file-not-signed")
            || refused.to_json().to_string().contains("file-not-signed"),
        "{}",
        refused.to_json()
    );

    // Not sent at all; and a file no field names.
    let missing = server
        .deploy_with_files(
            &app,
            components.clone(),
            attestations.clone(),
            AttachedFiles::new(),
        )
        .await
        .unwrap_err();
    assert!(
        missing.to_json().to_string().contains("missing-file"),
        "{}",
        missing.to_json()
    );
    let mut extra = signed_files.clone();
    extra.insert("notes.txt", b"hello".to_vec());
    let unreferenced = server
        .deploy_with_files(&app, components.clone(), attestations.clone(), extra)
        .await
        .unwrap_err();
    assert!(
        unreferenced
            .to_json()
            .to_string()
            .contains("file-not-referenced"),
        "{}",
        unreferenced.to_json()
    );

    // A key set with no usable key.
    let mut empty = AttachedFiles::new();
    empty.insert(
        "keys/jwks.json",
        br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_vec(),
    );
    let unusable = deploy_files(&server, &app, empty).await.unwrap_err();
    assert!(
        unusable.to_json().to_string().contains("auth-unusable"),
        "{}",
        unusable.to_json()
    );

    // The signed one deploys, and survives a restart: the file comes back from the store.
    server
        .deploy_with_files(&app, components, attestations, signed_files)
        .await
        .unwrap();
    let token = key.sign(&claims());
    assert_eq!(bearer(&server, &token).await.status, 200);
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(bearer(&server, &token).await.status, 200);
}

/// An issuer's JWKS endpoint on loopback, over TLS with a test CA, whose keys the test swaps.
struct JwksEndpoint {
    url: String,
    ca_pem: String,
    keys: Arc<Mutex<Vec<u8>>>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks_endpoint(initial: Vec<u8>) -> JwksEndpoint {
    let (ca_pem, config) = common::tls_server(&["127.0.0.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (keys.clone(), fetches.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(stream) = acceptor.accept(stream).await else {
                continue;
            };
            let (served, counted) = (served.clone(), counted.clone());
            let service = hyper::service::service_fn(move |_request| {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                async move {
                    let response = hyper::Response::builder()
                        .header("content-type", "application/jwk-set+json")
                        .header("cache-control", "max-age=3600")
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    JwksEndpoint {
        url: format!("https://127.0.0.1:{}/.well-known/jwks.json", addr.port()),
        ca_pem,
        keys,
        fetches,
    }
}

#[tokio::test]
async fn a_jwks_url_is_cached_and_fetched_again_when_the_issuer_rotates() {
    let old = IssuerKey::ec("2026-old");
    let new = IssuerKey::ec("2026-new");
    let endpoint = jwks_endpoint(jwks(&[&old])).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("issuer-ca.pem");
    std::fs::write(&ca_file, &endpoint.ca_pem).unwrap();
    let server = TestServer::start_with(|config| config.jwks_ca = Some(ca_file.clone())).await;
    deploy_files(&server, &manifest(&endpoint.url, ""), AttachedFiles::new())
        .await
        .unwrap();

    let old_token = old.sign(&claims());
    assert_eq!(bearer(&server, &old_token).await.status, 200);
    assert_eq!(bearer(&server, &old_token).await.status, 200);
    assert_eq!(
        endpoint.fetches.load(Ordering::SeqCst),
        1,
        "a fresh key set is served from the cache"
    );

    // The issuer rotates: the new key replaces the old one.
    *endpoint.keys.lock().unwrap() = jwks(&[&new]);
    tokio::time::sleep(zerofn_server::authn::jwks::UNKNOWN_KEY_REFETCH_INTERVAL).await;
    let new_token = new.sign(&claims());
    let reply = bearer(&server, &new_token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 2);
    // The withdrawn key is no longer trusted.
    assert_refused(
        &bearer(&server, &old_token).await,
        401,
        "jwt-unknown-key",
        &old_token,
    );

    // A flood of made-up key ids does not become a flood of fetches.
    let started = std::time::Instant::now();
    for n in 0..20 {
        let token = IssuerKey::ec(&format!("made-up-{n}")).sign(&claims());
        assert_eq!(bearer(&server, &token).await.status, 401);
    }
    let allowed = 1 + started.elapsed().as_secs() as usize;
    assert!(
        endpoint.fetches.load(Ordering::SeqCst) <= 2 + allowed,
        "at most one fetch per interval"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_an_open_door() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let server = TestServer::start().await;
    let url = format!("https://127.0.0.1:{port}/jwks.json");
    deploy_files(&server, &manifest(&url, ""), AttachedFiles::new())
        .await
        .unwrap();
    let token = IssuerKey::ec("k1").sign(&claims());
    let reply = bearer(&server, &token).await;
    assert_refused(&reply, 503, "jwks-unavailable", &token);
    assert!(reply.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn an_untrusted_jwks_server_certificate_is_refused() {
    // The endpoint's CA is not given to the platform: its certificate does not verify.
    let key = IssuerKey::ec("k1");
    let endpoint = jwks_endpoint(jwks(&[&key])).await;
    let server = TestServer::start().await;
    deploy_files(&server, &manifest(&endpoint.url, ""), AttachedFiles::new())
        .await
        .unwrap();
    let token = key.sign(&claims());
    assert_refused(
        &bearer(&server, &token).await,
        503,
        "jwks-unavailable",
        &token,
    );
    assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 0);
}
