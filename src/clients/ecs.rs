//! ECS, as the rollout stage reads it: the services of a cluster with their deployments and
//! recent events, ten services per `DescribeServices` call (the API's limit); and, as evidence
//! for a rollout that did not succeed, the stopped tasks of a task definition and where its
//! containers log.
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
#[error("ECS {operation} failed for `{subject}`: {failure}")]
pub struct EcsError {
    pub operation: &'static str,
    /// The cluster asked about, or the task definition.
    pub subject: String,
    pub failure: Failure,
}

impl EcsError {
    /// Whether asking again later may succeed (throttling, a server error, the network).
    pub fn is_transient(&self) -> bool {
        self.failure.cause.is_transient()
    }
}

/// The most stopped tasks one rollout's evidence carries (the newest).
pub const STOPPED_TASKS: usize = 5;
/// Pages of stopped tasks (100 each) listed and described, at most.
const STOPPED_TASK_PAGES: usize = 3;

/// A container of a stopped task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedContainer {
    pub name: String,
    pub exit_code: Option<i32>,
    /// Why the container stopped, as ECS tells it (`CannotPullContainerError: …`).
    pub reason: Option<String>,
}

impl StoppedContainer {
    /// Whether the container failed: a non-zero exit, or no exit code but a reason.
    pub fn failed(&self) -> bool {
        match self.exit_code {
            Some(code) => code != 0,
            None => self.reason.is_some(),
        }
    }
}

/// A task ECS stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedTask {
    /// The last part of the task's ARN, as the awslogs stream names it.
    pub id: String,
    pub task_definition: String,
    /// `Essential container in task exited`, `Task failed ELB health checks`, …
    pub stopped_reason: Option<String>,
    /// `EssentialContainerExited`, `TaskFailedToStart`, …
    pub stop_code: Option<String>,
    pub stopped_at: Option<SystemTime>,
    pub containers: Vec<StoppedContainer>,
}

/// Where a container of a task definition sends its log (the `awslogs` driver's options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSource {
    pub group: String,
    /// `awslogs-region`, when it names one.
    pub region: Option<String>,
    /// `awslogs-stream-prefix`: streams are `prefix/container/task-id`.
    pub stream_prefix: Option<String>,
}

impl LogSource {
    /// The stream a task's container writes to, when a prefix makes it knowable.
    pub fn stream(&self, container: &str, task_id: &str) -> Option<String> {
        self.stream_prefix
            .as_ref()
            .map(|p| format!("{p}/{container}/{task_id}"))
    }
}

/// A task that runs (or is starting), as `exec` needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningTask {
    /// The last part of the task's ARN, as `aws ecs execute-command --task` takes it.
    pub id: String,
    pub task_definition: String,
    /// `PROVISIONING`, `PENDING`, `RUNNING`, …
    pub last_status: String,
    /// Whether the task was started with ECS Exec enabled.
    pub exec_enabled: bool,
    /// Each container's name and the state of its ECS Exec agent (`RUNNING` when exec works).
    pub containers: Vec<(String, Option<String>)>,
    pub started_at: Option<SystemTime>,
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

    /// The service's stopped tasks of `task_definition`, newest first, at most
    /// [`STOPPED_TASKS`]: one `ListTasks` and one `DescribeTasks`.
    async fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<StoppedTask>, EcsError>;

    /// Where each container of `task_definition` logs, by container name, for containers on
    /// the `awslogs` driver.
    async fn log_sources(
        &self,
        task_definition: &str,
    ) -> Result<BTreeMap<String, LogSource>, EcsError>;

    /// Each container's image in `task_definition`, by container name: one
    /// `DescribeTaskDefinition`.
    async fn container_images(
        &self,
        task_definition: &str,
    ) -> Result<BTreeMap<String, String>, EcsError>;

    /// The service's tasks that are to run (`desiredStatus` RUNNING), oldest first: one
    /// `ListTasks` and one `DescribeTasks` (at most 100 tasks).
    async fn running_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<RunningTask>, EcsError>;

    /// The image `container` ran before the one of `task_definition`: the newest older revision
    /// of its family whose image differs and is none of `skip` (an image whose rollout failed),
    /// with that revision's ARN. `None` when no older revision ran another image.
    async fn previous_image(
        &self,
        task_definition: &str,
        container: &str,
        skip: &[String],
    ) -> Result<Option<(String, String)>, EcsError>;
}

/// Older revisions looked at, at most, for the image a container ran before.
pub const PREVIOUS_REVISIONS: usize = 50;
/// Pages of each revision list read (100 revisions a page).
const LIST_PAGES: usize = 5;

/// The revisions older than `current`, newest first: by revision number when every revision
/// has one (as ECS numbers them), active and inactive together; else (names that are not
/// numbers) the active ones listed after `current`, then the inactive ones, as listed.
pub fn older_revisions(current: &str, active: &[String], inactive: &[String]) -> Vec<String> {
    let number = |arn: &str| family_and_revision(arn).and_then(|(_, r)| r.parse::<u64>().ok());
    if let Some(c) = number(current) {
        if active.iter().chain(inactive).all(|a| number(a).is_some()) {
            let mut all: Vec<(u64, &String)> = active
                .iter()
                .chain(inactive)
                .filter_map(|a| Some((number(a)?, a)))
                .filter(|(n, _)| *n < c)
                .collect();
            all.sort_by_key(|a| std::cmp::Reverse(a.0));
            all.dedup_by(|a, b| a.0 == b.0);
            return all.into_iter().map(|(_, a)| a.clone()).collect();
        }
    }
    let (_, current_revision) = family_and_revision(current).unwrap_or_default();
    active
        .iter()
        .skip_while(|a| {
            a.as_str() != current
                && family_and_revision(a).map(|(_, r)| r) != Some(current_revision)
        })
        .skip(1)
        .chain(inactive)
        .cloned()
        .collect()
}

/// `family` and `revision` of a task definition ARN (`…:task-definition/family:revision`), or of
/// `family:revision`.
pub fn family_and_revision(arn: &str) -> Option<(&str, &str)> {
    let tail = arn.rsplit_once("task-definition/").map_or(arn, |(_, t)| t);
    tail.rsplit_once(':')
}

/// The real ECS client.
#[derive(Clone, Debug)]
pub struct Ecs {
    client: aws_sdk_ecs::Client,
    endpoint: String,
}

impl Ecs {
    /// A client on `config`, with its retry settings: the run's standard mode (the watcher's
    /// polls are few and spaced out; the SDK's adaptive mode made each throttled poll wait about
    /// 20 s at their rate), or what the environment chose.
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
            client: aws_sdk_ecs::Client::from_conf(
                aws_sdk_ecs::config::Builder::from(config)
                    .interceptor(super::aws_retries::counted("ECS"))
                    .build(),
            ),
            endpoint,
        }
    }
}

fn time(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// The task's id: the last part of its ARN, as the awslogs stream and `execute-command` name it.
fn task_id(t: &aws_sdk_ecs::types::Task) -> String {
    t.task_arn()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

impl Ecs {
    /// The container definitions of `task_definition`: one `DescribeTaskDefinition`.
    async fn containers(
        &self,
        task_definition: &str,
    ) -> Result<Vec<aws_sdk_ecs::types::ContainerDefinition>, EcsError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| self.error("DescribeTaskDefinition", task_definition, &e))?;
        Ok(out
            .task_definition()
            .map(|t| t.container_definitions().to_vec())
            .unwrap_or_default())
    }
}

impl Ecs {
    fn error<E>(
        &self,
        operation: &'static str,
        subject: &str,
        e: &aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
    ) -> EcsError
    where
        E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        EcsError {
            operation,
            subject: subject.to_string(),
            failure: failure::from_sdk(e, &format!("ecs:{operation}"), &self.endpoint),
        }
    }
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
            .map_err(|e| self.error("DescribeServices", cluster, &e))?;
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

    async fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<StoppedTask>, EcsError> {
        // ECS lists a service's stopped tasks for an hour or so; a hundred is more than a
        // failed rollout leaves.
        // ListTasks gives no order: a crash-looping service can have hundreds of stopped tasks,
        // so a few pages are read and described, and the newest kept.
        let mut pages = self
            .client
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
            .max_results(100)
            .into_paginator()
            .send();
        let mut described = Vec::new();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListTasks", cluster, &e))?;
            let arns = page.task_arns().to_vec();
            if !arns.is_empty() {
                let out = self
                    .client
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(arns))
                    .send()
                    .await
                    .map_err(|e| self.error("DescribeTasks", cluster, &e))?;
                described.extend(out.tasks().iter().cloned());
            }
            read += 1;
            if read >= STOPPED_TASK_PAGES {
                break;
            }
        }
        let mut tasks: Vec<StoppedTask> = described
            .iter()
            .filter(|t| t.task_definition_arn() == Some(task_definition))
            .map(|t| StoppedTask {
                id: task_id(t),
                task_definition: t.task_definition_arn().unwrap_or_default().to_string(),
                stopped_reason: t.stopped_reason().map(str::to_string),
                stop_code: t.stop_code().map(|c| c.as_str().to_string()),
                stopped_at: time(t.stopped_at()),
                containers: t
                    .containers()
                    .iter()
                    .map(|c| StoppedContainer {
                        name: c.name().unwrap_or_default().to_string(),
                        exit_code: c.exit_code(),
                        reason: c.reason().map(str::to_string),
                    })
                    .collect(),
            })
            .collect();
        tasks.sort_by(|a, b| b.stopped_at.cmp(&a.stopped_at).then(a.id.cmp(&b.id)));
        tasks.truncate(STOPPED_TASKS);
        Ok(tasks)
    }

    async fn container_images(
        &self,
        task_definition: &str,
    ) -> Result<BTreeMap<String, String>, EcsError> {
        Ok(self
            .containers(task_definition)
            .await?
            .iter()
            .filter_map(|c| Some((c.name()?.to_string(), c.image()?.to_string())))
            .collect())
    }

    async fn running_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<RunningTask>, EcsError> {
        let listed = self
            .client
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .max_results(100)
            .send()
            .await
            .map_err(|e| self.error("ListTasks", cluster, &e))?;
        let arns = listed.task_arns().to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .map_err(|e| self.error("DescribeTasks", cluster, &e))?;
        let mut tasks: Vec<RunningTask> = out
            .tasks()
            .iter()
            .map(|t| RunningTask {
                id: task_id(t),
                task_definition: t.task_definition_arn().unwrap_or_default().to_string(),
                last_status: t.last_status().unwrap_or_default().to_string(),
                exec_enabled: t.enable_execute_command(),
                containers: t
                    .containers()
                    .iter()
                    .map(|c| {
                        let agent = c
                            .managed_agents()
                            .iter()
                            .find(|a| a.name().map(|n| n.as_str()) == Some("ExecuteCommandAgent"))
                            .and_then(|a| a.last_status().map(str::to_string));
                        (c.name().unwrap_or_default().to_string(), agent)
                    })
                    .collect(),
                started_at: time(t.started_at()),
            })
            .collect();
        tasks.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(tasks)
    }

    async fn log_sources(
        &self,
        task_definition: &str,
    ) -> Result<BTreeMap<String, LogSource>, EcsError> {
        let mut sources = BTreeMap::new();
        for c in &self.containers(task_definition).await? {
            let Some(log) = c.log_configuration() else {
                continue;
            };
            if log.log_driver().as_str() != "awslogs" {
                continue;
            }
            let options = log.options();
            let option = |k: &str| options.and_then(|o| o.get(k)).cloned();
            if let Some(group) = option("awslogs-group") {
                sources.insert(
                    c.name().unwrap_or_default().to_string(),
                    LogSource {
                        group,
                        region: option("awslogs-region"),
                        stream_prefix: option("awslogs-stream-prefix"),
                    },
                );
            }
        }
        Ok(sources)
    }

    async fn previous_image(
        &self,
        task_definition: &str,
        container: &str,
        skip: &[String],
    ) -> Result<Option<(String, String)>, EcsError> {
        let Some((family, _)) = family_and_revision(task_definition) else {
            return Ok(None);
        };
        let image_of = |arn: String| async move {
            let out = self
                .client
                .describe_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| self.error("DescribeTaskDefinition", &arn, &e))?;
            let image = out
                .task_definition()
                .map(|t| t.container_definitions())
                .unwrap_or_default()
                .iter()
                .find(|c| c.name() == Some(container))
                .and_then(|c| c.image())
                .map(str::to_string);
            Ok::<_, EcsError>(image)
        };
        let current = image_of(task_definition.to_string()).await?;
        // Every revision of the family, active (kept when the root module deregisters none, as
        // the bundled one) and inactive, each list newest first.
        let mut lists: Vec<Vec<String>> = Vec::new();
        for status in [
            aws_sdk_ecs::types::TaskDefinitionStatus::Active,
            aws_sdk_ecs::types::TaskDefinitionStatus::Inactive,
        ] {
            let mut arns = Vec::new();
            let mut pages = self
                .client
                .list_task_definitions()
                .family_prefix(family)
                .status(status)
                .sort(aws_sdk_ecs::types::SortOrder::Desc)
                .into_paginator()
                .send();
            let mut read = 0;
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.error("ListTaskDefinitions", family, &e))?;
                // The prefix also lists other families that start with this one.
                arns.extend(
                    page.task_definition_arns()
                        .iter()
                        .filter(|a| family_and_revision(a).is_some_and(|(f, _)| f == family))
                        .cloned(),
                );
                read += 1;
                if read >= LIST_PAGES {
                    break;
                }
            }
            lists.push(arns);
        }
        for arn in older_revisions(task_definition, &lists[0], &lists[1])
            .into_iter()
            .take(PREVIOUS_REVISIONS)
        {
            let image = image_of(arn.clone()).await?;
            if image.is_some()
                && image != current
                && image.as_ref().is_none_or(|i| !skip.contains(i))
            {
                return Ok(image.map(|i| (i, arn)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arns(revisions: &[&str]) -> Vec<String> {
        revisions
            .iter()
            .map(|r| format!("arn:aws:ecs:us-east-1:1:task-definition/shop-orders:{r}"))
            .collect()
    }

    #[test]
    fn older_revisions_are_newest_first_whatever_their_status() {
        let current = "arn:aws:ecs:us-east-1:1:task-definition/shop-orders:7";
        // 6 was deregistered, 5 and 3 are still active, 8 is newer than the current one.
        let older = older_revisions(current, &arns(&["8", "7", "5", "3"]), &arns(&["6", "4"]));
        assert_eq!(older, arns(&["6", "5", "4", "3"]));
        // The current revision inactive: the active older ones still count.
        let older = older_revisions(current, &arns(&["5"]), &arns(&["7", "2"]));
        assert_eq!(older, arns(&["5", "2"]));
        assert_eq!(family_and_revision(current), Some(("shop-orders", "7")));
    }

    #[test]
    fn revisions_without_numbers_keep_the_listed_order() {
        let current = "arn:aws:ecs:us-east-1:1:task-definition/shop-orders:bbb";
        let older = older_revisions(current, &arns(&["ccc", "bbb", "aaa"]), &arns(&["zzz"]));
        assert_eq!(older, arns(&["aaa", "zzz"]));
    }
}
