//! One configuration model, validated once: command-line flags and action inputs ([`cli`]), the
//! triggering event ([`event`]) and the environment ([`env_vars`]) become one [`Settings`].
//! Nothing downstream reads the environment or the event payload again.

pub mod cli;
pub mod env_vars;
pub mod event;

use std::path::{Path, PathBuf};

use crate::clients::git::Git;
use crate::consumers::names::ProjectName;
use cli::{Cli, Command, CommonArgs, DeployOptions, Mode, TerraformArgs};
use env_vars::{self as ev, RunnerEnv};
use event::{CommitSha, Event, EventError, EventMode};

/// Configuration that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("input `{input}` is `{value}`: use `true` or `false`")]
    NotABoolean { input: String, value: String },
    #[error("input `{input}` is `{value}`: {use_}")]
    BadInput {
        input: String,
        value: String,
        use_: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the event `{event}` does not choose a mode: set `mode` to `plan` or `deploy`, or run on `pull_request`, `merge_group`, `push`, `workflow_dispatch` or `schedule`")]
    UnsupportedEvent { event: String },
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("`{source_name}`: {error}")]
    Commit {
        source_name: &'static str,
        error: event::CommitError,
    },
}

/// What the GitHub runner told us about the run.
#[derive(Clone, Debug, Default)]
pub struct GithubContext {
    pub event: Option<Event>,
    pub repository: Option<String>,
    pub server_url: Option<String>,
    pub run_id: Option<String>,
    /// `GITHUB_API_URL`, else `https://api.github.com`.
    pub api_url: String,
    /// The `github-token` input, else `GITHUB_TOKEN`.
    pub token: Option<crate::secret::Secret>,
    /// When to write the pull request comment.
    pub comment: crate::report::publish::CommentMode,
    /// Report each consumer as a check run.
    pub check_runs: bool,
}

impl GithubContext {
    /// Link to the workflow run, when running under Actions.
    pub fn run_url(&self) -> Option<String> {
        match (&self.server_url, &self.repository, &self.run_id) {
            (Some(s), Some(r), Some(id)) => {
                Some(format!("{}/{r}/actions/runs/{id}", s.trim_end_matches('/')))
            }
            _ => None,
        }
    }

    /// `https://github.com/owner/repo`, for the image's source label.
    pub fn repository_url(&self) -> Option<String> {
        match (&self.server_url, &self.repository) {
            (Some(s), Some(r)) => Some(format!("{}/{r}", s.trim_end_matches('/'))),
            _ => None,
        }
    }
}

/// Read the event. With `required` (mode `auto`) a payload that cannot be read is an error; with
/// an explicit mode the event only adds facts, so such a payload is reported and left out.
fn read_event(
    env: &RunnerEnv,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<Event>, SettingsError> {
    let Some(name) = env.get(ev::GITHUB_EVENT_NAME) else {
        return Ok(None);
    };
    let path = env.get(ev::GITHUB_EVENT_PATH);
    let read = |p: &str| {
        std::fs::read(p)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|e| {
                    let (line, column) =
                        crate::diagnostics::not_utf8_at(e.as_bytes()).unwrap_or((1, 1));
                    format!("it is not UTF-8 text (line {line}, column {column}), as GitHub always writes it")
                })
            })
    };
    let payload = match path.map(|p| (p, read(p))) {
        None => None,
        Some((_, Ok(text))) => Some(text),
        Some((p, Err(reason))) => {
            let err = EventError::Read {
                path: p.to_string(),
                reason,
            };
            if required {
                return Err(err.into());
            }
            warnings.push(format!(
                "{err}; the explicit `mode` does not need it, so the run goes on without it"
            ));
            None
        }
    };
    match Event::parse(name, payload.as_deref(), path.unwrap_or("")) {
        Ok(e) => Ok(Some(e)),
        Err(e) if required => Err(e.into()),
        Err(e) => {
            warnings.push(format!(
                "{e}; the explicit `mode` does not need it, so the run goes on without it"
            ));
            Ok(Event::parse(name, None, "").ok())
        }
    }
}

/// What the run does, once `mode` and the event are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Plan(PlanSettings),
    Deploy(DeploySettings),
    Rollback(RollbackSettings),
    /// A day-2 command: `status`, `logs`, `exec`.
    Operate(Operation),
    /// The event leaves nothing to do (a push that deleted a branch); the reason says why.
    Nothing {
        reason: String,
    },
}

/// A day-2 command, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Status {
        fail_on_unhealthy: bool,
        registry_host: Option<RegistryHost>,
    },
    Logs {
        consumer: String,
        since: std::time::Duration,
        filter: Option<String>,
        lines: usize,
        follow: bool,
    },
    Exec {
        consumer: String,
        command: String,
    },
    Scale {
        consumer: String,
        count: ScaleTo,
        wait: bool,
        wait_timeout: std::time::Duration,
    },
}

/// The count `scale` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleTo {
    /// A consumer without autoscaling.
    Count(u32),
    /// An autoscaled consumer's bounds.
    Bounds { min: u32, max: u32 },
}

fn scale_to(o: &super::config::cli::ScaleOptions, named: &str) -> Result<ScaleTo, SettingsError> {
    match (o.count, o.min, o.max) {
        (Some(n), None, None) => Ok(ScaleTo::Count(n)),
        (None, Some(min), Some(max)) if min <= max => Ok(ScaleTo::Bounds { min, max }),
        (None, Some(min), Some(max)) => Err(SettingsError::Invalid(format!(
            "`min` {min} is above `max` {max}: give the fewest tasks as `min` and the most as `max`"
        ))),
        (None, None, None) => Err(SettingsError::Invalid(format!(
            "{named} needs the count: `count` for a consumer without autoscaling, `min` and `max` for an autoscaled one"
        ))),
        _ => Err(SettingsError::Invalid(
            "give either `count` (a consumer without autoscaling) or both `min` and `max` (an autoscaled one), not both".into(),
        )),
    }
}

impl Operation {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Status { .. } => "status",
            Operation::Logs { .. } => "logs",
            Operation::Exec { .. } => "exec",
            Operation::Scale { .. } => "scale",
        }
    }

    /// The one consumer the command is about.
    pub fn consumer(&self) -> Option<&str> {
        match self {
            Operation::Status { .. } => None,
            Operation::Logs { consumer, .. }
            | Operation::Exec { consumer, .. }
            | Operation::Scale { consumer, .. } => Some(consumer),
        }
    }
}

fn logs_operation(
    consumer: String,
    o: &super::config::cli::LogsOptions,
    follow: bool,
) -> Result<Operation, SettingsError> {
    let since = parse_duration("since", &o.since)?;
    if since.is_zero() {
        return Err(SettingsError::Invalid(
            "`since` is 0: give how far back to read, like `10m` or `1h`".into(),
        ));
    }
    Ok(Operation::Logs {
        consumer,
        since,
        filter: o.filter.clone().filter(|f| !f.trim().is_empty()),
        lines: usize::from(o.lines),
        follow,
    })
}

/// The command `exec`'s line runs: one line of printable text.
fn exec_command(raw: &str) -> Result<String, SettingsError> {
    let command = raw.trim();
    if command.is_empty() || command.chars().any(char::is_control) {
        return Err(SettingsError::Invalid(
            "`command` must be one line of text, like `/bin/sh` or `python3 -m orders_cdc.shell`"
                .into(),
        ));
    }
    Ok(command.to_string())
}

/// The one consumer `consumers` names, for a day-2 mode about one consumer.
fn one_consumer(mode: &str, raw: Option<&str>) -> Result<String, SettingsError> {
    let names: Vec<&str> = raw
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .collect();
    match names.as_slice() {
        [one] if !one.contains(['*', '?', '[']) => Ok(one.to_string()),
        _ => Err(SettingsError::Invalid(format!(
            "`mode: {mode}` is about one consumer: set `consumers` to its name (`consumers: orders`)"
        ))),
    }
}

/// Validated `plan` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanSettings {
    pub offline: bool,
    /// Also write the report's markdown here.
    pub output: Option<PathBuf>,
    pub registry_host: Option<RegistryHost>,
}

/// Validated `deploy` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploySettings {
    pub registry_host: Option<RegistryHost>,
    pub build_concurrency: usize,
    /// How long one consumer's builds may take before they are stopped.
    pub build_timeout: std::time::Duration,
    pub keep_images: u32,
    pub untagged_expiry_days: u32,
    /// Watch the rollouts after the apply.
    pub wait: bool,
    pub wait_timeout: std::time::Duration,
    /// Last lines of each failed container's log in a rollout's evidence.
    pub log_lines: usize,
    /// Record the deploy as a GitHub deployment.
    pub deployments: bool,
    /// Build and push only (`mode: build`, one shard of a plan's `matrix`).
    pub build_only: bool,
}

/// Validated `rollback` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackSettings {
    /// Registry, wait and evidence settings, as for `deploy`.
    pub deploy: DeploySettings,
    /// The digest to go back to; `None`: the image each ran before.
    pub to: Option<String>,
    /// How the digest was given, for messages: `` `--to` `` or `` `rollback-to` ``.
    pub to_name: &'static str,
}

/// The digest to roll back to, given as `name` (`to` on the command line, `rollback-to` as an
/// action input).
fn rollback_to(name: &str, raw: Option<&str>) -> Result<Option<String>, SettingsError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(d) if crate::reference::is_digest(d) => Ok(Some(d.to_string())),
        Some(d) => Err(SettingsError::Invalid(format!(
            "`{name}` is `{d}`, which is not an image digest: give `sha256:` and 64 lowercase hex digits, as the `images` output of a deploy shows after `@`"
        ))),
    }
}

/// Validated Terraform options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerraformSettings {
    /// `false`: images only.
    pub enabled: bool,
    /// The root module, absolute; `None` for a root generated around the bundled module.
    pub dir: Option<PathBuf>,
    /// `key=value` pairs, each one `-backend-config`.
    pub backend_config: Vec<String>,
    /// Further variables, absolute.
    pub var_file: Option<PathBuf>,
    pub allow_destroy: bool,
    pub lock_timeout: std::time::Duration,
    /// Plan on every run, also when nothing would change (`terraform-refresh: always`).
    pub refresh_always: bool,
    pub program: PathBuf,
    /// Where the data directory, the plugin cache, a generated root and the saved plan live.
    pub work_dir: PathBuf,
    /// A plugin cache the environment already names.
    pub plugin_cache: Option<PathBuf>,
}

/// A duration written like `30s`, `5m`, `1h30m` or `500ms`.
pub fn parse_duration(name: &str, raw: &str) -> Result<std::time::Duration, SettingsError> {
    let bad = || {
        SettingsError::Invalid(format!(
            "`{name}` `{raw}` is not a duration: write it like `30s`, `5m` or `1h30m`"
        ))
    };
    let s = raw.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(3600), 1)
        } else if rest.starts_with('d') {
            (std::time::Duration::from_secs(86_400), 1)
        } else {
            return Err(bad());
        };
        total += unit
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        rest = &rest[len..];
    }
    Ok(total)
}

fn terraform_settings(
    t: &TerraformArgs,
    env: &RunnerEnv,
    workspace: &Path,
    project: &str,
    environment: &str,
) -> Result<TerraformSettings, SettingsError> {
    let in_workspace = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            workspace.join(p)
        }
    };
    let dir = t.terraform_dir.as_deref().map(in_workspace);
    if t.terraform {
        if let Some(d) = &dir {
            if !d.is_dir() {
                return Err(SettingsError::Invalid(format!(
                    "`terraform-dir` `{}` is not a folder; give the root module's folder relative to the repository root, or leave it unset for the bundled module",
                    d.display()
                )));
            }
        }
    }
    let var_file = t.terraform_var_file.as_deref().map(in_workspace);
    if let Some(f) = &var_file {
        if t.terraform && !f.is_file() {
            return Err(SettingsError::Invalid(format!(
                "`terraform-var-file` `{}` does not exist; give the file relative to the repository root",
                f.display()
            )));
        }
    }
    let mut backend_config = Vec::new();
    for value in &t.terraform_backend_config {
        for line in value
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            match line.split_once('=') {
                Some((k, _)) if !k.trim().is_empty() => backend_config.push(line.to_string()),
                _ => {
                    return Err(SettingsError::Invalid(format!(
                        "`terraform-backend-config` line `{line}` is not `key=value`: write one setting per line, like `bucket=my-state` and `use_lockfile=true`"
                    )))
                }
            }
        }
    }
    let base = env
        .get(ev::RUNNER_TEMP)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    Ok(TerraformSettings {
        enabled: t.terraform,
        dir,
        backend_config,
        var_file,
        allow_destroy: t.allow_destroy,
        lock_timeout: parse_duration("lock-timeout", &t.lock_timeout)?,
        refresh_always: t.terraform_refresh == cli::Refresh::Always,
        program: env
            .get(ev::TERRAFORM_PATH)
            .map_or_else(|| PathBuf::from("terraform"), PathBuf::from),
        work_dir: base
            .join("cdc-deploy")
            .join(format!("{project}-{environment}")),
        plugin_cache: env.get(ev::TF_PLUGIN_CACHE_DIR).map(PathBuf::from),
    })
}

pub use crate::reference::RegistryHost;

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub workspace: PathBuf,
    pub consumers_dir: PathBuf,
    pub project: ProjectName,
    pub environment: String,
    pub aws_region: Option<String>,
    /// The commit the run is about: images built from it are tagged `sha-<commit>`.
    pub commit: Option<CommitSha>,
    /// The Docker engine's address from `DOCKER_HOST`; the default socket when unset.
    pub docker_host: Option<String>,
    /// `false` when `DOCKER_BUILDKIT=0` asks for the classic builder.
    pub buildkit: bool,
    /// Whether `AWS_MAX_ATTEMPTS` or `AWS_RETRY_MODE` set the SDK's retries, which then stand.
    pub aws_retry_from_env: bool,
    pub github: GithubContext,
    pub terraform: TerraformSettings,
    /// The `consumers` option: `None` is every consumer.
    pub selection: Option<crate::consumers::select::Selection>,
    /// Runners the builds are split over (`shards`).
    pub shards: usize,
    /// Builds take their cache from the registry and leave theirs there (`build-cache`).
    pub build_cache: bool,
    pub action: Action,
    /// Findings about the configuration that did not stop it (shown as warnings).
    pub warnings: Vec<String>,
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

fn validate_project(raw: &str) -> Result<ProjectName, SettingsError> {
    ProjectName::parse(raw).map_err(|e| {
        SettingsError::Invalid(match e.suggestion {
            Some(s) => format!("{}; for example `{s}`", e.reason),
            None => e.reason,
        })
    })
}

fn deploy_settings(d: &DeployOptions) -> Result<DeploySettings, SettingsError> {
    Ok(DeploySettings {
        registry_host: registry_host(d.registry_host.as_deref())?,
        build_concurrency: usize::from(d.build_concurrency),
        build_timeout: match parse_duration("build-timeout", &d.build_timeout)? {
            t if t.is_zero() => {
                return Err(SettingsError::Invalid(
                    "`build-timeout` is 0: give a build time to run, like `30m`".into(),
                ))
            }
            t => t,
        },
        keep_images: d.keep_images,
        untagged_expiry_days: d.untagged_expiry_days,
        wait: d.wait,
        wait_timeout: parse_duration("wait-timeout", &d.wait_timeout)?,
        log_lines: usize::from(d.log_lines),
        deployments: d.deployments,
        build_only: false,
    })
}

fn registry_host(raw: Option<&str>) -> Result<Option<RegistryHost>, SettingsError> {
    raw.map(RegistryHost::parse)
        .transpose()
        .map_err(|e| SettingsError::Invalid(e.to_string()))
}

/// The commit: the `commit` input, the event's, `GITHUB_SHA`, then the checkout's `HEAD`. A
/// given commit must be a full id; a checkout without one just has no commit.
fn resolve_commit(
    c: &CommonArgs,
    event: Option<&Event>,
    env: &RunnerEnv,
    workspace: &Path,
    git: &dyn Git,
) -> Result<Option<CommitSha>, SettingsError> {
    let checked = |source_name: &'static str, raw: &str| {
        CommitSha::parse(raw).map_err(|error| SettingsError::Commit { source_name, error })
    };
    if let Some(raw) = c.commit.as_deref() {
        return checked("commit", raw).map(Some);
    }
    if let Some(sha) = event.and_then(Event::commit) {
        return Ok(Some(sha.clone()));
    }
    if let Some(raw) = env.get(ev::GITHUB_SHA) {
        return checked(ev::GITHUB_SHA, raw).map(Some);
    }
    Ok(git.head(workspace).and_then(|h| CommitSha::parse(&h).ok()))
}

/// Resolve `mode: auto` from the event.
pub fn resolve_mode(mode: Mode, event: Option<&Event>) -> Result<EventMode, SettingsError> {
    match mode {
        Mode::Plan => Ok(EventMode::Plan),
        Mode::Deploy => Ok(EventMode::Deploy),
        Mode::Rollback => Ok(EventMode::Rollback),
        Mode::Build => Ok(EventMode::Build),
        Mode::Status => Ok(EventMode::Status),
        Mode::Logs => Ok(EventMode::Logs),
        Mode::Exec => Ok(EventMode::Exec),
        Mode::Scale => Ok(EventMode::Scale),
        Mode::Auto => match event {
            None => Err(SettingsError::Invalid(
                "`mode` is `auto` but there is no triggering event (`GITHUB_EVENT_NAME` is unset): set `mode` to `plan` or `deploy`".into(),
            )),
            Some(e) => e.mode().ok_or_else(|| SettingsError::UnsupportedEvent {
                event: e.name().to_string(),
            }),
        },
    }
}

impl Settings {
    /// Validate parsed arguments against the environment snapshot; `git` answers for the
    /// checkout's `HEAD` when nothing else names the commit.
    pub fn resolve(
        cli: Cli,
        env: &RunnerEnv,
        cwd: &Path,
        git: &dyn Git,
    ) -> Result<Settings, SettingsError> {
        let mut warnings = Vec::new();
        let auto = matches!(&cli.command, Command::Run(r) if r.mode == Mode::Auto);
        let event = read_event(env, auto, &mut warnings)?;
        let (common, action, tf) = match cli.command {
            Command::Plan(p) => (
                p.common,
                Action::Plan(PlanSettings {
                    offline: p.offline,
                    output: p.output,
                    registry_host: registry_host(p.registry_host.as_deref())?,
                }),
                p.terraform,
            ),
            Command::Deploy(d) => (
                d.common,
                Action::Deploy(deploy_settings(&d.deploy)?),
                d.terraform,
            ),
            Command::Build(d) => (
                d.common,
                Action::Deploy(DeploySettings {
                    build_only: true,
                    ..deploy_settings(&d.deploy)?
                }),
                d.terraform,
            ),
            Command::Rollback(r) => (
                r.common,
                Action::Rollback(RollbackSettings {
                    deploy: deploy_settings(&r.deploy)?,
                    to: rollback_to("--to", r.to.as_deref())?,
                    to_name: "`--to`",
                }),
                r.terraform,
            ),
            Command::Status(a) => (
                a.common,
                Action::Operate(Operation::Status {
                    fail_on_unhealthy: a.status.fail_on_unhealthy,
                    registry_host: registry_host(a.registry_host.as_deref())?,
                }),
                a.terraform,
            ),
            Command::Logs(a) => (
                a.common,
                Action::Operate(logs_operation(a.consumer, &a.logs, a.follow)?),
                a.terraform,
            ),
            Command::Exec(a) => (
                a.common,
                Action::Operate(Operation::Exec {
                    consumer: a.consumer,
                    command: exec_command(&a.exec.command)?,
                }),
                a.terraform,
            ),
            Command::Scale(a) => (
                a.common,
                Action::Operate(Operation::Scale {
                    consumer: a.consumer,
                    count: scale_to(&a.scale, "`scale`")?,
                    wait: a.wait,
                    wait_timeout: parse_duration("wait-timeout", &a.wait_timeout)?,
                }),
                a.terraform,
            ),
            Command::Run(r) => {
                let deploy = deploy_settings(&r.deploy)?;
                let to = rollback_to("rollback-to", r.rollback_to.as_deref())?;
                if to.is_some() && r.mode != Mode::Rollback {
                    return Err(SettingsError::Invalid(
                        "`rollback-to` is for `mode: rollback`".into(),
                    ));
                }
                let resolved = resolve_mode(r.mode, event.as_ref())?;
                // An offline run has no AWS access: a workflow meant to plan (a fork's pull
                // request, say) must not quietly deploy when another event starts it.
                if r.offline && resolved != EventMode::Plan {
                    let why = match (r.mode, event.as_ref()) {
                        (Mode::Auto, Some(e)) => {
                            format!("`mode: auto` on a `{}` event does not plan", e.name())
                        }
                        _ => "`mode` does not plan".to_string(),
                    };
                    return Err(SettingsError::Invalid(format!(
                        "`offline` is `true`, but {why}: an offline run only plans; set `mode: plan`, or leave `offline` unset to deploy"
                    )));
                }
                if r.output.is_some() && resolved != EventMode::Plan {
                    warnings.push(
                        "`output` is written by plans only: this run does not plan, so no file is written (its report is in the job summary)".into(),
                    );
                }
                let action = match resolved {
                    EventMode::Status => Action::Operate(Operation::Status {
                        fail_on_unhealthy: r.status.fail_on_unhealthy,
                        registry_host: deploy.registry_host.clone(),
                    }),
                    // Never followed inside Actions: a job that never ends.
                    EventMode::Logs => Action::Operate(logs_operation(
                        one_consumer("logs", r.common.consumers.as_deref())?,
                        &r.logs,
                        false,
                    )?),
                    EventMode::Scale => Action::Operate(Operation::Scale {
                        consumer: one_consumer("scale", r.common.consumers.as_deref())?,
                        count: scale_to(&r.scale, "`mode: scale`")?,
                        wait: deploy.wait,
                        wait_timeout: deploy.wait_timeout,
                    }),
                    EventMode::Exec => Action::Operate(Operation::Exec {
                        consumer: one_consumer("exec", r.common.consumers.as_deref())?,
                        command: exec_command(&r.exec.command)?,
                    }),
                    EventMode::Rollback => Action::Rollback(RollbackSettings {
                        deploy,
                        to,
                        to_name: "`rollback-to`",
                    }),
                    EventMode::Plan => Action::Plan(PlanSettings {
                        offline: r.offline,
                        output: r.output,
                        registry_host: deploy.registry_host,
                    }),
                    EventMode::Deploy => Action::Deploy(deploy),
                    EventMode::Build => Action::Deploy(DeploySettings {
                        build_only: true,
                        ..deploy
                    }),
                };
                (r.common, action, r.terraform)
            }
        };
        let workspace = common
            .workspace
            .clone()
            .or_else(|| env.get(ev::GITHUB_WORKSPACE).map(PathBuf::from))
            .unwrap_or_else(|| cwd.to_path_buf());

        let aws_region = common
            .aws_region
            .as_deref()
            .or_else(|| env.get(ev::AWS_REGION))
            .or_else(|| env.get(ev::AWS_DEFAULT_REGION))
            .map(validate_region)
            .transpose()?;
        let action = match event.as_ref().and_then(Event::deleted_ref) {
            Some(r) => Action::Nothing {
                reason: format!("the push deleted `{r}`: there is no commit to plan or deploy"),
            },
            None => action,
        };
        if !matches!(action, Action::Nothing { .. }) && !workspace.is_dir() {
            return Err(SettingsError::Invalid(format!(
                "the workspace `{}` is not a folder; set `workspace` to the repository's root (it defaults to `GITHUB_WORKSPACE`, then the current folder)",
                workspace.display()
            )));
        }
        let commit = match &action {
            Action::Nothing { .. } => None,
            _ => resolve_commit(&common, event.as_ref(), env, &workspace, git)?,
        };
        let project = validate_project(&common.project_name)?;
        let environment = validate_environment(&common.environment)?;
        let mut terraform =
            terraform_settings(&tf, env, &workspace, project.as_str(), &environment)?;
        let build_only = matches!(&action, Action::Deploy(d) if d.build_only);
        if build_only {
            // A shard builds and pushes; the deploy after the shards applies.
            terraform.enabled = false;
        }
        let selection = crate::consumers::select::Selection::parse(
            common.consumers.as_deref().unwrap_or_default(),
        )
        .map_err(SettingsError::Invalid)?;
        if let Action::Rollback(_) = &action {
            if selection.is_none() {
                return Err(SettingsError::Invalid(
                    "a rollback needs `consumers`: name the consumers to put back on their earlier image (`consumers: orders`)".into(),
                ));
            }
            if !tf.terraform {
                return Err(SettingsError::Invalid(
                    "a rollback goes through Terraform, so that its state says what runs; `terraform: false` cannot roll back".into(),
                ));
            }
        }
        if build_only && selection.is_none() {
            return Err(SettingsError::Invalid(
                "a build needs `consumers`: name the consumers this shard builds (a `consumers` value of the plan's `matrix` output)".into(),
            ));
        }
        Ok(Settings {
            shards: usize::from(common.shards),
            build_cache: common.build_cache,
            selection,
            project,
            environment,
            terraform,
            consumers_dir: common.consumers_dir,
            workspace,
            aws_region,
            commit,
            docker_host: env.get(ev::DOCKER_HOST).map(str::to_string),
            buildkit: env.get(ev::DOCKER_BUILDKIT) != Some("0"),
            aws_retry_from_env: env.get(ev::AWS_MAX_ATTEMPTS).is_some()
                || env.get(ev::AWS_RETRY_MODE).is_some(),
            github: GithubContext {
                event,
                repository: env.get(ev::GITHUB_REPOSITORY).map(str::to_string),
                server_url: env.get(ev::GITHUB_SERVER_URL).map(str::to_string),
                run_id: env.get(ev::GITHUB_RUN_ID).map(str::to_string),
                api_url: env
                    .get(ev::GITHUB_API_URL)
                    .unwrap_or("https://api.github.com")
                    .to_string(),
                token: common
                    .github_token
                    .clone()
                    .or_else(|| env.get(ev::GITHUB_TOKEN).map(str::to_string))
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| crate::secret::Secret::new(t.trim())),
                // A shard reports in its job summary only: the deploy after it comments and
                // checks for the whole fleet.
                comment: if build_only {
                    crate::report::publish::CommentMode::Never
                } else {
                    common.comment
                },
                check_runs: common.check_runs && !build_only,
            },
            action,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::git::FixedGit;
    use clap::{CommandFactory, Parser};
    use cli::with_inputs;
    use std::ffi::OsString;

    const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
    const HEAD: &str = "1111111111111111111111111111111111111111";

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parse_with(args: &[&str], env: &RunnerEnv, git: &dyn Git) -> Result<Settings, String> {
        let argv = with_inputs(argv(args), env).map_err(|e| e.to_string())?;
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Settings::resolve(cli, env, &std::env::temp_dir(), git).map_err(|e| e.to_string())
    }

    fn parse(args: &[&str], env: &RunnerEnv) -> Result<Settings, String> {
        parse_with(args, env, &FixedGit(None))
    }

    fn event_file(dir: &Path, json: &str) -> String {
        let path = dir.join("event.json");
        std::fs::write(&path, json).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/github/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
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
            Action::Plan(PlanSettings {
                offline: true,
                output: None,
                registry_host: None,
            })
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
        let p = event_file(
            dir.path(),
            &format!(r#"{{"pull_request":{{"number":7,"head":{{"sha":"{SHA}"}}}}}}"#),
        );
        let env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", p.as_str()),
            ("GITHUB_SHA", HEAD),
        ]);
        let s = parse(&["cdc-deploy"], &env).unwrap();
        assert!(matches!(
            s.action,
            Action::Plan(PlanSettings { offline: false, .. })
        ));
        assert!(matches!(
            s.github.event,
            Some(Event::PullRequest {
                number: Some(7),
                ..
            })
        ));
        assert_eq!(
            s.commit.as_ref().map(CommitSha::as_str),
            Some(SHA),
            "the pull request's head, not the merge commit in GITHUB_SHA"
        );
        let offline_env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("INPUT_MODE", "plan"),
            ("INPUT_OFFLINE", "true"),
        ]);
        let offline = parse(&["cdc-deploy"], &offline_env).unwrap();
        assert!(
            matches!(
                offline.action,
                Action::Plan(PlanSettings { offline: true, .. })
            ),
            "the action's `offline` input reaches `run`"
        );
        for name in ["push", "workflow_dispatch", "schedule"] {
            let env = RunnerEnv::from_pairs([("GITHUB_EVENT_NAME", name)]);
            let s = parse(&["cdc-deploy"], &env).unwrap();
            assert!(matches!(s.action, Action::Deploy(_)), "{name}");
        }
        for name in ["merge_group", "pull_request_target"] {
            let env = RunnerEnv::from_pairs([("GITHUB_EVENT_NAME", name)]);
            let s = parse(&["cdc-deploy"], &env).unwrap();
            assert!(matches!(s.action, Action::Plan(_)), "{name}");
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
    fn an_explicit_mode_does_not_need_the_event_file() {
        let env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", "/nonexistent/event.json"),
            ("INPUT_MODE", "deploy"),
            ("GITHUB_SHA", SHA),
        ]);
        let s = parse(&["cdc-deploy"], &env).unwrap();
        assert!(matches!(s.action, Action::Deploy(_)));
        assert_eq!(s.commit.as_ref().unwrap().as_str(), SHA);
        assert!(
            s.warnings[0].contains("/nonexistent/event.json"),
            "{:?}",
            s.warnings
        );
        // In `auto` the event decides, so it must be readable.
        let env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", "/nonexistent/event.json"),
        ]);
        let err = parse(&["cdc-deploy"], &env).unwrap_err();
        assert!(
            err.contains("could not read the event payload `/nonexistent/event.json`"),
            "{err}"
        );
    }

    #[test]
    fn a_push_that_deletes_a_ref_leaves_nothing_to_do() {
        for file in ["push.deleted-branch.json", "push.1.json"] {
            let path = fixture(file);
            let env = RunnerEnv::from_pairs([
                ("GITHUB_EVENT_NAME", "push"),
                ("GITHUB_EVENT_PATH", path.as_str()),
                ("GITHUB_SHA", "0000000000000000000000000000000000000000"),
            ]);
            let s = parse(&["cdc-deploy"], &env).unwrap();
            let Action::Nothing { reason } = &s.action else {
                panic!("{file}: {:?}", s.action)
            };
            assert!(reason.contains("the push deleted `refs/"), "{reason}");
            assert_eq!(s.commit, None, "{file}: no commit");
        }
        let path = fixture("push.4.json");
        let env = RunnerEnv::from_pairs([
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", path.as_str()),
        ]);
        let s = parse(&["cdc-deploy"], &env).unwrap();
        assert!(matches!(s.action, Action::Deploy(_)));
        assert_eq!(s.commit.unwrap().as_str(), SHA);
    }

    #[test]
    fn the_commit_input_wins_everywhere_and_must_be_a_full_id() {
        let env = RunnerEnv::from_pairs([("GITHUB_SHA", HEAD), ("INPUT_COMMIT", SHA)]);
        for cmd in ["plan", "deploy", "run"] {
            let env = if cmd == "run" {
                RunnerEnv::from_pairs([
                    ("GITHUB_SHA", HEAD),
                    ("INPUT_COMMIT", SHA),
                    ("INPUT_MODE", "plan"),
                ])
            } else {
                env.clone()
            };
            let s = parse(&["cdc-deploy", cmd], &env).unwrap();
            assert_eq!(s.commit.unwrap().as_str(), SHA, "{cmd}");
        }
        let env = RunnerEnv::from_pairs([("INPUT_COMMIT", "abcdef1")]);
        let err = parse(&["cdc-deploy", "deploy"], &env).unwrap_err();
        assert!(
            err.starts_with("`commit`: `abcdef1` is not a full commit id"),
            "{err}"
        );
        let env = RunnerEnv::from_pairs([("GITHUB_SHA", "nope")]);
        let err = parse(&["cdc-deploy", "deploy"], &env).unwrap_err();
        assert!(err.starts_with("`GITHUB_SHA`: `nope`"), "{err}");
    }

    #[test]
    fn without_a_commit_anywhere_the_checkout_head_is_asked() {
        let s = parse_with(
            &["cdc-deploy", "plan"],
            &RunnerEnv::default(),
            &FixedGit(Some(HEAD.into())),
        )
        .unwrap();
        assert_eq!(s.commit.unwrap().as_str(), HEAD);
        let s = parse_with(
            &["cdc-deploy", "plan"],
            &RunnerEnv::default(),
            &FixedGit(None),
        )
        .unwrap();
        assert_eq!(s.commit, None);
    }

    #[test]
    fn a_rollback_needs_consumers_terraform_and_a_digest() {
        let env =
            RunnerEnv::from_pairs([("INPUT_MODE", "rollback"), ("INPUT_CONSUMERS", "orders")]);
        let s = parse(&["cdc-deploy"], &env).unwrap();
        assert!(
            matches!(&s.action, Action::Rollback(r) if r.to.is_none()),
            "{:?}",
            s.action
        );
        assert!(s.selection.as_ref().unwrap().matches("orders"));
        let err = parse(&["cdc-deploy", "rollback"], &RunnerEnv::default()).unwrap_err();
        assert!(err.contains("a rollback needs `consumers`"), "{err}");
        let err = parse(
            &[
                "cdc-deploy",
                "rollback",
                "--consumers=orders",
                "--terraform=false",
            ],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(err.contains("`terraform: false` cannot roll back"), "{err}");
        let err = parse(
            &[
                "cdc-deploy",
                "rollback",
                "--consumers=orders",
                "--to=sha256:abc",
            ],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(err.contains("is not an image digest"), "{err}");
        let env = RunnerEnv::from_pairs([
            ("INPUT_MODE", "deploy"),
            ("INPUT_ROLLBACK-TO", &format!("sha256:{}", "a".repeat(64))),
        ]);
        let err = parse(&["cdc-deploy"], &env).unwrap_err();
        assert!(err.contains("`rollback-to`"), "{err}");
        // A bad digest is named as it was given: the input, or the flag.
        let env = RunnerEnv::from_pairs([
            ("INPUT_MODE", "rollback"),
            ("INPUT_ROLLBACK-TO", "sha-1234"),
        ]);
        let err = parse(&["cdc-deploy"], &env).unwrap_err();
        assert!(
            err.starts_with("`rollback-to` is `sha-1234`, which is not an image digest"),
            "{err}"
        );
    }

    #[test]
    fn offline_runs_only_plan() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"ref": "refs/heads/main", "after": "1111111111111111111111111111111111111111", "deleted": false}"#).unwrap();
        let event = event.to_str().unwrap();
        let on = |mode: &str, event_name: &str| {
            parse(
                &["cdc-deploy"],
                &RunnerEnv::from_pairs([
                    ("INPUT_MODE", mode),
                    ("INPUT_OFFLINE", "true"),
                    ("GITHUB_EVENT_NAME", event_name),
                    ("GITHUB_EVENT_PATH", event),
                ]),
            )
        };
        let err = on("auto", "push").unwrap_err();
        assert_eq!(
            err,
            "`offline` is `true`, but `mode: auto` on a `push` event does not plan: an offline run only plans; set `mode: plan`, or leave `offline` unset to deploy"
        );
        assert!(on("deploy", "push")
            .unwrap_err()
            .contains("`mode` does not plan"));
        assert!(matches!(
            on("plan", "push").unwrap().action,
            Action::Plan(PlanSettings { offline: true, .. })
        ));
        // `output` on a run that deploys is said to be unused, not silently dropped.
        let deploy = parse(
            &["cdc-deploy"],
            &RunnerEnv::from_pairs([("INPUT_MODE", "deploy"), ("INPUT_OUTPUT", "report.md")]),
        )
        .unwrap();
        assert_eq!(
            deploy.warnings,
            ["`output` is written by plans only: this run does not plan, so no file is written (its report is in the job summary)"]
        );
    }

    #[test]
    fn bad_values_list_the_valid_ones() {
        // As inputs: in the input's name, with what it takes.
        let env = RunnerEnv::from_pairs([("INPUT_MODE", "sometimes")]);
        let err = parse(&["cdc-deploy"], &env).unwrap_err();
        assert_eq!(
            err,
            "input `mode` is `sometimes`: use `auto`, `plan`, `deploy`, `rollback`, `build`, `status`, `logs`, `exec` or `scale`"
        );
        let env = RunnerEnv::from_pairs([("INPUT_OFFLINE", "yes")]);
        let err = parse(&["cdc-deploy", "plan"], &env).unwrap_err();
        assert_eq!(err, "input `offline` is `yes`: use `true` or `false`");
        let env = RunnerEnv::from_pairs([("INPUT_BUILD-CONCURRENCY", "0")]);
        let err = parse(&["cdc-deploy", "deploy"], &env).unwrap_err();
        assert_eq!(
            err,
            "input `build-concurrency` is `0`: use a whole number from 1 to 16"
        );
        // As flags: in clap's words, which name the flag.
        let err = parse(
            &["cdc-deploy", "run", "--mode", "sometimes"],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(
            err.contains(
                "[possible values: auto, plan, deploy, rollback, build, status, logs, exec, scale]"
            ),
            "{err}"
        );
        let err = parse(
            &["cdc-deploy", "deploy", "--build-concurrency", "0"],
            &RunnerEnv::default(),
        )
        .unwrap_err();
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
        let env = RunnerEnv::from_pairs([("INPUT_REGISTRY-HOST", "http://127.0.0.1:5000")]);
        let s = parse(&["cdc-deploy", "deploy"], &env).unwrap();
        let Action::Deploy(d) = s.action else {
            panic!()
        };
        assert_eq!(d.registry_host.unwrap().host, "127.0.0.1:5000");
        assert_eq!(d.build_concurrency, 2);
    }

    #[test]
    fn a_workspace_that_is_not_a_folder_is_named() {
        let err = parse(
            &["cdc-deploy", "plan", "--workspace", "/nonexistent/repo"],
            &RunnerEnv::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("the workspace `/nonexistent/repo` is not a folder"),
            "{err}"
        );
    }

    #[test]
    fn a_build_timeout_of_zero_is_refused() {
        let env = RunnerEnv::default();
        let err = parse(&["cdc-deploy", "deploy", "--build-timeout", "0s"], &env).unwrap_err();
        assert!(err.contains("`build-timeout` is 0"), "{err}");
        let ok = parse(&["cdc-deploy", "deploy", "--build-timeout", "45m"], &env).unwrap();
        match ok.action {
            Action::Deploy(d) => assert_eq!(d.build_timeout.as_secs(), 2700),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_buildkit_zero_asks_for_the_classic_builder() {
        let s = parse(&["cdc-deploy", "plan"], &RunnerEnv::default()).unwrap();
        assert!(s.buildkit);
        let env = RunnerEnv::from_pairs([("DOCKER_BUILDKIT", "0")]);
        assert!(!parse(&["cdc-deploy", "plan"], &env).unwrap().buildkit);
    }

    #[test]
    fn a_day2_mode_takes_one_consumer_and_a_one_line_command() {
        let env = |pairs: &[(&str, &str)]| {
            RunnerEnv::from_pairs(
                pairs
                    .iter()
                    .map(|(k, v)| (crate::config::env_vars::input_var(k), v.to_string())),
            )
        };
        let err = parse(
            &["cdc-deploy"],
            &env(&[("mode", "logs"), ("consumers", "a, b")]),
        )
        .unwrap_err();
        assert!(err.contains("is about one consumer"), "{err}");
        let err = parse(
            &["cdc-deploy"],
            &env(&[
                ("mode", "exec"),
                ("consumers", "a"),
                ("command", "sh\n::add-mask::x"),
            ]),
        )
        .unwrap_err();
        assert!(err.contains("one line of text"), "{err}");
        let err = parse(
            &["cdc-deploy"],
            &env(&[("mode", "scale"), ("consumers", "a")]),
        )
        .unwrap_err();
        assert!(err.contains("needs the count"), "{err}");
        let err = parse(
            &["cdc-deploy"],
            &env(&[
                ("mode", "scale"),
                ("consumers", "a"),
                ("min", "3"),
                ("max", "2"),
            ]),
        )
        .unwrap_err();
        assert!(err.contains("`min` 3 is above `max` 2"), "{err}");
    }

    #[test]
    fn every_subcommand_option_is_an_input() {
        // The action's inputs are the flags' long names; none may be positional, but the one
        // consumer `logs` and `exec` take on the command line (the action names it with
        // `consumers`).
        for sc in Cli::command().get_subcommands() {
            for a in sc.get_arguments() {
                let named_consumer =
                    ["logs", "exec", "scale"].contains(&sc.get_name()) && a.get_id() == "consumer";
                assert!(
                    a.get_long().is_some() || named_consumer,
                    "`{}` has no long name",
                    a.get_id()
                );
            }
        }
        let run = Cli::command();
        let run = run.find_subcommand("run").unwrap();
        assert!(run.get_arguments().all(|a| a.get_long().is_some()));
    }

    #[test]
    fn terraform_options_from_inputs_and_flags() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("infra")).unwrap();
        std::fs::write(ws.path().join("net.tfvars"), "").unwrap();
        let w = ws.path().to_str().unwrap();
        let env = RunnerEnv::from_pairs([
            ("INPUT_TERRAFORM-DIR", "infra"),
            (
                "INPUT_TERRAFORM-BACKEND-CONFIG",
                "bucket=state\n# a comment\n\nkey=cdc/prod.tfstate\nuse_lockfile=true\n",
            ),
            ("INPUT_TERRAFORM-VAR-FILE", "net.tfvars"),
            ("INPUT_ALLOW-DESTROY", "true"),
            ("INPUT_LOCK-TIMEOUT", "1m30s"),
            ("RUNNER_TEMP", "/runner/tmp"),
        ]);
        let s = parse(&["cdc-deploy", "plan", "--workspace", w], &env).unwrap();
        let t = &s.terraform;
        assert!(t.enabled);
        assert_eq!(t.dir.as_deref(), Some(ws.path().join("infra").as_path()));
        assert_eq!(
            t.backend_config,
            ["bucket=state", "key=cdc/prod.tfstate", "use_lockfile=true"]
        );
        assert_eq!(
            t.var_file.as_deref(),
            Some(ws.path().join("net.tfvars").as_path())
        );
        assert!(t.allow_destroy);
        assert_eq!(t.lock_timeout, std::time::Duration::from_secs(90));
        assert_eq!(
            t.work_dir,
            PathBuf::from("/runner/tmp/cdc-deploy/cdc-production")
        );

        // Booleans take `true` and `false` on the command line too; a flag beats the input.
        let s = parse(
            &[
                "cdc-deploy",
                "plan",
                "--workspace",
                w,
                "--allow-destroy=false",
                "--terraform=false",
            ],
            &env,
        )
        .unwrap();
        assert!(!s.terraform.allow_destroy);
        assert!(!s.terraform.enabled);
        let s = parse(
            &["cdc-deploy", "plan", "--workspace", w, "--offline"],
            &RunnerEnv::default(),
        )
        .unwrap();
        assert!(matches!(
            s.action,
            Action::Plan(PlanSettings { offline: true, .. })
        ));
        assert_eq!(
            s.terraform.lock_timeout,
            std::time::Duration::from_secs(300),
            "5m by default"
        );
        assert_eq!(s.terraform.dir, None, "the bundled module by default");

        let bad = |k: &str, v: &str| {
            let env = RunnerEnv::from_pairs([(k, v)]);
            parse(&["cdc-deploy", "plan", "--workspace", w], &env).unwrap_err()
        };
        assert_eq!(
            bad("INPUT_ALLOW-DESTROY", "yes"),
            "input `allow-destroy` is `yes`: use `true` or `false`"
        );
        assert!(bad("INPUT_LOCK-TIMEOUT", "5 minutes")
            .contains("`lock-timeout` `5 minutes` is not a duration: write it like `30s`, `5m`"));
        assert!(bad("INPUT_TERRAFORM-BACKEND-CONFIG", "bucket")
            .contains("line `bucket` is not `key=value`"));
        assert!(bad("INPUT_TERRAFORM-DIR", "nowhere").contains("`terraform-dir`"));
        assert!(bad("INPUT_TERRAFORM-VAR-FILE", "missing.tfvars").contains("does not exist"));
        let err = Cli::try_parse_from(["cdc-deploy", "plan", "--offline=maybe"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`maybe` is not `true` or `false`"), "{err}");
    }

    #[test]
    fn durations_are_written_like_5m() {
        let d = |s: &str| parse_duration("x", s).map(|d| d.as_millis());
        assert_eq!(d("5m").unwrap(), 300_000);
        assert_eq!(d("1h30m").unwrap(), 5_400_000);
        assert_eq!(d("45s").unwrap(), 45_000);
        assert_eq!(d("250ms").unwrap(), 250);
        assert_eq!(d("0").unwrap(), 0);
        for bad in ["", "5", "m", "5x", "-5m", "5m3"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
