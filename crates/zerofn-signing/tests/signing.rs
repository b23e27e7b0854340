//! Keys, DSSE and bundles with real cryptography: round trips, tampering, wrong keys,
//! encrypted keys and malformed input.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zerofn_signing::{
    Algorithm, BUNDLE_MEDIA_TYPE, Bundle, Envelope, PrivateKey, PublicKey, SigningError, Statement,
    Subject, pae,
};

const ALGORITHMS: [Algorithm; 2] = [Algorithm::EcdsaP256, Algorithm::Ed25519];

fn statement() -> Statement {
    Statement::new(
        vec![
            Subject::sha256("checkout.wasm", b"\0asm component bytes"),
            Subject::sha256("checkout.config", b"{\"grants\":{}}"),
        ],
        "https://slsa.dev/provenance/v1",
        serde_json::json!({"buildDefinition": {"buildType": "https://zerofn.dev/build/v1"}}),
    )
}

#[test]
fn pae_matches_the_dsse_specification() {
    // The example of the DSSE protocol specification.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
}

/// A published bundle: sigstore-conformance's managed-key in-toto case (see the SOURCE.md
/// next to it), produced by another implementation and expected to verify.
const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/sigstore-conformance/intoto-canonical-log-entry"
);

#[test]
fn a_published_sigstore_conformance_bundle_verifies() {
    let key =
        PublicKey::from_pem(&std::fs::read_to_string(format!("{CONFORMANCE}/key.pub")).unwrap())
            .unwrap();
    assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
    let text = std::fs::read_to_string(format!("{CONFORMANCE}/bundle.sigstore.json")).unwrap();
    let bundle = Bundle::from_json(&text).unwrap();
    // The hint is the same digest as zerofn's key id (SHA-256 of the DER SPKI), in base64.
    assert_eq!(
        hex::encode(
            BASE64
                .decode(&bundle.verification_material.public_key.hint)
                .unwrap()
        ),
        key.key_id()
    );
    let verified = bundle.verify(std::slice::from_ref(&key)).unwrap();
    assert_eq!(verified.key_id, key.key_id());
    assert_eq!(
        verified.statement.predicate_type,
        "https://example.com/test"
    );
    assert_eq!(verified.statement.subject.len(), 1);
    assert_eq!(verified.statement.subject[0].name, "a.txt");
    assert_eq!(
        verified.statement.subject[0].sha256_hex(),
        Some("a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf")
    );

    // The same bundle with one payload byte changed, or checked against another key, fails.
    let mut altered: serde_json::Value = serde_json::from_str(&text).unwrap();
    let payload = BASE64
        .decode(altered["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let mut payload = payload;
    let last = payload.len() - 2;
    payload[last] ^= 1;
    altered["dsseEnvelope"]["payload"] = BASE64.encode(&payload).into();
    let altered = Bundle::from_json(&altered.to_string()).unwrap();
    assert!(altered.verify(std::slice::from_ref(&key)).is_err());
    let stranger = PrivateKey::generate(Algorithm::EcdsaP256).unwrap().public();
    assert!(matches!(
        bundle.verify(&[stranger]),
        Err(SigningError::UntrustedSigner { .. })
    ));
}

#[test]
fn bundles_round_trip_with_both_algorithms() {
    for algorithm in ALGORITHMS {
        let key = PrivateKey::generate(algorithm).unwrap();
        let bundle = Bundle::sign(&statement(), &key).unwrap();
        let json = bundle.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(
            value["verificationMaterial"]["publicKey"]["hint"],
            key.public().key_id()
        );
        assert_eq!(
            value["dsseEnvelope"]["payloadType"],
            "application/vnd.in-toto+json"
        );
        let payload = BASE64
            .decode(value["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let decoded: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(decoded["_type"], "https://in-toto.io/Statement/v1");

        let verified = Bundle::from_json(&json)
            .unwrap()
            .verify(&[key.public()])
            .unwrap();
        assert_eq!(verified.key_id, key.public().key_id());
        assert_eq!(verified.statement, statement());
    }
}

#[test]
fn a_flipped_byte_in_the_payload_breaks_the_signature() {
    for algorithm in ALGORITHMS {
        let key = PrivateKey::generate(algorithm).unwrap();
        let mut bundle = Bundle::sign(&statement(), &key).unwrap();
        let mut payload = BASE64.decode(&bundle.dsse_envelope.payload).unwrap();
        let last = payload.len() - 3;
        payload[last] ^= 0x01;
        bundle.dsse_envelope.payload = BASE64.encode(payload);
        assert!(matches!(
            bundle.verify(&[key.public()]),
            Err(SigningError::BadSignature { .. })
        ));
    }
}

#[test]
fn the_payload_type_is_signed_too() {
    let key = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let mut envelope = Envelope::sign("application/vnd.in-toto+json", b"{}", &key);
    envelope.payload_type = "text/plain".into();
    assert!(matches!(
        envelope.verify(&[key.public()]),
        Err(SigningError::BadSignature { .. })
    ));
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused() {
    let signer = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    let trusted = PrivateKey::generate(Algorithm::EcdsaP256).unwrap().public();
    let bundle = Bundle::sign(&statement(), &signer).unwrap();
    match bundle.verify(&[trusted]) {
        Err(SigningError::UntrustedSigner { key_ids }) => {
            assert!(key_ids.contains(&signer.public().key_id()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bundle.verify(&[]),
        Err(SigningError::UntrustedSigner { .. })
    ));
}

#[test]
fn a_signature_moved_to_another_keys_id_is_refused() {
    let signer = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let other = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let mut bundle = Bundle::sign(&statement(), &signer).unwrap();
    bundle.dsse_envelope.signatures[0].keyid = other.public().key_id();
    assert!(matches!(
        bundle.verify(&[other.public()]),
        Err(SigningError::BadSignature { .. })
    ));
}

#[test]
fn keys_round_trip_through_pem_encrypted_or_not() {
    for algorithm in ALGORITHMS {
        let key = PrivateKey::generate(algorithm).unwrap();
        let plain = key.to_pem(None).unwrap();
        assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = PrivateKey::from_pem(&plain, None).unwrap();
        assert_eq!(again.public(), key.public());

        let encrypted = key.to_pem(Some(b"correct horse")).unwrap();
        assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(matches!(
            PrivateKey::from_pem(&encrypted, None),
            Err(SigningError::PassphraseRequired)
        ));
        assert!(matches!(
            PrivateKey::from_pem(&encrypted, Some(b"wrong")),
            Err(SigningError::WrongPassphrase)
        ));
        let decrypted = PrivateKey::from_pem(&encrypted, Some(b"correct horse")).unwrap();
        assert_eq!(decrypted.public(), key.public());

        let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
        assert_eq!(public, key.public());
        assert_eq!(public.algorithm(), algorithm);
        assert_eq!(public.key_id().len(), 64);
    }
}

#[test]
fn malformed_keys_and_bundles_are_clear_errors() {
    for garbage in [
        "",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        assert!(matches!(
            PrivateKey::from_pem(garbage, None),
            Err(SigningError::MalformedKey(_))
        ));
        assert!(matches!(
            PublicKey::from_pem(garbage),
            Err(SigningError::MalformedKey(_))
        ));
    }
    for garbage in [
        "",
        "{}",
        "[1,2]",
        r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.1+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"","payloadType":"x","signatures":[]}}"#,
    ] {
        assert!(matches!(
            Bundle::from_json(garbage),
            Err(SigningError::Malformed { .. })
        ));
    }
    let key = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let mut bundle = Bundle::sign(&statement(), &key).unwrap();
    bundle.dsse_envelope.signatures[0].sig = "%%%".into();
    assert!(matches!(
        bundle.verify(&[key.public()]),
        Err(SigningError::Malformed { .. })
    ));
    bundle.dsse_envelope.signatures.clear();
    assert!(matches!(
        bundle.verify(&[key.public()]),
        Err(SigningError::Malformed { .. })
    ));
}

#[test]
fn debug_output_never_shows_key_material() {
    let key = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let pem = key.to_pem(None).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!format!("{key:?}").contains(body));
}
