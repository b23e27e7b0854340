//! The built-in certificate authority: an ECDSA P-256 key and self-signed CA certificate in the
//! data directory, issuing short-lived X.509 SVIDs (one URI SAN, the SPIFFE ID) to the node,
//! the control plane and callers of `mtls` functions.

use crate::spiffe::{SpiffeId, SpiffeIdError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The CA's directory inside the data directory.
pub const CA_DIR: &str = "ca";
/// The CA's private key (PKCS#8 PEM, mode 0600).
pub const CA_KEY_FILE: &str = "ca.key.pem";
/// The CA certificate, which is also the trust bundle.
pub const CA_CERT_FILE: &str = "ca.pem";
/// How long the CA certificate is valid. CA rotation is not implemented yet; ten years keeps
/// that from becoming urgent.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The default lifetime of an SVID.
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(3600);
/// SVIDs start this long before they are issued, so that a peer whose clock is a little behind
/// does not refuse a fresh certificate as not yet valid.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Why the CA could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the CA in {dir} is incomplete: {present} exists but {missing} does not (restore it from a backup, or remove the directory to create a new CA, which invalidates every certificate it issued)"
    )]
    Incomplete {
        dir: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
    #[error("the CA file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "the CA key {key} does not belong to the CA certificate {cert}: the files do not match"
    )]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "the CA in {dir} is for trust domain `{found}` but the platform's is `{expected}`: move the CA away or set `server.trust_domain = \"{found}\"`"
    )]
    TrustDomainMismatch {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error("the CA key {path} is readable by other users (mode {mode:o}): chmod 600 it")]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("the CA certificate {path} expired; CA rotation is not implemented yet")]
    Expired { path: PathBuf },
    #[error(transparent)]
    SpiffeId(#[from] SpiffeIdError),
    #[error("`{id}` is outside the CA's trust domain `{trust_domain}`")]
    ForeignTrustDomain { id: String, trust_domain: String },
    #[error("the validity period is empty or outside what X.509 can express")]
    Validity,
    #[error("the public key is not an ECDSA P-256 SubjectPublicKeyInfo: {0}")]
    PublicKey(String),
    #[error("no randomness for a serial number: {0}")]
    Randomness(String),
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
}

/// The built-in CA. Loaded once at start; cheap to share behind an `Arc`.
pub struct CertificateAuthority {
    trust_domain: String,
    issuer: rcgen::Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
    certificate_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

/// What to put in an SVID besides the SPIFFE ID.
#[derive(Debug, Clone)]
pub struct SvidRequest {
    pub spiffe_id: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DNS names for a server SVID, so ordinary TLS clients can check the host name. The SPIFFE
    /// X.509-SVID specification requires exactly one URI SAN; other SAN types are allowed.
    pub dns_names: Vec<String>,
    /// IP addresses for a server SVID, as above.
    pub ip_addresses: Vec<IpAddr>,
}

impl SvidRequest {
    /// Valid from `now` (less [`CLOCK_SKEW`]) for `ttl`.
    pub fn new(spiffe_id: impl Into<String>, now: SystemTime, ttl: Duration) -> Self {
        Self {
            spiffe_id: spiffe_id.into(),
            not_before: now.checked_sub(CLOCK_SKEW).unwrap_or(now),
            // An overflowing TTL gives an empty validity, refused when issuing.
            not_after: now.checked_add(ttl).unwrap_or(UNIX_EPOCH),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// Adds DNS and IP SANs (`localhost`, `127.0.0.1`, ...).
    pub fn with_server_names(mut self, dns_names: &[&str], ip_addresses: &[IpAddr]) -> Self {
        self.dns_names
            .extend(dns_names.iter().map(|n| n.to_string()));
        self.ip_addresses.extend_from_slice(ip_addresses);
        self
    }
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub spiffe_id: String,
    pub der: CertificateDer<'static>,
    pub pem: String,
    /// Lowercase hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// An X.509 SVID with its private key.
pub struct X509Svid {
    pub certificate: IssuedCertificate,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Svid")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl X509Svid {
    /// The private key (PKCS#8 DER), for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The private key as PKCS#8 PEM.
    pub fn private_key_pem(&self) -> &str {
        &self.key_pem
    }
}

/// A fresh ECDSA P-256 key, for a holder that asks the CA to certify only its public key.
pub struct SvidKey {
    private_key_pem: Zeroizing<String>,
    public_key_pem: String,
}

impl std::fmt::Debug for SvidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvidKey").finish_non_exhaustive()
    }
}

impl SvidKey {
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        Ok(Self {
            private_key_pem: Zeroizing::new(key.serialize_pem()),
            public_key_pem: key.public_key_pem(),
        })
    }

    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// SubjectPublicKeyInfo PEM.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }
}

impl CertificateAuthority {
    /// Loads the CA from `data_dir/ca`, or creates it there on first start.
    pub fn load_or_create(data_dir: &Path, trust_domain: &str) -> Result<Self, CaError> {
        let dir = data_dir.join(CA_DIR);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => Self::load(&dir, trust_domain),
            (false, false) => {
                let ca = Self::create(trust_domain, SystemTime::now())?;
                ca.save(&dir)?;
                Ok(ca)
            }
            (true, false) => Err(CaError::Incomplete {
                dir,
                present: CA_KEY_FILE,
                missing: CA_CERT_FILE,
            }),
            (false, true) => Err(CaError::Incomplete {
                dir,
                present: CA_CERT_FILE,
                missing: CA_KEY_FILE,
            }),
        }
    }

    /// A new CA in memory, valid from `now` for [`CA_VALIDITY`].
    pub fn create(trust_domain: &str, now: SystemTime) -> Result<Self, CaError> {
        let root = SpiffeId::parse(&format!("spiffe://{trust_domain}/x"))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "zerofn");
        name.push(DnType::CommonName, format!("zerofn CA {trust_domain}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // The SPIFFE trust domain as the CA's URI SAN: how a loaded CA knows its domain.
        params.subject_alt_names = vec![SanType::URI(
            format!("spiffe://{}", root.trust_domain()).try_into()?,
        )];
        params.not_before = to_asn1(now.checked_sub(CLOCK_SKEW).unwrap_or(now))?.to_datetime();
        params.not_after =
            to_asn1(now.checked_add(CA_VALIDITY).ok_or(CaError::Validity)?)?.to_datetime();
        params.serial_number = Some(random_serial()?);
        let certificate = params.self_signed(&key)?;
        let certificate_pem = certificate.pem();
        let certificate = certificate.der().clone();
        let issuer = rcgen::Issuer::new(params, key);
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            issuer,
            certificate,
            certificate_pem,
        })
    }

    /// Loads the CA from `dir` and checks that its files belong together, that the key is
    /// private to this user and that it is the CA of `trust_domain`.
    pub fn load(dir: &Path, trust_domain: &str) -> Result<Self, CaError> {
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        check_private(&key_path)?;
        let key_text = Zeroizing::new(read(&key_path)?);
        let cert_text = read(&cert_path)?;
        let malformed = |path: &Path, reason: String| CaError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(&key_text)
            .map_err(|e| malformed(&key_path, format!("no PKCS#8 private key: {e}")))?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &PKCS_ECDSA_P256_SHA256)
            .map_err(|e| malformed(&key_path, format!("not an ECDSA P-256 key: {e}")))?;
        let mut certificates = CertificateDer::pem_slice_iter(&cert_text);
        let certificate = match (certificates.next(), certificates.next()) {
            (Some(Ok(certificate)), None) => certificate,
            (Some(Err(e)), _) => return Err(malformed(&cert_path, e.to_string())),
            (None, _) => return Err(malformed(&cert_path, "no certificate".into())),
            (Some(Ok(_)), Some(_)) => {
                return Err(malformed(&cert_path, "more than one certificate".into()));
            }
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate)
            .map_err(|e| malformed(&cert_path, e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        if !parsed.is_ca() {
            return Err(malformed(&cert_path, "not a CA certificate".into()));
        }
        if !parsed.validity().is_valid() {
            return Err(CaError::Expired { path: cert_path });
        }
        let found = crate::tls::uri_sans(&parsed)
            .map_err(|e| malformed(&cert_path, e))?
            .into_iter()
            .find_map(|uri| uri.strip_prefix("spiffe://").map(str::to_string))
            .ok_or_else(|| malformed(&cert_path, "no SPIFFE trust domain URI SAN".into()))?;
        if found != trust_domain {
            return Err(CaError::TrustDomainMismatch {
                dir: dir.to_path_buf(),
                found,
                expected: trust_domain.to_string(),
            });
        }
        let issuer = rcgen::Issuer::from_ca_cert_der(&certificate, key)
            .map_err(|e| malformed(&cert_path, e.to_string()))?;
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            issuer,
            certificate_pem: String::from_utf8_lossy(&cert_text).into_owned(),
            certificate,
        })
    }

    /// Writes the key and the certificate into `dir` (mode 0700), each with [`write_private`]
    /// and the certificate last, so a crash leaves either no CA or an incomplete one that
    /// [`Self::load_or_create`] reports, never a torn file.
    fn save(&self, dir: &Path) -> Result<(), CaError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| CaError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io("restrict", dir))?;
        }
        let key_pem = Zeroizing::new(self.issuer.key().serialize_pem());
        for (name, contents) in [
            (CA_KEY_FILE, key_pem.as_bytes()),
            (CA_CERT_FILE, self.certificate_pem.as_bytes()),
        ] {
            let path = dir.join(name);
            write_private(&path, contents).map_err(io("write", &path))?;
        }
        Ok(())
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The trust bundle (PEM): what verifiers of this CA's SVIDs need.
    pub fn bundle_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Issues an SVID with a fresh ECDSA P-256 key.
    pub fn issue(&self, request: &SvidRequest) -> Result<X509Svid, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let certificate = self.sign(request, &key)?;
        Ok(X509Svid {
            certificate,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Issues an SVID for a public key the holder generated (SubjectPublicKeyInfo PEM), so the
    /// private key never leaves the holder. Only ECDSA P-256 keys are certified.
    pub fn issue_for_public_key(
        &self,
        request: &SvidRequest,
        public_key_pem: &str,
    ) -> Result<IssuedCertificate, CaError> {
        let der =
            rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(public_key_pem.as_bytes())
                .map_err(|e| CaError::PublicKey(e.to_string()))?;
        let key =
            SubjectPublicKeyInfo::from_der(&der).map_err(|e| CaError::PublicKey(e.to_string()))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(CaError::PublicKey("another key type".into()));
        }
        self.sign(request, &key)
    }

    fn sign(
        &self,
        request: &SvidRequest,
        key: &impl PublicKeyData,
    ) -> Result<IssuedCertificate, CaError> {
        let id = SpiffeId::parse(&request.spiffe_id)?;
        if id.trust_domain() != self.trust_domain {
            return Err(CaError::ForeignTrustDomain {
                id: request.spiffe_id.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        if request.not_after <= request.not_before {
            return Err(CaError::Validity);
        }
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "zerofn");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let mut sans = vec![SanType::URI(request.spiffe_id.clone().try_into()?)];
        for name in &request.dns_names {
            sans.push(SanType::DnsName(name.clone().try_into()?));
        }
        sans.extend(request.ip_addresses.iter().copied().map(SanType::IpAddress));
        params.subject_alt_names = sans;
        params.not_before = to_asn1(request.not_before)?.to_datetime();
        params.not_after = to_asn1(request.not_after)?.to_datetime();
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        let certificate = params.signed_by(key, &self.issuer)?;
        Ok(IssuedCertificate {
            spiffe_id: request.spiffe_id.clone(),
            pem: certificate.pem(),
            der: certificate.der().clone(),
            serial: serial_hex,
            not_before: truncate_to_seconds(request.not_before),
            not_after: truncate_to_seconds(request.not_after),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    std::fs::read(path).map_err(|source| CaError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a CA key that group or others can read: whoever reads it can mint any identity.
fn check_private(path: &Path) -> Result<(), CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| CaError::Io {
                action: "inspect",
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::KeyPermissions {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `path` with mode 0600: into a new temporary file created with that mode (never a
/// moment in which others may read it, even when `path` exists with a wider mode), then renamed
/// over `path`, so a crash leaves the old file or the new one, never half of one.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    match std::fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// 16 random bytes, top bit clear (a positive integer, as RFC 5280 requires).
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CaError::Randomness(e.to_string()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// rcgen takes `time::OffsetDateTime`; x509-parser's `ASN1Time::to_datetime` makes one, so no
/// date crate is added just to name it.
fn to_asn1(at: SystemTime) -> Result<x509_parser::time::ASN1Time, CaError> {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CaError::Validity)?
        .as_secs();
    let seconds = i64::try_from(seconds).map_err(|_| CaError::Validity)?;
    x509_parser::time::ASN1Time::from_timestamp(seconds).map_err(|_| CaError::Validity)
}

/// X.509 times have whole seconds.
fn truncate_to_seconds(at: SystemTime) -> SystemTime {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    //! Certificates this CA would never issue, signed with its key, for the refusals a
    //! well-formed SVID cannot reach.

    use super::*;
    use crate::{CertRefusal, ClientCertPolicy};

    fn signed(ca: &CertificateAuthority, adjust: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.not_before = to_asn1(now - CLOCK_SKEW).unwrap().to_datetime();
        params.not_after = to_asn1(now + DEFAULT_SVID_TTL).unwrap().to_datetime();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = vec![SanType::URI(
            "spiffe://zerofn.local/callers/ci".try_into().unwrap(),
        )];
        adjust(&mut params);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        params.signed_by(&key, &ca.issuer).unwrap().der().to_vec()
    }

    #[test]
    fn certificates_unlike_an_svid_are_refused_for_their_reason() {
        let ca = CertificateAuthority::create("zerofn.local", SystemTime::now()).unwrap();
        let policy = ClientCertPolicy::from_pem(ca.bundle_pem().as_bytes(), None).unwrap();
        let verify =
            |der: Vec<u8>| policy.verify(Some(&[CertificateDer::from(der)]), SystemTime::now());

        assert!(
            verify(signed(&ca, |_| {})).is_ok(),
            "the baseline is accepted"
        );
        let server_only = signed(&ca, |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        });
        assert_eq!(verify(server_only), Err(CertRefusal::WrongUsage));
        let no_uri = signed(&ca, |p| {
            p.subject_alt_names = vec![SanType::DnsName("ci.example".try_into().unwrap())];
        });
        assert_eq!(verify(no_uri), Err(CertRefusal::NoSpiffeId));
        let two_uris = signed(&ca, |p| {
            p.subject_alt_names.push(SanType::URI(
                "spiffe://zerofn.local/callers/other".try_into().unwrap(),
            ));
        });
        let refusal = verify(two_uris).unwrap_err();
        assert_eq!(refusal, CertRefusal::MultipleUriSans { count: 2 });
        assert_eq!(refusal.code(), "client-certificate-multiple-uri-sans");
        let not_spiffe = signed(&ca, |p| {
            p.subject_alt_names = vec![SanType::URI("https://ci.example/".try_into().unwrap())];
        });
        assert_eq!(verify(not_spiffe), Err(CertRefusal::InvalidSpiffeId));
    }
}
