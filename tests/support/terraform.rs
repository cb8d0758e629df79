//! The Terraform stage's test set-up: a state bucket in moto's S3 (the real S3 backend, native
//! locking), the fixture root modules of `terraform_data` (no provider to download), consumers
//! that build from the local busybox image, and the binary run as the action with Terraform on.

use std::path::{Path, PathBuf};

use super::{run_action_env, unique, write, Run};

pub const COMMIT_1: &str = "1111111111111111111111111111111111111111";
pub const COMMIT_2: &str = "2222222222222222222222222222222222222222";

/// A busybox consumer of `cpu` units.
pub fn consumer(root: &Path, name: &str, cpu: u32) {
    super::busybox_consumer(root, name);
    // The deploy settings are not part of the image: a change to them alone builds nothing.
    write(
        root,
        &format!("consumer_scripts/{name}/.dockerignore"),
        "consumer.toml\n",
    );
    write(
        root,
        &format!("consumer_scripts/{name}/consumer.toml"),
        &format!("cpu = {cpu}\nmemory = 512\n[environment]\nTOPIC = \"{name}.events\"\n"),
    );
}

/// A state bucket in moto, and where the state lives in it.
#[derive(Clone)]
pub struct Backend {
    pub bucket: String,
    pub key: String,
}

pub async fn s3() -> aws_sdk_s3::Client {
    let config = super::aws().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

impl Backend {
    pub async fn new() -> Backend {
        let bucket = unique("tfstate-");
        s3().await
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        Backend {
            bucket,
            key: "cdc-deploy/test.tfstate".into(),
        }
    }

    /// The `terraform-backend-config` input, one setting per line.
    pub fn config(&self) -> String {
        format!(
            "bucket={}\nkey={}\nregion=us-east-1\nuse_path_style=true\nuse_lockfile=true",
            self.bucket, self.key
        )
    }

    /// The state object as JSON, `None` when there is none.
    pub async fn state(&self) -> Option<serde_json::Value> {
        match s3()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(o) => {
                let bytes = o.body.collect().await.unwrap().into_bytes();
                Some(serde_json::from_slice(&bytes).unwrap())
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
            Err(e) => panic!("state: {e:?}"),
        }
    }

    /// The applied `consumers` output: name → image.
    pub async fn applied_images(&self) -> std::collections::BTreeMap<String, String> {
        let state = self.state().await.expect("a state object in S3");
        state["outputs"]["consumers"]["value"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v["image"].as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The applied `consumers` output: name → the whole entry (`image`, `task_definition`,
    /// `config` …).
    pub async fn applied(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let state = self.state().await.expect("a state object in S3");
        state["outputs"]["consumers"]["value"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub async fn applied_cpu(&self, name: &str) -> u64 {
        let state = self.state().await.unwrap();
        state["outputs"]["consumers"]["value"][name]["config"]["cpu"]
            .as_u64()
            .unwrap()
    }
}

pub fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/root")
}

/// A workspace with the fixture root module copied in as `infra/`.
pub fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture_root().join("main.tf")).unwrap();
    write(ws.path(), "infra/main.tf", &text);
    ws
}

pub fn run(
    ws: &Path,
    project: &str,
    backend: &Backend,
    mode: &str,
    commit: &str,
    extra: &[(&str, &str)],
) -> Run {
    run_env(ws, project, backend, mode, commit, extra, &[])
}

pub fn run_env(
    ws: &Path,
    project: &str,
    backend: &Backend,
    mode: &str,
    commit: &str,
    extra: &[(&str, &str)],
    env: &[(&str, String)],
) -> Run {
    let config = backend.config();
    let mut inputs = vec![
        ("mode", mode),
        ("project-name", project),
        ("environment", "test"),
        ("commit", commit),
        ("terraform", "true"),
        ("terraform-dir", "infra"),
        ("terraform-backend-config", config.as_str()),
        ("lock-timeout", "2s"),
        // The fixture's services exist nowhere; the rollout test asks for the wait.
        ("wait", "false"),
    ];
    inputs.extend_from_slice(extra);
    run_action_env(ws, &inputs, env)
}

/// An executable `terraform` in `dir` named `name`: the script `script` makes of the real
/// Terraform's path.
pub fn terraform_wrapper(dir: &Path, name: &str, script: impl Fn(&str) -> String) -> PathBuf {
    let real = std::process::Command::new("sh")
        .args(["-c", "command -v terraform"])
        .output()
        .unwrap()
        .stdout;
    let real = String::from_utf8(real).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, script(real.trim())).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A `terraform` that records each command line in `log` and runs the real one.
pub fn recording_terraform(dir: &Path, log: &Path) -> PathBuf {
    terraform_wrapper(dir, "terraform-recording", |real| {
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
            log.display()
        )
    })
}

/// A workspace with the rollout fixture root module as `infra/`: creating a task definition
/// registers a deployment with the ECS simulator `CDC_TEST_ECS_SIM` names.
pub fn rollout_workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/rollout/main.tf"),
    )
    .unwrap();
    write(ws.path(), "infra/main.tf", &text);
    ws
}
