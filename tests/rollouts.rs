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
    let mut failed = dep("broken", 2, "PRIMARY", "FAILED", 0);
    failed.reason = Some("ECS deployment circuit breaker: tasks failed to start.");
    failed.failed = 3;
    sim.script(
        "shop-prod",
        "broken",
        vec![
            active(vec![
                dep("broken", 2, "PRIMARY", "IN_PROGRESS", 0),
                dep("broken", 1, "ACTIVE", "COMPLETED", 2),
            ]),
            active(vec![failed, dep("broken", 1, "ACTIVE", "IN_PROGRESS", 2)]),
        ],
    );
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
    // Two deployments at once: another (newer) one is someone else's; ours completes.
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
    sim.script(
        "shop-prod",
        "slow",
        vec![active(vec![
            dep("slow", 2, "PRIMARY", "IN_PROGRESS", 1),
            dep("slow", 1, "ACTIVE", "COMPLETED", 2),
        ])],
    );
    sim.script(
        "shop-prod",
        "gone",
        vec![Frame::Service {
            status: "INACTIVE",
            deployments: vec![],
        }],
    );
    let watches: Vec<Watch> = ["done", "broken", "back", "two", "slow", "gone", "missing"]
        .iter()
        .map(|s| watch(s))
        .collect();
    let lines = std::sync::Mutex::new(Vec::new());
    let verdicts = rollout::watch(
        &client(&sim, 3).await,
        &watches,
        quick(Duration::from_millis(600)),
        &|l: &str| lines.lock().unwrap().push(l.to_string()),
    )
    .await;
    let kind = |n: &str| verdicts[n].kind;
    assert_eq!(kind("done"), VerdictKind::Succeeded, "{verdicts:?}");
    assert_eq!(kind("broken"), VerdictKind::Failed);
    assert_eq!(
        verdicts["broken"].reason,
        "ECS deployment circuit breaker: tasks failed to start."
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
        VerdictKind::Succeeded,
        "our deployment, not the newest one"
    );
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
