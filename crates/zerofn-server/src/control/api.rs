//! The control plane's request and response bodies (JSON). Component and body bytes travel as
//! standard base64.

use crate::platform::FunctionSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/deploy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRequest {
    pub manifest_path: String,
    pub manifest: String,
    /// Component bytes (base64) by function name.
    pub components: BTreeMap<String, String>,
    /// Each function's Sigstore bundle and CycloneDX SBOM (JSON text).
    #[serde(default)]
    pub attestations: Vec<zerofn_store::Attestation>,
    /// The files the manifest refers to (base64), by the path written there.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// `POST /v1/apps/{app}/rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The version to return to; the previously active one when absent.
    pub to: Option<String>,
}

/// `POST /v1/invoke`: call a function by name, bypassing routing (but not its limits).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvokeRequest {
    pub app: String,
    pub function: String,
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body_base64: String,
}

/// The answer to an [`InvokeRequest`]: the function's response, whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvokeResponse {
    pub invocation_id: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body_base64: String,
}

/// `GET /v1/apps`: one entry per deployed app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppListing {
    pub app: String,
    pub app_version: String,
    pub active_version_id: String,
    pub activated_ms: i64,
    /// Whether the active version is loaded and serving.
    pub serving: bool,
    pub functions: Vec<FunctionSummary>,
}

/// `POST /v1/api-keys`: a key for functions of an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateApiKeyRequest {
    pub app: String,
    /// Function names, or `["*"]` for every function of the app.
    pub functions: Vec<String>,
    #[serde(default)]
    pub name: String,
    /// Seconds until it expires; never when absent.
    pub expires_in_secs: Option<u64>,
}

/// The answer to `POST /v1/api-keys`: the key, shown this once, and its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: String,
    pub record: zerofn_store::ApiKeyRecord,
}

/// `GET /v1/api-keys?app=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyQuery {
    pub app: String,
}

/// `POST /v1/login/challenge` (remote listener only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginChallengeRequest {
    pub operator: String,
}

/// The answer to a [`LoginChallengeRequest`]: sign
/// `zerofn-operator-login-v1\n<operator>\n<nonce>\n<audience>` with the operator key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginChallenge {
    pub nonce: String,
    /// The control plane's SPIFFE ID, which the signature is bound to.
    pub audience: String,
    pub expires_in_secs: u64,
}

/// `POST /v1/login` (remote listener only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub operator: String,
    pub nonce: String,
    /// The signature over the login message, standard base64 (ECDSA: ASN.1 DER).
    pub signature: String,
    /// The current TOTP code.
    pub totp: String,
}

/// `POST /v1/operators` (local socket only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollOperatorRequest {
    pub name: String,
    /// `viewer`, `deployer` or `security-admin`.
    pub role: String,
    /// The operator key, SPKI PEM.
    pub public_key: String,
}

/// `GET /v1/ca/bundle`: the built-in CA's trust bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaBundle {
    pub trust_domain: String,
    pub bundle_pem: String,
}

/// `POST /v1/ca/issue`: a client SVID for a caller of `mtls` functions. The caller keeps its
/// private key and sends only the public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueCertificateRequest {
    pub spiffe_id: String,
    /// SubjectPublicKeyInfo PEM of an ECDSA P-256 key.
    pub public_key_pem: String,
    /// Lifetime in seconds [default: 3600].
    pub ttl_secs: Option<u64>,
}

/// The answer to `POST /v1/ca/issue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedClientCertificate {
    pub spiffe_id: String,
    pub certificate_pem: String,
    /// Lowercase hex.
    pub serial: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// The CA bundle that verifies it.
    pub bundle_pem: String,
}

/// `POST /v1/secrets/set` (a new secret) and `POST /v1/secrets/rotate` (a new version of
/// one): the value travels base64-encoded in the body, never in a path, query or argument.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretValueRequest {
    pub app: String,
    pub name: String,
    pub value_base64: String,
}

impl std::fmt::Debug for SecretValueRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValueRequest")
            .field("app", &self.app)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for SecretValueRequest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value_base64);
    }
}

/// `POST /v1/secrets/delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretNameRequest {
    pub app: String,
    pub name: String,
}

/// `GET /v1/secrets?app=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretsQuery {
    pub app: String,
}

/// `POST /v1/apps/{app}/queues/{queue}`: one CloudEvent in the structured JSON format, as
/// text, so that the server's parser (not the client's) judges it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEventRequest {
    pub event: String,
}

/// `GET /v1/apps/{app}/queues/{queue}`: its consumer and messages, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueListing {
    pub app: String,
    pub queue: String,
    /// The serving function that consumes it; `None` when no function does (events are refused).
    pub consumer: Option<String>,
    /// Messages still to deliver (some may be in delivery or waiting for a retry).
    pub pending: Vec<zerofn_store::QueueMessage>,
    /// Messages that failed every attempt, with their last error.
    pub dead: Vec<zerofn_store::QueueMessage>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditVerifyQuery {
    /// Check checkpoints against this public key (SPKI PEM) instead of the node's own: one
    /// exported earlier and kept elsewhere.
    pub key: Option<String>,
}

/// `GET /v1/audit/key`: the public key audit checkpoints are signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditKey {
    pub key_id: String,
    pub algorithm: String,
    pub public_key_pem: String,
}

/// `GET /v1/incidents`: which incidents to list (all when empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsQuery {
    /// `open` or `resolved`.
    pub status: Option<String>,
    pub app: Option<String>,
    pub function: Option<String>,
}

/// `GET /v1/incidents/{id}`: the incident and its evidence events in full.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentDetail {
    pub incident: zerofn_store::IncidentRecord,
    /// The evidence events, oldest first (an id the store no longer has is left out).
    pub evidence: Vec<zerofn_store::AuditRow>,
}

/// `POST /v1/incidents/{id}/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveIncidentRequest {
    pub resolution: crate::response::Resolution,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /v1/quarantines/release`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub app: String,
    pub function: String,
}
