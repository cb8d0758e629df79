//! Orchestration: runs the stages in order for a command and reports what happened.
//!
//! Plan, then apply: discovery, fingerprinting and planning produce a [`Plan`]; only `deploy`
//! acts on it. Each consumer's failure is recorded against that consumer and the others go on; the
//! exit code says whether anything failed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::apply::images as deploy;
use crate::clients::builder::Engine;
use crate::clients::ecr::{Ecr, RepositoryService};
use crate::clients::registry::{HttpRegistry, Registry, RegistryAuth};
use crate::config::{Action, DeploySettings, RegistryHost, Settings};
use crate::consumers::discovery::{self, ConsumerSpec, Discovery};
use crate::context::fingerprint::{self, FingerprintReport};
use crate::context::{BuildContext, ContextError};
use crate::diagnostics::Diagnostic;
use crate::gha::{Annotation, Level, Runner};
use crate::plan::{self, Fingerprinted, ImageOutcome, Plan, Status, Step};
use crate::report::{self, ReportHeader};

/// Exit code when the run finished but a consumer is invalid or failed.
pub const EXIT_FAILED: u8 = 1;

/// Each discovered consumer with its fingerprint, or the finding that stopped it.
pub type FingerprintResults = Vec<(ConsumerSpec, Result<FingerprintReport, Diagnostic>)>;

/// Discover the consumers and fingerprint each one's build context, in parallel.
pub fn discover_and_fingerprint(
    settings: &Settings,
) -> anyhow::Result<(Discovery, FingerprintResults)> {
    let found = discovery::discover(
        &settings.workspace,
        &settings.consumers_dir,
        &settings.project,
    )
    .context("could not discover the consumers")?;
    let results = fingerprint_all(&found.consumers);
    Ok((found, results))
}

fn fingerprint_all(consumers: &[ConsumerSpec]) -> FingerprintResults {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(consumers.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<FingerprintReport, Diagnostic>>> = vec![None; consumers.len()];
    let slots_lock = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(spec) = consumers.get(i) else { break };
                let r = fingerprint_one(spec);
                slots_lock.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    consumers
        .iter()
        .cloned()
        .zip(slots)
        .map(|(c, r)| {
            let r = r.unwrap_or_else(|| {
                Err(Diagnostic::error(
                    c.display_dir.clone(),
                    "the consumer was not fingerprinted",
                ))
            });
            (c, r)
        })
        .collect()
}

/// Fingerprint one consumer; a failure becomes a finding about that consumer.
pub fn fingerprint_one(spec: &ConsumerSpec) -> Result<FingerprintReport, Diagnostic> {
    let s = &spec.settings;
    BuildContext::scan(&spec.dir, &s.build.dockerfile)
        .and_then(|ctx| fingerprint::fingerprint(&ctx, &s.build, s.platform))
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

/// The commit the run is about: an explicit one, the event's, or the checkout's `HEAD`.
pub fn resolve_commit(settings: &Settings, explicit: Option<&str>) -> Option<String> {
    if let Some(c) = explicit.or(settings.github.commit()) {
        return Some(c.to_string());
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&settings.workspace)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !sha.is_empty()).then_some(sha)
}

fn header(settings: &Settings, verb: &str) -> ReportHeader {
    let g = &settings.github;
    ReportHeader {
        project: settings.project.to_string(),
        environment: settings.environment.clone(),
        verb: verb.to_string(),
        run_url: match (&g.server_url, &g.repository, &g.run_id) {
            (Some(s), Some(r), Some(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
            _ => None,
        },
    }
}

/// Turn every finding of the plan into an annotation.
pub fn annotate(plan: &Plan, runner: &Runner) {
    for c in &plan.consumers {
        for d in &c.diagnostics {
            runner.annotate(&d.annotation());
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
pub fn set_plan_outputs(plan: &Plan, runner: &Runner) -> anyhow::Result<()> {
    for status in [
        Status::New,
        Status::Changed,
        Status::Unchanged,
        Status::Removed,
        Status::Invalid,
    ] {
        let names = serde_json::to_string(&plan.names(status))?;
        runner.set_output(status.as_str(), &names)?;
    }
    runner.set_output(
        "has-changes",
        if plan.has_changes() { "true" } else { "false" },
    )?;
    Ok(())
}

/// Registry credentials and clients for a run that talks to AWS.
pub struct Aws {
    pub ecr: Arc<dyn RepositoryService>,
    pub registry: Arc<dyn Registry>,
    pub host: RegistryHost,
    pub auth: RegistryAuth,
}

/// Load the AWS configuration, get the registry credentials (masked the moment they arrive) and
/// open the registry the images live in.
pub async fn connect_aws(
    settings: &Settings,
    runner: &Runner,
    registry_host: Option<&RegistryHost>,
) -> anyhow::Result<Aws> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(
        aws_config::retry::RetryConfig::standard()
            .with_max_attempts(AWS_ATTEMPTS)
            .with_initial_backoff(std::time::Duration::from_millis(500)),
    );
    if let Some(region) = &settings.aws_region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        anyhow::bail!("no AWS region is set: set the `aws-region` input (or `AWS_REGION`), for example `us-east-1`");
    }
    let ecr = Ecr::new(&config);
    let auth = ecr
        .authorization()
        .await
        .context("could not get registry credentials from ECR (GetAuthorizationToken); check the job's AWS credentials")?;
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
                anyhow::anyhow!(
                    "ECR returned no usable registry endpoint (`{}`); set the `registry-host` input",
                    auth.proxy_endpoint
                )
            })?
        }
    };
    let registry_auth = RegistryAuth {
        username: auth.username.clone(),
        password: auth.password.clone(),
    };
    let registry = HttpRegistry::new(host.clone(), registry_auth.clone())
        .context("could not set up the registry client")?;
    Ok(Aws {
        ecr: Arc::new(ecr),
        registry: Arc::new(registry),
        host,
        auth: registry_auth,
    })
}

/// Attempts per AWS API call (the SDK's standard retry mode, exponential backoff with jitter).
pub const AWS_ATTEMPTS: u32 = 5;

/// The fingerprinted consumers, as the planner takes them.
fn fingerprinted(fingerprints: &FingerprintResults) -> Vec<Fingerprinted<'_>> {
    fingerprints
        .iter()
        .map(|(spec, r)| Fingerprinted {
            spec,
            fingerprint: r.clone(),
        })
        .collect()
}

/// Observe the registry for the consumers that fingerprinted, and plan against it.
async fn observe_and_plan(
    found: &Discovery,
    fingerprints: &FingerprintResults,
    aws: &Aws,
    commit: Option<&str>,
) -> (Plan, HashMap<String, String>) {
    let lookups: Vec<(&str, String)> = fingerprints
        .iter()
        .filter_map(|(s, r)| {
            let tag = r.as_ref().ok()?.fingerprint.tag();
            Some((s.resource_name.as_str(), tag))
        })
        .collect();
    let observed = deploy::observe(aws.ecr.as_ref(), aws.registry.as_ref(), &lookups, commit).await;
    let plan = plan::plan(
        found,
        &fingerprinted(fingerprints),
        Some(&observed.state),
        commit,
    );
    (plan, observed.failures)
}

/// `plan`: discover, fingerprint, plan, report. Changes nothing anywhere.
pub async fn run_plan(
    settings: &Settings,
    runner: &Runner,
    offline: bool,
    output: Option<&Path>,
    registry_host: Option<&RegistryHost>,
) -> anyhow::Result<u8> {
    let (found, fingerprints) = discover_and_fingerprint(settings)?;
    let commit = resolve_commit(settings, None);
    let (plan, failures) = if offline {
        let plan = plan::plan(
            &found,
            &fingerprinted(&fingerprints),
            None,
            commit.as_deref(),
        );
        (plan, HashMap::new())
    } else {
        let aws = connect_aws(settings, runner, registry_host).await?;
        observe_and_plan(&found, &fingerprints, &aws, commit.as_deref()).await
    };
    for (name, e) in &failures {
        runner.error(&format!("could not look up the image of `{name}`: {e}"));
    }
    report_plan(settings, runner, &plan, "plan", output)?;
    Ok(if plan.count(Status::Invalid) > 0 || !failures.is_empty() {
        EXIT_FAILED
    } else {
        0
    })
}

/// `deploy`: observe, plan, then ensure repositories and build, push and tag the images.
pub async fn run_deploy(
    settings: &Settings,
    runner: &Runner,
    deploy_settings: &DeploySettings,
) -> anyhow::Result<u8> {
    let (found, fingerprints) = discover_and_fingerprint(settings)?;
    let commit = resolve_commit(settings, deploy_settings.commit.as_deref());
    let aws = connect_aws(settings, runner, deploy_settings.registry_host.as_ref()).await?;
    let (mut plan, failures) =
        observe_and_plan(&found, &fingerprints, &aws, commit.as_deref()).await;
    runner.print(&report::table(&plan));
    let engine = if plan.consumers.iter().any(|c| c.has(Step::Build)) {
        Some(Engine::connect(settings.docker_host.as_deref()).await?)
    } else {
        None
    };
    let specs: Vec<&ConsumerSpec> = fingerprints.iter().map(|(s, _)| s).collect();
    let stage = deploy::ImageStage {
        settings,
        deploy: deploy_settings,
        runner,
        ecr: aws.ecr.clone(),
        registry: aws.registry.clone(),
        registry_host: aws.host.clone(),
        auth: aws.auth.clone(),
        engine,
        commit: commit.clone(),
    };
    deploy::apply_images(&stage, &mut plan, &specs, &failures).await;
    report_plan(settings, runner, &plan, "deploy", None)?;
    set_image_outputs(&plan, runner)?;
    let failed = plan.image_names(ImageOutcome::Failed).len();
    Ok(if failed > 0 || plan.count(Status::Invalid) > 0 {
        EXIT_FAILED
    } else {
        0
    })
}

/// Outputs of the image stage: the pinned image of each consumer, and who was built, reused,
/// retagged or failed.
pub fn set_image_outputs(plan: &Plan, runner: &Runner) -> anyhow::Result<()> {
    let images: BTreeMap<&str, &str> = plan
        .consumers
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.image.as_ref()?.image.as_deref()?)))
        .collect();
    runner.set_output("images", &serde_json::to_string(&images)?)?;
    for outcome in ImageOutcome::ALL {
        runner.set_output(
            outcome.as_str(),
            &serde_json::to_string(&plan.image_names(outcome))?,
        )?;
    }
    Ok(())
}

fn report_plan(
    settings: &Settings,
    runner: &Runner,
    plan: &Plan,
    verb: &str,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    runner.print(&report::table(plan));
    annotate(plan, runner);
    let md = report::markdown(plan, &header(settings, verb));
    match output {
        Some(path) => {
            std::fs::write(path, &md)
                .with_context(|| format!("could not write the report to `{}`", path.display()))?;
            runner.print(&format!("report written to {}", path.display()));
        }
        None => {
            let _g = runner.group(if verb == "plan" {
                "pull request comment preview"
            } else {
                "report"
            });
            runner.print(&md);
        }
    }
    runner.append_summary(&md)?;
    set_plan_outputs(plan, runner)?;
    Ok(())
}

/// Run the command the settings ask for and return the process exit code.
pub async fn execute(settings: &Settings, runner: &Runner) -> anyhow::Result<u8> {
    match &settings.action {
        Action::Plan {
            offline,
            output,
            registry_host,
        } => {
            run_plan(
                settings,
                runner,
                *offline,
                output.as_deref(),
                registry_host.as_ref(),
            )
            .await
        }
        Action::Deploy(d) => run_deploy(settings, runner, d).await,
    }
}
