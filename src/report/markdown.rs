//! The markdown report: the pull request comment and the job summary, within GitHub's limits for
//! any number of consumers. A comment holds at most 65,536 characters and a job summary 1 MiB.
//! The full report (table, failures with their last build lines, per-consumer details) is used
//! when it fits; otherwise a compact one: failures and findings first, one short row per
//! consumer (those needing attention first), and a visible "N more" line where a list is cut,
//! pointing to where the rest is.

use std::fmt::Write as _;

use super::md::{code, fenced, html_message, message, text, truncate_message};
use super::table::{image_cell, summary_line};
use super::{bytes, change_cell, comment_marker, restore_line, story, task_size, ReportHeader};
use crate::apply::infra::vars::Kept;
use crate::apply::infra::InfraReport;
use crate::apply::rollout::LogTail;
use crate::apply::{ImageError, RunReport};
use crate::consumers::config::{Autoscaling, HealthCheck};
use crate::diagnostics::Diagnostic;
use crate::plan::terraform::ChangeKind;
use crate::plan::{ConsumerPlan, Plan, Status};

/// The longest body GitHub accepts for an issue comment, in characters.
pub const COMMENT_LIMIT: usize = 65_536;
/// The largest job summary GitHub shows for a step, in bytes.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;
/// Characters of one failure reason or finding in the compact report.
const COMPACT_REASON: usize = 300;

/// The pull request comment: at most [`COMMENT_LIMIT`] characters.
/// `infra` is the Terraform stage's report when it ran (after a deploy, `run`'s own).
pub fn comment(
    plan: &Plan,
    run: Option<&RunReport>,
    infra: Option<&InfraReport>,
    h: &ReportHeader,
) -> String {
    render(plan, run, infra, h, COMMENT_LIMIT, "see the job summary")
}

/// The job summary: the same report, with room for up to [`SUMMARY_LIMIT`] bytes.
pub fn summary(
    plan: &Plan,
    run: Option<&RunReport>,
    infra: Option<&InfraReport>,
    h: &ReportHeader,
) -> String {
    render(plan, run, infra, h, SUMMARY_LIMIT, "see the log")
}

fn render(
    plan: &Plan,
    run: Option<&RunReport>,
    infra: Option<&InfraReport>,
    h: &ReportHeader,
    limit: usize,
    elsewhere: &str,
) -> String {
    let infra = infra.or_else(|| run.and_then(|r| r.infra.as_ref()));
    let full = full(plan, run, infra, h);
    if full.len() <= limit {
        return full;
    }
    compact(plan, run, infra, h, limit, elsewhere)
}

/// The rollouts: each watched service's verdict, duration and reason. With `evidence` (the full
/// report), each rollout that did not succeed gets its events, stopped tasks and log tails in a
/// `<details>`; without, one line naming its newest stopped task's reason.
fn rollouts_section(run: &RunReport, evidence: bool) -> String {
    if run.rollouts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "### Rollouts\n\n| Consumer | Verdict | Duration | Tasks | Reason | Logs |\n|---|---|---|---|---|---|\n",
    );
    for (name, v) in &run.rollouts {
        let verdict = match v.kind {
            k if k.is_success() => k.as_str().to_string(),
            k => format!("**{}**", k.as_str()),
        };
        // The address is made of validated names and the region: nothing from outside.
        let logs = run
            .infra
            .as_ref()
            .and_then(|i| i.log_group_url(name))
            .map_or("—".to_string(), |u| format!("[log group]({u})"));
        let _ = writeln!(
            out,
            "| {} | {verdict} | {:.0} s | {}/{} | {} | {logs} |",
            code(name),
            v.duration.as_secs_f64(),
            v.running,
            v.desired,
            message(&truncate_message(&v.reason, COMPACT_REASON))
        );
    }
    out.push('\n');
    for (name, r) in &run.restores {
        let _ = writeln!(out, "- {}: {}", code(name), message(&restore_line(name, r)));
    }
    if !run.restores.is_empty() {
        out.push('\n');
    }
    let troubled = run.rollouts.iter().filter(|(_, v)| !v.kind.is_success());
    for (name, v) in troubled {
        if !evidence {
            if let Some(t) = v.stopped_tasks.first() {
                let _ = writeln!(
                    out,
                    "- {}: {}",
                    code(name),
                    message(&truncate_message(&t.summary(), COMPACT_REASON))
                );
            }
            continue;
        }
        if v.events.is_empty() && v.stopped_tasks.is_empty() && v.evidence_gaps.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code>: {}</summary>\n",
            html_message(name),
            html_message(&format!("why it {}", v.kind.as_str()))
        );
        if !v.events.is_empty() {
            let _ = writeln!(
                out,
                "The service's events since its deployment started:\n\n{}\n",
                fenced(&v.events.join("\n"))
            );
        }
        for t in &v.stopped_tasks {
            let _ = writeln!(out, "- {}", message(&t.summary()));
            for (container, tail) in &t.logs {
                match tail {
                    LogTail::Lines {
                        group,
                        stream,
                        lines,
                    } if lines.is_empty() => {
                        let _ = writeln!(
                            out,
                            "  - {}: its log {} in {} is empty",
                            code(container),
                            code(stream),
                            code(group)
                        );
                    }
                    LogTail::Lines {
                        group,
                        stream,
                        lines,
                    } => {
                        let _ = writeln!(
                            out,
                            "  - {}: the last {} lines of {} in {}:\n\n{}\n",
                            code(container),
                            lines.len(),
                            code(stream),
                            code(group),
                            indent(&fenced(&lines.join("\n")), "    ")
                        );
                    }
                    LogTail::Unavailable(why) => {
                        let _ = writeln!(
                            out,
                            "  - {}: no log lines: {}",
                            code(container),
                            message(why)
                        );
                    }
                }
            }
        }
        for gap in &v.evidence_gaps {
            let _ = writeln!(out, "- not gathered: {}", message(gap));
        }
        out.push_str("\n</details>\n\n");
    }
    out
}

/// ECR's scan of each pushed image: findings by severity, the serious ones in bold.
fn scans_section(run: &RunReport) -> String {
    if run.scans.is_empty() {
        return String::new();
    }
    let mut out = String::from("### Scan findings\n\n| Consumer | Findings |\n|---|---|\n");
    for (name, scan) in &run.scans {
        let headline = message(&truncate_message(&scan.headline(), COMPACT_REASON));
        let cell = if scan.is_serious() {
            format!("**{headline}**")
        } else {
            headline
        };
        let _ = writeln!(out, "| {} | {cell} |", code(name));
    }
    out.push('\n');
    out
}

/// Every line of `s` indented by `prefix` (a fenced block inside a list item); a lone `\r`
/// ends a line too.
fn indent(s: &str, prefix: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Terraform section: what it planned and did, what it stopped, which consumers kept their
/// running entry; with every resource change when `changes` (the full report).
pub fn terraform_section(infra: &InfraReport, changes: bool) -> String {
    let mut out = String::from("### Terraform\n\n");
    let mut facts = Vec::new();
    if let Some(v) = &infra.terraform_version {
        facts.push(format!("Terraform {}", text(v)));
    }
    if let Some(why) = &infra.not_run {
        facts.push(format!("not run: {}", text(why)));
    } else if let Some(p) = &infra.plan {
        facts.push(format!("plan: {}", p.totals()));
        let restarts = p.restarts();
        if !restarts.is_empty() {
            facts.push(format!(
                "restarts {} without a new revision",
                match restarts.len() {
                    1 => "1 consumer".to_string(),
                    n => format!("{n} consumers"),
                }
            ));
        }
        facts.push(
            if infra.applied {
                "applied"
            } else if infra.error.is_some() {
                "not applied"
            } else if infra.after.is_some() {
                "nothing to apply"
            } else {
                "plan only: nothing was applied"
            }
            .to_string(),
        );
    }
    facts.push(format!("{:.1} s", infra.duration.as_secs_f64()));
    let _ = writeln!(out, "{}\n", facts.join(" · "));
    if let Some(e) = &infra.error {
        let _ = writeln!(out, "**Failed:** {}\n", message(&e.to_string()));
        if let crate::apply::infra::InfraError::Terraform(t) = e {
            let d = t.diagnostics();
            if !d.is_empty() {
                let _ = writeln!(
                    out,
                    "<details><summary>Terraform's diagnostics</summary>\n\n{}\n</details>\n",
                    fenced(&d.join("\n\n"))
                );
            }
        }
    }
    if !infra.guarded.is_empty() && infra.error.is_none() {
        out.push_str(if infra.destroy_allowed {
            "Destroys allowed by `allow-destroy`:\n\n"
        } else {
            "**A deploy of this plan stops before apply** unless `allow-destroy: true`:\n\n"
        });
        for g in &infra.guarded {
            let _ = writeln!(
                out,
                "- {} ({}): {}",
                code(&g.address),
                g.kind.as_str(),
                message(&g.why)
            );
        }
        out.push('\n');
    }
    for (name, kept) in &infra.kept {
        match kept {
            Kept::Running { reason, image } => {
                let _ = writeln!(
                    out,
                    "- {} keeps its running entry ({}): {}",
                    code(name),
                    code(image),
                    message(reason)
                );
            }
            Kept::LeftOut { reason } => {
                let _ = writeln!(out, "- {} is left out: {}", code(name), message(reason));
            }
        }
    }
    if !infra.kept.is_empty() {
        out.push('\n');
    }
    for (name, image) in &infra.unbuilt {
        let _ = writeln!(
            out,
            "- {}: its image will be built by the deploy; the plan names it by its content tag {}",
            code(name),
            code(image)
        );
    }
    if !infra.unbuilt.is_empty() {
        out.push('\n');
    }
    if let (true, Some(p)) = (changes, &infra.plan) {
        if !p.changes.is_empty() {
            let _ = writeln!(
                out,
                "<details><summary>{} resource changes</summary>\n\n| Consumer | Resource | Change |\n|---|---|---|",
                p.changes.len()
            );
            for c in &p.changes {
                let kind = match c.kind {
                    ChangeKind::Destroy | ChangeKind::Replace => format!("**{}**", c.kind.as_str()),
                    k => k.as_str().to_string(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {kind} |",
                    c.consumer.as_deref().map_or("—".into(), code),
                    code(&c.address)
                );
            }
            out.push_str("\n</details>\n\n");
        }
    }
    if let (true, true, Some(after)) = (changes, infra.applied, &infra.after) {
        let _ = writeln!(
            out,
            "<details><summary>Applied: {} services</summary>\n\n| Consumer | Service | Task definition | Log group |\n|---|---|---|---|",
            after.len()
        );
        for (name, a) in after {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(name),
                code(&format!("{}/{}", a.cluster, a.service)),
                code(&a.task_definition),
                code(&a.log_group)
            );
        }
        out.push_str("\n</details>\n\n");
    }
    out
}

/// Markdown built against a size limit: room is kept for the closing lines.
struct Budget {
    out: String,
    limit: usize,
    reserve: usize,
}

impl Budget {
    /// Append `s` if it fits beside the reserve.
    fn fits(&mut self, s: &str) -> bool {
        if self.out.len() + s.len() + self.reserve <= self.limit {
            self.out.push_str(s);
            true
        } else {
            false
        }
    }

    /// Append what the reserve was kept for.
    fn force(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// Append `items` while they fit; then one line saying how many were left out.
    fn list(&mut self, items: impl ExactSizeIterator<Item = String>, what: &str, elsewhere: &str) {
        let total = items.len();
        for (i, item) in items.enumerate() {
            if !self.fits(&item) {
                self.force(&format!("\n**{} more {what}: {elsewhere}.**\n", total - i));
                return;
            }
        }
    }
}

/// The marker, the title, and a cancelled run's warning.
fn title(h: &ReportHeader) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", comment_marker(h));
    let _ = writeln!(
        out,
        "## cdc-deploy {}: `{}` → `{}`\n",
        h.verb, h.project, h.environment
    );
    if let Some(note) = h.cancelled_note() {
        out.push_str(&note);
    }
    out
}

/// The outcome as the report opens with it: a failure as a caution, so nobody reads past it.
fn outcome_line(h: &ReportHeader) -> String {
    if h.headline.is_empty() {
        return String::new();
    }
    let mut chars = h.headline.chars();
    let sentence: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    let headline = message(&truncate_message(&sentence, 2_000));
    if h.failed {
        format!("> [!CAUTION]\n> **{headline}**\n\n")
    } else {
        format!("**{headline}**\n\n")
    }
}

/// The title, the outcome, and the counts.
fn header(plan: &Plan, run: Option<&RunReport>, h: &ReportHeader) -> String {
    let mut out = title(h);
    out.push_str(&outcome_line(h));
    let _ = writeln!(out, "{}\n", text(&summary_line(plan, run)));
    if let Some(commit) = &plan.commit {
        let _ = writeln!(out, "Commit: `{commit}`\n");
    }
    out
}

/// The report of a rollback: which consumers went back to which image, the note that the next
/// deploy rolls forward again, Terraform's section and the rollouts. Within the job summary's
/// limit: the consumers named by a rollback are few, and a long Terraform section gives way to
/// its short form.
pub fn rollback(run: &RunReport, h: &ReportHeader) -> String {
    let mut out = title(h);
    out.push_str(&outcome_line(h));
    let infra = run.infra.as_ref();
    let rollbacks = infra.map(|i| &i.rollbacks).filter(|r| !r.is_empty());
    match rollbacks {
        Some(r) => {
            out.push_str("| Consumer | Ran | Back on | Found in |\n|---|---|---|---|\n");
            for (name, b) in r {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    code(name),
                    code(&b.from),
                    code(&b.to),
                    message(&b.source)
                );
            }
            let names: Vec<String> = r.keys().map(|n| code(n)).collect();
            let one = names.len() == 1;
            let _ = writeln!(
                out,
                "\n> [!IMPORTANT]\n> {} {} held on {} image: later deploys leave {} there until {} folder changes (a commit that fixes or reverts what broke), or until a deploy names {} with `consumers: {}`.\n",
                names.join(", "),
                if one { "is" } else { "are" },
                if one { "this" } else { "these" },
                if one { "it" } else { "them" },
                if one { "its" } else { "their" },
                if one { "it" } else { "them" },
                r.keys().cloned().collect::<Vec<_>>().join(", "),
            );
        }
        None => out.push_str("Nothing was rolled back.\n\n"),
    }
    if let Some(i) = infra {
        let full = terraform_section(i, true);
        if full.len() < SUMMARY_LIMIT / 2 {
            out.push_str(&full);
        } else {
            out.push_str(&terraform_section(i, false));
        }
    }
    let rollouts = rollouts_section(run, true);
    if out.len() + rollouts.len() + 1_024 <= SUMMARY_LIMIT {
        out.push_str(&rollouts);
    } else {
        out.push_str(&rollouts_section(run, false));
        out.push_str("The rollouts' evidence did not fit: see the log.\n\n");
    }
    out.push_str(&footer(h));
    out
}

fn footer(h: &ReportHeader) -> String {
    let mut out = String::new();
    if let Some(retried) = &h.aws_retried {
        let _ = writeln!(out, "{}\n", text(retried));
    }
    if let Some(url) = &h.run_url {
        let _ = writeln!(out, "[Workflow run]({url})");
    }
    out
}

fn location(d: &Diagnostic) -> String {
    match d.line {
        Some(l) => format!("{} line {l}:", code(&d.file)),
        None => format!("{}:", code(&d.file)),
    }
}

fn finding(name: Option<&str>, d: &Diagnostic, max: usize) -> String {
    let mut line = String::from("- ");
    if let Some(n) = name {
        let _ = write!(line, "{}: ", code(n));
    }
    let _ = write!(
        line,
        "{} {}",
        location(d),
        message(&truncate_message(&d.message, max))
    );
    if let Some(help) = &d.help {
        let _ = write!(line, " — {}", message(&truncate_message(help, max)));
    }
    line.push('\n');
    line
}

/// Every consumer that failed: at the image stage, or at its look-up when nothing was applied.
fn failures<'a>(plan: &'a Plan, run: Option<&'a RunReport>) -> Vec<(&'a str, Failure<'a>)> {
    match run {
        Some(run) => run
            .failures()
            .map(|(n, e)| (n, Failure::Image(e)))
            .collect(),
        None => plan
            .consumers
            .iter()
            .filter_map(|c| Some((c.name.as_str(), Failure::Lookup(c.lookup_failure.as_ref()?))))
            .collect(),
    }
}

enum Failure<'a> {
    Image(&'a ImageError),
    Lookup(&'a crate::plan::LookupFailure),
}

impl Failure<'_> {
    fn reason(&self) -> String {
        match self {
            Failure::Image(e) => e.to_string(),
            Failure::Lookup(e) => e.to_string(),
        }
    }

    fn tail(&self) -> &[String] {
        match self {
            Failure::Image(e) => e.tail(),
            Failure::Lookup(_) => &[],
        }
    }
}

fn invalid(plan: &Plan) -> impl Iterator<Item = &ConsumerPlan> {
    plan.consumers
        .iter()
        .filter(|c| c.status == Status::Invalid)
}

fn full(
    plan: &Plan,
    run: Option<&RunReport>,
    infra: Option<&InfraReport>,
    h: &ReportHeader,
) -> String {
    let mut out = header(plan, run, h);
    if plan.consumers.is_empty() {
        out.push_str(if plan.discovered {
            "No consumers were found.\n\n"
        } else {
            "Nothing was looked at: the run stopped before its consumers were discovered.\n\n"
        });
    } else {
        out.push_str(&main_table(plan, run));
    }
    if let Some(infra) = infra {
        out.push_str(&terraform_section(infra, true));
    }
    if let Some(run) = run {
        out.push_str(&rollouts_section(run, true));
        out.push_str(&scans_section(run));
    }
    let failed = failures(plan, run);
    if !failed.is_empty() {
        out.push_str(
            "### Failed\n\nThe other consumers went on; these need a fix and a new run:\n\n",
        );
        for (name, f) in failed {
            let _ = writeln!(out, "- {}: {}", code(name), message(&f.reason()));
            let tail = f.tail();
            if !tail.is_empty() {
                // Indented with the list item, so the block stays inside it.
                let block: String = fenced(&tail.join("\n"))
                    .lines()
                    .map(|l| format!("  {l}\n"))
                    .collect();
                let _ = writeln!(
                    out,
                    "\n  <details><summary>last {} lines of the build</summary>\n\n{block}\n  </details>\n",
                    tail.len(),
                );
            }
        }
        out.push('\n');
    }
    let invalid: Vec<&ConsumerPlan> = invalid(plan).collect();
    if !invalid.is_empty() {
        out.push_str("### Invalid consumers\n\nThese are left out of the deploy until fixed:\n\n");
        for c in invalid {
            for d in &c.diagnostics {
                out.push_str(&finding(Some(&c.name), d, usize::MAX));
            }
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        out.push_str("### Warnings\n\n");
        for d in &plan.warnings {
            out.push_str(&finding(None, d, usize::MAX));
        }
        out.push('\n');
    }
    if !plan.skipped.is_empty() {
        out.push_str("### Skipped folders\n\n");
        for s in &plan.skipped {
            let _ = writeln!(out, "- {}", message(&s.reason));
        }
        out.push('\n');
    }
    for c in plan.consumers.iter().filter(|c| c.settings.is_some()) {
        details(c, run, &mut out);
    }
    out.push_str(&footer(h));
    out
}

/// One row per consumer with what a reviewer decides on, in at most five short columns so that
/// it fits a pull request's width: before a deploy, what changes; after, what happened to its
/// image and its rollout. Sizes, platforms and fingerprints are in each consumer's details.
fn main_table(plan: &Plan, run: Option<&RunReport>) -> String {
    let tf_column = plan.consumers.iter().any(|c| c.infra.is_some());
    let rollout_column = run.is_some_and(|r| !r.rollouts.is_empty());
    let mut head = vec!["Consumer", "Status"];
    head.push(if run.is_some() { "Image" } else { "Change" });
    if tf_column {
        head.push("Terraform");
    }
    if rollout_column {
        head.push("Rollout");
    }
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for c in &plan.consumers {
        let status = match c.status {
            Status::Invalid | Status::Unknown => format!("**{}**", c.status_label()),
            _ => c.status_label().to_string(),
        };
        let third = match run {
            None => message(&truncate_message(&change_cell(c), 120)),
            Some(_) if c.status == Status::Held => message(&truncate_message(&change_cell(c), 120)),
            Some(run) => match run.images.get(&c.name) {
                Some(r) if r.error.is_some() => format!(
                    "**failed**: {}",
                    r.error.as_ref().map_or("", ImageError::stage)
                ),
                Some(r) => text(&image_cell(r)),
                None => "—".into(),
            },
        };
        let _ = write!(out, "| {} | {status} | {third} |", code(&c.name));
        if tf_column {
            let _ = write!(
                out,
                " {} |",
                c.infra
                    .filter(|t| !t.is_empty())
                    .map_or("—".into(), |t| t.to_string())
            );
        }
        if let Some(run) = run.filter(|_| rollout_column) {
            let cell = run.rollouts.get(&c.name).map_or("—".into(), |v| {
                let verdict = match v.kind {
                    k if k.is_success() => k.as_str().to_string(),
                    k => format!("**{}**", k.as_str()),
                };
                let restored = match run.restores.get(&c.name) {
                    Some(r) if r.succeeded() => " → restored",
                    Some(_) => " → **not restored**",
                    None => "",
                };
                format!("{verdict}, {:.0} s{restored}", v.duration.as_secs_f64())
            });
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Consumers needing attention first, then the rest, each group by name.
fn attention_order<'a>(plan: &'a Plan, run: Option<&RunReport>) -> Vec<&'a ConsumerPlan> {
    let rank = |c: &ConsumerPlan| {
        let failed = run
            .and_then(|r| r.images.get(&c.name))
            .is_some_and(|r| r.error.is_some());
        match c.status {
            _ if failed => 0,
            Status::Unknown | Status::Invalid => 0,
            Status::New | Status::Changed | Status::Removed | Status::Held => 1,
            Status::Unchanged => 2,
        }
    };
    let mut order: Vec<&ConsumerPlan> = plan.consumers.iter().collect();
    order.sort_by_key(|c| (rank(c), c.name.clone()));
    order
}

fn compact(
    plan: &Plan,
    run: Option<&RunReport>,
    infra: Option<&InfraReport>,
    h: &ReportHeader,
    limit: usize,
    elsewhere: &str,
) -> String {
    let foot = format!(
        "\n_The full report did not fit GitHub's limit of {limit} characters: this one keeps every finding it can and one short row per consumer; {elsewhere} for the rest._\n\n{}",
        footer(h)
    );
    // Room for the footer and for one "N more" line per list (five at most).
    let mut b = Budget {
        out: String::new(),
        limit,
        reserve: foot.len() + 5 * 96,
    };
    b.force(&header(plan, run, h));
    if let Some(infra) = infra {
        let section = terraform_section(infra, false);
        if !b.fits(&section) {
            b.fits(&format!(
                "### Terraform\n\n{}\n\n",
                message(&truncate_message(
                    &infra
                        .error
                        .as_ref()
                        .map_or(String::new(), |e| e.to_string()),
                    COMPACT_REASON
                ))
            ));
        }
    }
    if let Some(run) = run {
        if !b.fits(&rollouts_section(run, true))
            && !b.fits(&rollouts_section(run, false))
            && !run.rollouts.is_empty()
            && b.fits("### Rollouts\n\n")
        {
            // One line each, the rollouts that did not succeed first.
            let mut verdicts: Vec<(&String, &crate::apply::rollout::Verdict)> =
                run.rollouts.iter().collect();
            verdicts.sort_by_key(|(_, v)| v.kind.is_success());
            let items = verdicts.iter().map(|(name, v)| {
                format!(
                    "- {}: **{}** after {:.0} s: {}\n",
                    code(name),
                    v.kind.as_str(),
                    v.duration.as_secs_f64(),
                    message(&truncate_message(&v.reason, COMPACT_REASON))
                )
            });
            b.list(items.collect::<Vec<_>>().into_iter(), "rollouts", elsewhere);
            b.fits("\n");
        }
        b.fits(&scans_section(run));
    }
    let failed = failures(plan, run);
    if !failed.is_empty() && b.fits("### Failed\n\n") {
        let items = failed.iter().map(|(name, f)| {
            format!(
                "- {}: {}\n",
                code(name),
                message(&truncate_message(&f.reason(), COMPACT_REASON))
            )
        });
        b.list(items.collect::<Vec<_>>().into_iter(), "failures", elsewhere);
        b.fits("\n");
    }
    let invalid: Vec<String> = invalid(plan)
        .flat_map(|c| {
            c.diagnostics
                .iter()
                .map(|d| finding(Some(&c.name), d, COMPACT_REASON))
        })
        .collect();
    if !invalid.is_empty() && b.fits("### Invalid consumers\n\n") {
        b.list(invalid.into_iter(), "findings", elsewhere);
        b.fits("\n");
    }
    if !plan.consumers.is_empty() && b.fits("| Consumer | Status | Image |\n|---|---|---|\n") {
        let rows: Vec<String> = attention_order(plan, run)
            .into_iter()
            .map(|c| {
                let image = run
                    .and_then(|r| r.images.get(&c.name))
                    .map_or("—".into(), |r| text(&image_cell(r)));
                format!("| {} | {} | {image} |\n", code(&c.name), c.status_label())
            })
            .collect();
        b.list(rows.into_iter(), "consumers", elsewhere);
        b.fits("\n");
    }
    let warnings: Vec<String> = plan
        .warnings
        .iter()
        .map(|d| finding(None, d, COMPACT_REASON))
        .chain(plan.skipped.iter().map(|s| {
            format!(
                "- {}\n",
                message(&truncate_message(&s.reason, COMPACT_REASON))
            )
        }))
        .collect();
    if !warnings.is_empty() && b.fits("### Warnings and skipped folders\n\n") {
        b.list(warnings.into_iter(), "warnings", elsewhere);
    }
    b.force(&foot);
    b.out
}

fn health(h: &HealthCheck) -> String {
    format!(
        "{} every {} s, timeout {} s, {} retries, start period {} s",
        code(&h.command.join(" ")),
        h.interval,
        h.timeout,
        h.retries,
        h.start_period
    )
}

fn scaling(a: &Autoscaling) -> String {
    let mut policies = Vec::new();
    if let Some(t) = a.cpu_target {
        policies.push(format!("CPU {t}%"));
    }
    if let Some(t) = a.memory_target {
        policies.push(format!("memory {t}%"));
    }
    if let Some(k) = &a.kafka_lag {
        policies.push(format!(
            "Kafka lag {} on {} for group {} (MSK cluster {})",
            k.target_lag,
            code(&k.topic),
            code(&k.consumer_group),
            code(&k.msk_cluster)
        ));
    }
    format!("{} to {} tasks on {}", a.min, a.max, policies.join(", "))
}

fn keys<V>(m: &std::collections::BTreeMap<String, V>) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.keys().map(|k| code(k)).collect::<Vec<_>>().join(", ")
    }
}

fn details(c: &ConsumerPlan, run: Option<&RunReport>, out: &mut String) {
    let Some(s) = &c.settings else { return };
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code>: {}</summary>\n",
        html_message(&c.name),
        html_message(&truncate_message(&story(c, run).join("; "), COMPACT_REASON))
    );
    if let Some(dir) = &c.display_dir {
        let _ = writeln!(
            out,
            "- Folder: {} ({} files, {})",
            code(dir),
            c.context_files,
            bytes(c.context_bytes)
        );
    }
    if let (Some(r), Some(f)) = (&c.resource_name, &c.fingerprint) {
        let _ = writeln!(out, "- Image: {} tagged {}", code(r), code(&f.tag()));
    }
    if let Some(applied) = &c.applied_image {
        let _ = writeln!(out, "- Applied before this run: {}", code(applied));
    }
    if let Some(pinned) = run
        .and_then(|r| r.images.get(&c.name))
        .and_then(|i| i.image.as_deref())
    {
        let _ = writeln!(out, "- Pinned: {}", code(pinned));
    }
    let mut build = format!("- Build: {} for {}", code(&s.build.dockerfile), s.platform);
    if let Some(t) = &s.build.target {
        let _ = write!(build, ", target {}", code(t));
    }
    if !s.build.args.is_empty() {
        let _ = write!(build, ", args {}", keys(&s.build.args));
    }
    let _ = writeln!(out, "{build}");
    let _ = writeln!(
        out,
        "- Task size: {}, stop timeout {} s",
        task_size(s),
        s.stop_timeout
    );
    let _ = writeln!(out, "- Environment: {}", keys(&s.environment));
    let secrets = if s.secrets.is_empty() {
        "none".to_string()
    } else {
        s.secrets
            .iter()
            .map(|(k, v)| format!("{} ({})", code(k), v.kind()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "- Secrets: {secrets}");
    let _ = writeln!(
        out,
        "- Health check: {}",
        s.health_check.as_ref().map_or(
            "none (ECS only checks that the process runs)".into(),
            health
        )
    );
    let _ = writeln!(
        out,
        "- Tasks: {}",
        s.autoscaling
            .as_ref()
            .map_or_else(|| s.desired_count.to_string(), scaling)
    );
    if s.single_writer {
        let _ = writeln!(
            out,
            "- Rollout: single writer, the old task stops before the new one starts (minimum healthy 0 %, maximum 100 %)"
        );
    }
    if let Some(m) = &s.msk {
        let mut access = format!("- MSK: {}", code(&m.cluster));
        if !m.read_topics.is_empty() {
            let topics: Vec<String> = m.read_topics.iter().map(|t| code(t)).collect();
            let _ = write!(access, ", reads {}", topics.join(", "));
        }
        if let Some(g) = &m.consumer_group {
            let _ = write!(access, " as {}", code(g));
        }
        if !m.write_topics.is_empty() {
            let topics: Vec<String> = m.write_topics.iter().map(|t| code(t)).collect();
            let _ = write!(access, ", writes {}", topics.join(", "));
        }
        let _ = writeln!(out, "{access}");
    }
    out.push_str("\n</details>\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::rollout::{TaskEvidence, Verdict, VerdictKind};
    use crate::clients::ecs::{StoppedContainer, StoppedTask};

    fn failed_run(lines: Vec<String>) -> RunReport {
        let task = StoppedTask {
            id: "a1b2".into(),
            task_definition: "td:2".into(),
            stopped_reason: Some("Essential container in task exited".into()),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_at: None,
            containers: vec![StoppedContainer {
                name: "orders".into(),
                exit_code: Some(1),
                reason: None,
            }],
        };
        let mut logs = std::collections::BTreeMap::new();
        logs.insert(
            "orders".to_string(),
            LogTail::Lines {
                group: "/ecs/shop/prod/orders".into(),
                stream: "ecs/orders/a1b2".into(),
                lines,
            },
        );
        let mut run = RunReport::default();
        run.rollouts.insert(
            "orders".into(),
            Verdict {
                kind: VerdictKind::Failed,
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                duration: std::time::Duration::from_secs(42),
                running: 0,
                desired: 2,
                deployment_id: None,
                events: vec!["(service orders) deployment failed".into()],
                stopped_tasks: vec![TaskEvidence { task, logs }],
                evidence_gaps: vec!["log configuration: refused".into()],
            },
        );
        run
    }

    #[test]
    fn a_failed_rollout_shows_its_task_exit_code_and_log_tail_inertly() {
        let run = failed_run(vec![
            "starting".into(),
            "```".into(),
            "</details> @org/team **boom**".into(),
            "boom\r## heading <img src=x>".into(),
        ]);
        let full = rollouts_section(&run, true);
        assert!(
            full.contains("| `orders` | **failed** | 42 s | 0/2 |"),
            "{full}"
        );
        assert!(
            full.contains("task `a1b2` stopped: Essential container in task exited (`EssentialContainerExited`); `orders` exited 1"),
            "{full}"
        );
        // The log's own fence cannot close the block: it is one backtick longer.
        assert!(
            full.contains("    ````text\n    starting\n    ```\n"),
            "{full}"
        );
        assert_eq!(full.matches("</details>").count(), 2, "{full}");
        // A lone carriage return does not end the block's indentation.
        assert!(
            full.contains("    boom\n    ## heading <img src=x>\n"),
            "{full}"
        );
        assert!(!full.contains("\r"), "{full:?}");
        assert!(
            full.contains("- not gathered: log configuration: refused"),
            "{full}"
        );
        let compact = rollouts_section(&run, false);
        assert!(!compact.contains("<details>"), "{compact}");
        assert!(
            compact.contains("- `orders`: task `a1b2` stopped: Essential container in task exited"),
            "{compact}"
        );
    }

    #[test]
    fn scan_findings_are_one_row_per_pushed_image_serious_ones_in_bold() {
        use crate::apply::scans::ScanSummary;
        use crate::clients::ecr::Severity;
        let mut run = RunReport::default();
        run.scans.insert(
            "orders".into(),
            ScanSummary::Complete {
                counts: [(Severity::High, 2), (Severity::Low, 5)]
                    .into_iter()
                    .collect(),
            },
        );
        run.scans.insert(
            "audit".into(),
            ScanSummary::Complete {
                counts: Default::default(),
            },
        );
        run.scans.insert("billing".into(), ScanSummary::Pending);
        let s = scans_section(&run);
        assert!(s.contains("| `orders` | **2 high, 5 low** |"), "{s}");
        assert!(s.contains("| `audit` | no findings |"), "{s}");
        assert!(s.contains("| `billing` | scan still in progress |"), "{s}");
        assert_eq!(scans_section(&RunReport::default()), "");
    }
}
