//! `action.yml`, the command line and the README say the same thing: every option of `run` is
//! an input of the same name with the same default, every input is in the README's table, and
//! the outputs `action.yml` declares are the ones the README lists and a run sets.

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
}
