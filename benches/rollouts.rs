//! Watching rollouts at fleet size: 20 services (`CDC_BENCH_SERVICES`) whose rollouts each take
//! the same number of polls, against the scripted ECS the tests use. Prints the time one
//! rollout takes (T), the time all of them take watched together, and watched one after another
//! (the sequential strategy of a shell loop over `aws ecs wait services-stable`), with the ratios
//! to T and the `DescribeServices` calls each made. Asserts nothing about time.

#[path = "../tests/support/ecs_sim.rs"]
mod ecs_sim;
#[path = "../tests/support/serve.rs"]
mod serve;

use std::time::{Duration, Instant, SystemTime};

use cdc_deploy::apply::rollout::{self, Watch, WatchSettings};
use cdc_deploy::clients::ecs::Ecs;
use ecs_sim::{Dep, EcsSimulator, Frame};

const POLLS: usize = 8;

fn frames(service: &str, since: f64) -> Vec<Frame> {
    let dep = |state: &'static str, running: i32| Dep {
        id: "ecs-svc/new",
        status: "PRIMARY",
        task_definition: format!("td/{service}:2"),
        rollout_state: state,
        reason: None,
        desired: 1,
        running,
        failed: 0,
        created_at: since + 1.0,
    };
    let mut f: Vec<Frame> = (0..POLLS)
        .map(|_| Frame::Service {
            status: "ACTIVE",
            deployments: vec![dep("IN_PROGRESS", 0)],
        })
        .collect();
    f.push(Frame::Service {
        status: "ACTIVE",
        deployments: vec![dep("COMPLETED", 1)],
    });
    f
}

fn main() {
    let n: usize = std::env::var("CDC_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings = WatchSettings {
            timeout: Duration::from_secs(600),
            first_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
        };
        let since = SystemTime::now();
        let since_secs = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let watch = |s: &str| Watch {
            consumer: s.into(),
            cluster: "bench".into(),
            service: s.into(),
            task_definition: format!("td/{s}:2"),
            before: Some(format!("td/{s}:1")),
            since,
        };
        let run = |names: Vec<String>, together: bool| async move {
            let sim = EcsSimulator::start().await;
            for s in &names {
                sim.script("bench", s, frames(s, since_secs));
            }
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(sim.url())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                    "bench", "bench", None, None, "bench",
                ))
                .load()
                .await;
            let ecs = Ecs::new(&config);
            let started = Instant::now();
            if together {
                let ws: Vec<Watch> = names.iter().map(|s| watch(s)).collect();
                rollout::watch(
                    &ecs,
                    &ws,
                    settings,
                    &cdc_deploy::cancel::Cancel::new(),
                    &|_: &str| {},
                )
                .await;
            } else {
                for s in &names {
                    rollout::watch(
                        &ecs,
                        &[watch(s)],
                        settings,
                        &cdc_deploy::cancel::Cancel::new(),
                        &|_: &str| {},
                    )
                    .await;
                }
            }
            (started.elapsed(), sim.calls().len())
        };
        let names: Vec<String> = (0..n).map(|i| format!("svc{i:02}")).collect();
        let (t, t_calls) = run(vec!["one".to_string()], true).await;
        let (together, calls) = run(names.clone(), true).await;
        let (sequential, seq_calls) = run(names, false).await;
        println!("rollouts of {n} services, each {POLLS} polls in progress (T = one rollout):");
        println!(
            "  T: {:.2} s, {t_calls} DescribeServices calls",
            t.as_secs_f64()
        );
        println!(
            "  together: {:.2} s = {:.2} × T, {calls} calls",
            together.as_secs_f64(),
            together.as_secs_f64() / t.as_secs_f64()
        );
        println!(
            "  one after another: {:.2} s = {:.2} × T, {seq_calls} calls",
            sequential.as_secs_f64(),
            sequential.as_secs_f64() / t.as_secs_f64()
        );
    });
}
