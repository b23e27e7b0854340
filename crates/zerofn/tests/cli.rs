//! The `zerofn` binary end to end: a real server process on loopback, driven by the CLI as a
//! user would, with exit codes and diagnostics checked.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ZEROFN: &str = env!("CARGO_BIN_EXE_zerofn");

const MANIFEST: &str = r#"[app]
name = "hello"
version = "0.1.0"

[functions.hello]
component = "hello.wasm"
trigger = { http = { route = "/hello", methods = ["GET"] } }

[functions.hello.auth]
public = true
"#;

fn zerofn(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(ZEROFN)
        .args(args)
        .env("ZEROFN_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

fn app_dir(root: &Path, name: &str, manifest: &str, with_component: bool) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("zerofn.toml"), manifest).unwrap();
    if with_component {
        std::fs::copy(zerofn_test_artifacts::HELLO, dir.join("hello.wasm")).unwrap();
    }
    dir
}

/// A server process that is stopped when the test ends, even when the test fails.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `zerofn up` and reads its `--json` announcement for the address it serves on.
fn up(app: &Path, data_dir: &Path) -> (ServerProcess, SocketAddr) {
    up_with(app, data_dir, &[]).0
}

/// `up` with more arguments; also hands back the announcement.
fn up_with(
    app: &Path,
    data_dir: &Path,
    extra: &[&str],
) -> ((ServerProcess, SocketAddr), serde_json::Value) {
    let child = Command::new(ZEROFN)
        .args(["up", "--no-build", "--listen", "127.0.0.1:0", "--json"])
        .args(extra)
        .arg(app)
        .env("ZEROFN_DATA_DIR", data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ServerProcess(child);
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no announcement: {text}");
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("zerofn up exited: {text}");
        }
        text.push_str(&line);
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            assert_eq!(value["deployed"]["app"], "hello", "{value}");
            let addr = value["listen"].as_str().unwrap().parse().unwrap();
            return ((child, addr), value);
        }
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn terminate(child: &mut ServerProcess) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.0.wait().unwrap()
}

#[test]
fn up_serves_and_the_cli_drives_the_running_server() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let (mut server, addr) = up(&app, &data);

    let response = http_get(addr, "/hello");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-zerofn-invocation-id"));

    let apps = zerofn(&data, &["apps", "--json"]);
    assert!(apps.status.success());
    let apps: serde_json::Value = serde_json::from_slice(&apps.stdout).unwrap();
    assert_eq!(apps[0]["app"], "hello");
    assert_eq!(apps[0]["functions"][0]["route"], "/hello");

    let invoked = zerofn(&data, &["invoke", "hello", "hello"]);
    assert!(invoked.status.success(), "{invoked:?}");
    assert_eq!(
        String::from_utf8_lossy(&invoked.stdout),
        "Hello from zerofn!\n"
    );

    let missing = zerofn(&data, &["invoke", "hello", "nope"]);
    assert_eq!(missing.status.code(), Some(3));

    // A typo in the manifest: refused with a located diagnostic and exit code 3.
    let typo = MANIFEST.replace("trigger =", "triger =");
    let bad = app_dir(root.path(), "typo", &typo, true);
    let refused = zerofn(&data, &["deploy", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("error[unknown-key]"), "{stderr}");
    assert!(stderr.contains("typo/zerofn.toml:7:1"), "{stderr}");

    // A missing component: refused before anything is sent.
    let empty = app_dir(root.path(), "empty", MANIFEST, false);
    let refused = zerofn(&data, &["deploy", "--json", empty.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(json["diagnostics"][0]["code"], "missing-component");
    assert_eq!(json["diagnostics"][0]["line"], 6);

    let versions = zerofn(&data, &["versions", "hello", "--json"]);
    let versions: serde_json::Value = serde_json::from_slice(&versions.stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1);

    // The audit stream: the newest events, filtered, as JSON lines; then live.
    let tail = zerofn(
        &data,
        &[
            "audit",
            "tail",
            "--kind",
            "invocation.end",
            "--app",
            "hello",
            "--json",
        ],
    );
    assert!(tail.status.success(), "{tail:?}");
    let ends: Vec<serde_json::Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(ends.len(), 2, "the request and the invoke: {ends:?}");
    assert!(
        ends.iter()
            .all(|e| e["kind"] == "invocation.end" && e["id"].is_i64())
    );
    let text = zerofn(&data, &["audit", "tail", "--kind", "deploy"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(" deploy success hello"), "{text}");
    let typo = zerofn(&data, &["audit", "tail", "--kind", "invocation.ended"]);
    assert_eq!(typo.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("`kind`"),
        "{typo:?}"
    );
    let follower = Command::new(ZEROFN)
        .args(["audit", "tail", "--follow", "--limit", "0", "--json"])
        .args(["--kind", "invocation.end"])
        .env("ZEROFN_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut follower = ServerProcess(follower);
    let stdout = follower.0.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // The follower prints only what is committed after it started: keep requesting until
    // one arrives (it may not have connected yet for the first).
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        assert!(
            Instant::now() < deadline,
            "audit tail --follow printed nothing"
        );
        assert!(http_get(addr, "/hello").starts_with("HTTP/1.1 200"));
        if let Ok(line) = received.recv_timeout(Duration::from_secs(2)) {
            break line;
        }
    };
    let event: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(event["kind"], "invocation.end");
    assert!(
        ends.iter().all(|e| e["id"] != event["id"]),
        "an old event printed as new"
    );
    drop(follower);

    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
    let after = zerofn(&data, &["apps"]);
    assert_eq!(after.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&after.stderr).contains("no zerofn server is running"));
}

#[test]
fn ca_bundle_and_issue_work_against_the_running_server() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let (mut server, _) = up(&app, &data);

    let printed = zerofn(&data, &["ca", "bundle"]);
    assert!(printed.status.success(), "{printed:?}");
    let bundle = String::from_utf8(printed.stdout).unwrap();
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "{bundle}"
    );
    let bundle_file = root.path().join("bundle.pem");
    let written = zerofn(
        &data,
        &["ca", "bundle", "--out", bundle_file.to_str().unwrap()],
    );
    assert!(written.status.success(), "{written:?}");
    assert_eq!(
        std::fs::read_to_string(&bundle_file).unwrap().trim_end(),
        bundle.trim_end()
    );

    let out = root.path().join("ci-cert");
    let issued = zerofn(
        &data,
        &[
            "ca",
            "issue",
            "spiffe://zerofn.local/callers/ci",
            "--out",
            out.to_str().unwrap(),
            "--ttl",
            "2h",
            "--json",
        ],
    );
    assert!(issued.status.success(), "{issued:?}");
    let report: serde_json::Value = serde_json::from_slice(&issued.stdout).unwrap();
    assert_eq!(report["spiffe_id"], "spiffe://zerofn.local/callers/ci");
    assert_eq!(
        report["not_after_ms"].as_i64().unwrap() - report["not_before_ms"].as_i64().unwrap(),
        (2 * 3600 + 60) * 1000
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("svid.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The certificate verifies against the bundle, names the caller, and matches the key.
    let certificate = CertificateDer::from_pem_file(out.join("svid.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(out.join("svid.key.pem")).unwrap();
    let policy = zerofn_identity::ClientCertPolicy::from_pem(bundle.as_bytes(), None).unwrap();
    let identity = policy
        .verify(
            Some(std::slice::from_ref(&certificate)),
            std::time::SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        identity.spiffe_id.to_string(),
        "spiffe://zerofn.local/callers/ci"
    );
    zerofn_identity::tls::client_identity(vec![certificate], key).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("bundle.pem"))
            .unwrap()
            .trim_end(),
        bundle.trim_end()
    );

    // A function's identity is never issued to a caller.
    let refused = zerofn(
        &data,
        &[
            "ca",
            "issue",
            "spiffe://zerofn.local/app/hello/fn/hello",
            "--out",
            root.path().join("forged").to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("reserves"),
        "{refused:?}"
    );
    assert!(!root.path().join("forged").exists());

    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
    let after = zerofn(&data, &["ca", "bundle"]);
    assert_eq!(after.status.code(), Some(4));
}

#[test]
fn up_serves_https_with_the_builtin_ca_and_refuses_unknown_tls_values() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let config = root.path().join("zerofn.config.toml");

    std::fs::write(&config, "[server]\ntls = \"yes\"\n").unwrap();
    let refused = Command::new(ZEROFN)
        .args(["up", "--no-build", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg(&app)
        .env("ZEROFN_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"builtin\""));

    std::fs::write(&config, "[server]\ntls = \"builtin\"\n").unwrap();
    let ((mut server, addr), announcement) =
        up_with(&app, &data, &["--config", config.to_str().unwrap()]);
    assert_eq!(announcement["tls"], true);
    assert_eq!(
        announcement["functions"][0]["url"],
        format!("https://{addr}/hello")
    );
    let bundle = zerofn(&data, &["ca", "bundle"]);
    assert!(bundle.status.success());

    // An ordinary TLS client that trusts only the exported bundle gets the function's answer.
    let tls_config = zerofn_identity::tls::client_config(&bundle.stdout, None).unwrap();
    let connection = rustls::ClientConnection::new(
        std::sync::Arc::new(tls_config),
        "localhost".try_into().unwrap(),
    )
    .unwrap();
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, stream);
    write!(
        tls,
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    // The server may close without close_notify after `Connection: close`; what was read counts.
    let _ = tls.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Plain HTTP gets no HTTP answer.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    write!(
        plain,
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1"), "{answer:?}");

    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_malformed_manifest_stops_up_before_any_socket_opens() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let manifest = MANIFEST.replace("name = \"hello\"", "name = \"Bad\"");
    let app = app_dir(root.path(), "bad", &manifest, true);
    let output = Command::new(ZEROFN)
        .args(["up", "--no-build", "--listen", "127.0.0.1:0"])
        .arg(&app)
        .env("ZEROFN_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error[invalid-name]"), "{stderr}");
    assert!(!data.join("control.sock").exists());
}

#[test]
fn a_failing_build_exits_5_with_its_output() {
    let root = tempfile::tempdir().unwrap();
    let manifest = MANIFEST.replace(
        "component = \"hello.wasm\"",
        "component = \"hello.wasm\"\nbuild = { command = \"echo compiler says no >&2; exit 7\" }",
    );
    let app = app_dir(root.path(), "broken", &manifest, false);
    let output = zerofn(root.path(), &["build", app.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&output.stderr).contains("compiler says no"));
}

#[test]
fn init_scaffolds_an_app_whose_manifest_is_valid() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("my-app");
    let output = zerofn(root.path(), &["init", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let manifest = zerofn_manifest::load(&dir.join("zerofn.toml")).unwrap();
    assert_eq!(manifest.app_name(), "my-app");
    manifest
        .check_deployable(&zerofn_manifest::LimitPolicy::default())
        .unwrap();
    assert!(dir.join("src/lib.rs").exists());
    let again = zerofn(root.path(), &["init", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(3));
}

#[test]
fn help_is_available_everywhere() {
    for args in [
        vec!["--help"],
        vec!["up", "--help"],
        vec!["invoke", "--help"],
    ] {
        let output = Command::new(ZEROFN).args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        let mut text = String::new();
        output.stdout.as_slice().read_to_string(&mut text).unwrap();
        assert!(text.contains("Usage: zerofn"), "{args:?}: {text}");
    }
}

#[test]
fn keygen_build_sign_and_verify_a_prebuilt_app() {
    let root = tempfile::tempdir().unwrap();
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let passphrase = root.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery\n").unwrap();
    let prefix = root.path().join("release");
    let keygen = zerofn(
        root.path(),
        &[
            "keygen",
            "--output",
            prefix.to_str().unwrap(),
            "--passphrase-file",
            passphrase.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(keygen.status.success(), "{keygen:?}");
    let keys: serde_json::Value = serde_json::from_slice(&keygen.stdout).unwrap();
    assert_eq!(keys["encrypted"], true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.path().join("release.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = zerofn(
        root.path(),
        &[
            "keygen",
            "--output",
            prefix.to_str().unwrap(),
            "--no-passphrase",
        ],
    );
    assert_eq!(
        again.status.code(),
        Some(3),
        "keygen never overwrites a key"
    );

    let build = zerofn(root.path(), &["build", app.to_str().unwrap()]);
    assert!(build.status.success(), "{build:?}");
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.join(".zerofn/hello/sbom.cdx.json")).unwrap())
            .unwrap();
    assert_eq!(sbom["specVersion"], "1.6");

    let key = root.path().join("release.key");
    let no_passphrase = Command::new(ZEROFN)
        .args([
            "sign",
            app.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(no_passphrase.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_passphrase.stderr).contains("--passphrase-file"));
    let sign = zerofn(
        root.path(),
        &[
            "sign",
            app.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--passphrase-file",
            passphrase.to_str().unwrap(),
        ],
    );
    assert!(sign.status.success(), "{sign:?}");

    let bundle = app.join(".zerofn/hello/bundle.sigstore.json");
    let public = root.path().join("release.pub");
    let component = app.join("hello.wasm");
    let verify = zerofn(
        root.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--component",
            component.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(verify.status.success(), "{verify:?}");
    let proof: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(proof["key_id"], keys["key_id"]);
    assert_eq!(proof["subjects"][0]["name"], "hello/hello.wasm");
    assert_eq!(proof["builder"], "https://zerofn.dev/builders/local@v1");

    // One flipped byte in the component: the bundle no longer vouches for it.
    let mut bytes = std::fs::read(&component).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&component, bytes).unwrap();
    let tampered = zerofn(
        root.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--component",
            component.to_str().unwrap(),
        ],
    );
    assert_eq!(tampered.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("not the signed component"));

    // Another key: refused, naming the signer's key id.
    let other = root.path().join("other");
    zerofn(
        root.path(),
        &[
            "keygen",
            "--output",
            other.to_str().unwrap(),
            "--no-passphrase",
        ],
    );
    let untrusted = zerofn(
        root.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            other.with_extension("pub").to_str().unwrap(),
        ],
    );
    assert_eq!(untrusted.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains(keys["key_id"].as_str().unwrap()));
}

#[test]
fn deps_flags_an_advisory_in_the_sbom_and_fails_at_the_chosen_severity() {
    let root = tempfile::tempdir().unwrap();
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/advisories");
    let build = zerofn(root.path(), &["build", app.to_str().unwrap()]);
    assert!(build.status.success(), "{build:?}");
    let clean = zerofn(
        root.path(),
        &["deps", app.to_str().unwrap(), "--db", db.to_str().unwrap()],
    );
    assert!(clean.status.success(), "{clean:?}");

    let sbom_path = app.join(".zerofn/hello/sbom.cdx.json");
    let mut sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom_path).unwrap()).unwrap();
    sbom["components"] = serde_json::json!([{"type": "library", "name": "smallvec",
        "version": "1.6.0", "purl": "pkg:cargo/smallvec@1.6.0"}]);
    std::fs::write(&sbom_path, sbom.to_string()).unwrap();

    let flagged = zerofn(
        root.path(),
        &[
            "deps",
            app.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(flagged.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&flagged.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!(finding["advisory"], "ZEROFN-TEST-0001");
    assert_eq!(finding["package"], "smallvec");
    assert_eq!(finding["severity"], "high");
    assert_eq!(finding["fixed"], "1.6.1");
    assert_eq!(finding["function"], "hello");

    let tolerated = zerofn(
        root.path(),
        &[
            "deps",
            app.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--fail-on",
            "critical",
        ],
    );
    assert!(tolerated.status.success(), "{tolerated:?}");
}

#[test]
fn admit_reports_every_finding_with_its_location_in_json_and_sarif() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let prefix = root.path().join("release");
    let keygen = zerofn(
        &data,
        &[
            "keygen",
            "--output",
            prefix.to_str().unwrap(),
            "--no-passphrase",
        ],
    );
    assert!(keygen.status.success(), "{keygen:?}");
    std::fs::copy(root.path().join("release.pub"), data.join("release.pub")).unwrap();
    std::fs::write(
        data.join("trust.toml"),
        "[[keys]]\nname = \"release\"\npublic_key = \"release.pub\"\napps = [\"hello\"]\n",
    )
    .unwrap();
    assert!(
        zerofn(&data, &["build", app.to_str().unwrap()])
            .status
            .success()
    );
    let key = root.path().join("release.key");
    assert!(
        zerofn(
            &data,
            &[
                "sign",
                app.to_str().unwrap(),
                "--key",
                key.to_str().unwrap()
            ]
        )
        .status
        .success()
    );

    let ok = zerofn(&data, &["admit", app.to_str().unwrap(), "--format", "json"]);
    assert!(ok.status.success(), "{ok:?}");
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["admitted"], true);

    // Widen the grants after signing: refused, pointing at the function, with the new grant's
    // warning as well.
    let widened = MANIFEST.replace(
        "[functions.hello.auth]",
        "[functions.hello.grants]\negress = [\"https://*.evil.example.com\"]\n\n[functions.hello.auth]",
    );
    std::fs::write(app.join("zerofn.toml"), widened).unwrap();
    let refused = zerofn(
        &data,
        &["admit", app.to_str().unwrap(), "--format", "sarif"],
    );
    assert_eq!(refused.status.code(), Some(3));
    let sarif: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let error = results.iter().find(|r| r["level"] == "error").unwrap();
    assert_eq!(error["ruleId"], "config-not-signed");
    let region = &error["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 5, "[functions.hello] is on line 5");
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "wildcard-egress" && r["level"] == "warning")
    );
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert!(rules.iter().any(|r| r["id"] == "config-not-signed"));

    let text = zerofn(&data, &["admit", app.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("error[config-not-signed]"), "{stdout}");
    assert!(stdout.contains("zerofn.toml:5:12"), "{stdout}");
    assert!(stdout.contains("= field: functions.hello"), "{stdout}");

    // An operator's Rego rule, given on the command line as CI would: its message, its id and
    // the exact element it names, in every format.
    let policy = root.path().join("no-evil.rego");
    std::fs::write(
        &policy,
        r#"package ci
deny contains {"id": "no-evil-hosts", "msg": sprintf("%s is not an approved destination", [url]),
               "field": sprintf("functions.%s.grants.egress[%d]", [name, i])} if {
    some name, f in input.manifest.functions
    some i, url in f.grants.egress
    contains(url, "evil")
}
"#,
    )
    .unwrap();
    let args = |format: &str| {
        vec![
            "admit".to_string(),
            app.to_str().unwrap().to_string(),
            "--policy".to_string(),
            policy.to_str().unwrap().to_string(),
            "--format".to_string(),
            format.to_string(),
        ]
    };
    let run = |format: &str| {
        let args = args(format);
        zerofn(&data, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let json = run("json");
    assert_eq!(json.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rego = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "no-evil-hosts")
        .unwrap();
    assert_eq!(rego["level"], "error");
    assert_eq!(
        rego["message"],
        "https://*.evil.example.com is not an approved destination"
    );
    assert_eq!(rego["field"], "functions.hello.grants.egress[0]");
    assert_eq!(
        (rego["line"].as_u64(), rego["column"].as_u64()),
        (Some(10), Some(11))
    );
    assert_eq!(rego["value"], "\"https://*.evil.example.com\"");
    assert!(rego["file"].as_str().unwrap().ends_with("zerofn.toml"));

    let sarif = run("sarif");
    let sarif: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let result = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "no-evil-hosts")
        .unwrap();
    let location = &result["locations"][0];
    assert_eq!(location["physicalLocation"]["region"]["startLine"], 10);
    assert_eq!(
        location["logicalLocations"][0]["fullyQualifiedName"],
        "functions.hello.grants.egress[0]"
    );

    let broken = root.path().join("broken.rego");
    std::fs::write(
        &broken,
        "package ci
deny contains if {",
    )
    .unwrap();
    let refused = zerofn(
        &data,
        &[
            "admit",
            app.to_str().unwrap(),
            "--policy",
            broken.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("broken.rego"),
        "{refused:?}"
    );
}

const GRANTING: &str = r#"[app]
name = "shop"
version = "0.1.0"

[functions.checkout]
component = "hello.wasm"
trigger = { http = { route = "/checkout" } }
auth = { public = true }
grants = { invoke = ["inventory"], egress = ["https://api.example.com/v1"] }

[functions.inventory]
component = "hello.wasm"
trigger = { http = { route = "/inventory" } }
auth = { public = true }
"#;

#[test]
fn policy_explain_names_the_deciding_policies_and_policy_test_gates_ci() {
    let root = tempfile::tempdir().unwrap();
    let app = app_dir(root.path(), "shop", GRANTING, false);
    let guardrails = root.path().join("guardrails");
    std::fs::create_dir_all(&guardrails).unwrap();
    std::fs::write(
        guardrails.join("org.cedar"),
        "@id(\"no-deletes\")\nforbid(principal, action == Action::\"egress\", resource)\nwhen { context.destination.method == \"DELETE\" };\n",
    )
    .unwrap();
    let explain = |action: &str, resource: &str, method: &str| {
        let out = zerofn(
            root.path(),
            &[
                "--json",
                "policy",
                "explain",
                app.to_str().unwrap(),
                "--function",
                "checkout",
                "--action",
                action,
                "--resource",
                resource,
                "--method",
                method,
                "--guardrails",
                guardrails.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let invoke = explain("invoke", "inventory", "GET");
    assert_eq!(invoke["allowed"], true);
    assert_eq!(
        invoke["policies"][0]["id"],
        "grant/shop/checkout/invoke/inventory"
    );
    assert!(
        invoke["policies"][0]["text"]
            .as_str()
            .unwrap()
            .contains("permit")
    );

    let delete = explain("egress", "https://api.example.com/v1/orders/7", "DELETE");
    assert_eq!(delete["allowed"], false);
    assert_eq!(delete["policies"][0]["id"], "no-deletes");
    assert!(
        delete["policies"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("org.cedar")
    );
    let other = explain("egress", "https://evil.example.com/", "GET");
    assert_eq!(other["allowed"], false);
    assert!(
        other["explanation"]
            .as_str()
            .unwrap()
            .contains("default deny")
    );

    let cases = root.path().join("cases.toml");
    let write_cases = |extra: &str| {
        std::fs::write(
            &cases,
            format!(
                r#"app = "shop"

[[case]]
name = "checkout reads stock"
function = "checkout"
action = "invoke"
resource = "inventory"
expect = "allow"
policies = ["grant/shop/checkout/invoke/inventory"]

[[case]]
name = "no deletes, whatever the grant"
function = "checkout"
action = "egress"
resource = "https://api.example.com/v1/orders/7"
method = "DELETE"
expect = "deny"
{extra}"#
            ),
        )
        .unwrap();
    };
    let run = || {
        zerofn(
            root.path(),
            &[
                "policy",
                "test",
                cases.to_str().unwrap(),
                "--guardrails",
                guardrails.to_str().unwrap(),
            ],
        )
    };
    write_cases("");
    let passing = run();
    assert!(passing.status.success(), "{passing:?}");
    assert!(String::from_utf8_lossy(&passing.stdout).contains("2 passed, 0 failed"));

    write_cases(
        "\n[[case]]\nname = \"inventory calls checkout\"\nfunction = \"inventory\"\naction = \"invoke\"\nresource = \"checkout\"\nexpect = \"allow\"\n",
    );
    let failing = run();
    assert_eq!(failing.status.code(), Some(1), "{failing:?}");
    let stdout = String::from_utf8_lossy(&failing.stdout);
    assert!(
        stdout.contains("FAIL inventory calls checkout: expected allow, got denied"),
        "{stdout}"
    );
}

#[test]
fn an_operator_enrolls_locally_logs_in_remotely_and_is_held_to_their_role() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    // No certificate files: the control listener serves the built-in CA's SVID.
    let config = root.path().join("zerofn.config.toml");
    std::fs::write(&config, "[control]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (_server, announcement) = up_with(&app, &data, &["--config", config.to_str().unwrap()]);
    let remote_addr: SocketAddr = announcement["remote_control"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("https://localhost:{}", remote_addr.port());
    let sessions = root.path().join("config").join("sessions.json");
    let run = |args: &[&str]| {
        Command::new(ZEROFN)
            .args(args)
            .env("ZEROFN_DATA_DIR", &data)
            .env("ZEROFN_SESSIONS_FILE", &sessions)
            .output()
            .unwrap()
    };
    // The operator's `--ca`: the bundle the server's owner exports.
    let ca = root.path().join("bundle.pem");
    let exported = run(&["ca", "bundle", "--out", ca.to_str().unwrap()]);
    assert!(exported.status.success(), "{exported:?}");
    let prefix = root.path().join("operator");
    let keygen = run(&[
        "keygen",
        "--output",
        prefix.to_str().unwrap(),
        "--no-passphrase",
    ]);
    assert!(keygen.status.success(), "{keygen:?}");
    let public = root.path().join("operator.pub");
    let private = root.path().join("operator.key");

    let added = run(&[
        "operator",
        "add",
        "vic",
        "--role",
        "viewer",
        "--key",
        public.to_str().unwrap(),
        "--json",
    ]);
    assert!(added.status.success(), "{added:?}");
    let added: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    let totp = totp_rs::Totp::from_url(added["otpauth_uri"].as_str().unwrap()).unwrap();
    let listed = run(&["--remote", &url, "operator", "list"]);
    assert_eq!(
        listed.status.code(),
        Some(3),
        "enrollment is local only: {listed:?}"
    );

    let code = root.path().join("totp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(&code, format!("{}\n", totp.generate(now))).unwrap();
    let login = |ca: &Path| {
        run(&[
            "login",
            "--remote",
            &url,
            "--operator",
            "vic",
            "--key",
            private.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
            "--totp-file",
            code.to_str().unwrap(),
        ])
    };
    let logged_in = login(&ca);
    assert!(logged_in.status.success(), "{logged_in:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sessions).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let apps = run(&["--remote", &url, "apps", "--json"]);
    assert!(apps.status.success(), "{apps:?}");
    let apps: serde_json::Value = serde_json::from_slice(&apps.stdout).unwrap();
    assert_eq!(apps[0]["app"], "hello");
    let reload = run(&["--remote", &url, "trust-reload"]);
    assert_eq!(reload.status.code(), Some(3), "{reload:?}");
    let stderr = String::from_utf8_lossy(&reload.stderr);
    assert!(
        stderr.contains("control.trust.reload") && stderr.contains("viewer"),
        "{stderr}"
    );

    // The same code again is a replay: refused, without saying which factor failed.
    let replay = login(&ca);
    assert_eq!(replay.status.code(), Some(3), "{replay:?}");
    assert!(String::from_utf8_lossy(&replay.stderr).contains("Login refused"));

    let logout = run(&["--remote", &url, "logout"]);
    assert!(logout.status.success(), "{logout:?}");
    let after = run(&["--remote", &url, "apps"]);
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("no session"),
        "{after:?}"
    );
}

/// `zerofn ARGS` with `input` on stdin.
fn zerofn_with_stdin(data_dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(ZEROFN)
        .args(args)
        .env("ZEROFN_DATA_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits without reading stdin: the write then fails
    // with a broken pipe, which is the child's answer, not the test's failure.
    match child.stdin.take().unwrap().write_all(input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    child.wait_with_output().unwrap()
}

#[test]
fn secrets_come_from_stdin_or_a_file_never_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let (_server, _addr) = up(&app, &data);
    let value = "cli-secret-4d2e";

    let set = zerofn_with_stdin(
        &data,
        &["secrets", "set", "hello", "api_key", "--json"],
        format!("{value}\n").as_bytes(),
    );
    assert!(set.status.success(), "{set:?}");
    let record: serde_json::Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(record["version"], 1);

    // There is no way to give the value as an argument: clap refuses it (usage, exit 2).
    for args in [
        &["secrets", "set", "hello", "other", value][..],
        &["secrets", "set", "hello", "other", "--value", value][..],
        &["secrets", "rotate", "hello", "api_key", value][..],
    ] {
        let refused = zerofn_with_stdin(&data, args, b"x");
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {refused:?}");
    }
    // An empty value is refused before anything is sent.
    let empty = zerofn_with_stdin(&data, &["secrets", "set", "hello", "other"], b"\n");
    assert_eq!(empty.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("the value is empty"));
    // Set twice: refused, pointing at rotate.
    let again = zerofn_with_stdin(&data, &["secrets", "set", "hello", "api_key"], b"v");
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("zerofn secrets rotate"));

    let file = root.path().join("new-value");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let rotated = zerofn(
        &data,
        &[
            "secrets",
            "rotate",
            "hello",
            "api_key",
            "--from-file",
            file.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(rotated.status.success(), "{rotated:?}");
    let record: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(record["version"], 2);

    let list = zerofn(&data, &["secrets", "list", "hello", "--json"]);
    assert!(list.status.success(), "{list:?}");
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    let records: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(records[0]["name"], "api_key");
    assert_eq!(records[0]["version"], 2);
    assert!(!listed.contains(value) && !listed.contains("from-a-file"));

    let rotation = zerofn(&data, &["secrets", "rotate-master", "--json"]);
    assert!(rotation.status.success(), "{rotation:?}");
    let rotation: serde_json::Value = serde_json::from_slice(&rotation.stdout).unwrap();
    assert_eq!(rotation["rewrapped"], 1);

    let deleted = zerofn(&data, &["secrets", "delete", "hello", "api_key"]);
    assert!(deleted.status.success(), "{deleted:?}");
    let gone = zerofn(&data, &["secrets", "delete", "hello", "api_key"]);
    assert_eq!(gone.status.code(), Some(3));

    let key = zerofn(&data, &["secrets", "generate-master-key"]);
    assert!(key.status.success());
    let key = String::from_utf8(key.stdout).unwrap();
    assert!(key.starts_with("zmk1.") && key.trim().len() == 48, "{key}");
    let data_files: Vec<u8> = std::fs::read(data.join("zerofn.db")).unwrap();
    assert!(
        !data_files
            .windows(value.len())
            .any(|w| w == value.as_bytes())
    );
}

#[test]
fn trace_prints_the_tree_of_a_request_and_refuses_what_it_cannot_show() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = app_dir(root.path(), "hello", MANIFEST, true);
    let (_server, addr) = up(&app, &data);

    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /hello HTTP/1.1\r\nHost: localhost\r\ntraceparent: 00-{TRACE}-00f067aa0ba902b7-01\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(&format!("traceparent: 00-{TRACE}-")),
        "{response}"
    );

    // The invocation's end is recorded once its sandbox is gone, just after the response.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let traced = zerofn(&data, &["trace", TRACE]);
        assert!(traced.status.success(), "{traced:?}");
        let text = String::from_utf8_lossy(&traced.stdout).into_owned();
        if text.contains("(1 invocation, 2 events") {
            break text;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.starts_with(&format!("trace {TRACE}  (1 invocation, 2 events, ")),
        "{text}"
    );
    assert!(text.contains("└─ GET /hello  hello/hello  200  "), "{text}");
    assert!(text.contains("caller=anonymous"), "{text}");

    let json = zerofn(&data, &["trace", TRACE, "--json"]);
    assert!(json.status.success(), "{json:?}");
    let tree: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(tree["trace_id"], TRACE);
    assert_eq!(tree["roots"][0]["kind"], "invocation");
    assert_eq!(tree["roots"][0]["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(tree["roots"][0]["events"][0]["kind"], "invocation.start");

    let unknown = zerofn(&data, &["trace", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("No audit event belongs to trace"),
        "{stderr}"
    );

    let invalid = zerofn(&data, &["trace", "not-a-trace"]);
    assert_eq!(invalid.status.code(), Some(1), "{invalid:?}");
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("is not a trace id"),
        "{invalid:?}"
    );
}

#[test]
fn policy_suggest_reads_the_running_servers_stream_and_its_deployed_manifest() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // `hello` imports no key-value interface: its bucket grant can only go unused.
    let manifest = MANIFEST.replace(
        "[functions.hello.auth]",
        "[functions.hello.grants]\nkv = { cache = \"read-write\" }\n\n[functions.hello.auth]",
    );
    let app = app_dir(root.path(), "hello", &manifest, true);
    let (_server, addr) = up(&app, &data);
    assert!(http_get(addr, "/hello").starts_with("HTTP/1.1 200"));

    let review = zerofn(&data, &["policy", "suggest", "hello", "--json"]);
    assert!(review.status.success(), "{review:?}");
    let review: serde_json::Value = serde_json::from_slice(&review.stdout).unwrap();
    let text = review.to_string();
    assert!(text.contains("use-grant-unused"), "{review:#}");
    assert!(
        text.contains("functions.hello.grants.kv.cache"),
        "{review:#}"
    );

    // The diff is against the deployed manifest, as signed: applying it leaves no grant.
    let diff = zerofn(&data, &["policy", "suggest", "hello", "--format", "diff"]);
    assert!(diff.status.success(), "{diff:?}");
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.starts_with("--- a/zerofn.toml\n+++ b/zerofn.toml\n"),
        "{diff}"
    );
    assert!(diff.contains("-kv = { cache = \"read-write\" }"), "{diff}");
    assert!(!diff.lines().any(|l| l.starts_with("+kv")), "{diff}");

    // An app the server never deployed is named in the refusal.
    let unknown = zerofn(&data, &["policy", "suggest", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nosuch"));
}
