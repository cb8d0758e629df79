//! CloudWatch Logs, as rollout evidence reads it: the last lines of one container's stream.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;

use crate::failure::{self, Failure};

/// The last lines of a log stream.
#[async_trait]
pub trait LogReader: Send + Sync {
    /// The last `lines` messages of `stream` in `group`, oldest first. `region` is the
    /// `awslogs-region` of the task definition, when it names one.
    async fn tail(
        &self,
        region: Option<&str>,
        group: &str,
        stream: &str,
        lines: usize,
    ) -> Result<Vec<String>, Failure>;

    /// The names of the log groups in the home region whose name starts with `prefix`.
    async fn groups(&self, prefix: &str) -> Result<std::collections::BTreeSet<String>, Failure>;

    /// The events of every stream of `group` from `start_ms` to `end_ms` (epoch milliseconds,
    /// `None`: now), oldest first, that match `pattern` (CloudWatch Logs' filter syntax), at most
    /// `pages` pages of `FilterLogEvents` (10,000 events or 1 MB each). Messages are as written:
    /// untrusted.
    async fn events(
        &self,
        group: &str,
        window: (i64, Option<i64>),
        pattern: Option<&str>,
        pages: usize,
    ) -> Result<Vec<LogEvent>, Failure>;
}

/// One event of a log group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub id: String,
    /// Epoch milliseconds.
    pub timestamp: i64,
    pub stream: String,
    pub message: String,
}

/// The real client: one SDK client per region asked about.
pub struct Logs {
    config: aws_config::SdkConfig,
    clients: Mutex<BTreeMap<String, aws_sdk_cloudwatchlogs::Client>>,
}

impl Logs {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Logs {
            config: config.clone(),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    fn client(&self, region: Option<&str>) -> (aws_sdk_cloudwatchlogs::Client, String) {
        let home = self.config.region().map(|r| r.to_string());
        let region = region.map(str::to_string).or(home).unwrap_or_default();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let client = clients
            .entry(region.clone())
            .or_insert_with(|| {
                let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(&self.config)
                    .interceptor(super::aws_retries::counted("CloudWatch Logs"));
                if !region.is_empty() {
                    b = b.region(aws_sdk_cloudwatchlogs::config::Region::new(region.clone()));
                }
                aws_sdk_cloudwatchlogs::Client::from_conf(b.build())
            })
            .clone();
        let endpoint = self.config.endpoint_url().map_or_else(
            || format!("https://logs.{region}.amazonaws.com"),
            str::to_string,
        );
        (client, endpoint)
    }
}

#[async_trait]
impl LogReader for Logs {
    async fn tail(
        &self,
        region: Option<&str>,
        group: &str,
        stream: &str,
        lines: usize,
    ) -> Result<Vec<String>, Failure> {
        let (client, endpoint) = self.client(region);
        let out = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(false)
            .limit(i32::try_from(lines).unwrap_or(i32::MAX).max(1))
            .send()
            .await
            .map_err(|e| failure::from_sdk(&e, "logs:GetLogEvents", &endpoint))?;
        let mut events: Vec<(i64, String)> = out
            .events()
            .iter()
            .map(|e| {
                (
                    e.timestamp().unwrap_or_default(),
                    shown(e.message().unwrap_or_default()),
                )
            })
            .collect();
        // Oldest first, whatever order the service answered in; the last `lines` of them.
        events.sort_by_key(|(t, _)| *t);
        let skip = events.len().saturating_sub(lines);
        Ok(events.into_iter().skip(skip).map(|(_, m)| m).collect())
    }

    async fn events(
        &self,
        group: &str,
        (start_ms, end_ms): (i64, Option<i64>),
        pattern: Option<&str>,
        pages: usize,
    ) -> Result<Vec<LogEvent>, Failure> {
        let (client, endpoint) = self.client(None);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..pages.max(1) {
            let out = client
                .filter_log_events()
                .log_group_name(group)
                .start_time(start_ms)
                .set_end_time(end_ms)
                .set_filter_pattern(pattern.map(str::to_string))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| failure::from_sdk(&e, "logs:FilterLogEvents", &endpoint))?;
            found.extend(out.events().iter().map(|e| LogEvent {
                id: e.event_id().unwrap_or_default().to_string(),
                timestamp: e.timestamp().unwrap_or_default(),
                stream: e.log_stream_name().unwrap_or_default().to_string(),
                message: e.message().unwrap_or_default().to_string(),
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn groups(&self, prefix: &str) -> Result<std::collections::BTreeSet<String>, Failure> {
        let (client, endpoint) = self.client(None);
        let mut found = std::collections::BTreeSet::new();
        let mut token: Option<String> = None;
        // 50 groups a page: a fleet of 500 consumers takes 10 calls, once per run that adds one.
        loop {
            let out = client
                .describe_log_groups()
                .log_group_name_prefix(prefix)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| failure::from_sdk(&e, "logs:DescribeLogGroups", &endpoint))?;
            found.extend(
                out.log_groups()
                    .iter()
                    .filter_map(|g| g.log_group_name().map(str::to_string)),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(found)
    }
}

/// The longest log line shown, in characters: one CloudWatch event may hold 256 KB.
pub const MAX_LINE: usize = 1_000;

/// A log line as the reports show it: credentials a crashing consumer tends to log (a URL's
/// password, `password=…`, `token: …`, a bearer token) replaced by `****`, and cut to
/// [`MAX_LINE`] characters. The job summary is readable by everyone who can read the repository.
pub fn shown(line: &str) -> String {
    static PATTERNS: OnceLock<[(regex::Regex, &'static str); 3]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            (
                regex::Regex::new(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@")
                    .expect("static regex"),
                "${head}****@",
            ),
            (
                regex::Regex::new(
                    r#"(?i)(?P<head>\b[a-z0-9_.-]*(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s"',;&]+)"#,
                )
                .expect("static regex"),
                "${head}****",
            ),
            (
                regex::Regex::new(r"(?i)(?P<head>\b(bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}")
                    .expect("static regex"),
                "${head}****",
            ),
        ]
    });
    let mut out = line.trim_end().to_string();
    for (re, with) in patterns {
        out = re.replace_all(&out, *with).into_owned();
    }
    match out.char_indices().nth(MAX_LINE) {
        Some((i, _)) => format!("{}… (cut at {MAX_LINE} characters)", &out[..i]),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_log_lines_are_hidden_and_long_lines_cut() {
        assert_eq!(
            shown("connecting to postgres://cdc:s3cr3t@db.internal:5432/orders"),
            "connecting to postgres://cdc:****@db.internal:5432/orders"
        );
        assert_eq!(
            shown("config: password=hunter2 user=cdc KAFKA_SASL_PASSWORD: 'x y' api_key=\"abc\""),
            "config: password=**** user=cdc KAFKA_SASL_PASSWORD: **** api_key=****"
        );
        assert_eq!(
            shown("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
            "Authorization: Bearer ****"
        );
        assert_eq!(shown("offset 42 committed"), "offset 42 committed");
        let long = "x".repeat(5_000);
        let cut = shown(&long);
        assert!(cut.starts_with(&"x".repeat(MAX_LINE)));
        assert!(cut.ends_with("(cut at 1000 characters)"));
    }
}
