//! The action as GitHub's runner runs it, a black box: an image with the Dockerfile's runtime
//! stage (its Debian base made locally by debootstrap, this build's binary, the Terraform on
//! `PATH`), started with `docker run` the way the runner starts a container action (the mounts,
//! the working directory, every input of `action.yml` as `INPUT_*` with its default, the
//! `GITHUB_*` variables, AWS credentials in the environment), against moto (ECR, the S3 state),
//! the registry, the fake GitHub and the scripted ECS. The workspace belongs to another user than
//! the container's, as on GitHub's hosted runners.
//!
//! One difference from the runner, for the servers here: the container shares the host's
//! network (`--network host`) to reach them on 127.0.0.1.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cdc_deploy::clients::registry::Registry as _;
use support::ecs_sim::{Behaviour, EcsSimulator};
use support::github::{GithubFake, BOT_LOGIN};
use support::image::{action_image, docker, instructions, runtime_stage, Image};
use support::terraform::Backend;
use support::{unique, write, Run};

const TOKEN: &str = "ghs_runnerTokenForTheImageTestOnly0123456";
const PR_HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
const MERGE_1: &str = "5b1e3a0c9d8f7e6a5b4c3d2e1f0a9b8c7d6e5f41";
const MERGE_2: &str = "5b1e3a0c9d8f7e6a5b4c3d2e1f0a9b8c7d6e5f42";
/// The user the workspace belongs to: the runner's, not the container's root.
const RUNNER_UID: u32 = 1001;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Where the runner keeps a job's files on the host, mounted into the action's container.
struct Job {
    dirs: tempfile::TempDir,
    workspace: PathBuf,
    /// An image to hand the files the container's root wrote back to this user with.
    image: String,
}

impl Drop for Job {
    /// The workspace and the files the container wrote belong to others: give them back, so the
    /// folder can be removed.
    fn drop(&mut self) {
        // SAFETY: geteuid(2) and getegid(2) have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let owner = if Image::rootless_engine() {
            // The container's root is this user on the host.
            "0:0".to_string()
        } else if uid == 0 {
            return;
        } else {
            format!("{uid}:{gid}")
        };
        let _ = self.tool("chown", &[], &["-R", &owner, "/job"]);
    }
}

impl Job {
    fn new(image: &Image) -> Job {
        let dirs = tempfile::tempdir().unwrap();
        for d in [
            "_github_home",
            "_github_workflow",
            "_runner_file_commands",
            "repo",
        ] {
            std::fs::create_dir_all(dirs.path().join(d)).unwrap();
        }
        let workspace = dirs.path().join("repo");
        Job {
            dirs,
            workspace,
            image: image.tag.clone(),
        }
    }

    fn host(&self, dir: &str) -> String {
        self.dirs.path().join(dir).to_str().unwrap().to_string()
    }

    /// Hand the workspace to the runner's user, as `actions/checkout` leaves it: a user that is
    /// neither the container's root nor (under a rootless engine, whose root is this user) this
    /// user. Done by the image's own `chown`, as root in a container, which any user of the
    /// engine may do.
    fn chown_workspace(&self) {
        self.chown("/job/repo", &format!("{RUNNER_UID}:{RUNNER_UID}"));
    }

    /// `chown -R owner path` in a container, with the job's folder at `/job`.
    fn chown(&self, path: &str, owner: &str) {
        let out = self.tool("chown", &[], &["-R", owner, path]);
        assert!(out.status.success(), "chown {owner} {path}: {out:?}");
    }

    /// The image's `program` with `args`, as root in a container of its own: the job's folder
    /// at `/job`, the workspace also at `/github/workspace` and the working directory, `options`
    /// for `docker run`.
    fn tool(&self, program: &str, options: &[&str], args: &[&str]) -> std::process::Output {
        let job = format!("{}:/job", self.dirs.path().display());
        let workspace = format!("{}:/github/workspace", self.workspace.display());
        let mut all = vec![
            "run",
            "--rm",
            "--entrypoint",
            program,
            "-v",
            &job,
            "-v",
            &workspace,
        ];
        all.extend(["--workdir", "/github/workspace"]);
        all.extend_from_slice(options);
        all.push(&self.image);
        all.extend_from_slice(args);
        docker(&all)
    }
}

/// What one step of a workflow gives the action.
struct Step<'a> {
    event_name: &'a str,
    event: serde_json::Value,
    sha: &'a str,
    git_ref: &'a str,
    /// The step's `with:`.
    with: &'a [(&'a str, String)],
    /// The job's and the step's `env:`, with what configure-aws-credentials exported.
    env: &'a [(&'a str, String)],
}

/// Every input `action.yml` declares, as the runner sends it: the step's value, else the
/// default (`${{ github.token }}` evaluated to the job's token).
fn inputs(with: &[(&str, String)]) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_file("action.yml")).unwrap();
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let declared = manifest["inputs"].as_mapping().expect("inputs");
    for (name, _) in with {
        assert!(
            declared.contains_key(*name),
            "`{name}` is not an input of action.yml: the runner would warn and drop it"
        );
    }
    declared
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().unwrap();
            let default = match &v["default"] {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Null => String::new(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            let value = with
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| default.replace("${{ github.token }}", TOKEN));
            (
                format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
                value,
            )
        })
        .collect()
}

/// `docker run` of the image as the runner starts a container action.
fn run_step(image: &Image, job: &Job, step: &Step) -> Run {
    std::fs::write(
        job.dirs.path().join("_github_workflow/event.json"),
        serde_json::to_vec_pretty(&step.event).unwrap(),
    )
    .unwrap();
    let id = unique("step");
    let commands = job.dirs.path().join("_runner_file_commands");
    let files = [
        ("GITHUB_OUTPUT", format!("set_output_{id}")),
        ("GITHUB_STEP_SUMMARY", format!("step_summary_{id}")),
        ("GITHUB_ENV", format!("set_env_{id}")),
        ("GITHUB_PATH", format!("add_path_{id}")),
        ("GITHUB_STATE", format!("save_state_{id}")),
    ];
    for (_, f) in &files {
        std::fs::write(commands.join(f), "").unwrap();
    }
    let mut env: Vec<(String, String)> = inputs(step.with);
    let branch = |side: &str| {
        step.event["pull_request"][side]["ref"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let runner_env = [
        ("HOME", "/github/home".to_string()),
        ("GITHUB_JOB", "cdc".into()),
        ("GITHUB_REF", step.git_ref.into()),
        ("GITHUB_SHA", step.sha.into()),
        ("GITHUB_REPOSITORY", "acme/cdc".into()),
        ("GITHUB_REPOSITORY_OWNER", "acme".into()),
        ("GITHUB_RUN_ID", "7001".into()),
        ("GITHUB_RUN_NUMBER", "12".into()),
        ("GITHUB_RUN_ATTEMPT", "1".into()),
        ("GITHUB_ACTOR", "octocat".into()),
        ("GITHUB_TRIGGERING_ACTOR", "octocat".into()),
        ("GITHUB_WORKFLOW", "cdc".into()),
        // Set for pull request events only, from the pull request's branches.
        ("GITHUB_HEAD_REF", branch("head")),
        ("GITHUB_BASE_REF", branch("base")),
        ("GITHUB_EVENT_NAME", step.event_name.into()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        (
            "GITHUB_GRAPHQL_URL",
            "https://api.github.com/graphql".into(),
        ),
        ("GITHUB_WORKSPACE", "/github/workspace".into()),
        ("GITHUB_ACTION", "__acme_cdc-deploy-action".into()),
        ("GITHUB_EVENT_PATH", "/github/workflow/event.json".into()),
        ("GITHUB_ACTION_REPOSITORY", String::new()),
        ("GITHUB_ACTION_REF", String::new()),
        ("GITHUB_ACTIONS", "true".into()),
        ("CI", "true".into()),
        ("RUNNER_OS", "Linux".into()),
        ("RUNNER_ARCH", "X64".into()),
        ("RUNNER_NAME", "GitHub Actions 7".into()),
        ("RUNNER_ENVIRONMENT", "github-hosted".into()),
        ("RUNNER_TOOL_CACHE", "/opt/hostedtoolcache".into()),
        // The runner passes its own temporary folder, which is not mounted in the container.
        ("RUNNER_TEMP", "/home/runner/work/_temp".into()),
        ("RUNNER_WORKSPACE", "/home/runner/work/cdc".into()),
    ];
    env.extend(runner_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env.extend(
        files
            .iter()
            .map(|(k, f)| (k.to_string(), format!("/github/file_commands/{f}"))),
    );
    env.extend(step.env.iter().map(|(k, v)| (k.to_string(), v.clone())));

    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "host"])
        .args(["--name", &id, "--label", "cdc-test-action"])
        .args(["--workdir", "/github/workspace"]);
    for (k, v) in &env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    for (host, inside) in [
        ("/var/run/docker.sock".to_string(), "/var/run/docker.sock"),
        (job.host("_github_home"), "/github/home"),
        (job.host("_github_workflow"), "/github/workflow"),
        (job.host("_runner_file_commands"), "/github/file_commands"),
        (job.host("repo"), "/github/workspace"),
    ] {
        cmd.arg("-v").arg(format!("{host}:{inside}"));
    }
    cmd.arg(&image.tag);
    let out = cmd.output().expect("docker run");
    let read = |f: &str| std::fs::read_to_string(commands.join(f)).unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        outputs: support::parse_outputs(&read(&files[0].1)),
        summary: read(&files[1].1),
    }
}

/// A busybox consumer with its deploy settings.
fn consumer(root: &Path, name: &str) {
    support::busybox_consumer(root, name);
    write(
        root,
        &format!("consumer_scripts/{name}/consumer.toml"),
        "cpu = 256\nmemory = 512\n",
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "octocat")
        .env("GIT_AUTHOR_EMAIL", "octocat@example.com")
        .env("GIT_COMMITTER_NAME", "octocat")
        .env("GIT_COMMITTER_EMAIL", "octocat@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A real webhook payload of `name`, with `edit` applied.
fn event(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let text = std::fs::read_to_string(repo_file(&format!("tests/fixtures/github/events/{name}")))
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut v);
    v
}

fn push_event(before: &str, after: &str) -> serde_json::Value {
    event("push.0.json", |v| {
        v["ref"] = "refs/heads/main".into();
        v["base_ref"] = serde_json::Value::Null;
        v["before"] = before.into();
        v["after"] = after.into();
        v["created"] = false.into();
        v["head_commit"]["id"] = after.into();
    })
}

/// The report comments on #2 the bot wrote.
fn reports(gh: &GithubFake) -> Vec<support::github::Comment> {
    gh.comments(2)
        .into_iter()
        .filter(|c| c.author == BOT_LOGIN && c.body.starts_with("<!-- cdc-deploy:report "))
        .collect()
}

/// How many times the comment `id` was edited.
fn updates(gh: &GithubFake, id: u64) -> usize {
    gh.requests_to("PATCH", &format!("/repos/acme/cdc/issues/comments/{id}"))
        .len()
}

#[test]
fn the_runtime_stage_is_read_from_the_dockerfile() {
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).unwrap();
    let (text, from) = runtime_stage(&dockerfile, "base:1");
    assert!(text.starts_with("FROM base:1\n"), "{text}");
    assert!(
        text.contains("ENTRYPOINT [\"/usr/local/bin/cdc-deploy\"]"),
        "{text}"
    );
    assert!(
        text.contains("COPY docker/gitconfig /etc/gitconfig"),
        "{text}"
    );
    assert!(!text.contains("apt-get"), "{text}");
    assert_eq!(
        from,
        [
            ("terraform".to_string(), "terraform".to_string()),
            ("build".to_string(), "cdc-deploy".to_string())
        ]
    );
    // Continuation lines are one instruction; comments are not instructions.
    assert_eq!(
        instructions("# c\nFROM a\nRUN x \\\n    && y\n\nENV A=1 \\\n    B=2\n"),
        ["FROM a", "RUN x && y", "ENV A=1 B=2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_plans_a_push_deploys_and_a_push_without_changes_does_nothing() {
    let image = action_image(Path::new(&support::binary()));
    let gh = GithubFake::start().await;
    gh.require_token(TOKEN);
    gh.pull_for_commit(MERGE_1, 2);
    gh.pull_for_commit(MERGE_2, 2);
    let sim = EcsSimulator::start().await;
    let project = unique("e2e");
    for c in ["orders", "billing", "audit"] {
        sim.behave(c, Behaviour::CompletesAfter(1));
    }
    let backend = Backend::new().await;

    // The team's repository: three consumers and its own root module, checked out by the
    // runner's user.
    let _pushed = support::RemovesImages(format!("{}/{project}-", support::registry()));
    let job = Job::new(&image);
    let ws = &job.workspace;
    for c in ["orders", "billing", "audit"] {
        consumer(ws, c);
    }
    write(
        ws,
        "infra/main.tf",
        &std::fs::read_to_string(repo_file("tests/fixtures/terraform/rollout/main.tf")).unwrap(),
    );
    git(ws, &["init", "-q", "-b", "main"]);
    git(ws, &["add", "."]);
    git(ws, &["commit", "-q", "-m", "three consumers"]);
    job.chown_workspace();

    let with = vec![
        ("project-name", project.clone()),
        ("aws-region", "us-east-1".to_string()),
        ("registry-host", format!("http://{}", support::registry())),
        ("terraform-dir", "infra".to_string()),
        ("terraform-backend-config", backend.config()),
        ("wait-timeout", "2m".to_string()),
    ];
    // What aws-actions/configure-aws-credentials exports, and where AWS is here.
    let env = vec![
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_SESSION_TOKEN", "test-session-token".to_string()),
        ("AWS_ENDPOINT_URL", support::moto_url()),
        ("AWS_ENDPOINT_URL_ECS", sim.url()),
        ("GITHUB_API_URL", gh.url()),
        ("CDC_TEST_ECS_SIM", sim.url()),
    ];

    // The image's git reads the checkout that another user owns.
    let head = job.tool("git", &[], &["rev-parse", "HEAD"]);
    assert!(
        head.status.success(),
        "git in the image refuses the workspace: {}",
        String::from_utf8_lossy(&head.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim().len(), 40);
    // ... because the image marks it safe: without the image's configuration git refuses it.
    let refused = job.tool(
        "git",
        &["-e", "GIT_CONFIG_NOSYSTEM=1"],
        &["rev-parse", "HEAD"],
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("dubious ownership"),
        "{refused:?}"
    );

    // 1. The pull request: a plan, commented on the pull request.
    let pr = run_step(
        &image,
        &job,
        &Step {
            event_name: "pull_request",
            event: event("pull_request.opened.0.json", |_| {}),
            sha: "4f8e1c7a2b3d5e6f708192a3b4c5d6e7f8091a2b",
            git_ref: "refs/pull/2/merge",
            with: &with,
            env: &env,
        },
    );
    assert_eq!(pr.code, 0, "{}", pr.describe());
    assert_eq!(pr.outputs["result"], "success", "{}", pr.describe());
    assert_eq!(pr.outputs["deployed"], "[]", "a plan deploys nothing");
    pr.assert_masked_once(TOKEN);
    let comments = reports(&gh);
    assert_eq!(comments.len(), 1, "{:?}", gh.comments(2));
    let comment_id = comments[0].id;
    let plan_body = comments[0].body.clone();
    for c in ["orders", "billing", "audit"] {
        assert!(
            comments[0].body.contains(&format!("`{c}`")),
            "{}",
            comments[0].body
        );
    }
    assert!(
        pr.outputs["comment-url"].ends_with(&format!("#issuecomment-{comment_id}")),
        "{:?}",
        pr.outputs
    );
    let pr_checks: Vec<_> = gh
        .check_runs()
        .into_iter()
        .filter(|c| c.head_sha == PR_HEAD)
        .collect();
    let names = |checks: &[support::github::CheckRun]| -> Vec<String> {
        let mut n: Vec<String> = checks.iter().map(|c| c.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&pr_checks),
        [
            "cdc-deploy / production",
            "cdc-deploy / production / audit",
            "cdc-deploy / production / billing",
            "cdc-deploy / production / orders"
        ],
        "the fleet's check, and one per consumer with something to do: {pr_checks:?}"
    );
    assert!(
        pr_checks.iter().all(|c| c.status == "completed"),
        "{pr_checks:?}"
    );
    assert!(gh.deployments().is_empty(), "a plan deploys nothing");
    assert!(sim.calls().is_empty(), "a plan watches nothing");

    // 2. The merge, pushed to main: images built and pushed, Terraform applied to the S3
    // state, each service watched to its verdict, the same comment updated, check runs.
    let first_push = push_event(PR_HEAD, MERGE_1);
    let deploy = run_step(
        &image,
        &job,
        &Step {
            event_name: "push",
            event: first_push,
            sha: MERGE_1,
            git_ref: "refs/heads/main",
            with: &with,
            env: &env,
        },
    );
    assert_eq!(deploy.code, 0, "{}", deploy.describe());
    assert_eq!(deploy.outputs["result"], "success", "{}", deploy.describe());
    let mut deployed = deploy.names("deployed");
    deployed.sort();
    assert_eq!(
        deployed,
        ["audit", "billing", "orders"],
        "{}",
        deploy.describe()
    );
    let verdicts: BTreeMap<String, String> =
        serde_json::from_str(&deploy.outputs["rollouts"]).unwrap();
    assert_eq!(
        verdicts.values().collect::<Vec<_>>(),
        ["succeeded"; 3],
        "{}",
        deploy.describe()
    );
    let applied = backend.applied_images().await;
    assert_eq!(applied.len(), 3, "{applied:?}");
    let registry = support::registry_client();
    for (name, image_ref) in &applied {
        let (repo, digest) = image_ref
            .split_once('@')
            .unwrap_or_else(|| panic!("{name} is pinned by digest: {image_ref}"));
        let repo = repo.split_once('/').unwrap().1;
        assert_eq!(repo, format!("{project}-{name}"));
        let found = registry.manifest(repo, digest).await.unwrap();
        assert!(found.is_some(), "{image_ref} is in the registry");
    }
    let comments = reports(&gh);
    assert_eq!(comments.len(), 1, "{:?}", gh.comments(2));
    assert_eq!(comments[0].id, comment_id, "the same comment, updated");
    assert_eq!(updates(&gh, comment_id), 1, "{}", comments[0].body);
    assert_ne!(comments[0].body, plan_body);
    let push_checks: Vec<_> = gh
        .check_runs()
        .into_iter()
        .filter(|c| c.head_sha == MERGE_1)
        .collect();
    assert_eq!(push_checks.len(), 4, "{push_checks:?}");
    assert!(
        push_checks
            .iter()
            .all(|c| c.conclusion.as_deref() == Some("success")),
        "{push_checks:?}"
    );
    let deployments = gh.deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0].sha, MERGE_1);
    assert_eq!(
        deployments[0].statuses.last().map(|s| s.state.as_str()),
        Some("success")
    );

    // 3. Another push with nothing changed: nothing built, applied or watched; the same
    // comment says so.
    let calls_before = sim.calls().len();
    let noop = run_step(
        &image,
        &job,
        &Step {
            event_name: "push",
            event: push_event(MERGE_1, MERGE_2),
            sha: MERGE_2,
            git_ref: "refs/heads/main",
            with: &with,
            env: &env,
        },
    );
    assert_eq!(noop.code, 0, "{}", noop.describe());
    assert_eq!(
        noop.outputs["result"],
        "nothing-to-deploy",
        "{}",
        noop.describe()
    );
    assert_eq!(noop.names("deployed"), Vec::<String>::new());
    assert_eq!(noop.outputs["rollouts"], "{}", "{}", noop.describe());
    assert_eq!(sim.calls().len(), calls_before, "nothing to watch");
    assert_eq!(backend.applied_images().await, applied);
    let comments = reports(&gh);
    assert_eq!(comments.len(), 1, "{:?}", gh.comments(2));
    assert_eq!(comments[0].id, comment_id);
    assert_eq!(updates(&gh, comment_id), 2, "{}", comments[0].body);
    // Nothing to do: only the fleet's check reports it, no consumer gets one.
    let noop_checks: Vec<_> = gh
        .check_runs()
        .into_iter()
        .filter(|c| c.head_sha == MERGE_2)
        .collect();
    assert_eq!(
        names(&noop_checks),
        ["cdc-deploy / production"],
        "{noop_checks:?}"
    );
    assert_eq!(noop_checks[0].conclusion.as_deref(), Some("success"));
    gh.assert_no_violations();
}
