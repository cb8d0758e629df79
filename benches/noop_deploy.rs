//! A no-op `deploy` at fleet size: N consumers (100 by default, `CDC_BENCH_CONSUMERS`) whose
//! repositories and images already exist, run with the release binary as the action runs it,
//! behind counting proxies in front of moto and the registry. Prints the wall time and every
//! request the servers received, by operation, for the same commit and for a new commit with
//! nothing changed. Asserts nothing about time.
//!
//! `CDC_BENCH_BIN` runs another build of the binary (an older release, to compare).
//! Run it with `scripts/bench.sh --bench noop_deploy`, which starts the servers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::proxy::CountingProxy;

const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

fn show(label: &str, proxy: &CountingProxy) {
    let counts = proxy.counts();
    let total: usize = counts.values().sum();
    let writes = proxy.requests().iter().filter(|r| r.writes()).count();
    let detail: Vec<String> = counts.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    println!(
        "  {label}: {total} requests, {writes} writes ({})",
        detail.join(", ")
    );
}

fn main() {
    let n: usize = std::env::var("CDC_BENCH_CONSUMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let bin = std::env::var("CDC_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cdc-deploy").to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        support::fleet::write_fleet(root, n);
        let project = format!("noop{}", std::process::id());
        let t = Instant::now();
        // The commit tag of the first commit too, so a binary that looks it up finds it.
        support::fleet::seed_fleet(root, &project, &[format!("sha-{COMMIT_1}")]).await;
        eprintln!("seeded {n} repositories and images in {:.1?}", t.elapsed());

        let aws = CountingProxy::start(&support::moto_url()).await;
        let registry = CountingProxy::start(&format!("http://{}", support::registry())).await;
        println!("no-op deploy of {n} consumers with {bin}");
        for (label, commit) in [("same commit", COMMIT_1), ("new commit", COMMIT_2)] {
            aws.clear();
            registry.clear();
            let env = [
                ("AWS_ENDPOINT_URL", aws.url()),
                ("INPUT_REGISTRY-HOST", registry.url()),
            ];
            let t = Instant::now();
            let run = tokio::task::spawn_blocking({
                let root = root.to_path_buf();
                let project = project.clone();
                move || {
                    support::run_action_env(
                        &root,
                        &[
                            ("mode", "deploy"),
                            ("project-name", &project),
                            ("commit", commit),
                        ],
                        &env,
                    )
                }
            })
            .await
            .unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(run.code, 0, "{}", run.describe());
            println!("{label}: {secs:.2} s");
            show("AWS API", &aws);
            show("registry", &registry);
        }
    });
}
