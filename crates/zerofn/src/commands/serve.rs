//! `zerofn serve` and `zerofn up`: start the platform on this machine and serve until SIGINT or
//! SIGTERM, then finish in-flight requests and stop.

use super::build;
use crate::cli::ServeArgs;
use crate::exit::{Code, Failure};
use std::path::{Path, PathBuf};
use zerofn_server::{RunningServer, ServerConfig};

fn server_config(args: &ServeArgs, data_dir: PathBuf) -> Result<ServerConfig, Failure> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path, data_dir)
            .map_err(|e| Failure::new(Code::Refused, e.to_string()))?,
        None => ServerConfig::new(data_dir),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

async fn start(config: ServerConfig) -> Result<RunningServer, Failure> {
    let server = zerofn_server::start(config)
        .await
        .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    for (app, error) in &server.restore_failures {
        eprintln!("warning: app `{app}` is not serving: {error}");
    }
    Ok(server)
}

pub async fn serve(args: &ServeArgs, data_dir: PathBuf, json: bool) -> Result<(), Failure> {
    let server = start(server_config(args, data_dir)?).await?;
    announce(&server, json, None);
    wait_for_stop_signal().await;
    eprintln!("stopping: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

pub async fn up(
    app_dir: &Path,
    args: &ServeArgs,
    run_build: bool,
    data_dir: PathBuf,
    json: bool,
) -> Result<(), Failure> {
    let bundle = build::bundle_with_dev_key(app_dir, run_build, &data_dir, json)?;
    let config = server_config(args, data_dir)?;
    let server = start(config).await?;
    // The development path: secrets the app is granted but does not have get random values,
    // so an example runs with no setup (`deploy` refuses undefined secrets instead).
    if let Ok(manifest) = zerofn_manifest::parse(Path::new(&bundle.manifest_path), &bundle.manifest)
    {
        match server
            .platform()
            .create_missing_dev_secrets(&manifest)
            .await
        {
            Ok(created) => {
                for name in created {
                    eprintln!(
                        "created development secret {}/{name} with a random value; set a real one with `zerofn secrets rotate {} {name}`",
                        manifest.app_name(),
                        manifest.app_name()
                    );
                }
            }
            Err(error) => {
                server.shutdown().await;
                return Err(Failure::new(Code::Failure, error.to_string()));
            }
        }
    }
    let report = match server.platform().deploy(bundle).await {
        Ok(report) => report,
        Err(error) => {
            server.shutdown().await;
            return Err(error.into());
        }
    };
    if !report.warnings_text.is_empty() && !json {
        eprintln!("{}", report.warnings_text);
    }
    if !json {
        eprintln!(
            "deployed {} {} as version {}",
            report.app, report.app_version, report.version_id
        );
    }
    announce(&server, json, Some(&report));
    wait_for_stop_signal().await;
    eprintln!("stopping: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

/// Prints where the platform serves and what (with `--json`, one document that also holds the
/// deploy report of `up`).
fn announce(server: &RunningServer, json: bool, deployed: Option<&zerofn_server::DeployReport>) {
    let addr = server.http_addr();
    let tls = server.function_tls() == zerofn_server::FunctionTls::Builtin;
    let scheme = if tls { "https" } else { "http" };
    let routes = server.platform().routes();
    let functions: Vec<serde_json::Value> = routes
        .apps()
        .flat_map(|app| app.functions.iter())
        .map(|f| match f.route() {
            Some(route) => serde_json::json!({
                "app": f.app,
                "function": f.name,
                "methods": f.methods,
                "route": route.to_string(),
                "url": format!("{scheme}://{addr}{}", route.base()),
            }),
            None => serde_json::json!({
                "app": f.app,
                "function": f.name,
                "trigger": f.trigger.describe(),
            }),
        })
        .collect();
    let value = serde_json::json!({
        "listen": addr.to_string(),
        "tls": tls,
        "control_socket": server.control_socket(),
        "remote_control": server.remote_control_addr().map(|a| a.to_string()),
        "functions": functions,
        "deployed": deployed,
    });
    crate::output::print(json, &value, || {
        let mut text = format!("zerofn serving on {scheme}://{addr}\n");
        if tls {
            text.push_str("  TLS with the built-in CA: clients trust `zerofn ca bundle`\n");
        }
        if let Some(remote) = server.remote_control_addr() {
            text.push_str(&format!(
                "remote control plane on https://{remote} (TLS 1.3)\n"
            ));
        }
        for f in &functions {
            text.push_str(&format!(
                "  {:<7} {:<40} {}/{}\n",
                f["methods"]
                    .as_array()
                    .map(|m| m
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default(),
                f["url"].as_str().unwrap_or_default(),
                f["app"].as_str().unwrap_or_default(),
                f["function"].as_str().unwrap_or_default(),
            ));
        }
        text.push_str(&format!(
            "control plane: {} (Ctrl-C to stop)",
            server.control_socket().display()
        ));
        text
    });
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
