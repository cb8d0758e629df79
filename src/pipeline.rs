//! Orchestration, per command: scan → observe → plan → apply → report, nothing else.
//!
//! Discovery and fingerprinting run on blocking threads, once: the scan each fingerprint is made
//! from is kept and is what the image builder is sent. Each consumer's failure is recorded
//! against that consumer and the others go on; the exit code says whether anything failed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::apply::images::{self, Buildable, ImageStage};
use crate::apply::infra::vars::Held;
use crate::apply::infra::{self, InfraReport, InfraStage};
use crate::apply::rollout::{self, EvidenceSettings, VerdictKind, WatchSettings};
use crate::apply::{rollback, scans};
use crate::apply::{ImageOutcome, RunReport};
use crate::cancel::Cancel;
use crate::clients::builder::{DockerEngine, EngineError, ImageBuilder, RegistryLogin};
use crate::clients::ecr::{Ecr, RepositoryService};
use crate::clients::ecs::Ecs;
use crate::clients::logs::Logs;
use crate::clients::registry::{HttpRegistry, Registry, RegistryAuth};
use crate::config::{
    Action, DeploySettings, PlanSettings, RegistryHost, RollbackSettings, Settings,
};
use crate::consumers::discovery::{self, ConsumerSpec, Discovery};
use crate::context::fingerprint::{self, FingerprintReport};
use crate::context::{BuildContext, ContextError};
use crate::diagnostics::Diagnostic;
use crate::gha::{Annotation, Level, Runner};
use crate::observe::{self, Wanted};
use crate::plan::{self, Fingerprinted, Plan, Status, Step};
use crate::report::{self, ReportHeader};

/// Exit code when the run finished but a consumer is invalid or failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the run could not start.
pub const EXIT_CANNOT_START: u8 = 2;

/// Why a run stopped before its work was done. Each reads as one line: what failed, why, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run could not start: configuration, inputs, workspace, credentials, region, or AWS
    /// could not be reached. Exit code 2.
    #[error("{0}")]
    Start(String),
    /// The work was done but could not be written where the runner reads it (outputs, summary,
    /// the report file). Exit code 1.
    #[error("{0}")]
    Report(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Start(_) => EXIT_CANNOT_START,
            RunError::Report(_) => EXIT_FAILED,
        }
    }
}

impl From<crate::gha::GhaError> for RunError {
    fn from(e: crate::gha::GhaError) -> Self {
        RunError::Report(e.to_string())
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, RunError> {
    serde_json::to_string(value)
        .map_err(|e| RunError::Report(format!("could not write an output as JSON: {e}")))
}
/// Attempts per AWS API call (the SDK's standard retry mode, exponential backoff with jitter).
pub const AWS_ATTEMPTS: u32 = 5;

/// One consumer's build context, scanned once: the fingerprint, and the file list the image
/// builder is sent.
#[derive(Clone, Debug)]
pub struct Scan {
    pub context: BuildContext,
    pub report: FingerprintReport,
}

/// Each discovered consumer with its scan, or the finding that stopped it.
pub type Scans = Vec<(ConsumerSpec, Result<Scan, Diagnostic>)>;

/// Discover the consumers and scan and fingerprint each one's build context, in parallel on
/// threads of its own (this blocks: call it off the async runtime's workers).
pub fn discover_and_fingerprint(settings: &Settings) -> Result<(Discovery, Scans), RunError> {
    let mut found = discovery::discover(
        &settings.workspace,
        &settings.consumers_dir,
        &settings.project,
    )
    .map_err(|e| RunError::Start(e.to_string()))?;
    if let Some(selection) = &settings.selection {
        found.select(selection).map_err(RunError::Start)?;
    }
    let scans = fingerprint_all(&found.consumers);
    Ok((found, scans))
}

fn fingerprint_all(consumers: &[ConsumerSpec]) -> Scans {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(consumers.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<Scan, Diagnostic>>>> = consumers
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(spec) = consumers.get(i) else { break };
                let r = fingerprint_one(spec);
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    consumers
        .iter()
        .cloned()
        .zip(slots)
        .map(|(c, slot)| {
            let r = slot
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| {
                    Err(Diagnostic::error(
                        c.display_dir.clone(),
                        "the consumer was not fingerprinted",
                    ))
                });
            (c, r)
        })
        .collect()
}

/// Scan and fingerprint one consumer; a failure becomes a finding about that consumer.
pub fn fingerprint_one(spec: &ConsumerSpec) -> Result<Scan, Diagnostic> {
    let s = &spec.settings;
    BuildContext::scan(&spec.dir, &s.build.dockerfile)
        .and_then(|context| {
            let report = fingerprint::fingerprint(&context, &s.build, s.platform)?;
            Ok(Scan { context, report })
        })
        .map_err(|e| context_diagnostic(spec, &e))
}

fn context_diagnostic(spec: &ConsumerSpec, e: &ContextError) -> Diagnostic {
    match e {
        ContextError::DockerIgnore { source, .. } => Diagnostic::error(
            format!("{}/{}", spec.display_dir, crate::context::DOCKERIGNORE),
            format!("`{}` is not a valid pattern: {}", source.pattern.trim(), source.reason),
        )
        .at(source.line, 1)
        .help("fix the pattern; `.dockerignore` uses Docker's syntax, anchored at the consumer's folder"),
        other => Diagnostic::error(spec.display_dir.clone(), other.to_string()),
    }
}

/// Discover and fingerprint on a blocking thread, off the async runtime's workers.
async fn scan(settings: &Settings) -> Result<(Discovery, Scans), RunError> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || discover_and_fingerprint(&settings))
        .await
        .map_err(|e| RunError::Start(format!("the scan of the consumers stopped: {e}")))?
}

fn header(settings: &Settings, verb: &str, cancel: &Cancel) -> ReportHeader {
    ReportHeader {
        project: settings.project.to_string(),
        environment: settings.environment.clone(),
        verb: verb.to_string(),
        run_url: settings.github.run_url(),
        cancelled: cancel.reason(),
        plan_digest: None,
    }
}

/// The header of a report that shows `plan`: its digest goes into the comment's marker.
fn plan_header(settings: &Settings, verb: &str, cancel: &Cancel, plan: &Plan) -> ReportHeader {
    ReportHeader {
        plan_digest: Some(plan.digest()),
        ..header(settings, verb, cancel)
    }
}

/// The exit code of a cancelled run: 128 and the signal's number, as a shell reports it.
fn cancelled_exit(cancel: &Cancel) -> Option<u8> {
    cancel.reason().map(|why| match why.as_str() {
        "SIGINT" => 130,
        "SIGTERM" => 143,
        _ => EXIT_FAILED,
    })
}

/// Turn every finding of the plan into an annotation, and, when nothing was applied, every
/// failed look-up (a deploy reports those with the consumer's other failures).
pub fn annotate(plan: &Plan, runner: &Runner, applied: bool) {
    for c in &plan.consumers {
        for d in &c.diagnostics {
            runner.annotate(&d.annotation());
        }
    }
    if !applied {
        let failed = plan.consumers.iter().filter_map(|c| {
            let f = c.lookup_failure.as_ref()?;
            Some((c.name.as_str(), "the look-up failed", f.to_string()))
        });
        for a in crate::gha::grouped_errors(failed) {
            runner.annotate(&a);
        }
    }
    for d in &plan.warnings {
        runner.annotate(&d.annotation());
    }
    for s in &plan.skipped {
        runner.annotate(
            &Annotation::new(Level::Warning, s.reason.clone()).file(s.display_dir.clone(), None),
        );
    }
}

/// Set the step outputs every command sets.
fn set_plan_outputs(plan: &Plan, runner: &Runner) -> Result<(), RunError> {
    for status in Status::ALL {
        let names = json(&plan.names(status))?;
        runner.set_output(status.as_str(), &names)?;
    }
    runner.set_output(
        "has-changes",
        if plan.has_changes() { "true" } else { "false" },
    )?;
    runner.set_output("plan", &json(&plan.to_json())?)?;
    Ok(())
}

/// The run's outcome, for the `result` output: `cancelled`, `failure` (exit code 1), or, for a
/// run that succeeded, `nothing-to-deploy` when the plan changed nothing, else `success`.
fn result(code: u8, cancel: &Cancel, changes: bool) -> &'static str {
    if cancel.is_cancelled() {
        "cancelled"
    } else if code != 0 {
        "failure"
    } else if !changes {
        "nothing-to-deploy"
    } else {
        "success"
    }
}

/// The outputs of what the apply stages did: `deployed` (each rollout that succeeded; without
/// watching, each service the apply changed) and `failed` (every consumer that failed at any
/// stage: its image, the apply it was part of, or its rollout).
fn set_outcome_outputs(plan: &Plan, run: &RunReport, runner: &Runner) -> Result<(), RunError> {
    let mut deployed: Vec<&str> = run
        .rollouts
        .iter()
        .filter(|(_, v)| v.kind == VerdictKind::Succeeded)
        .map(|(n, _)| n.as_str())
        .collect();
    let watched: Vec<&str> = run.rollouts.keys().map(String::as_str).collect();
    let changed = run
        .infra
        .as_ref()
        .map(InfraReport::changed_services)
        .unwrap_or_default();
    for w in &changed {
        if !watched.contains(&w.consumer.as_str()) {
            deployed.push(w.consumer.as_str());
        }
    }
    deployed.sort_unstable();
    let mut failed: std::collections::BTreeSet<&str> =
        run.names(ImageOutcome::Failed).into_iter().collect();
    failed.extend(
        run.rollouts
            .iter()
            .filter(|(_, v)| v.kind != VerdictKind::Succeeded)
            .map(|(n, _)| n.as_str()),
    );
    if let Some(infra) = run.infra.as_ref().filter(|i| i.error.is_some()) {
        // The apply did not happen (or not wholly): every consumer it was to change failed.
        if !infra.applied {
            failed.extend(
                plan.consumers
                    .iter()
                    .filter(|c| c.steps.contains(&Step::Apply))
                    .map(|c| c.name.as_str()),
            );
            failed.extend(infra.rollbacks.keys().map(String::as_str));
        }
    }
    runner.set_output("deployed", &json(&deployed)?)?;
    runner.set_output("failed", &json(&failed)?)?;
    Ok(())
}

/// Outputs of the image stage: the pinned image of each consumer, and who was built, reused or
/// failed.
fn set_image_outputs(run: &RunReport, runner: &Runner) -> Result<(), RunError> {
    let images: BTreeMap<&str, &str> = run
        .images
        .iter()
        .filter_map(|(name, r)| Some((name.as_str(), r.image.as_deref()?)))
        .collect();
    runner.set_output("images", &json(&images)?)?;
    for outcome in [ImageOutcome::Built, ImageOutcome::Reused] {
        runner.set_output(outcome.as_str(), &json(&run.names(outcome))?)?;
    }
    Ok(())
}

/// `(consumer, repository, digest)` of each image this run pushed.
fn pushed_images(plan: &Plan, run: &RunReport) -> Vec<(String, String, String)> {
    run.images
        .iter()
        .filter(|(_, r)| r.outcome == ImageOutcome::Built)
        .filter_map(|(name, r)| {
            let repository = plan.get(name)?.resource_name.clone()?;
            Some((name.clone(), repository, r.digest.clone()?))
        })
        .collect()
}

/// The clients of a run that talks to AWS.
pub struct Aws {
    /// The region the clients (and Terraform's provider) use.
    pub region: String,
    /// The loaded configuration, for the clients made later (ECS).
    pub config: aws_config::SdkConfig,
    pub ecr: Arc<dyn RepositoryService>,
    pub registry: Arc<dyn Registry>,
    pub host: RegistryHost,
    pub login: RegistryLogin,
}

/// The region: the setting (input, `AWS_REGION`, `AWS_DEFAULT_REGION`), else the profile's.
/// Instance metadata is not asked: on a runner without it that only costs seconds of retries
/// before the same answer.
async fn region(settings: &Settings) -> Result<aws_config::Region, RunError> {
    use aws_config::meta::region::ProvideRegion as _;
    if let Some(r) = &settings.aws_region {
        return Ok(aws_config::Region::new(r.clone()));
    }
    aws_config::profile::ProfileFileRegionProvider::new()
        .region()
        .await
        .ok_or_else(|| {
            RunError::Start(
                "no AWS region is set; set the `aws-region` input or `AWS_REGION`, for example `us-east-1`"
                    .into(),
            )
        })
}

/// Load the AWS configuration, get the registry credentials (masked the moment they arrive) and
/// open the registry the images live in.
pub async fn connect_aws(
    settings: &Settings,
    runner: &Runner,
    registry_host: Option<&RegistryHost>,
) -> Result<Aws, RunError> {
    let region = region(settings).await?;
    // Instance metadata stays in the credential chain (self-hosted runners on EC2 use it), asked
    // once and briefly.
    let imds = aws_config::imds::Client::builder()
        .max_attempts(1)
        .connect_timeout(std::time::Duration::from_secs(1))
        .read_timeout(std::time::Duration::from_secs(1))
        .build();
    let credentials = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .region(region.clone())
        .imds_client(imds)
        .build()
        .await;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials);
    if !settings.aws_retry_from_env {
        loader = loader.retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(AWS_ATTEMPTS)
                .with_initial_backoff(std::time::Duration::from_millis(500)),
        );
    }
    let config = loader.load().await;
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let ecr = Ecr::new(&config);
    let auth = ecr
        .authorization()
        .await
        .map_err(|e| RunError::Start(format!("could not get the registry credentials: {e}")))?;
    // Masked before anything else can print them: the password, and the `user:password` pair in
    // base64 as it appears in a basic auth header.
    runner.add_mask(auth.password.expose());
    {
        use base64::Engine as _;
        runner.add_mask(&base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            auth.username,
            auth.password.expose()
        )));
    }
    let host = match registry_host {
        Some(h) => h.clone(),
        None => {
            let endpoint = auth.proxy_endpoint.trim_start_matches("https://");
            RegistryHost::parse(endpoint).map_err(|_| {
                RunError::Start(format!(
                    "ECR returned no usable registry endpoint (`{}`); set the `registry-host` input",
                    auth.proxy_endpoint
                ))
            })?
        }
    };
    let registry_auth = RegistryAuth {
        username: auth.username.clone(),
        password: auth.password.clone(),
    };
    let registry = HttpRegistry::new(host.clone(), registry_auth.clone())
        .map_err(|e| RunError::Start(format!("could not set up the registry client: {e}")))?;
    Ok(Aws {
        region,
        config: config.clone(),
        ecr: Arc::new(ecr),
        registry: Arc::new(registry),
        login: RegistryLogin {
            host: host.host.clone(),
            auth: registry_auth,
        },
        host,
    })
}

fn fingerprinted(scans: &Scans) -> Vec<Fingerprinted<'_>> {
    scans
        .iter()
        .map(|(spec, r)| Fingerprinted {
            spec,
            fingerprint: r.as_ref().map(|s| s.report.clone()).map_err(Clone::clone),
        })
        .collect()
}

/// Observe AWS for the consumers that fingerprinted, and plan against it.
async fn observe_and_plan(
    found: &Discovery,
    scans: &Scans,
    aws: &Aws,
    settings: &Settings,
) -> Plan {
    let wanted: Vec<Wanted> = scans
        .iter()
        .filter_map(|(s, r)| {
            Some(Wanted {
                resource: s.resource_name.clone(),
                fingerprint_tag: r.as_ref().ok()?.report.fingerprint.tag(),
            })
        })
        .collect();
    let observed = observe::observe(aws.ecr.as_ref(), aws.registry.as_ref(), &wanted).await;
    plan::plan(
        found,
        &fingerprinted(scans),
        Some(&observed),
        settings.commit.as_ref(),
    )
}

/// Say what the Terraform stage stopped on, and which consumers kept their running entry.
fn annotate_infra(infra: &InfraReport, runner: &Runner) {
    for (name, held) in &infra.held {
        match held {
            Held::Kept { reason, image } => runner.warning(&format!(
                "`{name}` keeps its running entry (`{image}`): {reason}"
            )),
            Held::LeftOut { reason } => {
                runner.notice(&format!("`{name}` is left out of Terraform: {reason}"))
            }
        }
    }
    if let Some(e) = &infra.error {
        // Terraform's own diagnostics were streamed in its log group; the report repeats them.
        runner.annotate(&Annotation::new(Level::Error, e.to_string()).title("terraform"));
    }
}

/// Check the Terraform root module and binary when the stage is on; a problem stops the run
/// before anything changes.
async fn prepare_terraform(
    settings: &Settings,
    runner: &Runner,
    apply: bool,
) -> Result<Option<infra::Prepared>, RunError> {
    if !settings.terraform.enabled {
        return Ok(None);
    }
    // Backend settings can carry credentials: masked before Terraform can print them.
    for line in &settings.terraform.backend_config {
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim().to_ascii_lowercase();
            let secret = [
                "secret",
                "token",
                "access_key",
                "password",
                "sse_customer_key",
            ]
            .iter()
            .any(|s| key.contains(s));
            if secret && !value.trim().is_empty() {
                runner.add_mask(value.trim());
            }
        }
    }
    infra::prepare(&settings.terraform, apply)
        .await
        .map(Some)
        .map_err(|e| RunError::Start(format!("terraform: {e}")))
}

/// Run the Terraform stage and fold its plan into the consumers' plan.
async fn terraform(
    settings: &Settings,
    runner: &Runner,
    aws: &Aws,
    prepared: &infra::Prepared,
    plan: Plan,
    images: Option<&RunReport>,
    cancel: &Cancel,
) -> (Plan, InfraReport) {
    let stage = InfraStage {
        runner,
        settings: &settings.terraform,
        project: settings.project.as_str(),
        environment: &settings.environment,
        region: &aws.region,
        registry_host: &aws.host.host,
        apply: images.is_some(),
        selection: settings.selection.as_ref(),
        cancel,
    };
    let report = infra::run(&stage, prepared, &plan, images).await;
    let plan = match &report.plan {
        Some(p) => {
            let removed = report.removed(&plan, settings.selection.as_ref());
            let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
            plan::with_infra(plan, p, &removed)
        }
        None => plan,
    };
    (plan, report)
}

/// Print the table, the annotations and the report; append the summary; set the outputs.
fn report(
    runner: &Runner,
    plan: &Plan,
    run: Option<&RunReport>,
    infra: Option<&InfraReport>,
    h: &ReportHeader,
    output: Option<&Path>,
) -> Result<String, RunError> {
    runner.print_untrusted(&report::table::table(plan, run));
    annotate(plan, runner, run.is_some());
    let infra = infra.or_else(|| run.and_then(|r| r.infra.as_ref()));
    if let Some(i) = infra {
        annotate_infra(i, runner);
    }
    let comment = report::markdown::comment(plan, run, infra, h);
    match output {
        Some(path) => {
            std::fs::write(path, &comment).map_err(|e| {
                RunError::Report(format!(
                    "could not write the report to `{}`: {e}",
                    path.display()
                ))
            })?;
            runner.print(&format!("report written to {}", path.display()));
        }
        None => {
            let _g = runner.group(if h.verb == "plan" {
                "pull request comment preview"
            } else {
                "report"
            });
            runner.print_untrusted(&comment);
        }
    }
    runner.append_summary(&report::markdown::summary(plan, run, infra, h))?;
    set_plan_outputs(plan, runner)?;
    Ok(comment)
}

/// Write `body` as the run's sticky comment on its pull request, as `comment` asks; set the
/// `comment-url` output. Reporting never changes the run's verdict: what GitHub refuses is a
/// warning that names the permission the token lacks.
/// `deployed`: the plan digest of a deploy, compared with the plan the comment showed before.
async fn publish_comment(
    settings: &Settings,
    runner: &Runner,
    body: &str,
    changes: bool,
    deployed: Option<&str>,
) -> Result<(), RunError> {
    let url = comment_on_pull_request(settings, runner, body, changes, deployed).await;
    runner.set_output("comment-url", url.as_deref().unwrap_or_default())?;
    Ok(())
}

async fn comment_on_pull_request(
    settings: &Settings,
    runner: &Runner,
    body: &str,
    changes: bool,
    deployed: Option<&str>,
) -> Option<String> {
    use crate::report::publish::{self, CommentMode};
    let gh_settings = &settings.github;
    if gh_settings.comment == CommentMode::Never {
        return None;
    }
    let gh = github_client(settings, runner, "no pull request comment")?;
    let commit = settings.commit.as_ref().map(|c| c.to_string());
    let issue =
        match publish::pull_request(&gh, gh_settings.event.as_ref(), commit.as_deref()).await {
            Ok(Some(n)) => n,
            Ok(None) => {
                tracing::debug!("no pull request to comment on");
                return None;
            }
            Err(e) => {
                runner.warning(&github_refusal(
                    "the pull request of the commit was not found",
                    &e,
                    "contents: read` and `pull-requests: read",
                ));
                return None;
            }
        };
    let create = match gh_settings.comment {
        CommentMode::Always => true,
        CommentMode::OnChange => changes,
        CommentMode::Never => false,
    };
    let compose = |previous: Option<&str>| match deployed {
        Some(digest) => with_review_note(body, previous, digest),
        None => body.to_string(),
    };
    match publish::upsert_with(
        &gh,
        issue,
        settings.project.as_str(),
        &settings.environment,
        &compose,
        create,
    )
    .await
    {
        Ok(Some(c)) => {
            runner.print(&format!("pull request comment: {}", c.html_url));
            Some(c.html_url)
        }
        Ok(None) => None,
        Err(e) => {
            runner.warning(&github_refusal(
                &format!("the comment on #{issue} was not written"),
                &e,
                "pull-requests: write",
            ));
            None
        }
    }
}

/// The GitHub client of the run: `None` without a repository or a token (under Actions a
/// missing token is a warning: `what` says what is not done).
fn github_client(
    settings: &Settings,
    runner: &Runner,
    what: &str,
) -> Option<crate::clients::github::GithubApi> {
    let gh_settings = &settings.github;
    let repository = gh_settings.repository.as_deref()?;
    let Some(token) = &gh_settings.token else {
        if runner.is_actions() {
            runner.warning(&format!(
                "{what}: no GitHub token; pass `github-token` (the action's default is the job's token)"
            ));
        }
        return None;
    };
    match crate::clients::github::GithubApi::new(&gh_settings.api_url, repository, token.expose()) {
        Ok(gh) => Some(gh),
        Err(e) => {
            runner.warning(&format!("{what}: {e}"));
            None
        }
    }
}

/// Start the GitHub deployment of a deploy that changes something; `None` when there is none
/// to record or GitHub refused (a warning says so).
async fn start_deployment(
    settings: &Settings,
    runner: &Runner,
    d: &DeploySettings,
    changes: bool,
) -> Option<(crate::clients::github::GithubApi, u64)> {
    if !d.deployments || !changes {
        return None;
    }
    let commit = settings.commit.as_ref()?.to_string();
    let gh = github_client(settings, runner, "no GitHub deployment")?;
    let log_url = settings.github.run_url();
    match crate::report::publish::start_deployment(
        &gh,
        &commit,
        settings.project.as_str(),
        &settings.environment,
        log_url.as_deref(),
    )
    .await
    {
        Ok(id) => Some((gh, id)),
        Err(e) => {
            runner.warning(&github_refusal(
                "the GitHub deployment was not recorded",
                &e,
                "deployments: write",
            ));
            None
        }
    }
}

/// End the GitHub deployment with the run's result.
async fn finish_deployment(
    settings: &Settings,
    runner: &Runner,
    deployment: Option<(crate::clients::github::GithubApi, u64)>,
    result: &str,
) {
    let Some((gh, id)) = deployment else { return };
    let why = match result {
        "success" | "nothing-to-deploy" => "deployed; every rollout succeeded".to_string(),
        "cancelled" => "the run was cancelled".to_string(),
        _ => "the deploy failed; see the run".to_string(),
    };
    let log_url = settings.github.run_url();
    if let Err(e) = crate::report::publish::finish_deployment(
        &gh,
        id,
        matches!(result, "success" | "nothing-to-deploy"),
        &why,
        log_url.as_deref(),
    )
    .await
    {
        runner.warning(&github_refusal(
            "the GitHub deployment's result was not recorded",
            &e,
            "deployments: write",
        ));
    }
}

/// The check runs a deploy opened, with the client that opened them.
type OpenChecks = Option<(crate::clients::github::GithubApi, BTreeMap<String, u64>)>;

/// Open the check run of each consumer with work, as a deploy starts.
async fn open_checks(settings: &Settings, runner: &Runner, plan: &Plan) -> OpenChecks {
    if !settings.github.check_runs {
        return None;
    }
    let sha = settings.commit.as_ref()?.to_string();
    let gh = github_client(settings, runner, "no check runs")?;
    let details = settings.github.run_url();
    let (ids, errors) =
        crate::report::checks::open(&gh, plan, &settings.environment, &sha, details.as_deref())
            .await;
    if let Some(e) = errors.first() {
        runner.warning(&github_refusal(
            &format!("{} check runs were not opened", errors.len()),
            e,
            "checks: write",
        ));
    }
    Some((gh, ids))
}

/// Complete every consumer's check run with its result (after a plan, with what a deploy
/// would do).
async fn complete_checks(
    settings: &Settings,
    runner: &Runner,
    plan: &Plan,
    run: Option<&RunReport>,
    opened: OpenChecks,
    cancel: &Cancel,
    terraform_failed: bool,
) {
    if !settings.github.check_runs {
        return;
    }
    let Some(sha) = settings.commit.as_ref().map(|c| c.to_string()) else {
        return;
    };
    let (gh, ids) = match opened {
        Some(o) => o,
        None => match github_client(settings, runner, "no check runs") {
            Some(gh) => (gh, BTreeMap::new()),
            None => return,
        },
    };
    let why = cancel.reason();
    let contents: Vec<_> = plan
        .consumers
        .iter()
        .map(|c| crate::report::checks::content_with(c, run, why.as_deref(), terraform_failed))
        .collect();
    let details = settings.github.run_url();
    let errors = crate::report::checks::complete(
        &gh,
        &contents,
        &ids,
        &settings.environment,
        &sha,
        details.as_deref(),
    )
    .await;
    if let Some(e) = errors.first() {
        runner.warning(&github_refusal(
            &format!("{} check runs were not completed", errors.len()),
            e,
            "checks: write",
        ));
    }
}

/// A deploy's comment, with a line under its title saying whether the plan it applied is the
/// one the pull request's comment showed (by the digest in its marker).
fn with_review_note(body: &str, previous: Option<&str>, digest: &str) -> String {
    let Some(previous) = previous else {
        return body.to_string();
    };
    let reviewed = previous.contains("\n## cdc-deploy plan:");
    let note = match crate::report::publish::marker_digest(previous) {
        Some(d) if reviewed && d == digest => format!(
            "> [!NOTE]\n> This deploy applied the plan this pull request showed (plan `{digest}`).\n"
        ),
        Some(d) if reviewed => format!(
            "> [!WARNING]\n> This deploy's plan (`{digest}`) is not the one this pull request showed (`{d}`): something changed between the review and the deploy (another merge, or what runs in AWS).\n"
        ),
        _ => return body.to_string(),
    };
    // The comment was fitted to GitHub's limit already: the note goes only where it fits.
    if body.chars().count() + note.chars().count() + 1 > report::markdown::COMMENT_LIMIT {
        return body.to_string();
    }
    match body.find("\n## ") {
        Some(i) => match body[i + 1..].find('\n') {
            Some(j) => {
                let at = i + 1 + j + 1;
                format!("{}\n{note}{}", &body[..at], &body[at..])
            }
            None => format!("{body}\n\n{note}"),
        },
        None => format!("{body}\n\n{note}"),
    }
}

/// A warning for a GitHub call that failed: with the permission to grant when GitHub refused.
fn github_refusal(what: &str, e: &crate::clients::github::GithubError, permission: &str) -> String {
    if e.is_refusal() {
        format!(
            "{what}: {e}. Give the job `{permission}` in the workflow's `permissions:` (a pull request from a fork gets a read-only token whatever `permissions:` says)"
        )
    } else {
        format!("{what}: {e}")
    }
}

/// `plan`: scan, observe (unless offline), plan, report. Changes nothing anywhere.
pub async fn run_plan(
    settings: &Settings,
    runner: &Runner,
    p: &PlanSettings,
    cancel: &Cancel,
) -> Result<u8, RunError> {
    let (found, scans) = scan(settings).await?;
    let (plan, infra) = if p.offline {
        let plan = plan::plan(
            &found,
            &fingerprinted(&scans),
            None,
            settings.commit.as_ref(),
        );
        (plan, None)
    } else {
        let prepared = prepare_terraform(settings, runner, false).await?;
        let aws = connect_aws(settings, runner, p.registry_host.as_ref()).await?;
        let plan = observe_and_plan(&found, &scans, &aws, settings).await;
        match &prepared {
            Some(prepared) => {
                let (plan, infra) =
                    terraform(settings, runner, &aws, prepared, plan, None, cancel).await;
                (plan, Some(infra))
            }
            None => (plan, None),
        }
    };
    let comment = report(
        runner,
        &plan,
        None,
        infra.as_ref(),
        &plan_header(settings, "plan", cancel, &plan),
        p.output.as_deref(),
    )?;
    publish_comment(settings, runner, &comment, plan.has_changes(), None).await?;
    let infra_failed = infra.as_ref().is_some_and(|i| i.error.is_some());
    complete_checks(settings, runner, &plan, None, None, cancel, infra_failed).await;
    let code = if plan.count(Status::Invalid) > 0 || plan.count(Status::Unknown) > 0 || infra_failed
    {
        EXIT_FAILED
    } else {
        0
    };
    runner.set_output("result", result(code, cancel, plan.has_changes()))?;
    Ok(cancelled_exit(cancel).unwrap_or(code))
}

/// `deploy`: scan, observe, plan, then the image stage, then report.
pub async fn run_deploy(
    settings: &Settings,
    runner: &Runner,
    d: &DeploySettings,
    cancel: &Cancel,
) -> Result<u8, RunError> {
    let (found, scans) = scan(settings).await?;
    // Checked before anything is built or pushed: a deploy that cannot apply changes nothing.
    let prepared = prepare_terraform(settings, runner, true).await?;
    let aws = connect_aws(settings, runner, d.registry_host.as_ref()).await?;
    let plan = observe_and_plan(&found, &scans, &aws, settings).await;
    let deployment = start_deployment(settings, runner, d, plan.has_changes()).await;
    let checks = open_checks(settings, runner, &plan).await;
    runner.print_untrusted(&format!(
        "plan: {}",
        report::table::summary_line(&plan, None)
    ));
    let engine = if plan.consumers.iter().any(|c| c.has(Step::Build)) {
        let engine =
            DockerEngine::connect(settings.docker_host.as_deref(), settings.buildkit).await;
        // An engine that cannot be reached is each building consumer's failure, said once.
        if let Ok(e) = &engine {
            match e.backend() {
                crate::clients::builder::Backend::BuildKit => runner.print_untrusted(&e.describe()),
                crate::clients::builder::Backend::Classic { .. } => runner.warning(&e.describe()),
            }
        }
        Some(engine)
    } else {
        None
    };
    let builder: Result<&dyn ImageBuilder, EngineError> = match &engine {
        Some(Ok(e)) => Ok(e),
        Some(Err(e)) => Err(e.clone()),
        None => Err(EngineError {
            address: settings.docker_host.clone().unwrap_or_default(),
            message: "the engine is not connected: the plan builds nothing".into(),
        }),
    };
    let buildable: HashMap<&str, Buildable<'_>> = scans
        .iter()
        .filter_map(|(spec, r)| {
            Some((
                spec.name.as_str(),
                Buildable {
                    spec,
                    context: &r.as_ref().ok()?.context,
                },
            ))
        })
        .collect();
    let stage = ImageStage {
        runner,
        ecr: aws.ecr.as_ref(),
        registry: aws.registry.as_ref(),
        builder,
        registry_host: aws.host.clone(),
        login: aws.login.clone(),
        project: settings.project.to_string(),
        environment: settings.environment.clone(),
        keep_images: d.keep_images,
        untagged_expiry_days: d.untagged_expiry_days,
        build_concurrency: d.build_concurrency,
        commit: settings.commit.clone(),
        source_url: settings.github.repository_url(),
        cancel,
    };
    let mut run = RunReport {
        images: images::apply(&stage, &plan, &buildable).await,
        infra: None,
        ..RunReport::default()
    };
    let plan = match &prepared {
        Some(prepared) => {
            let (plan, infra) =
                terraform(settings, runner, &aws, prepared, plan, Some(&run), cancel).await;
            run.infra = Some(infra);
            plan
        }
        None => plan,
    };
    let watches = run
        .infra
        .as_ref()
        .map(InfraReport::changed_services)
        .unwrap_or_default();
    // Scans started at push time are read while the rollouts are watched: the wait for them
    // costs nothing when there are rollouts, and at most the scan budget when there are none.
    let pushed = pushed_images(&plan, &run);
    let scan_reader = Ecr::new(&aws.config);
    let read_scans = async {
        if pushed.is_empty() {
            return BTreeMap::new();
        }
        let collect = scans::collect(
            &scan_reader,
            &pushed,
            scans::DEFAULT_BUDGET,
            scans::DEFAULT_INTERVAL,
        );
        crate::cancel::or_cancelled(cancel, collect)
            .await
            .unwrap_or_default()
    };
    let ecs = Ecs::adaptive(&aws.config, AWS_ATTEMPTS);
    let watch = watch_rollouts(runner, &ecs, d, &watches, cancel);
    (run.rollouts, run.scans) = tokio::join!(watch, read_scans);
    if !cancel.is_cancelled() {
        explain_rollouts(runner, &aws, &ecs, cancel, d, &watches, &mut run.rollouts).await;
    }
    run.cancelled = cancel.reason();
    for (name, scan) in &run.scans {
        runner.print_untrusted(&format!("scan: `{name}`: {}", scan.headline()));
    }
    let comment = report(
        runner,
        &plan,
        Some(&run),
        None,
        &plan_header(settings, "deploy", cancel, &plan),
        None,
    )?;
    set_image_outputs(&run, runner)?;
    set_rollout_outputs(&run, runner)?;
    set_outcome_outputs(&plan, &run, runner)?;
    let rollout_failed = run
        .rollouts
        .values()
        .any(|v| v.kind != VerdictKind::Succeeded);
    let failed = run.names(ImageOutcome::Failed).len();
    let infra_failed = run.infra.as_ref().is_some_and(|i| i.error.is_some()) || rollout_failed;
    let code = if failed > 0 || plan.count(Status::Invalid) > 0 || infra_failed {
        EXIT_FAILED
    } else {
        0
    };
    let changes = plan.has_changes() || run.infra.as_ref().is_some_and(|i| i.applied);
    let outcome = result(code, cancel, changes);
    runner.set_output("result", outcome)?;
    // What is open on GitHub is closed first: after a signal the runner does not wait long.
    complete_checks(settings, runner, &plan, Some(&run), checks, cancel, false).await;
    finish_deployment(settings, runner, deployment, outcome).await;
    let digest = plan.digest();
    publish_comment(
        settings,
        runner,
        &comment,
        plan.has_changes(),
        Some(&digest),
    )
    .await?;
    Ok(cancelled_exit(cancel).unwrap_or(code))
}

/// Watch `watches` to their verdicts, unless `wait` is off.
async fn watch_rollouts(
    runner: &Runner,
    ecs: &Ecs,
    d: &DeploySettings,
    watches: &[rollout::Watch],
    cancel: &Cancel,
) -> BTreeMap<String, rollout::Verdict> {
    if !d.wait || watches.is_empty() {
        return BTreeMap::new();
    }
    let _g = runner.group(&format!("rollouts of {} services", watches.len()));
    rollout::watch(
        ecs,
        watches,
        WatchSettings {
            timeout: d.wait_timeout,
            ..WatchSettings::default()
        },
        cancel,
        &|line: &str| runner.print_untrusted(line),
    )
    .await
}

/// Gather the evidence of every rollout that did not succeed, and log it.
async fn explain_rollouts(
    runner: &Runner,
    aws: &Aws,
    ecs: &Ecs,
    cancel: &Cancel,
    d: &DeploySettings,
    watches: &[rollout::Watch],
    verdicts: &mut BTreeMap<String, rollout::Verdict>,
) {
    if verdicts.values().all(|v| v.kind == VerdictKind::Succeeded) {
        return;
    }
    let _g = runner.group("evidence of the rollouts that did not succeed");
    let logs = Logs::new(&aws.config);
    let gather = rollout::gather_evidence(
        ecs,
        &logs,
        watches,
        verdicts,
        EvidenceSettings {
            log_lines: d.log_lines,
            ..EvidenceSettings::default()
        },
    );
    // A signal stops the gathering too: the report must be written before the runner gives up.
    if crate::cancel::or_cancelled(cancel, gather).await.is_err() {
        runner.print("evidence: not gathered, the run was cancelled");
        return;
    }
    for line in rollout::evidence_lines(verdicts) {
        runner.print_untrusted(&line);
    }
}

fn set_rollout_outputs(run: &RunReport, runner: &Runner) -> Result<(), RunError> {
    let verdicts: BTreeMap<&str, &str> = run
        .rollouts
        .iter()
        .map(|(n, v)| (n.as_str(), v.kind.as_str()))
        .collect();
    runner.set_output("rollouts", &json(&verdicts)?)?;
    runner.set_output("scans", &json(&run.scans)?)?;
    Ok(())
}

/// Put the named consumers back on their earlier image through Terraform, and watch the
/// rollouts.
async fn run_rollback(
    settings: &Settings,
    runner: &Runner,
    r: &RollbackSettings,
    cancel: &Cancel,
) -> Result<u8, RunError> {
    let selection = settings.selection.as_ref().ok_or_else(|| {
        RunError::Start("a rollback needs `consumers`: name the consumers to put back".into())
    })?;
    let prepared = prepare_terraform(settings, runner, true)
        .await?
        .ok_or_else(|| {
            RunError::Start(
                "a rollback goes through Terraform; `terraform: false` cannot roll back".into(),
            )
        })?;
    let d = &r.deploy;
    let aws = connect_aws(settings, runner, d.registry_host.as_ref()).await?;
    let ecs = Ecs::adaptive(&aws.config, AWS_ATTEMPTS);
    let resolver = rollback::Resolver {
        deployer: &ecs,
        registry: aws.registry.as_ref(),
        registry_host: &aws.host.host,
        selection,
        to: r.to.as_deref(),
    };
    let stage = InfraStage {
        runner,
        settings: &settings.terraform,
        project: settings.project.as_str(),
        environment: &settings.environment,
        region: &aws.region,
        registry_host: &aws.host.host,
        apply: true,
        selection: None,
        cancel,
    };
    let infra = infra::rollback(&stage, &prepared, &resolver).await;
    for (name, b) in &infra.rollbacks {
        runner.print_untrusted(&format!(
            "rollback: `{name}` from `{}` to `{}` (found in {})",
            b.from, b.to, b.source
        ));
    }
    if let Some(e) = &infra.error {
        runner.error(&format!("terraform: {e}"));
    }
    let watches = infra.changed_services();
    let mut run = RunReport {
        infra: Some(infra),
        ..RunReport::default()
    };
    run.rollouts = watch_rollouts(runner, &ecs, d, &watches, cancel).await;
    if !cancel.is_cancelled() {
        explain_rollouts(runner, &aws, &ecs, cancel, d, &watches, &mut run.rollouts).await;
    }
    run.cancelled = cancel.reason();

    let h = header(settings, "rollback", cancel);
    let markdown = report::markdown::rollback(&run, &h);
    {
        let _g = runner.group("report");
        runner.print_untrusted(&markdown);
    }
    runner.append_summary(&markdown)?;
    let images: BTreeMap<&str, &str> = run
        .infra
        .iter()
        .flat_map(|i| &i.rollbacks)
        .map(|(n, b)| (n.as_str(), b.to.as_str()))
        .collect();
    runner.set_output("images", &json(&images)?)?;
    set_rollout_outputs(&run, runner)?;
    set_outcome_outputs(&Plan::default(), &run, runner)?;
    let failed = run.infra.as_ref().is_some_and(|i| i.error.is_some())
        || run
            .rollouts
            .values()
            .any(|v| v.kind != VerdictKind::Succeeded);
    let code = if failed { EXIT_FAILED } else { 0 };
    let changes = run.infra.as_ref().is_some_and(|i| i.applied);
    runner.set_output("result", result(code, cancel, changes))?;
    Ok(cancelled_exit(cancel).unwrap_or(code))
}

/// The run could not start, or failed before its report: say so in the job summary too, and set
/// `result`, so a workflow that reads them sees the failure and why. Best effort: this is
/// already an error path.
pub fn report_failure(runner: &Runner, message: &str) {
    let _ = set_empty_outputs(runner, "failure");
    let _ = runner.append_summary(&format!(
        "## cdc-deploy could not run\n\n{}\n",
        report::md::message(message)
    ));
}

/// Every output, empty, and `result`: for a run that did nothing.
fn set_empty_outputs(runner: &Runner, result: &str) -> Result<(), RunError> {
    for status in Status::ALL {
        runner.set_output(status.as_str(), "[]")?;
    }
    runner.set_output("has-changes", "false")?;
    set_image_outputs(&RunReport::default(), runner)?;
    for (name, empty) in [
        ("rollouts", "{}"),
        ("scans", "{}"),
        ("comment-url", ""),
        ("deployed", "[]"),
        ("failed", "[]"),
        ("plan", "{}"),
        ("result", result),
    ] {
        runner.set_output(name, empty)?;
    }
    Ok(())
}

/// The event leaves nothing to do: say so, and set every output, empty.
fn nothing_to_do(settings: &Settings, runner: &Runner, reason: &str) -> Result<u8, RunError> {
    runner.notice(&format!("nothing to do: {reason}"));
    set_empty_outputs(runner, "nothing-to-deploy")?;
    runner.append_summary(&format!(
        "{}\n## cdc-deploy: `{}` → `{}`\n\nNothing to do: {}\n",
        report::comment_marker(&header(settings, "run", &Cancel::new())),
        settings.project,
        settings.environment,
        report::md::text(reason)
    ))?;
    Ok(0)
}

/// Run the command the settings ask for and return the process exit code.
/// `cancel` is set by a signal: no new work starts, work in progress stops (a running Terraform
/// is asked to stop once and waited for), the report and outputs are still written, and the exit
/// code is 130 (`SIGINT`) or 143 (`SIGTERM`).
pub async fn execute(
    settings: &Settings,
    runner: &Runner,
    cancel: &Cancel,
) -> Result<u8, RunError> {
    if let Some(token) = &settings.github.token {
        runner.add_mask(token.expose());
    }
    for w in &settings.warnings {
        runner.warning(w);
    }
    match &settings.action {
        Action::Plan(p) => run_plan(settings, runner, p, cancel).await,
        Action::Deploy(d) => run_deploy(settings, runner, d, cancel).await,
        Action::Rollback(r) => run_rollback(settings, runner, r, cancel).await,
        Action::Nothing { reason } => nothing_to_do(settings, runner, reason),
    }
}
