//! The Terraform stage end to end: the binary run as the action, the real `terraform` binary with
//! its state in the S3 backend against moto (native locking), a root module of `terraform_data`
//! declaring the same `consumers` variable and output as the bundled module, images built by the
//! real Docker engine and pushed to the registry.

mod support;

use std::path::{Path, PathBuf};

use support::ecs_sim::{Behaviour, EcsSimulator};
use support::terraform::{
    consumer, fixture_root, recording_terraform, rollout_workspace, run, run_env, s3,
    terraform_wrapper, workspace, Backend, COMMIT_1, COMMIT_2,
};
use support::{base_image, run_action, unique, write};

/// `orders` and `audit`, deployed once.
async fn deployed_pair() -> (tempfile::TempDir, String, Backend) {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "audit", 256);
    let backend = Backend::new().await;
    let first = run(ws.path(), &project, &backend, "deploy", COMMIT_1, &[]);
    assert_eq!(first.code, 0, "{}", first.describe());
    (ws, project, backend)
}

#[tokio::test]
async fn deploy_from_empty_then_nothing_to_apply() {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "audit", 256);
    let backend = Backend::new().await;

    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("commands");
    let terraform = recording_terraform(tools.path(), &log);
    let first = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_1,
        &[],
        &[("TERRAFORM_PATH", terraform.display().to_string())],
    );
    assert_eq!(first.code, 0, "{}", first.describe());
    // `apply` ran the very file `plan -out` saved, with nothing else to plan from.
    let commands = std::fs::read_to_string(&log).unwrap();
    let verbs: Vec<&str> = commands
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        verbs,
        ["version", "init", "output", "validate", "plan", "show", "apply", "output"]
    );
    let saved = commands
        .lines()
        .find(|l| l.starts_with("plan "))
        .and_then(|l| l.split(' ').find_map(|a| a.strip_prefix("-out=")))
        .unwrap();
    let apply = commands.lines().find(|l| l.starts_with("apply ")).unwrap();
    assert!(
        apply.ends_with(&format!(" {saved}")),
        "{apply} applies {saved}"
    );
    assert!(
        !apply.contains("-auto-approve") && !apply.contains("-var"),
        "{apply}"
    );
    assert!(
        first.summary.contains("Applied: 2 services"),
        "{}",
        first.summary
    );
    // Every consumer's image, pinned by digest, is what Terraform applied.
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&first.outputs["images"]).unwrap();
    let applied = backend.applied_images().await;
    assert_eq!(applied, images, "{}", first.describe());
    assert!(
        applied.values().all(|i| i.contains("@sha256:")),
        "{applied:?}"
    );
    // Apply ran the saved plan, and the report's changes are that plan's.
    assert!(
        first.stdout.contains("terraform plan: 6 to create"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("Apply complete! Resources: 6 added, 0 changed, 0 destroyed"),
        "{}",
        first.stdout
    );
    assert!(
        first.summary.contains("plan: 6 to create · applied"),
        "{}",
        first.summary
    );
    assert!(
        !ws.path().join("infra/cdc-deploy.auto.tfvars.json").exists(),
        "the variables file is removed"
    );
    let serial = backend.state().await.unwrap()["serial"].clone();

    // The outcome outputs: what was deployed, the plan as JSON, the result.
    assert_eq!(first.outputs["result"], "success", "{}", first.describe());
    assert_eq!(first.names("failed"), Vec::<String>::new());
    let plan: serde_json::Value = serde_json::from_str(&first.outputs["plan"]).unwrap();
    let planned: Vec<(&str, &str)> = plan["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(planned, [("audit", "new"), ("orders", "new")]);
    assert_eq!(plan["consumers"][0]["terraform"]["create"], 3, "{plan}");

    // Nothing changed: the entries equal the applied ones and the root and its inputs are those
    // applied, so Terraform reads the outputs and plans nothing (no refresh of any resource).
    let before = commands.lines().count();
    let second = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_1,
        &[],
        &[("TERRAFORM_PATH", terraform.display().to_string())],
    );
    assert_eq!(second.code, 0, "{}", second.describe());
    assert_eq!(second.outputs["result"], "nothing-to-deploy");
    let commands = std::fs::read_to_string(&log).unwrap();
    let verbs: Vec<&str> = commands
        .lines()
        .skip(before)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(verbs, ["version", "init", "output"], "no plan: {commands}");
    assert!(
        second
            .stdout
            .contains("terraform: no plan: the 2 entries equal the applied ones"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .summary
            .contains("not run: the 2 entries equal the applied ones")
            && second
                .summary
                .contains("entries equal to the applied ones; Terraform not run"),
        "{}",
        second.summary
    );
    assert!(
        !second.stdout.contains("Apply complete"),
        "{}",
        second.stdout
    );
    assert_eq!(
        backend.state().await.unwrap()["serial"],
        serial,
        "the state was not written"
    );
    assert_eq!(second.outputs["has-changes"], "false");
    assert_eq!(second.names("unchanged"), ["audit", "orders"]);

    // `terraform-refresh: always` plans anyway; so does a change to the root module.
    let plans = |extra: &[(&str, &str)]| {
        let before = std::fs::read_to_string(&log).unwrap().lines().count();
        let r = run_env(
            ws.path(),
            &project,
            &backend,
            "deploy",
            COMMIT_1,
            extra,
            &[("TERRAFORM_PATH", terraform.display().to_string())],
        );
        assert_eq!(r.code, 0, "{}", r.describe());
        let commands = std::fs::read_to_string(&log).unwrap();
        commands
            .lines()
            .skip(before)
            .any(|l| l.starts_with("plan "))
    };
    assert!(
        plans(&[("terraform-refresh", "always")]),
        "a drift check plans"
    );
    assert!(!plans(&[]), "and the next run again does not");
    let main = ws.path().join("infra/main.tf");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{text}\n# a change to the root module\n")).unwrap();
    assert!(plans(&[]), "a changed root module plans");
}

/// A consumer that owns its source (a replication slot) rolls out with 0 / 100 of its own: the
/// entry in the state carries them, the other consumer's does not (it takes the module's), and
/// a single writer with two tasks or with autoscaling is refused with the file and line.
#[tokio::test]
async fn a_single_writers_entry_carries_its_own_rollout_limits_and_two_writers_are_refused() {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "slot", 256);
    let slot_toml = "single_writer = true\nstop_timeout = 60\ncpu = 256\nmemory = 512\n[msk]\ncluster = \"cdc-msk\"\nwrite_topics = [\"outbox.orders\"]\n";
    write(ws.path(), "consumer_scripts/slot/consumer.toml", slot_toml);
    let backend = Backend::new().await;
    let first = run(ws.path(), &project, &backend, "deploy", COMMIT_1, &[]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let applied = backend.applied().await;
    let config = |n: &str| applied[n]["config"].clone();
    assert_eq!(config("slot")["deployment_minimum_healthy_percent"], 0);
    assert_eq!(config("slot")["deployment_maximum_percent"], 100);
    assert_eq!(
        config("slot")["msk"]["write_topics"],
        serde_json::json!(["outbox.orders"])
    );
    assert_eq!(
        config("orders")["deployment_minimum_healthy_percent"],
        serde_json::Value::Null
    );
    assert_eq!(
        config("orders")["deployment_maximum_percent"],
        serde_json::Value::Null
    );
    assert_eq!(config("orders")["msk"], serde_json::Value::Null);

    // Two tasks, then autoscaling: each refused where it is written, and the running entry kept.
    for (text, line, says) in [
        (
            format!("desired_count = 2\n{slot_toml}"),
            1,
            "`desired_count` is 2 but `single_writer = true` allows one task",
        ),
        (
            format!("{slot_toml}[autoscaling]\nmin = 1\nmax = 3\ncpu_target = 60\n"),
            8,
            "`[autoscaling]` cannot scale a `single_writer` consumer",
        ),
    ] {
        write(ws.path(), "consumer_scripts/slot/consumer.toml", &text);
        let refused = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &[]);
        assert_eq!(refused.code, 1, "{}", refused.describe());
        assert_eq!(refused.names("invalid"), ["slot"], "{}", refused.describe());
        let annotation = format!("::error file=consumer_scripts/slot/consumer.toml,line={line}");
        assert!(
            refused
                .stdout
                .lines()
                .any(|l| l.starts_with(&annotation) && l.contains(says)),
            "{annotation} … {says}\n{}",
            refused.stdout
        );
        assert_eq!(
            backend.applied().await["slot"]["config"]["deployment_maximum_percent"],
            100,
            "the running entry is kept"
        );
    }
}

/// A log group the module keeps when its consumer is removed is found (through the real
/// CloudWatch Logs client, past its first page) when a consumer of that name comes back, and a
/// root module of the team's own is told the `import` block that adopts it.
#[tokio::test]
async fn a_consumer_added_again_is_told_how_to_adopt_its_kept_log_group() {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&support::aws().await);
    // 60 groups sort before it: DescribeLogGroups answers 50 a page.
    for i in 0..60 {
        logs.create_log_group()
            .log_group_name(format!("/ecs/{project}/test/filler-{i:02}"))
            .send()
            .await
            .unwrap();
    }
    let kept = format!("/ecs/{project}/test/orders");
    logs.create_log_group()
        .log_group_name(&kept)
        .send()
        .await
        .unwrap();
    let backend = Backend::new().await;
    let plan = run(ws.path(), &project, &backend, "plan", COMMIT_1, &[]);
    assert_eq!(plan.code, 0, "{}", plan.describe());
    assert!(
        plan.stdout.contains(&format!(
            "the log group `{kept}` of an earlier consumer `orders` still exists"
        )) && plan.stdout.contains(&format!("id = \"{kept}\"")),
        "{}",
        plan.stdout
    );
}

#[tokio::test]
async fn a_cpu_change_alone_is_an_update_in_place() {
    let (ws, project, backend) = deployed_pair().await;

    // Only the configuration changes: the image is the same.
    write(
        ws.path(),
        "consumer_scripts/orders/consumer.toml",
        "cpu = 512\nmemory = 1024\n[environment]\nTOPIC = \"orders.events\"\n",
    );
    let plan = run(ws.path(), &project, &backend, "plan", COMMIT_2, &[]);
    assert_eq!(plan.code, 0, "{}", plan.describe());
    assert_eq!(plan.names("changed"), ["orders"], "{}", plan.describe());
    assert_eq!(plan.names("unchanged"), ["audit"]);
    assert_eq!(plan.outputs["has-changes"], "true");
    assert!(
        plan.summary.contains("| `orders` | changed |")
            && plan.summary.contains("| 1 to update in place |"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary
            .lines()
            .any(|l| l.starts_with("| `audit` | unchanged |") && l.ends_with("| — | — |")),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.contains("its configuration changed"),
        "{}",
        plan.summary
    );

    let deploy = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &[]);
    assert_eq!(deploy.code, 0, "{}", deploy.describe());
    assert_eq!(
        deploy.names("reused"),
        ["audit", "orders"],
        "no image was built"
    );
    assert!(
        deploy.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        deploy.stdout
    );
    assert_eq!(backend.applied_cpu("orders").await, 512);
}

#[tokio::test]
async fn a_failed_build_keeps_the_running_entry_and_the_others_deploy() {
    let (ws, project, backend) = deployed_pair().await;
    let before = backend.applied_images().await;

    // `orders` no longer builds; `audit` changes and deploys.
    write(
        ws.path(),
        "consumer_scripts/orders/Dockerfile",
        &format!("FROM {}\nRUN exit 3\n", base_image()),
    );
    write(
        ws.path(),
        "consumer_scripts/audit/app/run.sh",
        "echo audit v2\n",
    );
    let second = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &[]);
    assert_eq!(second.code, 1, "{}", second.describe());
    assert_eq!(second.names("failed"), ["orders"]);
    let after = backend.applied_images().await;
    assert_eq!(
        after["orders"], before["orders"],
        "orders keeps its running image"
    );
    assert_ne!(
        after["audit"], before["audit"],
        "audit deployed its new image"
    );
    assert!(
        second.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        second.stdout
    );
    assert!(
        !second.everything().contains("allow-destroy"),
        "no guard tripped: {}",
        second.describe()
    );
    assert!(
        second.summary.contains("`orders` keeps its running entry"),
        "{}",
        second.summary
    );
}

/// A renamed folder is named as such (the same settings), and the guard that stops the deploy
/// says the way forward: the two would share a consumer group or a replication slot.
#[tokio::test]
async fn a_renamed_folder_is_named_and_the_guard_says_the_way_forward() {
    let (ws, project, backend) = deployed_pair().await;
    let state_before = backend.state().await.unwrap();
    std::fs::rename(
        ws.path().join("consumer_scripts/audit"),
        ws.path().join("consumer_scripts/audit-v2"),
    )
    .unwrap();
    let stopped = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &[]);
    assert_eq!(stopped.code, 1, "{}", stopped.describe());
    let all = stopped.everything();
    assert!(
        all.contains("`audit` is no longer a consumer: its folder looks renamed to `audit-v2` (the same settings)"),
        "{all}"
    );
    assert!(
        all.contains("keep the old folder until the new consumer runs, then remove it and deploy with `allow-destroy: true`"),
        "{all}"
    );
    assert!(all.contains("it looks like `audit` renamed"), "{all}");
    assert_eq!(stopped.names("removed"), ["audit"]);
    assert_eq!(
        backend.state().await.unwrap(),
        state_before,
        "nothing destroyed"
    );
}

#[tokio::test]
async fn removing_a_folder_stops_before_apply_unless_destroy_is_allowed() {
    let (ws, project, backend) = deployed_pair().await;
    let state_before = backend.state().await.unwrap();

    std::fs::remove_dir_all(ws.path().join("consumer_scripts/audit")).unwrap();
    let stopped = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &[]);
    assert_eq!(stopped.code, 1, "{}", stopped.describe());
    let all = stopped.everything();
    assert!(
        all.contains("the plan destroys what `audit` needs"),
        "{}",
        stopped.describe()
    );
    assert!(all.contains("`audit` is no longer a consumer"), "{all}");
    assert!(all.contains("allow-destroy: true"), "{all}");
    assert!(
        !stopped.stdout.contains("Apply complete"),
        "{}",
        stopped.stdout
    );
    assert_eq!(stopped.names("removed"), ["audit"]);
    assert_eq!(
        backend.state().await.unwrap(),
        state_before,
        "the state is untouched"
    );
    assert!(
        !ws.path().join("infra/cdc-deploy.auto.tfvars.json").exists(),
        "the variables file is removed on a stop too"
    );

    // A pull request's plan shows it, and does not fail for it.
    let planned = run(ws.path(), &project, &backend, "plan", COMMIT_2, &[]);
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert!(
        planned
            .stdout
            .contains("::warning::a deploy of this plan stops before apply"),
        "{}",
        planned.stdout
    );
    assert!(
        planned
            .summary
            .contains("**A deploy of this plan stops before apply**"),
        "{}",
        planned.summary
    );
    assert_eq!(planned.outputs["has-changes"], "true");

    let allowed = run(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_2,
        &[("allow-destroy", "true")],
    );
    assert_eq!(allowed.code, 0, "{}", allowed.describe());
    assert!(
        allowed.stdout.contains("0 added, 0 changed, 3 destroyed"),
        "{}",
        allowed.stdout
    );
    assert_eq!(
        backend.applied_images().await.keys().collect::<Vec<_>>(),
        ["orders"]
    );
}

#[tokio::test]
async fn a_lock_held_by_someone_else_is_named() {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    let backend = Backend::new().await;
    let lock = serde_json::json!({
        "ID": "5e1f2a3b-aaaa-bbbb-cccc-111122223333",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "alice@laptop",
        "Version": "1.11.4",
        "Created": "2026-11-25T21:00:00.000000Z",
        "Path": format!("{}/{}", backend.bucket, backend.key),
    });
    s3().await
        .put_object()
        .bucket(&backend.bucket)
        .key(format!("{}.tflock", backend.key))
        .body(lock.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();

    // A credential among the backend settings is masked before Terraform runs.
    let config = format!(
        "{}\naccess_key=test\nsecret_key=backend-secret-4711",
        backend.config()
    );
    let locked = run(
        ws.path(),
        &project,
        &backend,
        "plan",
        COMMIT_1,
        &[("terraform-backend-config", config.as_str())],
    );
    assert!(
        locked.stdout.contains("::add-mask::backend-secret-4711"),
        "{}",
        locked.stdout
    );
    assert_eq!(locked.code, 1, "{}", locked.describe());
    let all = locked.everything();
    assert!(
        all.contains("is locked by `alice@laptop` since 2026-11-25 21:00:00"),
        "{}",
        locked.describe()
    );
    assert!(
        all.contains("lock ID `5e1f2a3b-aaaa-bbbb-cccc-111122223333`"),
        "{all}"
    );
    assert!(all.contains("terraform force-unlock"), "{all}");
}

#[tokio::test]
async fn a_plan_shows_unbuilt_images_by_content_tag() {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    let backend = Backend::new().await;
    let plan = run(ws.path(), &project, &backend, "plan", COMMIT_1, &[]);
    assert_eq!(plan.code, 0, "{}", plan.describe());
    assert_eq!(plan.names("new"), ["orders"]);
    assert!(
        plan.stdout.contains(&format!("{project}-orders:ctx-")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.summary.contains("plan only: nothing was applied"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.contains(
            "`orders`: its image will be built by the deploy; the plan names it by its content tag"
        ),
        "{}",
        plan.summary
    );
    assert!(backend.state().await.is_none(), "a plan writes no state");

    // A variables file an older cdc-deploy left in the root is said, never overwritten or
    // removed; the run's own variables win over it.
    write(ws.path(), "infra/cdc-deploy.auto.tfvars.json", "{}");
    let warned = run(ws.path(), &project, &backend, "plan", COMMIT_1, &[]);
    assert_eq!(warned.code, 0, "{}", warned.describe());
    assert!(
        warned
            .stdout
            .contains("cdc-deploy.auto.tfvars.json` is in the root module: an older cdc-deploy wrote it there"),
        "{}",
        warned.describe()
    );
    assert_eq!(warned.names("new"), ["orders"]);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("infra/cdc-deploy.auto.tfvars.json")).unwrap(),
        "{}"
    );
}

#[test]
fn deploy_refuses_local_state_with_guidance() {
    let ws = tempfile::tempdir().unwrap();
    consumer(ws.path(), "orders", 256);
    write(
        ws.path(),
        "infra/main.tf",
        &std::fs::read_to_string(fixture_root().join("main.tf"))
            .unwrap()
            .replace("  backend \"s3\" {}\n", ""),
    );
    for dir in ["infra", ""] {
        let mut inputs = vec![
            ("mode", "deploy"),
            ("project-name", "tflocal"),
            ("commit", COMMIT_1),
            ("terraform", "true"),
        ];
        if !dir.is_empty() {
            inputs.push(("terraform-dir", dir));
        }
        let r = run_action(ws.path(), &inputs);
        assert_eq!(
            r.code,
            2,
            "refused before anything is built: {}",
            r.describe()
        );
        assert!(!r.stdout.contains("built"), "{}", r.stdout);
        let all = r.everything();
        assert!(
            all.contains("refusing to apply with local state"),
            "{}",
            r.describe()
        );
        assert!(all.contains("use_lockfile=true"), "{all}");
        if dir.is_empty() {
            assert!(all.contains("terraform-backend-config"), "{all}");
        } else {
            assert!(
                all.contains("backend \\\"s3\\\" {}") || all.contains("backend \"s3\" {}"),
                "{all}"
            );
        }
    }
}

// The simulator serves from the runtime's other thread while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_changed_service_is_watched_to_its_verdict() {
    let sim = EcsSimulator::start().await;
    sim.behave("orders", Behaviour::CompletesAfter(2));
    sim.behave("audit", Behaviour::FailsAfter(1));
    let ws = rollout_workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "audit", 256);
    let backend = Backend::new().await;
    // What the failing container wrote before it exited, where the simulator's task definition
    // says it logs; one line tries to pass itself off as a workflow command.
    let mut lines: Vec<String> = (1..=25)
        .map(|i| format!("audit: offset {i} read"))
        .collect();
    lines.push("::error::a log line posing as a command".into());
    lines.push("Error: KafkaError: broker kafka-1:9092 refused the connection".into());
    support::seed_log(
        &format!("/ecs/sim/{project}-test/audit"),
        "ecs/audit/audit-task-1",
        &lines,
    )
    .await;
    let env = [
        ("AWS_ENDPOINT_URL_ECS", sim.url()),
        ("CDC_TEST_ECS_SIM", sim.url()),
    ];
    let wait = [("wait", "true")];
    let r = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_1,
        &wait,
        &env,
    );
    assert_eq!(
        r.code,
        1,
        "a failed rollout fails the run: {}",
        r.describe()
    );
    let verdicts: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&r.outputs["rollouts"]).unwrap();
    assert_eq!(verdicts["orders"], "succeeded", "{}", r.describe());
    assert_eq!(verdicts["audit"], "failed");
    // Each rollout links to its log group in the console, and the table shows the verdicts.
    assert!(
        r.summary.contains(&format!(
            "[log group](https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/$252Fecs$252F{project}$252Ftest$252Faudit)"
        )),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("| **failed**, "), "{}", r.summary);
    // `failed` is every stage's: the image built, the rollout did not.
    assert_eq!(r.names("deployed"), ["orders"]);
    assert_eq!(r.names("failed"), ["audit"]);
    assert_eq!(r.outputs["result"], "failure");
    assert!(r.summary.contains("### Rollouts"), "{}", r.summary);
    assert!(
        r.summary
            .contains("ECS deployment circuit breaker: tasks failed to start."),
        "{}",
        r.summary
    );
    assert!(
        r.stdout.contains("rollout: `orders` succeeded"),
        "{}",
        r.stdout
    );
    // The evidence: the service's events since the deployment, not the day-old ones.
    assert!(
        r.summary
            .contains("deployment failed: tasks failed to start."),
        "{}",
        r.summary
    );
    assert!(
        !r.summary.contains("has reached a steady state"),
        "{}",
        r.summary
    );
    // The stopped tasks with their exit codes, and the failed container's last 20 log lines,
    // in the summary and the log; the line posing as a command is inert in both.
    for text in [&r.summary, &r.stdout] {
        assert!(
            text.contains("Essential container in task exited"),
            "{}",
            r.describe()
        );
        assert!(text.contains("exited 1"), "{text}");
        assert!(
            text.contains("Error: KafkaError: broker kafka-1:9092 refused the connection"),
            "{text}"
        );
        assert!(text.contains("audit: offset 8 read"), "{text}");
        assert!(
            !text.contains("audit: offset 7 read"),
            "the last 20 lines only: {text}"
        );
    }
    assert!(
        support::runner_commands(&r.stdout)
            .iter()
            .all(|c| !c.contains("posing")),
        "{}",
        r.stdout
    );
    // One call per round for both services (one cluster, two names); then, for the failed
    // one only, its stopped tasks and its task definition's log settings.
    let calls = sim.calls();
    let describes: Vec<_> = calls
        .iter()
        .filter(|(op, _)| op == "DescribeServices")
        .collect();
    assert!(describes.iter().all(|(_, n)| *n <= 2), "{calls:?}");
    let others: Vec<&str> = calls
        .iter()
        .filter(|(op, _)| op != "DescribeServices")
        .map(|(op, _)| op.as_str())
        .collect();
    assert_eq!(
        others,
        ["ListTasks", "DescribeTasks", "DescribeTaskDefinition"],
        "{calls:?}"
    );

    // Nothing changed: nothing to watch.
    let again = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_1,
        &wait,
        &env,
    );
    assert_eq!(again.outputs["rollouts"], "{}", "{}", again.describe());
}

#[tokio::test]
async fn consumers_restricts_a_deploy_and_the_others_keep_what_is_applied() {
    let (ws, project, backend) = deployed_pair().await;
    let before = backend.applied_images().await;
    // Both change and a third is new; only `orders` and the `billing-*` glob are deployed.
    write(
        ws.path(),
        "consumer_scripts/orders/app/run.sh",
        "echo orders v2\n",
    );
    write(
        ws.path(),
        "consumer_scripts/audit/app/run.sh",
        "echo audit v2\n",
    );
    consumer(ws.path(), "billing-eu", 256);
    let only = [("consumers", "orders, billing-*")];
    let r = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &only);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(
        r.names("built"),
        ["billing-eu", "orders"],
        "{}",
        r.describe()
    );
    let after = backend.applied_images().await;
    assert_eq!(
        after["audit"], before["audit"],
        "audit keeps what is applied"
    );
    assert_ne!(after["orders"], before["orders"]);
    assert!(after.contains_key("billing-eu"));
    assert!(
        r.summary
            .contains("only orders, billing-\\*: 1 other consumer keeps what is applied"),
        "{}",
        r.summary
    );

    // A consumer left out is not removed when its folder is gone either.
    std::fs::remove_dir_all(ws.path().join("consumer_scripts/audit")).unwrap();
    let r = run(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_2,
        &[("consumers", "orders")],
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(r.names("removed"), Vec::<String>::new());
    assert_eq!(backend.applied_images().await["audit"], before["audit"]);

    // A pattern that names no folder stops the run before anything is done.
    let r = run(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_2,
        &[("consumers", "orders,nope-*")],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    let all = r.everything();
    assert!(
        all.contains("`consumers` names `nope-*` but no consumer folder or deployed consumer matches; the consumers and deployed consumers are `audit`, `billing-eu`, `orders`"),
        "{all}"
    );
    assert_eq!(backend.applied_images().await["audit"], before["audit"]);

    // A deployed consumer whose folder is gone, named: removed (behind the destroy guard).
    let named = [("consumers", "audit")];
    let r = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &named);
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(r.names("removed"), ["audit"], "{}", r.describe());
    assert!(
        r.everything().contains("`audit` is no longer a consumer"),
        "{}",
        r.describe()
    );
    let allowed = [("consumers", "audit"), ("allow-destroy", "true")];
    let r = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &allowed);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(r.names("removed"), ["audit"]);
    let after = backend.applied_images().await;
    assert!(!after.contains_key("audit"), "{after:?}");
    assert!(after.contains_key("orders") && after.contains_key("billing-eu"));
}

// The simulator serves from the runtime's other thread while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_puts_a_consumer_back_on_its_earlier_image_through_terraform() {
    let sim = EcsSimulator::start().await;
    let ws = rollout_workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "audit", 256);
    let backend = Backend::new().await;
    let env = [
        ("AWS_ENDPOINT_URL_ECS", sim.url()),
        ("CDC_TEST_ECS_SIM", sim.url()),
    ];
    let go = |mode: &str, extra: &[(&str, &str)]| {
        let mut inputs = vec![("wait", "true")];
        inputs.extend_from_slice(extra);
        run_env(ws.path(), &project, &backend, mode, COMMIT_2, &inputs, &env)
    };
    let first = go("deploy", &[]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let v1 = backend.applied_images().await;
    write(
        ws.path(),
        "consumer_scripts/orders/app/run.sh",
        "echo orders v2\n",
    );
    let second = go("deploy", &[]);
    assert_eq!(second.code, 0, "{}", second.describe());
    let v2 = backend.applied_images().await;
    assert_ne!(v1["orders"], v2["orders"]);

    // Back to the image it ran before, found in its task definition family, through
    // Terraform; the other consumer keeps what is applied.
    let back = go("rollback", &[("consumers", "orders")]);
    assert_eq!(back.code, 0, "{}", back.describe());
    let now = backend.applied_images().await;
    assert_eq!(now["orders"], v1["orders"], "{}", back.describe());
    assert_eq!(now["audit"], v2["audit"]);
    let verdicts: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&back.outputs["rollouts"]).unwrap();
    assert_eq!(
        verdicts.get("orders").map(String::as_str),
        Some("succeeded")
    );
    assert!(!verdicts.contains_key("audit"), "{verdicts:?}");
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&back.outputs["images"]).unwrap();
    assert_eq!(images["orders"], v1["orders"]);
    assert!(
        back.summary.contains(
            "`orders` is held on this image: later deploys leave it there until its folder changes"
        ),
        "{}",
        back.summary
    );
    assert!(back.summary.contains(&v2["orders"]), "{}", back.summary);
    assert_eq!(back.names("held"), ["orders"], "{}", back.describe());

    // The next deploy of the same folder leaves it on the image it was rolled back to.
    let held = go("deploy", &[]);
    assert_eq!(held.code, 0, "{}", held.describe());
    assert_eq!(held.names("held"), ["orders"], "{}", held.describe());
    assert_eq!(held.outputs["rollouts"], "{}", "nothing rolled out");
    assert_eq!(backend.applied_images().await["orders"], v1["orders"]);
    let day = &backend.applied().await["orders"]["config"]["hold"]["at"]
        .as_str()
        .unwrap()[..10]
        .to_string();
    let from = v2["orders"].split_once('@').unwrap().1;
    let said = format!(
        "held on its previous image `{}` since the rollback by hand of `{}` on {day}; change its folder, or deploy with `consumers: orders`, to try again",
        v1["orders"],
        &from[..19]
    );
    assert!(held.stdout.contains(&said), "{}", held.stdout);
    assert!(
        held.summary.contains(&format!(
            "since the rollback by hand of <code>{}</code> on {day}",
            &from[..19]
        )) || held.summary.contains(&format!(
            "since the rollback by hand of `{}` on {day}",
            &from[..19]
        )),
        "{}",
        held.summary
    );

    // Forward again to a digest given.
    let digest = v2["orders"].split_once('@').unwrap().1;
    let to = go(
        "rollback",
        &[("consumers", "orders"), ("rollback-to", digest)],
    );
    assert_eq!(to.code, 0, "{}", to.describe());
    assert_eq!(backend.applied_images().await["orders"], v2["orders"]);

    // A digest the repository does not hold changes nothing, and says so.
    let missing = format!("sha256:{}", "0".repeat(64));
    let r = go(
        "rollback",
        &[("consumers", "orders"), ("rollback-to", &missing)],
    );
    assert_eq!(r.code, 2, "bad input: {}", r.describe());
    assert!(
        r.everything()
            .contains("is not in the registry (an image the lifecycle policy expired, or a digest of another repository); give a digest the repository"),
        "{}",
        r.describe()
    );
    assert!(
        r.everything().contains("holds with `rollback-to`"),
        "{}",
        r.describe()
    );
    assert_eq!(backend.applied_images().await["orders"], v2["orders"]);

    // One digest for two consumers.
    let r = go(
        "rollback",
        &[("consumers", "orders, audit"), ("rollback-to", digest)],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.everything()
            .contains("`rollback-to` names one image, but `consumers` names `audit`, `orders`"),
        "{}",
        r.describe()
    );

    // Names that match no deployed consumer, and no names at all.
    let r = go("rollback", &[("consumers", "billing-*")]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.everything()
            .contains("no deployed consumer matches; the deployed consumers are `audit`, `orders`"),
        "{}",
        r.describe()
    );
    let r = go("rollback", &[]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.everything().contains("a rollback needs `consumers`"),
        "{}",
        r.describe()
    );
}

/// A `terraform` that runs the real one, except `apply`: that prints `applying`, then waits; on
/// SIGINT it notes the signal in `signals`, takes a second to finish "writing", says so, and
/// exits 1, as Terraform does when interrupted.
fn slow_apply_terraform(dir: &Path, signals: &Path) -> PathBuf {
    terraform_wrapper(dir, "terraform-slow-apply", |real| {
        format!(
            r#"#!/bin/sh
if [ "$1" != apply ]; then exec '{real}' "$@"; fi
trap 'echo INT >> "{signals}"; kill $child 2>/dev/null; sleep 1; echo "Interrupt received: stopped cleanly"; exit 1' INT
echo applying
sleep 60 & child=$!
wait $child
wait $child
"#,
            signals = signals.display()
        )
    })
}

#[tokio::test]
async fn a_cancelled_deploy_interrupts_terraform_once_waits_for_it_and_still_reports() {
    let ws = workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    let backend = Backend::new().await;
    let tools = tempfile::tempdir().unwrap();
    let signals = tools.path().join("signals");
    let terraform = slow_apply_terraform(tools.path(), &signals);
    let config = backend.config();
    let (r, took) = support::run_action_signalled(
        ws.path(),
        &[
            ("mode", "deploy"),
            ("project-name", &project),
            ("commit", COMMIT_1),
            ("terraform", "true"),
            ("terraform-dir", "infra"),
            ("terraform-backend-config", &config),
        ],
        &[("TERRAFORM_PATH", terraform.display().to_string())],
        |out| out.lines().any(|l| l == "applying"),
        libc::SIGTERM,
    );
    assert_eq!(r.code, 143, "128 + SIGTERM: {}", r.describe());
    // Exactly one interrupt reached Terraform, and the run waited for it to stop.
    assert_eq!(std::fs::read_to_string(&signals).unwrap(), "INT\n");
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
    assert!(
        r.stdout.contains("Interrupt received: stopped cleanly"),
        "{}",
        r.stdout
    );
    // The report and the outputs are still written, and say what happened.
    assert!(
        r.summary.contains("The run was cancelled by SIGTERM"),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("`terraform apply` was interrupted because the run was cancelled by SIGTERM"),
        "{}",
        r.summary
    );
    assert_eq!(r.names("built"), ["orders"], "{}", r.describe());
    assert_eq!(r.outputs["rollouts"], "{}");
}

// The simulator serves from the runtime's other thread while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_deploy_stops_watching_at_once_and_says_so() {
    let sim = EcsSimulator::start().await;
    sim.behave("orders", Behaviour::Stalls);
    let ws = rollout_workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    let backend = Backend::new().await;
    let config = backend.config();
    let (r, took) = support::run_action_signalled(
        ws.path(),
        &[
            ("mode", "deploy"),
            ("project-name", &project),
            ("commit", COMMIT_1),
            ("terraform", "true"),
            ("terraform-dir", "infra"),
            ("terraform-backend-config", &config),
            ("wait", "true"),
            ("wait-timeout", "15m"),
        ],
        &[
            ("AWS_ENDPOINT_URL_ECS", sim.url()),
            ("CDC_TEST_ECS_SIM", sim.url()),
        ],
        |out| out.contains("rollout: `orders` 0/1 running"),
        libc::SIGINT,
    );
    assert_eq!(r.code, 130, "128 + SIGINT: {}", r.describe());
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let verdicts: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&r.outputs["rollouts"]).unwrap();
    assert_eq!(verdicts["orders"], "cancelled", "{}", r.describe());
    assert!(
        r.summary.contains("The run was cancelled by SIGINT"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("ECS goes on with the deployment"),
        "{}",
        r.summary
    );
    // The apply finished before the signal: the state holds it.
    assert!(backend.applied_images().await.contains_key("orders"));
}

/// A `terraform` that runs the real one, except that `apply` first creates `waiting`, then waits
/// until `go` exists: a deploy held between its plan and its apply.
fn held_apply_terraform(dir: &Path, waiting: &Path, go: &Path) -> PathBuf {
    terraform_wrapper(dir, "terraform-held-apply", |real| {
        format!(
            r#"#!/bin/sh
if [ "$1" = apply ]; then
  : > '{waiting}'
  while [ ! -e '{go}' ]; do sleep 0.1; done
fi
exec '{real}' "$@"
"#,
            waiting = waiting.display(),
            go = go.display()
        )
    })
}

#[tokio::test]
async fn two_deploys_at_once_the_one_whose_plan_went_stale_says_so_and_applies_nothing() {
    let (ws, project, backend) = deployed_pair().await;
    let larger = |name: &str| {
        write(
            ws.path(),
            &format!("consumer_scripts/{name}/consumer.toml"),
            "cpu = 512\nmemory = 1024\n",
        )
    };
    larger("orders");
    let tools = tempfile::tempdir().unwrap();
    let waiting = tools.path().join("waiting");
    let go = tools.path().join("go");
    let held = held_apply_terraform(tools.path(), &waiting, &go);

    // The first deploy plans, then is held before its apply.
    let first = {
        let (ws, project, backend) = (ws.path().to_path_buf(), project.clone(), backend.clone());
        std::thread::spawn(move || {
            run_env(
                &ws,
                &project,
                &backend,
                "deploy",
                COMMIT_2,
                &[],
                &[("TERRAFORM_PATH", held.display().to_string())],
            )
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !waiting.exists() {
        assert!(
            !first.is_finished(),
            "the first deploy ended before its apply: {}",
            first.join().unwrap().describe()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no apply after two minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The second plans and applies meanwhile, the state changing under the first's saved plan.
    larger("audit");
    let second = run(ws.path(), &project, &backend, "deploy", COMMIT_2, &[]);
    assert_eq!(second.code, 0, "{}", second.describe());
    let after_second = backend.state().await.unwrap()["serial"].clone();
    std::fs::write(&go, "").unwrap();
    let first = first.join().unwrap();

    assert_eq!(first.code, 1, "{}", first.describe());
    let all = first.everything();
    assert!(
        all.contains("another deploy applied while this one planned: re-run"),
        "{}",
        first.describe()
    );
    assert!(first.summary.contains("re-run"), "{}", first.summary);
    // Nothing applied: the state is the second deploy's, and no rollout is reported.
    assert_eq!(backend.state().await.unwrap()["serial"], after_second);
    assert_eq!(backend.applied_cpu("audit").await, 512);
    assert_eq!(first.outputs["rollouts"], "{}", "{}", first.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_of_ecr_and_ecs_calls_throttled_change_no_verdict_and_the_report_counts_the_retries(
) {
    let sim = EcsSimulator::start().await;
    sim.behave("orders", Behaviour::CompletesAfter(2));
    sim.behave("audit", Behaviour::FailsAfter(1));
    // Every third ECS call the program makes, and every third ECR call, is throttled.
    sim.throttle(&(1..=1000).map(|i| i * 3).collect::<Vec<_>>());
    let aws = support::proxy::CountingProxy::start(&support::moto_url()).await;
    aws.throttle_every("AmazonEC2ContainerRegistry_", 3);
    let ws = rollout_workspace();
    let project = unique("tf");
    consumer(ws.path(), "orders", 256);
    consumer(ws.path(), "audit", 256);
    let backend = Backend::new().await;
    let r = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_1,
        &[("wait", "true")],
        &[
            ("AWS_ENDPOINT_URL", aws.url()),
            ("AWS_ENDPOINT_URL_ECS", sim.url()),
            ("CDC_TEST_ECS_SIM", sim.url()),
        ],
    );
    // The verdicts of the same rollouts unthrottled (`each_changed_service_is_watched_to_its_verdict`).
    assert_eq!(
        r.code,
        1,
        "the failed rollout fails the run: {}",
        r.describe()
    );
    let verdicts: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&r.outputs["rollouts"]).unwrap();
    assert_eq!(verdicts["orders"], "succeeded", "{}", r.describe());
    assert_eq!(verdicts["audit"], "failed", "{}", r.describe());
    assert_eq!(r.names("built"), ["audit", "orders"], "{}", r.describe());
    assert!(
        r.summary.contains("ECS deployment circuit breaker"),
        "{}",
        r.summary
    );

    // Every throttled answer was retried, and the report says how many.
    let ecr = aws.throttled();
    let ecs = sim.calls().len() / 3;
    assert!(ecr >= 2 && ecs >= 2, "ECR {ecr}, ECS {ecs} throttled");
    let retries = format!("; {} retries in all)", ecr + ecs);
    for text in [&r.summary, &r.stdout] {
        assert!(text.contains("AWS calls were retried (ECR "), "{text}");
        assert!(text.contains(", ECS "), "{text}");
        assert!(text.contains(&retries), "{retries}: {text}");
    }
}

/// `orders` and `audit` deployed; then `orders`' code changes, to a build that takes a few
/// seconds, and `audit` only its settings (no build).
async fn one_to_build_one_not() -> (tempfile::TempDir, String, Backend) {
    let (ws, project, backend) = deployed_pair().await;
    write(
        ws.path(),
        "consumer_scripts/orders/Dockerfile",
        &format!(
            "FROM {}\nRUN for i in 1 2 3; do echo step $i; sleep 1; done\nCOPY app/ /app/\n",
            base_image()
        ),
    );
    write(
        ws.path(),
        "consumer_scripts/audit/consumer.toml",
        "cpu = 512\nmemory = 1024\n",
    );
    (ws, project, backend)
}

/// What an engine failure leaves: `orders` failed with `expected` in its reason, keeping its
/// running image, and `audit`, which needed no build, deployed.
async fn only_the_build_failed(r: &support::Run, backend: &Backend, before: &str, expected: &str) {
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(r.names("failed"), ["orders"], "{}", r.describe());
    assert!(
        r.everything().contains(expected),
        "{expected}: {}",
        r.describe()
    );
    assert!(r.summary.contains(expected), "{}", r.summary);
    assert_eq!(backend.applied_cpu("audit").await, 512, "{}", r.describe());
    assert_eq!(backend.applied_images().await["orders"], before);
}

/// A deploy of [`one_to_build_one_not`] through an engine with `fault`: the run, how long it
/// took, and the engine's address.
async fn through_a_faulty_engine(
    fault: support::engine_proxy::Fault,
    extra: &[(&str, &str)],
) -> (support::Run, std::time::Duration, String, Backend, String) {
    let (ws, project, backend) = one_to_build_one_not().await;
    let before = backend.applied_images().await["orders"].clone();
    let engine = support::engine_proxy::EngineProxy::start(fault);
    let started = std::time::Instant::now();
    let r = run_env(
        ws.path(),
        &project,
        &backend,
        "deploy",
        COMMIT_2,
        extra,
        &[("DOCKER_HOST", engine.docker_host())],
    );
    (r, started.elapsed(), engine.docker_host(), backend, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_closes_mid_build_fails_that_consumer_at_once_and_the_others_deploy() {
    let (r, took, engine, backend, before) =
        through_a_faulty_engine(support::engine_proxy::Fault::Closes, &[]).await;
    let expected =
        format!("the Docker engine at `{engine}` closed the connection during the build");
    only_the_build_failed(&r, &backend, &before, &expected).await;
    assert!(
        took < std::time::Duration::from_secs(60),
        "at once, not after a timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_hangs_mid_build_fails_that_consumer_after_the_build_timeout() {
    let (r, took, engine, backend, before) = through_a_faulty_engine(
        support::engine_proxy::Fault::Hangs,
        &[("build-timeout", "6s")],
    )
    .await;
    let expected = format!(
        "the build did not finish within `build-timeout` (6 s) and was stopped: the Docker engine at `{engine}` had sent nothing for 6 s, so it looks hung"
    );
    only_the_build_failed(&r, &backend, &before, &expected).await;
    assert!(took < std::time::Duration::from_secs(90), "{took:?}");
}
