//! Orchestration: a command is the list of stages it runs, each taking the run's state and
//! leaving its outcome there; nothing else.
//!
//! `plan` scans the consumers, observes AWS, plans, reads what is applied, compares each
//! consumer's entry with it and plans Terraform. `deploy` also opens its GitHub side as soon as
//! it knows what changes, builds and pushes the images, applies the saved plan, watches each
//! rollout to a verdict, gathers evidence of the failed ones and puts a consumer whose rollout
//! failed back on its previous entry. `rollback` reads what is applied, finds the earlier images,
//! plans, applies and watches. Every command ends with the report; the exit code, `result` and
//! the report's first line come from one pure function ([`outcome::outcome`]), and the outputs
//! are one value written in one place ([`outputs::Outputs`]).
//!
//! Discovery and fingerprinting run on blocking threads, once: the scan each fingerprint is made
//! from is kept and is what the image builder is sent. Each consumer's failure is recorded
//! against that consumer and the others go on.

#[cfg(test)]
mod fakes;
pub mod github;
pub mod outcome;
pub mod outputs;
pub mod services;
mod stages;
#[cfg(test)]
mod tests;

use crate::cancel::Cancel;
use crate::config::{Action, Settings};
use crate::consumers::discovery::{self, ConsumerSpec, Discovery};
use crate::context::fingerprint::{self, FingerprintReport};
use crate::context::{BuildContext, ContextError};
use crate::diagnostics::Diagnostic;
use crate::gha::Runner;
use crate::report;

pub use outcome::{EXIT_CANNOT_START, EXIT_FAILED};
pub use services::{Services, AWS_ATTEMPTS};
pub use stages::{stages, Stage};

/// Why a run could not start: configuration, inputs, workspace, credentials, region, or AWS
/// could not be reached. It reads as one line: what failed, why, and what to do. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Start(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Start(_) => EXIT_CANNOT_START,
        }
    }
}

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
/// threads of its own (this blocks: call it off the async runtime's workers). Returns the
/// patterns of the `consumers` option that name no consumer folder.
pub fn discover_and_fingerprint(
    settings: &Settings,
) -> Result<(Discovery, Scans, Vec<String>), RunError> {
    let mut found = discovery::discover(
        &settings.workspace,
        &settings.consumers_dir,
        &settings.project,
    )
    .map_err(|e| RunError::Start(e.to_string()))?;
    let unmatched = match &settings.selection {
        Some(selection) => found.select(selection),
        None => Vec::new(),
    };
    let scans = fingerprint_all(&found.consumers);
    Ok((found, scans, unmatched))
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
        ContextError::IgnoreNotUtf8 { bytes, .. } => crate::diagnostics::not_utf8(
            format!("{}/{}", spec.display_dir, crate::context::DOCKERIGNORE),
            bytes,
            "`.dockerignore`",
        ),
        other => Diagnostic::error(spec.display_dir.clone(), other.to_string()),
    }
}

/// The run could not start: say so in the job summary, and set every output (empty, `result`
/// `failure`), so a workflow that reads them sees the failure and why. Best effort: this is
/// already an error path.
pub fn report_failure(runner: &Runner, message: &str) {
    let _ = outputs::Outputs::empty(outcome::RunResult::Failure).write(runner);
    let _ = runner.append_summary(&format!(
        "## cdc-deploy could not run\n\n{}\n",
        report::md::message(message)
    ));
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
    let (offline, registry_host) = match &settings.action {
        Action::Plan(p) => (p.offline, p.registry_host.as_ref()),
        Action::Deploy(d) => (false, d.registry_host.as_ref()),
        Action::Rollback(r) => (false, r.deploy.registry_host.as_ref()),
        // Nothing to do asks nothing of anyone.
        Action::Nothing { .. } => (true, None),
        Action::Operate(op) => {
            return Err(RunError::Start(format!(
                "`{}` is a day-2 command: it runs through `ops::execute`",
                op.name()
            )))
        }
    };
    let services = Services::connect(settings, runner, cancel, offline, registry_host).await?;
    Ok(run_with(settings, runner, cancel, &services).await?.code)
}

/// How a run ended: its exit code and the stages it ran, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub code: u8,
    pub ran: Vec<Stage>,
}

/// Run the command the settings ask for with `services` (the real ones, or fakes in tests).
pub async fn run_with(
    settings: &Settings,
    runner: &Runner,
    cancel: &Cancel,
    services: &Services,
) -> Result<Finished, RunError> {
    let mut run = stages::Run::new(settings, runner, cancel, services);
    for stage in stages(settings) {
        run.stage(stage).await?;
    }
    Ok(Finished {
        code: run.exit_code(),
        ran: run.ran.clone(),
    })
}
