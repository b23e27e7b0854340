//! The built-in CA and TLS through the real path: certificates from a real CA, real rustls
//! handshakes on loopback, and the per-request client certificate policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use zerofn_identity::ca::{CA_CERT_FILE, CA_DIR, CA_KEY_FILE};
use zerofn_identity::tls::{RotatingSvid, function_server_config};
use zerofn_identity::{
    CaError, CertRefusal, CertificateAuthority, ClientCertPolicy, ClientPolicyError, SvidRequest,
    X509Svid,
};

const DOMAIN: &str = "zerofn.local";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn new_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::create(DOMAIN, SystemTime::now()).unwrap())
}

fn caller(ca: &CertificateAuthority, id: &str) -> X509Svid {
    ca.issue(&SvidRequest::new(
        id,
        SystemTime::now(),
        Duration::from_secs(3600),
    ))
    .unwrap()
}

fn server_svid(ca: &Arc<CertificateAuthority>) -> RotatingSvid {
    let template = SvidRequest::new(
        zerofn_identity::node_spiffe_id(DOMAIN, "local"),
        SystemTime::now(),
        Duration::from_secs(3600),
    )
    .with_server_names(&["localhost"], &[LOOPBACK]);
    RotatingSvid::new(
        ca.clone(),
        template,
        Duration::from_secs(3600),
        SystemTime::now(),
    )
    .unwrap()
}

/// What the server saw of one connection: the client's chain, or the handshake error.
type Seen = Result<Option<Vec<CertificateDer<'static>>>, String>;

/// A TLS listener on loopback that accepts until the test ends, reporting each connection.
async fn listener(svid: &RotatingSvid) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let config = function_server_config(svid.resolver().clone()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            match acceptor.accept(stream).await {
                Ok(mut tls) => {
                    let chain = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
                    let _ = tls.write_all(b"ok").await;
                    let _ = tls.shutdown().await;
                    let _ = report.send(Ok(chain));
                }
                Err(error) => {
                    let _ = report.send(Err(error.to_string()));
                }
            }
        }
    });
    (addr, seen)
}

fn client_config(
    bundle_pem: &str,
    client: Option<Arc<dyn rustls::client::ResolvesClientCert>>,
) -> rustls::ClientConfig {
    zerofn_identity::tls::client_config(bundle_pem.as_bytes(), client).unwrap()
}

fn client_key(svid: &X509Svid) -> Arc<dyn rustls::client::ResolvesClientCert> {
    zerofn_identity::tls::client_identity(vec![svid.certificate.der.clone()], svid.private_key())
        .unwrap()
}

/// Connects, and returns the certificate the server presented and what it answered.
async fn connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    name: &str,
) -> Result<(CertificateDer<'static>, Vec<u8>), std::io::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), stream)
        .await?;
    let served = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    Ok((served, answer))
}

#[tokio::test]
async fn server_svid_verifies_against_the_bundle_and_client_auth_is_deferred() {
    let ca = new_ca();
    let svid = server_svid(&ca);
    let (addr, mut seen) = listener(&svid).await;

    // Without a client certificate: the connection is made, and carries no chain.
    for name in ["localhost", "127.0.0.1"] {
        let (served, answer) = connect(addr, client_config(ca.bundle_pem(), None), name)
            .await
            .unwrap();
        assert_eq!(answer, b"ok");
        assert_eq!(served, svid.resolver().certificate().der);
        assert_eq!(seen.recv().await.unwrap().unwrap(), None);
    }

    // With one: the server holds the chain, and the policy accepts it.
    let alice = caller(&ca, "spiffe://zerofn.local/callers/alice");
    connect(
        addr,
        client_config(ca.bundle_pem(), Some(client_key(&alice))),
        "localhost",
    )
    .await
    .unwrap();
    let chain = seen.recv().await.unwrap().unwrap().unwrap();
    assert_eq!(chain, vec![alice.certificate.der.clone()]);
    let policy = ClientCertPolicy::from_pem(ca.bundle_pem().as_bytes(), None).unwrap();
    let identity = policy.verify(Some(&chain), SystemTime::now()).unwrap();
    assert_eq!(
        identity.spiffe_id.to_string(),
        "spiffe://zerofn.local/callers/alice"
    );

    // A client that trusts another CA does not accept the server.
    let other = new_ca();
    let refused = connect(addr, client_config(other.bundle_pem(), None), "localhost").await;
    assert!(refused.is_err(), "a server from another CA was accepted");
    assert!(seen.recv().await.unwrap().is_err());
}

#[tokio::test]
async fn a_certificate_without_its_key_fails_the_handshake() {
    let ca = new_ca();
    let svid = server_svid(&ca);
    let (addr, mut seen) = listener(&svid).await;
    let victim = caller(&ca, "spiffe://zerofn.local/callers/victim");
    let attacker = caller(&ca, "spiffe://zerofn.local/callers/attacker");
    // The victim's certificate (public), the attacker's key: CertificateVerify cannot match.
    let signer = zerofn_identity::tls::provider()
        .key_provider
        .load_private_key(attacker.private_key())
        .unwrap();
    let forged = rustls::sign::CertifiedKey::new(vec![victim.certificate.der.clone()], signer);
    let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(forged));
    let result = connect(
        addr,
        client_config(ca.bundle_pem(), Some(resolver)),
        "localhost",
    )
    .await;
    assert!(
        result.is_err(),
        "the handshake succeeded with a stolen certificate"
    );
    let server_side = seen.recv().await.unwrap().unwrap_err();
    assert!(
        server_side.contains("ignature") || server_side.contains("BadSignature"),
        "{server_side}"
    );
}

#[tokio::test]
async fn rotation_swaps_the_served_certificate_while_the_listener_keeps_accepting() {
    let ca = new_ca();
    let svid = server_svid(&ca);
    let (addr, mut seen) = listener(&svid).await;
    let first = svid.resolver().certificate();
    let (served, _) = connect(addr, client_config(ca.bundle_pem(), None), "localhost")
        .await
        .unwrap();
    assert_eq!(served, first.der);
    seen.recv().await.unwrap().unwrap();

    let second = svid.rotate(SystemTime::now()).unwrap();
    assert_ne!(second.serial, first.serial);
    let (served, _) = connect(addr, client_config(ca.bundle_pem(), None), "localhost")
        .await
        .unwrap();
    assert_eq!(served, second.der, "the same listener serves the new SVID");
    seen.recv().await.unwrap().unwrap();

    // Renewal is due half-way through the lifetime it was issued for.
    assert_eq!(
        svid.renew_at(),
        second.not_after - Duration::from_secs(3600) / 2
    );
}

#[test]
fn renewal_of_the_shortest_svid_is_half_its_lifetime_after_issue() {
    // With a lifetime equal to the clock skew, the midpoint of the backdated validity is the
    // moment of issue; renewal must still leave the SVID half its life.
    let ca = new_ca();
    let issued_at = SystemTime::now();
    let ttl = zerofn_identity::ca::CLOCK_SKEW;
    let template = SvidRequest::new(zerofn_identity::control_spiffe_id(DOMAIN), issued_at, ttl);
    let svid = RotatingSvid::new(ca, template, ttl, issued_at).unwrap();
    let wait = svid.renew_at().duration_since(issued_at).unwrap();
    assert!(
        (ttl / 2 - Duration::from_secs(1)..=ttl / 2).contains(&wait),
        "renewal {wait:?} after issue"
    );
}

#[test]
fn svids_have_one_spiffe_uri_and_the_svid_extensions() {
    let ca = new_ca();
    let svid = ca
        .issue(
            &SvidRequest::new(
                "spiffe://zerofn.local/node/a",
                SystemTime::now(),
                Duration::from_secs(600),
            )
            .with_server_names(&["localhost"], &[LOOPBACK]),
        )
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&svid.certificate.der).unwrap();
    let sans = &parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    let uris: Vec<_> = sans
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["spiffe://zerofn.local/node/a"]);
    assert!(!parsed.is_ca());
    let usage = parsed.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && !usage.key_cert_sign());
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let lifetime = svid
        .certificate
        .not_after
        .duration_since(svid.certificate.not_before)
        .unwrap();
    assert_eq!(
        lifetime,
        Duration::from_secs(600) + zerofn_identity::ca::CLOCK_SKEW
    );
    // Each SVID has its own key.
    let again = ca
        .issue(&SvidRequest::new(
            "spiffe://zerofn.local/node/a",
            SystemTime::now(),
            Duration::from_secs(600),
        ))
        .unwrap();
    assert_ne!(
        parsed.public_key().raw,
        x509_parser::parse_x509_certificate(&again.certificate.der)
            .unwrap()
            .1
            .public_key()
            .raw
    );
    // Outside the trust domain, or not a SPIFFE ID: refused.
    for id in ["spiffe://other.local/a", "https://zerofn.local/a"] {
        let result = ca.issue(&SvidRequest::new(
            id,
            SystemTime::now(),
            Duration::from_secs(60),
        ));
        assert!(result.is_err(), "{id} issued");
    }
    let overflow = ca.issue(&SvidRequest::new(
        "spiffe://zerofn.local/a",
        SystemTime::now(),
        Duration::MAX,
    ));
    assert!(matches!(overflow, Err(CaError::Validity)));
}

#[test]
fn the_client_policy_refuses_each_bad_certificate_for_its_reason() {
    let ca = new_ca();
    let now = SystemTime::now();
    let policy = ClientCertPolicy::from_pem(
        ca.bundle_pem().as_bytes(),
        Some("spiffe://zerofn.local/callers/*"),
    )
    .unwrap();
    let check =
        |svid: &X509Svid| policy.verify(Some(std::slice::from_ref(&svid.certificate.der)), now);

    let good = caller(&ca, "spiffe://zerofn.local/callers/ci");
    assert_eq!(
        check(&good).unwrap().spiffe_id.to_string(),
        "spiffe://zerofn.local/callers/ci"
    );

    assert_eq!(policy.verify(None, now), Err(CertRefusal::Missing));
    assert_eq!(policy.verify(Some(&[]), now), Err(CertRefusal::Missing));
    assert_eq!(CertRefusal::Missing.code(), "client-certificate-missing");

    let day = Duration::from_secs(86_400);
    let expired = ca
        .issue(&SvidRequest {
            not_before: now - 2 * day,
            not_after: now - day,
            ..SvidRequest::new("spiffe://zerofn.local/callers/ci", now, day)
        })
        .unwrap();
    let refusal = check(&expired).unwrap_err();
    assert_eq!(
        refusal,
        CertRefusal::Expired {
            not_after: expired.certificate.not_after
        }
    );
    assert_eq!(refusal.code(), "client-certificate-expired");
    assert!(refusal.to_string().contains("expired at"), "{refusal}");

    let future = ca
        .issue(&SvidRequest {
            not_before: now + day,
            not_after: now + 2 * day,
            ..SvidRequest::new("spiffe://zerofn.local/callers/ci", now, day)
        })
        .unwrap();
    assert_eq!(
        check(&future).unwrap_err().code(),
        "client-certificate-not-yet-valid"
    );

    // Another CA of the same trust domain, hence the same name: its signature does not verify.
    let stranger = caller(&new_ca(), "spiffe://zerofn.local/callers/ci");
    assert_eq!(check(&stranger).unwrap_err(), CertRefusal::UnknownIssuer);
    assert_eq!(
        CertRefusal::UnknownIssuer.code(),
        "client-certificate-unknown-issuer"
    );

    for id in [
        "spiffe://zerofn.local/callers/ci/extra",
        "spiffe://zerofn.local/admins/ci",
    ] {
        let refusal = check(&caller(&ca, id)).unwrap_err();
        assert_eq!(refusal.code(), "client-certificate-not-allowed", "{id}");
        assert!(refusal.is_forbidden());
    }

    // The CA certificate itself is not a client certificate.
    let ca_as_client = policy.verify(Some(std::slice::from_ref(ca.certificate())), now);
    assert!(ca_as_client.is_err());

    // Without a pattern, any SPIFFE ID the CA issued is accepted.
    let open = ClientCertPolicy::from_pem(ca.bundle_pem().as_bytes(), None).unwrap();
    let admin = caller(&ca, "spiffe://zerofn.local/admins/ci");
    assert!(
        open.verify(Some(std::slice::from_ref(&admin.certificate.der)), now)
            .is_ok()
    );
}

#[test]
fn malformed_bundles_and_patterns_are_clear_errors() {
    let ca = new_ca();
    assert!(matches!(
        ClientCertPolicy::from_pem(b"not pem at all", None),
        Err(ClientPolicyError::EmptyBundle)
    ));
    let truncated = &ca.bundle_pem().as_bytes()[..ca.bundle_pem().len() / 2];
    assert!(ClientCertPolicy::from_pem(truncated, None).is_err());
    let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        ClientCertPolicy::from_pem(garbage, None),
        Err(ClientPolicyError::Anchor { index: 0, .. })
    ));
    let bad_pattern =
        ClientCertPolicy::from_pem(ca.bundle_pem().as_bytes(), Some("spiffe://zerofn.local/a*"))
            .unwrap_err();
    assert!(matches!(bad_pattern, ClientPolicyError::Pattern(_)));
    assert!(bad_pattern.to_string().contains("a*"), "{bad_pattern}");
}

#[test]
fn the_ca_is_created_once_and_reloaded() {
    let data = tempfile::tempdir().unwrap();
    let first = CertificateAuthority::load_or_create(data.path(), DOMAIN).unwrap();
    let key = data.path().join(CA_DIR).join(CA_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let issued_before = caller(&first, "spiffe://zerofn.local/callers/ci");
    let second = CertificateAuthority::load_or_create(data.path(), DOMAIN).unwrap();
    assert_eq!(first.certificate(), second.certificate());
    assert_eq!(first.bundle_pem(), second.bundle_pem());
    // The reloaded CA signs with the same key: its certificates verify under the old bundle.
    let issued_after = caller(&second, "spiffe://zerofn.local/callers/ci");
    let policy = ClientCertPolicy::from_pem(first.bundle_pem().as_bytes(), None).unwrap();
    for svid in [&issued_before, &issued_after] {
        policy
            .verify(
                Some(std::slice::from_ref(&svid.certificate.der)),
                SystemTime::now(),
            )
            .unwrap();
    }
}

#[test]
fn broken_ca_files_are_refused_with_the_reason() {
    let data = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(data.path(), DOMAIN).unwrap();
    let dir = data.path().join(CA_DIR);
    let key = dir.join(CA_KEY_FILE);
    let cert = dir.join(CA_CERT_FILE);
    let load = || CertificateAuthority::load_or_create(data.path(), DOMAIN);

    let other = tempfile::tempdir().unwrap();
    let domain = CertificateAuthority::load_or_create(data.path(), "other.local").unwrap_err();
    assert!(
        matches!(domain, CaError::TrustDomainMismatch { .. }),
        "{domain}"
    );

    let original_key = std::fs::read(&key).unwrap();
    CertificateAuthority::load_or_create(other.path(), DOMAIN).unwrap();
    std::fs::copy(other.path().join(CA_DIR).join(CA_KEY_FILE), &key).unwrap();
    assert!(matches!(load().unwrap_err(), CaError::KeyMismatch { .. }));

    zerofn_identity::ca::write_private(&key, b"garbage").unwrap();
    let malformed = load().unwrap_err();
    assert!(
        matches!(malformed, CaError::Malformed { .. }),
        "{malformed}"
    );
    assert!(malformed.to_string().contains(CA_KEY_FILE), "{malformed}");

    zerofn_identity::ca::write_private(&key, &original_key).unwrap();
    let original_cert = std::fs::read(&cert).unwrap();
    std::fs::write(
        &cert,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(matches!(load().unwrap_err(), CaError::Malformed { .. }));
    std::fs::write(&cert, &original_cert).unwrap();
    load().unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load().unwrap_err(),
            CaError::KeyPermissions { mode: 0o644, .. }
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    std::fs::remove_file(&cert).unwrap();
    let incomplete = load().unwrap_err();
    assert!(
        matches!(incomplete, CaError::Incomplete { .. }),
        "{incomplete}"
    );
}
