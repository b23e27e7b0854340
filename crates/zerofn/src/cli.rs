//! The command line, as clap types. Parsing only: no validation that needs I/O happens here.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// zerofn: a zero-trust serverless platform for WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "zerofn", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print results as JSON on stdout, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v, -vv). ZEROFN_LOG overrides it with a tracing filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Where the platform keeps its state [default: the user's data directory + /zerofn].
    #[arg(long, global = true, env = "ZEROFN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Talk to a remote control plane (`https://HOST:PORT`) with the session `zerofn login`
    /// stored, instead of the local socket of the data directory.
    #[arg(long, global = true, env = "ZEROFN_REMOTE", value_name = "URL")]
    pub remote: Option<String>,
    /// The CA bundle (PEM) the remote control plane's certificate must chain to [default:
    /// the one given at login]. The system's roots are never trusted.
    #[arg(long, global = true, env = "ZEROFN_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the key's passphrase from this file (never from the command line). Without it, the
    /// passphrase is asked for on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for function traffic [default: 127.0.0.1:8080, or the config file's].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Platform config file (limits, ceilings, concurrency); see docs/configuration.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new app from a template.
    Init {
        /// Directory to create.
        dir: PathBuf,
        /// App name [default: the directory's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Run each function's build command.
    Build {
        /// The app directory (holding zerofn.toml).
        #[arg(default_value = ".")]
        app_dir: PathBuf,
    },
    /// Build, deploy and serve an app on this machine: the one-command path.
    Up {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
        /// Deploy the components as they are, without running the build commands.
        #[arg(long)]
        no_build: bool,
    },
    /// Serve every deployed app until interrupted.
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Deploy an app to the running server of the data directory.
    Deploy {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Run the build commands first.
        #[arg(long)]
        build: bool,
    },
    /// List deployed apps and their active versions.
    Apps,
    /// Print the running platform's metrics (OpenMetrics text: deploys, refusals by rule).
    Metrics,
    /// List an app's versions, newest first.
    Versions { app: String },
    /// Make an earlier version of an app active again.
    Rollback {
        app: String,
        /// The version id to return to [default: the previously active one].
        #[arg(long, value_name = "VERSION_ID")]
        to: Option<String>,
    },
    /// Call a function from the terminal (through the control plane).
    Invoke {
        app: String,
        function: String,
        /// HTTP method.
        #[arg(short = 'X', long, default_value = "GET")]
        method: String,
        /// Request path (and query) as the function sees it [default: the function's route].
        #[arg(long)]
        path: Option<String>,
        /// A request header, `NAME: VALUE`; repeatable.
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// Request body.
        #[arg(short = 'd', long, conflicts_with = "data_file")]
        data: Option<String>,
        /// Request body from a file (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        data_file: Option<PathBuf>,
    },
    /// Create a signing key pair (PKCS#8 PEM private key, SPKI PEM public key).
    Keygen {
        /// `ecdsa-p256` (cosign's default) or `ed25519`.
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// Path prefix of the files to write: PREFIX.key (mode 0600) and PREFIX.pub.
        #[arg(long, default_value = "zerofn-signing")]
        output: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Write the private key unencrypted.
        #[arg(long, conflicts_with = "passphrase_file")]
        no_passphrase: bool,
    },
    /// Sign each function of an app: an in-toto statement over its component and canonical
    /// configuration, with its build provenance, as a Sigstore bundle.
    Sign {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// The private key (PKCS#8 PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Verify a Sigstore bundle against a public key and print what it proves.
    Verify {
        /// The bundle (`.zerofn/<function>/bundle.sigstore.json`).
        bundle: PathBuf,
        /// The signer's public key (SPKI PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Also check that this component file is the signed one.
        #[arg(long, value_name = "FILE")]
        component: Option<PathBuf>,
    },
    /// Run deploy admission without deploying (for CI): every refusal and warning, with rule,
    /// location and fix, against the data directory's trust policy and the platform config.
    Admit {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Platform config file (ceilings, trust policy, advisory gate, admission policies).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A Rego policy file or directory, in addition to the config's; repeatable.
        #[arg(long, value_name = "PATH")]
        policy: Vec<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// The app's threat model, from its manifest, the trust policy and the guardrails: the
    /// data-flow model (entry points, functions, stores, destinations, trust boundaries) and
    /// its STRIDE threats, each with the control zerofn applies or the gap.
    #[command(name = "threat-model")]
    ThreatModel {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Platform config file (trust policy, guardrails, function listener TLS).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A `.cedar` guardrail file or directory, in addition to the config's; repeatable.
        #[arg(long, value_name = "PATH")]
        guardrails: Vec<PathBuf>,
        /// What to write [default: markdown, or json with --json].
        #[arg(long, value_enum)]
        format: Option<ThreatModelFormat>,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Exit with code 3 when a gap has this severity or more (`info`, `low`, `medium`,
        /// `high`, `critical`) [default: never].
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<zerofn_admission::Severity>,
    },
    /// Least-privilege review: each function's grants against what its component imports
    /// (unused, over-broad and missing grants; imports the platform refuses or cannot link).
    Lint {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Exit 3 when a finding is at least this severe (info, low, medium, high, critical).
        #[arg(long, default_value = "high", value_name = "SEVERITY")]
        fail_on: zerofn_admission::Severity,
    },
    /// API keys for functions with `auth.api-key`: create (shown once), list, revoke.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Secrets of an app, which functions read through `wasi:config/store` when their grants
    /// name them: set, list, rotate, delete; and the master key that seals them.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Local queues: send a CloudEvent to a queue function, list pending and dead messages.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The policy decision point, offline: explain a decision, or test a file of cases.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The built-in certificate authority: export its bundle, issue client certificates for
    /// callers of `mtls` functions.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Check each function's SBOM against an OSV advisory database.
    Deps {
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// The advisory database: a directory of OSV JSON files (e.g. RustSec's OSV export).
        #[arg(long, env = "ZEROFN_ADVISORY_DB", value_name = "DIR")]
        db: PathBuf,
        /// Exit 3 when a finding is at least this severe (unknown, low, medium, high, critical).
        #[arg(long, default_value = "unknown")]
        fail_on: String,
    },
    /// Re-read the trust policy of the running server; versions whose signer is no longer
    /// trusted stop serving at once (503 with the reason).
    TrustReload,
    /// Log in to a remote control plane (`--remote URL`) with an operator key and a TOTP code;
    /// the session is stored (mode 0600) in the user's config directory.
    Login {
        /// The operator name given at enrollment.
        #[arg(long)]
        operator: String,
        /// The operator's private key (PKCS#8 PEM, from `zerofn keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Read the TOTP code from this file (never from the command line). Without it, the
        /// code is asked for on the terminal.
        #[arg(long, value_name = "FILE")]
        totp_file: Option<PathBuf>,
    },
    /// Revoke the stored session of the remote control plane (`--remote URL`) and forget it.
    Logout,
    /// Operators of the remote control plane: add (prints the TOTP secret once), list,
    /// remove. Local socket only.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Print the causal tree of one trace: the request, each function it reached, and under
    /// each its secret reads, egress calls, calls to other functions and key-value writes.
    Trace {
        /// The trace id: 32 lowercase hex digits (the second field of the `traceparent`
        /// response header, or `trace_id` in an audit event).
        trace_id: String,
    },
    /// The audit stream: the newest events or live ones (`tail --follow`); verify its hash
    /// chain and signed checkpoints; export the key that signs them.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show what functions wrote to stdout and stderr.
    Logs {
        app: String,
        function: Option<String>,
        /// Only this invocation's lines.
        #[arg(long, value_name = "ID")]
        invocation: Option<String>,
        /// At most this many lines (the newest).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Keep printing new lines as they arrive.
        #[arg(short, long)]
        follow: bool,
    },
    /// Incidents the detectors opened: list (the default), show, resolve.
    Incidents {
        #[command(subcommand)]
        command: Option<IncidentsCommand>,
        #[command(flatten)]
        filter: IncidentFilter,
    },
    /// Release a quarantined function (`APP/FUNCTION`, or `APP FUNCTION`): it serves again.
    Release {
        /// `APP/FUNCTION`, or the app when the function follows.
        target: String,
        function: Option<String>,
    },
    /// The monitoring loop's figures: time to detect and to respond (mean, p99), the
    /// false-positive rate, incidents by detector and severity, rejected deployments and
    /// refusals by rule.
    Report,
}

/// Which incidents `zerofn incidents [list]` shows.
#[derive(Debug, Clone, Args)]
pub struct IncidentFilter {
    /// Only open or only resolved incidents.
    #[arg(long, value_parser = ["open", "resolved"])]
    pub status: Option<String>,
    /// Only this app's.
    #[arg(long)]
    pub app: Option<String>,
    /// Only this function's (with `--app`).
    #[arg(long, requires = "app")]
    pub function: Option<String>,
}

/// `zerofn incidents ...`
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, newest first.
    List {
        #[command(flatten)]
        filter: IncidentFilter,
    },
    /// One incident with its actions and its evidence events in full.
    Show { id: String },
    /// Resolve an open incident as a true or a false positive (final).
    Resolve {
        id: String,
        /// The detection was right.
        #[arg(
            long,
            conflicts_with = "false_positive",
            required_unless_present = "false_positive"
        )]
        true_positive: bool,
        /// The detection was wrong.
        #[arg(long)]
        false_positive: bool,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
    },
}

/// `zerofn audit ...`
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the stored audit chain and its signed checkpoints, and report every edited,
    /// deleted, inserted or reordered record, where it is. Exits 7 when the chain is broken.
    Verify {
        /// Check checkpoints against this public key (SPKI PEM, from `zerofn audit key`)
        /// instead of the node's own key file.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Print the public key audit checkpoints are signed with (SPKI PEM): keep it where this
    /// node cannot change it, and verify with `--key`.
    Key,
    /// Print the newest audit events that match, one per line (`--json`: one JSON object per
    /// line); with `--follow`, keep printing events as they are committed, reconnecting
    /// where the stream left off.
    Tail {
        /// Keep printing new events (server-sent events from `/v1/audit/stream`).
        #[arg(short, long)]
        follow: bool,
        /// Only events of this app.
        #[arg(long)]
        app: Option<String>,
        /// Only events of this function (with `--app`).
        #[arg(long)]
        function: Option<String>,
        /// Only events of this kind (e.g. `invocation.end`); repeatable, or comma-separated.
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        /// Only events with this outcome: success, failure or denied.
        #[arg(long)]
        outcome: Option<String>,
        /// Only events of this W3C trace (32 hex digits).
        #[arg(long, value_name = "TRACE_ID")]
        trace: Option<String>,
        /// Only events of this invocation.
        #[arg(long, value_name = "ID")]
        invocation: Option<String>,
        /// How many of the newest matching events to print first (0: none, only new ones).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// How `zerofn admit` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// `{"admitted": bool, "findings": [...]}`.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

/// `zerofn threat-model --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ThreatModelFormat {
    /// A report for people (with the Mermaid diagram).
    Markdown,
    /// The whole model for tools (`zerofn.threat-model/v1`).
    Json,
    /// The data-flow diagram as a Mermaid flowchart.
    Mermaid,
    /// The data-flow diagram in Graphviz DOT.
    Dot,
    /// The data-flow diagram rendered by Graphviz (`dot -Tsvg`; needs Graphviz installed).
    Svg,
}

/// `zerofn policy ...`
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Decide one request against an app's grants and the guardrails, and show which policies
    /// decided it.
    Explain {
        /// The app directory (holding zerofn.toml).
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// The function using the capability.
        #[arg(long)]
        function: String,
        /// `invoke`, `egress`, `secret.read`, `kv.read` or `kv.write`.
        #[arg(long)]
        action: String,
        /// A function, secret or bucket name; for `egress`, a URL.
        #[arg(long)]
        resource: String,
        /// For `egress`: the HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The risk score in the request's context (0 to 100).
        #[arg(long, default_value_t = 0)]
        risk: i64,
        #[command(flatten)]
        policies: PolicySources,
    },
    /// Run a TOML file of request/expected-decision cases (for policy authors' CI); exits 1
    /// when any case fails.
    Test {
        /// The cases file.
        cases: PathBuf,
        #[command(flatten)]
        policies: PolicySources,
    },
    /// Propose the smallest grants covering what each function of APP did, from the audit
    /// stream: each grant kept, narrowed or dropped with its evidence (counts, last use), as a
    /// manifest diff. Grants never used in the window are flagged. Never adds a grant.
    Suggest {
        /// The app.
        app: String,
        /// The window: events this recent (`7d`, `36h`, `30m`) [default: 7d from the server;
        /// the whole file with --events].
        #[arg(long)]
        since: Option<String>,
        /// Judge this manifest (a working copy) instead of the deployed one.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Read the events from this file (JSON lines, as `zerofn audit tail --json` prints
        /// them) instead of the running server. Needs --manifest.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// `text` (the review, findings and diff), `diff` (the unified diff alone, for `git
        /// apply`), `json` or `sarif`.
        #[arg(long, value_enum, default_value = "text")]
        format: SuggestFormat,
    },
}

/// How `zerofn policy suggest` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuggestFormat {
    Text,
    Diff,
    Json,
    Sarif,
}

/// Where guardrails come from.
#[derive(Debug, clap::Args)]
pub struct PolicySources {
    /// Platform config file whose `[policy] guardrails` to use.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A `.cedar` guardrail file or directory, in addition to the config's; repeatable.
    #[arg(long, value_name = "PATH")]
    pub guardrails: Vec<PathBuf>,
}

/// `zerofn operator ...`
#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Enroll an operator with a role and a public key; prints the TOTP secret once, as an
    /// `otpauth://` URI for an authenticator app.
    Add {
        name: String,
        /// `viewer`, `deployer` or `security-admin`.
        #[arg(long)]
        role: String,
        /// The operator's public key (SPKI PEM, from `zerofn keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// List operators (name, role, enrollment, failed logins; never secrets).
    List,
    /// Remove an operator; their sessions end at once.
    Remove { name: String },
}

/// `zerofn api-key ...`
#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once and only its hash is kept.
    Create {
        app: String,
        /// A function the key may call; repeatable [default: every function of the app].
        #[arg(long = "function", value_name = "NAME")]
        functions: Vec<String>,
        /// A label for people (who holds it, what for).
        #[arg(long, default_value = "")]
        name: String,
        /// How long it is valid, e.g. `30d`, `12h` [default: until revoked].
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
    },
    /// List an app's keys (ids, scope, expiry, revocation; never secrets).
    List { app: String },
    /// Revoke a key: the next request with it is refused.
    Revoke { id: String },
}

/// `zerofn secrets ...`. A value is never taken from the command line (where `ps` and shell
/// history would show it): it is read from stdin, asked for on the terminal, or read from a
/// file.
#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Store a new secret for an app. The value comes from stdin (one trailing newline is
    /// removed), or is asked for when stdin is a terminal, or comes from `--from-file`
    /// (exactly its bytes).
    Set {
        app: String,
        name: String,
        #[command(flatten)]
        value: SecretValueArgs,
    },
    /// List an app's secrets: names, versions and times, never values.
    List { app: String },
    /// Give a secret a new value (a new version). Invocations already running keep what they
    /// read; the next read gets the new value.
    Rotate {
        app: String,
        name: String,
        #[command(flatten)]
        value: SecretValueArgs,
    },
    /// Delete a secret; functions granted it read nothing from then on.
    Delete { app: String, name: String },
    /// Replace the master key and re-wrap every secret under the new one, while serving
    /// (key file only; see docs/configuration.md for keys in the environment).
    RotateMaster,
    /// Print a new master key (`zmk1.`...) for `ZEROFN_MASTER_KEY`. Talks to no server.
    GenerateMasterKey,
}

/// Where a secret's value comes from.
#[derive(Debug, clap::Args)]
pub struct SecretValueArgs {
    /// Read the value from this file (exactly its bytes) instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
}

/// `zerofn queue ...`
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Send one CloudEvent to APP's QUEUE; it is checked (CloudEvents 1.0, then the consuming
    /// function's `input`) before it is stored.
    Send {
        app: String,
        queue: String,
        /// A CloudEvent in the structured JSON format (`-` for stdin).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["ty", "id", "subject", "data"])]
        event: Option<PathBuf>,
        /// Make the event from flags: its `type`.
        #[arg(long = "type", value_name = "TYPE")]
        ty: Option<String>,
        /// Its `source`.
        #[arg(long, default_value = "/zerofn/cli")]
        source: String,
        /// Its `id` [default: a new UUIDv7].
        #[arg(long)]
        id: Option<String>,
        /// Its `subject`.
        #[arg(long)]
        subject: Option<String>,
        /// Its `data` (JSON unless `--data-type` says otherwise).
        #[arg(long)]
        data: Option<String>,
        /// Its `datacontenttype`.
        #[arg(long, default_value = "application/json")]
        data_type: String,
    },
    /// List QUEUE's pending messages and dead letters (with their last error).
    List { app: String, queue: String },
}

/// `zerofn ca ...`
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Print the CA bundle (PEM) that verifies the platform's certificates.
    Bundle {
        /// Write it to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Issue a client certificate (an X.509 SVID) for a caller of `mtls` functions. The key is
    /// generated here and never sent to the server.
    Issue {
        /// The caller's SPIFFE ID, e.g. `spiffe://zerofn.local/callers/ci`.
        spiffe_id: String,
        /// Directory to write `svid.pem`, `svid.key.pem` (mode 0600) and `bundle.pem` into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How long it is valid (at most 24h).
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        ttl: humantime::Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn incidents_list_by_default_and_resolve_takes_one_verdict() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["zerofn"][..], args].concat());
        let Command::Incidents { command, filter } =
            parse(&["incidents", "--status", "open"]).unwrap().command
        else {
            panic!("not incidents");
        };
        assert!(command.is_none());
        assert_eq!(filter.status.as_deref(), Some("open"));
        assert!(parse(&["incidents", "--status", "closed"]).is_err());
        assert!(
            parse(&["incidents", "list", "--function", "f"]).is_err(),
            "needs --app"
        );
        assert!(
            parse(&["incidents", "resolve", "inc-1"]).is_err(),
            "a verdict is required"
        );
        assert!(
            parse(&[
                "incidents",
                "resolve",
                "inc-1",
                "--true-positive",
                "--false-positive"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "incidents",
                "resolve",
                "inc-1",
                "--false-positive",
                "--note",
                "n"
            ])
            .is_ok()
        );
        let Command::Release { target, function } =
            parse(&["release", "shop", "checkout"]).unwrap().command
        else {
            panic!("not release");
        };
        assert_eq!(
            (target.as_str(), function.as_deref()),
            ("shop", Some("checkout"))
        );
        assert!(parse(&["report", "--json"]).is_ok());
    }
}
