//! The stages, and which ones each command runs. Each stage takes the run's state, does its one
//! thing and leaves its outcome there; a stage whose inputs are missing (an earlier one failed)
//! does nothing, so the report always comes last and says what happened.

mod reporting;
mod rollouts;
mod terraform;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::github::Opened;
use super::outcome::{Outcome, Verb};
use super::services::Services;
use super::{RunError, Scans};
use crate::apply::images::{self, Buildable, ImageStage};
use crate::apply::infra::vars::AppliedConsumer;
use crate::apply::infra::{InfraReport, Prepared, Session};
use crate::apply::rollout;
use crate::apply::RunReport;
use crate::cancel::Cancel;
use crate::clients::builder::{EngineError, ImageBuilder};
use crate::config::{Action, DeploySettings, Settings};
use crate::consumers::discovery::Discovery;
use crate::gha::Runner;
use crate::observe::{self, Wanted};
use crate::plan::{self, Fingerprinted, Plan, Step};
use crate::report::{self, now, ReportHeader};

/// One step of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Discover the consumers and fingerprint their build contexts.
    Scan,
    /// Check the Terraform root module and binary, before anything changes.
    Prepare,
    /// Look up each consumer's repository and image, and plan against them.
    Observe,
    /// Plan without asking AWS (offline).
    PlanOffline,
    /// `terraform init`, then what is applied (`terraform output`).
    ReadApplied,
    /// Compare each consumer's entry with the applied one: changes, removals, holds.
    CompareEntries,
    /// Open the deployment and the check runs on GitHub.
    OpenGithub,
    /// Create repositories, build and push images.
    Images,
    /// Find the images a rollback goes back to.
    ResolveRollback,
    /// Plan Terraform into a saved plan, and fold it into the plan.
    TerraformPlan,
    /// Apply the saved plan.
    TerraformApply,
    /// Watch each changed service's deployment to a verdict (and read the pushed images' scans).
    Watch,
    /// Gather the evidence of each rollout that did not succeed.
    Evidence,
    /// Put each consumer whose rollout failed back on its previous entry, held there.
    Restore,
    /// Tag the images this environment runs and ran before (`keep-` tags), which the lifecycle
    /// policy never expires.
    Keep,
    /// Tell people: the log, the job summary, GitHub, the outputs.
    Report,
}

/// The stages the settings' command runs, in order.
pub fn stages(settings: &Settings) -> Vec<Stage> {
    use Stage::*;
    let terraform = settings.terraform.enabled;
    let list: &[Stage] = match &settings.action {
        Action::Plan(p) if p.offline => &[Scan, PlanOffline, Report],
        Action::Plan(_) if terraform => &[
            Scan,
            Prepare,
            Observe,
            ReadApplied,
            CompareEntries,
            TerraformPlan,
            Report,
        ],
        Action::Plan(_) => &[Scan, Observe, Report],
        Action::Deploy(d) if d.build_only => &[Scan, Observe, Images, Report],
        Action::Deploy(_) if terraform => &[
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
        Action::Deploy(_) => &[Scan, Observe, OpenGithub, Images, Watch, Report],
        Action::Rollback(_) => &[
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
        Action::Nothing { .. } => &[Report],
        // The day-2 commands are no pipeline (`crate::ops`).
        Action::Operate(_) => &[],
    };
    list.to_vec()
}

/// The state of a run, as the stages fill it in.
pub struct Run<'a> {
    settings: &'a Settings,
    runner: &'a Runner,
    cancel: &'a Cancel,
    services: &'a Services,
    verb: Verb,
    /// The stages that ran, in order.
    pub ran: Vec<Stage>,
    found: Discovery,
    scans: Scans,
    /// Patterns of `consumers` that name no consumer folder.
    unmatched: Vec<String>,
    pub plan: Plan,
    prepared: Option<Prepared>,
    session: Option<Session<'a>>,
    /// What is applied, read before anything is built.
    applied: Option<BTreeMap<String, AppliedConsumer>>,
    /// A rollback's entries: the named consumers on their earlier image.
    rollback_entries: BTreeMap<String, Value>,
    /// The rollback could not be resolved because of what was asked (exit code 2).
    rollback_refused: Option<String>,
    /// The services the apply changed, watched.
    watches: Vec<rollout::Watch>,
    pub report: RunReport,
    opened: Opened,
    /// What could not be written where people read it.
    report_errors: Vec<String>,
    outcome: Option<Outcome>,
}

impl<'a> Run<'a> {
    pub fn new(
        settings: &'a Settings,
        runner: &'a Runner,
        cancel: &'a Cancel,
        services: &'a Services,
    ) -> Run<'a> {
        let verb = match &settings.action {
            Action::Plan(_) => Verb::Plan,
            Action::Deploy(_) => Verb::Deploy,
            Action::Rollback(_) => Verb::Rollback,
            Action::Nothing { .. } | Action::Operate(_) => Verb::Nothing,
        };
        Run {
            settings,
            runner,
            cancel,
            services,
            verb,
            ran: Vec::new(),
            found: Discovery::default(),
            scans: Vec::new(),
            unmatched: Vec::new(),
            plan: Plan::default(),
            prepared: None,
            session: None,
            applied: None,
            rollback_entries: BTreeMap::new(),
            rollback_refused: None,
            watches: Vec::new(),
            report: RunReport::default(),
            opened: Opened::default(),
            report_errors: Vec::new(),
            outcome: None,
        }
    }

    /// The exit code, once the report stage decided the outcome.
    pub fn exit_code(&self) -> u8 {
        match (&self.rollback_refused, &self.outcome) {
            (Some(_), _) if !self.cancel.is_cancelled() => super::EXIT_CANNOT_START,
            (_, Some(o)) => o.code,
            (_, None) => super::EXIT_FAILED,
        }
    }

    /// Run `stage`. A cancelled run runs only the report; an error means the run could not
    /// start.
    pub async fn stage(&mut self, stage: Stage) -> Result<(), RunError> {
        if self.cancel.is_cancelled() && stage != Stage::Report {
            return Ok(());
        }
        self.ran.push(stage);
        match stage {
            Stage::Scan => self.scan().await?,
            Stage::Prepare => self.prepare().await?,
            Stage::Observe => self.observe().await,
            Stage::PlanOffline => self.plan_offline(),
            Stage::ReadApplied => self.read_applied().await?,
            Stage::CompareEntries => self.compare_entries(),
            Stage::OpenGithub => self.open_github().await,
            Stage::Images => self.images().await,
            Stage::ResolveRollback => self.resolve_rollback().await,
            Stage::TerraformPlan => self.terraform_plan().await,
            Stage::TerraformApply => self.terraform_apply().await,
            Stage::Watch => self.watch().await,
            Stage::Evidence => self.evidence().await,
            Stage::Restore => self.restore().await,
            Stage::Keep => self.keep().await,
            Stage::Report => self.report().await,
        }
        Ok(())
    }

    /// Move the `keep-` tags to the images this environment runs now and ran before, for each
    /// consumer the apply changed (a consumer put back on its earlier entry runs what it ran).
    async fn keep(&mut self) {
        let (Some(aws), Some(infra)) = (&self.services.aws, &self.report.infra) else {
            return;
        };
        let Some(now) = infra.after.as_ref().filter(|_| infra.applied) else {
            return;
        };
        let restored: std::collections::BTreeSet<String> = self
            .report
            .restores
            .iter()
            .filter(|(_, r)| r.error.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        let tags = crate::apply::keep::moves(
            &self.settings.environment,
            &aws.registry_host.host,
            &infra.before,
            now,
            &restored,
        );
        for warning in crate::apply::keep::apply(aws.registry.as_ref(), &tags).await {
            self.runner.warning(&warning);
        }
    }

    fn deploy_settings(&self) -> Option<&'a DeploySettings> {
        let settings: &'a Settings = self.settings;
        match &settings.action {
            Action::Deploy(d) => Some(d),
            Action::Rollback(r) => Some(&r.deploy),
            _ => None,
        }
    }

    fn infra(&mut self) -> &mut InfraReport {
        self.report.infra.get_or_insert_with(InfraReport::default)
    }

    /// Whether the Terraform stage stopped: what comes after it has nothing to work on.
    fn infra_stopped(&self) -> bool {
        self.report
            .infra
            .as_ref()
            .is_some_and(|i| i.error.is_some())
    }

    async fn scan(&mut self) -> Result<(), RunError> {
        let settings = self.settings.clone();
        let (found, scans, unmatched) =
            tokio::task::spawn_blocking(move || super::discover_and_fingerprint(&settings))
                .await
                .map_err(|e| {
                    RunError::Start(format!("the scan of the consumers stopped: {e}"))
                })??;
        // A secret set in plain text (`[environment]` `API_TOKEN`, which the plan warns about)
        // is still a secret: Terraform's plan would print it.
        for spec in &found.consumers {
            for (key, value) in &spec.settings.environment {
                if crate::consumers::config::looks_secret(key)
                    && value.trim().chars().count() >= crate::secret::MIN_HIDDEN
                {
                    self.runner.add_mask(value.trim());
                }
            }
        }
        self.found = found;
        self.scans = scans;
        self.unmatched = unmatched;
        // Without what is applied, only the folders can be named.
        if self.services.terraform.is_none() || !self.settings.terraform.enabled {
            self.check_selection(&[])?;
        }
        Ok(())
    }

    /// Every pattern of `consumers` must name a consumer folder or, when what is applied is
    /// known, a deployed consumer (one whose folder is gone is removed by name).
    fn check_selection(&self, applied: &[&str]) -> Result<(), RunError> {
        let Some(selection) = &self.settings.selection else {
            return Ok(());
        };
        if self.unmatched.is_empty() {
            return Ok(());
        }
        let mut names: Vec<&str> = self.found.folder_names();
        names.extend(applied);
        names.sort_unstable();
        names.dedup();
        let (what, known) = if applied.is_empty() {
            ("consumer folder", "the consumers are")
        } else {
            (
                "consumer folder or deployed consumer",
                "the consumers and deployed consumers are",
            )
        };
        selection
            .check(&names, what, known)
            .map_err(RunError::Start)
    }

    fn fingerprinted(&self) -> Vec<Fingerprinted<'_>> {
        self.scans
            .iter()
            .map(|(spec, r)| Fingerprinted {
                spec,
                fingerprint: r.as_ref().map(|s| s.report.clone()).map_err(Clone::clone),
            })
            .collect()
    }

    fn plan_offline(&mut self) {
        self.plan = plan::plan(
            &self.found,
            &self.fingerprinted(),
            None,
            self.settings.commit.as_ref(),
        );
    }

    async fn observe(&mut self) {
        let Some(aws) = &self.services.aws else {
            return self.plan_offline();
        };
        let wanted: Vec<Wanted> = self
            .scans
            .iter()
            .filter_map(|(s, r)| {
                Some(Wanted {
                    resource: s.resource_name.clone(),
                    fingerprint_tag: r.as_ref().ok()?.report.fingerprint.tag(),
                })
            })
            .collect();
        let observed = observe::observe(aws.ecr.as_ref(), aws.registry.as_ref(), &wanted).await;
        self.plan = plan::plan(
            &self.found,
            &self.fingerprinted(),
            Some(&observed),
            self.settings.commit.as_ref(),
        );
        if !self.settings.build_cache {
            self.plan.keep_cache_tags_immutable();
        }
    }

    fn compare_entries(&mut self) {
        let (Some(applied), Some(aws)) = (&self.applied, &self.services.aws) else {
            return;
        };
        let plan = std::mem::take(&mut self.plan);
        self.plan = plan::with_applied(
            plan,
            &plan::Applied {
                entries: applied,
                selection: self.settings.selection.as_ref(),
                registry_host: &aws.registry_host.host,
            },
        );
    }

    async fn open_github(&mut self) {
        let (Some(gh), Some(d)) = (&self.services.github, self.deploy_settings()) else {
            return;
        };
        if !self.plan.has_changes() && !self.plan.consumers.iter().any(report::checks::has_work) {
            // Nothing changes that is known yet: a shared change opens it after Terraform plans.
            return;
        }
        self.opened
            .open(self.settings, self.runner, gh.as_ref(), &self.plan, d)
            .await;
    }

    async fn images(&mut self) {
        let (Some(aws), Some(d)) = (&self.services.aws, self.deploy_settings()) else {
            return;
        };
        // Terraform could not even read what is applied: nothing this run builds can be applied.
        if self.infra_stopped() {
            self.runner.print(
                "images: not built, because the Terraform stage stopped before anything could be applied",
            );
            return;
        }
        self.runner.print_untrusted(&format!(
            "plan: {}",
            report::table::summary_line(&self.plan, None)
        ));
        if self.settings.shards > 1 && !d.build_only {
            // The build shards ran before this job: what is still to build, no shard pushed.
            for c in self.plan.consumers.iter().filter(|c| c.has(Step::Build)) {
                self.runner.warning(&format!(
                    "`{}`: no build shard pushed its image (its shard failed or was cancelled, or the plan before the shards did not see this change): building it here",
                    c.name
                ));
            }
        }
        let engine: Option<Result<std::sync::Arc<dyn ImageBuilder>, EngineError>> =
            if self.plan.consumers.iter().any(|c| c.has(Step::Build)) {
                let engine = self.services.engine.connect().await;
                // An engine that cannot be reached is each building consumer's failure, said
                // once.
                if let Ok(e) = &engine {
                    if e.is_fallback() {
                        self.runner.warning(&e.describe());
                    } else {
                        self.runner.print_untrusted(&e.describe());
                    }
                }
                Some(engine)
            } else {
                None
            };
        let builder: Result<&dyn ImageBuilder, EngineError> = match &engine {
            Some(Ok(e)) => Ok(e.as_ref()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(EngineError {
                address: self.settings.docker_host.clone().unwrap_or_default(),
                message: "the engine is not connected: the plan builds nothing".into(),
            }),
        };
        let buildable: HashMap<&str, Buildable<'_>> = self
            .scans
            .iter()
            .filter_map(|(spec, r)| {
                Some((
                    spec.name.as_str(),
                    Buildable {
                        spec,
                        context: &r.as_ref().ok()?.context,
                    },
                ))
            })
            .collect();
        let stage = ImageStage {
            runner: self.runner,
            ecr: aws.ecr.as_ref(),
            registry: aws.registry.as_ref(),
            builder,
            registry_host: aws.registry_host.clone(),
            login: aws.login.clone(),
            project: self.settings.project.to_string(),
            environment: self.settings.environment.clone(),
            keep_images: d.keep_images,
            untagged_expiry_days: d.untagged_expiry_days,
            build_concurrency: d.build_concurrency,
            build_timeout: d.build_timeout,
            commit: self.settings.commit.clone(),
            source_url: self.settings.github.repository_url(),
            cancel: self.cancel,
            build_cache: self.settings.build_cache,
        };
        self.report.images = images::apply(&stage, &self.plan, &buildable).await;
    }
}

fn header(settings: &Settings, verb: &str, cancel: &Cancel) -> ReportHeader {
    ReportHeader {
        project: settings.project.to_string(),
        environment: settings.environment.clone(),
        verb: verb.to_string(),
        run_url: settings.github.run_url(),
        cancelled: cancel.reason(),
        plan_digest: None,
        headline: String::new(),
        failed: false,
        aws_retried: crate::clients::aws_retries::line(&crate::clients::aws_retries::so_far()),
    }
}
