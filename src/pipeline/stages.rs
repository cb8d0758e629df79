//! The stages, and which ones each command runs. Each stage takes the run's state, does its one
//! thing and leaves its outcome there; a stage whose inputs are missing (an earlier one failed)
//! does nothing, so the report always comes last and says what happened.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::github::{self, Opened};
use super::outcome::{self, Facts, Outcome, Verb};
use super::outputs::Outputs;
use super::services::Services;
use super::{RunError, Scans};
use crate::apply::images::{self, Buildable, ImageStage};
use crate::apply::infra::vars::{self, AppliedConsumer, Kept, VariableInputs, Variables};
use crate::apply::infra::{self, InfraError, InfraReport, InfraStage, Prepared, Session};
use crate::apply::rollout::{self, EvidenceSettings, VerdictKind, WatchSettings};
use crate::apply::{rollback, scans, Restore, RunReport};
use crate::cancel::Cancel;
use crate::clients::builder::{EngineError, ImageBuilder};
use crate::config::{Action, DeploySettings, Settings};
use crate::consumers::discovery::Discovery;
use crate::gha::{Annotation, Level, Runner};
use crate::observe::{self, Wanted};
use crate::plan::entries::{self, Hold};
use crate::plan::{self, Fingerprinted, Plan, Status, Step};
use crate::report::{self, ReportHeader};

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
            Report,
        ],
        Action::Nothing { .. } => &[Report],
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
            Action::Nothing { .. } => Verb::Nothing,
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
            Stage::Report => self.report().await,
        }
        Ok(())
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

    async fn prepare(&mut self) -> Result<(), RunError> {
        let Some(tf) = &self.services.terraform else {
            return if self.verb == Verb::Rollback {
                Err(RunError::Start(
                    "a rollback goes through Terraform; `terraform: false` cannot roll back".into(),
                ))
            } else {
                Ok(())
            };
        };
        if self.verb == Verb::Rollback && self.settings.selection.is_none() {
            return Err(RunError::Start(
                "a rollback needs `consumers`: name the consumers to put back".into(),
            ));
        }
        // Backend settings can carry credentials: masked before Terraform can print them.
        for line in &self.settings.terraform.backend_config {
            if let Some((key, value)) = line.split_once('=') {
                let key = key.trim().to_ascii_lowercase();
                let secret = [
                    "secret",
                    "token",
                    "access_key",
                    "password",
                    "sse_customer_key",
                ]
                .iter()
                .any(|s| key.contains(s));
                if secret && !value.trim().is_empty() {
                    self.runner.add_mask(value.trim());
                }
            }
        }
        let apply = matches!(self.verb, Verb::Deploy | Verb::Rollback);
        let prepared = infra::prepare(&self.settings.terraform, tf.as_ref(), apply)
            .await
            .map_err(|e| RunError::Start(format!("terraform: {e}")))?;
        self.prepared = Some(prepared);
        Ok(())
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
    }

    fn infra_stage(&self) -> Option<InfraStage<'a>> {
        let settings: &'a Settings = self.settings;
        let services: &'a Services = self.services;
        let aws = services.aws.as_ref()?;
        Some(InfraStage {
            runner: self.runner,
            settings: &settings.terraform,
            project: settings.project.as_str(),
            environment: &settings.environment,
            region: &aws.region,
            registry_host: &aws.registry_host.host,
            selection: settings.selection.as_ref(),
            terraform: services.terraform.as_deref()?,
        })
    }

    async fn read_applied(&mut self) -> Result<(), RunError> {
        let (Some(stage), Some(prepared)) = (self.infra_stage(), self.prepared.clone()) else {
            return Ok(());
        };
        let region = stage.region.to_string();
        {
            let infra = self.infra();
            infra.terraform_version = Some(prepared.version().to_string());
            infra.region = Some(region);
            infra.destroy_allowed = stage.settings.allow_destroy;
        }
        let started = std::time::Instant::now();
        let opened = Session::open(stage, &prepared).await;
        self.infra().duration += started.elapsed();
        match opened {
            Ok((session, applied)) => {
                self.session = Some(session);
                self.infra().before = applied.clone();
                let names: Vec<&str> = applied.keys().map(String::as_str).collect();
                self.check_selection(&names)?;
                self.applied = Some(applied);
            }
            Err(e) => {
                self.infra().error = Some(e);
                // The names can only be checked against the folders.
                self.check_selection(&[])?;
            }
        }
        Ok(())
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
        self.runner.print_untrusted(&format!(
            "plan: {}",
            report::table::summary_line(&self.plan, None)
        ));
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
            commit: self.settings.commit.clone(),
            source_url: self.settings.github.repository_url(),
            cancel: self.cancel,
        };
        self.report.images = images::apply(&stage, &self.plan, &buildable).await;
    }

    async fn resolve_rollback(&mut self) {
        let (Some(aws), Some(applied), Action::Rollback(r), Some(selection)) = (
            &self.services.aws,
            &self.applied,
            &self.settings.action,
            &self.settings.selection,
        ) else {
            return;
        };
        let resolver = rollback::Resolver {
            deployer: aws.deployer.as_ref(),
            registry: aws.registry.as_ref(),
            registry_host: &aws.registry_host.host,
            selection,
            to: r.to.as_deref(),
            to_name: r.to_name,
        };
        let resolved = crate::cancel::or_cancelled(self.cancel, resolver.resolve(applied)).await;
        let rollbacks = match resolved {
            Err(c) => {
                self.infra().error = Some(InfraError::Rollback(format!(
                    "nothing was rolled back: the run was {c}"
                )));
                return;
            }
            Ok(Err(e)) => {
                if let rollback::RollbackError::Refused(why) = &e {
                    self.rollback_refused = Some(why.clone());
                }
                self.infra().error = Some(InfraError::Rollback(e.to_string()));
                return;
            }
            Ok(Ok(r)) => r,
        };
        let at = now();
        for (name, b) in &rollbacks {
            self.runner.print_untrusted(&format!(
                "rollback: `{name}` from `{}` to `{}` (found in {})",
                b.from, b.to, b.source
            ));
            let Some(a) = applied.get(name) else { continue };
            let Some(mut e) = vars::kept_entry(a, None) else {
                continue;
            };
            e["image"] = Value::String(b.to.clone());
            // Held on it: the next deploy leaves it there until its folder changes.
            let hold = Hold {
                image: b.from.clone(),
                fingerprint: None,
                settings: entries::settings_digest(&e),
                verdict: entries::ROLLED_BACK_BY_HAND.into(),
                at: at.clone(),
            };
            e[entries::HOLD_KEY] = serde_json::to_value(&hold).unwrap_or(Value::Null);
            self.rollback_entries.insert(name.clone(), e);
        }
        self.infra().rollbacks = rollbacks;
    }

    /// The variables of this command's Terraform plan.
    fn variables(&self) -> Option<Variables> {
        let aws = self.services.aws.as_ref()?;
        let applied = self.applied.as_ref()?;
        let s = self.settings;
        Some(match self.verb {
            Verb::Rollback => vars::from_applied(
                s.project.as_str(),
                &s.environment,
                &aws.region,
                applied,
                &self.rollback_entries,
            ),
            _ => vars::variables(
                &self.plan,
                &VariableInputs {
                    project: s.project.as_str(),
                    environment: &s.environment,
                    region: &aws.region,
                    registry_host: &aws.registry_host.host,
                    run: (self.verb == Verb::Deploy).then_some(&self.report),
                    applied,
                    selection: s.selection.as_ref(),
                },
            ),
        })
    }

    async fn terraform_plan(&mut self) {
        if self.infra_stopped() {
            return;
        }
        let (Some(variables), Some(prepared)) = (self.variables(), self.prepared.clone()) else {
            return;
        };
        {
            let infra = self.infra();
            infra.kept = variables.kept.clone();
            infra.unbuilt = variables.unbuilt.clone();
        }
        let before: BTreeMap<String, AppliedConsumer> = self
            .report
            .infra
            .as_ref()
            .map(|i| i.before.clone())
            .unwrap_or_default();
        let lost: Vec<(String, String)> = variables
            .kept
            .iter()
            .filter(|(n, _)| before.contains_key(*n))
            .filter_map(|(n, k)| match k {
                Kept::LeftOut { reason } => Some((n.clone(), reason.clone())),
                Kept::Running { .. } => None,
            })
            .collect();
        if !lost.is_empty() {
            self.infra().error = Some(InfraError::CannotKeep(lost));
            return;
        }
        let mut known: BTreeSet<String> = before.keys().cloned().collect();
        known.extend(self.plan.consumers.iter().map(|c| c.name.clone()));
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let started = std::time::Instant::now();
        let planned = session.plan(&prepared, &variables, &known).await;
        self.infra().duration += started.elapsed();
        let planned = match planned {
            Ok(p) => p,
            Err(e) => {
                self.infra().error = Some(e);
                return;
            }
        };
        {
            let infra = self.infra();
            infra.plan = Some(planned.plan.clone());
            infra.guarded = planned.guarded.clone();
        }
        if self.verb != Verb::Rollback {
            let infra = self.report.infra.as_ref().expect("set above");
            let removed = infra.removed(&self.plan, self.settings.selection.as_ref());
            let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
            let plan = std::mem::take(&mut self.plan);
            self.plan = plan::with_infra(plan, &planned.plan, &removed);
        }
        let allow = self.settings.terraform.allow_destroy;
        if self.verb == Verb::Plan {
            if !planned.guarded.is_empty() && !allow {
                self.runner.warning(&format!(
                    "a deploy of this plan stops before apply: {}",
                    InfraError::DestroyGuard(planned.guarded.clone())
                ));
            }
            return;
        }
        if !planned.guarded.is_empty() && !allow {
            self.infra().error = Some(InfraError::DestroyGuard(planned.guarded));
            return;
        }
        // A change only Terraform's plan shows (shared resources) opens the GitHub side now.
        if self.verb == Verb::Deploy && !self.opened.done && self.plan.has_changes() {
            self.open_github().await;
        }
    }

    async fn terraform_apply(&mut self) {
        if self.infra_stopped() {
            return;
        }
        let Some(planned) = self.report.infra.as_ref().and_then(|i| i.plan.clone()) else {
            return;
        };
        if planned.is_empty() {
            self.runner
                .print("terraform: the plan has no changes; nothing to apply");
            let infra = self.infra();
            infra.after = Some(infra.before.clone());
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let started = std::time::Instant::now();
        let applied = session.apply().await;
        self.infra().duration += started.elapsed();
        match applied {
            Ok(a) => {
                let infra = self.infra();
                infra.applied = true;
                infra.apply_started = Some(a.started);
                match a.after {
                    Ok(after) => infra.after = Some(after),
                    Err(e) => infra.error = Some(e),
                }
            }
            Err(e) => self.infra().error = Some(e),
        }
        if let Some(infra) = self
            .report
            .infra
            .as_ref()
            .filter(|_| self.verb == Verb::Rollback)
        {
            let after = infra.after.as_ref();
            for name in infra.rollbacks.keys() {
                if after
                    .and_then(|a| a.get(name))
                    .is_some_and(|a| a.hold().is_none())
                {
                    self.runner.warning(&format!(
                        "`{name}` is back on the earlier image, but the root module cannot remember that it is held there (its `consumers` variable has no `hold` attribute, or its output no `config`): the next deploy rolls its folder's image out again; declare `hold` as the bundled module does"
                    ));
                }
            }
        }
    }

    async fn watch(&mut self) {
        let (Some(aws), Some(d)) = (&self.services.aws, self.deploy_settings()) else {
            return;
        };
        self.watches = self
            .report
            .infra
            .as_ref()
            .map(InfraReport::changed_services)
            .unwrap_or_default();
        // Scans started at push time are read while the rollouts are watched: the wait for them
        // costs nothing when there are rollouts, and at most the scan budget when there are none.
        let pushed = pushed_images(&self.plan, &self.report);
        let cancel = self.cancel;
        let scan_reader = aws.scans.clone();
        let read_scans = async {
            if pushed.is_empty() {
                return BTreeMap::new();
            }
            let collect = scans::collect(
                scan_reader.as_ref(),
                &pushed,
                scans::DEFAULT_BUDGET,
                scans::DEFAULT_INTERVAL,
            );
            crate::cancel::or_cancelled(cancel, collect)
                .await
                .unwrap_or_default()
        };
        let watch = watch_rollouts(self.runner, aws.deployer.as_ref(), d, &self.watches, cancel);
        let (rollouts, found) = tokio::join!(watch, read_scans);
        self.report.rollouts = rollouts;
        self.report.scans = found;
        for (name, scan) in &self.report.scans {
            self.runner
                .print_untrusted(&format!("scan: `{name}`: {}", scan.headline()));
        }
    }

    async fn evidence(&mut self) {
        let (Some(aws), Some(d)) = (&self.services.aws, self.deploy_settings()) else {
            return;
        };
        explain_rollouts(
            self.runner,
            aws,
            self.cancel,
            d,
            &self.watches,
            &mut self.report.rollouts,
        )
        .await;
    }

    /// Each consumer whose rollout failed or was rolled back runs its previous task definition
    /// while the state holds the failed one; the next plan would roll the failed image out
    /// again. Its previous entry goes back through Terraform, with a hold that keeps it there.
    async fn restore(&mut self) {
        let failed: Vec<(String, &'static str)> = self
            .report
            .rollouts
            .iter()
            .filter_map(|(n, v)| match v.kind {
                VerdictKind::RolledBack => Some((n.clone(), entries::ROLLED_BACK)),
                VerdictKind::Failed => Some((n.clone(), entries::FAILED)),
                _ => None,
            })
            .collect();
        if failed.is_empty() || self.infra_stopped() {
            return;
        }
        let Some(infra) = self.report.infra.clone() else {
            return;
        };
        let Some(after) = infra.after.clone() else {
            return;
        };
        let Some(aws) = &self.services.aws else {
            return;
        };
        let at = now();
        let mut entries_back: BTreeMap<String, Value> = BTreeMap::new();
        for (name, verdict) in &failed {
            let (Some(previous), Some(now_applied)) = (infra.before.get(name), after.get(name))
            else {
                self.runner.warning(&format!(
                    "`{name}` was new: there is no previous entry to put it back on, and ECS has no earlier task definition to run"
                ));
                continue;
            };
            let Some(mut e) = vars::kept_entry(previous, None) else {
                self.report.restores.insert(
                    name.clone(),
                    Restore {
                        failed_image: now_applied.image.clone(),
                        image: previous.image.clone(),
                        verdict: None,
                        error: Some("the root module's `consumers` output does not give back its previous `config`".into()),
                        remembered: false,
                    },
                );
                continue;
            };
            let failed_entry = now_applied.config.clone().unwrap_or(Value::Null);
            let fingerprint = self
                .plan
                .get(name)
                .filter(|c| c.status != Status::Held)
                .and_then(|c| c.fingerprint.as_ref())
                .map(|f| f.hex().to_string());
            let hold = Hold {
                image: now_applied.image.clone(),
                fingerprint,
                settings: entries::settings_digest(&failed_entry),
                verdict: (*verdict).to_string(),
                at: at.clone(),
            };
            e[entries::HOLD_KEY] = serde_json::to_value(&hold).unwrap_or(Value::Null);
            entries_back.insert(name.clone(), e);
            self.report.restores.insert(
                name.clone(),
                Restore {
                    failed_image: now_applied.image.clone(),
                    image: previous.image.clone(),
                    verdict: None,
                    error: None,
                    remembered: false,
                },
            );
        }
        if entries_back.is_empty() {
            return;
        }
        let _g = self.runner.group(&format!(
            "putting {} back on the previous entry",
            entries_back
                .keys()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let s = self.settings;
        let variables = vars::from_applied(
            s.project.as_str(),
            &s.environment,
            &aws.region,
            &after,
            &entries_back,
        );
        let known: BTreeSet<String> = after.keys().cloned().collect();
        let restored = match (self.session.as_mut(), self.prepared.clone()) {
            (Some(session), Some(prepared)) => {
                match session.plan(&prepared, &variables, &known).await {
                    Ok(planned) if !planned.guarded.is_empty() => {
                        Err(InfraError::DestroyGuard(planned.guarded).to_string())
                    }
                    Ok(_) => session.apply().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            _ => Err("Terraform is not ready".to_string()),
        };
        let applied = match restored {
            Ok(a) => a,
            Err(why) => {
                for name in entries_back.keys() {
                    if let Some(r) = self.report.restores.get_mut(name) {
                        r.error = Some(format!(
                            "{why}; the state still names the failed image, so the next deploy would roll it out again"
                        ));
                    }
                }
                return;
            }
        };
        let back = match applied.after {
            Ok(back) => back,
            Err(e) => {
                for name in entries_back.keys() {
                    if let Some(r) = self.report.restores.get_mut(name) {
                        r.error = Some(format!("applied, but could not be read back: {e}"));
                    }
                }
                return;
            }
        };
        let watches: Vec<rollout::Watch> = back
            .iter()
            .filter(|(n, a)| {
                entries_back.contains_key(*n)
                    && after
                        .get(*n)
                        .is_none_or(|b| b.task_definition != a.task_definition)
            })
            .map(|(n, a)| rollout::Watch {
                consumer: n.clone(),
                cluster: a.cluster.clone(),
                service: a.service.clone(),
                task_definition: a.task_definition.clone(),
                since: applied.started,
            })
            .collect();
        if let (Some(d), false) = (self.deploy_settings(), watches.is_empty()) {
            let verdicts =
                watch_rollouts(self.runner, aws.deployer.as_ref(), d, &watches, self.cancel).await;
            for (name, v) in verdicts {
                if let Some(r) = self.report.restores.get_mut(&name) {
                    r.verdict = Some(v);
                }
            }
        }
        for (name, r) in self.report.restores.iter_mut() {
            if r.error.is_some() {
                continue;
            }
            r.remembered = back
                .get(name)
                .and_then(|a| a.hold())
                .is_some_and(|h| h.image == r.failed_image);
            if !r.remembered {
                self.runner.warning(&format!(
                    "`{name}` is back on its previous image, but the root module cannot remember that it is held there (its `consumers` variable has no `hold` attribute, or its output no `config`): the next deploy rolls out the failed image again; declare `hold` as the bundled module does"
                ));
            }
        }
        if let Some(infra) = self.report.infra.as_mut() {
            infra.after = Some(back);
        }
    }

    async fn report(&mut self) {
        self.report.cancelled = self.cancel.reason();
        if self.verb == Verb::Nothing {
            return self.nothing_to_do();
        }
        let runner = self.runner;
        let settings = self.settings;
        let decided = outcome::outcome(&Facts {
            verb: self.verb,
            plan: &self.plan,
            run: &self.report,
            cancelled: self.report.cancelled.as_deref(),
            report_errors: &[],
        });
        let verb = match self.verb {
            Verb::Plan => "plan",
            Verb::Deploy => "deploy",
            Verb::Rollback => "rollback",
            Verb::Nothing => "run",
        };
        let h = ReportHeader {
            plan_digest: (self.verb != Verb::Rollback).then(|| self.plan.digest()),
            headline: decided.headline.clone(),
            failed: decided.result == outcome::RunResult::Failure,
            ..header(settings, verb, self.cancel)
        };
        let run = (self.verb != Verb::Plan).then_some(&self.report);
        let infra = self.report.infra.as_ref();
        // The log: the table, the annotations, the report.
        if self.verb != Verb::Rollback {
            runner.print_untrusted(&report::table::table(&self.plan, run));
            annotate(&self.plan, runner, run.is_some());
        }
        if let Some(i) = infra {
            annotate_infra(i, runner);
        }
        if let Some(why) = &self.rollback_refused {
            runner.annotate(&Annotation::new(Level::Error, why.clone()).title("rollback"));
        }
        for (name, r) in &self.report.restores {
            if let Some(e) = &r.error {
                runner.error(&format!(
                    "`{name}` could not be put back on its previous entry: {e}"
                ));
            }
        }
        let (comment, summary) = match self.verb {
            Verb::Rollback => {
                let md = report::markdown::rollback(&self.report, &h);
                (md.clone(), md)
            }
            _ => (
                report::markdown::comment(&self.plan, run, infra, &h),
                report::markdown::summary(&self.plan, run, infra, &h),
            ),
        };
        let output_file = match &settings.action {
            Action::Plan(p) => p.output.as_deref(),
            _ => None,
        };
        match output_file {
            Some(path) => match std::fs::write(path, &comment) {
                Ok(()) => runner.print(&format!("report written to {}", path.display())),
                Err(e) => self.report_errors.push(format!(
                    "could not write the report to `{}`: {e}",
                    path.display()
                )),
            },
            None => {
                let _g = runner.group(if self.verb == Verb::Plan {
                    "pull request comment preview"
                } else {
                    "report"
                });
                runner.print_untrusted(&comment);
            }
        }
        if let Err(e) = runner.append_summary(&summary) {
            self.report_errors.push(e.to_string());
        }
        // The outcome again, now that what could not be written is known.
        let decided = outcome::outcome(&Facts {
            verb: self.verb,
            plan: &self.plan,
            run: &self.report,
            cancelled: self.report.cancelled.as_deref(),
            report_errors: &self.report_errors,
        });
        for e in &self.report_errors {
            runner.error(e);
        }
        // GitHub: what is open is closed first (after a signal the runner does not wait long).
        let mut comment_url = None;
        if let Some(gh) = &self.services.github {
            let gh = gh.as_ref();
            let terraform_failed = self.infra_stopped();
            let plan_run = (self.verb != Verb::Plan).then_some(&self.report);
            if self.verb != Verb::Rollback {
                self.opened
                    .complete_checks(
                        settings,
                        runner,
                        gh,
                        &self.plan,
                        plan_run,
                        self.report.cancelled.as_deref(),
                        terraform_failed,
                        &decided.headline,
                        &decided.failed,
                    )
                    .await;
            }
            self.opened
                .finish_deployment(
                    settings,
                    runner,
                    gh,
                    decided.result == outcome::RunResult::Success
                        || decided.result == outcome::RunResult::NothingToDeploy,
                    &decided.headline,
                )
                .await;
            if self.verb != Verb::Rollback {
                let digest = self.plan.digest();
                comment_url = github::comment(
                    settings,
                    runner,
                    gh,
                    &comment,
                    self.plan.has_changes(),
                    (self.verb == Verb::Deploy).then_some(digest.as_str()),
                )
                .await;
            }
        }
        let images: BTreeMap<String, String> = match self.verb {
            Verb::Rollback => self
                .report
                .infra
                .iter()
                .flat_map(|i| &i.rollbacks)
                .map(|(n, b)| (n.clone(), b.to.clone()))
                .collect(),
            _ => self
                .report
                .images
                .iter()
                .filter_map(|(n, r)| Some((n.clone(), r.image.clone()?)))
                .collect(),
        };
        let mut outputs = Outputs::of(&self.plan, &self.report, &decided, images);
        outputs.comment_url = comment_url.unwrap_or_default();
        if let Err(e) = outputs.write(runner) {
            runner.error(&format!("the step's outputs could not be written: {e}"));
            self.report_errors.push(e.to_string());
        }
        let code = if self.report_errors.is_empty() || self.cancel.is_cancelled() {
            decided.code
        } else {
            super::EXIT_FAILED
        };
        self.outcome = Some(Outcome { code, ..decided });
    }

    /// The event leaves nothing to do: say so, and set every output, empty.
    fn nothing_to_do(&mut self) {
        let reason = match &self.settings.action {
            Action::Nothing { reason } => reason.clone(),
            _ => String::new(),
        };
        let runner = self.runner;
        runner.notice(&format!("nothing to do: {reason}"));
        let mut code = 0;
        if let Err(e) = runner.append_summary(&format!(
            "{}\n## cdc-deploy: `{}` → `{}`\n\nNothing to do: {}\n",
            report::comment_marker(&header(self.settings, "run", &Cancel::new())),
            self.settings.project,
            self.settings.environment,
            report::md::text(&reason)
        )) {
            runner.error(&e.to_string());
            code = super::EXIT_FAILED;
        }
        if let Err(e) = Outputs::empty(outcome::RunResult::NothingToDeploy).write(runner) {
            runner.error(&format!("the step's outputs could not be written: {e}"));
            code = super::EXIT_FAILED;
        }
        self.outcome = Some(Outcome {
            code,
            result: outcome::RunResult::NothingToDeploy,
            headline: format!("nothing to do: {reason}"),
            deployed: Vec::new(),
            failed: BTreeMap::new(),
            held: Vec::new(),
        });
    }
}

/// Now, as RFC 3339 in UTC: `2026-12-04T21:30:00Z`.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
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
    }
}

/// Turn every finding of the plan into an annotation, and, when nothing was applied, every
/// failed look-up (a deploy reports those with the consumer's other failures).
pub fn annotate(plan: &Plan, runner: &Runner, applied: bool) {
    for c in &plan.consumers {
        for d in &c.diagnostics {
            runner.annotate(&d.annotation());
        }
    }
    if !applied {
        let failed = plan.consumers.iter().filter_map(|c| {
            let f = c.lookup_failure.as_ref()?;
            Some((c.name.as_str(), "the look-up failed", f.to_string()))
        });
        for a in crate::gha::grouped_errors(failed) {
            runner.annotate(&a);
        }
    }
    for d in &plan.warnings {
        runner.annotate(&d.annotation());
    }
    for s in &plan.skipped {
        runner.annotate(
            &Annotation::new(Level::Warning, s.reason.clone()).file(s.display_dir.clone(), None),
        );
    }
    for c in plan.consumers.iter().filter(|c| c.status == Status::Held) {
        if let Some(r) = c.reasons.first() {
            runner.notice(&format!("`{}` is {r}", c.name));
        }
    }
}

/// Say what the Terraform stage stopped on, and which consumers kept their running entry.
fn annotate_infra(infra: &InfraReport, runner: &Runner) {
    for (name, kept) in &infra.kept {
        match kept {
            Kept::Running { reason, image } => runner.warning(&format!(
                "`{name}` keeps its running entry (`{image}`): {reason}"
            )),
            Kept::LeftOut { reason } => {
                runner.notice(&format!("`{name}` is left out of Terraform: {reason}"))
            }
        }
    }
    if let Some(e) = &infra.error {
        // Terraform's own diagnostics were streamed in its log group; the report repeats them.
        runner.annotate(&Annotation::new(Level::Error, e.to_string()).title("terraform"));
    }
}

/// `(consumer, repository, digest)` of each image this run pushed.
fn pushed_images(plan: &Plan, run: &RunReport) -> Vec<(String, String, String)> {
    run.images
        .iter()
        .filter(|(_, r)| r.outcome == crate::apply::ImageOutcome::Built)
        .filter_map(|(name, r)| {
            let repository = plan.get(name)?.resource_name.clone()?;
            Some((name.clone(), repository, r.digest.clone()?))
        })
        .collect()
}

/// Watch `watches` to their verdicts, unless `wait` is off.
async fn watch_rollouts(
    runner: &Runner,
    deployer: &dyn crate::clients::ecs::Deployer,
    d: &DeploySettings,
    watches: &[rollout::Watch],
    cancel: &Cancel,
) -> BTreeMap<String, rollout::Verdict> {
    if !d.wait || watches.is_empty() {
        return BTreeMap::new();
    }
    let _g = runner.group(&format!("rollouts of {} services", watches.len()));
    rollout::watch(
        deployer,
        watches,
        WatchSettings {
            timeout: d.wait_timeout,
            ..WatchSettings::default()
        },
        cancel,
        &|line: &str| runner.print_untrusted(line),
    )
    .await
}

/// Gather the evidence of every rollout that did not succeed, and log it.
async fn explain_rollouts(
    runner: &Runner,
    aws: &super::services::AwsServices,
    cancel: &Cancel,
    d: &DeploySettings,
    watches: &[rollout::Watch],
    verdicts: &mut BTreeMap<String, rollout::Verdict>,
) {
    if verdicts.values().all(|v| v.kind == VerdictKind::Succeeded) {
        return;
    }
    let _g = runner.group("evidence of the rollouts that did not succeed");
    let gather = rollout::gather_evidence(
        aws.deployer.as_ref(),
        aws.logs.as_ref(),
        watches,
        verdicts,
        EvidenceSettings {
            log_lines: d.log_lines,
            ..EvidenceSettings::default()
        },
    );
    // A signal stops the gathering too: the report must be written before the runner gives up.
    if crate::cancel::or_cancelled(cancel, gather).await.is_err() {
        runner.print("evidence: not gathered, the run was cancelled");
        return;
    }
    for line in rollout::evidence_lines(verdicts) {
        runner.print_untrusted(&line);
    }
}
