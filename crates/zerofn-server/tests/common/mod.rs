//! A real platform on loopback with a temporary data directory, and a minimal HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use zerofn_server::{DeployBundle, DeployReport, RunningServer, ServerConfig};

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// The data directory's development key, which its trust policy trusts for every app.
    pub key: zerofn_signing::PrivateKey,
}

pub fn config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir.to_path_buf());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_concurrency = 64;
    config.runtime.max_instances = 64;
    config.shutdown_grace = std::time::Duration::from_secs(5);
    config
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, adjust).await
    }

    pub async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let key = zerofn_server::trust::ensure_dev_key(dir.path()).unwrap();
        let mut config = config(dir.path());
        adjust(&mut config);
        let server = zerofn_server::start(config).await.unwrap();
        Self {
            addr: server.http_addr(),
            server: Some(server),
            dir,
            key,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// Stops the server and hands back its data directory, for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.server.take().unwrap().shutdown().await;
        self.dir
    }

    pub async fn deploy(&self, manifest: &str, components: &[(&str, &str)]) -> DeployReport {
        self.try_deploy(manifest, components).await.unwrap()
    }

    /// [`Self::deploy`] for a manifest that refers to `files` (schemas, key sets), attached and
    /// signed with it.
    pub async fn deploy_attaching(
        &self,
        manifest: &str,
        components: &[(&str, &str)],
        files: zerofn_manifest::AttachedFiles,
    ) -> DeployReport {
        let components: BTreeMap<String, Vec<u8>> = components
            .iter()
            .map(|(name, path)| (name.to_string(), std::fs::read(path).unwrap()))
            .collect();
        let attestations = sign_with_files(manifest, &components, &self.key, &files);
        self.deploy_with_files(manifest, components, attestations, files)
            .await
            .unwrap()
    }

    pub async fn try_deploy(
        &self,
        manifest: &str,
        components: &[(&str, &str)],
    ) -> Result<DeployReport, zerofn_server::DeployError> {
        let components: BTreeMap<String, Vec<u8>> = components
            .iter()
            .map(|(name, path)| (name.to_string(), std::fs::read(path).unwrap()))
            .collect();
        let attestations = sign(manifest, &components, &self.key);
        self.deploy_bundle(manifest, components, attestations).await
    }

    pub async fn deploy_bundle(
        &self,
        manifest: &str,
        components: BTreeMap<String, Vec<u8>>,
        attestations: Vec<zerofn_store::Attestation>,
    ) -> Result<DeployReport, zerofn_server::DeployError> {
        self.deploy_with_files(
            manifest,
            components,
            attestations,
            zerofn_manifest::AttachedFiles::new(),
        )
        .await
    }

    pub async fn deploy_with_files(
        &self,
        manifest: &str,
        components: BTreeMap<String, Vec<u8>>,
        attestations: Vec<zerofn_store::Attestation>,
        files: zerofn_manifest::AttachedFiles,
    ) -> Result<DeployReport, zerofn_server::DeployError> {
        self.server()
            .platform()
            .deploy(DeployBundle {
                manifest_path: MANIFEST_PATH.into(),
                manifest: manifest.into(),
                components,
                attestations,
                files,
            })
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], Bytes::new()).await
    }

    /// Every recorded event of one kind, oldest first.
    pub async fn events(&self, kind: &str) -> Vec<zerofn_store::AuditRow> {
        self.audit(zerofn_store::AuditQuery {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
    }

    pub async fn audit(&self, query: zerofn_store::AuditQuery) -> Vec<zerofn_store::AuditRow> {
        let platform = self.server().platform();
        platform.audit().flush().await;
        platform.store().audit_events(&query).unwrap()
    }
}

/// An app `greet` with one public function `hello` on `GET /hello`.
pub const HELLO_MANIFEST: &str = r#"[app]
name = "greet"
version = "1.0.0"

[functions.hello]
component = "hello.wasm"
trigger = { http = { route = "/hello", methods = ["GET"] } }

[functions.hello.auth]
public = true
"#;

/// The path deploys report diagnostics against.
/// The files the shop example's manifest refers to (its input schemas), as a deploy attaches
/// them.
pub fn shop_files() -> zerofn_manifest::AttachedFiles {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/shop");
    let mut files = zerofn_manifest::AttachedFiles::new();
    for schema in ["schemas/order.json", "schemas/charge.json"] {
        files.insert(schema, std::fs::read(format!("{dir}/{schema}")).unwrap());
    }
    files
}

pub const MANIFEST_PATH: &str = "test/zerofn.toml";

/// Signs every function of `manifest` whose component is in `components` with `key`, as
/// `zerofn sign` does (with a minimal provenance and SBOM). A manifest that does not parse is
/// left unsigned: the deploy refuses it for that.
pub fn sign(
    manifest: &str,
    components: &BTreeMap<String, Vec<u8>>,
    key: &zerofn_signing::PrivateKey,
) -> Vec<zerofn_store::Attestation> {
    sign_with_sbom(
        manifest,
        components,
        key,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#,
    )
}

/// [`sign`], with `sbom` as every function's signed SBOM.
pub fn sign_with_sbom(
    manifest: &str,
    components: &BTreeMap<String, Vec<u8>>,
    key: &zerofn_signing::PrivateKey,
    sbom: &str,
) -> Vec<zerofn_store::Attestation> {
    sign_with(
        manifest,
        components,
        key,
        sbom,
        serde_json::json!({"buildDefinition": {"buildType": zerofn_provenance::BUILD_TYPE}}),
    )
}

/// [`sign`], with `sbom` and `provenance` as every function's signed SBOM and predicate.
pub fn sign_with(
    manifest: &str,
    components: &BTreeMap<String, Vec<u8>>,
    key: &zerofn_signing::PrivateKey,
    sbom: &str,
    provenance: serde_json::Value,
) -> Vec<zerofn_store::Attestation> {
    sign_all(
        manifest,
        components,
        key,
        sbom,
        provenance,
        &zerofn_manifest::AttachedFiles::new(),
    )
}

/// [`sign`], for a manifest that refers to `files` (a JWKS, a CA bundle).
pub fn sign_with_files(
    manifest: &str,
    components: &BTreeMap<String, Vec<u8>>,
    key: &zerofn_signing::PrivateKey,
    files: &zerofn_manifest::AttachedFiles,
) -> Vec<zerofn_store::Attestation> {
    sign_all(
        manifest,
        components,
        key,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#,
        serde_json::json!({"buildDefinition": {"buildType": zerofn_provenance::BUILD_TYPE}}),
        files,
    )
}

fn sign_all(
    manifest: &str,
    components: &BTreeMap<String, Vec<u8>>,
    key: &zerofn_signing::PrivateKey,
    sbom: &str,
    provenance: serde_json::Value,
    files: &zerofn_manifest::AttachedFiles,
) -> Vec<zerofn_store::Attestation> {
    let Ok(parsed) = zerofn_manifest::parse(std::path::Path::new(MANIFEST_PATH), manifest) else {
        return Vec::new();
    };
    parsed
        .functions()
        .filter_map(|function| {
            let bytes = components.get(&function.name)?;
            let statement = zerofn_provenance::function_statement(
                &parsed,
                function,
                bytes,
                sbom.as_bytes(),
                files,
                provenance.clone(),
            );
            let bundle = zerofn_signing::Bundle::sign(&statement, key).unwrap();
            Some(zerofn_store::Attestation {
                function: function.name.clone(),
                bundle: bundle.to_json(),
                sbom: sbom.to_string(),
            })
        })
        .collect()
}

/// A manifest with one function `hostile` on the prefix route `/...`.
pub fn hostile_manifest(app: &str, limits: &str) -> String {
    hostile_manifest_with(app, limits, "")
}

/// [`hostile_manifest`], with `more` (further tables of the function, say its grants) after it.
pub fn hostile_manifest_with(app: &str, limits: &str, more: &str) -> String {
    format!(
        r#"[app]
name = "{app}"
version = "0.1.0"

[functions.hostile]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/...", methods = ["GET", "POST", "PUT"] }} }}
limits = {{ {limits} }}

[functions.hostile.auth]
public = true
{more}"#
    )
}

/// The invocation id the platform put on a response.
pub fn invocation_id(reply: &Reply) -> String {
    reply.headers["x-zerofn-invocation-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// A test CA and a TLS server configuration (ring) whose certificate it signed for `names`
/// (DNS names or IP addresses): `(CA certificate PEM, config)`.
pub fn tls_server(names: &[&str]) -> (String, std::sync::Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let server_cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![server_cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    )
    .unwrap();
    (ca_cert.pem(), std::sync::Arc::new(config))
}

#[derive(Debug)]
pub struct Reply {
    /// 0 when the connection broke before a response head arrived.
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Result<Bytes, String>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body.as_ref().unwrap()).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.body.as_ref().unwrap()).unwrap()
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = match sender
        .send_request(builder.body(Full::new(body)).unwrap())
        .await
    {
        Ok(response) => response,
        Err(error) => {
            return Reply {
                status: 0,
                headers: http::HeaderMap::new(),
                body: Err(error.to_string()),
            };
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string());
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET path` over HTTPS, checking the server against `bundle_pem` for `name`.
pub async fn https_get(
    addr: SocketAddr,
    name: &str,
    bundle_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let identity = identity.map(|(cert_pem, key_pem)| {
        zerofn_identity::tls::client_identity(
            vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    });
    let config = zerofn_identity::tls::client_config(bundle_pem.as_bytes(), identity).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from(name.to_string()).unwrap(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .uri("/headers")
        .header("host", name)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
