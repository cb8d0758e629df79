//! The rollout stage: watch each changed service's **own** deployment (the one running the task
//! definition revision Terraform just applied) to a verdict, for the whole fleet at once.
//!
//! "The service is stable" is not "my deployment succeeded": after a circuit-breaker rollback
//! the service is stable on the old revision. So each service is judged by its deployment of
//! the new revision. Services are described ten per call, per cluster, every round; rounds start
//! quick and back off to a ceiling; an overall timeout ends the rest. A failed call that may
//! succeed later (throttling, a server error) is not a verdict. This module reads ECS only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::cancel::{or_cancelled, Cancel};
use crate::clients::ecs::{
    Deployer, Deployment, Described, LogSource, ServiceState, StoppedTask, DESCRIBE_BATCH,
};
use crate::clients::logs::LogReader;

/// A deployment created this long before the apply started still counts as the apply's (clocks
/// of the runner and of AWS differ a little).
const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// One service to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub consumer: String,
    pub cluster: String,
    pub service: String,
    /// The revision the service should reach (its ARN).
    pub task_definition: String,
    /// The revision it ran before the apply, when it existed: a primary that is this one again
    /// is a rollback; another one, someone else's newer deployment.
    pub before: Option<String>,
    /// When the apply started: the deployment is created at or after it.
    pub since: SystemTime,
}

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// Its deployment completed with every task running.
    Succeeded,
    /// The circuit breaker stopped it (`rolloutState` `FAILED`).
    Failed,
    /// Its deployment is gone and an older task definition is primary again.
    RolledBack,
    /// A newer deployment, not this run's (a manual `update-service`, another pipeline or run),
    /// replaced it: the service went on past this run's revision. Not a failure of this run.
    Superseded,
    /// Still in progress when the wait ended.
    TimedOut,
    /// The service is missing, inactive or draining, or no deployment of the revision exists.
    NotStarted,
    /// ECS could not be asked (a refused permission, say).
    Unknown,
    /// The run was cancelled while the rollout was in progress.
    Cancelled,
}

impl VerdictKind {
    /// Whether the rollout ended well for this run: its deployment succeeded, or someone's newer
    /// one replaced it (the consumer counts as deployed, nothing to put back).
    pub fn is_success(self) -> bool {
        matches!(self, VerdictKind::Succeeded | VerdictKind::Superseded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Succeeded => "succeeded",
            VerdictKind::Failed => "failed",
            VerdictKind::RolledBack => "rolled back",
            VerdictKind::Superseded => "superseded",
            VerdictKind::TimedOut => "timed out",
            VerdictKind::NotStarted => "not started",
            VerdictKind::Unknown => "unknown",
            VerdictKind::Cancelled => "cancelled",
        }
    }
}

/// A rollout's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// Why, in words (ECS's `rolloutStateReason` where it gives one).
    pub reason: String,
    pub duration: Duration,
    pub running: i32,
    pub desired: i32,
    pub deployment_id: Option<String>,
    /// For a verdict other than success: the service's events since the deployment started,
    /// newest first (untrusted text).
    pub events: Vec<String>,
    /// For a verdict other than success: the stopped tasks of the new revision, newest first,
    /// each failed container with the last lines of its log (untrusted text).
    pub stopped_tasks: Vec<TaskEvidence>,
    /// Evidence that could not be gathered, and why.
    pub evidence_gaps: Vec<String>,
}

/// A stopped task of a rollout that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskEvidence {
    pub task: StoppedTask,
    /// The last lines of each failed container's log, by container name.
    pub logs: BTreeMap<String, LogTail>,
}

impl TaskEvidence {
    /// One line: the task, why it stopped, and each failed container's exit code and reason.
    pub fn summary(&self) -> String {
        let t = &self.task;
        let mut out = format!(
            "task `{}` stopped: {}",
            t.id,
            t.stopped_reason.as_deref().unwrap_or("no reason given")
        );
        if let Some(code) = &t.stop_code {
            out.push_str(&format!(" (`{code}`)"));
        }
        for c in t.containers.iter().filter(|c| c.failed()) {
            out.push_str(&format!("; `{}`", c.name));
            if let Some(code) = c.exit_code {
                out.push_str(&format!(" exited {code}"));
            }
            if let Some(r) = &c.reason {
                out.push_str(&format!(": {r}"));
            }
        }
        out
    }
}

/// The end of one container's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTail {
    /// Oldest first.
    Lines {
        group: String,
        stream: String,
        lines: Vec<String>,
    },
    /// Why there are no lines.
    Unavailable(String),
}

/// Events of a service told since `since`, newest first, at most this many.
const EVIDENCE_EVENTS: usize = 10;

fn events_since(described: &Described, since: SystemTime) -> Vec<String> {
    let Described::Found(s) = described else {
        return Vec::new();
    };
    s.events
        .iter()
        .filter(|e| e.created_at.is_none_or(|c| c + CLOCK_SKEW >= since))
        .take(EVIDENCE_EVENTS)
        .map(|e| e.message.clone())
        .collect()
}

/// Where a rollout stands after one look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Done {
        kind: VerdictKind,
        reason: String,
    },
    Waiting {
        running: i32,
        desired: i32,
        failed: i32,
    },
}

/// What is remembered between looks at one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The deployment of the new revision, once seen.
    pub deployment: Option<String>,
    /// Its failed task launches and desired count at the last look.
    pub failed: i32,
    pub desired: i32,
}

/// Failed task launches after which ECS's circuit breaker stops a deployment: half its desired
/// count (rounded up), at least 3 and at most 200. A one-task consumer gets three tries.
/// https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html
pub fn breaker_threshold(desired: i32) -> i32 {
    ((desired.max(0) + 1) / 2).clamp(3, 200)
}

/// `3 of 3 failed launches`: how far the circuit breaker had counted.
fn launches(failed: i32, desired: i32) -> String {
    format!("{failed} of {} failed launches", breaker_threshold(desired))
}

fn ours<'a>(w: &Watch, s: &'a ServiceState) -> Option<&'a Deployment> {
    s.deployments.iter().find(|d| {
        d.task_definition == w.task_definition
            && d.created_at.is_none_or(|c| c + CLOCK_SKEW >= w.since)
    })
}

/// Judge one look at a service. Pure.
pub fn judge(w: &Watch, described: &Described, seen: &mut Seen) -> Progress {
    let s = match described {
        Described::Missing { reason } => {
            return Progress::Done {
                kind: VerdictKind::NotStarted,
                reason: format!(
                    "the service `{}` does not exist in `{}` ({reason})",
                    w.service, w.cluster
                ),
            }
        }
        Described::Found(s) => s,
    };
    if s.status != "ACTIVE" {
        return Progress::Done {
            kind: VerdictKind::NotStarted,
            reason: format!("the service `{}` is {}", w.service, s.status),
        };
    }
    let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
    // Another revision than this run's and than the one before it is primary: someone deployed
    // after this run (identity, not time, tells it from a rollback).
    let newer = primary.filter(|p| {
        p.task_definition != w.task_definition
            && w.before.as_deref().is_some_and(|b| b != p.task_definition)
    });
    let superseded = |p: &Deployment| Progress::Done {
        kind: VerdictKind::Superseded,
        reason: format!(
            "a newer deployment, not this run's, replaced it: `{}` is primary",
            p.task_definition
        ),
    };
    match ours(w, s) {
        Some(d) => {
            seen.deployment = Some(d.id.clone());
            seen.failed = seen.failed.max(d.failed_tasks);
            seen.desired = d.desired;
            match d.rollout_state.as_deref() {
                Some("FAILED") => Progress::Done {
                    kind: VerdictKind::Failed,
                    reason: format!(
                        "{} ({})",
                        d.rollout_state_reason
                            .clone()
                            .unwrap_or_else(|| "the deployment failed".into()),
                        launches(seen.failed, d.desired)
                    ),
                },
                Some("COMPLETED") if d.running >= d.desired => Progress::Done {
                    kind: VerdictKind::Succeeded,
                    reason: format!(
                        "{} of {} tasks running the new revision",
                        d.running, d.desired
                    ),
                },
                // Without a circuit breaker ECS reports no rollout state: the deployment is done
                // when it is the only one and all its tasks run.
                None if d.status == "PRIMARY"
                    && s.deployments.len() == 1
                    && d.running >= d.desired =>
                {
                    Progress::Done {
                        kind: VerdictKind::Succeeded,
                        reason: format!(
                            "{} of {} tasks running the new revision",
                            d.running, d.desired
                        ),
                    }
                }
                // Not done, and someone else's newer deployment is primary: it never will be.
                _ => match newer {
                    Some(p) if d.status != "PRIMARY" => superseded(p),
                    _ => Progress::Waiting {
                        running: d.running,
                        desired: d.desired,
                        failed: d.failed_tasks,
                    },
                },
            }
        }
        None => {
            if let Some(p) = newer {
                return superseded(p);
            }
            let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
            let older = primary.map_or("another task definition".to_string(), |p| {
                format!("`{}`", p.task_definition)
            });
            let rolled_back_since = primary
                .and_then(|p| p.created_at)
                .is_some_and(|c| c + CLOCK_SKEW >= w.since);
            if seen.deployment.is_some() || rolled_back_since {
                let counted = if seen.deployment.is_some() && seen.failed > 0 {
                    format!(" after {}", launches(seen.failed, seen.desired))
                } else {
                    String::new()
                };
                Progress::Done {
                    kind: VerdictKind::RolledBack,
                    reason: format!("its deployment is gone{counted} and {older} is primary again"),
                }
            } else {
                Progress::Done {
                    kind: VerdictKind::NotStarted,
                    reason: format!(
                        "no deployment of `{}` was started; {older} is primary",
                        w.task_definition
                    ),
                }
            }
        }
    }
}

/// How long to wait, and how often to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchSettings {
    pub timeout: Duration,
    pub first_interval: Duration,
    pub max_interval: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            timeout: Duration::from_secs(15 * 60),
            first_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(15),
        }
    }
}

/// Consecutive failed rounds of a non-transient kind after which a service is `unknown`.
const GIVE_UP_AFTER: u32 = 3;

/// Watch every rollout to a verdict. `progress` gets a line when a rollout's counts change or it
/// ends (never one per poll per service). When the time is up, one last round looks before what
/// is still in progress is called timed out.
/// When `cancel` fires, watching stops at once and what is in progress is called cancelled.
pub async fn watch(
    deployer: &dyn Deployer,
    watches: &[Watch],
    settings: WatchSettings,
    cancel: &Cancel,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> BTreeMap<String, Verdict> {
    let started = Instant::now();
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut last: BTreeMap<String, (i32, i32, i32)> = BTreeMap::new();
    let mut described_last: BTreeMap<String, Described> = BTreeMap::new();
    let mut refused: BTreeMap<String, u32> = BTreeMap::new();
    let mut interval = settings.first_interval;
    let verdict = |kind: VerdictKind, reason: String, running: i32, desired: i32| Verdict {
        kind,
        reason,
        duration: started.elapsed(),
        running,
        desired,
        deployment_id: None,
        events: Vec::new(),
        stopped_tasks: Vec::new(),
        evidence_gaps: Vec::new(),
    };
    let mut last_round = false;
    loop {
        let pending: Vec<&Watch> = watches
            .iter()
            .filter(|w| !verdicts.contains_key(&w.consumer))
            .collect();
        if pending.is_empty() {
            break;
        }
        // One call per ten services of a cluster, all in flight at once.
        let mut by_cluster: BTreeMap<&str, Vec<&Watch>> = BTreeMap::new();
        for w in &pending {
            by_cluster.entry(w.cluster.as_str()).or_default().push(w);
        }
        let batches: Vec<(&str, Vec<&Watch>)> = by_cluster
            .into_iter()
            .flat_map(|(c, ws)| {
                ws.chunks(DESCRIBE_BATCH)
                    .map(|b| (c, b.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let round = futures_util::future::join_all(batches.iter().map(|(cluster, ws)| {
            let names: Vec<String> = ws.iter().map(|w| w.service.clone()).collect();
            async move { deployer.describe_services(cluster, &names).await }
        }));
        let Ok(answers) = or_cancelled(cancel, round).await else {
            break;
        };
        for ((_, ws), answer) in batches.iter().zip(answers) {
            match answer {
                Ok(found) => {
                    for w in ws {
                        refused.remove(&w.consumer);
                        let described =
                            found
                                .get(&w.service)
                                .cloned()
                                .unwrap_or(Described::Missing {
                                    reason: "not returned".into(),
                                });
                        let s = seen.entry(w.consumer.clone()).or_default();
                        match judge(w, &described, s) {
                            Progress::Done { kind, reason } => {
                                let (running, desired) = match &described {
                                    Described::Found(st) => (st.running, st.desired),
                                    Described::Missing { .. } => (0, 0),
                                };
                                progress(&format!(
                                    "rollout: `{}` {} after {:.0} s: {reason}",
                                    w.consumer,
                                    kind.as_str(),
                                    started.elapsed().as_secs_f64()
                                ));
                                let mut v = verdict(kind, reason, running, desired);
                                v.deployment_id = s.deployment.clone();
                                if kind != VerdictKind::Succeeded {
                                    v.events = events_since(&described, w.since);
                                }
                                verdicts.insert(w.consumer.clone(), v);
                            }
                            Progress::Waiting {
                                running,
                                desired,
                                failed,
                            } => {
                                let now = (running, desired, failed);
                                if last.get(&w.consumer) != Some(&now) {
                                    last.insert(w.consumer.clone(), now);
                                    progress(&format!(
                                        "rollout: `{}` {running}/{desired} running, {failed} failed",
                                        w.consumer
                                    ));
                                }
                                described_last.insert(w.consumer.clone(), described);
                            }
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "a poll failed; asking again next round");
                }
                Err(e) => {
                    for w in ws {
                        let n = refused.entry(w.consumer.clone()).or_default();
                        *n += 1;
                        if *n >= GIVE_UP_AFTER {
                            progress(&format!("rollout: `{}` cannot be watched: {e}", w.consumer));
                            verdicts.insert(
                                w.consumer.clone(),
                                verdict(
                                    VerdictKind::Unknown,
                                    format!("it could not be watched: {e}"),
                                    0,
                                    0,
                                ),
                            );
                        }
                    }
                }
            }
        }
        if verdicts.len() == watches.len() {
            break;
        }
        if last_round {
            for w in watches {
                if verdicts.contains_key(&w.consumer) {
                    continue;
                }
                let (running, desired, _) = last.get(&w.consumer).copied().unwrap_or_default();
                progress(&format!(
                    "rollout: `{}` timed out after {:.0} s ({running}/{desired} running)",
                    w.consumer,
                    settings.timeout.as_secs_f64()
                ));
                let mut v = verdict(
                    VerdictKind::TimedOut,
                    format!(
                        "still in progress after {:.0} s ({running}/{desired} running)",
                        settings.timeout.as_secs_f64()
                    ),
                    running,
                    desired,
                );
                v.deployment_id = seen.get(&w.consumer).and_then(|s| s.deployment.clone());
                if let Some(d) = described_last.get(&w.consumer) {
                    v.events = events_since(d, w.since);
                }
                verdicts.insert(w.consumer.clone(), v);
            }
            break;
        }
        let left = settings.timeout.saturating_sub(started.elapsed());
        let pause = if interval >= left {
            // The time is up before the next round: look once more at the end.
            last_round = true;
            left
        } else {
            let p = interval;
            interval = (interval.mul_f64(1.5)).min(settings.max_interval);
            p
        };
        if or_cancelled(cancel, tokio::time::sleep(pause))
            .await
            .is_err()
        {
            break;
        }
    }
    if let Some(why) = cancel.reason() {
        for w in watches {
            if verdicts.contains_key(&w.consumer) {
                continue;
            }
            let (running, desired, _) = last.get(&w.consumer).copied().unwrap_or_default();
            progress(&format!(
                "rollout: `{}` no longer watched: the run was cancelled by {why}",
                w.consumer
            ));
            let mut v = verdict(
                VerdictKind::Cancelled,
                format!(
                    "the run was cancelled by {why} while it was in progress ({running}/{desired} running); ECS goes on with the deployment"
                ),
                running,
                desired,
            );
            v.deployment_id = seen.get(&w.consumer).and_then(|s| s.deployment.clone());
            verdicts.insert(w.consumer.clone(), v);
        }
    }
    verdicts
}

/// How much evidence to gather for a rollout that did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceSettings {
    /// Last lines of each failed container's log.
    pub log_lines: usize,
    /// Services whose evidence is gathered at the same time.
    pub concurrency: usize,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            log_lines: 20,
            concurrency: 4,
        }
    }
}

/// Gather, once, the evidence of every verdict other than success: the stopped tasks of the new
/// revision with each container's exit code and reason, and the last lines of each failed
/// container's log. A service that never started has no tasks to show; one that could not be
/// watched is not asked again. What cannot be read is said in `evidence_gaps`, never fatal.
pub async fn gather_evidence(
    deployer: &dyn Deployer,
    logs: &dyn LogReader,
    watches: &[Watch],
    verdicts: &mut BTreeMap<String, Verdict>,
    settings: EvidenceSettings,
) {
    use futures_util::StreamExt as _;
    let wanted: Vec<&Watch> = watches
        .iter()
        .filter(|w| {
            verdicts.get(&w.consumer).is_some_and(|v| {
                matches!(
                    v.kind,
                    VerdictKind::Failed | VerdictKind::RolledBack | VerdictKind::TimedOut
                )
            })
        })
        .collect();
    let gathered: Vec<(String, Vec<TaskEvidence>, Vec<String>)> =
        futures_util::stream::iter(wanted)
            .map(|w| async move {
                let (tasks, gaps) = evidence_of(deployer, logs, w, settings.log_lines).await;
                (w.consumer.clone(), tasks, gaps)
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
    for (consumer, tasks, gaps) in gathered {
        if let Some(v) = verdicts.get_mut(&consumer) {
            v.stopped_tasks = tasks;
            v.evidence_gaps = gaps;
        }
    }
}

/// The evidence as log lines: per rollout that did not succeed, its stopped tasks and the log
/// lines of each failed container (untrusted text: print it as such).
pub fn evidence_lines(verdicts: &BTreeMap<String, Verdict>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in verdicts
        .iter()
        .filter(|(_, v)| v.kind != VerdictKind::Succeeded)
    {
        for t in &v.stopped_tasks {
            out.push(format!("`{name}`: {}", t.summary()));
            for (container, tail) in &t.logs {
                match tail {
                    LogTail::Lines { stream, lines, .. } => {
                        out.push(format!("`{name}`: last lines of `{stream}`:"));
                        out.extend(lines.iter().map(|l| format!("  | {l}")));
                    }
                    LogTail::Unavailable(why) => {
                        out.push(format!("`{name}`: no log lines for `{container}`: {why}"));
                    }
                }
            }
        }
        for gap in &v.evidence_gaps {
            out.push(format!("`{name}`: not gathered: {gap}"));
        }
    }
    out
}

async fn evidence_of(
    deployer: &dyn Deployer,
    logs: &dyn LogReader,
    w: &Watch,
    log_lines: usize,
) -> (Vec<TaskEvidence>, Vec<String>) {
    let mut gaps = Vec::new();
    let tasks = match deployer
        .stopped_tasks(&w.cluster, &w.service, &w.task_definition)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            gaps.push(format!("stopped tasks: {e}"));
            return (Vec::new(), gaps);
        }
    };
    let failing = tasks
        .iter()
        .any(|t| t.containers.iter().any(|c| c.failed()));
    let mut sources_unread = false;
    let sources: BTreeMap<String, LogSource> = if failing && log_lines > 0 {
        match deployer.log_sources(&w.task_definition).await {
            Ok(s) => s,
            Err(e) => {
                gaps.push(format!("log configuration: {e}"));
                sources_unread = true;
                BTreeMap::new()
            }
        }
    } else {
        BTreeMap::new()
    };
    let mut evidence = Vec::new();
    for task in tasks {
        let mut tails = BTreeMap::new();
        if log_lines > 0 {
            for c in task.containers.iter().filter(|c| c.failed()) {
                let tail = match sources.get(&c.name) {
                    None if sources_unread => LogTail::Unavailable(
                        "the task definition's log configuration could not be read".into(),
                    ),
                    None => LogTail::Unavailable(
                        "the container does not log with the awslogs driver".into(),
                    ),
                    Some(src) => match src.stream(&c.name, &task.id) {
                        None => LogTail::Unavailable(format!(
                            "no awslogs-stream-prefix, so the stream in `{}` cannot be named",
                            src.group
                        )),
                        Some(stream) => {
                            match logs
                                .tail(src.region.as_deref(), &src.group, &stream, log_lines)
                                .await
                            {
                                Ok(lines) => LogTail::Lines {
                                    group: src.group.clone(),
                                    stream,
                                    lines,
                                },
                                Err(f) => LogTail::Unavailable(format!(
                                    "`{}` in `{}`: {f}",
                                    stream, src.group
                                )),
                            }
                        }
                    },
                };
                tails.insert(c.name.clone(), tail);
            }
        }
        evidence.push(TaskEvidence { task, logs: tails });
    }
    (evidence, gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Watch {
        Watch {
            consumer: "orders".into(),
            cluster: "c".into(),
            service: "orders".into(),
            task_definition: "td:2".into(),
            before: Some("td:1".into()),
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        }
    }

    fn dep(
        id: &str,
        td: &str,
        status: &str,
        state: Option<&str>,
        running: i32,
        at: u64,
    ) -> Deployment {
        Deployment {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            rollout_state: state.map(str::to_string),
            rollout_state_reason: None,
            desired: 2,
            running,
            pending: 0,
            failed_tasks: 0,
            created_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(at)),
        }
    }

    fn service(deployments: Vec<Deployment>) -> Described {
        Described::Found(ServiceState {
            name: "orders".into(),
            status: "ACTIVE".into(),
            desired: 2,
            running: 2,
            deployments,
            events: Vec::new(),
        })
    }

    #[test]
    fn a_stable_service_on_the_old_revision_is_not_a_success() {
        let w = watch();
        let mut seen = Seen::default();
        // In progress, then our deployment fails and the old revision is primary again.
        let p = judge(
            &w,
            &service(vec![
                dep("new", "td:2", "PRIMARY", Some("IN_PROGRESS"), 1, 1_001),
                dep("old", "td:1", "ACTIVE", Some("COMPLETED"), 2, 10),
            ]),
            &mut seen,
        );
        assert_eq!(
            p,
            Progress::Waiting {
                running: 1,
                desired: 2,
                failed: 0
            }
        );
        let p = judge(
            &w,
            &service(vec![dep(
                "old",
                "td:1",
                "PRIMARY",
                Some("COMPLETED"),
                2,
                10,
            )]),
            &mut seen,
        );
        assert!(
            matches!(
                p,
                Progress::Done {
                    kind: VerdictKind::RolledBack,
                    ..
                }
            ),
            "{p:?}"
        );
        let mut fresh = Seen::default();
        let p = judge(
            &w,
            &service(vec![dep(
                "new",
                "td:2",
                "PRIMARY",
                Some("COMPLETED"),
                2,
                1_001,
            )]),
            &mut fresh,
        );
        assert!(
            matches!(
                p,
                Progress::Done {
                    kind: VerdictKind::Succeeded,
                    ..
                }
            ),
            "{p:?}"
        );
    }

    #[test]
    fn the_circuit_breaker_counts_half_the_desired_count_from_3_to_200() {
        let t: Vec<i32> = [0, 1, 2, 6, 7, 8, 100, 399, 400, 1000]
            .into_iter()
            .map(breaker_threshold)
            .collect();
        assert_eq!(t, [3, 3, 3, 3, 4, 4, 50, 200, 200, 200]);
        // A rollback after failed launches says how many the breaker counted.
        let w = watch();
        let mut seen = Seen::default();
        let mut failing = dep("new", "td:2", "PRIMARY", Some("IN_PROGRESS"), 0, 1_001);
        failing.failed_tasks = 2;
        judge(&w, &service(vec![failing]), &mut seen);
        let p = judge(
            &w,
            &service(vec![dep(
                "old",
                "td:1",
                "PRIMARY",
                Some("COMPLETED"),
                2,
                10,
            )]),
            &mut seen,
        );
        assert!(
            matches!(&p, Progress::Done { kind: VerdictKind::RolledBack, reason } if reason.contains("after 2 of 3 failed launches")),
            "{p:?}"
        );
    }

    #[test]
    fn an_older_deployment_of_the_same_revision_is_not_ours() {
        let w = watch();
        let mut seen = Seen::default();
        let p = judge(
            &w,
            &service(vec![dep(
                "before",
                "td:2",
                "PRIMARY",
                Some("COMPLETED"),
                2,
                10,
            )]),
            &mut seen,
        );
        assert!(
            matches!(
                p,
                Progress::Done {
                    kind: VerdictKind::NotStarted,
                    ..
                }
            ),
            "{p:?}"
        );
    }

    #[test]
    fn failed_inactive_and_missing_are_said_at_once() {
        let w = watch();
        let mut d = dep("new", "td:2", "PRIMARY", Some("FAILED"), 0, 1_001);
        d.rollout_state_reason =
            Some("ECS deployment circuit breaker: tasks failed to start.".into());
        d.desired = 1;
        d.failed_tasks = 3;
        let p = judge(&w, &service(vec![d]), &mut Seen::default());
        assert_eq!(
            p,
            Progress::Done {
                kind: VerdictKind::Failed,
                reason: "ECS deployment circuit breaker: tasks failed to start. (3 of 3 failed launches)".into()
            }
        );
        let p = judge(
            &w,
            &Described::Missing {
                reason: "MISSING".into(),
            },
            &mut Seen::default(),
        );
        assert!(
            matches!(p, Progress::Done { kind: VerdictKind::NotStarted, ref reason } if reason.contains("does not exist"))
        );
        let inactive = Described::Found(ServiceState {
            status: "INACTIVE".into(),
            name: "orders".into(),
            desired: 0,
            running: 0,
            deployments: vec![],
            events: vec![],
        });
        let p = judge(&w, &inactive, &mut Seen::default());
        assert!(
            matches!(p, Progress::Done { kind: VerdictKind::NotStarted, ref reason } if reason.contains("INACTIVE"))
        );
    }
}
