//! Every environment variable the program reads, declared once.
//!
//! Nothing outside this module spells a variable name; everything else reads the snapshot taken at
//! start-up, [`RunnerEnv`]. Action inputs arrive as `INPUT_<NAME>` with the
//! input's name upper-cased and its hyphens kept (`INPUT_CONSUMERS-DIR`), see [`input_var`].

use std::collections::BTreeMap;

/// Set to `true` by the GitHub Actions runner.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// File the step appends `name<<delimiter` outputs to.
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// File the step appends its markdown job summary to.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// Name of the event that started the workflow (`pull_request`, `push`, ...).
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
/// Path of the JSON webhook payload of that event.
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
/// Commit the workflow runs on.
pub const GITHUB_SHA: &str = "GITHUB_SHA";
/// `owner/name` of the repository.
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// `https://github.com` or a GitHub Enterprise Server URL.
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
/// GitHub's REST API: `https://api.github.com`, or a GitHub Enterprise Server's
/// `https://HOST/api/v3`.
pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
/// A token for GitHub's API, when the `github-token` input does not give one.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// The checkout the workflow works in (`/github/workspace` inside a container action).
pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
/// Workflow run id, used in links back to the run.
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
/// Docker Engine address (`unix:///var/run/docker.sock`, `tcp://host:2375`).
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// AWS region as set by `aws-actions/configure-aws-credentials` and the AWS CLI.
pub const AWS_REGION: &str = "AWS_REGION";
/// Older spelling of [`AWS_REGION`], still honoured by the AWS CLI.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Attempts per AWS call, read by the SDK itself; when set, the program's default is not applied.
pub const AWS_MAX_ATTEMPTS: &str = "AWS_MAX_ATTEMPTS";
/// `standard` or `adaptive`, read by the SDK itself; when set, the program's default is not applied.
pub const AWS_RETRY_MODE: &str = "AWS_RETRY_MODE";
/// Log filter for the program's own logs (`info`, `cdc_deploy=debug`).
pub const CDC_DEPLOY_LOG: &str = "CDC_DEPLOY_LOG";
/// The usual log filter variable, read when [`CDC_DEPLOY_LOG`] is unset.
pub const RUST_LOG: &str = "RUST_LOG";
/// `0` builds with the Docker engine's classic builder instead of BuildKit, as for `docker build`.
pub const DOCKER_BUILDKIT: &str = "DOCKER_BUILDKIT";

/// A folder the runner empties after the job: Terraform's data directory and saved plan go here.
pub const RUNNER_TEMP: &str = "RUNNER_TEMP";
/// The `terraform` binary to run, when it is not `terraform` on PATH.
pub const TERRAFORM_PATH: &str = "TERRAFORM_PATH";
/// Terraform's provider plugin cache; when unset, one under [`RUNNER_TEMP`] is used.
pub const TF_PLUGIN_CACHE_DIR: &str = "TF_PLUGIN_CACHE_DIR";

/// Prefix the runner puts before every action input.
pub const INPUT_PREFIX: &str = "INPUT_";

/// A snapshot of the process environment, taken once at start-up. Tests build one from a map.
#[derive(Clone, Debug, Default)]
pub struct RunnerEnv {
    vars: BTreeMap<String, String>,
    /// Variables whose value is not UTF-8 text (left out of `vars`), by name.
    not_utf8: Vec<String>,
}

impl RunnerEnv {
    pub fn from_process() -> Self {
        let mut env = RunnerEnv::default();
        for (k, v) in std::env::vars_os() {
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => {
                    env.vars.insert(k, v);
                }
                Err(_) => env.not_utf8.push(k),
            }
        }
        env
    }

    /// The inputs whose value is not UTF-8 text, by input name (`project-name`).
    pub fn inputs_not_utf8(&self) -> Vec<(String, String)> {
        self.not_utf8
            .iter()
            .filter_map(|k| {
                let name = k.strip_prefix(INPUT_PREFIX)?;
                Some((name.to_lowercase(), k.clone()))
            })
            .collect()
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        RunnerEnv {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            not_utf8: Vec::new(),
        }
    }

    /// The variable's value, `None` when unset or empty (the runner passes unset inputs as `""`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn is_actions(&self) -> bool {
        self.get(GITHUB_ACTIONS) == Some("true")
    }
}

/// The variable an action input named `name` arrives in: upper-cased, spaces turned to `_`,
/// hyphens kept, as the runner's container action handler does it.
pub fn input_var(name: &str) -> String {
    format!("{INPUT_PREFIX}{}", name.replace(' ', "_").to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_keep_hyphens() {
        assert_eq!(input_var("consumers-dir"), "INPUT_CONSUMERS-DIR");
        assert_eq!(input_var("aws-region"), "INPUT_AWS-REGION");
        assert_eq!(input_var("mode"), "INPUT_MODE");
    }
}
