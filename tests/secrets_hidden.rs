//! No secret in anything a run writes: the GitHub token, the registry's credentials, AWS keys,
//! the keys in `terraform-backend-config`, and an `[environment]` value whose key looks secret
//! (which Terraform's plan would print) are absent from the log, the job summary, the outputs,
//! the pull request comment and the check runs. The runner's `::add-mask::` lines, which tell
//! the runner what to mask, are the one place each appears.

mod support;

use support::github::GithubFake;
use support::terraform::{consumer, run_env, workspace, Backend, COMMIT_1};
use support::{unique, write, Run};

const TOKEN: &str = "ghs_fakeTokenForTheTestsOnly0123456789";
const API_TOKEN: &str = "sk_live_0a1b2c3d4e5f6789";
const AWS_SECRET: &str = "aws-secret-key-for-the-test-0123456789";
const BACKEND_SECRET: &str = "backend-secret-key-0123456789";

fn event(name: &str) -> String {
    format!(
        "{}/tests/fixtures/github/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Everything the run wrote, its mask commands left out.
fn written(r: &Run) -> String {
    r.everything()
        .lines()
        .filter(|l| !l.trim_start().starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_the_summary_the_outputs_or_github() {
    let gh = GithubFake::start().await;
    gh.require_token(TOKEN);
    let ws = workspace();
    consumer(ws.path(), "orders", 256);
    write(
        ws.path(),
        "consumer_scripts/orders/consumer.toml",
        &format!(
            "cpu = 256\nmemory = 512\n[environment]\nTOPIC = \"orders.events\"\nAPI_TOKEN = \"{API_TOKEN}\"\n"
        ),
    );
    let backend = Backend::new().await;
    let config = format!(
        "{}\naccess_key=AKIAEXAMPLEBACKEND01\nsecret_key={BACKEND_SECRET}",
        backend.config()
    );
    let project = unique("secrets");
    let env = |name: &str, file: &str| {
        vec![
            ("GITHUB_API_URL", gh.url()),
            ("GITHUB_EVENT_NAME", name.to_string()),
            ("GITHUB_EVENT_PATH", event(file)),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_string()),
        ]
    };
    let inputs = |mode: &'static str| {
        vec![
            ("mode", mode),
            ("github-token", TOKEN),
            ("terraform-backend-config", config.as_str()),
        ]
    };
    // A pull request's plan (the comment, Terraform's plan in the log), then the deploy (check
    // runs, the deployment, the apply in the log).
    let plan = run_env(
        ws.path(),
        &project,
        &backend,
        "plan",
        COMMIT_1,
        &inputs("plan"),
        &env("pull_request", "pull_request.opened.0.json"),
    );
    assert_eq!(plan.code, 0, "{}", plan.describe());
    let deploy = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_1,
        &inputs("deploy"),
        &env("push", "push.0.json"),
    );
    assert_eq!(deploy.code, 0, "{}", deploy.describe());
    // The plan shows the environment, with the secret-looking value hidden.
    assert!(plan.stdout.contains("API_TOKEN"), "{}", plan.stdout);
    assert!(!gh.comments(2).is_empty(), "a comment was written");
    assert!(!gh.check_runs().is_empty(), "check runs were written");

    let github: String = gh
        .requests()
        .iter()
        .filter_map(|r| r.body.as_ref().map(|b| b.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    for (what, secret) in [
        ("the GitHub token", TOKEN),
        ("an [environment] API_TOKEN", API_TOKEN),
        ("the AWS secret key", AWS_SECRET),
        ("a backend secret key", BACKEND_SECRET),
        ("the registry password", "123456789012-auth-token"),
    ] {
        for (run, r) in [("plan", &plan), ("deploy", &deploy)] {
            assert!(
                !written(r).contains(secret),
                "{what} in what the {run} wrote:\n{}",
                written(r)
            );
        }
        assert!(!github.contains(secret), "{what} sent to GitHub");
    }
    // Each is masked for the runner, as the runner needs it.
    for secret in [TOKEN, API_TOKEN, AWS_SECRET, BACKEND_SECRET] {
        assert!(
            deploy.stdout.contains(&format!("::add-mask::{secret}")),
            "{secret} is not masked for the runner"
        );
    }
}
