//! Check runs: one for the fleet, `cdc-deploy / <environment>`, which always reports the whole
//! plan (the check a branch protection rule requires), and one per consumer with something to
//! do or something wrong, `cdc-deploy / <environment> / <consumer>`: opened `in_progress` when a
//! deploy starts the consumer's work, completed with `success`, `failure`, `neutral` (held) or
//! `cancelled`, with a markdown summary of that consumer's result and its findings as
//! annotations on the files they are about (at most 50 per request, the rest in further
//! updates). A plan completes each check at once with what a deploy would do. A consumer with
//! nothing to do gets no check run of its own: the requests a run makes grow with the change, not
//! with the fleet (GitHub allows a repository's job token 1,000 requests an hour).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::md::{code, fenced, message, text, truncate};
use super::now;
use crate::apply::rollout::{LogTail, VerdictKind};
use crate::apply::{ImageError, ImageOutcome, RunReport};
use crate::clients::github::{GitHub, GithubError};
use crate::diagnostics::Severity;
use crate::plan::{ConsumerPlan, Plan, Status, Step};

/// GitHub's longest check run summary, in bytes.
pub const SUMMARY_LIMIT: usize = 65_535;
/// Annotations GitHub takes per request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Check runs created or updated at the same time.
const CONCURRENCY: usize = 4;

/// The check run's name for a consumer.
pub fn name(environment: &str, consumer: &str) -> String {
    format!("cdc-deploy / {environment} / {consumer}")
}

/// The fleet's check run's name: the one to require in a branch protection rule.
pub fn fleet_name(environment: &str) -> String {
    format!("cdc-deploy / {environment}")
}

/// The fleet's check run's `external_id`.
fn fleet_external_id(environment: &str) -> String {
    format!("cdc-deploy/{environment}")
}

/// The key of the fleet's check in the maps of check ids (no consumer name is empty).
pub const FLEET: &str = "";

/// Whether `c` gets a check run of its own: it is new, changed, removed, invalid, unknown or
/// held, has work, or failed in the run (`failed`: the run's outcome counts it as failed).
pub fn needs_own_check(c: &ConsumerPlan, run: Option<&RunReport>, failed: bool) -> bool {
    let image_failed = run
        .and_then(|r| r.images.get(&c.name))
        .is_some_and(|i| i.outcome == ImageOutcome::Failed);
    let rollout_failed = run
        .and_then(|r| r.rollouts.get(&c.name))
        .is_some_and(|v| !v.kind.is_success());
    c.status != Status::Unchanged || has_work(c) || failed || image_failed || rollout_failed
}

/// What one consumer's check run says.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckContent {
    pub consumer: String,
    /// `success`, `failure`, `neutral` or `cancelled`.
    pub conclusion: &'static str,
    pub title: String,
    pub summary: String,
    pub annotations: Vec<Value>,
}

/// Whether the consumer has work in a deploy (its check opens when the deploy starts).
pub fn has_work(c: &ConsumerPlan) -> bool {
    !c.steps.is_empty() || matches!(c.status, Status::Removed)
}

/// The check of `c` after a plan (`run` is `None`) or a deploy. Pure.
pub fn content(c: &ConsumerPlan, run: Option<&RunReport>, cancelled: Option<&str>) -> CheckContent {
    content_with(c, run, cancelled, false)
}

/// [`content_with`], its summary opening with the run's `headline`; `failed` is why the run's
/// outcome counts this consumer as failed, when it does (an apply whose outcome could not be
/// read back, say), which no other part of the check contradicts.
pub fn content_for(
    c: &ConsumerPlan,
    run: Option<&RunReport>,
    cancelled: Option<&str>,
    terraform_failed: bool,
    headline: &str,
    failed: Option<&str>,
) -> CheckContent {
    let mut content = content_with(c, run, cancelled, terraform_failed);
    if let (Some(why), "success" | "neutral") = (failed, content.conclusion) {
        content.conclusion = "failure";
        content.title = truncate(why, 200);
        content.summary = format!("- {}\n\n{}", message(why), content.summary);
    }
    if !headline.is_empty() {
        let line = format!(
            "{}

",
            message(&truncate(headline, 1_000))
        );
        if line.len() + content.summary.len() <= SUMMARY_LIMIT {
            content.summary.insert_str(0, &line);
        }
    }
    content
}

/// [`content`] after a plan whose Terraform stage failed (`terraform_failed`): no consumer with
/// work can be said to be fine.
pub fn content_with(
    c: &ConsumerPlan,
    run: Option<&RunReport>,
    cancelled: Option<&str>,
    terraform_failed: bool,
) -> CheckContent {
    let image = run.and_then(|r| r.images.get(&c.name));
    let rollout = run.and_then(|r| r.rollouts.get(&c.name));
    let infra_failed = run
        .and_then(|r| r.infra.as_ref())
        .is_some_and(|i| i.error.is_some() && !i.applied)
        && c.steps.contains(&Step::Apply);
    let failed_image = image.is_some_and(|i| i.outcome == ImageOutcome::Failed);
    let failed_rollout = rollout.is_some_and(|v| !v.kind.is_success());
    let invalid = matches!(c.status, Status::Invalid | Status::Unknown);
    // A cancelled run: the work that was stopped, or never reached, is cancelled.
    let cancelled_work = match (cancelled, run) {
        (Some(_), None) => has_work(c),
        (Some(_), Some(r)) => {
            image.is_some_and(|i| matches!(i.error, Some(ImageError::Cancelled(_))))
                || rollout.is_some_and(|v| v.kind == VerdictKind::Cancelled)
                || (c.steps.contains(&Step::Apply) && !r.infra.as_ref().is_some_and(|i| i.applied))
        }
        _ => false,
    };
    let (conclusion, title) = if let Some(why) = cancelled.filter(|_| cancelled_work) {
        ("cancelled", format!("cancelled by {why}"))
    } else if invalid {
        (
            "failure",
            format!(
                "{}: {}",
                c.status.as_str(),
                c.reasons.first().map_or("", String::as_str)
            ),
        )
    } else if failed_image {
        let stage = image
            .and_then(|i| i.error.as_ref())
            .map_or("failed", ImageError::stage);
        ("failure", stage.to_string())
    } else if infra_failed || (run.is_none() && terraform_failed && has_work(c)) {
        ("failure", "the Terraform stage failed".to_string())
    } else if let Some(v) = rollout.filter(|_| failed_rollout) {
        let restored = run
            .and_then(|r| r.restores.get(&c.name))
            .is_some_and(|r| r.succeeded());
        (
            "failure",
            if restored {
                format!(
                    "rollout {}; back on its previous image and held there",
                    v.kind.as_str()
                )
            } else {
                format!("rollout {}", v.kind.as_str())
            },
        )
    } else if c.status == Status::Held {
        (
            "neutral",
            c.reasons.first().cloned().unwrap_or_else(|| "held".into()),
        )
    } else if !has_work(c) {
        ("neutral", "nothing to do".to_string())
    } else if run.is_none() {
        ("success", format!("would {}", steps(c)))
    } else {
        let done = match rollout {
            Some(v) => format!("deployed: rollout {}", v.kind.as_str()),
            None => format!("done: {}", steps(c)),
        };
        ("success", done)
    };
    CheckContent {
        consumer: c.name.clone(),
        conclusion,
        title: truncate(&title, 200),
        summary: summary(c, run),
        annotations: annotations(c, image.and_then(|i| i.error.as_ref())),
    }
}

fn steps(c: &ConsumerPlan) -> String {
    if c.steps.is_empty() {
        return c.status.as_str().to_string();
    }
    c.steps
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(c: &ConsumerPlan, run: Option<&RunReport>) -> String {
    let mut out = format!("**{}** · {}\n\n", text(&c.name), c.status.as_str());
    for r in &c.reasons {
        out.push_str(&format!("- {}\n", message(r)));
    }
    if !c.steps.is_empty() {
        out.push_str(&format!("- steps: {}\n", text(&steps(c))));
    }
    if let Some(fp) = &c.fingerprint {
        out.push_str(&format!("- fingerprint: {}\n", code(fp.short())));
    }
    if let Some(t) = &c.infra {
        out.push_str(&format!(
            "- Terraform: {} to create, {} to update, {} to replace, {} to destroy\n",
            t.create, t.update, t.replace, t.destroy
        ));
    }
    if let Some(run) = run {
        if let Some(i) = run.images.get(&c.name) {
            if let Some(image) = &i.image {
                out.push_str(&format!(
                    "- image: {} ({})\n",
                    code(image),
                    i.outcome.as_str()
                ));
            }
            if let Some(e) = &i.error {
                out.push_str(&format!("- {}: {}\n", e.stage(), message(&e.to_string())));
                if !e.tail().is_empty() {
                    out.push_str(&format!("\n{}\n", fenced(&e.tail().join("\n"))));
                }
            }
        }
        if let Some(s) = run.scans.get(&c.name) {
            out.push_str(&format!("- scan: {}\n", message(&s.headline())));
        }
        if let Some(v) = run.rollouts.get(&c.name) {
            out.push_str(&format!(
                "- rollout: **{}** after {:.0} s, {}/{} running: {}\n",
                v.kind.as_str(),
                v.duration.as_secs_f64(),
                v.running,
                v.desired,
                message(&v.reason)
            ));
            if !v.events.is_empty() {
                out.push_str(&format!(
                    "\nThe service's events since its deployment started:\n\n{}\n",
                    fenced(&v.events.join("\n"))
                ));
            }
            for t in &v.stopped_tasks {
                out.push_str(&format!("\n- {}\n", message(&t.summary())));
                for (container, tail) in &t.logs {
                    if let LogTail::Lines { stream, lines, .. } = tail {
                        out.push_str(&format!(
                            "\nThe last {} lines of {} ({}):\n\n{}\n",
                            lines.len(),
                            code(stream),
                            code(container),
                            fenced(&lines.join("\n"))
                        ));
                    }
                }
            }
        }
    }
    for d in &c.diagnostics {
        out.push_str(&format!("- {}\n", message(&d.to_string())));
    }
    cut_to_limit(out)
}

/// `out` within GitHub's summary limit (bytes): cut at a line, with whatever fence and
/// `<details>` were open closed, and a note that the rest is in the job summary.
fn cut_to_limit(out: String) -> String {
    if out.len() <= SUMMARY_LIMIT {
        return out;
    }
    let note = "\n\nThe rest did not fit: see the job summary.\n";
    let mut at = SUMMARY_LIMIT - note.len() - 200;
    while !out.is_char_boundary(at) {
        at -= 1;
    }
    let mut cut = out[..at].to_string();
    if let Some(i) = cut.rfind('\n') {
        cut.truncate(i);
    }
    // The fence that is open, if any: the one a later line of its length would close.
    let mut open: Option<usize> = None;
    let mut details = 0usize;
    for line in cut.lines() {
        let t = line.trim_start();
        let ticks = t.chars().take_while(|c| *c == '`').count();
        match open {
            None if ticks >= 3 => open = Some(ticks),
            Some(n) if ticks >= n && t.trim_end().len() == ticks => open = None,
            None => {
                details += t.matches("<details").count();
                details = details.saturating_sub(t.matches("</details>").count());
            }
            _ => {}
        }
    }
    if let Some(n) = open {
        cut.push('\n');
        cut.push_str(&"`".repeat(n));
    }
    for _ in 0..details.min(16) {
        cut.push_str("\n\n</details>");
    }
    cut.push_str(note);
    cut
}

fn annotations(c: &ConsumerPlan, image_error: Option<&ImageError>) -> Vec<Value> {
    let mut out: Vec<Value> = c
        .diagnostics
        .iter()
        .map(|d| {
            let line = d.line.unwrap_or(1).max(1);
            let mut message = d.message.clone();
            if let Some(h) = &d.help {
                message.push_str(&format!("\nhelp: {h}"));
            }
            json!({
                "path": d.file,
                "start_line": line,
                "end_line": line,
                "annotation_level": match d.severity {
                    Severity::Error => "failure",
                    Severity::Warning => "warning",
                },
                "message": truncate_bytes(&message, 60_000),
                "title": truncate(&format!("{}: configuration", c.name), 250),
            })
        })
        .collect();
    if let Some(ImageError::Build { file, failure }) = image_error {
        let line = failure.line.unwrap_or(1).max(1);
        out.push(json!({
            "path": file,
            "start_line": line,
            "end_line": line,
            "annotation_level": "failure",
            "message": truncate_bytes(&failure.to_string(), 60_000),
            "title": truncate(&format!("{}: the image build failed", c.name), 250),
        }));
    }
    out
}

/// `s` within `max` bytes, cut on a character boundary.
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut at = max - 3;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}…", &s[..at])
}

/// Open the check of each consumer with work, `in_progress`, as a deploy starts. Returns their
/// ids by consumer; what GitHub refused is in the error list (the first is enough to warn).
pub async fn open(
    gh: &dyn GitHub,
    plan: &Plan,
    environment: &str,
    head_sha: &str,
    details_url: Option<&str>,
) -> (BTreeMap<String, u64>, Vec<GithubError>) {
    use futures_util::StreamExt as _;
    let started = now();
    let mut fleet = json!({
        "name": fleet_name(environment),
        "head_sha": head_sha,
        "status": "in_progress",
        "started_at": started,
        "external_id": fleet_external_id(environment),
        "output": {
            "title": format!("{} of {} consumers in progress", plan.consumers.iter().filter(|c| has_work(c)).count(), plan.consumers.len()),
            "summary": "The deploy is in progress; this check completes with the whole report.",
        },
    });
    if let Some(u) = details_url {
        fleet["details_url"] = u.into();
    }
    let fleet = gh.create_check_run(&fleet).await;
    let results: Vec<(String, Result<u64, GithubError>)> =
        futures_util::stream::iter(plan.consumers.iter().filter(|c| has_work(c)).map(|c| {
            let mut body = json!({
                "name": name(environment, &c.name),
                "head_sha": head_sha,
                "status": "in_progress",
                "started_at": started,
                "external_id": c.name,
                "output": {
                    "title": format!("{}: in progress", steps(c)),
                    "summary": summary(c, None),
                },
            });
            if let Some(u) = details_url {
                body["details_url"] = u.into();
            }
            async move { (c.name.clone(), gh.create_check_run(&body).await) }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut ids = BTreeMap::new();
    let mut errors = Vec::new();
    for (n, r) in std::iter::once((FLEET.to_string(), fleet)).chain(results) {
        match r {
            Ok(id) => {
                ids.insert(n, id);
            }
            Err(e) => errors.push(e),
        }
    }
    (ids, errors)
}

/// Complete every consumer's check: the open ones updated, the others created completed.
/// Annotations go 50 per request.
pub async fn complete(
    gh: &dyn GitHub,
    contents: &[CheckContent],
    open: &BTreeMap<String, u64>,
    environment: &str,
    head_sha: &str,
    details_url: Option<&str>,
) -> Vec<GithubError> {
    use futures_util::StreamExt as _;
    let completed = now();
    let completed = completed.as_str();
    let results: Vec<Result<(), GithubError>> =
        futures_util::stream::iter(contents.iter().map(|c| async move {
            let mut chunks = c.annotations.chunks(ANNOTATIONS_PER_REQUEST);
            let first = chunks.next().unwrap_or_default();
            let output = |annotations: &[Value]| {
                json!({
                    "title": c.title,
                    "summary": c.summary,
                    "annotations": annotations,
                })
            };
            let id = match open.get(&c.consumer) {
                Some(id) => {
                    gh.update_check_run(
                        *id,
                        &json!({
                            "status": "completed",
                            "conclusion": c.conclusion,
                            "completed_at": completed,
                            "output": output(first),
                        }),
                    )
                    .await?;
                    *id
                }
                None => {
                        let check_name = if c.consumer == FLEET {
                            fleet_name(environment)
                        } else {
                            name(environment, &c.consumer)
                        };
                    let mut body = json!({
                        "name": check_name,
                        "head_sha": head_sha,
                        "status": "completed",
                        "conclusion": c.conclusion,
                        "completed_at": completed,
                        "external_id": if c.consumer == FLEET { fleet_external_id(environment) } else { c.consumer.clone() },
                        "output": output(first),
                    });
                    if let Some(u) = details_url {
                        body["details_url"] = u.into();
                    }
                    gh.create_check_run(&body).await?
                }
            };
            for more in chunks {
                gh.update_check_run(id, &json!({ "output": output(more) }))
                    .await?;
            }
            Ok(())
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().filter_map(Result::err).collect()
}

/// The fleet's check: the run's result as its conclusion (`success` and `nothing-to-deploy`
/// are `success`), its `headline` as the title, the whole report (`report`, the pull request
/// comment's markdown) as the summary, cut to GitHub's limit.
pub fn fleet_content(result: &str, headline: &str, report: &str) -> CheckContent {
    let conclusion = match result {
        "success" | "nothing-to-deploy" => "success",
        "cancelled" => "cancelled",
        _ => "failure",
    };
    // The sticky comment's marker has no business in a check.
    let report = match report.split_once('\n') {
        Some((first, rest)) if first.starts_with("<!-- cdc-deploy:") => rest.trim_start(),
        _ => report,
    };
    let summary = cut_to_limit(report.to_string());
    CheckContent {
        consumer: FLEET.to_string(),
        conclusion,
        title: truncate(headline, 200),
        summary,
        annotations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::config::ConsumerSettings;

    fn consumer(name: &str, status: Status, steps: Vec<Step>) -> ConsumerPlan {
        ConsumerPlan {
            resource_name: Some(format!("shop-{name}")),
            reasons: vec!["its build context changed".into()],
            steps,
            context_files: 1,
            context_bytes: 1,
            settings: Some(ConsumerSettings::default()),
            ..ConsumerPlan::new(name, status)
        }
    }

    #[test]
    fn the_fleet_check_carries_the_result_and_the_whole_report_within_githubs_limit() {
        let report = "<!-- cdc-deploy:report project=shop environment=prod plan=1 -->\n## cdc-deploy\n\nbody\n";
        let c = fleet_content("success", "deployed 2 consumers", report);
        assert_eq!((c.consumer.as_str(), c.conclusion), (FLEET, "success"));
        assert_eq!(c.title, "deployed 2 consumers");
        assert_eq!(
            c.summary, "## cdc-deploy\n\nbody\n",
            "without the comment's marker"
        );
        assert_eq!(
            fleet_content("nothing-to-deploy", "h", "r").conclusion,
            "success"
        );
        assert_eq!(fleet_content("failure", "h", "r").conclusion, "failure");
        assert_eq!(fleet_content("cancelled", "h", "r").conclusion, "cancelled");
        let huge = format!(
            "<details><summary>x</summary>\n\n```\n{}\n",
            "é\n".repeat(SUMMARY_LIMIT / 2)
        );
        let cut = fleet_content("success", "h", &huge);
        assert!(cut.summary.len() <= SUMMARY_LIMIT);
        assert!(cut.summary.ends_with("see the job summary.\n"));
        assert!(
            cut.summary.contains("\n```\n\n</details>"),
            "the fence and the details closed"
        );
    }

    #[test]
    fn only_a_consumer_with_something_to_do_or_wrong_gets_a_check_of_its_own() {
        let quiet = consumer("quiet", Status::Unchanged, vec![]);
        assert!(!needs_own_check(&quiet, None, false));
        assert!(needs_own_check(&quiet, None, true), "failed in the run");
        for status in [
            Status::New,
            Status::Changed,
            Status::Removed,
            Status::Invalid,
            Status::Unknown,
            Status::Held,
        ] {
            assert!(
                needs_own_check(&consumer("x", status, vec![]), None, false),
                "{status:?}"
            );
        }
        assert!(needs_own_check(
            &consumer("x", Status::Unchanged, vec![Step::Apply]),
            None,
            false
        ));
    }

    #[test]
    fn conclusions_follow_what_happened() {
        let changed = consumer(
            "orders",
            Status::Changed,
            vec![Step::Build, Step::Push, Step::Apply],
        );
        let unchanged = consumer("audit", Status::Unchanged, vec![]);
        let planned = content(&changed, None, None);
        assert_eq!(planned.conclusion, "success");
        assert_eq!(planned.title, "would build, push, terraform apply");
        assert_eq!(content(&unchanged, None, None).conclusion, "neutral");
        let invalid = consumer("bad", Status::Invalid, vec![]);
        assert_eq!(content(&invalid, None, None).conclusion, "failure");
        // Cancelled before Terraform applied: its check is cancelled, not failed or passed.
        let run = RunReport::default();
        let c = content(&changed, Some(&run), Some("SIGTERM"));
        assert_eq!(
            (c.conclusion, c.title.as_str()),
            ("cancelled", "cancelled by SIGTERM")
        );
        assert_eq!(
            content(&unchanged, Some(&run), Some("SIGTERM")).conclusion,
            "neutral"
        );
        // A plan whose Terraform failed, or that was cancelled, passes nothing with work.
        assert_eq!(
            content_with(&changed, None, None, true).conclusion,
            "failure"
        );
        assert_eq!(
            content(&changed, None, Some("SIGINT")).conclusion,
            "cancelled"
        );
    }

    #[test]
    fn a_long_summary_is_cut_within_the_limit_with_its_fence_closed() {
        let mut c = consumer("orders", Status::Changed, vec![Step::Build]);
        c.reasons = (0..4_000)
            .map(|i| format!("reason {i} ```` </details> @org/team"))
            .collect();
        c.reasons.push("é".repeat(40_000));
        let s = content(&c, None, None).summary;
        assert!(s.len() <= SUMMARY_LIMIT, "{} bytes", s.len());
        assert!(
            s.ends_with("see the job summary.\n"),
            "{}",
            &s[s.len() - 80..]
        );
        assert!(!s.contains("@org"), "mentions are inert");
    }
}
