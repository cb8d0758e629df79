//! The rollout watcher against a scripted ECS, through the real AWS SDK client: each scenario's
//! verdict and reason, and how many `DescribeServices` calls a fleet costs.

mod support;

use std::time::{Duration, SystemTime};

use cdc_deploy::apply::rollout::{self, VerdictKind, Watch, WatchSettings};
use cdc_deploy::clients::ecs::Ecs;
use support::ecs_sim::{Dep, EcsSimulator, Frame};

const SINCE: u64 = 2_000_000_000;

async fn client(sim: &EcsSimulator, attempts: u32) -> Ecs {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sim.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await;
    Ecs::new(&config)
}

fn since() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(SINCE)
}

fn td(service: &str, revision: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/shop-{service}:{revision}")
}

fn watch(service: &str) -> Watch {
    Watch {
        consumer: service.into(),
        cluster: "shop-prod".into(),
        service: service.into(),
        task_definition: td(service, 2),
        before: Some(td(service, 1)),
        since: since(),
    }
}

fn dep(
    service: &str,
    revision: u32,
    status: &'static str,
    state: &'static str,
    running: i32,
) -> Dep {
    Dep {
        id: if revision == 2 {
            "ecs-svc/new"
        } else {
            "ecs-svc/old"
        },
        status,
        task_definition: td(service, revision),
        rollout_state: state,
        reason: None,
        desired: 2,
        running,
        failed: 0,
        created_at: if revision == 2 {
            SINCE as f64 + 5.0
        } else {
            1_000.0
        },
    }
}

fn active(deployments: Vec<Dep>) -> Frame {
    Frame::Service {
        status: "ACTIVE",
        deployments,
    }
}

/// The new deployment in progress for `k` polls, then done.
fn completes_after(service: &str, k: usize) -> Vec<Frame> {
    let mut frames: Vec<Frame> = (0..k)
        .map(|i| {
            active(vec![
                dep(service, 2, "PRIMARY", "IN_PROGRESS", (i as i32).min(1)),
                dep(service, 1, "ACTIVE", "COMPLETED", 2),
            ])
        })
        .collect();
    frames.push(active(vec![dep(service, 2, "PRIMARY", "COMPLETED", 2)]));
    frames
}

/// In progress for one poll, then the circuit breaker fails it with `failed` tasks.
fn circuit_breaker_fails(service: &str, failed: i32) -> Vec<Frame> {
    let mut last = dep(service, 2, "PRIMARY", "FAILED", 0);
    last.reason = Some("ECS deployment circuit breaker: tasks failed to start.");
    last.failed = failed;
    vec![
        active(vec![
            dep(service, 2, "PRIMARY", "IN_PROGRESS", 0),
            dep(service, 1, "ACTIVE", "COMPLETED", 2),
        ]),
        active(vec![last, dep(service, 1, "ACTIVE", "IN_PROGRESS", 2)]),
    ]
}

/// In progress for ever, one of two tasks running.
fn never_done(service: &str) -> Vec<Frame> {
    vec![active(vec![
        dep(service, 2, "PRIMARY", "IN_PROGRESS", 1),
        dep(service, 1, "ACTIVE", "COMPLETED", 2),
    ])]
}

fn quick(timeout: Duration) -> WatchSettings {
    WatchSettings {
        timeout,
        first_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn each_scenario_gets_its_verdict_and_reason() {
    let sim = EcsSimulator::start().await;
    sim.script("shop-prod", "done", completes_after("done", 3));
    sim.script("shop-prod", "broken", circuit_breaker_fails("broken", 3));
    // Ours appears, then is gone, and the old revision is primary and stable again.
    sim.script(
        "shop-prod",
        "back",
        vec![
            active(vec![
                dep("back", 2, "PRIMARY", "IN_PROGRESS", 0),
                dep("back", 1, "ACTIVE", "COMPLETED", 2),
            ]),
            active(vec![dep("back", 1, "PRIMARY", "COMPLETED", 2)]),
        ],
    );
    // Two deployments at once: a newer one, someone else's, is primary while ours is still in
    // progress: ours will not finish, and this is not a rollback (the primary is not the
    // revision from before the apply).
    let mut theirs = dep("two", 3, "PRIMARY", "IN_PROGRESS", 0);
    theirs.id = "ecs-svc/theirs";
    sim.script(
        "shop-prod",
        "two",
        vec![
            active(vec![
                theirs.clone(),
                dep("two", 2, "ACTIVE", "IN_PROGRESS", 1),
            ]),
            active(vec![theirs, dep("two", 2, "ACTIVE", "COMPLETED", 2)]),
        ],
    );
    // Ours runs, then is gone, and a third revision is primary: another run or pipeline
    // deployed after this one.
    let mut other = dep("next", 3, "PRIMARY", "COMPLETED", 2);
    other.id = "ecs-svc/other";
    sim.script(
        "shop-prod",
        "next",
        vec![
            active(vec![
                dep("next", 2, "PRIMARY", "IN_PROGRESS", 1),
                dep("next", 1, "ACTIVE", "COMPLETED", 1),
            ]),
            active(vec![other]),
        ],
    );
    sim.script("shop-prod", "slow", never_done("slow"));
    sim.script(
        "shop-prod",
        "gone",
        vec![Frame::Service {
            status: "INACTIVE",
            deployments: vec![],
        }],
    );
    let watches: Vec<Watch> = [
        "done", "broken", "back", "two", "next", "slow", "gone", "missing",
    ]
    .iter()
    .map(|s| watch(s))
    .collect();
    let lines = std::sync::Mutex::new(Vec::new());
    let verdicts = rollout::watch(
        &client(&sim, 3).await,
        &watches,
        quick(Duration::from_millis(600)),
        &cdc_deploy::cancel::Cancel::new(),
        &|l: &str| lines.lock().unwrap().push(l.to_string()),
    )
    .await;
    let kind = |n: &str| verdicts[n].kind;
    assert_eq!(kind("done"), VerdictKind::Succeeded, "{verdicts:?}");
    assert_eq!(kind("broken"), VerdictKind::Failed);
    assert_eq!(
        verdicts["broken"].reason,
        "ECS deployment circuit breaker: tasks failed to start. (3 of 3 failed launches)",
        "how far the breaker counted, from the deployment's failedTasks"
    );
    assert_eq!(kind("back"), VerdictKind::RolledBack);
    assert!(
        verdicts["back"]
            .reason
            .contains("shop-back:1` is primary again"),
        "{}",
        verdicts["back"].reason
    );
    assert_eq!(
        kind("two"),
        VerdictKind::Superseded,
        "{:?}",
        verdicts["two"]
    );
    assert!(
        verdicts["two"].reason.contains("shop-two:3` is primary"),
        "{}",
        verdicts["two"].reason
    );
    assert_eq!(
        kind("next"),
        VerdictKind::Superseded,
        "by identity: the primary is not the revision from before the apply"
    );
    assert!(verdicts["next"].reason.contains("shop-next:3` is primary"));
    assert_eq!(kind("slow"), VerdictKind::TimedOut);
    assert_eq!(kind("gone"), VerdictKind::NotStarted);
    assert!(verdicts["gone"].reason.contains("INACTIVE"));
    assert_eq!(kind("missing"), VerdictKind::NotStarted);
    assert!(verdicts["missing"].reason.contains("does not exist"));
    // A failure is told at the poll that shows it, not after the timeout.
    assert!(
        verdicts["broken"].duration < Duration::from_millis(300),
        "{:?}",
        verdicts["broken"].duration
    );
    // Progress is said when it changes, not on every poll.
    let lines = lines.into_inner().unwrap();
    let slow: Vec<&String> = lines.iter().filter(|l| l.contains("`slow`")).collect();
    assert_eq!(slow.len(), 2, "one progress line and the verdict: {slow:?}");
}

#[tokio::test]
async fn throttled_polls_are_not_verdicts() {
    let sim = EcsSimulator::start().await;
    sim.script("shop-prod", "done", completes_after("done", 2));
    // The second and third calls are throttled; with one attempt per call the watcher itself
    // must ask again.
    sim.throttle(&[2, 3]);
    let verdicts = rollout::watch(
        &client(&sim, 1).await,
        &[watch("done")],
        quick(Duration::from_secs(5)),
        &cdc_deploy::cancel::Cancel::new(),
        &|_: &str| {},
    )
    .await;
    assert_eq!(
        verdicts["done"].kind,
        VerdictKind::Succeeded,
        "{verdicts:?}"
    );
    // Three frames shown, two calls throttled in between: five calls, no early verdict.
    assert_eq!(sim.calls().len(), 5, "{:?}", sim.calls());
}

#[tokio::test]
async fn twenty_five_services_cost_three_calls_a_round() {
    let sim = EcsSimulator::start().await;
    let names: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    for n in &names {
        sim.script("shop-prod", n, completes_after(n, 4));
    }
    let watches: Vec<Watch> = names.iter().map(|n| watch(n)).collect();
    let verdicts = rollout::watch(
        &client(&sim, 3).await,
        &watches,
        quick(Duration::from_secs(10)),
        &cdc_deploy::cancel::Cancel::new(),
        &|_: &str| {},
    )
    .await;
    assert!(
        verdicts.values().all(|v| v.kind == VerdictKind::Succeeded),
        "{verdicts:?}"
    );
    let calls = sim.calls();
    assert!(
        calls
            .iter()
            .all(|(op, n)| op == "DescribeServices" && *n <= 10),
        "{calls:?}"
    );
    // Five rounds (four in progress, one done), three calls each: 10 + 10 + 5.
    assert_eq!(calls.len(), 15, "{calls:?}");
}

#[tokio::test]
async fn a_failed_rollout_carries_its_stopped_tasks_exit_codes_and_log_lines() {
    use cdc_deploy::apply::rollout::{EvidenceSettings, LogTail};
    use cdc_deploy::clients::logs::Logs;
    use support::ecs_sim::{SimLog, SimTask};

    let sim = EcsSimulator::start().await;
    sim.script("shop-prod", "done", completes_after("done", 1));
    sim.script("shop-prod", "broken", circuit_breaker_fails("broken", 2));
    sim.script("shop-prod", "slow", never_done("slow"));
    let task = |id: &str,
                revision: u32,
                at: f64,
                containers: Vec<(&str, Option<i32>, Option<&str>)>| SimTask {
        id: id.into(),
        task_definition: td("broken", revision),
        stopped_reason: "Essential container in task exited",
        stop_code: "EssentialContainerExited",
        stopped_at: at,
        containers: containers
            .into_iter()
            .map(|(n, c, r)| (n.to_string(), c, r.map(str::to_string)))
            .collect(),
    };
    sim.stopped_tasks(
        "shop-prod",
        "broken",
        vec![
            // An older revision's task: not evidence of this rollout.
            task("0ld0", 1, SINCE as f64 - 3_600.0, vec![("broken", Some(137), None)]),
            task("c3d4", 2, SINCE as f64 + 20.0, vec![
                ("broken", Some(1), None),
                ("log-router", Some(0), None),
            ]),
            task("a1b2", 2, SINCE as f64 + 40.0, vec![
                ("broken", None, Some("CannotPullContainerError: pull image manifest has been retried 5 time(s)")),
                ("log-router", Some(0), None),
            ]),
        ],
    );
    let group = format!("/ecs/{}", support::unique("evidence"));
    sim.task_definition(
        &td("broken", 2),
        vec![SimLog {
            container: "broken".into(),
            group: group.clone(),
            prefix: Some("ecs".into()),
            ..SimLog::default()
        }],
    );
    let mut lines: Vec<String> = (1..=29)
        .map(|i| format!("consumer: batch {i} committed"))
        .collect();
    lines.push("Error: KafkaError: broker kafka-1:9092 refused the connection".into());
    support::seed_log(&group, "ecs/broken/c3d4", &lines).await;
    // No stream for a1b2: its container never started.

    let watches: Vec<Watch> = ["done", "broken", "slow"]
        .iter()
        .map(|s| watch(s))
        .collect();
    let ecs = client(&sim, 3).await;
    let mut verdicts = rollout::watch(
        &ecs,
        &watches,
        quick(Duration::from_millis(300)),
        &cdc_deploy::cancel::Cancel::new(),
        &|_: &str| {},
    )
    .await;
    let logs = Logs::new(&support::aws().await);
    rollout::gather_evidence(
        &ecs,
        &logs,
        &watches,
        &mut verdicts,
        EvidenceSettings::default(),
    )
    .await;

    assert_eq!(verdicts["done"].kind, VerdictKind::Succeeded);
    assert!(verdicts["done"].stopped_tasks.is_empty());
    assert_eq!(verdicts["slow"].kind, VerdictKind::TimedOut);
    assert!(verdicts["slow"].stopped_tasks.is_empty());
    assert!(
        verdicts["slow"].evidence_gaps.is_empty(),
        "{:?}",
        verdicts["slow"].evidence_gaps
    );

    let broken = &verdicts["broken"];
    assert_eq!(broken.kind, VerdictKind::Failed);
    assert!(
        broken.evidence_gaps.is_empty(),
        "{:?}",
        broken.evidence_gaps
    );
    let ids: Vec<&str> = broken
        .stopped_tasks
        .iter()
        .map(|t| t.task.id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["a1b2", "c3d4"],
        "the new revision's tasks, newest first"
    );
    let newest = &broken.stopped_tasks[0];
    assert_eq!(
        newest.task.stopped_reason.as_deref(),
        Some("Essential container in task exited")
    );
    assert_eq!(
        newest.task.stop_code.as_deref(),
        Some("EssentialContainerExited")
    );
    assert_eq!(
        newest.task.containers[0].reason.as_deref(),
        Some("CannotPullContainerError: pull image manifest has been retried 5 time(s)")
    );
    assert!(
        matches!(&newest.logs["broken"], LogTail::Unavailable(why) if why.contains("ecs/broken/a1b2")),
        "{:?}",
        newest.logs
    );
    assert!(
        !newest.logs.contains_key("log-router"),
        "a container that exited 0 did not fail"
    );
    let older = &broken.stopped_tasks[1];
    assert_eq!(older.task.containers[0].exit_code, Some(1));
    let LogTail::Lines {
        group: g,
        stream,
        lines: tail,
    } = &older.logs["broken"]
    else {
        panic!("{:?}", older.logs)
    };
    assert_eq!(
        (g.as_str(), stream.as_str()),
        (group.as_str(), "ecs/broken/c3d4")
    );
    assert_eq!(tail.len(), 20, "{tail:?}");
    assert_eq!(tail[0], "consumer: batch 11 committed");
    assert_eq!(
        tail[19],
        "Error: KafkaError: broker kafka-1:9092 refused the connection"
    );
    // Evidence is gathered once, for the services that did not succeed only.
    let calls = sim.calls();
    let count = |op: &str| calls.iter().filter(|(o, _)| o == op).count();
    assert_eq!(count("ListTasks"), 2, "{calls:?}");
    assert_eq!(
        count("DescribeTasks"),
        1,
        "slow has no stopped task: {calls:?}"
    );
    assert_eq!(count("DescribeTaskDefinition"), 1, "{calls:?}");
}
