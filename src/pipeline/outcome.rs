//! What a run came to, decided once: from the plan, what the stages did and the signal, the exit
//! code, the `result` output, who was deployed and who failed (with why), and the line every
//! report opens with. Pure: the same facts always give the same outcome, and nothing else decides
//! any of these.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::apply::rollout::VerdictKind;
use crate::apply::{ImageError, ImageOutcome, RunReport};
use crate::plan::{Plan, Status, Step};

/// Exit code when the run finished but a consumer is invalid or failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the run could not start.
pub const EXIT_CANNOT_START: u8 = 2;

/// What the run did, as far as its outcome goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Plan,
    Deploy,
    Rollback,
    /// The event left nothing to do.
    Nothing,
}

/// The `result` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    Success,
    NothingToDeploy,
    Failure,
    Cancelled,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::NothingToDeploy => "nothing-to-deploy",
            RunResult::Failure => "failure",
            RunResult::Cancelled => "cancelled",
        }
    }
}

/// The facts an outcome is decided from.
pub struct Facts<'a> {
    pub verb: Verb,
    pub plan: &'a Plan,
    pub run: &'a RunReport,
    /// The signal that cancelled the run (`SIGTERM`), when one did.
    pub cancelled: Option<&'a str>,
    /// What could not be written where people read it (the job summary, the report file).
    pub report_errors: &'a [String],
}

/// What the run came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: u8,
    pub result: RunResult,
    /// One line, what a reviewer needs first: `1 of 3 rollouts failed: `beta` (circuit breaker)`.
    pub headline: String,
    /// Each consumer deployed: its rollout succeeded, or (not watched) the apply changed it.
    pub deployed: Vec<String>,
    /// Each consumer that failed at any stage, with why (one line).
    pub failed: BTreeMap<String, String>,
    /// Each consumer held on its previous image at the end of the run.
    pub held: Vec<String>,
}

/// Decide the outcome. Pure.
pub fn outcome(f: &Facts<'_>) -> Outcome {
    let plan = f.plan;
    let run = f.run;
    let acts = matches!(f.verb, Verb::Deploy | Verb::Rollback);
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut why = |name: &str, reason: String| {
        failed.entry(name.to_string()).or_insert(reason);
    };
    // Consumers the Terraform apply was to change: by the plan (before Terraform planned, every
    // consumer with a change), or a rollback's.
    let planned = run.infra.as_ref().is_some_and(|i| i.plan.is_some());
    let to_apply: Vec<&str> = plan
        .consumers
        .iter()
        .filter(|c| {
            c.has(Step::Apply)
                || (!planned && matches!(c.status, Status::New | Status::Changed | Status::Removed))
        })
        .map(|c| c.name.as_str())
        .chain(
            run.infra
                .iter()
                .flat_map(|i| i.rollbacks.keys().map(String::as_str)),
        )
        .collect();
    if acts {
        for (name, r) in &run.images {
            match &r.error {
                Some(ImageError::Cancelled(_)) | None => {}
                Some(e) => why(name, format!("{}: {}", e.stage(), one_line(&e.to_string()))),
            }
        }
        if let Some(infra) = &run.infra {
            match (&infra.error, infra.applied, &infra.after) {
                (Some(e), false, _) if f.cancelled.is_none() => {
                    for name in &to_apply {
                        why(name, format!("not applied: {}", one_line(&e.to_string())));
                    }
                }
                (Some(e), true, None) => {
                    for name in &to_apply {
                        why(
                            name,
                            format!("applied; outcome unknown: {}", one_line(&e.to_string())),
                        );
                    }
                }
                _ => {}
            }
        }
        for (name, v) in &run.rollouts {
            if !(v.kind.is_success() || v.kind == VerdictKind::Cancelled) {
                why(
                    name,
                    format!("rollout {}: {}", v.kind.as_str(), one_line(&v.reason)),
                );
            }
        }
    }
    let mut deployed: Vec<String> = run
        .rollouts
        .iter()
        .filter(|(_, v)| v.kind.is_success())
        .map(|(n, _)| n.clone())
        .collect();
    if let Some(infra) = &run.infra {
        for w in infra.changed_services() {
            if !run.rollouts.contains_key(&w.consumer) && !failed.contains_key(&w.consumer) {
                deployed.push(w.consumer);
            }
        }
    }
    deployed.sort();
    deployed.dedup();
    let mut held: Vec<String> = plan
        .names(Status::Held)
        .into_iter()
        .map(String::from)
        .collect();
    held.extend(
        run.restores
            .iter()
            .filter(|(_, r)| r.error.is_none() && r.remembered)
            .map(|(n, _)| n.clone()),
    );
    // A rollback holds what it put back, where the applied entries remember it.
    if let Some(infra) = run.infra.as_ref().filter(|i| i.applied) {
        held.extend(
            infra
                .rollbacks
                .keys()
                .filter(|n| {
                    infra
                        .after
                        .as_ref()
                        .and_then(|a| a.get(*n))
                        .is_some_and(|a| a.hold().is_some())
                })
                .cloned(),
        );
    }
    held.sort();
    held.dedup();

    let invalid = plan.count(Status::Invalid);
    let unknown = plan.count(Status::Unknown);
    let infra_failed = run.infra.as_ref().is_some_and(|i| i.error.is_some());
    let broken = !failed.is_empty()
        || invalid > 0
        || infra_failed
        || (f.verb == Verb::Plan && unknown > 0)
        || run.restores.values().any(|r| !r.succeeded());
    let changes = plan.has_changes() || run.infra.as_ref().is_some_and(|i| i.applied);
    let result = if f.cancelled.is_some() {
        RunResult::Cancelled
    } else if broken {
        RunResult::Failure
    } else if !changes {
        RunResult::NothingToDeploy
    } else {
        RunResult::Success
    };
    let code = match f.cancelled {
        Some("SIGINT") => 130,
        Some("SIGTERM") => 143,
        Some(_) => EXIT_FAILED,
        None if broken || !f.report_errors.is_empty() => EXIT_FAILED,
        None => 0,
    };
    let headline = headline(f, &failed, &deployed, &held, result);
    Outcome {
        code,
        result,
        headline,
        deployed,
        failed,
        held,
    }
}

fn one_line(s: &str) -> String {
    crate::failure::one_line(s, 160)
}

/// `` `a`, `b` and 3 more ``.
fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.into_iter().collect();
    let shown: Vec<String> = all.iter().take(3).map(|n| format!("`{n}`")).collect();
    match all.len() {
        0 => String::new(),
        n if n > 3 => format!("{} and {} more", shown.join(", "), n - 3),
        _ => shown.join(", "),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The line every report opens with. What failed comes first, by stage; then what was done.
fn headline(
    f: &Facts<'_>,
    failed: &BTreeMap<String, String>,
    deployed: &[String],
    held: &[String],
    result: RunResult,
) -> String {
    let plan = f.plan;
    let run = f.run;
    let mut parts: Vec<String> = Vec::new();
    if let Some(signal) = f.cancelled {
        parts.push(format!("cancelled by {signal}"));
    }
    let invalid = plan.names(Status::Invalid);
    if !invalid.is_empty() {
        parts.push(format!(
            "{} invalid: {}",
            plural(invalid.len(), "consumer is", "consumers are"),
            names(invalid.iter().copied())
        ));
    }
    let unknown = plan.names(Status::Unknown);
    if f.verb == Verb::Plan && !unknown.is_empty() {
        parts.push(format!(
            "{} could not be looked up: {}",
            plural(unknown.len(), "consumer", "consumers"),
            names(unknown.iter().copied())
        ));
    }
    let images_failed: Vec<&str> = run
        .images
        .iter()
        .filter(|(n, r)| r.outcome == ImageOutcome::Failed && failed.contains_key(*n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !images_failed.is_empty() {
        let stage = run
            .images
            .get(images_failed[0])
            .and_then(|r| r.error.as_ref())
            .map_or("failed", ImageError::stage);
        parts.push(format!(
            "{} of {} failed: {} ({stage})",
            images_failed.len(),
            plural(
                run.images
                    .values()
                    .filter(|r| r.outcome != ImageOutcome::Reused)
                    .count(),
                "image",
                "images"
            ),
            names(images_failed.iter().copied())
        ));
    }
    if let Some(infra) = &run.infra {
        match (&infra.error, infra.applied, &infra.after) {
            (Some(crate::apply::infra::InfraError::DestroyGuard(_)), _, _) => parts.push(
                "Terraform stopped before apply: the plan destroys what a consumer needs and `allow-destroy` is `false`".into(),
            ),
            (Some(_), true, None) => parts.push(
                "Terraform applied, but what it applied could not be read back".into(),
            ),
            (Some(_), true, Some(_)) => {}
            (Some(e), false, _) => parts.push(format!(
                "Terraform failed, nothing was applied: {}",
                crate::failure::one_line(&e.to_string(), 120)
            )),
            (None, _, _) => {}
        }
    }
    let watched = run.rollouts.len();
    let bad: Vec<(&str, VerdictKind)> = run
        .rollouts
        .iter()
        .filter(|(_, v)| !(v.kind.is_success() || v.kind == VerdictKind::Cancelled))
        .map(|(n, v)| (n.as_str(), v.kind))
        .collect();
    if !bad.is_empty() {
        let how = |k: VerdictKind| match k {
            VerdictKind::Failed => "circuit breaker",
            k => k.as_str(),
        };
        let shown: Vec<String> = bad
            .iter()
            .take(3)
            .map(|(n, k)| format!("`{n}` ({})", how(*k)))
            .collect();
        let more = if bad.len() > 3 {
            format!(" and {} more", bad.len() - 3)
        } else {
            String::new()
        };
        parts.push(if watched == 1 {
            format!("the rollout of `{}` failed ({})", bad[0].0, how(bad[0].1))
        } else {
            format!(
                "{} of {watched} rollouts failed: {}{more}",
                bad.len(),
                shown.join(", ")
            )
        });
    }
    let restored = |remembered: bool| -> Vec<&str> {
        run.restores
            .iter()
            .filter(|(_, r)| r.succeeded() && r.remembered == remembered && !r.was_new())
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let held_new: Vec<&str> = run
        .restores
        .iter()
        .filter(|(_, r)| r.succeeded() && r.remembered && r.was_new())
        .map(|(n, _)| n.as_str())
        .collect();
    if !held_new.is_empty() {
        parts.push(format!(
            "{} held: new, with no earlier image to go back to",
            names(held_new.iter().copied())
        ));
    }
    let (held_there, forgotten) = (restored(true), restored(false));
    if !held_there.is_empty() {
        parts.push(format!(
            "{} back on {} previous image and held there",
            names(held_there.iter().copied()),
            if held_there.len() == 1 {
                "its"
            } else {
                "their"
            }
        ));
    }
    if !forgotten.is_empty() {
        parts.push(format!(
            "{} back on {} previous image, but not held: the root module cannot remember it",
            names(forgotten.iter().copied()),
            if forgotten.len() == 1 { "its" } else { "their" }
        ));
    }
    let not_restored: Vec<&str> = run
        .restores
        .iter()
        .filter(|(_, r)| !r.succeeded())
        .map(|(n, _)| n.as_str())
        .collect();
    if !not_restored.is_empty() {
        parts.push(format!(
            "{} could not be put back on {} previous entry",
            names(not_restored.iter().copied()),
            if not_restored.len() == 1 {
                "its"
            } else {
                "their"
            }
        ));
    }
    if parts.is_empty() || result == RunResult::Success || result == RunResult::NothingToDeploy {
        parts.push(success_part(f, deployed));
    }
    // Held before this run: on its previous image, or (a consumer whose first rollout failed)
    // on the image that failed.
    let held_before = |on_failed: bool| -> Vec<&str> {
        held.iter()
            .map(String::as_str)
            .filter(|n| !run.restores.contains_key(*n))
            .filter(|n| {
                plan.get(n)
                    .and_then(|c| Some(c.hold.as_ref()?.image == *c.applied_image.as_ref()?))
                    .unwrap_or(false)
                    == on_failed
            })
            .collect()
    };
    for (on_failed, on) in [(false, "previous image"), (true, "image that failed")] {
        let names_held = held_before(on_failed);
        if !names_held.is_empty() {
            let whose = match (on_failed, names_held.len()) {
                (true, _) => "the",
                (false, 1) => "its",
                (false, _) => "their",
            };
            parts.push(format!(
                "{} held on {whose} {on}",
                names(names_held.iter().copied())
            ));
        }
    }
    let mut line = parts.join("; ");
    if !f.report_errors.is_empty() {
        let _ = write!(line, "; the report could not be written in full");
    }
    line
}

/// What a run that did not fail did, in a few words.
fn success_part(f: &Facts<'_>, deployed: &[String]) -> String {
    let plan = f.plan;
    let run = f.run;
    match f.verb {
        Verb::Nothing => "nothing to do".into(),
        Verb::Plan => {
            let new = plan.count(Status::New);
            let changed = plan.count(Status::Changed);
            let removed = plan.count(Status::Removed);
            let builds = plan.consumers.iter().filter(|c| c.has(Step::Build)).count();
            if !plan.has_changes() {
                return "a deploy would change nothing".into();
            }
            let mut what = Vec::new();
            if new > 0 {
                what.push(format!("create {new}"));
            }
            if changed > 0 {
                what.push(format!("change {changed}"));
            }
            if removed > 0 {
                what.push(format!("remove {removed}"));
            }
            let mut line = if what.is_empty() {
                "a deploy would change shared infrastructure".to_string()
            } else {
                format!(
                    "a deploy would {} {}",
                    what.join(", "),
                    if new + changed + removed == 1 {
                        "consumer"
                    } else {
                        "consumers"
                    }
                )
            };
            if builds > 0 {
                let _ = write!(line, " ({} to build)", plural(builds, "image", "images"));
            }
            line
        }
        Verb::Deploy | Verb::Rollback => {
            let applied = run.infra.as_ref().is_some_and(|i| i.applied);
            let watched = run
                .rollouts
                .values()
                .filter(|v| v.kind.is_success())
                .count();
            let verb = if f.verb == Verb::Rollback {
                "rolled back"
            } else {
                "deployed"
            };
            if deployed.is_empty() && !applied {
                if f.verb == Verb::Rollback {
                    return "nothing was rolled back".into();
                }
                let built = run.names(ImageOutcome::Built).len();
                return if built > 0 {
                    format!(
                        "{} built and pushed; nothing to apply",
                        plural(built, "image", "images")
                    )
                } else {
                    "nothing to deploy".into()
                };
            }
            if deployed.is_empty() {
                return "applied shared infrastructure; no consumer was rolled out".into();
            }
            if watched > 0 && watched == run.rollouts.len() && watched == deployed.len() {
                let superseded: Vec<&str> = run
                    .rollouts
                    .iter()
                    .filter(|(_, v)| v.kind == VerdictKind::Superseded)
                    .map(|(n, _)| n.as_str())
                    .collect();
                if superseded.is_empty() {
                    format!(
                        "{verb} {}: every rollout succeeded",
                        names(deployed.iter().map(String::as_str))
                    )
                } else {
                    format!(
                        "{verb} {}: every rollout succeeded or was superseded ({}: a newer deployment, not this run's, is primary)",
                        names(deployed.iter().map(String::as_str)),
                        names(superseded.into_iter())
                    )
                }
            } else {
                format!(
                    "{verb} {} (rollouts not watched)",
                    names(deployed.iter().map(String::as_str))
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::infra::{InfraError, InfraReport};
    use crate::apply::rollout::Verdict;
    use crate::apply::{ImageResult, Restore};
    use crate::plan::ConsumerPlan;
    use std::time::Duration;

    fn consumer(name: &str, status: Status, steps: &[Step]) -> ConsumerPlan {
        ConsumerPlan {
            steps: steps.to_vec(),
            ..ConsumerPlan::new(name, status)
        }
    }

    fn plan(consumers: Vec<ConsumerPlan>) -> Plan {
        Plan {
            consumers,
            ..Plan::default()
        }
    }

    fn verdict(kind: VerdictKind) -> Verdict {
        Verdict {
            kind,
            reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
            duration: Duration::from_secs(12),
            running: 0,
            desired: 1,
            deployment_id: None,
            events: Vec::new(),
            stopped_tasks: Vec::new(),
            evidence_gaps: Vec::new(),
        }
    }

    fn built() -> ImageResult {
        ImageResult {
            outcome: ImageOutcome::Built,
            image: Some("r/x@sha256:1".into()),
            digest: None,
            size: None,
            duration: Duration::ZERO,
            error: None,
        }
    }

    fn decide(verb: Verb, plan: &Plan, run: &RunReport, cancelled: Option<&str>) -> Outcome {
        outcome(&Facts {
            verb,
            plan,
            run,
            cancelled,
            report_errors: &[],
        })
    }

    fn three() -> Plan {
        let steps = [Step::Build, Step::Push, Step::Apply];
        plan(vec![
            consumer("alpha", Status::New, &steps),
            consumer("beta", Status::New, &steps),
            consumer("gamma", Status::New, &steps),
        ])
    }

    #[test]
    fn a_failed_rollout_fails_the_run_and_leads_the_headline() {
        let p = three();
        let mut run = RunReport::default();
        for n in ["alpha", "beta", "gamma"] {
            run.images.insert(n.into(), built());
            let kind = if n == "beta" {
                VerdictKind::Failed
            } else {
                VerdictKind::Succeeded
            };
            run.rollouts.insert(n.into(), verdict(kind));
        }
        let o = decide(Verb::Deploy, &p, &run, None);
        assert_eq!((o.code, o.result), (1, RunResult::Failure));
        assert_eq!(
            o.headline,
            "1 of 3 rollouts failed: `beta` (circuit breaker)"
        );
        assert_eq!(o.deployed, ["alpha", "gamma"]);
        assert_eq!(o.failed.keys().collect::<Vec<_>>(), ["beta"]);
        assert!(o.failed["beta"].starts_with("rollout failed: ECS deployment circuit breaker"));

        // Restored on its previous entry, and remembered: held from now on.
        run.restores.insert(
            "beta".into(),
            Restore {
                failed_image: "r/beta@sha256:2".into(),
                image: "r/beta@sha256:1".into(),
                verdict: Some(verdict(VerdictKind::Succeeded)),
                error: None,
                remembered: true,
            },
        );
        let o = decide(Verb::Deploy, &p, &run, None);
        assert_eq!(o.code, 1, "the rollout still failed");
        assert_eq!(o.held, ["beta"]);
        assert_eq!(
            o.headline,
            "1 of 3 rollouts failed: `beta` (circuit breaker); `beta` back on its previous image and held there"
        );
    }

    #[test]
    fn success_nothing_to_deploy_and_held_consumers() {
        let p = three();
        let mut run = RunReport::default();
        for n in ["alpha", "beta", "gamma"] {
            run.images.insert(n.into(), built());
            run.rollouts
                .insert(n.into(), verdict(VerdictKind::Succeeded));
        }
        let o = decide(Verb::Deploy, &p, &run, None);
        assert_eq!((o.code, o.result), (0, RunResult::Success));
        assert_eq!(
            o.headline,
            "deployed `alpha`, `beta`, `gamma`: every rollout succeeded"
        );

        let quiet = plan(vec![
            consumer("alpha", Status::Unchanged, &[]),
            consumer("beta", Status::Held, &[]),
        ]);
        let o = decide(Verb::Deploy, &quiet, &RunReport::default(), None);
        assert_eq!((o.code, o.result), (0, RunResult::NothingToDeploy));
        assert_eq!(o.held, ["beta"]);
        assert_eq!(
            o.headline,
            "nothing to deploy; `beta` held on its previous image"
        );
        let o = decide(Verb::Plan, &quiet, &RunReport::default(), None);
        assert_eq!(
            o.headline,
            "a deploy would change nothing; `beta` held on its previous image"
        );
    }

    #[test]
    fn a_shared_only_change_is_a_change() {
        let mut p = plan(vec![consumer("alpha", Status::Unchanged, &[])]);
        p.infra_pending = true;
        let o = decide(Verb::Plan, &p, &RunReport::default(), None);
        assert_eq!((o.code, o.result), (0, RunResult::Success));
        assert_eq!(o.headline, "a deploy would change shared infrastructure");
    }

    #[test]
    fn an_apply_whose_outcome_cannot_be_read_fails_every_consumer_it_changed() {
        let p = plan(vec![
            consumer("alpha", Status::Changed, &[Step::Apply]),
            consumer("beta", Status::Unchanged, &[]),
        ]);
        let run = RunReport {
            infra: Some(InfraReport {
                applied: true,
                after: None,
                error: Some(InfraError::Unreadable(
                    "the `consumers` output is broken".into(),
                )),
                ..InfraReport::default()
            }),
            ..RunReport::default()
        };
        let o = decide(Verb::Deploy, &p, &run, None);
        assert_eq!(o.code, 1);
        assert_eq!(
            o.failed.get("alpha").map(String::as_str),
            Some("applied; outcome unknown: the `consumers` output is broken")
        );
        assert!(!o.failed.contains_key("beta"));
        assert_eq!(
            o.headline,
            "Terraform applied, but what it applied could not be read back"
        );
    }

    #[test]
    fn a_rollout_someone_else_superseded_is_deployed_not_failed() {
        let p = three();
        let mut run = RunReport::default();
        for n in ["alpha", "beta", "gamma"] {
            run.images.insert(n.into(), built());
            run.rollouts
                .insert(n.into(), verdict(VerdictKind::Succeeded));
        }
        run.rollouts
            .insert("beta".into(), verdict(VerdictKind::Superseded));
        let o = decide(Verb::Deploy, &p, &run, None);
        assert_eq!(
            (o.code, o.result),
            (0, RunResult::Success),
            "{}",
            o.headline
        );
        assert!(o.failed.is_empty(), "{:?}", o.failed);
        assert_eq!(o.deployed, ["alpha", "beta", "gamma"]);
        assert_eq!(
            o.headline,
            "deployed `alpha`, `beta`, `gamma`: every rollout succeeded or was superseded (`beta`: a newer deployment, not this run's, is primary)"
        );
    }

    #[test]
    fn cancelled_work_is_cancelled_not_failed() {
        let p = three();
        let mut run = RunReport::default();
        run.rollouts
            .insert("alpha".into(), verdict(VerdictKind::Cancelled));
        let o = decide(Verb::Deploy, &p, &run, Some("SIGINT"));
        assert_eq!((o.code, o.result), (130, RunResult::Cancelled));
        assert!(o.failed.is_empty(), "{:?}", o.failed);
        assert!(
            o.headline.starts_with("cancelled by SIGINT"),
            "{}",
            o.headline
        );
        let o = decide(Verb::Deploy, &p, &run, Some("SIGTERM"));
        assert_eq!(o.code, 143);
    }

    #[test]
    fn a_report_that_could_not_be_written_fails_the_step_but_not_the_result() {
        let p = three();
        let mut run = RunReport::default();
        for n in ["alpha", "beta", "gamma"] {
            run.rollouts
                .insert(n.into(), verdict(VerdictKind::Succeeded));
        }
        let errors = ["the job summary could not be written".to_string()];
        let o = outcome(&Facts {
            verb: Verb::Deploy,
            plan: &p,
            run: &run,
            cancelled: None,
            report_errors: &errors,
        });
        assert_eq!((o.code, o.result), (1, RunResult::Success));
        assert!(o
            .headline
            .ends_with("; the report could not be written in full"));
    }

    #[test]
    fn a_plan_fails_on_invalid_and_unknown_consumers() {
        let p = plan(vec![
            consumer("bad", Status::Invalid, &[]),
            consumer("lost", Status::Unknown, &[]),
        ]);
        let o = decide(Verb::Plan, &p, &RunReport::default(), None);
        assert_eq!((o.code, o.result), (1, RunResult::Failure));
        assert_eq!(
            o.headline,
            "1 consumer is invalid: `bad`; 1 consumer could not be looked up: `lost`"
        );
        assert!(o.failed.is_empty(), "a plan fails nobody's apply");
    }
}
