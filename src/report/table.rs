//! The terminal table: one row per consumer and a summary line. Findings and failures are not
//! repeated here: each is an annotation (a plain `error:` line outside Actions) and a line of
//! the report. It can hold text from outside (names, digests), so it is printed as untrusted.

use std::fmt::Write as _;

use super::{short_digest, steps, task_size, tasks};
use crate::apply::{ImageOutcome, ImageResult, RunReport};
use crate::plan::{Plan, Status};

/// The image cell: `built sha256:0123456789ab, 1.2 MiB, 4.1 s`.
pub(crate) fn image_cell(r: &ImageResult) -> String {
    let mut out = r.outcome.as_str().to_string();
    if let Some(d) = &r.digest {
        out.push(' ');
        out.push_str(short_digest(d));
    }
    if let Some(size) = r.size {
        let _ = write!(out, ", {}", super::bytes(size));
    }
    if r.outcome != ImageOutcome::Reused || r.duration.as_secs_f64() >= 0.05 {
        let _ = write!(out, ", {:.1} s", r.duration.as_secs_f64());
    }
    out
}

/// `2 new · 1 changed · …`, and the image outcomes after a deploy.
pub fn summary_line(plan: &Plan, run: Option<&RunReport>) -> String {
    let parts: Vec<String> = Status::ALL
        .iter()
        .filter(|s| {
            !matches!(s, Status::Unknown | Status::Removed | Status::Held) || plan.count(**s) > 0
        })
        .map(|s| {
            let checked = plan.compared || plan.consumers.iter().any(|c| c.infra.is_some());
            let label = if *s == Status::Unchanged && !checked {
                "image unchanged (configuration not checked)"
            } else {
                s.as_str()
            };
            format!("{} {label}", plan.count(*s))
        })
        .collect();
    let mut line = parts.join(" · ");
    if let Some(selection) = &plan.selection {
        let _ = write!(
            line,
            "; only {selection}: {} other consumer{} keep{} what is applied",
            plan.unselected.len(),
            if plan.unselected.len() == 1 { "" } else { "s" },
            if plan.unselected.len() == 1 { "s" } else { "" },
        );
    }
    if let Some(run) = run {
        let images: Vec<String> = ImageOutcome::ALL
            .iter()
            .map(|o| format!("{} {}", run.names(*o).len(), o.as_str()))
            .collect();
        let _ = write!(line, "; images: {}", images.join(" · "));
    }
    if plan.offline {
        line.push_str(" (offline: nothing was looked up in AWS)");
    }
    line
}

/// The table.
/// `rows` under `header`, each column as wide as its widest cell plus two spaces, a line each.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, (v, w)) in cols.iter().zip(widths.iter().copied()).enumerate() {
            out.push_str(v);
            if i + 1 < cols.len() {
                out.push_str(&" ".repeat(w.saturating_sub(v.chars().count()) + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = line(&header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

pub fn table(plan: &Plan, run: Option<&RunReport>) -> String {
    let mut header = vec![
        "CONSUMER",
        "STATUS",
        "FINGERPRINT",
        "TASK SIZE",
        "PLATFORM",
        "TASKS",
        "STEPS",
    ];
    let tf_column = plan.consumers.iter().any(|c| c.infra.is_some());
    if tf_column {
        header.push("TERRAFORM");
    }
    if run.is_some() {
        header.push("IMAGE");
    }
    let rows: Vec<Vec<String>> = plan
        .consumers
        .iter()
        .map(|c| {
            let s = c.settings.as_ref();
            let mut row = vec![
                c.name.clone(),
                c.status_label().to_string(),
                c.fingerprint
                    .as_ref()
                    .map_or("-".into(), |f| f.short().to_string()),
                s.map_or("-".into(), task_size),
                s.map_or("-".into(), |s| s.platform.to_string()),
                s.map_or("-".into(), tasks),
                steps(c),
            ];
            if tf_column {
                row.push(c.infra.map_or("-".into(), |t| t.to_string()));
            }
            if let Some(run) = run {
                row.push(run.images.get(&c.name).map_or("-".into(), image_cell));
            }
            row
        })
        .collect();
    let mut out = columns(&header, &rows);
    if plan.consumers.is_empty() {
        out.push_str("(no consumers)\n");
    }
    out.push_str(&summary_line(plan, run));
    out.push('\n');
    out
}
