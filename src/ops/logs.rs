//! `logs <consumer>`: the last lines of its log group, every task's stream interleaved by time,
//! each line as untrusted text (credentials it carries hidden, workflow commands in it inert).
//! `--follow` keeps reading every two seconds until interrupted.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::apply::infra::vars::AppliedConsumer;
use crate::cancel::Cancel;
use crate::clients::logs::{shown, LogEvent};
use crate::gha::Runner;
use crate::pipeline::outcome::RunResult;
use crate::pipeline::outputs::Outputs;
use crate::pipeline::services::AwsServices;
use crate::pipeline::RunError;

/// Pages of `FilterLogEvents` read per window (10,000 events or 1 MB each).
const PAGES: usize = 5;
/// The newest window the last lines are looked for in; each further one back is twice as long.
const FIRST_WINDOW_MS: i64 = 60_000;
/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// How far back each `--follow` poll reads from the newest line seen: a line reaches CloudWatch
/// Logs some seconds after it was written, and another task's later line may have come first.
const LATE_MS: i64 = 30_000;

/// What `logs` is asked for.
pub struct Request<'a> {
    pub since: Duration,
    pub filter: Option<&'a str>,
    pub lines: usize,
    pub follow: bool,
}

pub async fn run(
    runner: &Runner,
    cancel: &Cancel,
    aws: &AwsServices,
    consumer: &AppliedConsumer,
    request: &Request<'_>,
) -> Result<u8, RunError> {
    let now_ms = epoch_ms(SystemTime::now());
    let since = i64::try_from(request.since.as_millis()).unwrap_or(i64::MAX);
    let start = now_ms.saturating_sub(since);
    let group = &consumer.log_group;
    let unreadable = |e| RunError::Start(format!("the log group `{group}` could not be read: {e}"));
    let events = last_lines(aws, group, (start, now_ms), request.filter, request.lines)
        .await
        .map_err(unreadable)?;
    if events.is_empty() {
        eprintln!(
            "no lines in `{group}` since {}{}",
            format_ms(start),
            request
                .filter
                .map(|f| format!(" that match `{f}`"))
                .unwrap_or_default()
        );
    }
    let mut seen = Seen::default();
    for e in &events {
        runner.print_untrusted(&line(e));
        seen.add(e);
    }
    let _ = Outputs::empty(RunResult::Success).write(runner);
    if !request.follow {
        return Ok(0);
    }
    // From the newest line shown, or from now: what came before is shown or was not asked for.
    let mut from = seen.newest.unwrap_or(now_ms);
    while !cancel.is_cancelled() {
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
            () = cancel.cancelled() => break,
        }
        let read = aws
            .logs
            .events(
                group,
                (from.saturating_sub(LATE_MS), None),
                request.filter,
                PAGES,
            )
            .await;
        match read {
            Ok(events) => {
                for e in events {
                    if seen.add(&e) {
                        runner.print_untrusted(&line(&e));
                    }
                }
                from = seen.newest.unwrap_or(from);
            }
            Err(e) => runner.warning(&format!("`{group}` could not be read: {e}; trying again")),
        }
    }
    Ok(0)
}

/// The last `lines` events of `window`, oldest first: windows read back from its end, each twice
/// as long as the one after it, until there are enough or the window's start is reached. A busy
/// group's last lines take a call or two, never every page since `since`.
async fn last_lines(
    aws: &AwsServices,
    group: &str,
    (start, end): (i64, i64),
    filter: Option<&str>,
    lines: usize,
) -> Result<Vec<LogEvent>, crate::failure::Failure> {
    let mut found: Vec<LogEvent> = Vec::new();
    let mut to = end;
    let mut span = FIRST_WINDOW_MS;
    while to > start && found.len() < lines {
        let from = to.saturating_sub(span).max(start);
        let mut window = aws
            .logs
            .events(group, (from, Some(to)), filter, PAGES)
            .await?;
        window.append(&mut found);
        found = window;
        to = from;
        span = span.saturating_mul(2);
    }
    let skip = found.len().saturating_sub(lines);
    Ok(found.split_off(skip))
}

/// The events printed so far, by id, as far back as a poll reads again.
#[derive(Default)]
struct Seen {
    newest: Option<i64>,
    ids: BTreeMap<String, i64>,
}

impl Seen {
    /// Record `e`; whether it is new.
    fn add(&mut self, e: &LogEvent) -> bool {
        if self.ids.contains_key(&e.id) {
            return false;
        }
        self.ids.insert(e.id.clone(), e.timestamp);
        let newest = self.newest.map_or(e.timestamp, |n| n.max(e.timestamp));
        self.newest = Some(newest);
        // A poll never reads before `newest - LATE_MS`: older ids cannot come again.
        let floor = newest.saturating_sub(2 * LATE_MS);
        self.ids.retain(|_, t| *t >= floor);
        true
    }
}

/// `2026-12-05T06:40:01Z  3f2a9c1e  message`: the time, the task (its id's first 8 characters,
/// from the `prefix/container/task-id` stream name), the line.
pub fn line(e: &LogEvent) -> String {
    let task = e.stream.rsplit('/').next().unwrap_or(&e.stream);
    let task = task.get(..8).unwrap_or(task);
    format!("{}  {task}  {}", format_ms(e.timestamp), shown(&e.message))
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, t: i64, message: &str) -> LogEvent {
        LogEvent {
            id: id.into(),
            timestamp: t,
            stream: "ecs/orders/3f2a9c1e0b7d4e5f".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_line_names_its_time_and_task_and_hides_credentials() {
        assert_eq!(
            line(&event(
                "1",
                1_764_916_801_000,
                "connecting to postgres://cdc:s3cr3t@db/orders"
            )),
            "2025-12-05T06:40:01Z  3f2a9c1e  connecting to postgres://cdc:****@db/orders"
        );
    }

    #[test]
    fn following_prints_each_event_once_and_late_ones_too() {
        let mut seen = Seen::default();
        assert!(seen.add(&event("a", 10_000, "x")));
        assert!(
            seen.add(&event("b", 10_000, "y")),
            "the same millisecond, another event"
        );
        assert!(!seen.add(&event("a", 10_000, "x")), "read again");
        assert!(seen.add(&event("c", 12_000, "z")));
        assert!(
            seen.add(&event("late", 11_000, "written before c, arrived after it")),
            "a line that reached CloudWatch late is still shown"
        );
        assert!(!seen.add(&event("late", 11_000, "again")));
        assert_eq!(seen.newest, Some(12_000));
    }
}
