//! The Terraform stage: hand Terraform the consumers with their images pinned by digest, plan,
//! and on deploy apply exactly the saved plan.
//!
//! A [`Session`] runs `init` and reads what is applied (`output`, which does not refresh) before
//! anything is built; then `validate`, `plan -out`, `show -json` of the saved plan and the
//! destroy guard; then `apply` of that plan file, never a fresh plan, and `output` again. Deploy
//! refuses local state, which an ephemeral runner would lose. The variables file and the saved
//! plan live in a folder of the run's own under the work folder, passed with `-var-file`: nothing
//! is ever written into a team's root module. Whatever Terraform prints is untrusted text.

pub mod digest;
pub mod root;
pub mod vars;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clients::terraform::{self, Terraform, TerraformCli, TerraformError};
use crate::config::TerraformSettings;
use crate::gha::Runner;
use crate::plan::terraform::{destroy_guard, GuardedChange, InfraPlan};
use crate::plan::{Plan, Status};
use vars::{AppliedConsumer, Kept, Variables};

/// Why the Terraform stage stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfraError {
    #[error("{0}")]
    Root(String),
    #[error("Terraform {found} does not satisfy `required_version = \"{constraint}\"` in `{file}`; install a Terraform that does (or point `TERRAFORM_PATH` at one)")]
    Version {
        file: String,
        constraint: String,
        found: String,
    },
    #[error("refusing to apply with local state: a CI runner is thrown away after the job and its state with it, so the next run would create every resource again. {how}")]
    LocalState { how: String },
    #[error(transparent)]
    Terraform(TerraformError),
    #[error("the plan destroys what {} and `allow-destroy` is `false`, so nothing was applied: {}. {}; when this is meant, run again with `allow-destroy: true`", guarded_owner(.0), guarded_list(.0), guarded_cause(.0))]
    DestroyGuard(Vec<GuardedChange>),
    #[error("{0}")]
    Unreadable(String),
    #[error("{} runs now, but its entry cannot be kept ({}), so Terraform would destroy it: nothing was planned. Fix the consumer, or have the root module's `consumers` output give each entry back as `config`, as the bundled module does", .0.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", "), .0.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>().join("; "))]
    CannotKeep(Vec<(String, String)>),
    #[error("{0}")]
    Rollback(String),
}

fn guarded_owner(g: &[GuardedChange]) -> String {
    let names: BTreeSet<&str> = g.iter().filter_map(|c| c.consumer.as_deref()).collect();
    match names.len() {
        0 => "the consumers need".into(),
        1 => format!(
            "`{}` needs",
            names.iter().next().copied().unwrap_or_default()
        ),
        _ => format!(
            "{} need",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The usual cause of what the guard stopped.
fn guarded_cause(g: &[GuardedChange]) -> &'static str {
    if g.iter().all(|c| c.consumer.is_some()) {
        "A renamed or removed folder is the usual cause"
    } else {
        "A change of the network or cluster inputs (the AZs, `vpc_cidr`, `network_mode`) is the usual cause of what every consumer shares; to keep a VPC's subnets, name their AZ IDs in `availability_zone_ids`"
    }
}

fn guarded_list(g: &[GuardedChange]) -> String {
    g.iter()
        .map(|c| format!("`{}` ({}: {})", c.address, c.kind.as_str(), c.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the Terraform stage did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InfraReport {
    /// The saved plan, read back; `None` when the stage stopped before it.
    pub plan: Option<InfraPlan>,
    /// Consumers whose entry is not built from this run.
    pub kept: BTreeMap<String, Kept>,
    /// What was applied before this run, from the `consumers` output.
    pub before: BTreeMap<String, AppliedConsumer>,
    /// What is applied after this run: after `apply`, or as before when nothing was applied.
    pub after: Option<BTreeMap<String, AppliedConsumer>>,
    /// Whether `apply` ran (a plan with no changes is not applied).
    pub applied: bool,
    /// The guarded changes, also when `allow-destroy` let them through or only a plan ran.
    pub guarded: Vec<GuardedChange>,
    /// Whether `allow-destroy` lets guarded changes through.
    pub destroy_allowed: bool,
    /// Consumers whose image is not built yet, named in the plan by their content tag.
    pub unbuilt: BTreeMap<String, String>,
    pub error: Option<InfraError>,
    pub duration: Duration,
    pub terraform_version: Option<String>,
    /// When `apply` started: a rollout it caused has a deployment created at or after it.
    pub apply_started: Option<std::time::SystemTime>,
    /// A rollback's consumers: the image each ran and the one it is put back on.
    pub rollbacks: BTreeMap<String, RolledBack>,
    /// The AWS region the stage ran in, for links to the console.
    pub region: Option<String>,
    /// Why Terraform did not plan (every entry and input equal to the applied ones).
    pub not_run: Option<String>,
}

impl InfraReport {
    /// The CloudWatch console's page of `consumer`'s log group, when it is known.
    pub fn log_group_url(&self, consumer: &str) -> Option<String> {
        let region = self.region.as_deref()?;
        let applied = self.after.as_ref().unwrap_or(&self.before).get(consumer)?;
        if applied.log_group.is_empty() {
            return None;
        }
        // The console's own encoding of a log group name in its page address.
        let group: String = applied
            .log_group
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c.to_string(),
                other => format!("$25{:02X}", other as u32),
            })
            .collect();
        Some(format!(
            "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}"
        ))
    }
}

/// One consumer put back on an earlier image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RolledBack {
    /// The image it ran.
    pub from: String,
    /// The image it is put back on.
    pub to: String,
    /// Where `to` comes from: the digest given, or the task definition revision that ran it.
    pub source: String,
}

impl InfraReport {
    /// The services whose task definition this run's apply changed, to watch roll out.
    pub fn changed_services(&self) -> Vec<crate::apply::rollout::Watch> {
        let (Some(after), Some(since), true) = (&self.after, self.apply_started, self.applied)
        else {
            return Vec::new();
        };
        // A new revision rolls out; a service the apply changed in a way that makes ECS start a
        // deployment of the same revision (its network, a forced deployment) restarts: both are
        // watched, each by its own deployment.
        let restarts = self
            .plan
            .as_ref()
            .map(|p| {
                p.restarts()
                    .into_keys()
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>()
            })
            .unwrap_or_default();
        after
            .iter()
            .filter(|(name, a)| {
                restarts.contains(*name)
                    || self
                        .before
                        .get(*name)
                        .is_none_or(|b| b.task_definition != a.task_definition)
            })
            .map(|(name, a)| crate::apply::rollout::Watch {
                consumer: name.clone(),
                cluster: a.cluster.clone(),
                service: a.service.clone(),
                task_definition: a.task_definition.clone(),
                before: self.before.get(name).map(|b| b.task_definition.clone()),
                since,
            })
            .collect()
    }

    /// Consumers applied before whose folder is gone: named by the previous `consumers` output
    /// or by the keys of their resources in the plan; with a `selection`, only those it names.
    pub fn removed(
        &self,
        plan: &Plan,
        selection: Option<&crate::consumers::select::Selection>,
    ) -> Vec<String> {
        let mut names: BTreeSet<String> = self.before.keys().cloned().collect();
        if let Some(p) = &self.plan {
            names.extend(p.changes.iter().filter_map(|c| c.consumer.clone()));
        }
        names
            .into_iter()
            .filter(|n| plan.get(n).is_none_or(|c| c.status == Status::Removed))
            .filter(|n| selection.is_none_or(|s| s.matches(n)))
            .collect()
    }
}

/// Everything the stage needs besides the plan.
pub struct InfraStage<'a> {
    pub runner: &'a Runner,
    pub settings: &'a TerraformSettings,
    pub project: &'a str,
    pub environment: &'a str,
    pub region: &'a str,
    pub registry_host: &'a str,
    /// The `consumers` option: applied consumers it does not name keep their entry.
    pub selection: Option<&'a crate::consumers::select::Selection>,
    /// Terraform, running in the root module [`root_dir`] names. Set when the run is cancelled:
    /// no command starts after it, and a running one is asked to stop once and waited for.
    pub terraform: &'a dyn Terraform,
}

/// A folder of the run's own under the work folder, removed when the run ends however it ends:
/// the variables file and the saved plan live there, never in the root module.
struct RunFiles(PathBuf);

impl RunFiles {
    fn new(work_dir: &Path) -> (PathBuf, std::io::Result<RunFiles>) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = work_dir.join(format!("run-{}-{nanos}", std::process::id()));
        let made = std::fs::create_dir_all(&dir).map(|()| RunFiles(dir.clone()));
        (dir, made)
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A short, stable name for a folder, for the data directory of its root module.
fn folder_key(p: &Path) -> String {
    let h = blake3::hash(p.to_string_lossy().as_bytes());
    h.to_hex()[..12].to_string()
}

/// The root module, checked before anything changes: it declares what the action relies on, its
/// state survives the runner when it will be applied, and the Terraform installed is one it
/// accepts.
#[derive(Clone, Debug)]
pub struct Prepared {
    root_dir: PathBuf,
    bundled: bool,
    decl: root::Declarations,
    version: String,
    /// Said once, when the stage runs.
    warnings: Vec<String>,
}

impl Prepared {
    /// Whether the root module declares `name` both as a variable and as an output.
    pub fn declares(&self, name: &str) -> bool {
        self.decl.variables.iter().any(|v| v == name) && self.decl.outputs.iter().any(|o| o == name)
    }

    /// Whether the root is the one generated around the bundled module.
    pub fn bundled(&self) -> bool {
        self.bundled
    }

    /// The folder of the root module.
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// The Terraform version the root runs with.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn shown(&self) -> String {
        if self.bundled {
            "the bundled module".to_string()
        } else {
            format!("the root module `{}`", self.root_dir.display())
        }
    }
}

/// Check the root module and the Terraform binary `tf` runs; `apply` when the run will apply.
/// Generates the root around the bundled module when the settings name no root of their own.
pub async fn prepare(
    s: &TerraformSettings,
    tf: &dyn Terraform,
    apply: bool,
) -> Result<Prepared, InfraError> {
    std::fs::create_dir_all(&s.work_dir).map_err(|e| not_prepared(&s.work_dir, e))?;
    let root_dir = root_dir(s);
    let bundled = s.dir.is_none();
    if bundled {
        std::fs::create_dir_all(&root_dir).map_err(|e| not_prepared(&root_dir, e))?;
        root::generate(&root_dir, !s.backend_config.is_empty()).map_err(InfraError::Root)?;
    }
    let decl = root::declarations(&root_dir).map_err(InfraError::Root)?;
    let mut p = Prepared {
        root_dir,
        bundled,
        decl,
        version: String::new(),
        warnings: Vec::new(),
    };
    let shown = p.shown();
    let missing: Vec<&str> = [
        (!p.decl.variables.iter().any(|v| v == "consumers")).then_some("variable \"consumers\""),
        (!p.decl.outputs.iter().any(|v| v == "consumers")).then_some("output \"consumers\""),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        return Err(InfraError::Root(format!(
            "{shown} does not declare {}: the action hands Terraform the `consumers` map and reads back the `consumers` output (cluster, service, task_definition, log_group, container, image per consumer); declare them, or leave `terraform-dir` unset for the bundled module",
            missing.join(" or ")
        )));
    }

    // State that survives the runner.
    let local = matches!(p.decl.backend.as_deref(), None | Some("local"));
    if local && apply {
        let how = if bundled {
            "Configure the S3 backend with native locking (Terraform 1.10 or later): set `terraform-backend-config` to\n  bucket=<state bucket>\n  key=cdc-deploy/<project>/<environment>.tfstate\n  region=<region>\n  use_lockfile=true".to_string()
        } else {
            format!("Add `backend \"s3\" {{}}` to the `terraform` block of {shown} and set `terraform-backend-config` to `bucket=…`, `key=…`, `region=…` and `use_lockfile=true` (S3 native locking, Terraform 1.10 or later)")
        };
        return Err(InfraError::LocalState { how });
    }
    if local {
        p.warnings.push(format!(
            "Terraform plans against local state in {shown}: it shows what a first deploy would create, and a deploy with this setup is refused; configure an S3 backend with `terraform-backend-config`"
        ));
    } else if p.decl.backend.as_deref() == Some("s3")
        && !s.backend_config.iter().any(|l| {
            let l = l.replace(' ', "");
            l.starts_with("use_lockfile=true") || l.starts_with("dynamodb_table=")
        })
    {
        p.warnings.push(
            "the Terraform state may not be locked: unless the root module's backend block sets it, add `use_lockfile=true` to `terraform-backend-config` so two runs cannot write the state at once".into(),
        );
    }

    // The Terraform the root asks for.
    let version = tf
        .capture(&args(&["version", "-json"]))
        .await
        .map_err(InfraError::Terraform)?;
    p.version = serde_json::from_str::<serde_json::Value>(&version.stdout)
        .ok()
        .and_then(|v| v["terraform_version"].as_str().map(str::to_string))
        .ok_or_else(|| {
            InfraError::Unreadable(format!(
                "`{} version -json` did not say which version it is",
                s.program.display()
            ))
        })?;
    for (file, constraint) in &p.decl.required_versions {
        match terraform::satisfies(constraint, &p.version) {
            Ok(true) => {}
            Ok(false) => {
                return Err(InfraError::Version {
                    file: file.clone(),
                    constraint: constraint.clone(),
                    found: p.version.clone(),
                })
            }
            // Terraform itself checks it at `init`; said here so the reason is not a mystery.
            Err(e) => p.warnings.push(format!(
                "`required_version` in `{file}` was not checked before `init`: {e}"
            )),
        }
    }
    Ok(p)
}

/// The root module Terraform runs in: the team's own, or the one generated around the bundled
/// module under the work folder.
pub fn root_dir(s: &TerraformSettings) -> PathBuf {
    s.dir.clone().unwrap_or_else(|| s.work_dir.join("root"))
}

/// Terraform's data directory for the root module [`root_dir`] names (`TF_DATA_DIR`).
pub fn data_dir(s: &TerraformSettings) -> PathBuf {
    s.work_dir
        .join(format!("data-{}", folder_key(&root_dir(s))))
}

/// The Terraform runner for the root module [`root_dir`] names: its data directory and plugin
/// cache under the work folder (or the plugin cache the environment names).
pub fn cli(s: &TerraformSettings, cancel: Option<crate::cancel::Cancel>) -> TerraformCli {
    let root_dir = root_dir(s);
    let plugin_cache = s
        .plugin_cache
        .clone()
        .unwrap_or_else(|| s.work_dir.join("plugin-cache"));
    let _ = std::fs::create_dir_all(&plugin_cache);
    TerraformCli {
        program: s.program.clone(),
        env: vec![
            ("TF_DATA_DIR".into(), data_dir(s).display().to_string()),
            (
                "TF_PLUGIN_CACHE_DIR".into(),
                plugin_cache.display().to_string(),
            ),
        ],
        dir: root_dir,
        cancel,
    }
}

/// What a Terraform plan of the stage found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub plan: InfraPlan,
    /// The changes the destroy guard stops unless `allow-destroy`.
    pub guarded: Vec<GuardedChange>,
}

/// What an apply of the saved plan did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// When `apply` started: a rollout it caused has a deployment created at or after it.
    pub started: std::time::SystemTime,
    /// What is applied now, read back; an error leaves what the apply did unknown.
    pub after: Result<BTreeMap<String, AppliedConsumer>, InfraError>,
}

/// The root module, initialised for one run: `init` done, the variables and the saved plan in a
/// folder of the run's own. Each command is Terraform's; whatever it prints is untrusted text.
pub struct Session<'a> {
    stage: InfraStage<'a>,
    files: RunFiles,
    validated: bool,
    /// The inputs digest the applied state was applied with (`deploy_inputs_digest` output).
    applied_digest: Option<String>,
    /// A plan is saved and not yet applied.
    saved: bool,
}

impl<'a> Session<'a> {
    /// The inputs digest the state was applied with, when the root module gives it back.
    pub fn applied_digest(&self) -> Option<&str> {
        self.applied_digest.as_deref()
    }

    /// Say the root's warnings once, run `init`, and read what is applied (`terraform output`,
    /// which does not refresh).
    pub async fn open(
        stage: InfraStage<'a>,
        prepared: &Prepared,
    ) -> Result<(Session<'a>, BTreeMap<String, AppliedConsumer>), InfraError> {
        let runner = stage.runner;
        let tf = stage.terraform;
        for w in &prepared.warnings {
            runner.warning(w);
        }
        let leftover = prepared.root_dir.join(vars::TFVARS_FILE);
        if leftover.exists() {
            runner.warning(&format!(
                "`{}` is in the root module: an older cdc-deploy wrote it there, and Terraform loads it before the variables this run passes (which win); remove it",
                leftover.display()
            ));
        }
        let (dir, files) = RunFiles::new(&stage.settings.work_dir);
        let files = files.map_err(|e| not_prepared(&dir, e))?;
        let mut init = args(&["init", "-input=false", "-no-color", "-reconfigure"]);
        for b in &stage.settings.backend_config {
            init.push(format!("-backend-config={b}"));
        }
        {
            let _g = runner.group("terraform init");
            step(tf, "init", &init, &|l| runner.print_untrusted(l)).await?;
        }
        let (applied, digest) = applied(tf).await?;
        let session = Session {
            stage,
            files,
            validated: false,
            saved: false,
            applied_digest: digest,
        };
        Ok((session, applied))
    }

    fn plan_file(&self) -> PathBuf {
        self.files.0.join("terraform.tfplan")
    }

    /// Write `variables` (those the root declares) to the run's folder, validate the root once,
    /// plan into the saved plan and read it back. `known` are the consumer names resources may
    /// belong to besides those in the map.
    pub async fn plan(
        &mut self,
        prepared: &Prepared,
        variables: &Variables,
        known: &BTreeSet<String>,
    ) -> Result<Planned, InfraError> {
        let s = self.stage.settings;
        let runner = self.stage.runner;
        let tf = self.stage.terraform;
        let sink = |line: &str| runner.print_untrusted(line);
        let mut written = serde_json::Map::new();
        if let Some(all) = variables.json.as_object() {
            for (k, v) in all {
                if prepared.decl.variables.iter().any(|d| d == k) {
                    written.insert(k.clone(), v.clone());
                }
            }
        }
        let vars_path = self.files.0.join(vars::TFVARS_FILE);
        let text = serde_json::to_string_pretty(&written)
            .map_err(|e| InfraError::Root(format!("could not write the variables: {e}")))?;
        std::fs::write(&vars_path, text).map_err(|e| not_prepared(&vars_path, e))?;
        if !self.validated {
            let _g = runner.group("terraform validate");
            step(tf, "validate", &args(&["validate", "-no-color"]), &sink).await?;
            self.validated = true;
        }
        let plan_file = self.plan_file();
        let _ = std::fs::remove_file(&plan_file);
        self.saved = false;
        let mut plan_args = args(&["plan", "-input=false", "-no-color"]);
        plan_args.push(format!("-lock-timeout={}ms", s.lock_timeout.as_millis()));
        plan_args.push(format!("-out={}", plan_file.display()));
        // The action's variables first, the team's file after: a value both set is the team's,
        // as it was when the action's file was loaded by Terraform itself.
        plan_args.push(format!("-var-file={}", vars_path.display()));
        if let Some(f) = &s.var_file {
            plan_args.push(format!("-var-file={}", f.display()));
        }
        {
            let _g = runner.group("terraform plan");
            step(tf, "plan", &plan_args, &sink).await?;
        }
        let _ = std::fs::remove_file(&vars_path);
        let shown_plan = captured(
            tf,
            "show",
            &args(&[
                "show",
                "-json",
                "-no-color",
                &plan_file.display().to_string(),
            ]),
        )
        .await?;
        let current = variables.consumers();
        let mut names: BTreeSet<String> = current.clone();
        names.extend(known.iter().cloned());
        let plan = InfraPlan::parse(&shown_plan.stdout, &names).map_err(|e| {
            InfraError::Unreadable(format!("the saved plan could not be read: {e}"))
        })?;
        runner.print_untrusted(&format!("terraform plan: {}", plan.totals()));
        let restarts = plan.restarts();
        if !restarts.is_empty() {
            let names: Vec<&str> = restarts.keys().copied().collect();
            runner.print_untrusted(&format!(
                "terraform plan: restarts {} {} without a new revision (ECS starts a deployment of every task): {}",
                restarts.len(),
                if restarts.len() == 1 { "consumer" } else { "consumers" },
                names.join(", ")
            ));
        }
        self.saved = true;
        Ok(Planned {
            guarded: destroy_guard(&plan, &current),
            plan,
        })
    }

    /// Apply the saved plan (exactly that file, never a fresh plan) and read back what is
    /// applied.
    pub async fn apply(&mut self) -> Result<Applied, InfraError> {
        if !self.saved {
            return Err(InfraError::Unreadable(
                "there is no saved plan to apply".into(),
            ));
        }
        self.saved = false;
        let stage = &self.stage;
        let runner = stage.runner;
        let mut apply = args(&["apply", "-input=false", "-no-color"]);
        apply.push(format!(
            "-lock-timeout={}ms",
            stage.settings.lock_timeout.as_millis()
        ));
        apply.push(self.plan_file().display().to_string());
        let started = std::time::SystemTime::now();
        {
            let _g = runner.group("terraform apply");
            step(stage.terraform, "apply", &apply, &|l| {
                runner.print_untrusted(l)
            })
            .await?;
        }
        Ok(Applied {
            started,
            after: applied(stage.terraform).await.map(|(a, _)| a),
        })
    }
}

/// The inputs digest of a run, added to `variables` for a root module that carries it (`None`
/// for one that does not). An error when a file of the root module cannot be read: the run then
/// plans as usual.
pub fn add_inputs_digest(
    t: &TerraformSettings,
    prepared: &Prepared,
    variables: &mut Variables,
) -> Result<Option<String>, String> {
    let d = digest::DIGEST_NAME;
    if !prepared.declares(d) {
        return Ok(None);
    }
    let data_dir = data_dir(t);
    // The imports the generated root gets for this run are its own, never the team's.
    let skip: &[&str] = if prepared.bundled() {
        &[root::IMPORTS_FILE]
    } else {
        &[]
    };
    let digest = digest::inputs_digest(&digest::DigestInputs {
        root_dir: prepared.root_dir(),
        skip,
        var_file: t.var_file.as_deref(),
        variables: &variables.json,
        terraform_version: prepared.version(),
        env: digest::tf_var_env(),
        data_dir: Some(&data_dir),
    })?;
    variables.json[d] = serde_json::Value::String(digest.clone());
    Ok(Some(digest))
}

/// What is applied, and the inputs digest it was applied with (when the root gives it back).
async fn applied(
    tf: &dyn Terraform,
) -> Result<(BTreeMap<String, AppliedConsumer>, Option<String>), InfraError> {
    let outputs = captured(tf, "output", &args(&["output", "-json", "-no-color"])).await?;
    let consumers = vars::applied_from_outputs(&outputs.stdout).map_err(|e| {
        InfraError::Unreadable(format!(
            "the root module's `consumers` output could not be read: {e}"
        ))
    })?;
    let digest = serde_json::from_str::<serde_json::Value>(&outputs.stdout)
        .ok()
        .and_then(|v| v[digest::DIGEST_NAME]["value"].as_str().map(str::to_string));
    Ok((consumers, digest))
}

/// A file or folder of the stage that could not be written.
fn not_prepared(what: &Path, e: std::io::Error) -> InfraError {
    InfraError::Root(format!("could not prepare `{}`: {e}", what.display()))
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Run a command whose output is read, not shown (`-json`); a failure becomes Terraform's own
/// diagnostics or the lock's holder.
async fn captured(
    tf: &dyn Terraform,
    name: &str,
    args: &[String],
) -> Result<crate::clients::terraform::Finished, InfraError> {
    let f = tf.capture(args).await.map_err(InfraError::Terraform)?;
    if f.success() {
        Ok(f)
    } else {
        Err(InfraError::Terraform(TerraformError::from_finished(
            name, &f,
        )))
    }
}

/// Run a streamed command; a failure becomes Terraform's own diagnostics or the lock's holder.
async fn step(
    tf: &dyn Terraform,
    name: &str,
    args: &[String],
    sink: &(dyn for<'s> Fn(&'s str) + Send + Sync),
) -> Result<(), InfraError> {
    let f = tf.stream(args, sink).await.map_err(InfraError::Terraform)?;
    if f.success() {
        Ok(())
    } else {
        Err(InfraError::Terraform(TerraformError::from_finished(
            name, &f,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(td: &str) -> AppliedConsumer {
        AppliedConsumer {
            cluster: "c".into(),
            service: "s".into(),
            task_definition: td.into(),
            ..AppliedConsumer::default()
        }
    }

    #[test]
    fn a_service_the_apply_restarts_is_watched_beside_the_new_revisions() {
        let svc = |name: &str, after_sgs: &[&str]| {
            serde_json::json!({"address": format!("aws_ecs_service.this[\"{name}\"]"), "index": name,
                "mode": "managed", "type": "aws_ecs_service", "change": {"actions": ["update"],
                "before": {"task_definition": "td:1", "network_configuration": [{"security_groups": ["sg-1"]}]},
                "after": {"task_definition": "td:1", "network_configuration": [{"security_groups": after_sgs}]}}})
        };
        let json = serde_json::json!({"resource_changes": [svc("restarted", &["sg-1", "sg-2"]), svc("calm", &["sg-1"])]});
        let names: BTreeSet<String> = ["restarted", "calm", "rolled"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let report = InfraReport {
            plan: Some(InfraPlan::parse(&json.to_string(), &names).unwrap()),
            before: [("restarted", "td:1"), ("calm", "td:1"), ("rolled", "td:1")]
                .into_iter()
                .map(|(n, td)| (n.to_string(), applied(td)))
                .collect(),
            after: Some(
                [("restarted", "td:1"), ("calm", "td:1"), ("rolled", "td:2")]
                    .into_iter()
                    .map(|(n, td)| (n.to_string(), applied(td)))
                    .collect(),
            ),
            applied: true,
            apply_started: Some(std::time::SystemTime::now()),
            ..InfraReport::default()
        };
        let watched: Vec<(String, String)> = report
            .changed_services()
            .into_iter()
            .map(|w| (w.consumer, w.task_definition))
            .collect();
        assert_eq!(
            watched,
            [
                ("restarted".to_string(), "td:1".to_string()),
                ("rolled".to_string(), "td:2".to_string())
            ]
        );
    }
}
