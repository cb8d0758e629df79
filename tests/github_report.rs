//! The pull request comment, end to end: the binary run as the action against the strict fake
//! GitHub (every request checked against GitHub's REST description), with real webhook payloads.

mod support;

use std::path::Path;

use support::github::GithubFake;
use support::{run_action_env, write, Run};

const TOKEN: &str = "ghs_fakeTokenForTheTestsOnly0123456789";

fn consumer(root: &Path, name: &str, cpu: u32) {
    write(
        root,
        &format!("consumer_scripts/{name}/Dockerfile"),
        "FROM scratch\nCOPY app /app\n",
    );
    write(
        root,
        &format!("consumer_scripts/{name}/app/run.sh"),
        "echo\n",
    );
    write(
        root,
        &format!("consumer_scripts/{name}/consumer.toml"),
        &format!("cpu = {cpu}\nmemory = 512\n"),
    );
}

fn event(name: &str) -> String {
    format!(
        "{}/tests/fixtures/github/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The report comments of the `staging` environment on #2 that the bot wrote.
fn staging_reports(gh: &GithubFake) -> Vec<support::github::Comment> {
    gh.comments(2)
        .into_iter()
        .filter(|c| {
            c.body.contains("environment=staging") && c.author == support::github::BOT_LOGIN
        })
        .collect()
}

/// `plan --offline` on `event_file` as the `event_name` event, reporting to `gh`.
fn plan(
    ws: &Path,
    gh: &GithubFake,
    event_name: &str,
    event_file: &str,
    extra: &[(&str, &str)],
) -> Run {
    let mut inputs = vec![
        ("mode", "plan"),
        ("offline", "true"),
        ("project-name", "shop"),
        ("environment", "staging"),
        ("github-token", TOKEN),
    ];
    inputs.extend_from_slice(extra);
    run_action_env(
        ws,
        &inputs,
        &[
            ("GITHUB_API_URL", gh.url()),
            ("GITHUB_EVENT_NAME", event_name.to_string()),
            ("GITHUB_EVENT_PATH", event(event_file)),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_comment_per_environment_updated_in_place() {
    let gh = GithubFake::start().await;
    gh.require_token(TOKEN);
    // Someone else's comment, and the sticky comment of another environment: both left alone.
    gh.seed_comment_by(2, "octocat", "looks good");
    let other = gh.seed_comment(
        2,
        "<!-- cdc-deploy:report project=shop environment=production -->\nproduction's",
    );
    // A person's comment carrying the marker is not the report's: neither updated nor quoted.
    let forged = gh.seed_comment_by(
        2,
        "mallory",
        "<!-- cdc-deploy:report project=shop environment=staging plan=`![x](https://e)` -->\nmine",
    );
    let ws = tempfile::tempdir().unwrap();
    consumer(ws.path(), "orders", 256);

    let first = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[],
    );
    assert_eq!(first.code, 0, "{}", first.describe());
    let ours = staging_reports(&gh);
    assert_eq!(ours.len(), 1, "{:?}", gh.comments(2));
    assert!(ours[0].body.contains("`orders`"), "{}", ours[0].body);
    assert!(
        first.outputs["comment-url"].ends_with(&format!("#issuecomment-{}", ours[0].id)),
        "{:?}",
        first.outputs
    );
    // The token is masked before anything could print it, and never printed.
    first.assert_masked_once(TOKEN);

    // The same plan again: nothing to write. A changed plan: the same comment, updated.
    let again = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.synchronize.22.json",
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.describe());
    consumer(ws.path(), "billing", 256);
    let changed = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[],
    );
    assert_eq!(changed.code, 0, "{}", changed.describe());
    let ours = staging_reports(&gh);
    assert_eq!(ours.len(), 1, "still one comment: {:?}", gh.comments(2));
    assert!(ours[0].body.contains("`billing`"), "{}", ours[0].body);
    assert_eq!(gh.comments(2).len(), 4);
    assert!(gh
        .comments(2)
        .iter()
        .any(|c| c.id == forged && c.body.ends_with("mine")));
    assert!(gh
        .comments(2)
        .iter()
        .any(|c| c.id == other && c.body.ends_with("production's")));
    let writes = gh.requests_to("PATCH", "/repos/acme/cdc/issues/comments");
    assert_eq!(writes.len(), 1, "the unchanged run wrote nothing");
    assert_eq!(gh.requests_to("POST", "/repos/acme/cdc/issues").len(), 1);
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_comments_on_the_pull_request_its_commit_came_from() {
    let gh = GithubFake::start().await;
    gh.pull_for_commit("6113728f27ae82c7b1a177c8d03f9e96e0adf246", 7);
    let ws = tempfile::tempdir().unwrap();
    consumer(ws.path(), "orders", 256);
    let r = plan(ws.path(), &gh, "push", "push.0.json", &[]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(gh.comments(7).len(), 1, "{}", r.describe());
    assert!(gh.comments(7)[0]
        .body
        .starts_with("<!-- cdc-deploy:report project=shop environment=staging"));
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_comment_is_a_warning_and_a_server_error_is_retried() {
    let gh = GithubFake::start().await;
    let ws = tempfile::tempdir().unwrap();
    consumer(ws.path(), "orders", 256);
    gh.fail_next("POST", "/repos/acme/cdc/issues/2/comments", 403, 1);
    let refused = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[],
    );
    assert_eq!(
        refused.code,
        0,
        "the verdict is the plan's: {}",
        refused.describe()
    );
    assert!(
        refused.stdout.contains(
            "::warning::the comment on #2 was not written: GitHub refused to comment on #2 (403)"
        ) && refused.stdout.contains("`pull-requests: write`"),
        "{}",
        refused.describe()
    );
    assert_eq!(refused.outputs["comment-url"], "");
    assert!(gh.comments(2).is_empty());

    gh.fail_next("POST", "/repos/acme/cdc/issues/2/comments", 502, 1);
    let retried = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[],
    );
    assert_eq!(retried.code, 0, "{}", retried.describe());
    assert_eq!(gh.comments(2).len(), 1, "{}", retried.describe());
    assert_eq!(
        gh.requests_to("POST", "/repos/acme/cdc/issues/2/comments")
            .len(),
        3
    );

    // `comment: never` and `check-runs: false` ask GitHub nothing.
    let before = gh.requests().len();
    let never = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[("comment", "never"), ("check-runs", "false")],
    );
    assert_eq!(never.code, 0, "{}", never.describe());
    assert_eq!(gh.requests().len(), before);
    gh.assert_no_violations();
}

/// `deploy` of the image stage alone on `event_file`, reporting to `gh`.
fn deploy(ws: &Path, gh: &GithubFake, project: &str) -> Run {
    run_action_env(
        ws,
        &[
            ("mode", "deploy"),
            ("project-name", project),
            ("environment", "staging"),
            ("github-token", TOKEN),
        ],
        &[
            ("GITHUB_API_URL", gh.url()),
            ("GITHUB_EVENT_NAME", "push".to_string()),
            ("GITHUB_EVENT_PATH", event("push.0.json")),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_is_recorded_as_a_github_deployment_of_its_environment() {
    let gh = GithubFake::start().await;
    let ws = tempfile::tempdir().unwrap();
    let project = support::unique("gh");
    consumer(ws.path(), "orders", 256);
    let ok = deploy(ws.path(), &gh, &project);
    assert_eq!(ok.code, 0, "{}", ok.describe());
    let deployments = gh.deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let d = &deployments[0];
    assert_eq!(d.sha, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(d.environment, "staging");
    let states: Vec<&str> = d
        .statuses
        .iter()
        .filter(|s| !s.automatic)
        .map(|s| s.state.as_str())
        .collect();
    assert_eq!(states, ["in_progress", "success"], "{:?}", d.statuses);
    assert!(d
        .statuses
        .iter()
        .all(|s| s.log_url == "https://github.com/acme/cdc/actions/runs/42"));

    // Nothing changed: nothing to record. A failed build: the deployment fails.
    let again = deploy(ws.path(), &gh, &project);
    assert_eq!(again.code, 0, "{}", again.describe());
    assert_eq!(gh.deployments().len(), 1);
    write(
        ws.path(),
        "consumer_scripts/orders/Dockerfile",
        &format!("FROM {}\nRUN exit 3\n", support::base_image()),
    );
    let broken = deploy(ws.path(), &gh, &project);
    assert_eq!(broken.code, 1, "{}", broken.describe());
    let last = gh.deployments().pop().unwrap();
    assert_eq!(
        last.statuses
            .iter()
            .filter(|s| !s.automatic)
            .map(|s| s.state.as_str())
            .collect::<Vec<_>>(),
        ["in_progress", "failure"]
    );

    // A token without `deployments: write`: a warning, and the deploy's own verdict.
    gh.fail_next("POST", "/repos/acme/cdc/deployments", 403, 1);
    write(ws.path(), "consumer_scripts/orders/app/run.sh", "echo v3\n");
    write(
        ws.path(),
        "consumer_scripts/orders/Dockerfile",
        "FROM scratch\nCOPY app /app\n",
    );
    let refused = deploy(ws.path(), &gh, &project);
    assert_eq!(refused.code, 0, "{}", refused.describe());
    assert!(
        refused.stdout.contains("`deployments: write`"),
        "{}",
        refused.stdout
    );
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_consumer_is_a_check_run_opened_then_completed_with_its_result() {
    let gh = GithubFake::start().await;
    let ws = tempfile::tempdir().unwrap();
    let project = support::unique("gh");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "broken", 256);
    write(
        ws.path(),
        "consumer_scripts/broken/Dockerfile",
        &format!("FROM {}\nRUN exit 3\n", support::base_image()),
    );
    let r = deploy(ws.path(), &gh, &project);
    assert_eq!(r.code, 1, "{}", r.describe());
    let runs = gh.check_runs();
    let by_name = |n: &str| {
        runs.iter()
            .find(|c| c.name == format!("cdc-deploy / staging / {n}"))
            .unwrap_or_else(|| panic!("no check run for {n}: {runs:?}"))
    };
    let orders = by_name("orders");
    assert_eq!(orders.head_sha, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(
        (orders.status.as_str(), orders.conclusion.as_deref()),
        ("completed", Some("success"))
    );
    assert!(
        orders.started_at.is_some() && orders.updates >= 1,
        "opened in progress, then completed: {orders:?}"
    );
    assert!(
        orders
            .output
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("(built)"),
        "{orders:?}"
    );
    let broken = by_name("broken");
    assert_eq!(broken.conclusion.as_deref(), Some("failure"));
    assert_eq!(
        broken.output.title.as_deref(),
        Some("the image build failed")
    );
    let a = &broken.output.annotations;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["path"], "consumer_scripts/broken/Dockerfile");
    assert_eq!(a[0]["start_line"], 2);
    assert_eq!(a[0]["annotation_level"], "failure");

    // The fleet's check reports the run: failed, with both consumers in its report.
    let fleet = runs
        .iter()
        .find(|c| c.name == "cdc-deploy / staging")
        .unwrap_or_else(|| panic!("no fleet check: {runs:?}"));
    assert_eq!(fleet.conclusion.as_deref(), Some("failure"));
    let report = fleet.output.summary.as_deref().unwrap_or_default();
    assert!(
        report.contains("`orders`") && report.contains("`broken`"),
        "{report}"
    );

    // Nothing changed for `orders` on the next run: no check of its own, the fleet's says so.
    write(
        ws.path(),
        "consumer_scripts/broken/Dockerfile",
        "FROM scratch\nCOPY app /app\n",
    );
    let checks_before = gh.check_runs().len();
    let again = deploy(ws.path(), &gh, &project);
    assert_eq!(again.code, 0, "{}", again.describe());
    let mut new: Vec<(String, Option<String>)> = gh
        .check_runs()
        .into_iter()
        .skip(checks_before)
        .map(|c| (c.name, c.conclusion))
        .collect();
    new.sort();
    assert_eq!(
        new,
        [
            (
                "cdc-deploy / staging".to_string(),
                Some("success".to_string())
            ),
            (
                "cdc-deploy / staging / broken".to_string(),
                Some("success".to_string())
            )
        ]
    );
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_says_whether_it_applied_the_plan_the_pull_request_showed() {
    let gh = GithubFake::start().await;
    gh.pull_for_commit("6113728f27ae82c7b1a177c8d03f9e96e0adf246", 2);
    let ws = tempfile::tempdir().unwrap();
    let project = support::unique("gh");
    consumer(ws.path(), "orders", 256);
    let planned = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[("project-name", &project), ("offline", "false")],
    );
    assert_eq!(planned.code, 0, "{}", planned.describe());
    let digest = |body: &str| {
        body.lines()
            .next()
            .unwrap()
            .split("plan=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let shown = digest(&gh.comments(2)[0].body);
    let deployed = deploy(ws.path(), &gh, &project);
    assert_eq!(deployed.code, 0, "{}", deployed.describe());
    let comments = gh.comments(2);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].body.contains(&format!(
            "This deploy applied the plan this pull request showed (plan `{shown}`)"
        )),
        "{}",
        comments[0].body
    );

    // A plan, then a change nobody reviewed, then the deploy: it says so.
    write(ws.path(), "consumer_scripts/orders/app/run.sh", "echo v2\n");
    let planned = plan(
        ws.path(),
        &gh,
        "pull_request",
        "pull_request.opened.0.json",
        &[("project-name", &project), ("offline", "false")],
    );
    assert_eq!(planned.code, 0, "{}", planned.describe());
    write(ws.path(), "consumer_scripts/orders/app/run.sh", "echo v3\n");
    let deployed = deploy(ws.path(), &gh, &project);
    assert_eq!(deployed.code, 0, "{}", deployed.describe());
    let body = &gh.comments(2)[0].body;
    assert!(
        body.contains("is not the one this pull request showed"),
        "{body}"
    );
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_deploy_completes_its_open_check_runs_as_cancelled() {
    let gh = GithubFake::start().await;
    let ws = tempfile::tempdir().unwrap();
    let project = support::unique("gh");
    write(
        ws.path(),
        "consumer_scripts/slow/Dockerfile",
        &format!(
            "FROM {}\nRUN echo building-slowly {project} && sleep 60\n",
            support::base_image()
        ),
    );
    let (r, _) = support::run_action_signalled(
        ws.path(),
        &[
            ("mode", "deploy"),
            ("project-name", &project),
            ("environment", "staging"),
            ("github-token", TOKEN),
            ("build-concurrency", "1"),
        ],
        &[
            ("GITHUB_API_URL", gh.url()),
            ("GITHUB_EVENT_NAME", "push".to_string()),
            ("GITHUB_EVENT_PATH", event("push.0.json")),
        ],
        |out| out.contains("building-slowly"),
        libc::SIGTERM,
    );
    assert_eq!(r.code, 143, "{}", r.describe());
    assert_eq!(r.outputs["result"], "cancelled");
    let runs = gh.check_runs();
    assert_eq!(runs.len(), 2, "the fleet's and `slow`'s: {runs:?}");
    for run in &runs {
        assert_eq!(run.status, "completed");
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"), "{runs:?}");
    }
    let d = gh.deployments().pop().expect("a deployment");
    assert_eq!(
        d.statuses
            .iter()
            .filter(|s| !s.automatic)
            .map(|s| s.state.as_str())
            .collect::<Vec<_>>(),
        ["in_progress", "failure"]
    );
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_request_waits_as_github_asks_and_a_refusal_is_not_retried() {
    use cdc_deploy::clients::github::{GitHub as _, GithubApi};
    use support::github::Fault;
    let gh = GithubFake::start().await;
    gh.inject(
        "POST",
        "/repos/acme/cdc/issues/5/comments",
        Fault::SecondaryRateLimit {
            status: 403,
            retry_after: std::time::Duration::from_secs(1),
        },
        1,
    );
    let api = GithubApi::new(&gh.url(), "acme/cdc", TOKEN).unwrap();
    let started = std::time::Instant::now();
    api.create_comment(5, "hello").await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gh.comments(5).len(), 1);
    assert_eq!(
        gh.requests_to("POST", "/repos/acme/cdc/issues/5/comments")
            .len(),
        2
    );

    gh.fail_next("POST", "/repos/acme/cdc/issues/5/comments", 403, 1);
    let e = api.create_comment(5, "again").await.unwrap_err();
    assert!(e.is_refusal(), "{e}");
    assert_eq!(
        gh.requests_to("POST", "/repos/acme/cdc/issues/5/comments")
            .len(),
        3,
        "asked once"
    );
    gh.assert_no_violations();
}
