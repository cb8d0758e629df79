//! `logs <consumer>`: the last lines of its log group, every task's stream interleaved by time,
//! each line as untrusted text (credentials it carries hidden, workflow commands in it inert).
//! `--follow` keeps reading every two seconds until interrupted.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::apply::infra::vars::AppliedConsumer;
use crate::cancel::Cancel;
use crate::clients::logs::{shown, LogEvent};
use crate::gha::Runner;
use crate::pipeline::outcome::RunResult;
use crate::pipeline::outputs::Outputs;
use crate::pipeline::services::AwsServices;
use crate::pipeline::RunError;

/// Pages of `FilterLogEvents` read for the first lines (10,000 events or 1 MB each).
const PAGES: usize = 20;
/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

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
    let read = |start: i64| aws.logs.events(group, start, request.filter, PAGES);
    let events = read(start)
        .await
        .map_err(|e| RunError::Start(format!("the log group `{group}` could not be read: {e}")))?;
    let skip = events.len().saturating_sub(request.lines);
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
    for e in events.iter().skip(skip) {
        runner.print_untrusted(&line(e));
    }
    for e in &events {
        seen.add(e);
    }
    let _ = Outputs::empty(RunResult::Success).write(runner);
    if !request.follow {
        return Ok(0);
    }
    while !cancel.is_cancelled() {
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
            () = cancel.cancelled() => break,
        }
        // From the newest second seen: events of the same millisecond come again, and are
        // recognised by their id.
        match read(seen.newest.unwrap_or(start)).await {
            Ok(events) => {
                for e in events {
                    if seen.add(&e) {
                        runner.print_untrusted(&line(&e));
                    }
                }
            }
            Err(e) => runner.warning(&format!("`{group}` could not be read: {e}; trying again")),
        }
    }
    Ok(0)
}

/// The events printed so far: the newest timestamp, and the ids at it.
#[derive(Default)]
struct Seen {
    newest: Option<i64>,
    ids: BTreeSet<String>,
}

impl Seen {
    /// Record `e`; whether it is new.
    fn add(&mut self, e: &LogEvent) -> bool {
        match self.newest {
            Some(t) if e.timestamp < t => false,
            Some(t) if e.timestamp == t => self.ids.insert(e.id.clone()),
            _ => {
                self.newest = Some(e.timestamp);
                self.ids.clear();
                self.ids.insert(e.id.clone());
                true
            }
        }
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
    fn following_prints_each_event_once() {
        let mut seen = Seen::default();
        assert!(seen.add(&event("a", 10, "x")));
        assert!(
            seen.add(&event("b", 10, "y")),
            "the same millisecond, another event"
        );
        assert!(
            !seen.add(&event("a", 10, "x")),
            "read again from the newest millisecond"
        );
        assert!(!seen.add(&event("z", 9, "older")));
        assert!(seen.add(&event("c", 11, "z")));
    }
}
