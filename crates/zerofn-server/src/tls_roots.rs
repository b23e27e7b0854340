//! The trust roots of the platform's outbound TLS clients (JWKS fetches, egress): the system's
//! roots plus an operator's PEM bundle.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The system's roots plus every certificate of `extra_pem`; `what` names the bundle in
/// errors (`JWKS CA bundle`). An extra bundle that holds no usable certificate is an error:
/// the operator meant to trust something.
pub(crate) fn system_roots_and(
    extra_pem: Option<&[u8]>,
    what: &str,
) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    // The system store may hold certificates rustls cannot parse; those are skipped, as every
    // rustls-based client does.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_pem {
        let extra = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the {what} is not PEM certificates: {e}"))?;
        if extra.is_empty() {
            return Err(format!("the {what} holds no certificate"));
        }
        for certificate in extra {
            roots
                .add(certificate)
                .map_err(|e| format!("the {what} holds an unusable certificate: {e}"))?;
        }
    }
    Ok(roots)
}
