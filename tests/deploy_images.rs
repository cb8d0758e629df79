//! `deploy`'s image stage end to end: the binary run as the action, against moto's ECR API, the
//! real Docker engine and the distribution registry (pushes go there through `registry-host`).

mod support;

use std::path::Path;

use cdc_deploy::clients::registry::Registry as _;
use support::{base_image, docker, run_action, unique, write, Run, MOTO_TOKEN_PASSWORD};

const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

/// A consumer that copies its `app/` folder into a busybox image.
fn consumer(root: &Path, name: &str) {
    write(
        root,
        &format!("consumer_scripts/{name}/Dockerfile"),
        &format!(
            "FROM {}\nCOPY app /app\nRUN echo {name} > /consumer\nUSER 10001\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n",
            base_image()
        ),
    );
    write(
        root,
        &format!("consumer_scripts/{name}/app/run.sh"),
        &format!("echo {name}\n"),
    );
}

fn deploy(root: &Path, project: &str, commit: &str) -> Run {
    run_action(
        root,
        &[
            ("mode", "deploy"),
            ("project-name", project),
            ("commit", commit),
        ],
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The ECR token may appear only where the runner consumes it: in `::add-mask::` commands.
fn assert_token_masked_and_never_shown(run: &Run) {
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{MOTO_TOKEN_PASSWORD}"));
    let masks: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::add-mask::"))
        .collect();
    assert!(
        masks.contains(&format!("::add-mask::{MOTO_TOKEN_PASSWORD}").as_str()),
        "the token was not masked:\n{}",
        run.describe()
    );
    assert!(masks.contains(&format!("::add-mask::{basic}").as_str()));
    let first_mask = run.stdout.find("::add-mask::").unwrap();
    let shown: String = run
        .everything()
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [MOTO_TOKEN_PASSWORD, basic.as_str()] {
        assert!(
            !shown.contains(secret),
            "the token appeared outside a mask command"
        );
    }
    assert!(
        run.stdout[..first_mask].lines().all(|l| !l.contains("::")),
        "a workflow command came before the mask"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_built_once_and_only_when_their_context_changes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("img");
    for name in ["alpha", "beta", "gamma"] {
        consumer(root, name);
    }
    write(root, "consumer_scripts/gamma/.dockerignore", "notes\n");
    write(root, "consumer_scripts/gamma/notes/todo.md", "one\n");

    // From empty: three repositories, three images, digests recorded.
    let first = deploy(root, &project, COMMIT_1);
    assert_eq!(first.code, 0, "{}", first.describe());
    assert_eq!(
        sorted(first.names("built")),
        names(&["alpha", "beta", "gamma"])
    );
    assert_token_masked_and_never_shown(&first);

    let ecr = aws_sdk_ecr::Client::new(&support::aws().await);
    let registry = support::registry_client();
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&first.outputs["images"]).unwrap();
    assert_eq!(images.len(), 3);
    for name in ["alpha", "beta", "gamma"] {
        let repo = format!("{project}-{name}");
        let facts = support::repository_facts(&ecr, &repo).await;
        assert_eq!(facts.mutability, "IMMUTABLE_WITH_EXCLUSION", "{repo}");
        assert_eq!(
            facts.mutable_tags,
            ["WILDCARD cache-*", "WILDCARD keep-*"],
            "{repo}"
        );
        assert!(facts.scan_on_push);
        let policy = facts.lifecycle_policy.as_ref().expect("a lifecycle policy");
        assert_eq!(policy["rules"][2]["selection"]["countNumber"], 30);
        assert!(
            facts.has_tag("managed-by", "cdc-deploy"),
            "{:?}",
            facts.tags
        );
        assert!(facts.has_tag("consumer", name), "{:?}", facts.tags);

        // The recorded digest is what the registry holds under both tags.
        let pinned = &images[name];
        let (pinned_repo, digest) = pinned.split_once('@').unwrap();
        assert_eq!(pinned_repo, format!("{}/{repo}", support::registry()));
        let commit_digest = registry
            .manifest(&repo, &format!("sha-{COMMIT_1}"))
            .await
            .unwrap()
            .map(|m| m.digest);
        assert_eq!(commit_digest.as_deref(), Some(digest), "{name}");
        assert!(first.summary.contains(&digest[..19]), "{}", first.summary);
    }
    // Each pushed image's scan is read from ECR; moto's ECR does not hold what the registry
    // does, so it is unavailable, named, at once (not waited for), and not a failure.
    let scans: serde_json::Value = serde_json::from_str(&first.outputs["scans"]).unwrap();
    for name in ["alpha", "beta", "gamma"] {
        assert_eq!(scans[name]["status"], "unavailable", "{scans}");
        assert!(
            scans[name]["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("`{project}-{name}` holds no image `sha256:")),
            "{scans}"
        );
    }
    assert!(
        first.summary.contains("### Scan findings"),
        "{}",
        first.summary
    );
    assert!(
        first.stdout.contains("scan: `alpha`: scan unavailable"),
        "{}",
        first.stdout
    );

    // Nothing changed: nothing is built or pushed.
    let second = deploy(root, &project, COMMIT_1);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(second.names("built").is_empty(), "{}", second.describe());
    assert_eq!(
        sorted(second.names("reused")),
        names(&["alpha", "beta", "gamma"])
    );
    assert_eq!(second.outputs["images"], first.outputs["images"]);
    assert_eq!(
        second.outputs["scans"], "{}",
        "nothing pushed, no scan read"
    );
    assert!(
        !second.stdout.contains("The push refers to"),
        "{}",
        second.describe()
    );
    assert_token_masked_and_never_shown(&second);

    // One file touched in one consumer: exactly one build and one push.
    write(root, "consumer_scripts/beta/app/run.sh", "echo beta v2\n");
    let third = deploy(root, &project, COMMIT_1);
    assert_eq!(third.code, 0, "{}", third.describe());
    assert_eq!(third.names("built"), names(&["beta"]));
    assert_eq!(third.stdout.matches("The push refers to").count(), 1);
    assert_eq!(sorted(third.names("reused")), names(&["alpha", "gamma"]));

    // A change to a file `.dockerignore` leaves out: no build.
    write(root, "consumer_scripts/gamma/notes/todo.md", "two\n");
    let fourth = deploy(root, &project, COMMIT_1);
    assert_eq!(fourth.code, 0, "{}", fourth.describe());
    assert!(fourth.names("built").is_empty(), "{}", fourth.describe());

    // A new commit with the same contexts: nothing is built, and nothing is written either: the
    // commit tag goes only on images a run builds.
    let fifth = deploy(root, &project, COMMIT_2);
    assert_eq!(fifth.code, 0, "{}", fifth.describe());
    assert!(fifth.names("built").is_empty());
    assert_eq!(
        sorted(fifth.names("reused")),
        names(&["alpha", "beta", "gamma"])
    );
    assert_eq!(fifth.outputs["images"], third.outputs["images"]);
    for name in ["alpha", "beta", "gamma"] {
        let tagged = registry
            .manifest(&format!("{project}-{name}"), &format!("sha-{COMMIT_2}"))
            .await
            .unwrap();
        assert_eq!(
            tagged, None,
            "{name} got the tag of a commit that built nothing"
        );
    }

    // A pull request's plan looks the images up the same way and changes nothing.
    write(root, "consumer_scripts/alpha/app/run.sh", "echo alpha v2\n");
    let plan = run_action(root, &[("mode", "plan"), ("project-name", &project)]);
    assert_eq!(plan.code, 0, "{}", plan.describe());
    assert_eq!(plan.names("changed"), names(&["alpha"]));
    assert_eq!(sorted(plan.names("unchanged")), names(&["beta", "gamma"]));
    assert_eq!(plan.outputs["built"], "[]", "a plan builds nothing");
    assert!(
        plan.summary.contains("## cdc-deploy plan"),
        "{}",
        plan.summary
    );
    assert_token_masked_and_never_shown(&plan);
}

/// Two good consumers and one whose build fails at line 5 of its Dockerfile, deployed with the
/// engine's builder chosen by `DOCKER_BUILDKIT` (unset: BuildKit).
fn deploy_with_a_broken_consumer(
    prefix: &str,
    buildkit: Option<&str>,
) -> (tempfile::TempDir, String, Run) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique(prefix);
    for name in ["alpha", "beta"] {
        consumer(root, name);
    }
    write(
        root,
        "consumer_scripts/broken/Dockerfile",
        &format!(
            "FROM {}\n# fails on purpose\nRUN echo starting && \\\n    echo half-way\nRUN echo about to fail && exit 3\nCMD [\"true\"]\n",
            base_image()
        ),
    );
    let env: Vec<(&str, String)> = buildkit
        .map(|v| vec![("DOCKER_BUILDKIT", v.to_string())])
        .unwrap_or_default();
    let run = support::run_action_env(
        root,
        &[
            ("mode", "deploy"),
            ("project-name", &project),
            ("commit", COMMIT_1),
            ("build-concurrency", "3"),
        ],
        &env,
    );
    (dir, project, run)
}

/// Each fact once, in order: the consumer's build group, its result line inside it, then the
/// annotation on its Dockerfile.
fn assert_failure_told_once_in_order(run: &Run, project: &str, name: &str, case: &str) {
    let group = run
        .stdout
        .find(&format!(
            "::group::build and push {name} ({project}-{name})"
        ))
        .unwrap_or_else(|| panic!("{case}: no group for `{name}`:\n{}", run.stdout));
    let line = format!("✗ {name}: ");
    let result = run.stdout.find(&line).expect("a result line");
    let end = group + run.stdout[group..].find("::endgroup::").unwrap();
    let annotation = run
        .stdout
        .find(&format!("::error file=consumer_scripts/{name}/Dockerfile"))
        .unwrap();
    assert!(
        group < result && result < end && end < annotation,
        "{case}: out of order:\n{}",
        run.stdout
    );
    assert_eq!(run.stdout.matches(&line).count(), 1, "{case}: said twice");
}

fn assert_only_the_broken_one_failed(run: &Run) {
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_eq!(run.names("failed"), names(&["broken"]));
    assert_eq!(sorted(run.names("built")), names(&["alpha", "beta"]));
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&run.outputs["images"]).unwrap();
    assert_eq!(images.keys().collect::<Vec<_>>(), ["alpha", "beta"]);
    assert!(
        run.stdout
            .contains("::error file=consumer_scripts/broken/Dockerfile,line=5,"),
        "{}",
        run.stdout
    );
    assert!(
        run.summary.contains("about to fail"),
        "the last lines are shown"
    );
    assert_token_masked_and_never_shown(run);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_dockerfile_fails_alone_and_names_its_line() {
    let (dir, project, run) = deploy_with_a_broken_consumer("brk", None);
    assert_only_the_broken_one_failed(&run);
    assert!(
        run.stdout.contains("images are built with BuildKit"),
        "{}",
        run.stdout
    );
    // The reason names the file, the line and BuildKit's step, in the log and the summary.
    let reason = "`consumer_scripts/broken/Dockerfile` line 5: [3/3] RUN echo about to fail && exit 3 failed:";
    assert!(run.stdout.contains(reason), "{}", run.describe());
    assert!(run.summary.contains("exit code: 3"), "{}", run.summary);
    assert!(
        run.summary
            .contains("RUN echo about to fail &amp;&amp; exit 3")
            || run.summary.contains("RUN echo about to fail && exit 3"),
        "{}",
        run.summary
    );
    // The table does not repeat it.
    assert_failure_told_once_in_order(&run, &project, "broken", "");
    assert!(!run.stdout.contains("failed: broken"), "{}", run.stdout);

    // The failed consumer was never deployed: the next plan still calls it new.
    let plan = run_action(dir.path(), &[("mode", "plan"), ("project-name", &project)]);
    assert_eq!(plan.names("new"), names(&["broken"]), "{}", plan.describe());
    assert_eq!(sorted(plan.names("unchanged")), names(&["alpha", "beta"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_buildkit_0_builds_with_the_classic_builder_and_says_so() {
    let (_dir, _project, run) = deploy_with_a_broken_consumer("cls", Some("0"));
    assert_only_the_broken_one_failed(&run);
    assert!(
        run.stdout
            .contains("::warning::images are built with the classic builder")
            && run.stdout.contains("`DOCKER_BUILDKIT=0` asks for it"),
        "{}",
        run.stdout
    );
    let reason = "`consumer_scripts/broken/Dockerfile` line 5: Step 3/";
    assert!(run.stdout.contains(reason), "{}", run.describe());
    assert!(
        run.summary.contains("returned a non-zero code: 3"),
        "{}",
        run.summary
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_build_honours_consumer_toml_and_labels_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("cfg");
    write(
        root,
        "consumer_scripts/staged/consumer.toml",
        "[build]\ndockerfile = \"docker/Containerfile\"\ntarget = \"runtime\"\nargs = { FLAVOUR = \"mint\" }\n",
    );
    write(
        root,
        "consumer_scripts/staged/docker/Containerfile",
        &format!(
            "FROM {base} AS build\nARG FLAVOUR=plain\nRUN echo \"$FLAVOUR\" > /flavour\n\nFROM {base} AS runtime\nCOPY --from=build /flavour /flavour\nCOPY app /app\nCMD [\"true\"]\n\nFROM {base} AS debug\nRUN echo debug > /debug\n",
            base = base_image()
        ),
    );
    write(root, "consumer_scripts/staged/app/main.sh", "echo hi\n");
    write(root, "consumer_scripts/staged/app/secret.env", "TOKEN=x\n");
    write(root, "consumer_scripts/staged/.dockerignore", "app/*.env\n");
    let run = run_action(
        root,
        &[
            ("mode", "deploy"),
            ("project-name", &project),
            ("commit", COMMIT_1),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&run.outputs["images"]).unwrap();
    let pinned = &images["staged"];
    let contents = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        pinned,
        "-c",
        "cat /flavour; ls /app; test ! -e /debug && echo no-debug-stage",
    ]);
    assert_eq!(contents, "mint\nmain.sh\nno-debug-stage\n");
    let labels = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        pinned,
    ]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["org.opencontainers.image.revision"], COMMIT_1);
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/acme/cdc"
    );
    let created = labels["org.opencontainers.image.created"].as_str().unwrap();
    assert!(
        created.starts_with("20") && created.ends_with('Z'),
        "{created}"
    );
    let arch = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        pinned,
    ]);
    assert_eq!(arch.trim(), "linux/amd64");
}

#[tokio::test(flavor = "multi_thread")]
async fn text_from_a_build_never_reaches_the_runner_as_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("inj");
    consumer(root, "alpha");
    write(
        root,
        "consumer_scripts/evil/Dockerfile",
        &format!(
            "FROM {}\nRUN echo '::error title=injected::from-the-build' && echo '::add-mask::from-the-build' && echo 'says ##[warning]from-the-build' && printf 'progress 10%%\\r::error title=injected::after-a-carriage-return\\n' && exit 7\n",
            base_image()
        ),
    );
    // BuildKit and the classic builder; logs printed live (one build at a time) and buffered.
    for (env, concurrency) in [
        (vec![], "1"),
        (vec![], "2"),
        (vec![("DOCKER_BUILDKIT", "0".to_string())], "1"),
        (vec![("DOCKER_BUILDKIT", "0".to_string())], "2"),
    ] {
        let run = support::run_action_env(
            root,
            &[
                ("mode", "deploy"),
                ("project-name", &project),
                ("commit", COMMIT_1),
                ("build-concurrency", concurrency),
            ],
            &env,
        );
        assert_eq!(run.code, 1, "{}", run.describe());
        assert_eq!(run.names("failed"), names(&["evil"]));
        assert!(
            run.summary.contains("from-the-build"),
            "the failure shows the build's last lines"
        );
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            for command in support::runner_commands(text) {
                // `::name props::data`: what the runner does is set by the name and props.
                let (head, data) = command
                    .trim_start_matches("::")
                    .split_once("::")
                    .unwrap_or((&command, ""));
                let acted_on = command.starts_with("##[")
                    || head.contains("injected")
                    || (head == "add-mask" && data.contains("from-the-build"));
                assert!(
                    !acted_on,
                    "{env:?} concurrency {concurrency}: the runner would act on `{command}` from {stream}:\n{}",
                    run.describe()
                );
            }
        }
        // Live or buffered.
        assert_failure_told_once_in_order(
            &run,
            &project,
            "evil",
            &format!("concurrency {concurrency}"),
        );
        // Our own commands still work: the failure is annotated on the Dockerfile's line 2.
        assert!(
            support::runner_commands(&run.stdout)
                .iter()
                .any(|c| c.starts_with("::error file=consumer_scripts/evil/Dockerfile,line=2,")),
            "{}",
            run.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_image_in_the_private_registry_is_pulled_with_the_registry_credentials() {
    let registry = support::registry();
    let base = format!("{registry}/{}-base:1", unique("private"));
    // Pushed with a login of its own, then removed from the engine: the build must pull it.
    support::push_base_image(&base, &unique("private"));

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "consumer_scripts/hardened/Dockerfile",
        &format!("FROM {base}\nRUN echo built-on-the-private-base > /proof\n"),
    );
    // Once with BuildKit, once with the classic builder; each into a project of its own, so
    // each builds.
    for builder in [None, Some("0")] {
        let env: Vec<(&str, String)> = builder
            .map(|v| vec![("DOCKER_BUILDKIT", v.to_string())])
            .unwrap_or_default();
        let _ = std::process::Command::new("docker")
            .args(["rmi", &base])
            .output();
        let project = unique("prv");
        let run = support::run_action_env(
            root,
            &[
                ("mode", "deploy"),
                ("project-name", &project),
                ("commit", COMMIT_1),
            ],
            &env,
        );
        assert_eq!(
            run.code,
            0,
            "DOCKER_BUILDKIT={builder:?}\n{}",
            run.describe()
        );
        assert_eq!(run.names("built"), names(&["hardened"]));
        let images: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&run.outputs["images"]).unwrap();
        let proof = docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/cat",
            &images["hardened"],
            "/proof",
        ]);
        assert_eq!(proof, "built-on-the-private-base\n");
        assert_token_masked_and_never_shown(&run);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dockerfile_that_needs_buildkit_builds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("bk");
    write(
        root,
        "consumer_scripts/cached/Dockerfile",
        &format!(
            "FROM {}\nRUN --mount=type=cache,target=/var/cache/app echo from-the-cache > /var/cache/app/x && cp /var/cache/app/x /from-cache\nCOPY --chmod=755 app/run.sh /run.sh\n",
            base_image()
        ),
    );
    write(root, "consumer_scripts/cached/app/run.sh", "echo hi\n");
    let run = deploy(root, &project, COMMIT_1);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(run.names("built"), names(&["cached"]));
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&run.outputs["images"]).unwrap();
    let inside = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &images["cached"],
        "-c",
        "cat /from-cache; stat -c %a /run.sh",
    ]);
    assert_eq!(inside, "from-the-cache\n755\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_that_deletes_a_branch_deploys_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("del");
    for name in ["alpha", "beta"] {
        consumer(root, name);
    }
    let event = format!(
        "{}/tests/fixtures/github/events/push.deleted-branch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let aws = support::proxy::CountingProxy::start(&support::moto_url()).await;
    let registry =
        support::proxy::CountingProxy::start(&format!("http://{}", support::registry())).await;
    let env = vec![
        ("GITHUB_EVENT_NAME", "push".to_string()),
        ("GITHUB_EVENT_PATH", event),
        ("GITHUB_SHA", "0".repeat(40)),
        ("AWS_ENDPOINT_URL", aws.url()),
        ("INPUT_REGISTRY-HOST", registry.url()),
    ];
    let root_path = root.to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        support::run_action_env(&root_path, &[("project-name", &project)], &env)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        run.stdout.contains(
            "::notice::nothing to do: the push deleted `refs/heads/feature/orders-retry`"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(run.outputs["has-changes"], "false");
    assert_eq!(run.names("new"), Vec::<String>::new());
    assert!(run.summary.contains("Nothing to do"), "{}", run.summary);
    assert!(!run.everything().contains("sha-0000000000"));
    assert_eq!(aws.requests(), vec![], "no AWS call");
    assert_eq!(registry.requests(), vec![], "no registry request");
}

#[tokio::test]
async fn a_cancelled_deploy_stops_its_builds_at_once_and_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("img");
    consumer(root, "quick");
    write(
        root,
        "consumer_scripts/slow/Dockerfile",
        &format!(
            "FROM {}\nRUN echo building-slowly {project} && sleep 60\nCMD [\"true\"]\n",
            base_image()
        ),
    );
    let (r, took) = support::run_action_signalled(
        root,
        &[
            ("mode", "deploy"),
            ("project-name", &project),
            ("commit", COMMIT_1),
            // One build at a time: its log is shown live.
            ("build-concurrency", "1"),
        ],
        &[],
        |out| out.contains("building-slowly"),
        libc::SIGTERM,
    );
    assert_eq!(r.code, 143, "{}", r.describe());
    assert!(
        took < std::time::Duration::from_secs(10),
        "the build is not waited for: {took:?}"
    );
    // Cancelled, not failed: a new run builds it.
    assert!(
        !r.names("failed").contains(&"slow".to_string()),
        "{}",
        r.describe()
    );
    assert_eq!(r.outputs["result"], "cancelled");
    assert!(
        r.summary
            .contains("not finished: the run was cancelled by SIGTERM"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("The run was cancelled by SIGTERM"),
        "{}",
        r.summary
    );
}

/// A deploy of `orders` alone whose pushes go to the registry through `registry`.
async fn deploy_through(registry: &support::proxy::CountingProxy) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let project = unique("push");
    consumer(dir.path(), "orders");
    let root = dir.path().to_path_buf();
    let env = vec![("INPUT_REGISTRY-HOST", registry.url())];
    tokio::task::spawn_blocking(move || {
        let run = support::run_action_env(
            &root,
            &[
                ("mode", "deploy"),
                ("project-name", &project),
                ("commit", COMMIT_1),
            ],
            &env,
        );
        drop(dir);
        run
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_the_registry_answers_with_429_is_retried_after_a_wait() {
    let registry =
        support::proxy::CountingProxy::start(&format!("http://{}", support::registry())).await;
    // The engine's first push is refused (its layers' uploads, in parallel); the next goes on.
    registry.too_many("POST", "/blobs/uploads/", 30, 2);
    let started = std::time::Instant::now();
    let r = deploy_through(&registry).await;
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(registry.answered_too_many(), 2);
    assert!(
        r.stdout.contains(
            "push throttled by the registry (toomanyrequests: Rate exceeded); retrying in 2."
        ),
        "{}",
        r.stdout
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(r.names("built"), ["orders"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_the_registry_keeps_refusing_with_429_fails_clearly_after_its_attempts() {
    let registry =
        support::proxy::CountingProxy::start(&format!("http://{}", support::registry())).await;
    registry.too_many("POST", "/blobs/uploads/", 30, usize::MAX);
    let r = deploy_through(&registry).await;
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(r.names("failed"), ["orders"]);
    let waits: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("push throttled by the registry"))
        .collect();
    assert_eq!(waits.len(), 3, "{}", r.stdout);
    assert!(waits[2].contains("retrying in 8."), "doubling: {waits:?}");
    assert!(
        r.summary.contains(
            "failed after 4 attempt(s): toomanyrequests: Rate exceeded; the registry limits how fast it takes pushes (HTTP 429)"
        ),
        "{}",
        r.summary
    );
}
