//! The audit chain end to end with the real binary: `zerofn audit verify` on a live server and
//! on a tampered store, and a `kill -9` in the middle of heavy traffic that must lose no event
//! the control plane had already shown.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

fn hello_app(root: &Path) -> PathBuf {
    let dir = root.join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("zerofn.toml"), MANIFEST).unwrap();
    std::fs::copy(zerofn_test_artifacts::HELLO, dir.join("hello.wasm")).unwrap();
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

/// Starts `zerofn ARGS --json` and reads its announcement for the address it serves on.
fn start(data_dir: &Path, args: &[&str]) -> (ServerProcess, SocketAddr) {
    let child = Command::new(ZEROFN)
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--json"])
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
            panic!("zerofn exited: {text}");
        }
        text.push_str(&line);
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            return (child, value["listen"].as_str().unwrap().parse().unwrap());
        }
    }
}

fn up(app: &Path, data_dir: &Path) -> (ServerProcess, SocketAddr) {
    start(data_dir, &["up", "--no-build", app.to_str().unwrap()])
}

/// One GET to the function; `None` once the server is gone.
fn hello(addr: SocketAddr) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A GET on the control socket of `data_dir`: the status and the JSON body.
fn control_get(data_dir: &Path, path: &str) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(data_dir.join("control.sock")).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// Every audit row the control plane shows after `after_id`, by id.
fn audit_rows(data_dir: &Path, mut after_id: i64) -> BTreeMap<i64, serde_json::Value> {
    let mut rows = BTreeMap::new();
    loop {
        let (status, page) = control_get(
            data_dir,
            &format!("/v1/audit?after_id={after_id}&limit=10000"),
        );
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else {
            return rows;
        };
        after_id = last["id"].as_i64().unwrap();
        for row in page {
            rows.insert(row["id"].as_i64().unwrap(), row);
        }
    }
}

fn terminate(child: &mut ServerProcess) {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn audit_verify_passes_on_a_live_server_and_locates_tampering_in_the_stopped_store() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = hello_app(root.path());
    let (mut server, addr) = up(&app, &data);
    for _ in 0..5 {
        assert!(hello(addr).unwrap().starts_with("HTTP/1.1 200"));
    }

    let live = zerofn(&data, &["audit", "verify"]);
    assert!(live.status.success(), "{live:?}");
    let text = String::from_utf8_lossy(&live.stdout);
    assert!(text.contains("audit chain intact"), "{text}");

    let key = zerofn(&data, &["audit", "key"]);
    assert!(key.status.success(), "{key:?}");
    let exported = root.path().join("audit-key.pem");
    std::fs::write(&exported, &key.stdout).unwrap();
    assert!(String::from_utf8_lossy(&key.stdout).contains("BEGIN PUBLIC KEY"));

    // A clean stop checkpoints the head: the whole log is signed.
    terminate(&mut server);
    let raw = rusqlite::Connection::open(data.join("zerofn.db")).unwrap();
    let (last, checkpointed): (i64, i64) = raw
        .query_row(
            "SELECT (SELECT max(id) FROM audit_events), (SELECT max(event_id) FROM audit_checkpoints)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        checkpointed,
        last - 1,
        "only the checkpoint's own event follows the signed head"
    );
    let raw = rusqlite::Connection::open(data.join("zerofn.db")).unwrap();
    raw.execute(
        "UPDATE audit_events SET event = replace(event, '\"success\"', '\"failure\"') WHERE id = 3",
        [],
    )
    .unwrap();
    drop(raw);
    // The server starts on a broken chain (refusing to would be a denial of service for whoever
    // can edit the file) and keeps appending after it.
    let (_server, addr) = start(&data, &["serve"]);
    assert!(hello(addr).unwrap().starts_with("HTTP/1.1 200"));
    let broken = zerofn(&data, &["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(7), "{broken:?}");
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("audit chain BROKEN"), "{stderr}");
    assert!(stderr.contains("id 3: edited"), "{stderr}");
    assert!(stderr.contains("expected "), "{stderr}");

    let broken = zerofn(&data, &["audit", "verify", "--json", "--key"]);
    assert_eq!(broken.status.code(), Some(2), "--key needs a file");
    let broken = zerofn(
        &data,
        &[
            "audit",
            "verify",
            "--json",
            "--key",
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(broken.status.code(), Some(7), "{broken:?}");
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["intact"], false);
    // The outcome changed in the text: the text no longer matches its hash, and the indexed
    // `outcome` column no longer matches the text.
    let findings: Vec<(String, i64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [
            ("column-mismatch".to_string(), 3),
            ("edited".to_string(), 3)
        ],
        "{report}"
    );

    // Checked against a key that is not the node's, every checkpoint fails.
    let stranger = root.path().join("stranger");
    let made = Command::new(ZEROFN)
        .args(["keygen", "--no-passphrase", "--output"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let public = stranger.with_extension("pub");
    let strange = zerofn(
        &data,
        &[
            "audit",
            "verify",
            "--json",
            "--key",
            public.to_str().unwrap(),
        ],
    );
    assert_eq!(strange.status.code(), Some(7), "{strange:?}");
    let report: serde_json::Value = serde_json::from_slice(&strange.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "checkpoint-invalid"),
        "{report}"
    );

    // Each verification that found a break is itself in the stream.
    let failures = audit_rows(&data, 0)
        .into_values()
        .filter(|row| row["event"]["reason"] == "audit-chain-broken")
        .count();
    assert!(failures >= 2, "{failures}");
}

#[test]
fn kill_9_during_heavy_traffic_loses_no_event_the_control_plane_showed() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let app = hello_app(root.path());
    let (mut server, addr) = up(&app, &data);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut served = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match hello(addr) {
                        Some(response) if response.starts_with("HTTP/1.1 200") => served += 1,
                        Some(_) => {}
                        // The server was killed.
                        None => break,
                    }
                }
                served
            })
        })
        .collect();

    // Read what the control plane shows while traffic flows; each read flushes, so every row
    // it returns is acknowledged.
    let mut seen = BTreeMap::new();
    let mut after = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < 3_000 {
        assert!(Instant::now() < deadline, "only {} events seen", seen.len());
        let rows = audit_rows(&data, after);
        if let Some((&last, _)) = rows.last_key_value() {
            after = last;
        }
        seen.extend(rows);
    }
    // One more read immediately before the kill, so that the last acknowledged events are as
    // close to it as possible.
    seen.extend(audit_rows(&data, after));
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let served: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(served > 0);

    let (_restarted, _) = start(&data, &["serve"]);
    let after_restart = audit_rows(&data, 0);
    for (id, row) in &seen {
        assert_eq!(
            after_restart.get(id),
            Some(row),
            "event {id} was acknowledged before the kill"
        );
    }
    assert!(after_restart.len() > seen.len());
    assert!(
        after_restart
            .values()
            .any(|row| row["kind"] == "server.start"),
        "the restarted server records its start"
    );

    let verified = zerofn(&data, &["audit", "verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap_or_default();
    assert!(verified.status.success(), "{report} {verified:?}");
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["events"].as_u64().unwrap() >= seen.len() as u64);
}
