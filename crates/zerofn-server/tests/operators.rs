//! The remote control plane through the real path: a server with a TLS 1.3 listener on
//! loopback (certificate from the built-in CA, or from files of a CA made here with rcgen),
//! operators enrolled over the local socket, logins with real signatures and real TOTP codes, and each role's actions allowed or
//! refused with problem details and audit events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{HELLO_MANIFEST, TestServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use zerofn_identity::ClientCertPolicy;
use zerofn_server::control::{
    CaBundle, ControlClient, ControlError, EnrollOperatorRequest, LoginChallenge,
    LoginChallengeRequest, LoginRequest,
};
use zerofn_server::operators::{Enrolled, IssuedSession, login_message};
use zerofn_server::{RemoteControlConfig, control::CertificateSource};
use zerofn_signing::{Algorithm, PrivateKey};

/// A CA and a `localhost`/`127.0.0.1` leaf it signed, as PEM files in `dir`; returns the
/// CA bundle's path.
fn write_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca, cert, key)
}

struct Remote {
    server: TestServer,
    url: String,
    /// The CA bundle operators pass with `--ca`.
    ca: PathBuf,
    /// Holds the certificate files and the bundle for the test.
    tls: tempfile::TempDir,
}

/// Where the control listener's certificate comes from in a test.
#[derive(Clone, Copy)]
enum Certificates {
    /// The built-in CA (the default); operators trust the bundle from `GET /v1/ca/bundle`.
    Builtin,
    /// Files from a CA made here ([`write_certificates`]).
    Files,
}

async fn start(session_ttl: Duration) -> Remote {
    start_serving(session_ttl, Certificates::Builtin).await
}

async fn start_serving(session_ttl: Duration, certificates: Certificates) -> Remote {
    let tls = tempfile::tempdir().unwrap();
    let (ca, certificate) = match certificates {
        Certificates::Builtin => (None, CertificateSource::Builtin),
        Certificates::Files => {
            let (ca, cert, key) = write_certificates(tls.path());
            (Some(ca), CertificateSource::Files { cert, key })
        }
    };
    let server = TestServer::start_with(|config| {
        config.remote_control = Some(RemoteControlConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            certificate,
            session_ttl,
        });
    })
    .await;
    // What an operator does with the built-in CA: `zerofn ca bundle` on the local socket, and
    // that file as `--ca`.
    let ca = match ca {
        Some(ca) => ca,
        None => {
            let bundle: CaBundle = ControlClient::new(server.server().control_socket())
                .get("/v1/ca/bundle")
                .await
                .unwrap();
            let path = tls.path().join("bundle.pem");
            std::fs::write(&path, bundle.bundle_pem).unwrap();
            path
        }
    };
    let addr = server.server().remote_control_addr().unwrap();
    Remote {
        url: format!("https://localhost:{}", addr.port()),
        server,
        ca,
        tls,
    }
}

/// An operator: its key and its TOTP generator, from the secret printed at enrollment.
struct Operator {
    name: String,
    key: PrivateKey,
    totp: totp_rs::Totp,
}

impl Operator {
    /// The code for `offset_steps` steps from now.
    fn code(&self, offset_steps: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        self.totp
            .generate((now + 30 * offset_steps) as u64)
            .to_string()
    }
}

impl Remote {
    fn local(&self) -> ControlClient {
        ControlClient::new(self.server.server().control_socket())
    }

    fn client(&self) -> ControlClient {
        ControlClient::remote(&self.url, &self.ca).unwrap()
    }

    async fn enroll(&self, name: &str, role: &str, algorithm: Algorithm) -> Operator {
        let key = PrivateKey::generate(algorithm).unwrap();
        let enrolled: Enrolled = self
            .local()
            .post(
                "/v1/operators",
                &EnrollOperatorRequest {
                    name: name.into(),
                    role: role.into(),
                    public_key: key.public().to_pem(),
                },
            )
            .await
            .unwrap();
        assert!(enrolled.otpauth_uri.starts_with("otpauth://totp/"));
        Operator {
            name: name.into(),
            key,
            totp: totp_rs::Totp::from_url(&enrolled.otpauth_uri).unwrap(),
        }
    }

    async fn challenge(&self, operator: &str) -> LoginChallenge {
        self.client()
            .post(
                "/v1/login/challenge",
                &LoginChallengeRequest {
                    operator: operator.into(),
                },
            )
            .await
            .unwrap()
    }

    async fn login_with(
        &self,
        operator: &Operator,
        challenge: &LoginChallenge,
        code: &str,
    ) -> Result<IssuedSession, ControlError> {
        let signature = operator.key.sign(&login_message(
            &operator.name,
            &challenge.nonce,
            &challenge.audience,
        ));
        self.client()
            .post(
                "/v1/login",
                &LoginRequest {
                    operator: operator.name.clone(),
                    nonce: challenge.nonce.clone(),
                    signature: BASE64.encode(signature),
                    totp: code.into(),
                },
            )
            .await
    }

    async fn login(&self, operator: &Operator, offset_steps: i64) -> ControlClient {
        let challenge = self.challenge(&operator.name).await;
        let session = self
            .login_with(operator, &challenge, &operator.code(offset_steps))
            .await
            .unwrap();
        self.client().with_session(session.token)
    }
}

fn refused(result: Result<serde_json::Value, ControlError>) -> (u16, serde_json::Value) {
    match result {
        Err(ControlError::Refused { status, problem }) => (status, problem),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Asserts a 401 `login-refused` that does not say which factor failed, and that the audit
/// stream recorded `reason` for it.
async fn assert_login_refused(
    remote: &Remote,
    result: Result<IssuedSession, ControlError>,
    reason: &str,
) {
    let Err(ControlError::Refused { status, problem }) = result else {
        panic!("login was not refused: {result:?}");
    };
    assert_eq!(status, 401);
    assert_eq!(problem["type"], "urn:zerofn:problem:login-refused");
    let events = remote.server.events("operator.login").await;
    let last = events.last().unwrap();
    assert_eq!(last.outcome, "denied");
    let event = &last.event;
    assert_eq!(event["reason"], reason, "{event}");
    assert!(event["detail"]["peer"].as_str().is_some(), "{event}");
}

async fn deploy_request(remote: &Remote) -> zerofn_server::control::DeployRequest {
    deploy_version(remote, "1.0.0").await
}

async fn deploy_version(remote: &Remote, version: &str) -> zerofn_server::control::DeployRequest {
    let manifest =
        HELLO_MANIFEST.replace("version = \"1.0.0\"", &format!("version = \"{version}\""));
    let bytes = std::fs::read(zerofn_test_artifacts::HELLO).unwrap();
    let components = std::collections::BTreeMap::from([("hello".to_string(), bytes.clone())]);
    let attestations = common::sign(&manifest, &components, &remote.server.key);
    zerofn_server::control::DeployRequest {
        manifest_path: common::MANIFEST_PATH.into(),
        manifest,
        components: std::collections::BTreeMap::from([("hello".to_string(), BASE64.encode(bytes))]),
        attestations,
        files: Default::default(),
    }
}

#[tokio::test]
async fn a_deployer_logs_in_with_both_factors_and_deploys_and_rolls_back() {
    let remote = start(Duration::from_secs(900)).await;
    let deployer = remote
        .enroll("dana", "deployer", Algorithm::EcdsaP256)
        .await;
    let client = remote.login(&deployer, 0).await;
    let report: zerofn_server::DeployReport = client
        .post("/v1/deploy", &deploy_request(&remote).await)
        .await
        .unwrap();
    assert_eq!(report.app, "greet");
    let apps: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    assert_eq!(apps.len(), 1);
    // A second version, then back to the first.
    let _: zerofn_server::DeployReport = client
        .post("/v1/deploy", &deploy_version(&remote, "1.0.1").await)
        .await
        .unwrap();
    let back: zerofn_server::DeployReport = client
        .post("/v1/apps/greet/rollback", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(
        (back.app.as_str(), back.app_version.as_str()),
        ("greet", "1.0.0")
    );

    let (status, problem) = refused(
        client
            .post("/v1/trust/reload", &serde_json::json!({}))
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(problem["type"], "urn:zerofn:problem:control-action-denied");
    assert_eq!(problem["action"], "control.trust.reload");
    assert_eq!(problem["role"], "deployer");
    let (status, problem) = refused(
        client
            .post(
                "/v1/api-keys",
                &serde_json::json!({"app": "greet", "functions": ["*"]}),
            )
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(problem["action"], "control.api-key.manage");

    let decisions = remote.server.events("authz.decision").await;
    let outcomes: Vec<(String, String)> = decisions
        .iter()
        .map(|row| {
            let event = &row.event;
            (
                event["detail"]["action"].as_str().unwrap_or("").to_string(),
                row.outcome.clone(),
            )
        })
        .collect();
    for expected in [
        ("control.deploy", "success"),
        ("control.read", "success"),
        ("control.rollback", "success"),
        ("control.trust.reload", "denied"),
        ("control.api-key.manage", "denied"),
    ] {
        assert!(
            outcomes
                .iter()
                .any(|(a, o)| (a.as_str(), o.as_str()) == expected),
            "{expected:?} not in {outcomes:?}"
        );
    }
    let login = remote.server.events("operator.login").await;
    assert!(
        login.iter().any(|row| row.outcome == "success"
            && row.event["reason"] == "authenticated"
            && row.event["caller"] == "operator:dana"
            && row.event["detail"]["role"] == "deployer"),
        "{login:?}"
    );
    // Logins are no longer authentication decisions of their own kind.
    let authn = remote.server.events("authn.decision").await;
    assert!(
        authn
            .iter()
            .all(|row| row.event["detail"]["method"] == "operator-session"),
        "{authn:?}"
    );
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_deploy_or_reload_trust() {
    let remote = start(Duration::from_secs(900)).await;
    let viewer = remote.enroll("vic", "viewer", Algorithm::Ed25519).await;
    let client = remote.login(&viewer, 0).await;
    let _: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    let (status, problem) = refused(
        client
            .post("/v1/deploy", &deploy_request(&remote).await)
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(problem["action"], "control.deploy");
    assert_eq!(problem["role"], "viewer");
    assert!(problem["detail"].as_str().unwrap().contains("vic"));
    let (status, problem) = refused(
        client
            .post("/v1/trust/reload", &serde_json::json!({}))
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(problem["action"], "control.trust.reload");
    let denied = remote.server.events("authz.decision").await;
    assert!(denied.iter().any(|row| row.outcome == "denied"
        && row.event.to_string().contains("control.deploy")
        && row.event.to_string().contains("role-not-permitted")));
}

#[tokio::test]
async fn a_security_admin_manages_trust_and_keys_but_cannot_deploy_or_enroll() {
    let remote = start(Duration::from_secs(900)).await;
    let deployer = remote
        .enroll("dana", "deployer", Algorithm::EcdsaP256)
        .await;
    let admin = remote
        .enroll("sam", "security-admin", Algorithm::EcdsaP256)
        .await;
    let deploying = remote.login(&deployer, 0).await;
    let _: zerofn_server::DeployReport = deploying
        .post("/v1/deploy", &deploy_request(&remote).await)
        .await
        .unwrap();

    let client = remote.login(&admin, 0).await;
    let _: serde_json::Value = client
        .post("/v1/trust/reload", &serde_json::json!({}))
        .await
        .unwrap();
    let created: zerofn_server::control::CreatedApiKey = client
        .post(
            "/v1/api-keys",
            &serde_json::json!({"app": "greet", "functions": ["*"], "name": "ci"}),
        )
        .await
        .unwrap();
    let _: serde_json::Value = client
        .post(
            &format!("/v1/api-keys/{}/revoke", created.record.id),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    let (status, problem) = refused(
        client
            .post("/v1/deploy", &deploy_request(&remote).await)
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(problem["action"], "control.deploy");
    assert_eq!(problem["role"], "security-admin");
    let (status, _) = refused(
        client
            .post("/v1/apps/greet/rollback", &serde_json::json!({}))
            .await,
    );
    assert_eq!(status, 403);
    // Enrollment is local only: no role reaches it remotely.
    let (status, problem) = refused(
        client
            .post(
                "/v1/operators",
                &serde_json::json!({"name": "eve", "role": "security-admin", "public_key": ""}),
            )
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(problem["action"], "none");
}

#[tokio::test]
async fn a_wrong_totp_code_is_refused() {
    let remote = start(Duration::from_secs(900)).await;
    let operator = remote.enroll("vic", "viewer", Algorithm::EcdsaP256).await;
    let valid: Vec<String> = (-1..=1).map(|o| operator.code(o)).collect();
    let wrong = (0..1_000_000u32)
        .map(|n| format!("{:06}", (n * 7919 + 123_456) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap();
    let challenge = remote.challenge("vic").await;
    let result = remote.login_with(&operator, &challenge, &wrong).await;
    assert_login_refused(&remote, result, "totp-invalid").await;
    let challenge = remote.challenge("vic").await;
    let result = remote.login_with(&operator, &challenge, "12ab56").await;
    assert_login_refused(&remote, result, "totp-malformed").await;
    // The right code still works afterwards.
    let _ = remote.login(&operator, 0).await;
}

#[tokio::test]
async fn a_replayed_totp_code_is_refused_even_with_a_fresh_challenge() {
    let remote = start(Duration::from_secs(900)).await;
    let operator = remote.enroll("vic", "viewer", Algorithm::EcdsaP256).await;
    let code = operator.code(1);
    let first = remote.challenge("vic").await;
    remote.login_with(&operator, &first, &code).await.unwrap();
    let second = remote.challenge("vic").await;
    let replay = remote.login_with(&operator, &second, &code).await;
    assert_login_refused(&remote, replay, "totp-replayed").await;
    // An earlier step than the one accepted is a replay too.
    let third = remote.challenge("vic").await;
    let earlier = remote
        .login_with(&operator, &third, &operator.code(0))
        .await;
    assert_login_refused(&remote, earlier, "totp-replayed").await;
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let remote = start(Duration::from_secs(900)).await;
    let operator = remote.enroll("vic", "viewer", Algorithm::EcdsaP256).await;
    let impostor = Operator {
        name: "vic".into(),
        key: PrivateKey::generate(Algorithm::EcdsaP256).unwrap(),
        totp: operator.totp.clone(),
    };
    let challenge = remote.challenge("vic").await;
    let result = remote
        .login_with(&impostor, &challenge, &operator.code(0))
        .await;
    assert_login_refused(&remote, result, "signature-invalid").await;
    // A signature over another audience (another control plane) is refused too.
    let challenge = remote.challenge("vic").await;
    let signature = operator.key.sign(&login_message(
        "vic",
        &challenge.nonce,
        "spiffe://elsewhere/control",
    ));
    let result: Result<IssuedSession, _> = remote
        .client()
        .post(
            "/v1/login",
            &LoginRequest {
                operator: "vic".into(),
                nonce: challenge.nonce.clone(),
                signature: BASE64.encode(signature),
                totp: operator.code(0),
            },
        )
        .await;
    assert_login_refused(&remote, result, "signature-invalid").await;
    // Garbage is a clear refusal, not a crash.
    let result: Result<IssuedSession, _> = remote
        .client()
        .post("/v1/login", &serde_json::json!({"operator": 7}))
        .await;
    assert_login_refused(&remote, result, "login-malformed").await;
}

#[tokio::test]
async fn unknown_reused_and_foreign_challenges_are_refused() {
    let remote = start(Duration::from_secs(900)).await;
    let operator = remote.enroll("vic", "viewer", Algorithm::EcdsaP256).await;
    let unknown = LoginChallenge {
        nonce: "00".repeat(32),
        audience: remote.challenge("vic").await.audience,
        expires_in_secs: 60,
    };
    let result = remote
        .login_with(&operator, &unknown, &operator.code(0))
        .await;
    assert_login_refused(&remote, result, "challenge-unknown").await;

    // A challenge is single use: the second login with it is refused before TOTP is looked at.
    let challenge = remote.challenge("vic").await;
    remote
        .login_with(&operator, &challenge, &operator.code(0))
        .await
        .unwrap();
    let reused = remote
        .login_with(&operator, &challenge, &operator.code(1))
        .await;
    assert_login_refused(&remote, reused, "challenge-unknown").await;

    // A name that cannot be an operator gets no challenge (and holds no memory).
    let long: Result<LoginChallenge, _> = remote
        .client()
        .post(
            "/v1/login/challenge",
            &LoginChallengeRequest {
                operator: "x".repeat(10_000),
            },
        )
        .await;
    assert!(
        matches!(long, Err(ControlError::Refused { status: 400, .. })),
        "{long:?}"
    );

    // A challenge issued for another operator name does not log this one in.
    let foreign = remote.challenge("someone-else").await;
    let result = remote
        .login_with(&operator, &foreign, &operator.code(1))
        .await;
    assert_login_refused(&remote, result, "challenge-other-operator").await;
}

#[tokio::test]
async fn missing_unknown_expired_and_revoked_sessions_are_refused() {
    let remote = start(Duration::from_secs(1)).await;
    let operator = remote
        .enroll("dana", "deployer", Algorithm::EcdsaP256)
        .await;

    let (status, problem) = refused(remote.client().get("/v1/apps").await);
    assert_eq!(status, 401);
    assert_eq!(problem["type"], "urn:zerofn:problem:session-missing");
    let forged = remote
        .client()
        .with_session(format!("zfs_{}", "ab".repeat(32)));
    let (status, problem) = refused(forged.get::<serde_json::Value>("/v1/apps").await);
    assert_eq!(status, 401);
    assert_eq!(problem["type"], "urn:zerofn:problem:session-invalid");
    let garbage = remote.client().with_session("not a token".into());
    let (status, _) = refused(garbage.get::<serde_json::Value>("/v1/apps").await);
    assert_eq!(status, 401);

    // A one-second session works at once, and not after it ends.
    let client = remote.login(&operator, 0).await;
    let _: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, problem) = refused(client.get::<serde_json::Value>("/v1/apps").await);
    assert_eq!(status, 401);
    assert_eq!(problem["type"], "urn:zerofn:problem:session-invalid");

    // Logging out revokes the session.
    let client = remote.login(&operator, 1).await;
    let _: serde_json::Value = client
        .post("/v1/logout", &serde_json::json!({}))
        .await
        .unwrap();
    let (status, _) = refused(client.get::<serde_json::Value>("/v1/apps").await);
    assert_eq!(status, 401);

    let reasons: Vec<String> = remote
        .server
        .events("authn.decision")
        .await
        .iter()
        .filter(|row| row.outcome == "denied")
        .map(|row| {
            let event = &row.event;
            event["reason"].as_str().unwrap().to_string()
        })
        .collect();
    for reason in [
        "session-missing",
        "session-unknown",
        "session-malformed",
        "session-expired",
        "session-revoked",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} not in {reasons:?}"
        );
    }
}

#[tokio::test]
async fn plain_tcp_and_untrusted_clients_get_nothing() {
    let remote = start(Duration::from_secs(900)).await;
    let addr = remote.server.server().remote_control_addr().unwrap();
    // Plain HTTP on the TLS port: no HTTP answer, whatever the path.
    let reply = common::request(addr, "GET", "/v1/health", &[], bytes::Bytes::new()).await;
    assert_eq!(
        reply.status, 0,
        "a plain-TCP client got an HTTP answer: {reply:?}"
    );
    // A client that trusts another CA refuses the server.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = write_certificates(other.path());
    let client = ControlClient::remote(&remote.url, &other_ca).unwrap();
    let result = client.get::<serde_json::Value>("/v1/health").await;
    assert!(
        matches!(result, Err(ControlError::Unreachable { .. })),
        "{result:?}"
    );
    // No CA bundle at all is a clear error, not a fallback to the system's roots.
    let missing = ControlClient::remote(&remote.url, Path::new("/nonexistent/ca.pem")).unwrap_err();
    assert!(missing.to_string().contains("CA bundle"), "{missing}");
    // The local socket stays full power without any session.
    let _: serde_json::Value = remote.local().get("/v1/health").await.unwrap();
}

#[tokio::test]
async fn enrollment_refuses_bad_names_keys_and_roles_and_removal_ends_sessions() {
    let remote = start(Duration::from_secs(900)).await;
    let key = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    for (name, role, public_key) in [
        ("Bad Name", "viewer", key.public().to_pem()),
        ("ok", "root", key.public().to_pem()),
        (
            "ok",
            "viewer",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_string(),
        ),
    ] {
        let result: Result<Enrolled, _> = remote
            .local()
            .post(
                "/v1/operators",
                &EnrollOperatorRequest {
                    name: name.into(),
                    role: role.into(),
                    public_key,
                },
            )
            .await;
        let (status, _) = match result {
            Err(ControlError::Refused { status, problem }) => (status, problem),
            other => panic!("{name}/{role} enrolled: {other:?}"),
        };
        assert_eq!(status, 400);
    }
    let operator = remote
        .enroll("dana", "deployer", Algorithm::EcdsaP256)
        .await;
    let client = remote.login(&operator, 0).await;
    let listed: Vec<zerofn_store::OperatorRecord> =
        remote.local().get("/v1/operators").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].role, "deployer");
    let text = serde_json::to_string(&listed).unwrap();
    assert!(
        !text.contains("totp_sealed"),
        "the sealed secret is never listed: {text}"
    );
    let _: serde_json::Value = remote
        .local()
        .post("/v1/operators/dana/remove", &serde_json::json!({}))
        .await
        .unwrap();
    let (status, _) = refused(client.get::<serde_json::Value>("/v1/apps").await);
    assert_eq!(status, 401);
}

#[tokio::test]
async fn repeated_failures_lock_the_operator_out_even_with_the_right_factors() {
    let remote = start(Duration::from_secs(900)).await;
    let operator = remote.enroll("vic", "viewer", Algorithm::EcdsaP256).await;
    let valid: Vec<String> = (-1..=1).map(|o| operator.code(o)).collect();
    let wrong: Vec<String> = (0..1_000_000u32)
        .map(|n| format!("{:06}", (n * 7919 + 4242) % 1_000_000))
        .filter(|c| !valid.contains(c))
        .take(5)
        .collect();
    for code in &wrong {
        let challenge = remote.challenge("vic").await;
        let result = remote.login_with(&operator, &challenge, code).await;
        assert_login_refused(&remote, result, "totp-invalid").await;
    }
    let challenge = remote.challenge("vic").await;
    let locked = remote
        .login_with(&operator, &challenge, &operator.code(0))
        .await;
    assert_login_refused(&remote, locked, "locked-out").await;
    let listed: Vec<zerofn_store::OperatorRecord> =
        remote.local().get("/v1/operators").await.unwrap();
    assert_eq!(listed[0].failed_logins, 5);
}

/// The certificate the control listener at `addr` serves to a client that trusts `bundle` (the
/// CLI's client configuration) and dials `name`.
async fn served_certificate(
    addr: std::net::SocketAddr,
    bundle: &Path,
    name: &str,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let config = zerofn_server::control::client_config(bundle).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(name.to_string()).unwrap(), stream)
        .await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned())
}

#[tokio::test]
async fn without_certificate_files_the_control_plane_serves_its_svid_from_the_built_in_ca() {
    let remote = start(Duration::from_secs(900)).await;
    let addr = remote.server.server().remote_control_addr().unwrap();
    // The bundle operators get from `zerofn ca bundle` is the platform's CA.
    let bundle = std::fs::read_to_string(&remote.ca).unwrap();
    assert_eq!(bundle, remote.server.server().platform().ca().bundle_pem());

    // It verifies by name and by address, so ordinary TLS clients can check the host.
    let served = served_certificate(addr, &remote.ca, "localhost")
        .await
        .unwrap();
    let by_address = served_certificate(addr, &remote.ca, "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(served, by_address);
    // Its single URI SAN is the control plane's SPIFFE ID (the policy refuses zero or two).
    let identity =
        ClientCertPolicy::from_pem(bundle.as_bytes(), Some("spiffe://zerofn.local/control"))
            .unwrap()
            .verify(Some(std::slice::from_ref(&served)), SystemTime::now())
            .unwrap();
    assert_eq!(
        identity.spiffe_id.to_string(),
        "spiffe://zerofn.local/control"
    );
    // Short-lived, with the node SVID's lifetime (plus the backdating for clock skew).
    let current = remote
        .server
        .server()
        .control_svid()
        .unwrap()
        .resolver()
        .certificate();
    assert_eq!(current.der, served);
    assert_eq!(
        current
            .not_after
            .duration_since(current.not_before)
            .unwrap(),
        zerofn_identity::ca::DEFAULT_SVID_TTL + zerofn_identity::ca::CLOCK_SKEW
    );

    // An operator whose `--ca` is the bundle logs in and lists apps.
    let viewer = remote.enroll("vera", "viewer", Algorithm::Ed25519).await;
    let client = remote.login(&viewer, 0).await;
    let apps: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    assert!(apps.is_empty());

    // A client that trusts another CA refuses the server before sending anything.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = write_certificates(other.path());
    let refused = served_certificate(addr, &other_ca, "localhost").await;
    assert!(refused.is_err(), "{refused:?}");
    let result = ControlClient::remote(&remote.url, &other_ca)
        .unwrap()
        .get::<serde_json::Value>("/v1/health")
        .await;
    assert!(
        matches!(result, Err(ControlError::Unreachable { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn rotation_swaps_the_control_certificate_on_the_same_listener() {
    let remote = start(Duration::from_secs(900)).await;
    let addr = remote.server.server().remote_control_addr().unwrap();
    let svid = remote.server.server().control_svid().unwrap().clone();
    let first = served_certificate(addr, &remote.ca, "localhost")
        .await
        .unwrap();
    let viewer = remote.enroll("vera", "viewer", Algorithm::Ed25519).await;
    let client = remote.login(&viewer, 0).await;

    // What the rotation task does half-way through the SVID's life, called directly.
    let rotated = svid.rotate(SystemTime::now()).unwrap();
    assert_eq!(rotated.spiffe_id, "spiffe://zerofn.local/control");
    let second = served_certificate(addr, &remote.ca, "localhost")
        .await
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(second, rotated.der, "the same listener serves the new SVID");
    // Nothing restarted: the same address answers, and the session from before still works.
    assert_eq!(remote.server.server().remote_control_addr(), Some(addr));
    let apps: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    assert!(apps.is_empty());
}

#[tokio::test]
async fn certificate_files_are_served_when_both_are_configured() {
    let remote = start_serving(Duration::from_secs(900), Certificates::Files).await;
    assert!(remote.server.server().control_svid().is_none());
    let addr = remote.server.server().remote_control_addr().unwrap();
    let served = served_certificate(addr, &remote.ca, "localhost")
        .await
        .unwrap();
    let file = CertificateDer::from_pem_file(remote.tls.path().join("cert.pem")).unwrap();
    assert_eq!(served, file);
    let viewer = remote.enroll("vera", "viewer", Algorithm::Ed25519).await;
    let client = remote.login(&viewer, 0).await;
    let apps: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    assert!(apps.is_empty());
    // The built-in CA's bundle does not vouch for a certificate from files.
    let bundle = remote.tls.path().join("bundle.pem");
    std::fs::write(&bundle, remote.server.server().platform().ca().bundle_pem()).unwrap();
    assert!(
        served_certificate(addr, &bundle, "localhost")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_viewer_follows_the_audit_stream_until_the_session_ends() {
    let remote = start(Duration::from_secs(900)).await;
    let viewer = remote.enroll("vera", "viewer", Algorithm::Ed25519).await;
    let client = remote.login(&viewer, 0).await;
    let mut stream = client
        .stream("/v1/audit/stream?kind=operator.login&after_id=0", None)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.event, "operator.login");
    let login: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(login["caller"], "operator:vera");
    let decisions = remote.server.events("authz.decision").await;
    assert!(
        decisions
            .iter()
            .any(|row| row.event["detail"]["action"] == "control.audit.read"
                && row.outcome == "success"),
        "{decisions:?}"
    );
    // Without a session the stream is not opened at all.
    let anonymous = remote.client().stream("/v1/audit/stream", None).await;
    assert!(
        matches!(anonymous, Err(ControlError::Refused { status: 401, .. })),
        "{anonymous:?}"
    );
    // A hostile filter is refused remotely as locally, naming the parameter.
    let Err(ControlError::Refused { status, problem }) = client
        .stream("/v1/audit/stream?kind=%3Cscript%3E", None)
        .await
    else {
        panic!("a bad kind was accepted");
    };
    assert_eq!((status, problem["parameter"].as_str()), (400, Some("kind")));
    // Logging out ends the open stream at its next keep-alive.
    let _: serde_json::Value = client
        .post("/v1/logout", &serde_json::json!({}))
        .await
        .unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("the stream outlived its session")
            .unwrap();
        if next.is_none() {
            break;
        }
    }
}
