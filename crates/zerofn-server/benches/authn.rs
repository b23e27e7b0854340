//! Cost of authenticating one caller, paid on every request before any sandbox exists, and of
//! minting the per-invocation token (paid on every invocation). Baselines in the same run: bare
//! `jsonwebtoken::decode` of the same token with the same key, so zerofn's own checks (header
//! judged first, key selection, required claims) show apart from the signature.
//!
//! Run: `cargo bench -p zerofn-server --bench authn`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod timing;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use timing::{measure, percentiles};
use zerofn_identity::{CertificateAuthority, ClientCertPolicy, SvidRequest};
use zerofn_server::authn::jwt::JwtPolicy;

const RSA_KEY: &[u8] = include_bytes!("../tests/fixtures/jwt-issuer-rsa.pkcs1.der");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_case(name: &str, algorithm: Algorithm, encoding: EncodingKey) {
    let auth = zerofn_manifest::JwtAuth {
        issuer: "https://login.example.test".into(),
        audience: "orders-api".into(),
        jwks: "keys/jwks.json".into(),
        algorithms: Vec::new(),
        required_claims: vec!["tenant".into()],
    };
    let policy = JwtPolicy::new(&auth).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).unwrap();
    jwk.common.key_id = Some("k1".into());
    let keys = JwkSet {
        keys: vec![jwk.clone()],
    };
    let mut header = Header::new(algorithm);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({
        "iss": auth.issuer, "aud": auth.audience, "sub": "user-42",
        "exp": now() + 3600, "iat": now(), "tenant": "acme",
    });
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    let authorization = format!("Bearer {token}");

    let zerofn = measure(|| {
        let (token, header) = policy.read_header(Some(authorization.as_bytes())).unwrap();
        let jwk = policy.select_key(&keys, &header).unwrap();
        std::hint::black_box(policy.verify(token, &header, jwk).unwrap());
    });
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&auth.issuer]);
    validation.set_audience(&[&auth.audience]);
    let bare = measure(|| {
        std::hint::black_box(
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap(),
        );
    });
    percentiles(&format!("jwt {name}: zerofn (header, key, verify)"), zerofn);
    percentiles(&format!("jwt {name}: baseline jsonwebtoken::decode"), bare);
}

fn main() {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    jwt_case(
        "ES256",
        Algorithm::ES256,
        EncodingKey::from_ec_der(&ec.serialize_der()),
    );
    jwt_case(
        "RS256",
        Algorithm::RS256,
        EncodingKey::from_rsa_der(RSA_KEY),
    );

    // mTLS: the per-request chain check of a client SVID against a function's CA bundle.
    let ca = CertificateAuthority::create("zerofn.local", SystemTime::now()).unwrap();
    let client = ca
        .issue(&SvidRequest::new(
            "spiffe://zerofn.local/svc/billing",
            SystemTime::now(),
            Duration::from_secs(3600),
        ))
        .unwrap();
    let policy = ClientCertPolicy::from_pem(
        ca.bundle_pem().as_bytes(),
        Some("spiffe://zerofn.local/svc/*"),
    )
    .unwrap();
    let chain = [client.certificate.der.clone()];
    percentiles(
        "mtls: chain + SPIFFE ID check",
        measure(|| {
            std::hint::black_box(policy.verify(Some(&chain), SystemTime::now()).unwrap());
        }),
    );

    // API keys: the check after the store lookup (SHA-256, constant-time compare, scope).
    let created =
        zerofn_server::authn::create_api_key("shop", vec!["*".into()], "b", 0, None).unwrap();
    percentiles(
        "api-key: hash + compare + scope",
        measure(|| {
            let record = created.record.clone();
            std::hint::black_box(
                zerofn_server::authn::check_api_key(
                    Some(created.key.as_bytes()),
                    "x-api-key",
                    "shop",
                    "checkout",
                    1,
                    |_| Some(record),
                )
                .unwrap(),
            );
        }),
    );

    // The per-invocation JWT-SVID: mint (ES256 sign) and revoke when the lease drops.
    let issuer = zerofn_identity::Issuer::new().unwrap();
    let mut n = 0u64;
    percentiles(
        "invocation token: mint + revoke",
        measure(|| {
            n += 1;
            let claims = zerofn_identity::SvidClaims {
                sub: "spiffe://zerofn.local/app/shop/fn/checkout".into(),
                aud: vec!["spiffe://zerofn.local/platform".into()],
                exp: now() + 10,
                iat: now(),
                jti: format!("inv-{n}"),
                scopes: vec!["invoke:inventory".into()],
                chain: Vec::new(),
            };
            let (token, lease) = issuer.mint(&claims).unwrap();
            std::hint::black_box(token);
            drop(lease);
        }),
    );
}
