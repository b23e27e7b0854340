//! Starting and stopping the platform: open the store, build the runtime, restore the active
//! versions, bind both listeners (every error before any of them serves), then serve until told
//! to stop.

use crate::control;
use crate::platform::Platform;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zerofn_audit::{AuditEvent, AuditLog, EventKind, Outcome};
use zerofn_identity::tls::RotatingSvid;
use zerofn_manifest::LimitPolicy;
use zerofn_runtime::{Runtime, RuntimeConfig};
use zerofn_store::Store;

/// Everything the platform needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where function traffic is served.
    pub listen: SocketAddr,
    /// Where state lives (store, control socket).
    pub data_dir: PathBuf,
    /// Invocations in flight across all functions; beyond it requests get 503.
    pub max_concurrency: u32,
    /// Limit defaults and the ceilings no manifest may exceed.
    pub limits: LimitPolicy,
    pub runtime: RuntimeConfig,
    /// How long in-flight requests may take to finish after a stop signal.
    pub shutdown_grace: Duration,
    /// The trust policy file [default: `DATA_DIR/trust.toml`].
    pub trust_policy: Option<PathBuf>,
    /// Refuse deploys whose SBOMs name packages with advisories at or above a severity.
    pub advisories: Option<AdvisoryConfig>,
    /// The operator's admission rules: Rego files or directories of them.
    pub admission_policies: Vec<PathBuf>,
    /// The operator's Cedar guardrails (`forbid` policies): files or directories of them.
    pub guardrails: Vec<PathBuf>,
    /// The SPIFFE trust domain of function identities.
    pub trust_domain: String,
    /// Extra CA certificates (PEM file) trusted when fetching `auth.jwt` key sets by URL,
    /// besides the system's roots.
    pub jwks_ca: Option<PathBuf>,
    /// Extra CA certificates (PEM file) that egress trusts for `https` destinations, besides
    /// the system's roots.
    pub egress_ca: Option<PathBuf>,
    /// The remote control plane (TLS on TCP); none unless configured.
    pub remote_control: Option<RemoteControlConfig>,
    /// Whether the function listener serves TLS.
    pub function_tls: FunctionTls,
    /// Lifetime of the node's server SVID; it is renewed half-way.
    pub svid_ttl: Duration,
    /// This node's name in its SPIFFE ID, `spiffe://<trust domain>/node/<name>`.
    pub node_name: String,
    /// Where the master keys that seal secrets come from [default: the key file
    /// `DATA_DIR/master.key`, created on first start].
    pub master_key: Option<zerofn_vault::MasterKeySource>,
    /// Limits on functions' key-value use (`[kv]`).
    pub kv: crate::kv::KvLimits,
    /// How the local queue worker retries (`[queues]`).
    pub queues: crate::triggers::queue::QueueSettings,
    /// Where audit events are exported over OTLP (`[telemetry]`); none unless configured.
    pub telemetry: Option<crate::otlp::TelemetryConfig>,
    /// What the response loop does per severity of a detection (`[response]`).
    pub response: crate::response::ResponsePolicy,
    /// The detectors' thresholds, windows and caps (`[detection]`).
    pub detection: zerofn_detect::DetectorConfig,
}

/// The remote control listener's settings (`[control]` in the config file).
#[derive(Debug, Clone)]
pub struct RemoteControlConfig {
    pub listen: SocketAddr,
    pub certificate: control::CertificateSource,
    /// How long a session lives (at most [`crate::operators::MAX_SESSION_TTL`]).
    pub session_ttl: Duration,
}

/// How the function listener is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionTls {
    /// Plain HTTP (the default: the quick start needs no certificates).
    Off,
    /// TLS 1.3 with the node's SVID from the built-in CA; client certificates are asked for
    /// and handed to the request (see `docs/security.md`).
    Builtin,
}

impl std::str::FromStr for FunctionTls {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "off" => Ok(Self::Off),
            "builtin" => Ok(Self::Builtin),
            other => Err(format!(
                "`server.tls` is `{other}`; use \"off\" (plain HTTP) or \"builtin\" (TLS with the built-in CA)"
            )),
        }
    }
}

/// The node name when none is configured (one node per data directory in this release).
pub const DEFAULT_NODE_NAME: &str = "local";

/// The trust domain when the config names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "zerofn.local";

/// The deploy-time dependency gate's settings.
#[derive(Debug, Clone)]
pub struct AdvisoryConfig {
    /// A directory of OSV advisories (see `zerofn deps`).
    pub db: PathBuf,
    /// The least severe finding that refuses a deploy.
    pub block_at: zerofn_provenance::Severity,
}

impl ServerConfig {
    /// Defaults for a data directory: loopback, port 8080.
    pub fn new(data_dir: PathBuf) -> Self {
        let runtime = RuntimeConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            max_concurrency: runtime.max_instances,
            limits: LimitPolicy::default(),
            runtime,
            shutdown_grace: Duration::from_secs(30),
            trust_policy: None,
            advisories: None,
            admission_policies: Vec::new(),
            guardrails: Vec::new(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            jwks_ca: None,
            egress_ca: None,
            remote_control: None,
            function_tls: FunctionTls::Off,
            svid_ttl: zerofn_identity::ca::DEFAULT_SVID_TTL,
            node_name: DEFAULT_NODE_NAME.to_string(),
            master_key: None,
            kv: crate::kv::KvLimits::default(),
            queues: crate::triggers::queue::QueueSettings::default(),
            telemetry: None,
            response: crate::response::ResponsePolicy::default(),
            detection: zerofn_detect::DetectorConfig::default(),
        }
    }

    /// Where the master keys come from.
    pub fn master_key_source(&self) -> zerofn_vault::MasterKeySource {
        self.master_key.clone().unwrap_or_else(|| {
            zerofn_vault::MasterKeySource::File(self.data_dir.join(crate::vault::MASTER_KEY_FILE))
        })
    }

    /// The trust policy file in force.
    pub fn trust_policy_path(&self) -> PathBuf {
        self.trust_policy
            .clone()
            .unwrap_or_else(|| self.data_dir.join(crate::trust::TRUST_FILE))
    }

    /// The operator's admission policies, loaded and compiled; `None` when there are none.
    pub fn operator_policy(
        &self,
    ) -> Result<Option<zerofn_admission::OperatorPolicy>, zerofn_admission::PolicyError> {
        if self.admission_policies.is_empty() {
            return Ok(None);
        }
        zerofn_admission::OperatorPolicy::load(&self.admission_policies).map(Some)
    }

    /// The deploy-time advisory gate, loaded; `None` when none is configured.
    pub fn advisory_gate(&self) -> Result<Option<crate::signatures::AdvisoryGate>, ServerError> {
        let Some(advisories) = &self.advisories else {
            return Ok(None);
        };
        Ok(Some(crate::signatures::AdvisoryGate {
            database: zerofn_provenance::AdvisoryDatabase::load(&advisories.db)
                .map_err(ServerError::Advisories)?,
            block_at: advisories.block_at,
        }))
    }

    /// The control plane's socket inside the data directory.
    pub fn control_socket(&self) -> PathBuf {
        control::socket_path(&self.data_dir)
    }
}

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] zerofn_store::StoreError),
    #[error("cannot start the sandbox runtime: {0}")]
    Runtime(#[from] zerofn_runtime::LoadError),
    #[error(
        "the global concurrency cap ({cap}) exceeds the sandbox pool ({pool}); lower `max_concurrency` or raise `max_instances`"
    )]
    Concurrency { cap: u32, pool: u32 },
    #[error(
        "the memory ceiling ({ceiling_mb} MiB) exceeds what a sandbox slot holds ({slot_mb} MiB)"
    )]
    MemoryCeiling { ceiling_mb: u64, slot_mb: u64 },
    #[error(
        "cannot listen on {addr}: {source} (is another server using it? choose another with --listen)"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the control socket {path}: {reason}")]
    ControlSocket { path: PathBuf, reason: String },
    #[error("cannot start the audit writer: {0}")]
    Audit(std::io::Error),
    #[error(transparent)]
    AuditKey(#[from] zerofn_audit::CheckpointKeyError),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error("cannot load the advisory database: {0}")]
    Advisories(zerofn_provenance::ProvenanceError),
    #[error("cannot create the token signing key: {0}")]
    Identity(String),
    #[error("cannot load the guardrails: {0}")]
    Guardrails(#[from] zerofn_policy::PolicyError),
    #[error("cannot load the admission policies: {0}")]
    Policy(#[from] zerofn_admission::PolicyError),
    #[error("the built-in CA: {0}")]
    Ca(#[from] zerofn_identity::CaError),
    #[error("cannot set up TLS on the function listener: {0}")]
    Tls(#[from] zerofn_identity::tls::TlsError),
    #[error("cannot read or create the node secret that authenticates compiled code: {0}")]
    NodeSecret(std::io::Error),
    #[error("cannot set up the JWKS client: {0}")]
    Jwks(String),
    #[error("cannot set up egress: {0}")]
    Egress(String),
    #[error("cannot set up TLS for the remote control listener: {0}")]
    ControlTls(#[from] control::TlsError),
    #[error("cannot load the master key ({source_description}): {error}")]
    MasterKey {
        source_description: String,
        error: zerofn_vault::VaultError,
    },
    #[error("cannot set up the OTLP export (`[telemetry]`): {0}")]
    Telemetry(String),
    #[error("invalid detector thresholds: {0}")]
    Detection(String),
    #[error("cannot finish the interrupted master-key rotation: {0}")]
    Rotation(#[from] crate::vault::RotationError),
}

/// The node's secret (32 bytes, mode 0600) that authenticates the compiled-code cache.
pub const NODE_SECRET_FILE: &str = "node.secret";
/// Where compiled components are cached.
pub const COMPILED_DIR: &str = "compiled";

/// A started platform. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    platform: Arc<Platform>,
    http_addr: SocketAddr,
    function_tls: FunctionTls,
    control_socket: PathBuf,
    remote_control_addr: Option<SocketAddr>,
    /// The remote control listener's SVID, when the built-in CA issues it.
    control_svid: Option<Arc<RotatingSvid>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Apps that could not be restored at start-up, with the reason.
    pub restore_failures: Vec<(String, crate::DeployError)>,
    /// Held for the server's lifetime: no second server can open the same data directory.
    _data_dir_lock: std::fs::File,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("http_addr", &self.http_addr)
            .field("control_socket", &self.control_socket)
            .finish_non_exhaustive()
    }
}

/// Starts the platform: checks the configuration, opens the store, restores active versions,
/// binds the listeners and serves.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.max_concurrency > config.runtime.max_instances {
        return Err(ServerError::Concurrency {
            cap: config.max_concurrency,
            pool: config.runtime.max_instances,
        });
    }
    let ceiling_mb = config.limits.ceilings.memory_mb;
    if ceiling_mb.saturating_mul(1 << 20) > config.runtime.max_memory_bytes {
        return Err(ServerError::MemoryCeiling {
            ceiling_mb,
            slot_mb: config.runtime.max_memory_bytes >> 20,
        });
    }
    let control_socket = config.control_socket();
    refuse_live_server(&control_socket).await?;
    zerofn_store::create_private_dir(&config.data_dir)?;
    let data_dir_lock = lock_data_dir(&config.data_dir)?;
    let store = Store::open(&config.data_dir)?;
    let key_source = config.master_key_source();
    let vault =
        crate::vault::Vault::open(key_source.clone()).map_err(|error| ServerError::MasterKey {
            source_description: key_source.describe(),
            error,
        })?;
    // A rotation a crash interrupted is finished before anything is served, so every row is
    // under the current key when the old one is retired.
    let finished_rotation = vault.finish_rotation(&store)?;
    let trust = crate::trust::TrustPolicy::load(&config.trust_policy_path(), &config.data_dir)?;
    let advisory_gate = config.advisory_gate()?;
    let operator_policy = config.operator_policy()?;
    let guardrails = zerofn_policy::Guardrails::load(&config.guardrails)?;
    let ca = Arc::new(zerofn_identity::CertificateAuthority::load_or_create(
        &config.data_dir,
        &config.trust_domain,
    )?);
    let server_svid = match config.function_tls {
        FunctionTls::Off => None,
        FunctionTls::Builtin => Some(Arc::new(crate::certificates::server_svid(&ca, &config)?)),
    };
    let control_listener = bind_control_socket(&control_socket)?;
    let (remote_tls, control_svid) = match &config.remote_control {
        Some(remote) => {
            let (acceptor, svid) = crate::certificates::control_acceptor(&ca, &config, remote)?;
            (Some(acceptor), svid)
        }
        None => (None, None),
    };
    let checkpoint_key = zerofn_audit::CheckpointKey::load_or_create(
        &config.data_dir.join(zerofn_audit::CHECKPOINT_KEY_FILE),
    )?;
    let audit = AuditLog::start_with(
        store.clone(),
        Some(zerofn_audit::CheckpointPolicy::new(Arc::new(
            checkpoint_key,
        ))),
    )
    .map_err(ServerError::Audit)?;
    let node_secret = zerofn_runtime::load_or_create_key(&config.data_dir.join(NODE_SECRET_FILE))
        .map_err(ServerError::NodeSecret)?;
    let mut runtime_config = config.runtime.clone();
    if runtime_config.compile_cache.is_none() {
        runtime_config.compile_cache = Some(zerofn_runtime::CompileCache::new(
            config.data_dir.join(COMPILED_DIR),
            node_secret,
        ));
    }
    let operators = crate::operators::OperatorAuth::new(
        store.clone(),
        &node_secret,
        format!("spiffe://{}/control", config.trust_domain),
        config
            .remote_control
            .as_ref()
            .map_or(crate::operators::DEFAULT_SESSION_TTL, |r| r.session_ttl),
    );
    let runtime = Runtime::new(runtime_config, audit.clone())?;
    let platform = Platform::new(
        runtime,
        store,
        audit.clone(),
        crate::platform::PlatformPolicies {
            limits: config.limits,
            trust,
            trust_source: crate::platform::TrustSource {
                policy_file: config.trust_policy_path(),
                data_dir: config.data_dir.clone(),
            },
            advisory_gate,
            operator_policy,
            max_concurrency: config.max_concurrency,
            guardrails,
            trust_domain: config.trust_domain.clone(),
            jwks: jwks_client(&config)?,
            operators,
            ca,
            function_tls: matches!(config.function_tls, FunctionTls::Builtin),
            vault: Arc::new(vault),
            egress: egress(&config)?,
            kv_limits: config.kv,
            response: config.response.clone(),
        },
    )?;
    if let Some(rotation) = finished_rotation {
        if rotation.previous_still_configured {
            tracing::warn!(
                retired = ?rotation.retired_key_ids,
                "every sealed row is now under the current master key: remove the previous keys from ZEROFN_MASTER_KEY_PREVIOUS"
            );
        }
        platform
            .record_rotation("master-key-rotation-finished", &Ok(rotation))
            .await;
    }
    let tls = server_svid
        .as_ref()
        .map(|svid| crate::certificates::acceptor(svid))
        .transpose()?;

    let http_listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;

    let remote_listener = match &config.remote_control {
        Some(remote) => {
            let listener =
                TcpListener::bind(remote.listen)
                    .await
                    .map_err(|source| ServerError::Listen {
                        addr: remote.listen,
                        source,
                    })?;
            let addr = listener
                .local_addr()
                .map_err(|source| ServerError::Listen {
                    addr: remote.listen,
                    source,
                })?;
            Some((listener, addr))
        }
        None => None,
    };
    let remote_control_addr = remote_listener.as_ref().map(|(_, addr)| *addr);

    // The exporter and the event counter follow the stream from here, so they see what
    // restoring records.
    let exporter = config
        .telemetry
        .as_ref()
        .map(crate::otlp::Exporter::new)
        .transpose()
        .map_err(ServerError::Telemetry)?;
    let (stop, stopped) = watch::channel(false);
    let newest = newest_event(platform.store())?;
    let mut followers = vec![tokio::spawn(crate::metrics::count_audit_events(
        platform.clone(),
        Some(newest),
        stopped.clone(),
    ))];
    if let Some(exporter) = exporter {
        followers.push(tokio::spawn(crate::otlp::run(
            exporter,
            platform.clone(),
            Some(newest),
            stopped.clone(),
        )));
    }

    // Quarantines are in force before the first request is served, restart or not.
    platform.load_quarantines()?;
    let restore_failures = platform.restore().await;
    for (app, error) in &restore_failures {
        tracing::error!(app = %app, %error, "app not restored; it does not serve until redeployed");
    }

    // Subscribed before anything is served, so that no event of this run escapes it.
    let monitor = crate::monitor::Monitor::start(platform.clone(), config.detection.clone())
        .await
        .map_err(|e| ServerError::Detection(e.to_string()))?;
    let mut tasks = vec![
        tokio::spawn(monitor.run(stopped.clone())),
        tokio::spawn(crate::trigger::serve(
            http_listener,
            platform.clone(),
            stopped.clone(),
            config.shutdown_grace,
            tls,
        )),
        tokio::spawn(control::serve(
            control_listener,
            platform.clone(),
            stopped.clone(),
        )),
        tokio::spawn(crate::triggers::schedule::run(
            platform.clone(),
            stopped.clone(),
            config.shutdown_grace,
        )),
        // A lease outlasts the longest invocation any manifest may ask for.
        tokio::spawn(crate::triggers::queue::run(
            platform.clone(),
            config.queues,
            Duration::from_millis(config.limits.ceilings.timeout_ms) + Duration::from_secs(30),
            stopped.clone(),
        )),
        tokio::spawn(rotate_token_keys(
            platform.clone(),
            config.limits.ceilings.timeout_ms,
            stopped.clone(),
        )),
    ];
    tasks.extend(followers);
    if let (Some((listener, _)), Some(acceptor)) = (remote_listener, remote_tls) {
        tasks.push(tokio::spawn(control::serve_remote(
            listener,
            acceptor,
            platform.clone(),
            stop.subscribe(),
        )));
    }
    for svid in server_svid.iter().chain(&control_svid) {
        tasks.push(tokio::spawn(crate::certificates::rotate_svid(
            svid.clone(),
            stopped.clone(),
        )));
    }
    audit
        .record(
            AuditEvent::new(EventKind::ServerStart, Outcome::Success)
                .detail("listen", http_addr.to_string())
                .detail("control_listen", remote_control_addr.map(|a| a.to_string()))
                .detail("tls", matches!(config.function_tls, FunctionTls::Builtin))
                .detail("data_dir", config.data_dir.display().to_string()),
        )
        .await;
    Ok(RunningServer {
        platform,
        http_addr,
        function_tls: config.function_tls,
        control_socket,
        remote_control_addr,
        control_svid,
        stop,
        tasks,
        restore_failures,
        _data_dir_lock: data_dir_lock,
    })
}

impl RunningServer {
    /// The address function traffic is served on (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The remote control listener's address, when one is configured.
    pub fn remote_control_addr(&self) -> Option<SocketAddr> {
        self.remote_control_addr
    }

    /// The remote control listener's rotating SVID, when its certificate comes from the
    /// built-in CA: what it serves now, and [`RotatingSvid::rotate`] to renew it ahead of the
    /// rotation task (which keeps its own schedule).
    pub fn control_svid(&self) -> Option<&Arc<RotatingSvid>> {
        self.control_svid.as_ref()
    }

    /// Whether the function listener serves TLS.
    pub fn function_tls(&self) -> FunctionTls {
        self.function_tls
    }

    pub fn control_socket(&self) -> &std::path::Path {
        &self.control_socket
    }

    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// Stops accepting, lets in-flight requests finish (within the grace period), records the
    /// stop, and commits and checkpoints the audit stream.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.platform.audit_streams().close();
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.control_socket);
        let audit = self.platform.audit().clone();
        audit
            .record(AuditEvent::new(EventKind::ServerStop, Outcome::Success))
            .await;
        audit.checkpoint().await;
    }
}

/// The id of the newest audit event in the store (0 when there is none).
fn newest_event(store: &Store) -> Result<i64, ServerError> {
    Ok(store
        .audit_events(&zerofn_store::AuditQuery {
            limit: Some(1),
            ..Default::default()
        })?
        .last()
        .map_or(0, |row| row.id))
}

/// The lock file that makes a data directory one server's.
pub const LOCK_FILE: &str = "zerofn.lock";

/// Takes the data directory's exclusive lock (released when the process exits, even by
/// `kill -9`), so two servers starting at once cannot both write the same store.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, ServerError> {
    let path = data_dir.join(LOCK_FILE);
    let error = |reason: String| ServerError::ControlSocket {
        path: path.clone(),
        reason,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| error(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(error(
            "another zerofn server is serving this data directory".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(error(e.to_string())),
    }
}

/// Refuses to start over a data directory that a live server answers for, before touching its
/// store.
async fn refuse_live_server(path: &std::path::Path) -> Result<(), ServerError> {
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(ServerError::ControlSocket {
            path: path.to_path_buf(),
            reason: "another zerofn server is serving this data directory".into(),
        });
    }
    Ok(())
}

/// Binds the control socket with mode 0600 (inside the 0700 data directory, so there is no
/// window in which another user can connect). A socket file left by a crashed server is
/// replaced.
fn bind_control_socket(path: &std::path::Path) -> Result<UnixListener, ServerError> {
    let error = |reason: String| ServerError::ControlSocket {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| error(e.to_string()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| error(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| error(e.to_string()))?;
    }
    Ok(listener)
}

/// How often the token signing key is replaced.
pub const TOKEN_KEY_ROTATION: Duration = Duration::from_secs(3600);

/// Replaces the token signing key every [`TOKEN_KEY_ROTATION`]; the previous key keeps
/// verifying for as long as a token it signed can live (the timeout ceiling) plus a margin.
async fn rotate_token_keys(
    platform: Arc<Platform>,
    timeout_ceiling_ms: u64,
    mut stopped: watch::Receiver<bool>,
) {
    let overlap = Duration::from_millis(timeout_ceiling_ms) + Duration::from_secs(60);
    let mut ticks = tokio::time::interval(TOKEN_KEY_ROTATION);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(error) = platform.issuer().rotate(overlap) {
                    tracing::error!(%error, "token signing key not rotated");
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Egress, trusting the system's roots plus `[egress] ca`.
fn egress(config: &ServerConfig) -> Result<crate::egress::Egress, ServerError> {
    let extra = match &config.egress_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            ServerError::Egress(format!("cannot read `egress.ca` {}: {e}", path.display()))
        })?),
        None => None,
    };
    crate::egress::Egress::new(extra.as_deref())
        .map_err(|e| ServerError::Egress(format!("`egress.ca`: {e}")))
}

/// The client that fetches `auth.jwt` key sets: the system's roots plus `[auth] jwks_ca`.
fn jwks_client(config: &ServerConfig) -> Result<crate::authn::jwks::JwksClient, ServerError> {
    let extra = match &config.jwks_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            ServerError::Jwks(format!(
                "cannot read `auth.jwks_ca` {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    crate::authn::jwks::JwksClient::new(extra.as_deref())
        .map_err(|e| ServerError::Jwks(format!("`auth.jwks_ca`: {e}")))
}
