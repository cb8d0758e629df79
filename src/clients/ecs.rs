//! ECS, as the rollout stage reads it: the services of a cluster with their deployments and
//! recent events, ten services per `DescribeServices` call (the API's limit).
//!
//! This module only reads. It never updates a service: Terraform does that.

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::failure::{self, Failure};

/// The most services one `DescribeServices` call takes.
pub const DESCRIBE_BATCH: usize = 10;

/// One deployment of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (older, still running tasks) or `INACTIVE`.
    pub status: String,
    pub task_definition: String,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED` (circuit breaker).
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
    pub created_at: Option<SystemTime>,
}

/// One event from the service's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    pub created_at: Option<SystemTime>,
    pub message: String,
}

/// A service as `DescribeServices` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub deployments: Vec<Deployment>,
    /// Newest first, as ECS lists them.
    pub events: Vec<ServiceEvent>,
}

/// What ECS said about one asked-for service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Described {
    Found(ServiceState),
    /// Listed in the call's `failures` (`MISSING`), or not returned at all.
    Missing {
        reason: String,
    },
}

/// Why a call to ECS failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ECS {operation} failed for `{cluster}`: {failure}")]
pub struct EcsError {
    pub operation: &'static str,
    pub cluster: String,
    pub failure: Failure,
}

impl EcsError {
    /// Whether asking again later may succeed (throttling, a server error, the network).
    pub fn is_transient(&self) -> bool {
        use crate::failure::Cause;
        matches!(
            self.failure.cause,
            Cause::Throttled | Cause::Server | Cause::Network
        )
    }
}

/// The reads the rollout stage makes.
#[async_trait]
pub trait Deployer: Send + Sync {
    /// Describe at most [`DESCRIBE_BATCH`] services of one cluster, with their events.
    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<BTreeMap<String, Described>, EcsError>;
}

/// The real ECS client.
#[derive(Clone, Debug)]
pub struct Ecs {
    client: aws_sdk_ecs::Client,
    endpoint: String,
}

impl Ecs {
    /// A client on `config`, with the SDK's adaptive retry mode (it slows down for throttling
    /// across all calls of the run, which a fleet's polls need) unless the environment chose.
    pub fn adaptive(config: &aws_config::SdkConfig, attempts: u32) -> Self {
        let mut ecs = Ecs::new(config);
        ecs.client = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(config)
                .retry_config(
                    aws_config::retry::RetryConfig::adaptive().with_max_attempts(attempts),
                )
                .build(),
        );
        ecs
    }

    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let endpoint = config
            .endpoint_url()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "ecs.{}.amazonaws.com",
                    config.region().map(|r| r.as_ref()).unwrap_or("us-east-1")
                )
            });
        Ecs {
            client: aws_sdk_ecs::Client::new(config),
            endpoint,
        }
    }
}

fn time(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

#[async_trait]
impl Deployer for Ecs {
    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<BTreeMap<String, Described>, EcsError> {
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(services.to_vec()))
            .send()
            .await
            .map_err(|e| EcsError {
                operation: "DescribeServices",
                cluster: cluster.to_string(),
                failure: failure::from_sdk(&e, "ecs:DescribeServices", &self.endpoint),
            })?;
        let mut found = BTreeMap::new();
        for s in out.services() {
            let name = s.service_name().unwrap_or_default().to_string();
            let deployments = s
                .deployments()
                .iter()
                .map(|d| Deployment {
                    id: d.id().unwrap_or_default().to_string(),
                    status: d.status().unwrap_or_default().to_string(),
                    task_definition: d.task_definition().unwrap_or_default().to_string(),
                    rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                    rollout_state_reason: d.rollout_state_reason().map(str::to_string),
                    desired: d.desired_count(),
                    running: d.running_count(),
                    pending: d.pending_count(),
                    failed_tasks: d.failed_tasks(),
                    created_at: time(d.created_at()),
                })
                .collect();
            let events = s
                .events()
                .iter()
                .map(|e| ServiceEvent {
                    created_at: time(e.created_at()),
                    message: e.message().unwrap_or_default().to_string(),
                })
                .collect();
            found.insert(
                name.clone(),
                Described::Found(ServiceState {
                    name,
                    status: s.status().unwrap_or_default().to_string(),
                    desired: s.desired_count(),
                    running: s.running_count(),
                    deployments,
                    events,
                }),
            );
        }
        for f in out.failures() {
            // Failures name the service by ARN: `arn:aws:ecs:…:service/<cluster>/<name>`.
            let arn = f.arn().unwrap_or_default();
            let name = arn.rsplit('/').next().unwrap_or(arn).to_string();
            found.insert(
                name,
                Described::Missing {
                    reason: f.reason().unwrap_or("MISSING").to_string(),
                },
            );
        }
        for s in services {
            found
                .entry(s.clone())
                .or_insert_with(|| Described::Missing {
                    reason: "not returned by DescribeServices".into(),
                });
        }
        Ok(found)
    }
}
