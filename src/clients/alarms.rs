//! CloudWatch alarms, as `status` reads them: the fleet's alarms that are in ALARM.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::failure::{self, Failure};

/// An alarm in the `ALARM` state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiringAlarm {
    pub name: String,
    /// CloudWatch's reason for the state (`Threshold Crossed: 5 datapoints …`).
    pub reason: String,
    pub since: Option<SystemTime>,
}

/// Pages of 100 alarms read at most: 5,000 alarms, more than 500 consumers' five kinds.
const PAGES: usize = 50;

#[async_trait]
pub trait AlarmReader: Send + Sync {
    /// The metric alarms whose name starts with `prefix` and that are in `ALARM`, by name.
    async fn firing(&self, prefix: &str) -> Result<Vec<FiringAlarm>, Failure>;
}

/// The real client.
pub struct Alarms {
    client: aws_sdk_cloudwatch::Client,
    endpoint: String,
}

impl Alarms {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let endpoint = config.endpoint_url().map_or_else(
            || {
                format!(
                    "https://monitoring.{}.amazonaws.com",
                    config.region().map(|r| r.as_ref()).unwrap_or("us-east-1")
                )
            },
            str::to_string,
        );
        Alarms {
            client: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(config)
                    .interceptor(super::aws_retries::counted("CloudWatch"))
                    .build(),
            ),
            endpoint,
        }
    }
}

#[async_trait]
impl AlarmReader for Alarms {
    async fn firing(&self, prefix: &str) -> Result<Vec<FiringAlarm>, Failure> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..PAGES {
            let out = self
                .client
                .describe_alarms()
                .alarm_name_prefix(prefix)
                .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                .max_records(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| failure::from_sdk(&e, "cloudwatch:DescribeAlarms", &self.endpoint))?;
            found.extend(out.metric_alarms().iter().map(|a| {
                FiringAlarm {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                    since: a
                        .state_updated_timestamp()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                }
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}
