//! The day-2 commands through the binary, as the action runs them (`mode: status`, `logs`,
//! `exec`): what is applied read from the real Terraform state in moto's S3, the services from
//! the scripted ECS, the images' labels from the registry, alarms from moto's CloudWatch, log
//! lines from moto's CloudWatch Logs.

mod support;

use serde_json::Value;
use support::ecs_sim::{Behaviour, Dep, EcsSimulator, Frame, SimRunning};
use support::terraform::{consumer, rollout_workspace, run_env, Backend, COMMIT_1, COMMIT_2};

const COMMIT_3: &str = "3333333333333333333333333333333333333333";
use support::{runner_commands, seed_log, unique, write, Run};

/// A deployed fleet of busybox consumers on the scripted ECS, its state in a bucket of its own.
struct Fleet {
    ws: tempfile::TempDir,
    project: String,
    backend: Backend,
    env: Vec<(&'static str, String)>,
}

impl Fleet {
    async fn deployed(prefix: &str, names: &[&str], sim: &EcsSimulator) -> Fleet {
        let ws = rollout_workspace();
        for name in names {
            consumer(ws.path(), name, 256);
        }
        let fleet = Fleet {
            ws,
            project: unique(prefix),
            backend: Backend::new().await,
            env: vec![
                ("AWS_ENDPOINT_URL_ECS", sim.url()),
                ("CDC_TEST_ECS_SIM", sim.url()),
            ],
        };
        let first = fleet.run("deploy", COMMIT_1, &[("wait", "true")]);
        assert_eq!(first.code, 0, "{}", first.describe());
        fleet
    }

    fn run(&self, mode: &str, commit: &str, extra: &[(&str, &str)]) -> Run {
        self.run_env(mode, commit, extra, &[])
    }

    fn run_env(
        &self,
        mode: &str,
        commit: &str,
        extra: &[(&str, &str)],
        env: &[(&'static str, String)],
    ) -> Run {
        let mut env_all = self.env.clone();
        env_all.extend(env.iter().cloned());
        let mut inputs = vec![
            ("comment", "never"),
            ("check-runs", "false"),
            ("deployments", "false"),
        ];
        inputs.extend_from_slice(extra);
        run_env(
            self.ws.path(),
            &self.project,
            &self.backend,
            mode,
            commit,
            &inputs,
            &env_all,
        )
    }

    fn cluster(&self) -> String {
        format!("{}-test", self.project)
    }
}

fn status_of(r: &Run) -> Value {
    serde_json::from_str(&r.outputs["status"]).unwrap_or_else(|e| panic!("{e}: {}", r.describe()))
}

/// The fleet's status, with one consumer held after a rollback, one whose deployment failed and
/// whose alarm is in ALARM, and one healthy: each shown as such, read with one `DescribeServices`
/// for the three services; `fail-on-unhealthy` makes it exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_held_the_failed_and_the_healthy() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::deployed("status", &["alpha", "beta", "gamma"], &sim).await;

    // `beta` changes and the circuit breaker rolls it back: it is held on its previous image.
    write(
        fleet.ws.path(),
        "consumer_scripts/beta/app/run.sh",
        "echo beta v1\n",
    );
    sim.behave_in_turn(
        "beta",
        vec![Behaviour::RollsBackAfter(1), Behaviour::CompletesAfter(1)],
    );
    let failing = fleet.run("deploy", COMMIT_2, &[("wait", "true")]);
    assert_eq!(failing.code, 1, "{}", failing.describe());

    // `gamma` loses its tasks: its newest deployment failed, none of its tasks run, and its
    // running-below-desired alarm went off.
    let cluster = fleet.cluster();
    let applied = fleet.backend.applied().await;
    let gamma_td = applied["gamma"]["task_definition"]
        .as_str()
        .unwrap()
        .to_string();
    sim.script(
        &cluster,
        "gamma",
        vec![Frame::Service {
            status: "ACTIVE",
            deployments: vec![Dep {
                id: "ecs-svc/gamma",
                status: "PRIMARY",
                task_definition: gamma_td,
                rollout_state: "FAILED",
                reason: Some("ECS deployment circuit breaker: tasks failed to start."),
                desired: 1,
                running: 0,
                failed: 3,
                created_at: 1_764_900_000.0,
            }],
        }],
    );
    let cw = aws_sdk_cloudwatch::Client::new(&support::aws().await);
    let alarm = format!("{cluster}-gamma-running-below-desired");
    cw.put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("ECS/ContainerInsights")
        .metric_name("RunningTaskCount")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(5)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name(&alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("Threshold Crossed: 5 datapoints were less than the threshold (1.0).")
        .send()
        .await
        .unwrap();

    let before = sim.calls().len();
    let status = fleet.run("status", COMMIT_2, &[]);
    assert_eq!(status.code, 0, "{}", status.describe());
    let describes: Vec<(String, usize)> = sim.calls()[before..]
        .iter()
        .filter(|(op, _)| op == "DescribeServices")
        .cloned()
        .collect();
    assert_eq!(
        describes,
        [("DescribeServices".to_string(), 3)],
        "one call for three services"
    );

    let s = status_of(&status);
    assert_eq!(s["alpha"]["healthy"], true, "{s:#}");
    assert_eq!(s["alpha"]["held"], false);
    assert_eq!(s["alpha"]["deployment"], "COMPLETED");
    assert_eq!(
        s["alpha"]["commit"], COMMIT_1,
        "the commit read from the image's labels"
    );
    assert_eq!(s["alpha"]["fingerprint"].as_str().map(str::len), Some(64));
    assert_eq!(s["beta"]["held"], true);
    assert_eq!(
        s["beta"]["healthy"], true,
        "held on its previous image, which runs"
    );
    assert_eq!(s["beta"]["commit"], COMMIT_1, "it runs what it ran before");
    assert_eq!(s["gamma"]["healthy"], false);
    assert_eq!(s["gamma"]["deployment"], "FAILED");
    assert_eq!(
        s["gamma"]["alarms"],
        serde_json::json!(["running-below-desired"])
    );
    assert_eq!(status.outputs["result"], "success");

    // What people read: the terminal table and the job summary say the same.
    let table = &status.stdout;
    assert!(
        table.contains("3 consumers: 1 unhealthy, 1 held, 1 alarm in ALARM"),
        "{table}"
    );
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
            .to_string()
    };
    assert!(line("beta").contains("rolled back"), "{}", line("beta"));
    assert!(line("beta").contains("held on its previous image"));
    assert!(line("gamma").contains("0/1"));
    assert!(line("gamma").contains("its deployment failed"));
    assert!(line("gamma").contains("its running-below-desired alarm is in ALARM"));
    assert!(line("alpha").ends_with("ok"), "{}", line("alpha"));
    assert!(
        status.summary.contains("| Consumer | Tasks |"),
        "{}",
        status.summary
    );
    assert!(status.summary.contains("❌"), "{}", status.summary);

    // A scheduled check fails on the unhealthy one.
    let check = fleet.run("status", COMMIT_2, &[("fail-on-unhealthy", "true")]);
    assert_eq!(check.code, 1, "{}", check.describe());
    assert_eq!(check.outputs["result"], "failure");

    // ECS cannot be read: the table says so and the run exits 2, never "healthy".
    let port = support::closed_port();
    let unread = fleet.run_env(
        "status",
        COMMIT_2,
        &[("fail-on-unhealthy", "true")],
        &[("AWS_ENDPOINT_URL_ECS", format!("http://127.0.0.1:{port}"))],
    );
    assert_eq!(unread.code, 2, "{}", unread.describe());
    assert!(unread.stdout.contains("not read"), "{}", unread.stdout);
    assert_eq!(unread.outputs["result"], "failure");
}

/// `logs` prints the last lines of every task's stream, interleaved by time; a plain `filter`
/// term keeps the lines that have it; lines that try to be workflow commands stay text, and
/// credentials in them are hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_prints_the_last_lines_inert_and_filtered() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::deployed("logs", &["alpha"], &sim).await;
    let group = fleet.backend.applied().await["alpha"]["log_group"]
        .as_str()
        .unwrap()
        .to_string();
    seed_log(
        &group,
        "ecs/alpha/task0001",
        &[
            "starting consumer".to_string(),
            "::add-mask::nothing".to_string(),
            "::error title=pwned::this is a log line".to_string(),
            "ERROR slot cdc_orders is active for PID 4242".to_string(),
            "connecting to postgres://cdc:s3cr3t@db:5432/orders".to_string(),
        ],
    )
    .await;
    let all = fleet.run("logs", COMMIT_1, &[("consumers", "alpha")]);
    assert_eq!(all.code, 0, "{}", all.describe());
    for l in ["starting consumer", "ERROR slot cdc_orders", "task0001"] {
        assert!(all.stdout.contains(l), "{l}: {}", all.stdout);
    }
    assert!(
        all.stdout.contains("postgres://cdc:****@db"),
        "{}",
        all.stdout
    );
    assert!(!all.everything().contains("s3cr3t"));
    assert!(
        runner_commands(&all.stdout)
            .iter()
            .all(|c| !c.contains("pwned") && !c.contains("nothing")),
        "{:?}",
        runner_commands(&all.stdout)
    );

    let errors = fleet.run(
        "logs",
        COMMIT_1,
        &[("consumers", "alpha"), ("filter", "ERROR"), ("lines", "10")],
    );
    assert_eq!(errors.code, 0, "{}", errors.describe());
    assert!(
        errors.stdout.contains("ERROR slot cdc_orders"),
        "{}",
        errors.stdout
    );
    assert!(
        !errors.stdout.contains("starting consumer"),
        "{}",
        errors.stdout
    );

    let last = fleet.run("logs", COMMIT_1, &[("consumers", "alpha"), ("lines", "1")]);
    assert!(last.stdout.contains("postgres://"), "{}", last.stdout);
    assert!(
        !last.stdout.contains("starting consumer"),
        "{}",
        last.stdout
    );

    let unknown = fleet.run("logs", COMMIT_1, &[("consumers", "omega")]);
    assert_eq!(unknown.code, 2, "{}", unknown.describe());
    assert!(
        unknown
            .everything()
            .contains("`omega` is not a deployed consumer"),
        "{}",
        unknown.describe()
    );
}

/// `exec` names a running task whose ECS Exec agent runs, as the exact command line; without one
/// it says why and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_names_a_running_task_or_says_why_not() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::deployed("exec", &["alpha"], &sim).await;
    let cluster = fleet.cluster();
    let none = fleet.run("exec", COMMIT_1, &[("consumers", "alpha")]);
    assert_eq!(none.code, 1, "{}", none.describe());
    assert!(
        none.stdout.contains("it has no running task"),
        "{}",
        none.describe()
    );

    let task = |id: &str, exec: bool, agent: Option<&'static str>| SimRunning {
        id: id.into(),
        task_definition: "td".into(),
        container: "alpha".into(),
        exec,
        agent,
    };
    sim.running_tasks(&cluster, "alpha", vec![task("0a1b2c3d4e5f", false, None)]);
    let disabled = fleet.run("exec", COMMIT_1, &[("consumers", "alpha")]);
    assert_eq!(disabled.code, 1);
    assert!(
        disabled.stdout.contains("execute_command = true"),
        "{}",
        disabled.describe()
    );

    sim.running_tasks(
        &cluster,
        "alpha",
        vec![
            task("0a1b2c3d4e5f", true, Some("PENDING")),
            task("9f8e7d6c5b4a", true, Some("RUNNING")),
        ],
    );
    let ok = fleet.run("exec", COMMIT_1, &[("consumers", "alpha")]);
    assert_eq!(ok.code, 0, "{}", ok.describe());
    let line = format!(
        "aws ecs execute-command --region us-east-1 --cluster {cluster} --task 9f8e7d6c5b4a --container alpha --interactive --command /bin/sh"
    );
    assert!(ok.stdout.contains(&line), "{}", ok.describe());
    assert_eq!(ok.outputs["exec-command"], line);
    assert!(ok.summary.contains("9f8e7d6c5b4a"), "{}", ok.summary);
}

/// `scale` sets the count through Terraform (the applied entry records it), waits until ECS runs
/// it, and the count holds through a later deploy until the consumer's `consumer.toml` count
/// changes; it is refused where it could not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_holds_through_deploys_until_the_file_changes_its_count() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::deployed("scale", &["alpha", "beta"], &sim).await;
    let cluster = fleet.cluster();
    let applied = fleet.backend.applied().await;
    let td = applied["alpha"]["task_definition"]
        .as_str()
        .unwrap()
        .to_string();
    let frame = |running: i32, desired: i32| Frame::Service {
        status: "ACTIVE",
        deployments: vec![Dep {
            id: "ecs-svc/alpha",
            status: "PRIMARY",
            task_definition: td.clone(),
            rollout_state: "COMPLETED",
            reason: None,
            desired,
            running,
            failed: 0,
            created_at: 1_764_900_000.0,
        }],
    };
    // ECS takes the new count over three looks.
    sim.script(
        &cluster,
        "alpha",
        vec![frame(1, 3), frame(2, 3), frame(3, 3)],
    );
    let before = sim.calls().len();
    let scaled = fleet.run(
        "scale",
        COMMIT_1,
        &[("consumers", "alpha"), ("count", "3"), ("wait", "true")],
    );
    assert_eq!(scaled.code, 0, "{}", scaled.describe());
    let looks = sim.calls()[before..]
        .iter()
        .filter(|(op, _)| op == "DescribeServices")
        .count();
    assert_eq!(looks, 3, "waited until 3 of 3 ran");
    assert!(
        scaled.stdout.contains("`alpha` runs 3 of 3 tasks"),
        "{}",
        scaled.stdout
    );
    let entry = &fleet.backend.applied().await["alpha"]["config"];
    assert_eq!(entry["scale"]["desired_count"], 3, "{entry:#}");
    assert_eq!(entry["scale"]["file"], "desired_count=1");
    assert_eq!(
        entry["desired_count"], 1,
        "the file's own count stays in the entry"
    );
    let state = fleet.backend.state().await.unwrap();
    let service = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "terraform_data" && r["name"] == "service")
        .unwrap()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["index_key"] == "alpha")
        .unwrap()["attributes"]["input"]["value"]["desired_count"]
        .clone();
    assert_eq!(service, 3, "the state's service has the new count");
    let status = fleet.run("status", COMMIT_1, &[]);
    assert_eq!(status_of(&status)["alpha"]["scaled"], "3 tasks");
    assert_eq!(status_of(&status)["beta"]["scaled"], Value::Null);

    // A deploy of a code change keeps the count: the file's count is still the one it was set
    // over.
    write(
        fleet.ws.path(),
        "consumer_scripts/alpha/app/run.sh",
        "echo alpha v2\n",
    );
    let deploy = fleet.run("deploy", COMMIT_2, &[("wait", "true")]);
    assert_eq!(deploy.code, 0, "{}", deploy.describe());
    assert!(
        deploy
            .summary
            .contains("runs 3 tasks as `cdc-deploy scale` set on")
            || deploy
                .everything()
                .contains("runs 3 tasks as `cdc-deploy scale` set on"),
        "{}",
        deploy.everything()
    );
    assert_eq!(
        fleet.backend.applied().await["alpha"]["config"]["scale"]["desired_count"],
        3
    );

    // The file's count changes: the team's count wins and the record ends.
    write(
        fleet.ws.path(),
        "consumer_scripts/alpha/consumer.toml",
        "cpu = 256\nmemory = 512\ndesired_count = 2\n[environment]\nTOPIC = \"alpha.events\"\n",
    );
    let deploy = fleet.run("deploy", COMMIT_3, &[("wait", "false")]);
    assert_eq!(deploy.code, 0, "{}", deploy.describe());
    let entry = &fleet.backend.applied().await["alpha"]["config"];
    assert_eq!(entry["scale"], Value::Null, "{entry:#}");
    assert_eq!(entry["desired_count"], 2);

    // Refused before anything changes (exit 2): bounds for a fixed count.
    let refused = fleet.run(
        "scale",
        COMMIT_3,
        &[("consumers", "beta"), ("min", "1"), ("max", "3")],
    );
    assert_eq!(refused.code, 2, "{}", refused.describe());

    // The root module changed since the last deploy: a scale applies only its own change.
    let root = fleet.ws.path().join("infra/main.tf");
    let mut text = std::fs::read_to_string(&root).unwrap();
    text.push_str("\nresource \"terraform_data\" \"added_since\" {\n  input = 1\n}\n");
    std::fs::write(&root, text).unwrap();
    let stale = fleet.run("scale", COMMIT_3, &[("consumers", "alpha"), ("count", "4")]);
    assert_eq!(stale.code, 2, "{}", stale.describe());
    assert!(
        stale
            .everything()
            .contains("also changes `terraform_data.added_since`"),
        "{}",
        stale.describe()
    );
    assert_eq!(
        fleet.backend.applied().await["alpha"]["config"]["scale"],
        Value::Null
    );
    assert!(
        refused
            .everything()
            .contains("`beta` has a fixed count (desired_count=1): give `count`"),
        "{}",
        refused.describe()
    );
}

/// `logs --follow` on the command line prints what is there, then each new line once as it
/// arrives, until interrupted (Ctrl-C), which ends it with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_new_lines_until_interrupted() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::deployed("follow", &["alpha"], &sim).await;
    let group = fleet.backend.applied().await["alpha"]["log_group"]
        .as_str()
        .unwrap()
        .to_string();
    seed_log(&group, "ecs/alpha/task0001", &["first line".to_string()]).await;
    let files = tempfile::tempdir().unwrap();
    let out_path = files.path().join("stdout");
    let mut child = std::process::Command::new(support::binary())
        .args([
            "logs",
            "alpha",
            "--follow",
            "--since=10m",
            "--project-name",
            &fleet.project,
            "--environment=test",
            "--aws-region=us-east-1",
            "--terraform-dir=infra",
            &format!("--terraform-backend-config={}", fleet.backend.config()),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", support::moto_url())
        .env("AWS_ENDPOINT_URL_ECS", sim.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUNNER_TEMP", files.path())
        .current_dir(fleet.ws.path())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(files.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let printed = std::fs::read_to_string(&out_path).unwrap_or_default();
            if printed.contains(what) {
                return printed;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`{what}` not printed in a minute:\n{printed}\n{}",
                std::fs::read_to_string(files.path().join("stderr")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for("first line");
    seed_log(
        &group,
        "ecs/alpha/task0002",
        &["::warning::second line".to_string()],
    )
    .await;
    wait_for("second line");
    // A few more polls: nothing printed twice.
    std::thread::sleep(std::time::Duration::from_secs(5));
    // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let printed = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(status.code(), Some(0), "{printed}");
    assert_eq!(printed.matches("first line").count(), 1, "{printed}");
    assert_eq!(printed.matches("second line").count(), 1, "{printed}");
    assert!(
        printed.contains("task0002  ::warning::second line"),
        "{printed}"
    );
}
