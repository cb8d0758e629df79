//! The report stage: the log, the report file and the job summary, GitHub, and the outputs;
//! each written whatever failed before it, and what cannot be written said.

use std::collections::BTreeMap;

use super::{header, Run, Verb};
use crate::apply::infra::vars::Kept;
use crate::apply::infra::InfraReport;
use crate::cancel::Cancel;
use crate::config::Action;
use crate::gha::{Annotation, Level, Runner};
use crate::pipeline::github;
use crate::pipeline::outcome::{self, Facts, Outcome};
use crate::pipeline::outputs::Outputs;
use crate::plan::{Plan, Status};
use crate::report::{self, ReportHeader};

impl Run<'_> {
    pub(super) async fn report(&mut self) {
        self.report.cancelled = self.cancel.reason();
        if self.verb == Verb::Nothing {
            return self.nothing_to_do();
        }
        let decided = self.decide();
        let h = ReportHeader {
            plan_digest: (self.verb != Verb::Rollback).then(|| self.plan.digest()),
            headline: decided.headline.clone(),
            failed: decided.result == outcome::RunResult::Failure,
            ..header(self.settings, self.verb_word(), self.cancel)
        };
        self.log_report();
        if let Some(retried) = &h.aws_retried {
            self.runner.print(retried);
        }
        let comment = self.write_report(&h);
        // The outcome again, now that what could not be written is known.
        let decided = self.decide();
        for e in &self.report_errors {
            self.runner.error(e);
        }
        let comment_url = self.publish(&decided, &comment).await;
        self.write_outputs(&decided, comment_url);
        let code = if self.report_errors.is_empty() || self.cancel.is_cancelled() {
            decided.code
        } else {
            crate::pipeline::EXIT_FAILED
        };
        self.outcome = Some(Outcome { code, ..decided });
    }

    pub(super) fn decide(&self) -> Outcome {
        outcome::outcome(&Facts {
            verb: self.verb,
            plan: &self.plan,
            run: &self.report,
            cancelled: self.report.cancelled.as_deref(),
            report_errors: &self.report_errors,
        })
    }

    pub(super) fn verb_word(&self) -> &'static str {
        match self.verb {
            Verb::Plan => "plan",
            Verb::Deploy => "deploy",
            Verb::Rollback => "rollback",
            Verb::Nothing => "run",
        }
    }

    /// The log: the table, the annotations, what could not be put back.
    pub(super) fn log_report(&self) {
        let runner = self.runner;
        let run = (self.verb != Verb::Plan).then_some(&self.report);
        if self.verb != Verb::Rollback {
            runner.print_untrusted(&report::table::table(&self.plan, run));
            annotate(&self.plan, runner, run.is_some());
        }
        if let Some(i) = &self.report.infra {
            annotate_infra(i, runner);
        }
        for (name, r) in &self.report.restores {
            if let Some(e) = &r.error {
                runner.error(&format!(
                    "`{name}` could not be put back on its previous entry: {e}"
                ));
            }
        }
    }

    /// The report where people read it: the report file or the log, and the job summary.
    /// Returns the pull request comment; what could not be written is kept to say.
    pub(super) fn write_report(&mut self, h: &ReportHeader) -> String {
        let runner = self.runner;
        let run = (self.verb != Verb::Plan).then_some(&self.report);
        let infra = self.report.infra.as_ref();
        let (comment, summary) = match self.verb {
            Verb::Rollback => {
                let md = report::markdown::rollback(&self.report, h);
                (md.clone(), md)
            }
            _ => (
                report::markdown::comment(&self.plan, run, infra, h),
                report::markdown::summary(&self.plan, run, infra, h),
            ),
        };
        let output_file = match &self.settings.action {
            Action::Plan(p) => p.output.as_deref(),
            _ => None,
        };
        match output_file {
            Some(path) => match std::fs::write(path, &comment) {
                Ok(()) => runner.print(&format!("report written to {}", path.display())),
                Err(e) => self.report_errors.push(format!(
                    "could not write the report to `{}`: {e}",
                    path.display()
                )),
            },
            None => {
                let _g = runner.group(if self.verb == Verb::Plan {
                    "pull request comment preview"
                } else {
                    "report"
                });
                runner.print_untrusted(&comment);
            }
        }
        if let Err(e) = runner.append_summary(&summary) {
            self.report_errors.push(e.to_string());
        }
        comment
    }

    /// GitHub: the check runs and the deployment closed first (after a signal the runner does
    /// not wait long), then the comment. Returns the comment's address.
    pub(super) async fn publish(&self, decided: &Outcome, comment: &str) -> Option<String> {
        let gh = self.services.github.as_deref()?;
        let (settings, runner) = (self.settings, self.runner);
        if self.verb != Verb::Rollback {
            self.opened
                .complete_checks(
                    settings,
                    runner,
                    gh,
                    &self.plan,
                    (self.verb != Verb::Plan).then_some(&self.report),
                    self.report.cancelled.as_deref(),
                    self.infra_stopped(),
                    (decided.result.as_str(), &decided.headline),
                    &decided.failed,
                    comment,
                )
                .await;
        }
        let success = matches!(
            decided.result,
            outcome::RunResult::Success | outcome::RunResult::NothingToDeploy
        );
        self.opened
            .finish_deployment(settings, runner, gh, success, &decided.headline)
            .await;
        // A run that never looked at its consumers leaves the comment as the last run wrote it.
        if self.verb == Verb::Rollback || !self.plan.discovered {
            return None;
        }
        let digest = self.plan.digest();
        github::comment(
            settings,
            runner,
            gh,
            comment,
            self.plan.has_changes(),
            (self.verb == Verb::Deploy).then_some(digest.as_str()),
        )
        .await
    }

    /// Every output, in one place.
    pub(super) fn write_outputs(&mut self, decided: &Outcome, comment_url: Option<String>) {
        let images: BTreeMap<String, String> = match self.verb {
            Verb::Rollback => self
                .report
                .infra
                .iter()
                .flat_map(|i| &i.rollbacks)
                .map(|(n, b)| (n.clone(), b.to.clone()))
                .collect(),
            _ => self
                .report
                .images
                .iter()
                .filter_map(|(n, r)| Some((n.clone(), r.image.clone()?)))
                .collect(),
        };
        let mut outputs = Outputs::of(
            &self.plan,
            &self.report,
            decided,
            images,
            self.settings.shards,
        );
        outputs.comment_url = comment_url.unwrap_or_default();
        if let Err(e) = outputs.write(self.runner) {
            self.runner
                .error(&format!("the step's outputs could not be written: {e}"));
            self.report_errors.push(e.to_string());
        }
    }

    /// The event leaves nothing to do: say so, and set every output, empty.
    pub(super) fn nothing_to_do(&mut self) {
        let reason = match &self.settings.action {
            Action::Nothing { reason } => reason.clone(),
            _ => String::new(),
        };
        let runner = self.runner;
        runner.notice(&format!("nothing to do: {reason}"));
        let mut code = 0;
        if let Err(e) = runner.append_summary(&format!(
            "{}\n## cdc-deploy: `{}` → `{}`\n\nNothing to do: {}\n",
            report::comment_marker(&header(self.settings, "run", &Cancel::new())),
            self.settings.project,
            self.settings.environment,
            report::md::text(&reason)
        )) {
            runner.error(&e.to_string());
            code = crate::pipeline::EXIT_FAILED;
        }
        if let Err(e) = Outputs::empty(outcome::RunResult::NothingToDeploy).write(runner) {
            runner.error(&format!("the step's outputs could not be written: {e}"));
            code = crate::pipeline::EXIT_FAILED;
        }
        self.outcome = Some(Outcome {
            code,
            result: outcome::RunResult::NothingToDeploy,
            headline: format!("nothing to do: {reason}"),
            deployed: Vec::new(),
            failed: BTreeMap::new(),
            held: Vec::new(),
        });
    }
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
    for c in plan.consumers.iter().filter(|c| c.status == Status::Held) {
        if let Some(r) = c.reasons.first() {
            runner.notice(&format!("`{}` is {r}", c.name));
        }
    }
}

/// Say what the Terraform stage stopped on, and which consumers kept their running entry.
fn annotate_infra(infra: &InfraReport, runner: &Runner) {
    for (name, kept) in &infra.kept {
        match kept {
            Kept::Running { reason, image } => runner.warning(&format!(
                "`{name}` keeps its running entry (`{image}`): {reason}"
            )),
            Kept::LeftOut { reason } => {
                runner.notice(&format!("`{name}` is left out of Terraform: {reason}"))
            }
        }
    }
    if let Some(e) = &infra.error {
        // Terraform's own diagnostics were streamed in its log group; the report repeats them.
        let title = match e {
            crate::apply::infra::InfraError::Rollback(_) => "rollback",
            _ => "terraform",
        };
        runner.annotate(&Annotation::new(Level::Error, e.to_string()).title(title));
    }
}
