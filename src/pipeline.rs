//! Orchestration: runs the stages in order for a command and reports what happened.
//!
//! Plan, then apply: discovery, fingerprinting and planning produce a [`Plan`]; only `deploy`
//! acts on it. Each consumer's failure is recorded against that consumer and the others go on; the
//! exit code says whether anything failed.

use std::path::Path;

use anyhow::Context as _;

use crate::build_context::{BuildContext, ContextError};
use crate::diagnostics::Diagnostic;
use crate::discovery::{self, ConsumerSpec, Discovery};
use crate::fingerprint::{self, FingerprintReport};
use crate::gha::{Annotation, Level, Runner};
use crate::plan::{self, Fingerprinted, Plan, Status};
use crate::report::{self, ReportHeader};
use crate::settings::{Action, Settings};

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
            format!("{}/{}", spec.display_dir, crate::build_context::DOCKERIGNORE),
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

/// `plan`: discover, fingerprint, plan, report. Changes nothing anywhere.
pub fn run_plan(
    settings: &Settings,
    runner: &Runner,
    offline: bool,
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    if !offline {
        anyhow::bail!("planning against AWS needs the registry look-ups of `deploy`; run `cdc-deploy plan --offline` to plan without AWS");
    }
    let (found, fingerprints) = discover_and_fingerprint(settings)?;
    let fingerprinted: Vec<Fingerprinted<'_>> = fingerprints
        .iter()
        .map(|(spec, r)| Fingerprinted {
            spec,
            fingerprint: r.clone(),
        })
        .collect();
    let commit = resolve_commit(settings, None);
    let plan = plan::plan(&found, &fingerprinted, None, commit.as_deref());
    report_plan(settings, runner, &plan, "plan", output)?;
    Ok(if plan.count(Status::Invalid) > 0 {
        EXIT_FAILED
    } else {
        0
    })
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
            let _g = runner.group("pull request comment preview");
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
        Action::Plan { offline, output } => run_plan(settings, runner, *offline, output.as_deref()),
        Action::Deploy(_) => anyhow::bail!("`deploy` is not available in this build"),
    }
}
