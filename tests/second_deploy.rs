//! The second deploy, end to end: what a run leaves behind and what the next one does with it.
//! The binary run as the action, the real `terraform` with its state in moto's S3, images built
//! by the Docker engine and pushed to the registry, the scripted ECS, and the strict fake GitHub.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use support::ecs_sim::{Behaviour, EcsSimulator};
use support::github::GithubFake;
use support::terraform::{
    consumer, recording_terraform, rollout_workspace, run_env, terraform_wrapper, workspace,
    Backend, COMMIT_1, COMMIT_2,
};
use support::{unique, write, Run};

const TOKEN: &str = "ghs_fakeTokenForTheTestsOnly0123456789";
const COMMIT_3: &str = "3333333333333333333333333333333333333333";
const COMMIT_4: &str = "4444444444444444444444444444444444444444";

/// Busybox consumers in a workspace with a fixture root module, their state in a bucket of their
/// own, reported to the fake GitHub with the job's token, and (with a simulator) rolled out on
/// the scripted ECS.
struct Fleet {
    ws: tempfile::TempDir,
    project: String,
    backend: Backend,
    gh: GithubFake,
    env: Vec<(&'static str, String)>,
}

impl Fleet {
    async fn new(prefix: &str, names: &[&str], sim: Option<&EcsSimulator>) -> Fleet {
        // The binary runs on this thread while the fakes answer it from another one.
        assert_eq!(
            tokio::runtime::Handle::current().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread,
            "a fleet test needs `#[tokio::test(flavor = \"multi_thread\")]`"
        );
        let ws = if sim.is_some() {
            rollout_workspace()
        } else {
            workspace()
        };
        for name in names {
            consumer(ws.path(), name, 256);
        }
        let gh = GithubFake::start().await;
        gh.require_token(TOKEN);
        let mut env = vec![("GITHUB_API_URL", gh.url())];
        if let Some(sim) = sim {
            env.push(("AWS_ENDPOINT_URL_ECS", sim.url()));
            env.push(("CDC_TEST_ECS_SIM", sim.url()));
        }
        Fleet {
            ws,
            project: unique(prefix),
            backend: Backend::new().await,
            gh,
            env,
        }
    }

    fn path(&self) -> &Path {
        self.ws.path()
    }

    /// The binary run as the action in `mode` for `commit`, with `extra` inputs and `env`.
    fn run_with(
        &self,
        mode: &str,
        commit: &str,
        extra: &[(&str, &str)],
        env: &[(&str, String)],
    ) -> Run {
        let mut inputs = vec![("github-token", TOKEN)];
        inputs.extend_from_slice(extra);
        let mut all = self.env.clone();
        all.extend(env.iter().cloned());
        run_env(
            self.path(),
            &self.project,
            &self.backend,
            mode,
            commit,
            &inputs,
            &all,
        )
    }

    fn run(&self, mode: &str, commit: &str, extra: &[(&str, &str)]) -> Run {
        self.run_with(mode, commit, extra, &[])
    }
}

/// The check run of `consumer` for `commit` (environment `test`).
fn check<'a>(
    runs: &'a [support::github::CheckRun],
    consumer: &str,
    commit: &str,
) -> &'a support::github::CheckRun {
    let name = format!("cdc-deploy / test / {consumer}");
    runs.iter()
        .find(|c| c.name == name && c.head_sha == commit)
        .unwrap_or_else(|| panic!("no check run `{name}` for {commit}: {runs:#?}"))
}

fn json_map(r: &Run, output: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&r.outputs[output]).unwrap()
}

// The simulator serves from the runtime's other thread while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_consumer_is_restored_and_held_until_its_folder_changes() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::new("hold", &["alpha", "beta", "gamma"], Some(&sim)).await;
    let (ws, backend, gh) = (&fleet.ws, &fleet.backend, &fleet.gh);
    let go = |commit: &str| fleet.run("deploy", commit, &[("wait", "true")]);
    let first = go(COMMIT_1);
    assert_eq!(first.code, 0, "{}", first.describe());
    let v0 = backend.applied().await;

    // Run 1: `beta` changes; its rollout is rolled back by the circuit breaker.
    write(
        ws.path(),
        "consumer_scripts/beta/app/run.sh",
        "echo beta v1\n",
    );
    sim.behave_in_turn(
        "beta",
        vec![Behaviour::RollsBackAfter(1), Behaviour::CompletesAfter(1)],
    );
    let failing = go(COMMIT_2);
    assert_eq!(failing.code, 1, "{}", failing.describe());
    assert_eq!(failing.outputs["result"], "failure");
    assert_eq!(
        json_map(&failing, "rollouts"),
        BTreeMap::from([("beta".to_string(), "rolled back".to_string())]),
        "{}",
        failing.describe()
    );
    assert_eq!(failing.names("failed"), ["beta"]);
    assert_eq!(failing.names("held"), ["beta"], "{}", failing.describe());
    let images = json_map(&failing, "images");
    let failed_image = images["beta"].clone();
    assert_ne!(Value::String(failed_image.clone()), v0["beta"]["image"]);
    // The state names what ECS runs again: beta's previous entry, with the hold recorded.
    let after_1 = backend.applied().await;
    assert_eq!(
        after_1["beta"]["image"],
        v0["beta"]["image"],
        "{}",
        failing.describe()
    );
    assert_eq!(
        after_1["beta"]["task_definition"],
        v0["beta"]["task_definition"]
    );
    let hold = &after_1["beta"]["config"]["hold"];
    assert_eq!(hold["verdict"], "rolled back", "{hold}");
    assert_eq!(hold["image"], failed_image.as_str());
    let plan: Value = serde_json::from_str(&failing.outputs["plan"]).unwrap();
    let fingerprint = plan["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "beta")
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hold["fingerprint"], fingerprint.as_str());
    let day = hold["at"].as_str().unwrap()[..10].to_string();
    // The restore is a rollout of the image ECS already runs, watched and reported as such.
    let beta_registrations: Vec<String> = sim
        .registered()
        .into_iter()
        .filter(|(s, _)| s == "beta")
        .map(|(_, td)| td)
        .collect();
    assert_eq!(
        beta_registrations.len(),
        3,
        "first deploy, the failed one, the restore"
    );
    assert_eq!(beta_registrations[2], beta_registrations[0]);
    assert!(
        failing.stdout.contains("rollout: `beta` succeeded"),
        "the restore's rollout is watched: {}",
        failing.stdout
    );
    assert!(failing.summary.contains("restored"), "{}", failing.summary);
    assert!(
        failing
            .summary
            .contains("The rollout of `beta` failed (rolled back); `beta` back on its previous image and held there"),
        "the report leads with the outcome: {}",
        failing.summary
    );

    // A pull request's plan says so, and that nothing would happen to `beta`.
    let planned = fleet.run("plan", COMMIT_2, &[]);
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert_eq!(planned.names("held"), ["beta"], "{}", planned.describe());
    assert_eq!(planned.outputs["has-changes"], "false");
    assert!(
        planned.summary.contains(&format!(
            "held since the rollback of `{}` on {day}",
            &fingerprint[..12]
        )),
        "{}",
        planned.summary
    );

    // Run 2: `alpha` changes. `beta` is not rolled out again: it stays on what ECS runs.
    write(
        ws.path(),
        "consumer_scripts/alpha/app/run.sh",
        "echo alpha v1\n",
    );
    let registered_before = sim.registered().len();
    let second = go(COMMIT_3);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert_eq!(second.outputs["result"], "success");
    assert_eq!(
        json_map(&second, "rollouts"),
        BTreeMap::from([("alpha".to_string(), "succeeded".to_string())]),
        "{}",
        second.describe()
    );
    assert_eq!(second.names("held"), ["beta"]);
    assert_eq!(second.names("failed"), Vec::<String>::new());
    let registered: Vec<String> = sim.registered()[registered_before..]
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(registered, ["alpha"], "beta is not deployed again");
    let after_2 = backend.applied().await;
    assert_eq!(after_2["beta"]["image"], v0["beta"]["image"]);
    assert_eq!(after_2["beta"]["config"]["hold"], *hold, "the hold is kept");
    let held_line = format!(
        "held on its previous image `{}` since the rollback of `{}` on {day}; change its folder, or deploy with `consumers: beta`, to try again",
        v0["beta"]["image"].as_str().unwrap(),
        &fingerprint[..12]
    );
    assert!(second.stdout.contains(&held_line), "{}", second.stdout);
    assert!(
        second.summary.contains(&fingerprint[..12]),
        "{}",
        second.summary
    );
    let runs = gh.check_runs();
    let beta = check(&runs, "beta", COMMIT_3);
    assert_eq!(beta.conclusion.as_deref(), Some("neutral"), "{beta:#?}");
    let title = beta.output.title.clone().unwrap_or_default();
    assert!(title.starts_with("held on its previous image"), "{title}");
    let said = beta.output.summary.clone().unwrap_or_default();
    assert!(
        said.contains(&format!(
            "since the rollback of `{}` on {day}",
            &fingerprint[..12]
        )),
        "{said}"
    );
    assert!(said.contains("`consumers: beta`"), "{said}");

    // Run 3: `beta` changes again: tried again, rolled out, no longer held.
    write(
        ws.path(),
        "consumer_scripts/beta/app/run.sh",
        "echo beta v2\n",
    );
    let third = go(COMMIT_4);
    assert_eq!(third.code, 0, "{}", third.describe());
    assert_eq!(
        json_map(&third, "rollouts"),
        BTreeMap::from([("beta".to_string(), "succeeded".to_string())]),
        "{}",
        third.describe()
    );
    assert_eq!(third.names("held"), Vec::<String>::new());
    let after_3 = backend.applied().await;
    assert_eq!(
        after_3["beta"]["image"].as_str(),
        Some(json_map(&third, "images")["beta"].as_str())
    );
    assert_eq!(after_3["beta"]["config"]["hold"], Value::Null);
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_only_change_opens_the_deployment_and_its_check_before_anything_is_built() {
    let fleet = Fleet::new("cfg", &["orders", "audit"], None).await;
    let (ws, backend, gh) = (&fleet.ws, &fleet.backend, &fleet.gh);
    let first = fleet.run("deploy", COMMIT_1, &[]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let deployments_before = gh.deployments().len();

    // Only `orders`' settings change: nothing is built.
    write(
        ws.path(),
        "consumer_scripts/orders/consumer.toml",
        "cpu = 512\nmemory = 1024\n[environment]\nTOPIC = \"orders.events\"\n",
    );
    let r = fleet.run("deploy", COMMIT_2, &[]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(r.names("changed"), ["orders"]);
    assert_eq!(r.names("built"), Vec::<String>::new());
    let deployments = gh.deployments();
    assert_eq!(
        deployments.len(),
        deployments_before + 1,
        "a deployment is recorded"
    );
    let d = deployments.last().unwrap();
    assert_eq!(d.sha, COMMIT_2);
    let states: Vec<&str> = d.statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["in_progress", "success"]);
    // `orders`' check run was opened in progress as the deploy started, then completed.
    let runs = gh.check_runs();
    let orders = check(&runs, "orders", COMMIT_2);
    assert!(orders.updates >= 1, "opened, then completed: {orders:#?}");
    assert_eq!(orders.conclusion.as_deref(), Some("success"));
    let opened = gh
        .requests_to("POST", "/repos/acme/cdc/check-runs")
        .into_iter()
        .filter_map(|r| r.body)
        .find(|b| b["name"] == "cdc-deploy / test / orders" && b["head_sha"] == COMMIT_2)
        .expect("the check run was created");
    assert_eq!(opened["status"], "in_progress", "{opened}");
    assert!(
        opened["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("`cpu` 256 → 512"),
        "it says what changes before the build: {opened}"
    );
    // Nothing changed for `audit`: no check of its own; the fleet's reports it.
    assert!(
        !runs
            .iter()
            .any(|c| c.name == "cdc-deploy / test / audit" && c.head_sha == COMMIT_2),
        "{runs:#?}"
    );
    let fleet = runs
        .iter()
        .find(|c| c.name == "cdc-deploy / test" && c.head_sha == COMMIT_2)
        .expect("the fleet's check");
    assert!(
        fleet
            .output
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("`audit`")),
        "{fleet:?}"
    );
    assert_eq!(backend.applied_cpu("orders").await, 512);
    gh.assert_no_violations();
}

// The fake GitHub serves from the runtime's other thread while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_shared_resources_alone_is_a_change() {
    let fleet = Fleet::new("shared", &["orders"], None).await;
    let first = fleet.run("deploy", COMMIT_1, &[]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let deployments = fleet.gh.deployments().len();

    // A module input that only shared resources read.
    write(
        fleet.path(),
        "shared.tfvars.json",
        r#"{"cluster_settings": {"containerInsights": "enhanced"}}"#,
    );
    let var_file = [("terraform-var-file", "shared.tfvars.json")];
    let plan = fleet.run("plan", COMMIT_2, &var_file);
    assert_eq!(plan.code, 0, "{}", plan.describe());
    assert_eq!(plan.outputs["has-changes"], "true", "{}", plan.describe());
    assert_eq!(plan.outputs["result"], "success");
    assert_eq!(plan.names("unchanged"), ["orders"]);
    assert!(
        plan.summary
            .contains("A deploy would change shared infrastructure"),
        "{}",
        plan.summary
    );
    let deploy = fleet.run("deploy", COMMIT_2, &var_file);
    assert_eq!(deploy.code, 0, "{}", deploy.describe());
    assert_eq!(deploy.outputs["result"], "success", "{}", deploy.describe());
    assert!(
        deploy.stdout.contains("Apply complete! Resources: 1 added"),
        "{}",
        deploy.stdout
    );
    // Opened once Terraform's plan showed the change: nothing before it knew of one.
    let recorded = fleet.gh.deployments();
    assert_eq!(recorded.len(), deployments + 1, "{recorded:#?}");
    let states: Vec<&str> = recorded
        .last()
        .unwrap()
        .statuses
        .iter()
        .map(|s| s.state.as_str())
        .collect();
    assert_eq!(states, ["in_progress", "success"]);
    let again = fleet.run("deploy", COMMIT_2, &var_file);
    assert_eq!(
        again.outputs["result"],
        "nothing-to-deploy",
        "{}",
        again.describe()
    );
    assert_eq!(again.outputs["has-changes"], "false");
    assert_eq!(
        fleet.gh.deployments().len(),
        deployments + 1,
        "no deployment for nothing"
    );
    fleet.gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_that_cannot_be_written_keeps_the_outputs_and_completes_the_checks() {
    let fleet = Fleet::new("late", &["orders"], None).await;
    let gh = &fleet.gh;
    // The summary file's folder does not exist: appending to it fails after the deploy.
    let gone = fleet.path().join("no-such-folder/summary");
    let r = fleet.run_with(
        "deploy",
        COMMIT_1,
        &[],
        &[("GITHUB_STEP_SUMMARY", gone.display().to_string())],
    );
    assert_eq!(r.code, 1, "the step fails: {}", r.describe());
    assert!(r.stdout.contains("::error::"), "{}", r.stdout);
    // What happened is in the outputs all the same.
    assert_eq!(r.outputs["result"], "success", "{}", r.describe());
    assert_eq!(r.names("new"), ["orders"]);
    assert_eq!(r.names("built"), ["orders"]);
    assert!(json_map(&r, "images")["orders"].contains("@sha256:"));
    assert_eq!(r.names("failed"), Vec::<String>::new());
    // Nothing is left open on GitHub.
    let runs = gh.check_runs();
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|c| c.status == "completed"), "{runs:#?}");
    let d = gh.deployments();
    let states: Vec<&str> = d[0].statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["in_progress", "success"]);
    gh.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_whose_outcome_cannot_be_read_fails_the_consumers_it_applied() {
    let fleet = Fleet::new("unread", &["orders", "audit"], None).await;
    let (ws, gh) = (&fleet.ws, &fleet.gh);
    let first = fleet.run("deploy", COMMIT_1, &[]);
    assert_eq!(first.code, 0, "{}", first.describe());

    // `output` answers garbage once `apply` has run.
    let tools = tempfile::tempdir().unwrap();
    let marker = tools.path().join("applied");
    let terraform = terraform_wrapper(tools.path(), "terraform-broken-output", |real| {
        format!(
            "#!/bin/sh\nif [ \"$1\" = output ] && [ -e '{m}' ]; then echo '{{\"consumers\": {{\"value\": {{\"orders\": 3}}}}}}'; exit 0; fi\nif [ \"$1\" = apply ]; then touch '{m}'; fi\nexec '{real}' \"$@\"\n",
            m = marker.display()
        )
    });
    write(
        ws.path(),
        "consumer_scripts/orders/app/run.sh",
        "echo orders v2\n",
    );
    let r = fleet.run_with(
        "deploy",
        COMMIT_2,
        &[],
        &[("TERRAFORM_PATH", terraform.display().to_string())],
    );
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(r.names("failed"), ["orders"], "{}", r.describe());
    assert_eq!(r.outputs["result"], "failure");
    assert!(
        r.summary
            .contains("Terraform applied, but what it applied could not be read back"),
        "{}",
        r.summary
    );
    let runs = gh.check_runs();
    let orders = check(&runs, "orders", COMMIT_2);
    assert_eq!(orders.conclusion.as_deref(), Some("failure"), "{orders:#?}");
    let text = format!(
        "{} {}",
        orders.output.title.clone().unwrap_or_default(),
        orders.output.summary.clone().unwrap_or_default()
    );
    assert!(text.contains("applied; outcome unknown"), "{text}");
    assert!(
        !runs
            .iter()
            .any(|c| c.name == "cdc-deploy / test / audit" && c.head_sha == COMMIT_2),
        "nothing to do for `audit`: no check of its own"
    );
    gh.assert_no_violations();
}

#[tokio::test]
async fn nothing_is_written_into_a_teams_own_root_module() {
    let ws = workspace();
    let project = unique("clean");
    consumer(ws.path(), "orders", 256);
    let backend = Backend::new().await;
    write(
        ws.path(),
        "infra/team.tfvars.json",
        r#"{"cluster_settings": {"team": "payments"}}"#,
    );
    // Each command also lists the root module's folder as Terraform sees it.
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("commands");
    let listing = tools.path().join("listing");
    let recording = recording_terraform(tools.path(), &log);
    let terraform = terraform_wrapper(tools.path(), "terraform-listing", |_| {
        format!(
            "#!/bin/sh\nprintf '%s: ' \"$1\" >> '{l}'\nls -A | tr '\\n' ' ' >> '{l}'\necho >> '{l}'\nexec '{rec}' \"$@\"\n",
            l = listing.display(),
            rec = recording.display()
        )
    });
    let env = [("TERRAFORM_PATH", terraform.display().to_string())];
    let extra = [("terraform-var-file", "infra/team.tfvars.json")];
    for mode in ["plan", "deploy"] {
        let r = run_env(ws.path(), &project, &backend, mode, COMMIT_1, &extra, &env);
        assert_eq!(r.code, 0, "{}", r.describe());
    }
    let listed = std::fs::read_to_string(&listing).unwrap();
    for line in listed.lines() {
        let (_, files) = line.split_once(": ").unwrap();
        assert_eq!(files.trim(), "main.tf team.tfvars.json", "{listed}");
    }
    // The run's variables come first, the team's file after: its values win, as before.
    let commands = std::fs::read_to_string(&log).unwrap();
    let plan = commands.lines().find(|l| l.starts_with("plan ")).unwrap();
    let files: Vec<&str> = plan
        .split(' ')
        .filter_map(|a| a.strip_prefix("-var-file="))
        .collect();
    assert_eq!(files.len(), 2, "{plan}");
    assert!(!Path::new(files[0]).starts_with(ws.path()), "{plan}");
    assert!(files[0].ends_with("cdc-deploy.auto.tfvars.json"), "{plan}");
    assert!(files[1].ends_with("infra/team.tfvars.json"), "{plan}");
    assert!(!Path::new(files[0]).exists(), "removed after the run");
    let state = backend.state().await.unwrap();
    assert_eq!(
        state["outputs"]["shared"]["value"]["team"], "payments",
        "the team's file was read: {state}"
    );
}

// The simulator serves from the runtime's other thread while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_that_cannot_remember_a_hold_says_what_that_loses() {
    let sim = EcsSimulator::start().await;
    let fleet = Fleet::new("forget", &["beta"], Some(&sim)).await;
    let (ws, backend) = (&fleet.ws, &fleet.backend);
    // The rollout fixture without `hold` in its `consumers` type: Terraform drops the attribute.
    let main = std::fs::read_to_string(ws.path().join("infra/main.tf")).unwrap();
    let start = main.find("    hold = optional(object({").unwrap();
    let end = start + main[start..].find("    }))\n").unwrap() + "    }))\n".len();
    write(
        ws.path(),
        "infra/main.tf",
        &format!("{}{}", &main[..start], &main[end..]),
    );
    let go = |commit: &str| fleet.run("deploy", commit, &[("wait", "true")]);
    assert_eq!(go(COMMIT_1).code, 0);
    let v0 = backend.applied().await;
    write(
        ws.path(),
        "consumer_scripts/beta/app/run.sh",
        "echo beta v1\n",
    );
    sim.behave_in_turn(
        "beta",
        vec![Behaviour::RollsBackAfter(1), Behaviour::CompletesAfter(1)],
    );
    let r = go(COMMIT_2);
    assert_eq!(r.code, 1, "{}", r.describe());
    // Put back all the same: the state says what ECS runs.
    assert_eq!(
        backend.applied().await["beta"]["image"],
        v0["beta"]["image"]
    );
    assert!(
        r.stdout.contains(
            "`beta` is back on its previous image, but the root module cannot remember that it is held there"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("declare `hold` as the bundled module does"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.names("held"),
        Vec::<String>::new(),
        "not held: nothing remembers it"
    );
    assert!(
        r.summary.contains(
            "`beta` back on its previous image, but not held: the root module cannot remember it"
        ),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn a_deploy_whose_terraform_cannot_start_builds_nothing() {
    let ws = workspace();
    let project = unique("noinit");
    consumer(ws.path(), "orders", 256);
    // A state bucket that does not exist: `terraform init` fails before anything is built.
    let backend = Backend {
        bucket: unique("no-such-bucket-"),
        key: "cdc-deploy/test.tfstate".into(),
    };
    let r = run_env(ws.path(), &project, &backend, "deploy", COMMIT_1, &[], &[]);
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(r.names("built"), Vec::<String>::new(), "{}", r.describe());
    assert_eq!(r.names("failed"), ["orders"]);
    assert!(
        r.stdout
            .contains("images: not built, because the Terraform stage stopped"),
        "{}",
        r.stdout
    );
    assert!(
        r.summary.contains("`terraform init` failed"),
        "{}",
        r.summary
    );
}
