//! One module per command group; each turns parsed arguments into library calls.

mod audit;
mod build;
mod ca;
mod control;
mod incidents;
mod init;
mod lint;
mod offline;
mod operator;
mod policy;
mod queue;
mod secrets;
mod serve;
mod signing;
mod threat_model;

use crate::cli::{Cli, Command};
use crate::exit::{Code, Failure};
use std::path::PathBuf;

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.global.json;
    let data_dir = || data_dir(cli.global.data_dir.clone());
    let target = || -> Result<operator::Target, Failure> {
        Ok(operator::Target {
            data_dir: data_dir()?,
            remote: cli.global.remote.clone(),
            ca: cli.global.ca.clone(),
        })
    };
    match cli.command {
        Command::Init { dir, name } => init::init(&dir, name.as_deref(), json),
        Command::Build { app_dir } => build::build_command(&app_dir, json),
        Command::Up {
            app_dir,
            serve,
            no_build,
        } => serve::up(&app_dir, &serve, !no_build, data_dir()?, json).await,
        Command::Serve { serve } => serve::serve(&serve, data_dir()?, json).await,
        Command::Deploy { app_dir, build } => {
            control::deploy(&app_dir, build, &target()?, json).await
        }
        Command::Apps => control::apps(&target()?, json).await,
        Command::Metrics => control::metrics(&target()?).await,
        Command::Versions { app } => control::versions(&app, &target()?, json).await,
        Command::Rollback { app, to } => {
            control::rollback(&app, to.as_deref(), &target()?, json).await
        }
        Command::Invoke {
            app,
            function,
            method,
            path,
            headers,
            data,
            data_file,
        } => {
            let request = control::InvokeArgs {
                app,
                function,
                method,
                path,
                headers,
                data,
                data_file,
            };
            control::invoke(request, &target()?, json).await
        }
        Command::Keygen {
            algorithm,
            output,
            passphrase,
            no_passphrase,
        } => signing::keygen(&algorithm, &output, &passphrase, no_passphrase, json),
        Command::Sign {
            app_dir,
            key,
            passphrase,
        } => signing::sign(&app_dir, &key, &passphrase, json),
        Command::Verify {
            bundle,
            key,
            component,
        } => signing::verify(&bundle, &key, component.as_deref(), json),
        Command::Admit {
            app_dir,
            config,
            policy,
            format,
        } => control::admit(&app_dir, config.as_deref(), &policy, format, data_dir()?),
        Command::Policy(crate::cli::PolicyCommand::Suggest {
            app,
            since,
            manifest,
            events,
            format,
        }) => {
            let request = policy::SuggestArgs {
                app,
                since,
                manifest,
                events,
                format,
            };
            policy::suggest(request, target(), json).await
        }
        Command::Lint {
            app_dir,
            format,
            fail_on,
        } => lint::lint(&app_dir, format, fail_on),
        Command::Policy(command) => policy::run(command, data_dir()?, json),
        Command::Secrets(crate::cli::SecretsCommand::GenerateMasterKey) => {
            secrets::generate_master_key(json)
        }
        Command::Secrets(command) => secrets::run(command, &target()?, json).await,
        Command::Ca(command) => ca::run(command, &target()?, json).await,
        Command::ThreatModel {
            app_dir,
            config,
            guardrails,
            format,
            output,
            fail_on,
        } => threat_model::threat_model(
            &app_dir,
            config.as_deref(),
            &guardrails,
            format.unwrap_or(if json {
                crate::cli::ThreatModelFormat::Json
            } else {
                crate::cli::ThreatModelFormat::Markdown
            }),
            output.as_deref(),
            fail_on,
            data_dir()?,
        ),
        Command::ApiKey(command) => control::api_key(command, &target()?, json).await,
        Command::Queue(command) => queue::run(command, &target()?, json).await,
        Command::Deps {
            app_dir,
            db,
            fail_on,
        } => signing::deps(&app_dir, &db, &fail_on, json),
        Command::Login {
            operator,
            key,
            passphrase,
            totp_file,
        } => {
            operator::login(
                &target()?,
                &operator,
                &key,
                &passphrase,
                totp_file.as_deref(),
                json,
            )
            .await
        }
        Command::Logout => operator::logout(&target()?, json).await,
        Command::Operator(command) => operator::operator(command, &target()?, json).await,
        Command::TrustReload => control::trust_reload(&target()?, json).await,
        Command::Trace { trace_id } => control::trace(&trace_id, &target()?, json).await,
        Command::Audit(command) => audit::run(command, &target()?, json).await,
        Command::Logs {
            app,
            function,
            invocation,
            limit,
            follow,
        } => {
            let query = zerofn_store::LogQuery {
                app: Some(app),
                function,
                invocation_id: invocation,
                after_id: None,
                limit: Some(limit),
            };
            control::logs(query, follow, &target()?, json).await
        }
        Command::Incidents { command, filter } => {
            incidents::run(command, filter, &target()?, json).await
        }
        Command::Release {
            target: name,
            function,
        } => incidents::release(&name, function.as_deref(), &target()?, json).await,
        Command::Report => incidents::report(&target()?, json).await,
    }
}

/// `--data-dir`, else `ZEROFN_DATA_DIR` (clap reads both), else the user's data directory.
fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    dirs::data_dir().map(|d| d.join("zerofn")).ok_or_else(|| {
        Failure::new(
            Code::Failure,
            "cannot find a data directory for this user; pass --data-dir or set ZEROFN_DATA_DIR",
        )
    })
}
