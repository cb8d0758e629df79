//! The step's outputs: one value, filled from the plan, what the stages did and the outcome, and
//! written in one place on every path (a run that could not start or did nothing included), so a
//! workflow always finds every output declared in `action.yml`. A list is a JSON array and a map
//! a JSON object, `[]` and `{}` when empty, so `fromJSON` never fails on one.

use std::collections::BTreeMap;

use serde_json::Value;

use super::outcome::{Outcome, RunResult};
use crate::apply::{ImageOutcome, RunReport};
use crate::gha::{GhaError, Runner};
use crate::plan::{Plan, Status};

/// Every output of the step.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    /// Consumer names by plan status (`new`, `changed`, ..., `held`).
    pub by_status: BTreeMap<&'static str, Vec<String>>,
    pub has_changes: bool,
    /// The plan as JSON (`{}` when nothing was planned).
    pub plan: Value,
    pub images: BTreeMap<String, String>,
    pub built: Vec<String>,
    pub reused: Vec<String>,
    pub rollouts: BTreeMap<String, String>,
    pub scans: Value,
    pub deployed: Vec<String>,
    pub failed: Vec<String>,
    pub comment_url: String,
    pub result: RunResult,
    /// The consumers to build in groups for a matrix of `mode: build` jobs.
    pub matrix: Value,
    /// `status`: each consumer as it runs (`{}` from other commands).
    pub status: Value,
    /// `exec`: the command line that opens a shell in a task (empty from other commands).
    pub exec_command: String,
}

impl Outputs {
    /// The outputs of a run that planned nothing: every list and map empty, and `result`.
    pub fn empty(result: RunResult) -> Outputs {
        Outputs {
            by_status: Status::ALL
                .iter()
                .map(|s| (s.as_str(), Vec::new()))
                .collect(),
            has_changes: false,
            plan: Value::Object(serde_json::Map::new()),
            images: BTreeMap::new(),
            built: Vec::new(),
            reused: Vec::new(),
            rollouts: BTreeMap::new(),
            scans: Value::Object(serde_json::Map::new()),
            deployed: Vec::new(),
            failed: Vec::new(),
            comment_url: String::new(),
            result,
            matrix: crate::plan::shards::matrix(&[]),
            status: Value::Object(serde_json::Map::new()),
            exec_command: String::new(),
        }
    }

    /// The outputs of a run that planned. `images` are the images to report: the image stage's
    /// (a deploy) or the ones a rollback went back to.
    pub fn of(
        plan: &Plan,
        run: &RunReport,
        outcome: &Outcome,
        images: BTreeMap<String, String>,
        shards: usize,
    ) -> Outputs {
        let mut by_status: BTreeMap<&'static str, Vec<String>> = Status::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str(),
                    plan.names(*s).into_iter().map(String::from).collect(),
                )
            })
            .collect();
        // Held at the end of the run: the plan's, and those this run put back and holds.
        by_status.insert(Status::Held.as_str(), outcome.held.clone());
        Outputs {
            by_status,
            has_changes: plan.has_changes(),
            plan: if plan.consumers.is_empty() && plan.skipped.is_empty() && !plan.infra_pending {
                Value::Object(serde_json::Map::new())
            } else {
                plan.to_json()
            },
            images,
            built: run
                .names(ImageOutcome::Built)
                .into_iter()
                .map(String::from)
                .collect(),
            reused: run
                .names(ImageOutcome::Reused)
                .into_iter()
                .map(String::from)
                .collect(),
            rollouts: run
                .rollouts
                .iter()
                .map(|(n, v)| (n.clone(), v.kind.as_str().to_string()))
                .collect(),
            scans: serde_json::to_value(&run.scans).unwrap_or(Value::Null),
            deployed: outcome.deployed.clone(),
            failed: outcome.failed.keys().cloned().collect(),
            comment_url: String::new(),
            result: outcome.result,
            matrix: crate::plan::shards::matrix(&crate::plan::shards::shards(plan, shards)),
            status: Value::Object(serde_json::Map::new()),
            exec_command: String::new(),
        }
    }

    /// Each output's name and value, as the runner stores them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> =
            self.by_status.iter().map(|(k, v)| (*k, json(v))).collect();
        out.extend([
            ("has-changes", self.has_changes.to_string()),
            ("plan", self.plan.to_string()),
            ("images", json(&self.images)),
            ("built", json(&self.built)),
            ("reused", json(&self.reused)),
            ("rollouts", json(&self.rollouts)),
            ("scans", self.scans.to_string()),
            ("deployed", json(&self.deployed)),
            ("failed", json(&self.failed)),
            ("comment-url", self.comment_url.clone()),
            ("result", self.result.as_str().to_string()),
            ("matrix", self.matrix.to_string()),
            ("status", self.status.to_string()),
            ("exec-command", self.exec_command.clone()),
        ]);
        out
    }

    /// Write every output. The first output that cannot be written stops the writing: the file
    /// the runner gave is gone or full, and the rest would fail the same way.
    pub fn write(&self, runner: &Runner) -> Result<(), GhaError> {
        for (name, value) in self.pairs() {
            runner.set_output(name, &value)?;
        }
        Ok(())
    }
}

/// A value as JSON: `[]` and `{}` for empty lists and maps.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Every output `action.yml` declares, sorted: the contract the outputs are checked against.
#[cfg(test)]
pub(crate) fn declared_outputs() -> Vec<&'static str> {
    static DECLARED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = DECLARED.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml");
        let text = std::fs::read_to_string(path).expect("action.yml");
        let manifest: serde_yaml::Value = serde_yaml::from_str(&text).expect("action.yml is YAML");
        let mut names: Vec<String> = manifest["outputs"]
            .as_mapping()
            .expect("action.yml declares outputs")
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    });
    names.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_planned_nothing_sets_every_output_as_json() {
        let o = Outputs::empty(RunResult::NothingToDeploy);
        let pairs: BTreeMap<&str, String> = o.pairs().into_iter().collect();
        let declared = declared_outputs();
        let mut names: Vec<&str> = pairs.keys().copied().collect();
        names.sort_unstable();
        assert_eq!(names, declared);
        for list in ["new", "held", "built", "deployed", "failed"] {
            assert_eq!(pairs[list], "[]", "{list}");
        }
        for map in ["plan", "images", "rollouts", "scans", "status"] {
            assert_eq!(pairs[map], "{}", "{map}");
        }
        assert_eq!(pairs["result"], "nothing-to-deploy");
        assert_eq!(pairs["has-changes"], "false");
        assert_eq!(pairs["comment-url"], "");
    }
}
