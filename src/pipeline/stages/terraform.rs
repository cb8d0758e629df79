//! The Terraform stages: the root module checked, what is applied read before anything is
//! built, the rollback's targets resolved, the saved plan made and applied, and a consumer whose
//! rollout failed put back on its previous entry.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::rollouts::watch_rollouts;
use super::{now, Run, Verb};
use crate::apply::infra::vars::{self, AppliedConsumer, Kept, VariableInputs, Variables};
use crate::apply::infra::{self, InfraError, InfraStage, Session};
use crate::apply::rollback;
use crate::apply::rollout;
use crate::config::{Action, Settings};
use crate::pipeline::services::Services;
use crate::pipeline::RunError;
use crate::plan;
use crate::plan::entries::{self, Hold};
use crate::plan::terraform::InfraPlan;

impl<'a> Run<'a> {
    pub(super) async fn prepare(&mut self) -> Result<(), RunError> {
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

    pub(super) fn infra_stage(&self) -> Option<InfraStage<'a>> {
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

    pub(super) async fn read_applied(&mut self) -> Result<(), RunError> {
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

    pub(super) async fn resolve_rollback(&mut self) {
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
    pub(super) fn variables(&self) -> Option<Variables> {
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

    pub(super) async fn terraform_plan(&mut self) {
        if self.infra_stopped() {
            return;
        }
        let (Some(mut variables), Some(prepared)) = (self.variables(), self.prepared.clone())
        else {
            return;
        };
        let digest = self.with_inputs_digest(&prepared, &mut variables);
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
        if let Some(why) = self.nothing_to_plan(&variables, &before, digest.as_deref()) {
            self.runner.print(&format!("terraform: no plan: {why}"));
            let infra = self.infra();
            infra.plan = Some(InfraPlan::default());
            infra.not_run = Some(why);
            if self.verb != Verb::Rollback {
                let plan = std::mem::take(&mut self.plan);
                self.plan = plan::with_infra_not_run(plan);
            }
            return;
        }
        if let Err(e) = self.adopt_log_groups(&prepared, &variables, &before).await {
            self.infra().error = Some(e);
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
        let mut planned = match planned {
            Ok(p) => p,
            Err(e) => {
                self.infra().error = Some(e);
                return;
            }
        };
        plan::terraform::explain_renames(&mut planned.guarded, &self.plan.renames);
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

    /// The inputs digest of this run, added to `variables` for a root module that carries it.
    /// `None` (said once) when a file of the root module cannot be read: the run plans as usual.
    fn with_inputs_digest(
        &mut self,
        prepared: &infra::Prepared,
        variables: &mut Variables,
    ) -> Option<String> {
        match infra::add_inputs_digest(&self.settings.terraform, prepared, variables) {
            Ok(digest) => digest,
            Err(e) => {
                self.runner
                    .warning(&format!("Terraform plans on every run: {e}"));
                None
            }
        }
    }

    /// Why no plan is needed, when none is: every consumer's entry equals the one applied, and
    /// the root module and its inputs are those applied (`digest`, which
    /// [`Self::with_inputs_digest`] gives only for a root that carries it, equal to the one the
    /// state was applied with), unless `terraform-refresh: always` or a rollback.
    fn nothing_to_plan(
        &self,
        variables: &Variables,
        before: &BTreeMap<String, AppliedConsumer>,
        digest: Option<&str>,
    ) -> Option<String> {
        if self.settings.terraform.refresh_always || self.verb == Verb::Rollback {
            return None;
        }
        let applied_digest = self.session.as_ref()?.applied_digest()?;
        if digest? != applied_digest {
            return None;
        }
        if variables.consumers().iter().ne(before.keys()) {
            return None;
        }
        let all_equal = before.iter().all(|(name, a)| {
            let Some(mut config) = a.config.clone() else {
                return false;
            };
            config["image"] = Value::String(a.image.clone());
            variables
                .entry(name)
                .is_some_and(|w| entries::same_entry(w, &config))
        });
        all_equal.then(|| {
            format!(
                "the {} entries equal the applied ones and the root module and its inputs are those applied (`terraform-refresh: always` plans anyway)",
                before.len()
            )
        })
    }

    /// A consumer new to Terraform whose log group is still there, kept by `skip_destroy` from
    /// an earlier consumer of the same name: the generated root imports it (one
    /// `DescribeLogGroups` page per 50 groups, only when a consumer is new); a root of the team's
    /// own is told the `import` block to add.
    async fn adopt_log_groups(
        &mut self,
        prepared: &infra::Prepared,
        variables: &Variables,
        before: &BTreeMap<String, AppliedConsumer>,
    ) -> Result<(), InfraError> {
        let bundled = prepared.bundled();
        if bundled {
            // What an earlier run adopted is in the state now.
            infra::root::write_imports(prepared.root_dir(), &[]).map_err(InfraError::Root)?;
        }
        let new: Vec<String> = variables
            .consumers()
            .into_iter()
            .filter(|n| !before.contains_key(n))
            .collect();
        let (Some(aws), false) = (&self.services.aws, new.is_empty()) else {
            return Ok(());
        };
        let text = |k: &str| variables.json[k].as_str().unwrap_or_default().to_string();
        let (project, environment) = (text("project_name"), text("environment"));
        let prefix = infra::root::log_group(&project, &environment, "");
        let existing = match aws.logs.groups(&prefix).await {
            Ok(g) => g,
            Err(e) => {
                self.runner.warning(&format!(
                    "could not look for log groups kept from earlier consumers under `{prefix}` ({e}): a consumer added again under an earlier name fails at apply with `ResourceAlreadyExistsException`; grant `logs:DescribeLogGroups`"
                ));
                return Ok(());
            }
        };
        let adopt: Vec<(String, String)> = new
            .into_iter()
            .map(|n| {
                let g = infra::root::log_group(&project, &environment, &n);
                (n, g)
            })
            .filter(|(_, g)| existing.contains(g))
            .collect();
        for (name, group) in &adopt {
            if bundled {
                self.runner.print_untrusted(&format!(
                    "terraform: `{name}` adopts the log group `{group}` kept from an earlier consumer of that name (imported, not created)"
                ));
            } else {
                self.runner.warning(&format!(
                    "the log group `{group}` of an earlier consumer `{name}` still exists; if your root module creates it, add to it:\n{}",
                    infra::root::imports(std::slice::from_ref(&(name.clone(), group.clone())))
                ));
            }
        }
        if bundled {
            infra::root::write_imports(prepared.root_dir(), &adopt).map_err(InfraError::Root)?;
        }
        Ok(())
    }

    pub(super) async fn terraform_apply(&mut self) {
        if self.infra_stopped() {
            return;
        }
        let Some(planned) = self.report.infra.as_ref().and_then(|i| i.plan.clone()) else {
            return;
        };
        if planned.is_empty() {
            if self
                .report
                .infra
                .as_ref()
                .is_none_or(|i| i.not_run.is_none())
            {
                self.runner
                    .print("terraform: the plan has no changes; nothing to apply");
            }
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

    /// Each consumer whose rollout failed or was rolled back runs its previous task definition
    /// while the state holds the failed one; the next plan would roll the failed image out
    /// again. Its previous entry goes back through Terraform, with a hold that keeps it there.
    pub(super) async fn restore(&mut self) {
        if self.infra_stopped() || self.cancel.is_cancelled() {
            return;
        }
        let (Some(infra), Some(aws)) = (self.report.infra.clone(), &self.services.aws) else {
            return;
        };
        let Some(after) = infra.after.clone() else {
            return;
        };
        let restoring = crate::apply::restore::entries(
            &self.report.rollouts,
            &infra.before,
            &after,
            &self.plan,
            &now(),
        );
        for name in &restoring.new {
            self.runner.warning(&format!(
                "`{name}` was new: there is no previous entry to put it back on, and ECS has no earlier task definition to run; it is held on the image that failed, so later deploys do not roll it out again until its folder changes"
            ));
        }
        self.report.restores = restoring.restores;
        if restoring.entries.is_empty() {
            return;
        }
        let names: Vec<String> = restoring.entries.keys().map(|n| format!("`{n}`")).collect();
        let _g = self.runner.group(&format!(
            "putting {} back on the previous entry",
            names.join(", ")
        ));
        let s = self.settings;
        let mut variables = vars::from_applied(
            s.project.as_str(),
            &s.environment,
            &aws.region,
            &after,
            &restoring.entries,
        );
        if let Some(prepared) = self.prepared.clone() {
            self.with_inputs_digest(&prepared, &mut variables);
        }
        let applied = match self.plan_and_apply(&variables, &after).await {
            Ok(applied) => applied,
            Err(why) => {
                let why = format!(
                    "{why}; the state still names the failed image, so the next deploy that plans rolls it out again; `mode: rollback` with `consumers` naming it puts it back and holds it"
                );
                self.restores_failed(&restoring.entries, &why);
                return;
            }
        };
        let back = match applied.after {
            Ok(back) => back,
            Err(e) => {
                let why = format!("applied, but could not be read back: {e}");
                self.restores_failed(&restoring.entries, &why);
                return;
            }
        };
        self.watch_restores(&restoring.entries, &after, &back, applied.started)
            .await;
        for (name, r) in self.report.restores.iter_mut() {
            if r.error.is_some() {
                continue;
            }
            r.remembered = crate::apply::restore::remembered(&back, name, &r.failed_image);
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

    /// Plan `variables` and apply the saved plan, in the run's Terraform session; the destroy
    /// guard stops it as it stops a deploy.
    pub(super) async fn plan_and_apply(
        &mut self,
        variables: &Variables,
        applied: &BTreeMap<String, AppliedConsumer>,
    ) -> Result<infra::Applied, String> {
        let known: BTreeSet<String> = applied.keys().cloned().collect();
        let (Some(session), Some(prepared)) = (self.session.as_mut(), self.prepared.as_ref())
        else {
            return Err("Terraform is not ready".into());
        };
        let planned = session
            .plan(prepared, variables, &known)
            .await
            .map_err(|e| e.to_string())?;
        if !planned.guarded.is_empty() && !self.settings.terraform.allow_destroy {
            return Err(InfraError::DestroyGuard(planned.guarded).to_string());
        }
        session.apply().await.map_err(|e| e.to_string())
    }

    pub(super) fn restores_failed(&mut self, entries: &BTreeMap<String, Value>, why: &str) {
        for name in entries.keys() {
            if let Some(r) = self.report.restores.get_mut(name) {
                r.error = Some(why.to_string());
            }
        }
    }

    /// Watch the rollouts the restore started (the previous image, which ECS already runs).
    pub(super) async fn watch_restores(
        &mut self,
        entries: &BTreeMap<String, Value>,
        before: &BTreeMap<String, AppliedConsumer>,
        back: &BTreeMap<String, AppliedConsumer>,
        since: std::time::SystemTime,
    ) {
        let (Some(aws), Some(d)) = (&self.services.aws, self.deploy_settings()) else {
            return;
        };
        let watches: Vec<rollout::Watch> = back
            .iter()
            .filter(|(n, a)| {
                entries.contains_key(*n)
                    && before
                        .get(*n)
                        .is_none_or(|b| b.task_definition != a.task_definition)
            })
            .map(|(n, a)| rollout::Watch {
                consumer: n.clone(),
                cluster: a.cluster.clone(),
                service: a.service.clone(),
                task_definition: a.task_definition.clone(),
                before: before.get(n).map(|b| b.task_definition.clone()),
                since,
            })
            .collect();
        if watches.is_empty() {
            return;
        }
        let verdicts =
            watch_rollouts(self.runner, aws.deployer.as_ref(), d, &watches, self.cancel).await;
        for (name, v) in verdicts {
            if let Some(r) = self.report.restores.get_mut(&name) {
                r.verdict = Some(v);
            }
        }
    }
}
