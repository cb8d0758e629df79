//! `action.yml`, the command line, the README and the example workflows say the same thing:
//! every option of `run` is an input of the same name with the same default, every input is in
//! the README's table, the outputs `action.yml` declares are the ones the README lists and a run
//! sets, and the workflows the repository shows use only those inputs and outputs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::CommandFactory as _;

fn manifest() -> serde_yaml::Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml"))
        .expect("action.yml at the repository root");
    serde_yaml::from_str(&text).expect("action.yml is YAML")
}

fn declared(section: &str) -> BTreeMap<String, serde_yaml::Value> {
    manifest()[section]
        .as_mapping()
        .unwrap_or_else(|| panic!("action.yml has no `{section}`"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// The backticked names in the first cell of each row of the README's table under `heading`.
fn readme_table(heading: &str) -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has no `## {heading}`"));
    section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_option_of_run_is_an_input_with_the_same_default() {
    let cli = cdc_deploy::config::cli::Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    let options: BTreeMap<String, Vec<String>> = run
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            (long != "help").then(|| {
                (
                    long.to_string(),
                    a.get_default_values()
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect(),
                )
            })
        })
        .collect();
    let inputs = declared("inputs");
    assert_eq!(
        options.keys().collect::<Vec<_>>(),
        inputs.keys().collect::<Vec<_>>(),
        "the inputs of action.yml and the options of `cdc-deploy run`"
    );
    for (name, defaults) in &options {
        let input = &inputs[name];
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "`{name}` has a description"
        );
        let default = input["default"]
            .as_str()
            .unwrap_or_else(|| panic!("`{name}` has a default"));
        match (name.as_str(), defaults.as_slice()) {
            ("github-token", _) => assert_eq!(default, "${{ github.token }}"),
            (_, [one]) => assert_eq!(default, one, "the default of `{name}`"),
            (_, []) => assert_eq!(default, "", "`{name}` has no default on the command line"),
            (_, many) => panic!("`{name}` has several defaults: {many:?}"),
        }
    }
}

#[test]
fn the_readme_lists_every_input_and_output_of_action_yml() {
    let inputs: BTreeSet<String> = declared("inputs").into_keys().collect();
    assert_eq!(readme_table("Inputs"), inputs);
    let outputs: BTreeSet<String> = declared("outputs").into_keys().collect();
    assert_eq!(readme_table("Outputs"), outputs);
    for (name, o) in declared("outputs") {
        assert!(
            o["description"].as_str().is_some_and(|d| !d.is_empty()),
            "`{name}` has a description"
        );
    }
    assert_eq!(manifest()["runs"]["using"].as_str(), Some("docker"));
}

#[test]
fn a_run_sets_exactly_the_outputs_action_yml_declares() {
    // A push that deleted its branch: nothing to do, and every output set, empty.
    let ws = tempfile::tempdir().unwrap();
    let event = format!(
        "{}/tests/fixtures/github/events/push.deleted-branch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let r = support::run_action_env(
        ws.path(),
        &[],
        &[
            ("GITHUB_EVENT_NAME", "push".to_string()),
            ("GITHUB_EVENT_PATH", event),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let set: BTreeSet<String> = r.outputs.keys().cloned().collect();
    let outputs: BTreeSet<String> = declared("outputs").into_keys().collect();
    assert_eq!(set, outputs);
    // Empty as the README says: lists `[]`, maps `{}` (the plan too), so `fromJSON` reads each.
    for (name, value) in &r.outputs {
        let want = match name.as_str() {
            "result" => "nothing-to-deploy",
            "has-changes" => "false",
            "comment-url" | "exec-command" => "",
            "plan" | "images" | "rollouts" | "scans" | "status" => "{}",
            "matrix" => r#"{"include":[]}"#,
            _ => "[]",
        };
        assert_eq!(value, want, "`{name}`");
    }
}

/// The workflows the repository shows: every example under `examples/workflows/`, and the one
/// the README shows first (its first yaml block under `## Use it in a workflow`).
fn shown_workflows() -> Vec<(String, serde_yaml::Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples/workflows"))
        .expect("examples/workflows")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        out.push((
            f.display().to_string(),
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        ));
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("\n## Use it in a workflow\n")
        .nth(1)
        .expect("README has `## Use it in a workflow`");
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```\n").next())
        .expect("a yaml block");
    out.push((
        "README.md".into(),
        serde_yaml::from_str(block).expect("the README's workflow is YAML"),
    ));
    out
}

#[test]
fn the_shown_workflows_give_the_action_only_its_inputs_and_read_only_its_outputs() {
    let inputs: BTreeSet<String> = declared("inputs").into_keys().collect();
    let outputs: BTreeSet<String> = declared("outputs").into_keys().collect();
    let workflows = shown_workflows();
    assert!(workflows.len() >= 5, "{}", workflows.len());
    let mut steps_using = 0;
    for (file, workflow) in &workflows {
        for (job_name, job) in workflow["jobs"].as_mapping().expect("jobs") {
            // Step ids are a job's own: the reads of a step's outputs are in its job.
            let text = serde_yaml::to_string(job).unwrap();
            let Some(steps) = job["steps"].as_sequence() else {
                continue;
            };
            for step in steps {
                let uses = step["uses"].as_str().unwrap_or_default();
                if !uses.starts_with("org/cdc-deploy-action@") {
                    continue;
                }
                steps_using += 1;
                let with = step["with"].as_mapping().cloned().unwrap_or_default();
                for (key, _) in &with {
                    let key = key.as_str().unwrap();
                    assert!(
                        inputs.contains(key),
                        "{file}: job {job_name:?} gives the action `{key}`, which is not an input of action.yml"
                    );
                }
                // Every `steps.<id>.outputs.<name>` read of this step names an output.
                if let Some(id) = step["id"].as_str() {
                    let prefix = format!("steps.{id}.outputs.");
                    for (at, _) in text.match_indices(&prefix) {
                        let name: String = text[at + prefix.len()..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                            .collect();
                        assert!(
                            outputs.contains(&name),
                            "{file}: `{prefix}{name}` is not an output of action.yml"
                        );
                    }
                }
            }
        }
    }
    assert!(
        steps_using >= 8,
        "the action is used in {steps_using} steps"
    );
}
