//! Which control plane a command talks to (the local socket, or a remote one with a stored
//! session), and the operator commands: `login`, `logout`, `operator add|list|remove`.

use crate::cli::{OperatorCommand, PassphraseArgs};
use crate::exit::{Code, Failure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use zerofn_server::control::{
    ControlClient, EnrollOperatorRequest, LoginChallenge, LoginChallengeRequest, LoginRequest,
};
use zerofn_server::operators::{Enrolled, IssuedSession, login_message};
use zerofn_store::OperatorRecord;
use zeroize::Zeroizing;

/// Where control commands go.
#[derive(Debug, Clone)]
pub struct Target {
    pub data_dir: PathBuf,
    /// `--remote URL`: the remote control plane, with the stored session.
    pub remote: Option<String>,
    /// `--ca FILE`: overrides the CA bundle stored at login.
    pub ca: Option<PathBuf>,
}

impl Target {
    /// The client for this target: the local socket, or the remote control plane with the
    /// session `zerofn login` stored for it.
    pub fn client(&self) -> Result<ControlClient, Failure> {
        let Some(url) = &self.remote else {
            return Ok(ControlClient::new(&zerofn_server::control::socket_path(
                &self.data_dir,
            )));
        };
        let sessions = read_sessions()?;
        let session = sessions.get(url).ok_or_else(|| {
            Failure::new(
                Code::Refused,
                format!("no session for {url}: log in with `zerofn login --remote {url} --operator NAME --key KEY.pem --ca CA.pem`"),
            )
        })?;
        let ca = self.ca.clone().unwrap_or_else(|| session.ca.clone());
        Ok(ControlClient::remote(url, &ca)?.with_session(session.token.clone()))
    }

    fn local_only(&self, command: &str) -> Result<(), Failure> {
        if self.remote.is_some() {
            return Err(Failure::new(
                Code::Refused,
                format!(
                    "`zerofn {command}` works on the local socket only (enrollment is never remote); drop --remote"
                ),
            ));
        }
        Ok(())
    }

    fn remote_url(&self, command: &str) -> Result<&str, Failure> {
        self.remote.as_deref().ok_or_else(|| {
            Failure::new(
                Code::Refused,
                format!("`zerofn {command}` needs --remote https://HOST:PORT (or ZEROFN_REMOTE)"),
            )
        })
    }
}

/// A stored session, by remote URL.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredSession {
    operator: String,
    token: String,
    ca: PathBuf,
    expires_ms: i64,
}

/// `ZEROFN_SESSIONS_FILE`, else `<config dir>/zerofn/sessions.json`.
fn sessions_file() -> Result<PathBuf, Failure> {
    if let Some(path) = std::env::var_os("ZEROFN_SESSIONS_FILE") {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|d| d.join("zerofn").join("sessions.json"))
        .ok_or_else(|| {
            Failure::new(
                Code::Failure,
                "cannot find a config directory for this user; set ZEROFN_SESSIONS_FILE",
            )
        })
}

fn read_sessions() -> Result<BTreeMap<String, StoredSession>, Failure> {
    let path = sessions_file()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                Code::Failure,
                format!(
                    "{} is unreadable ({e}); delete it and log in again",
                    path.display()
                ),
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(io(&path, error)),
    }
}

/// Writes the sessions file with mode 0600 (its directory 0700): a session is a credential.
fn write_sessions(sessions: &BTreeMap<String, StoredSession>) -> Result<(), Failure> {
    let path = sessions_file()?;
    if let Some(dir) = path.parent() {
        zerofn_store::create_private_dir(dir)
            .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    }
    let text = Zeroizing::new(
        serde_json::to_vec_pretty(sessions)
            .map_err(|e| Failure::new(Code::Failure, e.to_string()))?,
    );
    let temporary = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    {
        use std::io::Write as _;
        let mut file = options.open(&temporary).map_err(|e| io(&temporary, e))?;
        file.write_all(&text).map_err(|e| io(&temporary, e))?;
    }
    std::fs::rename(&temporary, &path).map_err(|e| io(&path, e))
}

/// `zerofn login`.
pub async fn login(
    target: &Target,
    operator: &str,
    key_path: &Path,
    passphrase: &PassphraseArgs,
    totp_file: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let url = target.remote_url("login")?;
    let ca = target.ca.clone().ok_or_else(|| {
        Failure::new(
            Code::Refused,
            "`zerofn login` needs --ca CA.pem: the CA bundle the control plane's certificate chains to (the system's roots are never trusted)",
        )
    })?;
    let ca = std::path::absolute(&ca).unwrap_or(ca);
    let key = super::signing::load_private_key(key_path, passphrase)?;
    let client = ControlClient::remote(url, &ca)?;
    let challenge: LoginChallenge = client
        .post(
            "/v1/login/challenge",
            &LoginChallengeRequest {
                operator: operator.to_string(),
            },
        )
        .await?;
    let code = read_totp(totp_file)?;
    let signature = key.sign(&login_message(
        operator,
        &challenge.nonce,
        &challenge.audience,
    ));
    let session: IssuedSession = client
        .post(
            "/v1/login",
            &LoginRequest {
                operator: operator.to_string(),
                nonce: challenge.nonce,
                signature: BASE64.encode(signature),
                totp: code.to_string(),
            },
        )
        .await?;
    let mut sessions = read_sessions()?;
    sessions.insert(
        url.to_string(),
        StoredSession {
            operator: session.operator.clone(),
            token: session.token.clone(),
            ca,
            expires_ms: session.expires_ms,
        },
    );
    write_sessions(&sessions)?;
    let value = serde_json::json!({
        "remote": url,
        "operator": session.operator,
        "role": session.role,
        "expires_ms": session.expires_ms,
    });
    crate::output::print(json, &value, || {
        format!(
            "logged in to {url} as {} ({})",
            session.operator, session.role
        )
    });
    Ok(())
}

/// `zerofn logout`: revokes the session on the server, then forgets it.
pub async fn logout(target: &Target, json: bool) -> Result<(), Failure> {
    let url = target.remote_url("logout")?.to_string();
    let client = target.client()?;
    let revoked: Result<serde_json::Value, _> =
        client.post("/v1/logout", &serde_json::json!({})).await;
    let mut sessions = read_sessions()?;
    sessions.remove(&url);
    write_sessions(&sessions)?;
    // A session the server no longer knows (expired, revoked) is forgotten all the same.
    match revoked {
        Ok(_) | Err(zerofn_server::control::ControlError::Refused { status: 401, .. }) => {}
        Err(other) => return Err(other.into()),
    }
    let value = serde_json::json!({"remote": url, "logged_out": true});
    crate::output::print(json, &value, || format!("logged out of {url}"));
    Ok(())
}

/// The TOTP code from `--totp-file`, else from the terminal; never from argv.
fn read_totp(file: Option<&Path>) -> Result<Zeroizing<String>, Failure> {
    let code = match file {
        Some(path) => Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io(path, e))?),
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(Failure::new(
                    Code::Refused,
                    "a TOTP code is needed: pass --totp-file FILE, or run on a terminal",
                ));
            }
            Zeroizing::new(rpassword::prompt_password("TOTP code: ").map_err(|e| {
                Failure::new(Code::Failure, format!("cannot read the TOTP code: {e}"))
            })?)
        }
    };
    Ok(Zeroizing::new(code.trim().to_string()))
}

/// `zerofn operator add|list|remove` (local socket only).
pub async fn operator(
    command: OperatorCommand,
    target: &Target,
    json: bool,
) -> Result<(), Failure> {
    target.local_only("operator")?;
    let client = target.client()?;
    match command {
        OperatorCommand::Add { name, role, key } => {
            let public_key = std::fs::read_to_string(&key).map_err(|e| io(&key, e))?;
            let enrolled: Enrolled = client
                .post(
                    "/v1/operators",
                    &EnrollOperatorRequest {
                        name,
                        role,
                        public_key,
                    },
                )
                .await?;
            let value = serde_json::json!({
                "operator": enrolled.operator,
                "otpauth_uri": enrolled.otpauth_uri,
            });
            crate::output::print(json, &value, || {
                format!(
                    "enrolled {} ({})\nTOTP secret (shown once: add it to an authenticator app now):\n{}",
                    enrolled.operator.name, enrolled.operator.role, enrolled.otpauth_uri
                )
            });
        }
        OperatorCommand::List => {
            let operators: Vec<OperatorRecord> = client.get("/v1/operators").await?;
            let value = serde_json::to_value(&operators).unwrap_or_default();
            crate::output::print(json, &value, || {
                if operators.is_empty() {
                    return "no operators".into();
                }
                operators
                    .iter()
                    .map(|o| {
                        format!(
                            "{:<16} {:<15} failed logins: {}",
                            o.name, o.role, o.failed_logins
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCommand::Remove { name } => {
            let removed: serde_json::Value = client
                .post(
                    &format!("/v1/operators/{name}/remove"),
                    &serde_json::json!({}),
                )
                .await?;
            crate::output::print(json, &removed, || format!("removed {name}"));
        }
    }
    Ok(())
}

fn io(path: &Path, error: std::io::Error) -> Failure {
    Failure::new(Code::Failure, format!("{}: {error}", path.display()))
}
