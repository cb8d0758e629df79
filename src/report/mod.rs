//! Reporting: the plan (and, after a deploy, each consumer's result) rendered for people — a
//! terminal table, and markdown for the pull request comment and the job summary.
//!
//! Pure rendering: takes values, returns strings. Where the text goes is the caller's business.

use std::fmt::Write as _;

use crate::consumers::config::{Autoscaling, ConsumerSettings, HealthCheck};
use crate::plan::{ConsumerPlan, ImageOutcome, ImageResult, Plan, Status};

/// The longest body GitHub accepts for an issue comment.
pub const MAX_COMMENT: usize = 65_536;

/// What the report is about, beyond the plan itself.
#[derive(Clone, Debug, Default)]
pub struct ReportHeader {
    pub project: String,
    pub environment: String,
    /// `plan` or `deploy`.
    pub verb: String,
    /// Link to the workflow run, when running under Actions.
    pub run_url: Option<String>,
}

/// The hidden first line that lets a later run find and update its own comment.
pub fn comment_marker(h: &ReportHeader) -> String {
    format!(
        "<!-- cdc-deploy:report project={} environment={} -->",
        h.project, h.environment
    )
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

/// A code span that survives backticks in the text.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in text.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat(longest.max(2) + 1)
}

/// Text for a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `sha256:` and the first 12 hex digits, for tables.
pub fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |i| i + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}

/// One cell about the image stage's result: `built sha256:0123456789ab, 1.2 MiB, 4.1 s`.
fn image_cell(c: &ConsumerPlan, code_span: bool) -> String {
    let Some(r) = &c.image else {
        return "—".into();
    };
    let mut out = r.outcome.as_str().to_string();
    if let Some(d) = &r.digest {
        let d = short_digest(d);
        out.push(' ');
        out.push_str(&if code_span { code(d) } else { d.to_string() });
    }
    if let Some(size) = r.size {
        let _ = write!(out, ", {}", bytes(size));
    }
    if r.outcome != ImageOutcome::Reused || r.duration.as_secs_f64() >= 0.05 {
        let _ = write!(out, ", {:.1} s", r.duration.as_secs_f64());
    }
    out
}

/// The terminal table.
pub fn table(plan: &Plan) -> String {
    let results = plan.has_image_results();
    let mut header = vec![
        "CONSUMER",
        "STATUS",
        "FINGERPRINT",
        "TASK SIZE",
        "PLATFORM",
        "TASKS",
        "STEPS",
    ];
    if results {
        header.push("IMAGE");
    }
    let rows: Vec<Vec<String>> = plan
        .consumers
        .iter()
        .map(|c| {
            let s = c.settings.as_ref();
            let mut row = vec![
                c.name.clone(),
                c.status.as_str().to_string(),
                c.fingerprint
                    .as_ref()
                    .map_or("-".into(), |f| f.short().to_string()),
                s.map_or("-".into(), task_size),
                s.map_or("-".into(), |s| s.platform.to_string()),
                s.map_or("-".into(), tasks),
                steps(c),
            ];
            if results {
                row.push(image_cell(c, false));
            }
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, (v, w)) in cols.iter().zip(widths.iter().copied()).enumerate() {
            if i + 1 == cols.len() {
                out.push_str(v);
            } else {
                let pad = w - v.chars().count();
                out.push_str(v);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let header: Vec<String> = header.into_iter().map(String::from).collect();
    let mut out = line(&header);
    for r in &rows {
        out.push_str(&line(r));
    }
    if plan.consumers.is_empty() {
        out.push_str("(no consumers)\n");
    }
    out.push_str(&summary_line(plan));
    out.push('\n');
    for c in plan
        .consumers
        .iter()
        .filter(|c| c.status == Status::Invalid)
    {
        for d in &c.diagnostics {
            let _ = writeln!(out, "error: {d}");
        }
    }
    for (c, _, reason) in failed(plan) {
        let _ = writeln!(out, "failed: {}: {reason}", c.name);
    }
    for d in &plan.warnings {
        let _ = writeln!(out, "warning: {d}");
    }
    for s in &plan.skipped {
        let _ = writeln!(out, "skipped: {}", s.reason);
    }
    out
}

/// The consumers whose image failed, with their reason.
fn failed(plan: &Plan) -> impl Iterator<Item = (&ConsumerPlan, &ImageResult, &str)> {
    plan.consumers.iter().filter_map(|c| {
        let r = c.image.as_ref()?;
        (r.outcome == ImageOutcome::Failed).then(|| {
            (
                c,
                r,
                r.failure.as_deref().unwrap_or("no reason was recorded"),
            )
        })
    })
}

fn summary_line(plan: &Plan) -> String {
    let parts: Vec<String> = [
        Status::New,
        Status::Changed,
        Status::Unchanged,
        Status::Removed,
        Status::Invalid,
    ]
    .iter()
    .map(|s| format!("{} {}", plan.count(*s), s.as_str()))
    .collect();
    let mut line = parts.join(" · ");
    if plan.has_image_results() {
        let images: Vec<String> = ImageOutcome::ALL
            .iter()
            .map(|o| format!("{} {}", plan.image_names(*o).len(), o.as_str()))
            .collect();
        let _ = write!(line, "; images: {}", images.join(" · "));
    }
    if plan.offline {
        line.push_str(" (offline: nothing was looked up in AWS)");
    }
    line
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

fn details(c: &ConsumerPlan, out: &mut String) {
    let Some(s) = &c.settings else { return };
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code>: {}</summary>\n",
        c.name,
        c.reasons.join("; ")
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
    if let Some(pinned) = c.image.as_ref().and_then(|i| i.image.as_deref()) {
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
    out.push_str("\n</details>\n\n");
}

/// The markdown report: the pull request comment and the job summary.
pub fn markdown(plan: &Plan, h: &ReportHeader) -> String {
    let body = render(plan, h, true);
    if body.len() <= MAX_COMMENT {
        return body;
    }
    // Too long for a comment: drop the per-consumer details, keep the table and the errors.
    render(plan, h, false)
}

fn render(plan: &Plan, h: &ReportHeader, with_details: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", comment_marker(h));
    let _ = writeln!(
        out,
        "## cdc-deploy {}: `{}` → `{}`\n",
        h.verb, h.project, h.environment
    );
    let _ = writeln!(out, "{}\n", summary_line(plan));
    if let Some(commit) = &plan.commit {
        let _ = writeln!(out, "Commit: `{commit}`\n");
    }
    if plan.consumers.is_empty() {
        out.push_str("No consumers were found.\n\n");
    } else {
        let results = plan.has_image_results();
        out.push_str("| Consumer | Status | Fingerprint | Task size | Platform | Tasks | Steps |");
        out.push_str(if results { " Image |\n" } else { "\n" });
        out.push_str("|---|---|---|---|---|---|---|");
        out.push_str(if results { "---|\n" } else { "\n" });
        for c in &plan.consumers {
            let s = c.settings.as_ref();
            let _ = write!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                code(&c.name),
                c.status.as_str(),
                c.fingerprint
                    .as_ref()
                    .map_or("—".into(), |f| code(f.short())),
                s.map_or("—".into(), task_size),
                s.map_or("—".into(), |s| s.platform.to_string()),
                s.map_or("—".into(), tasks),
                cell(&steps(c)),
            );
            if results {
                let _ = write!(out, " {} |", cell(&image_cell(c, true)));
            }
            out.push('\n');
        }
        out.push('\n');
        let failures: Vec<_> = failed(plan).collect();
        if !failures.is_empty() {
            out.push_str(
                "### Failed\n\nThe other consumers went on; these need a fix and a new run:\n\n",
            );
            for (c, r, reason) in failures {
                let _ = writeln!(out, "- {}: {}", code(&c.name), cell(reason));
                if !r.log_tail.is_empty() && with_details {
                    let text = r.log_tail.join("\n");
                    let fence = fence_for(&text);
                    let _ = writeln!(
                        out,
                        "\n  <details><summary>last {} lines of the build</summary>\n\n{fence}text\n{text}\n{fence}\n\n  </details>\n",
                        r.log_tail.len()
                    );
                }
            }
            out.push('\n');
        }
    }
    let invalid: Vec<&ConsumerPlan> = plan
        .consumers
        .iter()
        .filter(|c| c.status == Status::Invalid)
        .collect();
    if !invalid.is_empty() {
        out.push_str("### Invalid consumers\n\nThese are left out of the deploy until fixed:\n\n");
        for c in invalid {
            for d in &c.diagnostics {
                let mut line = format!("- {}: {}", code(&c.name), location(d));
                let _ = write!(line, " {}", d.message);
                if let Some(help) = &d.help {
                    let _ = write!(line, " — {help}");
                }
                let _ = writeln!(out, "{line}");
            }
        }
        out.push('\n');
    }
    let removed: Vec<&ConsumerPlan> = plan
        .consumers
        .iter()
        .filter(|c| c.status == Status::Removed)
        .collect();
    if !removed.is_empty() {
        out.push_str("### Removed consumers\n\n");
        for c in removed {
            let _ = writeln!(out, "- {}: {}", code(&c.name), c.reasons.join("; "));
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        out.push_str("### Warnings\n\n");
        for d in &plan.warnings {
            let _ = writeln!(
                out,
                "- {} {}{}",
                location(d),
                d.message,
                d.help
                    .as_ref()
                    .map(|h| format!(" — {h}"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
    }
    if !plan.skipped.is_empty() {
        out.push_str("### Skipped folders\n\n");
        for s in &plan.skipped {
            let _ = writeln!(out, "- {}", s.reason);
        }
        out.push('\n');
    }
    if with_details {
        for c in plan.consumers.iter().filter(|c| c.settings.is_some()) {
            details(c, &mut out);
        }
    } else {
        out.push_str("_Per-consumer details were left out to fit GitHub's comment size limit; the job summary and log have them._\n\n");
    }
    if let Some(url) = &h.run_url {
        let _ = writeln!(out, "[Workflow run]({url})");
    }
    out
}

fn location(d: &crate::diagnostics::Diagnostic) -> String {
    match d.line {
        Some(l) => format!("{} line {l}:", code(&d.file)),
        None => format!("{}:", code(&d.file)),
    }
}
