//! `zerofn`: the command-line interface and the server, in one binary. This file parses the
//! command line and dispatches; the work lives in the libraries.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod exit;
mod output;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return exit::Code::Failure.into();
        }
    };
    let json = cli.global.json;
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => exit::Code::Success.into(),
        Err(failure) => {
            output::failure(&failure, json);
            failure.code.into()
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "zerofn=info,zerofn_server=info,zerofn_runtime=warn,zerofn_audit=warn,warn",
        1 => "zerofn=debug,zerofn_server=debug,zerofn_runtime=debug,zerofn_audit=info,warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZEROFN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
