//! One configuration model, two front doors: command-line flags and action inputs.
//!
//! Every flag of a subcommand can also arrive as the action input of the same name
//! (`--consumers-dir` ⇔ `INPUT_CONSUMERS-DIR`); inputs are turned into flags before clap parses,
//! so both go through the same parser and the same error messages. The result is validated once
//! into [`Settings`]; nothing downstream reads the environment again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

pub mod env_vars;

use crate::consumers::names::ProjectName;
use env_vars as ev;

/// A snapshot of the process environment, taken once at start-up. Tests build one from a map.
#[derive(Clone, Debug, Default)]
pub struct RunnerEnv {
    vars: BTreeMap<String, String>,
}

impl RunnerEnv {
    pub fn from_process() -> Self {
        RunnerEnv {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        RunnerEnv {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The variable's value, `None` when unset or empty (the runner passes unset inputs as `""`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn is_actions(&self) -> bool {
        self.get(ev::GITHUB_ACTIONS) == Some("true")
    }
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover, validate and fingerprint the consumers and show what a deploy would do.
    Plan(PlanArgs),
    /// Build and push the changed consumers' images.
    Deploy(DeployArgs),
    /// What the action runs: `plan` or `deploy`, chosen by `--mode` and the triggering event.
    Run(RunArgs),
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
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Plan without asking AWS what exists: every consumer is `new`.
    #[arg(long)]
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
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub build_concurrency: u16,
    /// Tagged images kept per repository by the ECR lifecycle policy.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub keep_images: u32,
    /// Days after which untagged images expire.
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub untagged_expiry_days: u32,
    /// Commit the images are tagged with (`sha-<commit>`); defaults to `GITHUB_SHA` or the
    /// checkout's `HEAD`.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub deploy: DeployOptions,
}

/// `mode` input: what `run` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Plan on `pull_request`; deploy on `push`, `workflow_dispatch` and `schedule`.
    Auto,
    Plan,
    Deploy,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub deploy: DeployOptions,
    /// `auto`, `plan` or `deploy`.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// With `plan`: write the report's markdown to this file too.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With `plan`: look nothing up in AWS (a pull request from a fork has no AWS credentials).
    #[arg(long)]
    pub offline: bool,
}

/// Configuration that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("input `{input}` is `{value}`: use `true` or `false`")]
    NotABoolean { input: String, value: String },
    #[error("{0}")]
    Invalid(String),
    #[error("the event `{event}` does not choose a mode: set `mode` to `plan` or `deploy`, or run on `pull_request`, `push`, `workflow_dispatch` or `schedule`")]
    UnsupportedEvent { event: String },
    #[error("could not read the event payload `{path}`: {reason}")]
    EventPayload { path: String, reason: String },
}

const SUBCOMMANDS: &[&str] = &["plan", "deploy", "run", "help"];

/// Turn action inputs into flags of the chosen subcommand: an input becomes `--name=value` unless
/// the flag is already on the command line. Without a subcommand, `run` is assumed.
pub fn with_inputs(argv: Vec<OsString>, env: &RunnerEnv) -> Result<Vec<OsString>, SettingsError> {
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
        if arg.get_action().takes_values() {
            extra.push(OsString::from(format!("--{long}={value}")));
        } else {
            match value.to_ascii_lowercase().as_str() {
                "true" => extra.push(OsString::from(format!("--{long}"))),
                "false" => {}
                _ => {
                    return Err(SettingsError::NotABoolean {
                        input: long.to_string(),
                        value: value.to_string(),
                    })
                }
            }
        }
    }
    // Inputs go before any `--` so they are read as options.
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, extra);
    Ok(argv)
}

/// The triggering event, read from `GITHUB_EVENT_NAME` and `GITHUB_EVENT_PATH`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub pull_request: Option<u64>,
    /// The pull request's head commit, or the pushed commit.
    pub head_sha: Option<String>,
}

/// What the GitHub runner told us, when running under Actions.
#[derive(Clone, Debug, Default)]
pub struct GithubContext {
    pub actions: bool,
    pub event: Option<Event>,
    pub sha: Option<String>,
    pub repository: Option<String>,
    pub server_url: Option<String>,
    pub run_id: Option<String>,
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
}

impl GithubContext {
    pub fn from_env(env: &RunnerEnv) -> Result<Self, SettingsError> {
        let event = match env.get(ev::GITHUB_EVENT_NAME) {
            Some(name) => Some(read_event(name, env.get(ev::GITHUB_EVENT_PATH))?),
            None => None,
        };
        Ok(GithubContext {
            actions: env.is_actions(),
            event,
            sha: env.get(ev::GITHUB_SHA).map(str::to_string),
            repository: env.get(ev::GITHUB_REPOSITORY).map(str::to_string),
            server_url: env.get(ev::GITHUB_SERVER_URL).map(str::to_string),
            run_id: env.get(ev::GITHUB_RUN_ID).map(str::to_string),
            output_file: env.get(ev::GITHUB_OUTPUT).map(PathBuf::from),
            summary_file: env.get(ev::GITHUB_STEP_SUMMARY).map(PathBuf::from),
        })
    }

    /// The commit the run is about: the pull request's head, else `GITHUB_SHA`.
    pub fn commit(&self) -> Option<&str> {
        self.event
            .as_ref()
            .and_then(|e| e.head_sha.as_deref())
            .or(self.sha.as_deref())
    }
}

fn read_event(name: &str, path: Option<&str>) -> Result<Event, SettingsError> {
    let mut event = Event {
        name: name.to_string(),
        ..Event::default()
    };
    let Some(path) = path else { return Ok(event) };
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::EventPayload {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| SettingsError::EventPayload {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
    if let Some(pr) = json.get("pull_request") {
        event.pull_request = pr.get("number").and_then(|n| n.as_u64());
        event.head_sha = pr
            .pointer("/head/sha")
            .and_then(|s| s.as_str())
            .map(str::to_string);
    } else if let Some(after) = json.get("after").and_then(|s| s.as_str()) {
        event.head_sha = Some(after.to_string());
    }
    Ok(event)
}

/// What the run does, once `mode` and the event are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Plan {
        offline: bool,
        output: Option<PathBuf>,
        registry_host: Option<RegistryHost>,
    },
    Deploy(DeploySettings),
}

/// Validated deploy options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploySettings {
    pub registry_host: Option<RegistryHost>,
    pub build_concurrency: usize,
    pub keep_images: u32,
    pub untagged_expiry_days: u32,
    pub commit: Option<String>,
}

/// A registry host override, with the scheme the action's own registry calls use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryHost {
    /// `host` or `host:port`, as it appears in image references.
    pub host: String,
    /// `false` only when the override was written `http://...`.
    pub https: bool,
}

impl RegistryHost {
    pub fn parse(raw: &str) -> Result<Self, SettingsError> {
        let (https, rest) = if let Some(r) = raw.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = raw.strip_prefix("https://") {
            (true, r)
        } else {
            (true, raw)
        };
        let host = rest.trim_end_matches('/');
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid {
            return Err(SettingsError::Invalid(format!(
                "`registry-host` `{raw}` is not a host name: write `HOST`, `HOST:PORT` or `http://HOST:PORT`"
            )));
        }
        Ok(RegistryHost {
            host: host.to_string(),
            https,
        })
    }

    /// Base URL of the registry's HTTP API.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.host
        )
    }
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub workspace: PathBuf,
    pub consumers_dir: PathBuf,
    pub project: ProjectName,
    pub environment: String,
    pub aws_region: Option<String>,
    /// The Docker engine's address from `DOCKER_HOST`; the default socket when unset.
    pub docker_host: Option<String>,
    pub github: GithubContext,
    pub action: Action,
}

fn validate_environment(raw: &str) -> Result<String, SettingsError> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(SettingsError::Invalid(format!(
            "`environment` `{raw}` is not valid: use up to 32 lowercase letters, digits and `-`, starting with a letter (`production`, `staging`)"
        )))
    }
}

fn validate_region(raw: &str) -> Result<String, SettingsError> {
    let re =
        regex::Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$").expect("static regex");
    if re.is_match(raw) {
        Ok(raw.to_string())
    } else {
        Err(SettingsError::Invalid(format!(
            "`aws-region` `{raw}` is not an AWS region name such as `us-east-1` or `eu-central-1`"
        )))
    }
}

fn common_settings(
    c: &CommonArgs,
    env: &RunnerEnv,
    cwd: &Path,
) -> Result<(PathBuf, PathBuf, ProjectName, String, Option<String>), SettingsError> {
    let workspace = c
        .workspace
        .clone()
        .or_else(|| env.get(ev::GITHUB_WORKSPACE).map(PathBuf::from))
        .unwrap_or_else(|| cwd.to_path_buf());
    let project = ProjectName::parse(&c.project_name).map_err(|e| {
        SettingsError::Invalid(match e.suggestion {
            Some(s) => format!("{}; for example `{s}`", e.reason),
            None => e.reason,
        })
    })?;
    let environment = validate_environment(&c.environment)?;
    let region = c
        .aws_region
        .as_deref()
        .or_else(|| env.get(ev::AWS_REGION))
        .or_else(|| env.get(ev::AWS_DEFAULT_REGION))
        .map(validate_region)
        .transpose()?;
    Ok((
        workspace,
        c.consumers_dir.clone(),
        project,
        environment,
        region,
    ))
}

fn deploy_settings(d: &DeployOptions) -> Result<DeploySettings, SettingsError> {
    let commit = d.commit.as_deref().map(|c| {
        if c.len() >= 7 && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_hexdigit()) {
            Ok(c.to_ascii_lowercase())
        } else {
            Err(SettingsError::Invalid(format!(
                "`commit` `{c}` is not a git commit id: give 7 to 64 hex digits"
            )))
        }
    });
    Ok(DeploySettings {
        registry_host: d
            .registry_host
            .as_deref()
            .map(RegistryHost::parse)
            .transpose()?,
        build_concurrency: usize::from(d.build_concurrency),
        keep_images: d.keep_images,
        untagged_expiry_days: d.untagged_expiry_days,
        commit: commit.transpose()?,
    })
}

/// Resolve `mode: auto` from the event.
pub fn resolve_mode(mode: Mode, event: Option<&Event>) -> Result<Mode, SettingsError> {
    match mode {
        Mode::Plan | Mode::Deploy => Ok(mode),
        Mode::Auto => {
            let name = event.map(|e| e.name.as_str()).unwrap_or("");
            match name {
                "pull_request" | "pull_request_target" => Ok(Mode::Plan),
                "push" | "workflow_dispatch" | "schedule" => Ok(Mode::Deploy),
                "" => Err(SettingsError::Invalid(
                    "`mode` is `auto` but there is no triggering event (`GITHUB_EVENT_NAME` is unset): set `mode` to `plan` or `deploy`".into(),
                )),
                other => Err(SettingsError::UnsupportedEvent {
                    event: other.to_string(),
                }),
            }
        }
    }
}

impl Settings {
    /// Validate parsed arguments against the environment snapshot.
    pub fn resolve(cli: Cli, env: &RunnerEnv, cwd: &Path) -> Result<Settings, SettingsError> {
        let github = GithubContext::from_env(env)?;
        let (common, action) = match cli.command {
            Command::Plan(p) => (
                p.common,
                Action::Plan {
                    offline: p.offline,
                    output: p.output,
                    registry_host: p
                        .registry_host
                        .as_deref()
                        .map(RegistryHost::parse)
                        .transpose()?,
                },
            ),
            Command::Deploy(d) => (d.common, Action::Deploy(deploy_settings(&d.deploy)?)),
            Command::Run(r) => {
                let action = match resolve_mode(r.mode, github.event.as_ref())? {
                    Mode::Plan => Action::Plan {
                        offline: r.offline,
                        output: r.output,
                        registry_host: deploy_settings(&r.deploy)?.registry_host,
                    },
                    _ => Action::Deploy(deploy_settings(&r.deploy)?),
                };
                (r.common, action)
            }
        };
        let (workspace, consumers_dir, project, environment, aws_region) =
            common_settings(&common, env, cwd)?;
        Ok(Settings {
            workspace,
            consumers_dir,
            project,
            environment,
            aws_region,
            docker_host: env
                .get(ev::DOCKER_HOST)
                .filter(|h| !h.is_empty())
                .map(str::to_string),
            github,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parse(args: &[&str], env: &RunnerEnv) -> Result<Settings, String> {
        let argv = with_inputs(argv(args), env).map_err(|e| e.to_string())?;
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Settings::resolve(cli, env, Path::new("/repo")).map_err(|e| e.to_string())
    }

    #[test]
    fn inputs_arrive_as_flags_with_hyphens_kept() {
        let env = RunnerEnv::from_pairs([
            ("INPUT_CONSUMERS-DIR", "services"),
            ("INPUT_PROJECT-NAME", "shop"),
            ("INPUT_AWS-REGION", "eu-west-1"),
            ("INPUT_OFFLINE", "true"),
            ("INPUT_ENVIRONMENT", ""),
        ]);
        let s = parse(&["cdc-deploy", "plan"], &env).unwrap();
        assert_eq!(s.consumers_dir, PathBuf::from("services"));
        assert_eq!(s.project.as_str(), "shop");
        assert_eq!(s.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            s.environment, "production",
            "an empty input keeps the default"
        );
        assert_eq!(
            s.action,
            Action::Plan {
                offline: true,
                output: None,
                registry_host: None,
            }
        );
    }

    #[test]
    fn a_flag_on_the_command_line_beats_the_input() {
        let env = RunnerEnv::from_pairs([("INPUT_PROJECT-NAME", "shop")]);
        let s = parse(&["cdc-deploy", "plan", "--project-name", "books"], &env).unwrap();
        assert_eq!(s.project.as_str(), "books");
    }

    #[test]
    fn mode_auto_follows_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let payload = dir.path().join("event.json");
        std::fs::write(
            &payload,
            r#"{"pull_request":{"number":7,"head":{"sha":"abc1234"}}}"#,
        )
        .unwrap();
        let p = payload.to_str().unwrap();
        let env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", p),
            ("GITHUB_SHA", "ffff"),
        ]);
        let s = parse(&["cdc-deploy"], &env).unwrap();
        assert!(matches!(s.action, Action::Plan { offline: false, .. }));
        let offline_env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("INPUT_MODE", "plan"),
            ("INPUT_OFFLINE", "true"),
        ]);
        let offline = parse(&["cdc-deploy"], &offline_env).unwrap();
        assert!(
            matches!(offline.action, Action::Plan { offline: true, .. }),
            "the action's `offline` input reaches `run`"
        );
        let event = s.github.event.as_ref().unwrap();
        assert_eq!(event.pull_request, Some(7));
        assert_eq!(s.github.commit(), Some("abc1234"));

        for name in ["push", "workflow_dispatch", "schedule"] {
            let env = RunnerEnv::from_pairs([("GITHUB_EVENT_NAME", name)]);
            let s = parse(&["cdc-deploy"], &env).unwrap();
            assert!(matches!(s.action, Action::Deploy(_)), "{name}");
        }
        let env = RunnerEnv::from_pairs([("GITHUB_EVENT_NAME", "issues")]);
        let err = parse(&["cdc-deploy"], &env).unwrap_err();
        assert!(err.contains("`issues` does not choose a mode"), "{err}");
        let env = RunnerEnv::from_pairs([("GITHUB_EVENT_NAME", "issues"), ("INPUT_MODE", "plan")]);
        assert!(
            parse(&["cdc-deploy"], &env).is_ok(),
            "an explicit mode needs no event"
        );
    }

    #[test]
    fn bad_values_list_the_valid_ones() {
        let env = RunnerEnv::from_pairs([("INPUT_MODE", "sometimes")]);
        let err = parse(&["cdc-deploy"], &env).unwrap_err();
        assert!(
            err.contains("[possible values: auto, plan, deploy]"),
            "{err}"
        );
        let env = RunnerEnv::from_pairs([("INPUT_OFFLINE", "yes")]);
        let err = parse(&["cdc-deploy", "plan"], &env).unwrap_err();
        assert_eq!(err, "input `offline` is `yes`: use `true` or `false`");
        let env = RunnerEnv::from_pairs([("INPUT_BUILD-CONCURRENCY", "0")]);
        let err = parse(&["cdc-deploy", "deploy"], &env).unwrap_err();
        assert!(err.contains("0 is not in 1..=16"), "{err}");
        let err = parse(
            &["cdc-deploy", "plan", "--aws-region", "mars"],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(err.contains("`us-east-1`"), "{err}");
        let err = parse(
            &["cdc-deploy", "plan", "--project-name", "My Shop"],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(err.contains("for example `my-shop`"), "{err}");
        let err = parse(
            &["cdc-deploy", "plan", "--environment", "Prod"],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(err.contains("`environment` `Prod`"), "{err}");
    }

    #[test]
    fn region_falls_back_to_the_aws_variables() {
        let env = RunnerEnv::from_pairs([("AWS_DEFAULT_REGION", "eu-central-1")]);
        let s = parse(&["cdc-deploy", "plan"], &env).unwrap();
        assert_eq!(s.aws_region.as_deref(), Some("eu-central-1"));
        let env = RunnerEnv::from_pairs([
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_REGION", "us-west-2"),
        ]);
        let s = parse(&["cdc-deploy", "plan"], &env).unwrap();
        assert_eq!(s.aws_region.as_deref(), Some("us-west-2"));
    }

    #[test]
    fn registry_host_override() {
        let h = RegistryHost::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!((h.host.as_str(), h.https), ("127.0.0.1:5000", false));
        assert_eq!(h.base_url(), "http://127.0.0.1:5000");
        let h = RegistryHost::parse("123.dkr.ecr-fips.us-east-1.amazonaws.com").unwrap();
        assert!(h.https);
        assert!(RegistryHost::parse("a b").is_err());
        let env = RunnerEnv::from_pairs([
            ("INPUT_REGISTRY-HOST", "http://127.0.0.1:5000"),
            ("INPUT_COMMIT", "ABCDEF1"),
        ]);
        let s = parse(&["cdc-deploy", "deploy"], &env).unwrap();
        let Action::Deploy(d) = s.action else {
            panic!()
        };
        assert_eq!(d.registry_host.unwrap().host, "127.0.0.1:5000");
        assert_eq!(d.commit.as_deref(), Some("abcdef1"));
        assert_eq!(d.build_concurrency, 2);
    }

    #[test]
    fn every_subcommand_option_is_an_input() {
        // The action's inputs are the flags' long names; none may be positional.
        for sc in Cli::command().get_subcommands() {
            for a in sc.get_arguments() {
                assert!(a.get_long().is_some(), "`{}` has no long name", a.get_id());
            }
        }
    }
}
