//! What a no-op costs at fleet size, counted where it lands: for fleets of 10, 100 and 500
//! consumers (`CDC_BENCH_FLEETS=10,100,500`) whose repositories and images already exist and
//! whose Terraform state (the test root module's `terraform_data`, three per consumer, in S3 on
//! moto) is applied, a second deploy of the same commit:
//!
//! - the GitHub requests it makes (the fake GitHub server, which checks each against GitHub's
//!   description): the comment's look-up and update, the fleet's check run;
//! - the Terraform commands it runs and its wall time, by default (no plan when the entries and
//!   inputs equal the applied ones) and with `terraform-refresh: always` (a plan that refreshes
//!   every resource).
//!
//! Prints figures; asserts only that each run succeeds. Run it with
//! `scripts/bench.sh --bench fleet_costs`, which starts the servers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Instant;

use support::github::GithubFake;
use support::terraform::{recording_terraform, Backend};

const TOKEN: &str = "ghs_fakeTokenForTheTestsOnly0123456789";

fn event() -> String {
    format!(
        "{}/tests/fixtures/github/events/push.0.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// One deploy of the fleet in `root`: its wall time, the Terraform commands it ran (from the
/// recording wrapper's log) and the GitHub requests it made.
fn deploy(
    root: &Path,
    project: &str,
    backend: &Backend,
    gh: &GithubFake,
    terraform: &Path,
    log: &Path,
    refresh: &str,
) -> (f64, Vec<String>, usize) {
    let before_log = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count();
    let before_gh = gh.requests().len();
    let config = backend.config();
    let t = Instant::now();
    let run = support::run_action_env(
        root,
        &[
            ("mode", "deploy"),
            ("project-name", project),
            ("environment", "staging"),
            ("github-token", TOKEN),
            ("terraform", "true"),
            ("terraform-dir", "infra"),
            ("terraform-backend-config", config.as_str()),
            ("terraform-refresh", refresh),
            ("wait", "false"),
        ],
        &[
            ("GITHUB_API_URL", gh.url()),
            ("GITHUB_EVENT_NAME", "push".to_string()),
            ("GITHUB_EVENT_PATH", event()),
            ("TERRAFORM_PATH", terraform.display().to_string()),
        ],
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{}", run.describe());
    let verbs: Vec<String> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(before_log)
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect();
    (secs, verbs, gh.requests().len() - before_gh)
}

fn main() {
    let fleets: Vec<usize> = std::env::var("CDC_BENCH_FLEETS")
        .unwrap_or_else(|_| "10,100,500".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("| consumers | run | Terraform commands | wall time | GitHub requests |");
        println!("|---|---|---|---|---|");
        for n in fleets {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            support::fleet::write_fleet(root, n);
            let main = std::fs::read_to_string(support::terraform::fixture_root().join("main.tf"))
                .unwrap();
            support::write(root, "infra/main.tf", &main);
            let project = support::unique("costs");
            support::fleet::seed_fleet(root, &project, &[]).await;
            let backend = Backend::new().await;
            let gh = GithubFake::start().await;
            let tools = tempfile::tempdir().unwrap();
            let log = tools.path().join("commands");
            let terraform = recording_terraform(tools.path(), &log);
            let run =
                |refresh: &str| deploy(root, &project, &backend, &gh, &terraform, &log, refresh);
            let (first, _, _) = run("when-changed");
            eprintln!(
                "{n} consumers: first deploy (applies {} resources) in {first:.1} s",
                3 * n
            );
            for (label, refresh) in [
                ("no-op", "when-changed"),
                ("no-op, `terraform-refresh: always`", "always"),
            ] {
                let (secs, verbs, requests) = run(refresh);
                println!(
                    "| {n} | {label} | {} (`{}`) | {secs:.1} s | {requests} |",
                    verbs.len(),
                    verbs.join(" ")
                );
            }
        }
    });
}
