//! Whole commands run in-process against the fakes: the stages each command runs, and what a
//! deploy, a plan and a rollback ask of each system and leave in the outputs, across runs that
//! share one world (what one run applied is what the next one reads).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use serde_json::Value;

use super::fakes::{lock, FakeServices, GithubCall, HOST, PULL_REQUEST};
use super::outcome::{self, Facts, Verb};
use super::{run_with, stages, Finished, Stage};
use crate::cancel::Cancel;
use crate::clients::git::FixedGit;
use crate::config::cli::Cli;
use crate::config::env_vars::RunnerEnv;
use crate::config::Settings;

/// A root module that declares what the action relies on, with state that survives the runner.
/// The fake Terraform never runs it; `prepare` reads its declarations.
const ROOT_MODULE: &str = r#"terraform {
  backend "s3" {}
}

variable "project_name" {
  type = string
}

variable "environment" {
  type = string
}

variable "aws_region" {
  type = string
}

variable "consumers" {
  type = any
}

output "consumers" {
  value = {}
}
"#;

/// A workspace with a root module, the runner's temporary folder, and the fakes every run of
/// the test shares.
struct World {
    dir: tempfile::TempDir,
    fakes: FakeServices,
    runs: usize,
}

/// What one run left: how it ended, its outputs, and what it printed.
struct Ran {
    finished: Finished,
    settings: Settings,
    outputs: BTreeMap<String, String>,
    stdout: String,
}

impl Ran {
    fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .unwrap_or_else(|| panic!("no output `{name}`: {:?}", self.outputs.keys()))
    }

    /// A list or map output, parsed.
    fn json(&self, name: &str) -> Value {
        serde_json::from_str(self.output(name))
            .unwrap_or_else(|e| panic!("output `{name}` is not JSON: {e}"))
    }

    fn names(&self, name: &str) -> Vec<String> {
        serde_json::from_value(self.json(name)).unwrap()
    }
}

/// Read a `GITHUB_OUTPUT` file written in the `name<<DELIMITER` form.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let (name, delimiter) = line
            .split_once("<<")
            .unwrap_or_else(|| panic!("not `name<<delimiter`: {line}"));
        let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
        out.insert(name.to_string(), value.join("\n"));
    }
    out
}

impl World {
    fn new(fakes: FakeServices) -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
            fakes,
            runs: 0,
        };
        w.write("infra/main.tf", ROOT_MODULE);
        w
    }

    fn workspace(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.workspace().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A consumer with `cpu` units whose settings are no part of its image, so a change to
    /// them alone builds nothing.
    fn consumer(&self, name: &str, cpu: u32) {
        self.write(
            &format!("consumer_scripts/{name}/Dockerfile"),
            "FROM scratch\nCOPY app /app\n",
        );
        self.write(
            &format!("consumer_scripts/{name}/app/run.sh"),
            &format!("echo {name}\n"),
        );
        self.write(
            &format!("consumer_scripts/{name}/.dockerignore"),
            "consumer.toml\n",
        );
        self.settings_of(name, cpu);
    }

    fn settings_of(&self, name: &str, cpu: u32) {
        self.write(
            &format!("consumer_scripts/{name}/consumer.toml"),
            &format!("cpu = {cpu}\nmemory = 1024\n"),
        );
    }

    /// A change to the consumer's code: another fingerprint, another image.
    fn edit_code(&self, name: &str, version: u32) {
        self.write(
            &format!("consumer_scripts/{name}/app/run.sh"),
            &format!("echo {name} v{version}\n"),
        );
    }

    /// The settings of `cdc-deploy <args>` in this world; every run has a commit of its own.
    fn settings_with(&self, args: &[&str], env: &[(&str, &str)]) -> Settings {
        let temp = self.dir.path().join("runner-temp");
        std::fs::create_dir_all(&temp).unwrap();
        let (command, rest) = args.split_first().expect("a command");
        let mut argv: Vec<String> = vec![
            "cdc-deploy".into(),
            (*command).into(),
            format!("--workspace={}", self.workspace().display()),
            "--project-name=shop".into(),
            format!("--commit={:0>40}", self.runs + 1),
            "--terraform-dir=infra".into(),
            "--terraform-backend-config=use_lockfile=true".into(),
        ];
        argv.extend(rest.iter().map(|a| a.to_string()));
        let mut pairs = vec![("RUNNER_TEMP".to_string(), temp.display().to_string())];
        pairs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let cli = Cli::try_parse_from(argv).unwrap();
        Settings::resolve(
            cli,
            &RunnerEnv::from_pairs(pairs),
            self.dir.path(),
            &FixedGit(None),
        )
        .unwrap()
    }

    fn settings(&self, args: &[&str]) -> Settings {
        self.settings_with(args, &[])
    }

    async fn run(&mut self, args: &[&str]) -> Ran {
        let settings = self.settings(args);
        self.run_settings(settings, &Cancel::new()).await
    }

    /// Run `settings` with a runner of its own, against the world's fakes.
    async fn run_settings(&mut self, settings: Settings, cancel: &Cancel) -> Ran {
        self.runs += 1;
        let run_dir = self.run_dir();
        let (runner, stdout, _stderr) = crate::gha::testing::runner(true, &run_dir);
        let services = self.fakes.services(&settings);
        let finished = run_with(&settings, &runner, cancel, &services)
            .await
            .unwrap_or_else(|e| panic!("the run could not start: {e}"));
        let outputs = std::fs::read_to_string(run_dir.join("output")).unwrap_or_default();
        Ran {
            finished,
            settings,
            outputs: parse_outputs(&outputs),
            stdout: stdout.text(),
        }
    }

    fn run_dir(&self) -> PathBuf {
        let d = self.dir.path().join(format!("run-{}", self.runs));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A world where `alpha` and `beta` were deployed once, successfully.
    async fn deployed() -> World {
        let mut w = World::new(FakeServices::new());
        w.consumer("alpha", 256);
        w.consumer("beta", 256);
        let first = w.run(&["deploy"]).await;
        assert_eq!(first.finished.code, 0, "{}", first.stdout);
        w
    }
}

/// `host/shop-<name>@<digest>` as the registry holds it under its `ctx-` tag.
fn pushed_image(fakes: &FakeServices, name: &str) -> String {
    let repository = format!("shop-{name}");
    let tag = fakes
        .registry
        .tags(&repository)
        .into_iter()
        .find(|t| t.starts_with("ctx-"))
        .unwrap_or_else(|| panic!("`{repository}` holds no built image"));
    let digest = fakes.registry.digest(&repository, &tag).unwrap();
    format!("{HOST}/{repository}@{digest}")
}

fn count(items: &[String], word: &str) -> usize {
    items.iter().filter(|v| *v == word).count()
}

// The stages of each command ----------------------------------------------------------------------

#[test]
fn each_command_runs_its_own_stages() {
    use Stage::*;
    let w = World::new(FakeServices::new());
    let cases: [(&[&str], Vec<Stage>); 6] = [
        (&["plan", "--offline"], vec![Scan, PlanOffline, Report]),
        (
            &["plan"],
            vec![
                Scan,
                Prepare,
                Observe,
                ReadApplied,
                CompareEntries,
                TerraformPlan,
                Report,
            ],
        ),
        (&["plan", "--terraform=false"], vec![Scan, Observe, Report]),
        (
            &["deploy"],
            vec![
                Scan,
                Prepare,
                Observe,
                ReadApplied,
                CompareEntries,
                OpenGithub,
                Images,
                TerraformPlan,
                TerraformApply,
                Watch,
                Evidence,
                Restore,
                Keep,
                Report,
            ],
        ),
        (
            &["deploy", "--terraform=false"],
            vec![Scan, Observe, OpenGithub, Images, Watch, Report],
        ),
        (
            &["rollback", "--consumers=alpha"],
            vec![
                Prepare,
                ReadApplied,
                ResolveRollback,
                TerraformPlan,
                TerraformApply,
                Watch,
                Evidence,
                Keep,
                Report,
            ],
        ),
    ];
    for (args, want) in cases {
        assert_eq!(stages(&w.settings(args)), want, "{args:?}");
    }
}

#[test]
fn a_deploy_opens_github_before_the_images_and_plans_terraform_after_them() {
    let w = World::new(FakeServices::new());
    let list = stages(&w.settings(&["deploy"]));
    let at = |s: Stage| list.iter().position(|x| *x == s).unwrap();
    // The check runs say `in_progress` while the images build; Terraform plans the pushed
    // images' digests, which only exist after the image stage.
    assert!(at(Stage::OpenGithub) < at(Stage::Images));
    assert!(at(Stage::Images) < at(Stage::TerraformPlan));
    assert!(at(Stage::TerraformPlan) < at(Stage::TerraformApply));
    assert_eq!(list.last(), Some(&Stage::Report));
}

#[tokio::test]
async fn a_push_that_deleted_its_branch_only_reports_and_asks_nothing_of_anyone() {
    let mut w = World::new(FakeServices::new());
    w.consumer("alpha", 256);
    let event = format!(
        "{}/tests/fixtures/github/events/push.deleted-branch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let settings = w.settings_with(
        &["deploy"],
        &[("GITHUB_EVENT_NAME", "push"), ("GITHUB_EVENT_PATH", &event)],
    );
    assert_eq!(stages(&settings), [Stage::Report]);
    let ran = w.run_settings(settings, &Cancel::new()).await;
    assert_eq!(ran.finished.code, 0);
    assert_eq!(ran.finished.ran, [Stage::Report]);
    assert_eq!(ran.output("result"), "nothing-to-deploy");
    assert!(w.fakes.aws_and_terraform_untouched());
    assert_eq!(w.fakes.github.calls(), []);
}

// Deploy ----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_first_deploy_builds_pushes_applies_and_reports_two_new_consumers() {
    let mut w = World::new(FakeServices::new());
    w.consumer("alpha", 256);
    w.consumer("beta", 256);
    let ran = w.run(&["deploy"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(
        ran.finished.ran,
        stages(&ran.settings),
        "every stage, in order"
    );

    // Each repository created, each image built once and pushed, with the commit's tag.
    assert_eq!(f.ecr.repositories(), ["shop-alpha", "shop-beta"]);
    assert_eq!(f.engine.builder.builds().len(), 2);
    assert_eq!(f.engine.builder.pushes(), f.engine.builder.builds());
    let commit_tag = format!("sha-{:0>40}", 1);
    for name in ["alpha", "beta"] {
        let tags = f.registry.tags(&format!("shop-{name}"));
        assert!(
            tags.iter().any(|t| t.starts_with("ctx-")),
            "{name}: {tags:?}"
        );
        assert!(tags.contains(&commit_tag), "{name}: {tags:?}");
    }

    // Terraform applied both, each pinned to the digest the registry holds.
    let verbs = f.terraform.verbs();
    assert_eq!(
        verbs,
        ["version", "init", "output", "validate", "plan", "show", "apply", "output"]
    );
    // Exactly the saved plan is applied, never a fresh one.
    let lines = f.terraform.commands();
    let out = lines[4]
        .split(' ')
        .find_map(|a| a.strip_prefix("-out="))
        .expect("a saved plan");
    assert!(lines[4].contains(" -var-file="), "{}", lines[4]);
    assert!(lines[6].ends_with(&format!(" {out}")), "{}", lines[6]);
    let applied = f.terraform.applied();
    assert_eq!(applied.keys().collect::<Vec<_>>(), ["alpha", "beta"]);
    for name in ["alpha", "beta"] {
        assert_eq!(applied[name]["image"], pushed_image(f, name), "{name}");
        assert_eq!(applied[name]["cpu"], 256);
    }

    // Every output, as the workflow reads them.
    let mut names: Vec<&str> = ran.outputs.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut want = super::outputs::declared_outputs();
    want.sort_unstable();
    assert_eq!(names, want);
    assert_eq!(ran.output("result"), "success");
    assert_eq!(ran.output("has-changes"), "true");
    assert_eq!(ran.names("new"), ["alpha", "beta"]);
    assert_eq!(ran.names("built"), ["alpha", "beta"]);
    assert_eq!(ran.names("deployed"), ["alpha", "beta"]);
    assert_eq!(ran.names("failed"), Vec::<String>::new());
    assert_eq!(ran.names("held"), Vec::<String>::new());
    assert_eq!(
        ran.json("images"),
        serde_json::json!({
            "alpha": pushed_image(f, "alpha"),
            "beta": pushed_image(f, "beta"),
        })
    );
    assert_eq!(
        ran.json("rollouts"),
        serde_json::json!({"alpha": "succeeded", "beta": "succeeded"})
    );
    assert_eq!(ran.json("plan")["consumers"].as_array().unwrap().len(), 2);
    assert!(
        ran.output("comment-url").contains("/pull/12#issuecomment-"),
        "{}",
        ran.output("comment-url")
    );

    // GitHub: the deployment opened before any check run was completed, and closed a success;
    // every consumer's check run opened in progress and completed.
    let calls = f.github.calls();
    let deployment = calls
        .iter()
        .position(|c| matches!(c, GithubCall::CreateDeployment { .. }))
        .expect("a deployment");
    let first_completed = calls
        .iter()
        .position(|c| matches!(c, GithubCall::UpdateCheckRun { body, .. } if body["status"] == "completed"))
        .expect("a completed check run");
    assert!(deployment < first_completed, "{calls:#?}");
    let last_status = calls
        .iter()
        .rev()
        .find_map(|c| match c {
            GithubCall::CreateDeploymentStatus { body, .. } => Some(body["state"].clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_status, "success");
    let checks = f.github.check_runs();
    assert_eq!(
        checks.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "cdc-deploy / production",
            "cdc-deploy / production / alpha",
            "cdc-deploy / production / beta"
        ],
        "the fleet's and each consumer's with work: {checks:#?}"
    );
    let fleet = &checks["cdc-deploy / production"];
    let summary = fleet.output["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("`alpha`") && summary.contains("`beta`"),
        "the whole report: {summary}"
    );
    for c in checks.values() {
        assert_eq!(c.created["status"], "in_progress", "{}", c.name);
        assert_eq!(c.status, "completed", "{}", c.name);
        assert_eq!(c.conclusion.as_deref(), Some("success"), "{}", c.name);
    }
}

#[tokio::test]
async fn a_second_deploy_of_the_same_folders_builds_and_applies_nothing() {
    let mut w = World::deployed().await;
    let commands = w.fakes.terraform.verbs().len();
    let builds = w.fakes.engine.builder.builds().len();
    let connects = w.fakes.engine.connects();
    let ecr = w.fakes.ecr.calls().len();
    w.fakes.github.clear_calls();

    let ran = w.run(&["deploy"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(ran.output("result"), "nothing-to-deploy");
    assert_eq!(ran.output("has-changes"), "false");
    assert_eq!(ran.names("unchanged"), ["alpha", "beta"]);
    assert_eq!(ran.names("built"), Vec::<String>::new());
    assert_eq!(ran.names("reused"), ["alpha", "beta"]);
    // No build: the engine is not even connected to.
    assert_eq!(f.engine.builder.builds().len(), builds);
    assert_eq!(f.engine.connects(), connects);
    // Terraform planned and found nothing to apply.
    let verbs = &f.terraform.verbs()[commands..];
    assert_eq!(count(verbs, "plan"), 1, "{verbs:?}");
    assert_eq!(count(verbs, "apply"), 0, "{verbs:?}");
    // Repositories are described, never created again.
    assert!(f.ecr.calls()[ecr..]
        .iter()
        .all(|c| !c.starts_with("create")));
    // No deployment is recorded when nothing is deployed, and nothing is watched.
    assert!(!f
        .github
        .calls()
        .iter()
        .any(|c| matches!(c, GithubCall::CreateDeployment { .. })));
    assert_eq!(ran.json("rollouts"), serde_json::json!({}));
}

#[tokio::test]
async fn a_configuration_change_is_named_before_the_images_and_applied_without_a_build() {
    let mut w = World::deployed().await;
    let builds = w.fakes.engine.builder.builds().len();
    let commands = w.fakes.terraform.verbs().len();
    let before = w.fakes.terraform.output();
    w.fakes.github.clear_calls();
    w.settings_of("alpha", 512);

    let ran = w.run(&["deploy"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(ran.names("changed"), ["alpha"]);
    assert_eq!(ran.names("unchanged"), ["beta"]);
    assert_eq!(ran.names("built"), Vec::<String>::new());
    assert_eq!(f.engine.builder.builds().len(), builds, "nothing built");
    // Known before the image stage: its check run opened in progress, naming the change.
    let check = &f.github.check_runs()["cdc-deploy / production / alpha"];
    assert_eq!(check.created["status"], "in_progress");
    let summary = check.created["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("changed"), "{summary}");
    assert!(summary.contains("`cpu` 256 → 512"), "{summary}");
    // Beta has nothing to do and nothing wrong: no check run of its own; the fleet's reports it.
    let checks = f.github.check_runs();
    assert!(
        !checks.contains_key("cdc-deploy / production / beta"),
        "{:?}",
        checks.keys()
    );
    let fleet = &checks["cdc-deploy / production"];
    assert_eq!(fleet.conclusion.as_deref(), Some("success"));
    assert!(
        fleet.output["summary"]
            .as_str()
            .is_some_and(|s| s.contains("`beta`")),
        "{:?}",
        fleet.output
    );
    // Terraform applied the new setting on the same image, and only alpha rolled out.
    let verbs = &f.terraform.verbs()[commands..];
    assert_eq!(count(verbs, "apply"), 1, "{verbs:?}");
    let applied = f.terraform.applied();
    assert_eq!(applied["alpha"]["cpu"], 512);
    assert_eq!(applied["alpha"]["image"], before["alpha"]["image"]);
    assert_ne!(
        f.terraform.output()["alpha"]["task_definition"],
        before["alpha"]["task_definition"]
    );
    assert_eq!(
        ran.json("rollouts"),
        serde_json::json!({"alpha": "succeeded"})
    );
    assert_eq!(ran.names("deployed"), ["alpha"]);
}

/// A world where `beta`'s second image was rolled back by ECS in the last run.
async fn rolled_back() -> (World, Ran) {
    let mut w = World::deployed().await;
    w.edit_code("beta", 2);
    w.fakes.ecs.roll_back_next("beta");
    let ran = w.run(&["deploy"]).await;
    (w, ran)
}

#[tokio::test]
async fn a_rollout_ecs_rolls_back_is_put_back_on_its_previous_entry_and_held() {
    let mut w = World::deployed().await;
    let first = w.fakes.terraform.applied()["beta"].clone();
    let commands = w.fakes.terraform.verbs().len();
    w.edit_code("beta", 2);
    w.fakes.ecs.roll_back_next("beta");

    let ran = w.run(&["deploy"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 1, "{}", ran.stdout);
    assert_eq!(ran.output("result"), "failure");
    assert_eq!(ran.names("failed"), ["beta"]);
    assert_eq!(
        ran.json("rollouts"),
        serde_json::json!({"beta": "rolled back"})
    );
    // Put back in the same run: a second plan and apply, of its previous entry.
    let verbs = &f.terraform.verbs()[commands..];
    assert_eq!(count(verbs, "plan"), 2, "{verbs:?}");
    assert_eq!(count(verbs, "apply"), 2, "{verbs:?}");
    let failed_image = pushed_image(f, "beta");
    let beta = &f.terraform.applied()["beta"];
    assert_eq!(beta["image"], first["image"], "back on its previous image");
    assert_eq!(beta["cpu"], first["cpu"]);
    // Held there: its applied entry remembers the image that failed.
    let hold = &beta["hold"];
    assert_eq!(hold["image"], failed_image.as_str(), "{hold}");
    assert_eq!(hold["verdict"], "rolled back");
    assert_eq!(f.terraform.output()["beta"]["config"]["hold"], *hold);
    assert_eq!(ran.names("held"), ["beta"]);
    // The evidence was gathered: the stopped task and its container's last log lines.
    assert!(f.ecs.calls().iter().any(|c| c.starts_with("stopped ")));
    assert!(
        ran.stdout.contains("fatal: no route to broker"),
        "{}",
        ran.stdout
    );
    let check = &f.github.check_runs()["cdc-deploy / production / beta"];
    assert_eq!(check.conclusion.as_deref(), Some("failure"));
    assert!(check.title.contains("held there"), "{}", check.title);
}

#[tokio::test]
async fn a_held_consumer_is_left_alone_by_the_next_deploy() {
    let (mut w, _) = rolled_back().await;
    let held_entry = w.fakes.terraform.applied()["beta"].clone();
    let revisions = w.fakes.terraform.history().len();
    let builds = w.fakes.engine.builder.builds().len();
    w.fakes.github.clear_calls();
    w.edit_code("alpha", 2);

    let ran = w.run(&["deploy"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(ran.output("result"), "success");
    assert_eq!(ran.names("held"), ["beta"]);
    assert_eq!(ran.names("changed"), ["alpha"]);
    // Only alpha is built and rolled out; beta keeps its entry, hold included.
    let built = &f.engine.builder.builds()[builds..];
    assert_eq!(built.len(), 1, "{built:?}");
    assert!(built[0].contains("/shop-alpha:"), "{built:?}");
    assert_eq!(f.terraform.applied()["beta"], held_entry);
    let new: Vec<String> = f.terraform.history()[revisions..]
        .iter()
        .map(|r| r.consumer.clone())
        .collect();
    assert_eq!(new, ["alpha"]);
    assert_eq!(
        ran.json("rollouts"),
        serde_json::json!({"alpha": "succeeded"})
    );
    let check = &f.github.check_runs()["cdc-deploy / production / beta"];
    assert_eq!(check.conclusion.as_deref(), Some("neutral"), "{check:?}");
}

#[tokio::test]
async fn a_failed_build_fails_the_run_and_the_other_consumer_is_still_deployed() {
    let mut w = World::new(FakeServices::new().failing_build("beta"));
    w.consumer("alpha", 256);
    w.consumer("beta", 256);

    let ran = w.run(&["deploy"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 1, "{}", ran.stdout);
    assert_eq!(ran.output("result"), "failure");
    assert_eq!(ran.names("failed"), ["beta"]);
    assert_eq!(ran.names("built"), ["alpha"]);
    assert_eq!(ran.names("deployed"), ["alpha"]);
    // A new consumer whose image failed is left out of Terraform; the other is applied.
    assert_eq!(f.terraform.applied().keys().collect::<Vec<_>>(), ["alpha"]);
    assert!(f.registry.tags("shop-beta").is_empty());
    let checks = f.github.check_runs();
    assert_eq!(
        checks["cdc-deploy / production / beta"]
            .conclusion
            .as_deref(),
        Some("failure")
    );
    assert_eq!(
        checks["cdc-deploy / production / alpha"]
            .conclusion
            .as_deref(),
        Some("success")
    );
}

#[tokio::test]
async fn the_exit_code_and_result_are_what_the_outcome_function_decides() {
    // The stages driven one by one, as `run_with` does, so the run's facts can be read after.
    let w = World::new(FakeServices::new().failing_build("beta"));
    w.consumer("alpha", 256);
    w.consumer("beta", 256);
    let settings = w.settings(&["deploy"]);
    let run_dir = w.run_dir();
    let (runner, _, _) = crate::gha::testing::runner(true, &run_dir);
    let services = w.fakes.services(&settings);
    let cancel = Cancel::new();
    let mut run = stages::Run::new(&settings, &runner, &cancel, &services);
    for stage in stages(&settings) {
        run.stage(stage).await.unwrap();
    }
    let decided = outcome::outcome(&Facts {
        verb: Verb::Deploy,
        plan: &run.plan,
        run: &run.report,
        cancelled: None,
        report_errors: &[],
    });
    let outputs = parse_outputs(&std::fs::read_to_string(run_dir.join("output")).unwrap());
    assert_eq!(run.exit_code(), decided.code);
    assert_eq!(decided.code, 1);
    assert_eq!(outputs["result"], decided.result.as_str());
    let failed: Vec<String> = serde_json::from_str(&outputs["failed"]).unwrap();
    assert_eq!(failed, decided.failed.keys().cloned().collect::<Vec<_>>());
    let deployed: Vec<String> = serde_json::from_str(&outputs["deployed"]).unwrap();
    assert_eq!(deployed, decided.deployed);
    let held: Vec<String> = serde_json::from_str(&outputs["held"]).unwrap();
    assert_eq!(held, decided.held);
}

#[tokio::test]
async fn a_cancelled_run_only_reports_and_exits_143() {
    let mut w = World::new(FakeServices::new());
    w.consumer("alpha", 256);
    let cancel = Cancel::new();
    cancel.cancel("SIGTERM");
    let settings = w.settings(&["deploy"]);

    let ran = w.run_settings(settings, &cancel).await;

    assert_eq!(ran.finished.ran, [Stage::Report]);
    assert_eq!(ran.finished.code, 143);
    assert_eq!(ran.output("result"), "cancelled");
    assert_eq!(
        ran.outputs.len(),
        super::outputs::declared_outputs().len(),
        "every output is written"
    );
    // Nothing was started: no repository, no build, no Terraform, no deployment.
    assert!(w.fakes.aws_and_terraform_untouched());
    assert!(!w
        .fakes
        .github
        .calls()
        .iter()
        .any(|c| matches!(c, GithubCall::CreateDeployment { .. })));
}

// Plan ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_plan_says_what_a_deploy_would_do_and_changes_nothing() {
    let mut w = World::deployed().await;
    w.edit_code("alpha", 2);
    let commands = w.fakes.terraform.verbs().len();
    let builds = w.fakes.engine.builder.builds().len();
    let ecr = w.fakes.ecr.calls().len();
    let applied = w.fakes.terraform.applied();
    w.fakes.github.clear_calls();

    let ran = w.run(&["plan"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(ran.finished.ran, stages(&ran.settings));
    assert_eq!(ran.names("changed"), ["alpha"]);
    assert_eq!(ran.names("unchanged"), ["beta"]);
    assert_eq!(ran.output("has-changes"), "true");
    let alpha = &ran.json("plan")["consumers"][0];
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(
        alpha["steps"],
        serde_json::json!(["build", "push", "apply"])
    );
    assert_eq!(alpha["terraform"]["replace"], 1);
    // Planned, never applied, built or created; nothing deployed.
    let verbs = &f.terraform.verbs()[commands..];
    assert_eq!(count(verbs, "plan"), 1, "{verbs:?}");
    assert_eq!(count(verbs, "apply"), 0, "{verbs:?}");
    assert_eq!(f.terraform.applied(), applied);
    assert_eq!(f.engine.builder.builds().len(), builds);
    assert!(f.ecr.calls()[ecr..]
        .iter()
        .all(|c| c.starts_with("describe")));
    assert!(!f.github.calls().iter().any(|c| matches!(
        c,
        GithubCall::CreateDeployment { .. } | GithubCall::CreateDeploymentStatus { .. }
    )));
}

#[tokio::test]
async fn an_offline_plan_asks_aws_and_terraform_nothing() {
    let mut w = World::new(FakeServices::new());
    w.consumer("alpha", 256);

    let ran = w.run(&["plan", "--offline"]).await;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(ran.finished.ran, stages(&ran.settings));
    assert_eq!(ran.names("new"), ["alpha"]);
    assert!(w.fakes.aws_and_terraform_untouched());
}

// Rollback --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rollback_puts_a_consumer_back_on_its_earlier_image_and_holds_it() {
    let mut w = World::deployed().await;
    let v1 = pushed_image(&w.fakes, "beta");
    w.edit_code("beta", 2);
    let second = w.run(&["deploy"]).await;
    assert_eq!(second.finished.code, 0, "{}", second.stdout);
    let v2 = w.fakes.terraform.applied()["beta"]["image"].clone();
    assert_ne!(v2, v1.as_str());
    let alpha = w.fakes.terraform.applied()["alpha"].clone();

    let ran = w.run(&["rollback", "--consumers=beta"]).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 0, "{}", ran.stdout);
    assert_eq!(ran.finished.ran, stages(&ran.settings));
    assert_eq!(ran.output("result"), "success");
    let beta = &f.terraform.applied()["beta"];
    assert_eq!(beta["image"], v1.as_str());
    assert_eq!(beta["hold"]["image"], v2);
    assert_eq!(beta["hold"]["verdict"], "rolled back by hand");
    assert_eq!(f.terraform.applied()["alpha"], alpha, "alpha is not named");
    assert_eq!(ran.names("held"), ["beta"]);
    assert_eq!(ran.json("images"), serde_json::json!({"beta": v1}));
    assert_eq!(
        ran.json("rollouts"),
        serde_json::json!({"beta": "succeeded"})
    );
    assert!(f.ecs.calls().iter().any(|c| c.starts_with("previous ")));
    // Nothing is built or pushed by a rollback.
    assert_eq!(f.engine.builder.builds().len(), 3);

    // Held there: the next deploy of the same folder leaves it on the earlier image.
    let next = w.run(&["deploy"]).await;
    assert_eq!(next.finished.code, 0, "{}", next.stdout);
    assert_eq!(next.output("result"), "nothing-to-deploy");
    assert_eq!(next.names("held"), ["beta"]);
    assert_eq!(w.fakes.terraform.applied()["beta"]["image"], v1.as_str());
}

#[tokio::test]
async fn a_rollback_naming_no_deployed_consumer_is_refused_with_exit_2_and_changes_nothing() {
    let mut w = World::deployed().await;
    let applied = w.fakes.terraform.applied();
    let commands = w.fakes.terraform.verbs().len();

    let ran = w.run(&["rollback", "--consumers=gamma"]).await;

    assert_eq!(ran.finished.code, 2, "{}", ran.stdout);
    assert_eq!(ran.output("result"), "failure");
    let verbs = &w.fakes.terraform.verbs()[commands..];
    assert_eq!(count(verbs, "plan") + count(verbs, "apply"), 0, "{verbs:?}");
    assert_eq!(w.fakes.terraform.applied(), applied);
}

/// The run's own files stay in its temporary folder: nothing is written into the root module.
#[tokio::test]
async fn a_deploy_writes_nothing_into_the_root_module() {
    let w = World::deployed().await;
    let root = w.workspace().join("infra");
    let files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, [root.join("main.tf")]);
    assert!(Path::new(&w.dir.path().join("runner-temp").join("cdc-deploy")).is_dir());
}

// Signals ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_signal_during_the_builds_stops_the_run_before_terraform_plans() {
    let cancel = Cancel::new();
    let mut w = World::new(FakeServices::new().cancelling_during_build("alpha", &cancel));
    w.consumer("alpha", 256);
    w.consumer("beta", 256);
    let settings = w.settings(&["deploy"]);

    let ran = w.run_settings(settings, &cancel).await;
    let f = &w.fakes;

    assert_eq!(ran.finished.code, 143);
    assert_eq!(ran.output("result"), "cancelled");
    assert_eq!(ran.finished.ran.last(), Some(&Stage::Report));
    assert!(!ran.finished.ran.contains(&Stage::TerraformPlan));
    assert_eq!(f.terraform.verbs(), ["version", "init", "output"]);
    assert_eq!(f.terraform.applied(), BTreeMap::new());
    // What was started is closed as cancelled, the deployment as not a success.
    for c in f.github.check_runs().values() {
        assert_eq!(c.conclusion.as_deref(), Some("cancelled"), "{}", c.name);
    }
    let last = f.github.calls().into_iter().rev().find_map(|c| match c {
        GithubCall::CreateDeploymentStatus { body, .. } => Some(body),
        _ => None,
    });
    assert_eq!(last.unwrap()["state"], "failure");
}

// Reviews and removals --------------------------------------------------------------------------

#[tokio::test]
async fn a_deploy_of_the_plan_the_pull_request_showed_says_so_in_its_comment() {
    let mut w = World::deployed().await;
    w.edit_code("alpha", 2);
    let plan = w.run(&["plan"]).await;
    let shown = w.fakes.github.comment_bodies(PULL_REQUEST);
    assert_eq!(shown.len(), 1, "one sticky comment");
    assert!(shown[0].contains("\n## cdc-deploy plan:"), "{}", shown[0]);
    let digest = crate::report::publish::marker_digest(&shown[0])
        .unwrap()
        .to_string();

    let deploy = w.run(&["deploy"]).await;

    assert_eq!(deploy.output("comment-url"), plan.output("comment-url"));
    let body = &w.fakes.github.comment_bodies(PULL_REQUEST)[0];
    assert!(
        body.contains(&format!(
            "This deploy applied the plan this pull request showed (plan `{digest}`)"
        )),
        "{body}"
    );
}

#[tokio::test]
async fn a_deploy_of_another_plan_than_the_one_reviewed_warns_in_its_comment() {
    let mut w = World::deployed().await;
    w.edit_code("alpha", 2);
    w.run(&["plan"]).await;
    // Merged after the review: the deploy does more than the comment showed.
    w.edit_code("beta", 2);

    w.run(&["deploy"]).await;

    let body = &w.fakes.github.comment_bodies(PULL_REQUEST)[0];
    assert!(body.contains("> [!WARNING]"), "{body}");
    assert!(
        body.contains("is not the one this pull request showed"),
        "{body}"
    );
}

#[tokio::test]
async fn a_removed_folder_is_destroyed_only_with_allow_destroy() {
    let mut w = World::deployed().await;
    std::fs::remove_dir_all(w.workspace().join("consumer_scripts/beta")).unwrap();
    let commands = w.fakes.terraform.verbs().len();

    let guarded = w.run(&["deploy"]).await;

    assert_eq!(guarded.finished.code, 1, "{}", guarded.stdout);
    assert_eq!(guarded.names("removed"), ["beta"]);
    assert_eq!(guarded.names("failed"), ["beta"]);
    let verbs = &w.fakes.terraform.verbs()[commands..];
    assert_eq!(count(verbs, "apply"), 0, "stopped before apply: {verbs:?}");
    assert!(w.fakes.terraform.applied().contains_key("beta"));

    let allowed = w.run(&["deploy", "--allow-destroy"]).await;

    assert_eq!(allowed.finished.code, 0, "{}", allowed.stdout);
    assert_eq!(allowed.output("result"), "success");
    assert_eq!(allowed.names("removed"), ["beta"]);
    assert_eq!(
        w.fakes.terraform.applied().keys().collect::<Vec<_>>(),
        ["alpha"]
    );
}

#[tokio::test]
async fn a_new_consumer_whose_first_rollout_fails_is_held_on_the_image_that_failed() {
    let mut w = World::new(FakeServices::new().rolling_back("beta"));
    w.consumer("alpha", 256);
    w.consumer("beta", 256);

    let ran = w.run(&["deploy"]).await;

    assert_eq!(ran.finished.code, 1, "{}", ran.stdout);
    assert_eq!(ran.names("failed"), ["beta"]);
    assert_eq!(ran.names("deployed"), ["alpha"]);
    assert_eq!(
        ran.json("rollouts"),
        serde_json::json!({"alpha": "succeeded", "beta": "failed"})
    );
    // Nothing earlier to put it back on: its entry stays, with the hold recorded (an output-only
    // change: its task definition is the same, so nothing is rolled out again).
    let f = &w.fakes;
    assert_eq!(count(&f.terraform.verbs(), "apply"), 2);
    assert_eq!(ran.names("held"), ["beta"]);
    let failed = f.terraform.applied()["beta"]["image"].clone();
    assert_eq!(f.terraform.applied()["beta"]["hold"]["image"], failed);
    assert!(
        ran.stdout
            .contains("`beta` was new: there is no previous entry"),
        "{}",
        ran.stdout
    );

    // The next deploy of the same folder does not roll it out again, and says why.
    let again = w.run(&["deploy"]).await;
    assert_eq!(again.finished.code, 0, "{}", again.stdout);
    assert_eq!(again.names("held"), ["beta"]);
    assert!(
        again.stdout.contains(
            "held on the image that failed (it has no earlier one) since the failed rollout of"
        ),
        "{}",
        again.stdout
    );
}

// Defects these tests found, mended --------------------------------------------------------------

#[tokio::test]
async fn a_rollback_of_a_consumer_held_after_a_failed_rollout_does_not_go_back_to_the_failed_image()
{
    let (mut w, _) = rolled_back().await;
    let failed = w.fakes.terraform.applied()["beta"]["hold"]["image"].clone();

    let ran = w.run(&["rollback", "--consumers=beta"]).await;

    assert_ne!(
        w.fakes.terraform.applied()["beta"]["image"],
        failed,
        "{}",
        ran.stdout
    );
}

#[tokio::test]
async fn a_run_cancelled_before_the_scan_does_not_say_no_consumers_were_found() {
    let mut w = World::deployed().await;
    let cancel = Cancel::new();
    cancel.cancel("SIGTERM");
    let settings = w.settings(&["deploy"]);

    w.run_settings(settings, &cancel).await;

    let body = &w.fakes.github.comment_bodies(PULL_REQUEST)[0];
    assert!(!body.contains("No consumers were found"), "{body}");
}

#[tokio::test]
async fn a_refused_rollback_is_said_once() {
    let mut w = World::deployed().await;

    let ran = w.run(&["rollback", "--consumers=gamma"]).await;

    let errors: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error") && l.contains("no deployed consumer matches"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

// Log groups kept from earlier consumers ----------------------------------------------------------

#[tokio::test]
async fn a_consumer_added_again_adopts_the_log_group_its_namesake_left() {
    let mut w = World::new(FakeServices::new());
    w.consumer("alpha", 256);
    w.consumer("beta", 256);
    let settings = w.settings(&["plan"]);
    // An earlier `alpha` was removed; the bundled module kept its log group (`skip_destroy`).
    let kept = format!("/ecs/shop/{}/alpha", settings.environment);
    lock(&w.fakes.logs.groups).insert(kept.clone());
    lock(&w.fakes.logs.groups).insert(format!("/ecs/other/{}/beta", settings.environment));

    // The generated root imports it instead of creating it, and only it.
    let mut bundled = settings.clone();
    bundled.terraform.dir = None;
    let plan = w.run_settings(bundled.clone(), &Cancel::new()).await;
    assert_eq!(plan.finished.code, 0, "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!(
            "`alpha` adopts the log group `{kept}` kept from an earlier consumer"
        )),
        "{}",
        plan.stdout
    );
    let root = bundled.terraform.work_dir.join("root");
    let imports = std::fs::read_to_string(root.join(crate::apply::infra::root::IMPORTS_FILE))
        .expect("an imports file in the generated root");
    assert!(
        imports.contains("to = module.cdc.aws_cloudwatch_log_group.this[\"alpha\"]")
            && imports.contains(&format!("id = \"{kept}\"")),
        "{imports}"
    );
    assert!(!imports.contains("beta"), "{imports}");
    let asked = lock(&w.fakes.logs.calls).clone();
    assert_eq!(
        asked,
        [format!("groups /ecs/shop/{}/", settings.environment)],
        "one question for the new consumers"
    );

    // A root of the team's own is told the block to add.
    let own = w.run_settings(settings, &Cancel::new()).await;
    assert!(
        own.stdout.contains(&format!(
            "the log group `{kept}` of an earlier consumer `alpha` still exists"
        )) && own
            .stdout
            .contains("module.cdc.aws_cloudwatch_log_group.this[\"alpha\"]"),
        "{}",
        own.stdout
    );
}

#[tokio::test]
async fn a_deploy_with_nothing_new_asks_for_no_log_group() {
    let mut w = World::deployed().await;
    let before = lock(&w.fakes.logs.calls).len();
    w.edit_code("alpha", 2);
    let second = w.run(&["deploy"]).await;
    assert_eq!(second.finished.code, 0, "{}", second.stdout);
    let asked: Vec<String> = lock(&w.fakes.logs.calls)[before..]
        .iter()
        .filter(|c| c.starts_with("groups "))
        .cloned()
        .collect();
    assert!(asked.is_empty(), "{asked:?}");
}

// GitHub requests grow with the change, not the fleet ---------------------------------------------

/// The GitHub requests of a no-op deploy and of a plan with nothing to do, after a first deploy
/// of `n` consumers.
async fn noop_github_requests(n: usize) -> (usize, usize) {
    let mut w = World::new(FakeServices::new());
    for i in 0..n {
        w.consumer(&format!("c{i:03}"), 256);
    }
    let first = w.run(&["deploy"]).await;
    assert_eq!(first.finished.code, 0, "{}", first.stdout);
    let before = w.fakes.github.calls().len();
    let noop = w.run(&["deploy"]).await;
    assert_eq!(noop.finished.code, 0, "{}", noop.stdout);
    assert_eq!(noop.output("result"), "nothing-to-deploy");
    let deploy = w.fakes.github.calls().len() - before;
    let before = w.fakes.github.calls().len();
    let plan = w.run(&["plan"]).await;
    assert_eq!(plan.finished.code, 0, "{}", plan.stdout);
    (deploy, w.fakes.github.calls().len() - before)
}

#[tokio::test]
async fn a_no_op_makes_the_same_few_github_requests_whatever_the_fleet_size() {
    let small = noop_github_requests(3).await;
    let large = noop_github_requests(60).await;
    assert_eq!(
        small, large,
        "(deploy, plan) requests at 3 and 60 consumers"
    );
    assert!(small.0 <= 5 && small.1 <= 5, "a handful: {small:?}");
}
