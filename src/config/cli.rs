//! The command line, and the action inputs that become its flags.
//!
//! Every flag of a subcommand can also arrive as the action input of the same name
//! (`--consumers-dir` ⇔ `INPUT_CONSUMERS-DIR`); inputs are turned into flags before clap parses,
//! so both go through the same parser and the same error messages.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use super::env_vars::{self as ev, RunnerEnv};
use super::SettingsError;

#[derive(Debug, Parser)]
#[command(
    name = "cdc-deploy",
    version,
    about = "Deploy Change Data Capture consumers to AWS ECS Fargate",
    long_about = "Deploy Change Data Capture consumers to AWS ECS Fargate.\n\nEvery option can also be given as the GitHub Action input of the same name (`--consumers-dir` is the input `consumers-dir`, read from `INPUT_CONSUMERS-DIR`). Without a subcommand, `run` is assumed: that is what the action executes."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether `--verbose` (or the `verbose` input) was given.
    pub fn verbose(&self) -> bool {
        match &self.command {
            Command::Plan(a) => a.common.verbose,
            Command::Deploy(a) | Command::Build(a) => a.common.verbose,
            Command::Run(a) => a.common.verbose,
            Command::Rollback(a) => a.common.verbose,
            Command::Status(a) => a.common.verbose,
            Command::Logs(a) => a.common.verbose,
            Command::Exec(a) => a.common.verbose,
            Command::Scale(a) => a.common.verbose,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover, validate and fingerprint the consumers, plan their infrastructure, and show what
    /// a deploy would do.
    Plan(PlanArgs),
    /// Build and push the changed consumers' images, then apply the saved Terraform plan.
    Deploy(DeployArgs),
    /// Build and push the images of the consumers `--consumers` names (a shard of a plan's
    /// `matrix`), and nothing else: no Terraform, no rollout, no comment or check run.
    Build(DeployArgs),
    /// Put the consumers `--consumers` names back on the image each ran before the current one
    /// (or on the digest `--to` gives), through Terraform, and watch the rollouts.
    Rollback(RollbackArgs),
    /// Every consumer's running image (its fingerprint and the commit that built it), tasks
    /// running against desired, its deployment's state, the last verdict the applied entries
    /// record, held consumers and alarms in ALARM. Reads only.
    Status(StatusArgs),
    /// The last lines of a consumer's logs, every task's stream interleaved (`--follow` keeps
    /// printing until interrupted).
    Logs(LogsArgs),
    /// The `aws ecs execute-command` line that opens a shell in a running task of a consumer, or
    /// why there is none. Never interactive itself.
    Exec(ExecArgs),
    /// Set a consumer's task count (`--count`, or `--min` and `--max` for an autoscaled one)
    /// through Terraform, and wait until it runs that many. The count holds across deploys until
    /// its `consumer.toml` count changes.
    Scale(ScaleArgs),
    /// What the action runs: `plan`, `deploy`, `rollback`, `build`, `status`, `logs` or `exec`,
    /// chosen by `--mode` and the triggering event.
    Run(RunArgs),
}

/// `status`'s options.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    #[command(flatten)]
    pub status: StatusOptions,
    /// Registry host the images are read from, as for `deploy`.
    #[arg(long, value_name = "HOST")]
    pub registry_host: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StatusOptions {
    /// Exit 1 when a consumer is unhealthy: fewer tasks running than desired, its deployment
    /// failed, its service missing, or one of its alarms in ALARM (a scheduled check).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = parse_bool)]
    pub fail_on_unhealthy: bool,
}

/// `logs`' options.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    /// The consumer whose logs to show.
    #[arg(value_name = "CONSUMER")]
    pub consumer: String,
    #[command(flatten)]
    pub logs: LogsOptions,
    /// Keep printing new lines until interrupted (Ctrl-C).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = parse_bool)]
    pub follow: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogsOptions {
    /// How far back to read (`10m`, `1h`, `2d`).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub since: String,
    /// Only the lines that match this CloudWatch Logs filter pattern (`ERROR`, `"slot is
    /// active"`, `{ $.level = "error" }`).
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// The last this many lines.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(LINES))]
    pub lines: u16,
}

/// `scale`'s options.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    /// The consumer to scale.
    #[arg(value_name = "CONSUMER")]
    pub consumer: String,
    #[command(flatten)]
    pub scale: ScaleOptions,
    /// Wait until the consumer runs the new count.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_name = "BOOL", value_parser = parse_bool)]
    pub wait: bool,
    /// How long to wait for it (`5m`, `15m`).
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub wait_timeout: String,
}

#[derive(Debug, Clone, Args)]
pub struct ScaleOptions {
    /// The task count of a consumer without autoscaling (0 stops it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(COUNT))]
    pub count: Option<u32>,
    /// The fewest tasks of an autoscaled consumer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(COUNT))]
    pub min: Option<u32>,
    /// The most tasks of an autoscaled consumer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(COUNT))]
    pub max: Option<u32>,
}

/// `exec`'s options.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    /// The consumer to open a shell in.
    #[arg(value_name = "CONSUMER")]
    pub consumer: String,
    #[command(flatten)]
    pub exec: ExecOptions,
}

#[derive(Debug, Clone, Args)]
pub struct ExecOptions {
    /// The command the line runs in the container.
    #[arg(long, value_name = "COMMAND", default_value = "/bin/sh")]
    pub command: String,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Folder holding one folder per consumer, relative to the repository root.
    #[arg(long, value_name = "DIR", default_value = "consumer_scripts")]
    pub consumers_dir: PathBuf,
    /// Prefix of every AWS resource name (`<project>-<consumer>`).
    #[arg(long, value_name = "NAME", default_value = "cdc")]
    pub project_name: String,
    /// Deployment environment, recorded in tags and the report (`production`, `staging`, ...).
    #[arg(long, value_name = "NAME", default_value = "production")]
    pub environment: String,
    /// AWS region; defaults to `AWS_REGION` or `AWS_DEFAULT_REGION`.
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,
    /// Repository root; defaults to `GITHUB_WORKSPACE` or the current folder.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The commit the run is about, 40 hex digits: images built from it are tagged
    /// `sha-<commit>`. Defaults to the event's commit, `GITHUB_SHA`, then the checkout's `HEAD`.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Only these consumers: names or globs separated by commas, spaces or lines
    /// (`orders, billing-*`). The others keep what is applied. Default: every consumer.
    #[arg(long, value_name = "NAMES")]
    pub consumers: Option<String>,
    /// Build on this many runners: a plan's `matrix` output splits the consumers to build into
    /// at most this many groups balanced by context size, for `mode: build` jobs; a deploy after
    /// them says which images no shard pushed (and builds them).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(SHARDS))]
    pub shards: u16,
    /// Take each build's cache from the registry (the image last built, `cache-image`, and the
    /// earlier stages it copies from, `cache-stage-<name>`) and leave the new one there, so a
    /// cold engine rebuilds only what changed. Repositories keep `cache-*` tags mutable.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_name = "BOOL", value_parser = parse_bool)]
    pub build_cache: bool,
    /// Token for GitHub's API (the pull request comment); defaults to `GITHUB_TOKEN`. The
    /// action passes the job's token.
    #[arg(long, value_name = "TOKEN", hide = true)]
    pub github_token: Option<String>,
    /// When to write the pull request comment: `always`, `on-change` (when the plan changes
    /// something, or to keep an existing comment up to date), `never`.
    #[arg(long, value_enum, default_value_t = crate::report::publish::CommentMode::Always)]
    pub comment: crate::report::publish::CommentMode,
    /// Report the fleet as a check run on the commit (`cdc-deploy / <environment>`, the one to
    /// require) and each consumer with something to do or something wrong as one of its own
    /// (`cdc-deploy / <environment> / <consumer>`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_name = "BOOL", value_parser = parse_bool)]
    pub check_runs: bool,
    /// Log every step at debug level, the AWS SDK's and HTTP clients' own logs included.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = parse_bool)]
    pub verbose: bool,
}

/// The Terraform stage's options, for every subcommand.
#[derive(Debug, Clone, Args)]
pub struct TerraformArgs {
    /// Run Terraform: plan (and on deploy, apply) the consumers' infrastructure with their images
    /// pinned by digest. `false` builds and pushes images only.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_name = "BOOL", value_parser = parse_bool)]
    pub terraform: bool,
    /// Root module to run, relative to the repository root; it must declare the `consumers`
    /// variable and the `consumers` output. Default: a root around the bundled AWS module.
    #[arg(long, value_name = "DIR")]
    pub terraform_dir: Option<PathBuf>,
    /// Backend settings, `key=value`, one per line (or the flag repeated); each becomes a
    /// `-backend-config`. With the bundled module, giving any selects the S3 backend.
    #[arg(long, value_name = "KEY=VALUE")]
    pub terraform_backend_config: Vec<String>,
    /// A `.tfvars` or `.tfvars.json` file with further variables (networking, tags), relative to
    /// the repository root.
    #[arg(long, value_name = "FILE")]
    pub terraform_var_file: Option<PathBuf>,
    /// Apply a plan that destroys or replaces a consumer's service or logs, the resources of a
    /// consumer that is gone, or the cluster, VPC, subnets or NAT gateways every consumer runs in.
    /// Without it such a plan stops the run before apply.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = parse_bool)]
    pub allow_destroy: bool,
    /// How long Terraform waits for a state lock held by another run (`30s`, `5m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub lock_timeout: String,
    /// When Terraform plans: `when-changed` skips the plan when every consumer's entry equals the
    /// applied one and the root module, its variables and variable files are those applied (a
    /// no-op refreshes nothing); `always` plans anyway (a scheduled drift check).
    #[arg(long, value_enum, default_value_t = Refresh::WhenChanged)]
    pub terraform_refresh: Refresh,
}

/// `terraform-refresh` input: when Terraform plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Refresh {
    /// Only when an entry, the root module or its inputs differ from what is applied.
    WhenChanged,
    /// On every run, which refreshes every resource: drift shows.
    Always,
}

/// The numbers flags and inputs take, each once: the parser checks them, and a bad input is
/// told the range.
const BUILD_CONCURRENCY: std::ops::RangeInclusive<i64> = 1..=16;
const KEEP_IMAGES: std::ops::RangeInclusive<i64> = 1..=1000;
const UNTAGGED_EXPIRY_DAYS: std::ops::RangeInclusive<i64> = 1..=3650;
const SHARDS: std::ops::RangeInclusive<i64> = 1..=64;
const LOG_LINES: std::ops::RangeInclusive<i64> = 0..=500;
const LINES: std::ops::RangeInclusive<i64> = 1..=10_000;
const COUNT: std::ops::RangeInclusive<i64> = 0..=1000;

/// The whole numbers each numeric flag takes.
fn range_of(flag: &str) -> Option<&'static std::ops::RangeInclusive<i64>> {
    match flag {
        "build-concurrency" => Some(&BUILD_CONCURRENCY),
        "keep-images" => Some(&KEEP_IMAGES),
        "untagged-expiry-days" => Some(&UNTAGGED_EXPIRY_DAYS),
        "log-lines" => Some(&LOG_LINES),
        "lines" => Some(&LINES),
        "count" | "min" | "max" => Some(&COUNT),
        _ => None,
    }
}

/// `true` or `false`, as flags and inputs take them.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{s}` is not `true` or `false`")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    /// Plan without asking AWS what exists: every consumer is `new`, and Terraform does not run.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = parse_bool)]
    pub offline: bool,
    /// Also write the report's markdown (the pull request comment) to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Registry host to look images up in, as for `deploy`.
    #[arg(long, value_name = "HOST")]
    pub registry_host: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DeployOptions {
    /// Registry host to push to and look images up in, instead of the one in ECR's
    /// `repositoryUri` (ECR FIPS or dual-stack endpoints). `http://host:port` for a plain-HTTP
    /// registry on this machine.
    #[arg(long, value_name = "HOST")]
    pub registry_host: Option<String>,
    /// How many images are built and pushed at the same time.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(BUILD_CONCURRENCY))]
    pub build_concurrency: u16,
    /// How long one consumer's image may take to build (`30m`, `1h`): a build that has not
    /// finished by then is stopped and the consumer fails, naming the engine.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub build_timeout: String,
    /// Tagged images kept per repository by the ECR lifecycle policy.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(KEEP_IMAGES))]
    pub keep_images: u32,
    /// Days after which untagged images expire.
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(UNTAGGED_EXPIRY_DAYS))]
    pub untagged_expiry_days: u32,
    /// Watch each changed service's own deployment to a verdict after the apply.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_name = "BOOL", value_parser = parse_bool)]
    pub wait: bool,
    /// How long to watch the rollouts in all (`15m`, `30s`).
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub wait_timeout: String,
    /// Last lines of each failed container's log shown for a rollout that did not succeed
    /// (0: none).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(LOG_LINES))]
    pub log_lines: u16,
    /// Record the deploy as a GitHub deployment of the environment for the commit (in progress,
    /// then success or failure, with a link to the run).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_name = "BOOL", value_parser = parse_bool)]
    pub deployments: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub deploy: DeployOptions,
    #[command(flatten)]
    pub terraform: TerraformArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub deploy: DeployOptions,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    /// The image digest (`sha256:…`) to put the one consumer named back on, instead of the
    /// image it ran before.
    #[arg(long, value_name = "DIGEST")]
    pub to: Option<String>,
}

/// `mode` input: what `run` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Plan on `pull_request`, `pull_request_target` and `merge_group`; deploy on `push`,
    /// `workflow_dispatch` and `schedule`.
    Auto,
    Plan,
    Deploy,
    /// Roll the consumers `consumers` names back (see `rollback-to`).
    Rollback,
    /// Build and push the images of the consumers `consumers` names (a shard of a plan's
    /// `matrix`), nothing else.
    Build,
    /// The fleet's status (`fail-on-unhealthy` to fail on an unhealthy consumer).
    Status,
    /// The last lines of the logs of the one consumer `consumers` names (`since`, `filter`,
    /// `lines`).
    Logs,
    /// The `aws ecs execute-command` line for a running task of the one consumer `consumers`
    /// names.
    Exec,
    /// Set the task count of the one consumer `consumers` names (`count`, or `min` and `max`).
    Scale,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub deploy: DeployOptions,
    #[command(flatten)]
    pub terraform: TerraformArgs,
    /// `auto`, `plan`, `deploy`, `rollback`, `build`, `status`, `logs`, `exec` or `scale`.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// With `rollback`: the image digest (`sha256:…`) to put the one consumer named back on,
    /// instead of the image it ran before.
    #[arg(long, value_name = "DIGEST")]
    pub rollback_to: Option<String>,
    /// With `plan`: write the report's markdown to this file too.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With `plan`: look nothing up in AWS and run no Terraform (a pull request from a fork has no
    /// AWS credentials).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = parse_bool)]
    pub offline: bool,
    #[command(flatten)]
    pub status: StatusOptions,
    #[command(flatten)]
    pub logs: LogsOptions,
    #[command(flatten)]
    pub exec: ExecOptions,
    #[command(flatten)]
    pub scale: ScaleOptions,
}

const SUBCOMMANDS: &[&str] = &[
    "plan", "deploy", "build", "rollback", "status", "logs", "exec", "scale", "run", "help",
];

/// An input's value, checked by its flag's own parser: a bad one is refused in the input's name,
/// with the values it takes, before clap would refuse it in the flag's.
fn check_input(arg: &clap::Arg, input: &str, value: &str) -> Result<(), SettingsError> {
    let boolean = arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|n| n == "BOOL"));
    if boolean {
        return match parse_bool(value) {
            Ok(_) => Ok(()),
            Err(_) => Err(SettingsError::NotABoolean {
                input: input.to_string(),
                value: value.to_string(),
            }),
        };
    }
    // The flag alone, parsed by its own parser.
    let alone = clap::Command::new("input")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    if alone
        .try_get_matches_from([format!("--{input}={value}")])
        .is_ok()
    {
        return Ok(());
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    let use_ = if !possible.is_empty() {
        match possible.split_last() {
            Some((last, [])) => format!("use {last}"),
            Some((last, rest)) => format!("use {} or {last}", rest.join(", ")),
            None => String::new(),
        }
    } else if let Some(r) = range_of(input) {
        format!("use a whole number from {} to {}", r.start(), r.end())
    } else {
        "see the input's description in `action.yml`".to_string()
    };
    Err(SettingsError::BadInput {
        input: input.to_string(),
        value: value.to_string(),
        use_,
    })
}

/// Turn action inputs into flags of the chosen subcommand: an input becomes `--name=value` unless
/// the flag is already on the command line. Without a subcommand, `run` is assumed.
pub fn with_inputs(argv: Vec<OsString>, env: &RunnerEnv) -> Result<Vec<OsString>, SettingsError> {
    if let Some((name, var)) = env.inputs_not_utf8().into_iter().next() {
        return Err(SettingsError::Invalid(format!(
            "input `{name}` is not UTF-8 text (`{var}` holds bytes that are not): write it in UTF-8 in the workflow, or pass the value through an expression that is"
        )));
    }
    let mut argv = argv;
    if argv.is_empty() {
        argv.push("cdc-deploy".into());
    }
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let help_flag = matches!(first, "-h" | "--help" | "-V" | "--version");
    if !SUBCOMMANDS.contains(&first) && !help_flag {
        argv.insert(1, "run".into());
    }
    let Some(sub) = argv.get(1).and_then(|a| a.to_str()).map(str::to_string) else {
        return Ok(argv);
    };
    let cmd = Cli::command();
    let Some(sc) = cmd.find_subcommand(&sub) else {
        return Ok(argv);
    };
    let given: Vec<String> = argv
        .iter()
        .filter_map(|a| a.to_str())
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect();
    let mut extra = Vec::new();
    for arg in sc.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || given.iter().any(|g| g == long) {
            continue;
        }
        let Some(value) = env.get(&ev::input_var(long)) else {
            continue;
        };
        check_input(arg, long, value)?;
        extra.push(OsString::from(format!("--{long}={value}")));
    }
    // Inputs go before any `--` so they are read as options.
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, extra);
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> RunnerEnv {
        RunnerEnv::from_pairs(pairs.iter().map(|(k, v)| (ev::input_var(k), v.to_string())))
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        with_inputs(vec!["cdc-deploy".into()], &inputs(pairs))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_bad_input_is_refused_in_its_own_name_with_what_it_takes() {
        assert_eq!(
            refused(&[("comment", "sometimes")]),
            "input `comment` is `sometimes`: use `always`, `on-change` or `never`"
        );
        assert_eq!(
            refused(&[("mode", "ship-it")]),
            "input `mode` is `ship-it`: use `auto`, `plan`, `deploy`, `rollback`, `build`, `status`, `logs`, `exec` or `scale`"
        );
        assert_eq!(
            refused(&[("build-concurrency", "0")]),
            "input `build-concurrency` is `0`: use a whole number from 1 to 16"
        );
        assert_eq!(
            refused(&[("log-lines", "lots")]),
            "input `log-lines` is `lots`: use a whole number from 0 to 500"
        );
        assert_eq!(
            refused(&[("keep-images", "1001")]),
            "input `keep-images` is `1001`: use a whole number from 1 to 1000"
        );
        assert_eq!(
            refused(&[("untagged-expiry-days", "-1")]),
            "input `untagged-expiry-days` is `-1`: use a whole number from 1 to 3650"
        );
        assert_eq!(
            refused(&[("wait", "yes")]),
            "input `wait` is `yes`: use `true` or `false`"
        );
    }

    #[test]
    fn every_input_with_fixed_values_is_checked_before_clap_sees_it() {
        // Each input whose flag has possible values or a range: a value outside them is refused
        // in the input's name (never in clap's words about a flag the user did not write).
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        let mut checked = 0;
        for arg in run.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let fixed = !arg.get_possible_values().is_empty()
                || range_of(long).is_some()
                || arg
                    .get_value_names()
                    .is_some_and(|n| n.iter().any(|n| n == "BOOL"));
            if !fixed || long == "help" {
                continue;
            }
            let message = refused(&[(long, "not-a-valid-value")]);
            assert!(
                message.starts_with(&format!("input `{long}` is `not-a-valid-value`: use ")),
                "{message}"
            );
            checked += 1;
        }
        assert!(checked >= 10, "{checked}");
        // Good values pass through as flags.
        let argv = with_inputs(
            vec!["cdc-deploy".into()],
            &inputs(&[("comment", "on-change"), ("build-concurrency", "4")]),
        )
        .unwrap();
        assert!(
            argv.contains(&OsString::from("--comment=on-change")),
            "{argv:?}"
        );
        assert!(
            argv.contains(&OsString::from("--build-concurrency=4")),
            "{argv:?}"
        );
    }
}
