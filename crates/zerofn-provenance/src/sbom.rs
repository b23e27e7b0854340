//! CycloneDX 1.6 JSON SBOMs: the component itself (with its SHA-256), the Cargo packages it was
//! built from (with package URLs and registry checksums) and the tools its `producers` section
//! names.

use crate::{LockedPackage, Producer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The SBOM of `function` of `app`, whose component is `component`.
pub fn sbom(
    app: &str,
    function: &str,
    component: &[u8],
    packages: &[LockedPackage],
    producers: &[Producer],
    timestamp: &str,
) -> Value {
    let components: Vec<Value> = packages
        .iter()
        .map(|p| {
            let mut entry = json!({
                "type": "library",
                "bom-ref": p.purl(),
                "name": p.name,
                "version": p.version,
                "purl": p.purl(),
            });
            if let (Some(checksum), Value::Object(map)) = (&p.checksum, &mut entry) {
                map.insert(
                    "hashes".into(),
                    json!([{"alg": "SHA-256", "content": checksum}]),
                );
            }
            entry
        })
        .collect();
    let tools: Vec<Value> = producers
        .iter()
        .map(|p| json!({"type": "application", "name": p.name, "version": p.version, "description": format!("producers.{}", p.field)}))
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": tools},
            "component": {
                "type": "application",
                "bom-ref": format!("zerofn:{app}/{function}"),
                "name": format!("{app}/{function}"),
                "hashes": [{"alg": "SHA-256", "content": hex::encode(Sha256::digest(component))}],
            },
        },
        "components": components,
    })
}
