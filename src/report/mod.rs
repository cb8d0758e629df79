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

use crate::consumers::config::ConsumerSettings;
use crate::plan::ConsumerPlan;

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

/// `sha256:` and the first 12 hex digits, for tables.
pub fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |i| i + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}
