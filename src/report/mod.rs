//! Reporting: the plan, and after a deploy what happened to each consumer, rendered for people:
//! a terminal [`table`], and [`markdown`] for the pull request comment and the job summary, each
//! within GitHub's size limit for any fleet.
//!
//! Pure rendering: takes values, returns strings. Where the text goes is the caller's business.
//! Text from outside (build output, server messages, file names) reaches markdown only through
//! [`md`]'s escaping.

pub mod checks;
pub mod markdown;
pub mod md;
pub mod publish;
pub mod table;

use crate::apply::rollout::VerdictKind;
use crate::apply::{ImageOutcome, RunReport};
use crate::consumers::config::ConsumerSettings;
use crate::plan::{ConsumerPlan, Status, Step};

/// What the report is about, beyond the plan itself.
#[derive(Clone, Debug, Default)]
pub struct ReportHeader {
    pub project: String,
    pub environment: String,
    /// `plan` or `deploy`.
    pub verb: String,
    /// Link to the workflow run, when running under Actions.
    pub run_url: Option<String>,
    /// The signal that cancelled the run (`SIGTERM`), when one did.
    pub cancelled: Option<String>,
    /// [`crate::plan::Plan::digest`] of the plan shown, recorded in the marker so that a later
    /// deploy can tell whether it applied what was reviewed.
    pub plan_digest: Option<String>,
    /// The run's outcome in one line, which the report opens with (the same the exit code comes
    /// from).
    pub headline: String,
    /// Whether the outcome is a failure: the headline is shown as one.
    pub failed: bool,
    /// How many AWS calls the SDK had to retry (throttled, or a passing error), when any:
    /// [`crate::clients::aws_retries::line`].
    pub aws_retried: Option<String>,
}

impl ReportHeader {
    /// The warning a cancelled run's report opens with.
    pub fn cancelled_note(&self) -> Option<String> {
        self.cancelled.as_ref().map(|why| {
            format!(
                "> [!WARNING]\n> The run was cancelled by {why}: what was in progress is marked cancelled, and what had not started did not run. A Terraform command that was running was asked to stop once and waited for; the Terraform section says how it ended.\n\n"
            )
        })
    }
}

/// The hidden first line that lets a later run find and update its own comment.
/// Now, in UTC as GitHub and the applied entries write times: `2026-12-04T21:30:00Z`.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

pub fn comment_marker(h: &ReportHeader) -> String {
    match &h.plan_digest {
        Some(d) => format!(
            "<!-- cdc-deploy:report project={} environment={} plan={d} -->",
            h.project, h.environment
        ),
        None => format!(
            "<!-- cdc-deploy:report project={} environment={} -->",
            h.project, h.environment
        ),
    }
}

fn vcpu(cpu: u32) -> String {
    let v = f64::from(cpu) / 1024.0;
    if v.fract() == 0.0 {
        format!("{v:.0} vCPU")
    } else {
        format!("{v} vCPU")
    }
}

fn memory(mib: u32) -> String {
    if mib % 1024 == 0 {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

/// `1.2 MiB`, `340 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn task_size(s: &ConsumerSettings) -> String {
    format!("{} / {}", vcpu(s.cpu), memory(s.memory))
}

fn tasks(s: &ConsumerSettings) -> String {
    match &s.autoscaling {
        Some(a) => format!("{}–{} (autoscaled)", a.min, a.max),
        None => s.desired_count.to_string(),
    }
}

fn steps(c: &ConsumerPlan) -> String {
    if c.steps.is_empty() {
        "—".into()
    } else {
        c.steps
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An image reference's digest, short (`sha256:0123456789ab`); the reference when it pins none.
pub fn short_image(image: &str) -> &str {
    crate::reference::digest_of(image).map_or(image, short_digest)
}

/// `sha256:` and the first 12 hex digits, for tables.
pub fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |i| i + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}

/// What is true of `c`, in a few lines: before a run (`run` is `None`) the plan's reasons; after
/// one, what the apply stages did for it, then what the plan said that still holds (a reason
/// about what the registry held is replaced by what the image stage made of it).
pub fn story(c: &ConsumerPlan, run: Option<&RunReport>) -> Vec<String> {
    let Some(run) = run else {
        return c.reasons.clone();
    };
    let mut lines = Vec::new();
    if let Some(i) = run.images.get(&c.name) {
        let created = c.has(Step::CreateRepository) && i.outcome != ImageOutcome::Failed;
        if created {
            lines.push("its repository was created".to_string());
        }
        if c.has(Step::ReconcileRepository) && i.outcome != ImageOutcome::Failed {
            lines.push("its repository's settings were put back in line".to_string());
        }
        match (i.outcome, &i.digest) {
            (ImageOutcome::Built, Some(d)) => lines.push(format!(
                "its image was built and pushed (`{}`)",
                short_digest(d)
            )),
            (ImageOutcome::Built, None) => lines.push("its image was built and pushed".into()),
            (ImageOutcome::Reused, _) if !matches!(c.status, Status::Unchanged | Status::Held) => {
                lines.push("its image was already in the registry: nothing was built".into())
            }
            (ImageOutcome::Failed, _) => {
                if let Some(e) = &i.error {
                    lines.push(format!("{}: {e}", e.stage()));
                }
            }
            _ => {}
        }
    }
    lines.extend(
        c.reasons
            .iter()
            .filter(|r| !crate::plan::is_about_the_registry(r))
            .cloned(),
    );
    if let Some(infra) = &run.infra {
        if c.has(Step::Apply) {
            match (&infra.error, infra.applied, &infra.after) {
                (_, true, Some(_)) => lines.push(match c.infra {
                    Some(t) => format!("Terraform applied its changes ({t})"),
                    None => "Terraform applied its changes".into(),
                }),
                (Some(_), true, None) => lines
                    .push("Terraform applied, but what it applied could not be read back".into()),
                (Some(_), false, _) => lines.push("nothing was applied".into()),
                _ => {}
            }
        }
    }
    if let Some(v) = run.rollouts.get(&c.name) {
        lines.push(match v.kind {
            VerdictKind::Succeeded => format!(
                "its rollout succeeded in {:.0} s ({}/{} tasks)",
                v.duration.as_secs_f64(),
                v.running,
                v.desired
            ),
            k => format!("its rollout ended {}: {}", k.as_str(), v.reason),
        });
    }
    if let Some(r) = run.restores.get(&c.name) {
        lines.push(restore_line(&c.name, r));
    }
    lines
}

/// What became of a consumer put back on its previous entry.
pub fn restore_line(name: &str, r: &crate::apply::Restore) -> String {
    match (&r.error, &r.verdict) {
        (Some(e), _) => format!("it could not be put back on its previous image: {e}"),
        (None, Some(v)) if !v.kind.is_success() => format!(
            "its previous entry was applied again, but that rollout ended {}: {}",
            v.kind.as_str(),
            v.reason
        ),
        (None, _) if r.was_new() && r.remembered => format!(
            "it was new, so there is no earlier image to go back to: it is held on the one that failed until its folder changes, or a deploy names it with `consumers: {name}`"
        ),
        (None, _) if !r.remembered => format!(
            "it is back on its previous image `{}` (restored), but the root module cannot remember the hold: the next deploy rolls out the failed image again",
            short_image(&r.image)
        ),
        (None, _) => format!(
            "it is back on its previous image `{}` (restored) and held there until its folder changes, or a deploy names it with `consumers: {name}`",
            short_image(&r.image)
        ),
    }
}

/// The table's cell of what a plan does for `c`, short: the settings that change, the image to
/// build, why it is held.
pub fn change_cell(c: &ConsumerPlan) -> String {
    let mut parts: Vec<String> = Vec::new();
    match c.status {
        Status::Held => {
            if let Some(h) = &c.hold {
                return format!(
                    "held since the {} of `{}` on {}",
                    h.verdict_noun(),
                    h.what(),
                    h.day()
                );
            }
            return "held".into();
        }
        Status::Removed => return "folder gone: destroyed".into(),
        Status::Invalid => return "invalid: see below".into(),
        Status::Unknown => return "look-up failed".into(),
        _ => {}
    }
    if c.has(Step::CreateRepository) {
        parts.push("new repository".into());
    }
    if c.has(Step::Build) {
        parts.push(match &c.fingerprint {
            Some(f) => format!("build `{}`", f.short()),
            None => "build".into(),
        });
    }
    if !c.config_changes.is_empty() {
        let shown: Vec<&str> = c
            .config_changes
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        let more = c.config_changes.len().saturating_sub(3);
        parts.push(if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        });
    }
    if c.has(Step::ReconcileRepository) {
        parts.push("repository settings put back".into());
    }
    if c.status == Status::New && !c.has(Step::Build) {
        parts.push("not applied yet".into());
    }
    if parts.is_empty() && c.status == Status::Changed {
        parts.push("its resources".into());
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join("; ")
    }
}
