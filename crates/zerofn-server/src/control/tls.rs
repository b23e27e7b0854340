//! TLS 1.3 for the remote control plane (rustls, ring): where the server's certificate comes
//! from (the built-in CA or files), and the client's configuration, which trusts only a CA
//! bundle it is given.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cannot read the CA bundle {path}: {reason}")]
    CaBundle { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("cannot issue the control plane's SVID: {0}")]
    Svid(#[source] zerofn_identity::tls::TlsError),
}

/// Where the control listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// An X.509 SVID for `spiffe://<trust domain>/control` from the platform's built-in CA,
    /// short-lived and rotated half-way through its life without restarting the listener;
    /// operators trust the CA bundle (`zerofn ca bundle`). The default: no setup, no key file.
    Builtin,
    /// A PEM certificate chain (leaf first) and its PEM private key, read once at start.
    Files { cert: PathBuf, key: PathBuf },
}

/// Reads a PEM certificate chain and its private key (which must match) as the certificate
/// served to every handshake.
pub(crate) fn load_certificate(
    cert: &Path,
    key: &Path,
) -> Result<Arc<dyn ResolvesServerCert>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: "no certificate in it".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(SingleCertAndKey::from(certified)))
}

/// The control listener's server configuration: TLS 1.3 only, no client certificates
/// (operators prove who they are at login), serving what `certificate` resolves (fixed for
/// files, swapped by rotation for the built-in SVID).
pub(crate) fn server_config(
    certificate: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    Ok(Arc::new(config))
}

/// A client configuration that trusts exactly the certificates in `ca_bundle` (PEM): the
/// system's roots are never used, so a control plane is reached only through the CA its
/// operator chose. TLS 1.3 only.
pub fn client_config(ca_bundle: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let error = |reason: String| TlsError::CaBundle {
        path: ca_bundle.to_path_buf(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_bundle)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| error(e.to_string()))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(error("no usable CA certificate in it".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// ring, the one crypto provider of the workspace (no process-wide default is installed, so
/// nothing else can pick another).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    zerofn_identity::tls::provider()
}
