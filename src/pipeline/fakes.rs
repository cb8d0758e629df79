//! Fakes of every external system a run talks to, small and strict, for running `plan`,
//! `deploy` and `rollback` end to end in-process through [`super::run_with`]: ECR, the registry,
//! the image builder, Terraform, ECS, CloudWatch Logs and GitHub. Each records every call it
//! receives, so a test can assert what the pipeline asked for and, as much, what it did not.
//!
//! They share one world: what the builder pushes is in the registry, what the fake Terraform
//! applies is what the fake ECS runs. They decide nothing the pipeline decides; they never touch
//! the network, a daemon or a `terraform` binary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use super::services::{AwsServices, EngineSource, Services};
use crate::clients::builder::{
    BuildError, BuildFailure, BuildRequest, BuildStats, EngineError, ImageBuilder, OnLine,
    PushFailure, RegistryLogin,
};
use crate::clients::ecr::{
    Described, EcrAuth, EcrError, RepositoryDrift, RepositoryService, RepositorySpec,
    RepositoryState, ScanReader, ScanState,
};
use crate::clients::ecs::{
    self, Deployer, Deployment, EcsError, LogSource, ServiceEvent, ServiceState, StoppedContainer,
    StoppedTask,
};
use crate::clients::github::{Author, GitHub, GithubError, IssueComment, PullRef};
use crate::clients::logs::LogReader;
use crate::clients::registry::{Manifest, Registry, RegistryAuth, RegistryError};
use crate::clients::terraform::{Finished, Terraform, TerraformError};
use crate::config::{Action, Settings};
use crate::failure::Failure;
use crate::reference::RegistryHost;
use crate::secret::Secret;

/// The registry host the fakes stand for.
pub const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
/// The region the fakes stand in.
pub const REGION: &str = "us-east-1";
/// The pull request the fake GitHub says every commit was merged by.
pub const PULL_REQUEST: u64 = 12;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `sha256:` and the hex digest of `text`.
pub fn sha256(text: &str) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// Every fake, sharing one world, and the [`Services`] that hand them to a run.
pub struct FakeServices {
    pub ecr: Arc<FakeEcr>,
    pub registry: Arc<FakeRegistry>,
    pub engine: Arc<FakeEngine>,
    pub terraform: Arc<FakeTerraform>,
    pub ecs: Arc<FakeEcs>,
    pub logs: Arc<FakeLogs>,
    pub github: Arc<FakeGitHub>,
}

impl FakeServices {
    /// An empty world: no repository, no image, nothing applied.
    pub fn new() -> Self {
        let registry = Arc::new(FakeRegistry::default());
        let terraform = Arc::new(FakeTerraform::default());
        FakeServices {
            ecr: Arc::new(FakeEcr::default()),
            engine: Arc::new(FakeEngine {
                builder: Arc::new(FakeBuilder {
                    registry: registry.clone(),
                    failing: Mutex::default(),
                    cancelling: Mutex::default(),
                    builds: Mutex::default(),
                    pushes: Mutex::default(),
                }),
                connects: Mutex::default(),
            }),
            ecs: Arc::new(FakeEcs {
                terraform: terraform.clone(),
                arming: Mutex::default(),
                rolled_back: Mutex::default(),
                calls: Mutex::default(),
            }),
            registry,
            terraform,
            logs: Arc::new(FakeLogs::default()),
            github: Arc::new(FakeGitHub::default()),
        }
    }

    /// The build of consumer `name` fails (every time).
    pub fn failing_build(self, name: &str) -> Self {
        lock(&self.engine.builder.failing).insert(name.to_string());
        self
    }

    /// The build of consumer `name` cancels the run with `cancel`, as a signal arriving then.
    pub fn cancelling_during_build(self, name: &str, cancel: &crate::cancel::Cancel) -> Self {
        *lock(&self.engine.builder.cancelling) = Some((name.to_string(), cancel.clone()));
        self
    }

    /// The next rollout of consumer `name` is rolled back by ECS (a first one, with nothing to
    /// go back to, fails).
    pub fn rolling_back(self, name: &str) -> Self {
        self.ecs.roll_back_next(name);
        self
    }

    /// The clients of a run of `settings`, as [`Services::connect`] would choose them: no AWS
    /// and no Terraform for an offline plan or nothing to do, no Terraform when it is off.
    /// GitHub is always given, so a test sees what a run asks of it, or that it asks nothing.
    pub fn services(&self, settings: &Settings) -> Services {
        let offline = match &settings.action {
            Action::Plan(p) => p.offline,
            Action::Nothing { .. } => true,
            _ => false,
        };
        let auth = RegistryAuth {
            username: "AWS".into(),
            password: Secret::new("fake-password"),
        };
        let aws = (!offline).then(|| AwsServices {
            region: REGION.into(),
            registry_host: RegistryHost::parse(HOST).expect("a valid host"),
            login: RegistryLogin {
                host: HOST.into(),
                auth,
            },
            ecr: self.ecr.clone(),
            scans: self.ecr.clone(),
            registry: self.registry.clone(),
            deployer: self.ecs.clone(),
            logs: self.logs.clone(),
            alarms: Arc::new(NoAlarms),
        });
        let terraform = (settings.terraform.enabled && !offline)
            .then(|| self.terraform.clone() as Arc<dyn Terraform>);
        Services {
            aws,
            github: Some(self.github.clone()),
            engine: self.engine.clone(),
            terraform,
        }
    }

    /// Whether no fake but GitHub was asked anything: no AWS call, no build, no Terraform.
    pub fn aws_and_terraform_untouched(&self) -> bool {
        self.ecr.calls().is_empty()
            && self.registry.calls().is_empty()
            && self.engine.connects() == 0
            && self.terraform.commands().is_empty()
            && self.ecs.calls().is_empty()
            && lock(&self.logs.calls).is_empty()
    }
}

// ECR --------------------------------------------------------------------------------------------

/// ECR: the repositories it holds, created on demand; every scan is complete with no findings.
#[derive(Default)]
pub struct FakeEcr {
    repositories: Mutex<BTreeMap<String, RepositoryState>>,
    /// `describe a,b`, `list`, `create a`, `reconcile a`, `scan a sha256:…`, `authorization`.
    pub calls: Mutex<Vec<String>>,
}

impl FakeEcr {
    pub fn repositories(&self) -> Vec<String> {
        lock(&self.repositories).keys().cloned().collect()
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

#[async_trait]
impl RepositoryService for FakeEcr {
    async fn authorization(&self) -> Result<EcrAuth, EcrError> {
        lock(&self.calls).push("authorization".into());
        Ok(EcrAuth {
            username: "AWS".into(),
            password: Secret::new("fake-password"),
            proxy_endpoint: format!("https://{HOST}"),
        })
    }

    async fn describe(&self, names: &[String]) -> Result<Described, EcrError> {
        lock(&self.calls).push(format!("describe {}", names.join(",")));
        let held = lock(&self.repositories);
        // As ECR does: one missing name fails the whole call, naming it.
        if let Some(missing) = names.iter().find(|n| !held.contains_key(*n)) {
            return Ok(Described::SomeMissing {
                missing: Some(missing.clone()),
            });
        }
        Ok(Described::All(
            names.iter().map(|n| held[n].clone()).collect(),
        ))
    }

    async fn list(&self) -> Result<Vec<RepositoryState>, EcrError> {
        lock(&self.calls).push("list".into());
        Ok(lock(&self.repositories).values().cloned().collect())
    }

    async fn create(&self, spec: &RepositorySpec) -> Result<bool, EcrError> {
        lock(&self.calls).push(format!("create {}", spec.name));
        let state = RepositoryState {
            name: spec.name.clone(),
            tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
            mutable_tags: vec!["cache-*".into(), "keep-*".into()],
            scan_on_push: true,
        };
        Ok(lock(&self.repositories)
            .insert(spec.name.clone(), state)
            .is_none())
    }

    async fn reconcile(
        &self,
        spec: &RepositorySpec,
        _drift: &[RepositoryDrift],
    ) -> Result<(), EcrError> {
        let name = &spec.name;
        lock(&self.calls).push(format!("reconcile {name}"));
        Ok(())
    }
}

#[async_trait]
impl ScanReader for FakeEcr {
    async fn scan_findings(&self, repository: &str, digest: &str) -> Result<ScanState, EcrError> {
        lock(&self.calls).push(format!("scan {repository} {digest}"));
        Ok(ScanState::Complete(BTreeMap::new()))
    }
}

// The registry -----------------------------------------------------------------------------------

/// The registry: manifests by repository and tag or digest.
#[derive(Default)]
pub struct FakeRegistry {
    /// `(repository, tag or digest)` → manifest.
    manifests: Mutex<BTreeMap<(String, String), Manifest>>,
    /// `manifest repo:ref`, `put repo:tag`, `tags repo`.
    pub calls: Mutex<Vec<String>>,
}

impl FakeRegistry {
    /// Store `manifest` in `repository` under `tag` and its digest.
    fn store(&self, repository: &str, tag: &str, manifest: Manifest) {
        let mut m = lock(&self.manifests);
        m.insert(
            (repository.to_string(), manifest.digest.clone()),
            manifest.clone(),
        );
        m.insert((repository.to_string(), tag.to_string()), manifest);
    }

    /// The tags `repository` holds, sorted.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        lock(&self.manifests)
            .keys()
            .filter(|(r, reference)| r == repository && !reference.starts_with("sha256:"))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The digest under `repository:reference`.
    pub fn digest(&self, repository: &str, reference: &str) -> Option<String> {
        lock(&self.manifests)
            .get(&(repository.to_string(), reference.to_string()))
            .map(|m| m.digest.clone())
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

#[async_trait]
impl Registry for FakeRegistry {
    async fn image_labels(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        lock(&self.calls).push(format!("labels {repository}@{digest}"));
        Ok(BTreeMap::new())
    }

    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        lock(&self.calls).push(format!("manifest {repository}:{reference}"));
        Ok(lock(&self.manifests)
            .get(&(repository.to_string(), reference.to_string()))
            .cloned())
    }

    async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<String, RegistryError> {
        lock(&self.calls).push(format!("put {repository}:{tag}"));
        self.store(repository, tag, manifest.clone());
        Ok(manifest.digest.clone())
    }

    async fn has_built_images(&self, repository: &str) -> Result<bool, RegistryError> {
        lock(&self.calls).push(format!("tags {repository}"));
        Ok(self
            .tags(repository)
            .iter()
            .any(|t| t.starts_with(crate::context::fingerprint::TAG_PREFIX)))
    }
}

// The image builder ------------------------------------------------------------------------------

/// Where the builder comes from; counts how often it was connected to.
pub struct FakeEngine {
    pub builder: Arc<FakeBuilder>,
    pub connects: Mutex<usize>,
}

impl FakeEngine {
    pub fn connects(&self) -> usize {
        *lock(&self.connects)
    }
}

#[async_trait]
impl EngineSource for FakeEngine {
    async fn connect(&self) -> Result<Arc<dyn ImageBuilder>, EngineError> {
        *lock(&self.connects) += 1;
        Ok(self.builder.clone())
    }
}

/// Builds succeed (but for the consumers configured to fail); a push puts a manifest in the
/// fake registry under the reference's tag, its digest the sha256 of the reference.
pub struct FakeBuilder {
    registry: Arc<FakeRegistry>,
    /// Consumer folder names whose build fails.
    failing: Mutex<BTreeSet<String>>,
    /// The consumer whose build cancels the run, and the run's handle.
    cancelling: Mutex<Option<(String, crate::cancel::Cancel)>>,
    /// The references built, in order.
    pub builds: Mutex<Vec<String>>,
    /// The references pushed, in order.
    pub pushes: Mutex<Vec<String>>,
}

impl FakeBuilder {
    pub fn builds(&self) -> Vec<String> {
        lock(&self.builds).clone()
    }

    pub fn pushes(&self) -> Vec<String> {
        lock(&self.pushes).clone()
    }
}

#[async_trait]
impl ImageBuilder for FakeBuilder {
    fn describe(&self) -> String {
        "the fake builder".into()
    }

    async fn build(
        &self,
        req: BuildRequest,
        on_line: &mut OnLine<'_>,
    ) -> Result<BuildStats, BuildError> {
        lock(&self.builds).push(req.tag.clone());
        let folder = req
            .context
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        on_line(&format!("#1 building {}", req.tag));
        if let Some((_, cancel)) = lock(&self.cancelling)
            .as_ref()
            .filter(|(name, _)| *name == folder)
        {
            cancel.cancel("SIGTERM");
        }
        if lock(&self.failing).contains(&folder) {
            return Err(BuildError::Failed(BuildFailure {
                step: Some("[2/2] COPY app /app".into()),
                line: Some(2),
                message: "failed to compute cache key: \"/app\" not found".into(),
                tail: vec!["#2 ERROR: \"/app\" not found".into()],
            }));
        }
        Ok(BuildStats {
            steps: 1,
            cached: 0,
        })
    }

    async fn push(
        &self,
        reference: &str,
        _login: &RegistryLogin,
        on_line: &mut OnLine<'_>,
    ) -> Result<(), PushFailure> {
        lock(&self.pushes).push(reference.to_string());
        let refused = |message: &str| PushFailure {
            image: reference.to_string(),
            attempts: 1,
            message: message.to_string(),
        };
        let rest = reference
            .strip_prefix(&format!("{HOST}/"))
            .ok_or_else(|| refused("not this registry"))?;
        let (repository, tag) = rest
            .rsplit_once(':')
            .ok_or_else(|| refused("no tag to push"))?;
        let body = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"size": 1_000},
            "layers": [{"size": 2_000_000}],
        })
        .to_string()
        .into_bytes();
        self.registry.store(
            repository,
            tag,
            Manifest {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: sha256(reference),
                body,
            },
        );
        on_line(&format!("{tag}: digest: {}", sha256(reference)));
        Ok(())
    }
}

// Terraform --------------------------------------------------------------------------------------

/// One rollout of a service the fake Terraform caused: the task definition applied, its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    pub consumer: String,
    pub task_definition: String,
    pub image: String,
}

#[derive(Default)]
struct TfState {
    /// The variables last applied (`project_name`, `environment`, `aws_region`, `consumers`).
    applied: Option<Value>,
    /// The variables of the saved plan, and its file.
    pending: Option<(Value, String)>,
    commands: Vec<Vec<String>>,
    /// Every task definition an apply put in place, in order.
    history: Vec<Revision>,
}

/// Terraform as a tiny state machine over the `consumers` variable: `plan` reads the action's
/// variables file, `show -json` diffs them with what is applied, `apply` makes them applied,
/// `output -json` gives each applied entry back with its task definition and `config`.
#[derive(Default)]
pub struct FakeTerraform {
    state: Mutex<TfState>,
}

/// The task definition of an entry: a new ARN for every other entry (the hold aside, which is
/// the action's bookkeeping and no part of what runs).
fn task_definition(region: &str, family: &str, entry: &Value) -> String {
    let mut e = entry.clone();
    if let Some(m) = e.as_object_mut() {
        m.remove(crate::plan::entries::HOLD_KEY);
    }
    let hash = sha256(&e.to_string());
    format!(
        "arn:aws:ecs:{region}:123456789012:task-definition/{family}:{}",
        &hash["sha256:".len().."sha256:".len() + 12]
    )
}

/// The `consumers` output the variables give, by consumer.
fn consumers_output(vars: Option<&Value>) -> Map<String, Value> {
    let Some(vars) = vars else {
        return Map::new();
    };
    let text = |k: &str| vars[k].as_str().unwrap_or_default().to_string();
    let (project, environment, region) = (
        text("project_name"),
        text("environment"),
        text("aws_region"),
    );
    vars["consumers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, entry)| {
            let family = format!("{project}-{name}");
            (
                name.clone(),
                json!({
                    "cluster": format!("{project}-{environment}"),
                    "service": family,
                    "task_definition": task_definition(&region, &family, entry),
                    "log_group": format!("/ecs/{project}-{environment}/{name}"),
                    "container": name,
                    "image": entry["image"],
                    "config": entry,
                }),
            )
        })
        .collect()
}

impl FakeTerraform {
    /// Every command line it ran, in order (`plan -input=false …`).
    pub fn commands(&self) -> Vec<String> {
        lock(&self.state)
            .commands
            .iter()
            .map(|a| a.join(" "))
            .collect()
    }

    /// The first word of every command it ran, in order.
    pub fn verbs(&self) -> Vec<String> {
        lock(&self.state)
            .commands
            .iter()
            .map(|a| a.first().cloned().unwrap_or_default())
            .collect()
    }

    /// The applied `consumers` entries, by consumer.
    pub fn applied(&self) -> BTreeMap<String, Value> {
        lock(&self.state)
            .applied
            .as_ref()
            .and_then(|v| v["consumers"].as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The applied `consumers` output, by consumer.
    pub fn output(&self) -> Map<String, Value> {
        consumers_output(lock(&self.state).applied.as_ref())
    }

    /// Every task definition an apply put in place, in order.
    pub fn history(&self) -> Vec<Revision> {
        lock(&self.state).history.clone()
    }

    fn finished(code: i32, stdout: String, stderr: &str) -> Finished {
        Finished {
            code: Some(code),
            stdout,
            stderr: stderr.to_string(),
        }
    }

    /// `terraform show -json` of the saved plan: the task definition of each consumer created,
    /// replaced, deleted or left as it is, and the `consumers` output's change.
    fn show(state: &TfState) -> Value {
        let Some((pending, _)) = &state.pending else {
            return Value::Null;
        };
        let before = consumers_output(state.applied.as_ref());
        let after = consumers_output(Some(pending));
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let changes: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let td = |m: &Map<String, Value>| m.get(name).map(|c| c["task_definition"].clone());
                let actions: &[&str] = match (td(&before), td(&after)) {
                    (None, Some(_)) => &["create"],
                    (Some(_), None) => &["delete"],
                    (Some(a), Some(b)) if a != b => &["create", "delete"],
                    _ => &["no-op"],
                };
                json!({
                    "address": format!("fake_task_definition.this[\"{name}\"]"),
                    "index": name,
                    "mode": "managed",
                    "type": "fake_task_definition",
                    "change": {"actions": actions},
                })
            })
            .collect();
        let output = if before == after { "no-op" } else { "update" };
        json!({
            "format_version": "1.2",
            "resource_changes": changes,
            "output_changes": {"consumers": {"actions": [output]}},
        })
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

#[async_trait]
impl Terraform for FakeTerraform {
    async fn stream(
        &self,
        args: &[String],
        sink: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<Finished, TerraformError> {
        let mut state = lock(&self.state);
        state.commands.push(args.to_vec());
        let verb = args.first().map(String::as_str).unwrap_or_default();
        match verb {
            "init" | "validate" => {
                sink(&format!("fake terraform: {verb} done"));
                Ok(Self::finished(0, String::new(), ""))
            }
            "plan" => {
                // The action's variables come first; a team's own file after it is not read.
                let (Some(vars), Some(out)) = (flag(args, "-var-file"), flag(args, "-out")) else {
                    return Ok(Self::finished(
                        1,
                        String::new(),
                        "Error: plan without -var-file or -out",
                    ));
                };
                let vars: Value = match std::fs::read_to_string(vars)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                {
                    Ok(v) => v,
                    Err(e) => return Ok(Self::finished(1, String::new(), &format!("Error: {e}"))),
                };
                state.pending = Some((vars, out.to_string()));
                sink("fake terraform: plan saved");
                Ok(Self::finished(0, String::new(), ""))
            }
            "apply" => {
                let file = args.last().cloned().unwrap_or_default();
                let Some((vars, saved)) = state.pending.take() else {
                    return Ok(Self::finished(1, String::new(), "Error: no saved plan"));
                };
                if saved != file {
                    return Ok(Self::finished(
                        1,
                        String::new(),
                        "Error: not the saved plan",
                    ));
                }
                let before = consumers_output(state.applied.as_ref());
                let after = consumers_output(Some(&vars));
                for (name, c) in &after {
                    let td = c["task_definition"].as_str().unwrap_or_default();
                    if before.get(name).map(|b| &b["task_definition"])
                        != Some(&c["task_definition"])
                    {
                        state.history.push(Revision {
                            consumer: name.clone(),
                            task_definition: td.to_string(),
                            image: c["image"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                }
                state.applied = Some(vars);
                sink("fake terraform: apply complete");
                Ok(Self::finished(0, String::new(), ""))
            }
            _ => Ok(Self::finished(
                1,
                String::new(),
                &format!("Error: the fake does not stream `{verb}`"),
            )),
        }
    }

    async fn capture(&self, args: &[String]) -> Result<Finished, TerraformError> {
        let mut state = lock(&self.state);
        state.commands.push(args.to_vec());
        let verb = args.first().map(String::as_str).unwrap_or_default();
        let stdout = match verb {
            "version" => json!({"terraform_version": "1.11.4"}),
            "output" => {
                let consumers = consumers_output(state.applied.as_ref());
                if state.applied.is_none() {
                    json!({})
                } else {
                    json!({"consumers": {"sensitive": false, "type": "map", "value": consumers}})
                }
            }
            "show" => {
                let file = args.last().cloned().unwrap_or_default();
                match &state.pending {
                    Some((_, saved)) if *saved == file => Self::show(&state),
                    _ => {
                        return Ok(Self::finished(
                            1,
                            String::new(),
                            "Error: no saved plan of that name",
                        ))
                    }
                }
            }
            _ => {
                return Ok(Self::finished(
                    1,
                    String::new(),
                    &format!("Error: the fake does not capture `{verb}`"),
                ))
            }
        };
        Ok(Self::finished(0, stdout.to_string(), ""))
    }
}

// ECS --------------------------------------------------------------------------------------------

/// ECS, running what the fake Terraform applied: each service's deployment of its applied task
/// definition completes, unless its consumer is armed to roll back, when ECS puts the previous
/// task definition back (or, for a first one, fails it).
pub struct FakeEcs {
    terraform: Arc<FakeTerraform>,
    /// Consumers whose next rollout is rolled back.
    arming: Mutex<BTreeSet<String>>,
    /// Task definitions whose rollout was rolled back.
    rolled_back: Mutex<BTreeSet<String>>,
    /// `describe cluster a,b`, `stopped td`, `log_sources td`, `previous td container`.
    pub calls: Mutex<Vec<String>>,
}

impl FakeEcs {
    /// The next rollout of consumer `name` is rolled back.
    pub fn roll_back_next(&self, name: &str) {
        lock(&self.arming).insert(name.to_string());
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    fn deployment(td: &str, state: &str, now: SystemTime) -> Deployment {
        Deployment {
            id: format!("ecs-svc/{}", td.rsplit(':').next().unwrap_or_default()),
            status: "PRIMARY".into(),
            task_definition: td.to_string(),
            rollout_state: Some(state.into()),
            rollout_state_reason: (state == "FAILED")
                .then(|| "ECS deployment circuit breaker: tasks failed to start.".into()),
            desired: 1,
            running: i32::from(state == "COMPLETED"),
            pending: 0,
            failed_tasks: i32::from(state != "COMPLETED"),
            created_at: Some(now),
        }
    }
}

#[async_trait]
impl Deployer for FakeEcs {
    async fn container_images(
        &self,
        task_definition: &str,
    ) -> Result<BTreeMap<String, String>, EcsError> {
        lock(&self.calls).push(format!("images {task_definition}"));
        Ok(BTreeMap::new())
    }

    async fn running_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<ecs::RunningTask>, EcsError> {
        lock(&self.calls).push(format!("tasks {cluster} {service}"));
        Ok(Vec::new())
    }

    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<BTreeMap<String, ecs::Described>, EcsError> {
        lock(&self.calls).push(format!("describe {cluster} {}", services.join(",")));
        let output = self.terraform.output();
        let history = self.terraform.history();
        let now = SystemTime::now();
        let mut out = BTreeMap::new();
        for service in services {
            let Some((name, applied)) = output
                .iter()
                .find(|(_, c)| c["service"] == service.as_str() && c["cluster"] == cluster)
            else {
                out.insert(
                    service.clone(),
                    ecs::Described::Missing {
                        reason: "MISSING".into(),
                    },
                );
                continue;
            };
            let td = applied["task_definition"].as_str().unwrap_or_default();
            if lock(&self.arming).remove(name) {
                lock(&self.rolled_back).insert(td.to_string());
            }
            let previous = history
                .iter()
                .rev()
                .filter(|r| r.consumer == *name)
                .map(|r| r.task_definition.as_str())
                .find(|t| *t != td);
            let (deployments, events) = if lock(&self.rolled_back).contains(td) {
                match previous {
                    Some(p) => (
                        vec![Self::deployment(p, "COMPLETED", now)],
                        vec![ServiceEvent {
                            created_at: Some(now),
                            message: format!(
                                "(service {service}) rolling back to deployment of {p}"
                            ),
                        }],
                    ),
                    None => (vec![Self::deployment(td, "FAILED", now)], Vec::new()),
                }
            } else {
                (vec![Self::deployment(td, "COMPLETED", now)], Vec::new())
            };
            out.insert(
                service.clone(),
                ecs::Described::Found(ServiceState {
                    name: service.clone(),
                    status: "ACTIVE".into(),
                    desired: 1,
                    running: 1,
                    deployments,
                    events,
                }),
            );
        }
        Ok(out)
    }

    async fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<StoppedTask>, EcsError> {
        lock(&self.calls).push(format!("stopped {cluster} {service} {task_definition}"));
        if !lock(&self.rolled_back).contains(task_definition) {
            return Ok(Vec::new());
        }
        let container = self
            .terraform
            .output()
            .values()
            .find(|c| c["service"] == service)
            .and_then(|c| c["container"].as_str().map(str::to_string))
            .unwrap_or_default();
        Ok(vec![StoppedTask {
            id: "0123456789abcdef".into(),
            task_definition: task_definition.to_string(),
            stopped_reason: Some("Essential container in task exited".into()),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_at: Some(SystemTime::now()),
            containers: vec![StoppedContainer {
                name: container,
                exit_code: Some(1),
                reason: None,
            }],
        }])
    }

    async fn log_sources(
        &self,
        task_definition: &str,
    ) -> Result<BTreeMap<String, LogSource>, EcsError> {
        lock(&self.calls).push(format!("log_sources {task_definition}"));
        Ok(self
            .terraform
            .output()
            .values()
            .filter(|c| c["task_definition"] == task_definition)
            .map(|c| {
                (
                    c["container"].as_str().unwrap_or_default().to_string(),
                    LogSource {
                        group: c["log_group"].as_str().unwrap_or_default().to_string(),
                        region: None,
                        stream_prefix: Some("ecs".into()),
                    },
                )
            })
            .collect())
    }

    async fn previous_image(
        &self,
        task_definition: &str,
        container: &str,
        skip: &[String],
    ) -> Result<Option<(String, String)>, EcsError> {
        lock(&self.calls).push(format!("previous {task_definition} {container}"));
        let history = self.terraform.history();
        let Some(at) = history
            .iter()
            .rposition(|r| r.task_definition == task_definition)
        else {
            return Err(EcsError {
                operation: "DescribeTaskDefinition",
                subject: task_definition.to_string(),
                failure: Failure::new(crate::failure::Cause::NotFound, "no such task definition"),
            });
        };
        let current = &history[at];
        Ok(history[..at]
            .iter()
            .rev()
            .filter(|r| r.consumer == current.consumer)
            .find(|r| r.image != current.image && !skip.contains(&r.image))
            .map(|r| (r.image.clone(), r.task_definition.clone())))
    }
}

// CloudWatch alarms ------------------------------------------------------------------------------

/// No alarm is in ALARM.
pub struct NoAlarms;

#[async_trait]
impl crate::clients::alarms::AlarmReader for NoAlarms {
    async fn firing(
        &self,
        _prefix: &str,
    ) -> Result<Vec<crate::clients::alarms::FiringAlarm>, Failure> {
        Ok(Vec::new())
    }
}

// CloudWatch Logs --------------------------------------------------------------------------------

/// Logs: every stream ends with the same few lines.
#[derive(Default)]
pub struct FakeLogs {
    /// `group stream`.
    pub calls: Mutex<Vec<String>>,
    /// The log groups that exist.
    pub groups: Mutex<std::collections::BTreeSet<String>>,
}

#[async_trait]
impl LogReader for FakeLogs {
    async fn tail(
        &self,
        _region: Option<&str>,
        group: &str,
        stream: &str,
        lines: usize,
    ) -> Result<Vec<String>, Failure> {
        lock(&self.calls).push(format!("{group} {stream}"));
        Ok([
            "starting consumer",
            "connecting to the broker",
            "fatal: no route to broker",
        ]
        .iter()
        .take(lines)
        .map(|s| s.to_string())
        .collect())
    }

    async fn events(
        &self,
        group: &str,
        _window: (i64, Option<i64>),
        _pattern: Option<&str>,
        _pages: usize,
    ) -> Result<Vec<crate::clients::logs::LogEvent>, Failure> {
        lock(&self.calls).push(format!("events {group}"));
        Ok(Vec::new())
    }

    async fn groups(&self, prefix: &str) -> Result<std::collections::BTreeSet<String>, Failure> {
        lock(&self.calls).push(format!("groups {prefix}"));
        Ok(lock(&self.groups)
            .iter()
            .filter(|g| g.starts_with(prefix))
            .cloned()
            .collect())
    }
}

// GitHub -----------------------------------------------------------------------------------------

/// One call the fake GitHub received.
#[derive(Clone, Debug, PartialEq)]
pub enum GithubCall {
    Comments { issue: u64 },
    CreateComment { issue: u64, id: u64 },
    UpdateComment { id: u64 },
    DeleteComment { id: u64 },
    PullsForCommit { sha: String },
    CreateCheckRun { id: u64, body: Value },
    UpdateCheckRun { id: u64, body: Value },
    CreateDeployment { id: u64, body: Value },
    CreateDeploymentStatus { id: u64, body: Value },
}

#[derive(Default)]
struct GithubState {
    calls: Vec<GithubCall>,
    next_id: u64,
    comments: BTreeMap<u64, Vec<IssueComment>>,
}

/// GitHub: records every call; comments, check runs and deployments get increasing ids; every
/// commit was merged by [`PULL_REQUEST`].
#[derive(Default)]
pub struct FakeGitHub {
    state: Mutex<GithubState>,
}

/// A check run as its calls left it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    /// The body it was created with.
    pub created: Value,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: String,
    /// The last `output` it was given.
    pub output: Value,
}

impl FakeGitHub {
    pub fn calls(&self) -> Vec<GithubCall> {
        lock(&self.state).calls.clone()
    }

    fn next(state: &mut GithubState) -> u64 {
        state.next_id += 1;
        state.next_id
    }

    /// Each check run by name (`cdc-deploy / production / orders`), the newest of a name, as
    /// its creation and updates left it.
    pub fn check_runs(&self) -> BTreeMap<String, CheckRun> {
        let mut by_id: BTreeMap<u64, CheckRun> = BTreeMap::new();
        for call in self.calls() {
            match call {
                GithubCall::CreateCheckRun { id, body } => {
                    by_id.insert(
                        id,
                        CheckRun {
                            id,
                            name: body["name"].as_str().unwrap_or_default().to_string(),
                            status: body["status"].as_str().unwrap_or_default().to_string(),
                            conclusion: body["conclusion"].as_str().map(str::to_string),
                            title: body["output"]["title"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            output: body["output"].clone(),
                            created: body,
                        },
                    );
                }
                GithubCall::UpdateCheckRun { id, body } => {
                    if let Some(c) = by_id.get_mut(&id) {
                        if let Some(s) = body["status"].as_str() {
                            c.status = s.to_string();
                        }
                        if let Some(s) = body["conclusion"].as_str() {
                            c.conclusion = Some(s.to_string());
                        }
                        if let Some(s) = body["output"]["title"].as_str() {
                            c.title = s.to_string();
                        }
                        if body.get("output").is_some() {
                            c.output = body["output"].clone();
                        }
                    }
                }
                _ => {}
            }
        }
        by_id.into_values().map(|c| (c.name.clone(), c)).collect()
    }

    /// The body of each comment on `issue`, oldest first.
    pub fn comment_bodies(&self, issue: u64) -> Vec<String> {
        lock(&self.state)
            .comments
            .get(&issue)
            .into_iter()
            .flatten()
            .filter_map(|c| c.body.clone())
            .collect()
    }

    /// Forget every call so far (what GitHub holds stays).
    pub fn clear_calls(&self) {
        lock(&self.state).calls.clear();
    }
}

#[async_trait]
impl GitHub for FakeGitHub {
    async fn comments(&self, issue: u64) -> Result<Vec<IssueComment>, GithubError> {
        let mut s = lock(&self.state);
        s.calls.push(GithubCall::Comments { issue });
        Ok(s.comments.get(&issue).cloned().unwrap_or_default())
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<IssueComment, GithubError> {
        let mut s = lock(&self.state);
        let id = Self::next(&mut s);
        s.calls.push(GithubCall::CreateComment { issue, id });
        let c = IssueComment {
            id,
            body: Some(body.to_string()),
            html_url: format!("https://github.com/o/r/pull/{issue}#issuecomment-{id}"),
            user: Some(Author {
                login: "github-actions[bot]".into(),
                kind: "Bot".into(),
            }),
        };
        s.comments.entry(issue).or_default().push(c.clone());
        Ok(c)
    }

    async fn update_comment(&self, id: u64, body: &str) -> Result<IssueComment, GithubError> {
        let mut s = lock(&self.state);
        s.calls.push(GithubCall::UpdateComment { id });
        let found = s
            .comments
            .values_mut()
            .flatten()
            .find(|c| c.id == id)
            .map(|c| {
                c.body = Some(body.to_string());
                c.clone()
            });
        found.ok_or_else(|| GithubError::Status {
            operation: "update a comment".into(),
            status: 404,
            message: "Not Found".into(),
            retry_after: None,
        })
    }

    async fn delete_comment(&self, id: u64) -> Result<(), GithubError> {
        let mut s = lock(&self.state);
        s.calls.push(GithubCall::DeleteComment { id });
        for list in s.comments.values_mut() {
            list.retain(|c| c.id != id);
        }
        Ok(())
    }

    async fn pulls_for_commit(&self, sha: &str) -> Result<Vec<PullRef>, GithubError> {
        lock(&self.state).calls.push(GithubCall::PullsForCommit {
            sha: sha.to_string(),
        });
        Ok(vec![PullRef {
            number: PULL_REQUEST,
            state: "closed".into(),
            merged_at: Some("2026-01-01T00:00:00Z".into()),
        }])
    }

    async fn create_check_run(&self, body: &Value) -> Result<u64, GithubError> {
        let mut s = lock(&self.state);
        let id = Self::next(&mut s);
        s.calls.push(GithubCall::CreateCheckRun {
            id,
            body: body.clone(),
        });
        Ok(id)
    }

    async fn update_check_run(&self, id: u64, body: &Value) -> Result<(), GithubError> {
        lock(&self.state).calls.push(GithubCall::UpdateCheckRun {
            id,
            body: body.clone(),
        });
        Ok(())
    }

    async fn create_deployment(&self, body: &Value) -> Result<u64, GithubError> {
        let mut s = lock(&self.state);
        let id = Self::next(&mut s);
        s.calls.push(GithubCall::CreateDeployment {
            id,
            body: body.clone(),
        });
        Ok(id)
    }

    async fn create_deployment_status(&self, id: u64, body: &Value) -> Result<(), GithubError> {
        lock(&self.state)
            .calls
            .push(GithubCall::CreateDeploymentStatus {
                id,
                body: body.clone(),
            });
        Ok(())
    }
}
