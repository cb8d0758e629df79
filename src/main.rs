//! The `cdc-deploy` binary: parse arguments and action inputs, set up logging and the runtime,
//! run the pipeline, map the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use cdc_deploy::clients::git::GitCli;
use cdc_deploy::config::cli::{with_inputs, Cli};
use cdc_deploy::config::env_vars::{self as ev, RunnerEnv};
use cdc_deploy::config::{Action, Settings};
use cdc_deploy::gha::{inert, HiddenStderr, InertStderr, Runner};
use cdc_deploy::{cancel, ops, pipeline};

/// Exit code when the run cannot start (unusable configuration, as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let env = RunnerEnv::from_process();
    let runner = Runner::new(
        env.is_actions(),
        env.get(ev::GITHUB_OUTPUT).map(PathBuf::from),
        env.get(ev::GITHUB_STEP_SUMMARY).map(PathBuf::from),
    );
    // AWS credentials from the environment: never in anything the run writes.
    for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Some(v) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            runner.add_mask(v.trim());
        }
    }
    let actions = env.is_actions();
    let argv = match with_inputs(std::env::args_os().collect(), &env) {
        Ok(a) => a,
        Err(e) => {
            runner.error(&e.to_string());
            pipeline::report_failure(&runner, &e.to_string());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        // Under Actions the message may quote an input's value: it is printed inert.
        Err(e) if actions && e.use_stderr() => {
            eprint!("{}", inert(&e.render().to_string()));
            pipeline::report_failure(&runner, &e.render().to_string());
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => e.exit(),
    };
    init_logging(&env, cli.verbose());
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let settings = match Settings::resolve(cli, &env, &cwd, &GitCli) {
        Ok(s) => s,
        Err(e) => {
            runner.error(&e.to_string());
            pipeline::report_failure(&runner, &e.to_string());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            runner.error(&format!("could not start the async runtime: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let run = async {
        // The binary is PID 1 in the action's container: it handles the runner's signals itself.
        let cancel = match cancel::listen() {
            Ok(c) => c,
            Err(e) => {
                runner.warning(&format!(
                    "signals cannot be listened for ({e}): a cancelled workflow stops the run without its report"
                ));
                cancel::Cancel::new()
            }
        };
        match &settings.action {
            Action::Operate(op) => ops::execute(&settings, &runner, &cancel, op).await,
            _ => pipeline::execute(&settings, &runner, &cancel).await,
        }
    };
    match rt.block_on(run) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            runner.error(&e.to_string());
            pipeline::report_failure(&runner, &e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

/// The program's own log on stderr: `info` for itself and only errors from the libraries under
/// it (the AWS SDK's and HTTP clients' own warnings are noise to a reader of a CI log), all of it
/// at `debug` with `--verbose`; `CDC_DEPLOY_LOG` or `RUST_LOG` set any filter. The runner reads
/// stderr for workflow commands too, so under Actions the log is made inert.
fn init_logging(env: &RunnerEnv, verbose: bool) {
    let directives = env
        .get(ev::CDC_DEPLOY_LOG)
        .or_else(|| env.get(ev::RUST_LOG))
        .unwrap_or(if verbose {
            "debug"
        } else {
            "error,cdc_deploy=info"
        });
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,cdc_deploy=info"));
    let actions = env.is_actions();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || -> Box<dyn std::io::Write> {
            if actions {
                Box::new(InertStderr)
            } else {
                Box::new(HiddenStderr)
            }
        })
        .with_ansi(!actions)
        .with_target(false)
        .init();
}
