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
    let child = Command::new(ZEROFN)
        .args(["up", "--no-build", "--listen", "127.0.0.1:0", "--json"])
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
            return (child, addr);
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

    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
    let after = zerofn(&data, &["apps"]);
    assert_eq!(after.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&after.stderr).contains("no zerofn server is running"));
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
