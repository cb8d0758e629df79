//! CloudWatch Logs, as rollout evidence reads it: the last lines of one container's stream.

use std::collections::BTreeMap;
use std::sync::Mutex;

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
                let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(&self.config);
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
                    e.message().unwrap_or_default().trim_end().to_string(),
                )
            })
            .collect();
        // Oldest first, whatever order the service answered in; the last `lines` of them.
        events.sort_by_key(|(t, _)| *t);
        let skip = events.len().saturating_sub(lines);
        Ok(events.into_iter().skip(skip).map(|(_, m)| m).collect())
    }
}
