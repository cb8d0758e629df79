//! Planning: from what was discovered, each consumer's fingerprint and what was observed in AWS,
//! decide per consumer whether it is new, changed or unchanged, and the steps the apply stages
//! take for it.
//!
//! Pure: no I/O, no clock, no environment. The same inputs always give the same plan, which is
//! what `plan`, the pull request comment and the tests look at. The apply stages perform exactly
//! its steps and report what happened beside it; they never change it.

pub mod entries;
pub mod shards;
pub mod terraform;

use std::collections::BTreeMap;

use crate::clients::ecr::{EcrError, RepositoryDrift, RepositoryState};
use crate::clients::registry::RegistryError;
use crate::config::event::CommitSha;
use crate::consumers::config::ConsumerSettings;
use crate::consumers::discovery::{ConsumerSpec, Discovery, SkippedFolder};
use crate::consumers::select::Selection;
use crate::context::fingerprint::{Fingerprint, FingerprintReport};
use crate::diagnostics::Diagnostic;
use crate::observe::{ImageLookup, Observation, RegistryImage, RepositoryLookup};
use entries::{AppliedConsumer, Hold};
use terraform::{InfraPlan, Totals};

/// A consumer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Changed,
    Unchanged,
    /// Its last rollout failed and it runs its previous image: nothing is done for it until its
    /// folder changes or a deploy's `consumers` names it.
    Held,
    /// Its look-up in AWS failed: nothing is known, nothing is done.
    Unknown,
    Invalid,
    /// Applied before, and its folder is gone: Terraform would destroy its resources.
    Removed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::New,
        Status::Changed,
        Status::Unchanged,
        Status::Held,
        Status::Unknown,
        Status::Invalid,
        Status::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
            Status::Held => "held",
            Status::Unknown => "unknown",
            Status::Invalid => "invalid",
            Status::Removed => "removed",
        }
    }
}

/// One thing the apply stages do for a consumer, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Create the ECR repository with its scanning, tag immutability, tags and lifecycle policy.
    CreateRepository,
    /// Put back the repository settings that drifted (tag mutability, scan on push).
    ReconcileRepository,
    Build,
    /// Push the image under its fingerprint tag, and the commit tag when there is a commit.
    Push,
    /// Apply its infrastructure changes (Terraform).
    Apply,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateRepository => "create repository",
            Step::ReconcileRepository => "reconcile repository",
            Step::Build => "build",
            Step::Push => "push",
            Step::Apply => "terraform apply",
        }
    }
}

/// Why a consumer could not be planned against AWS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupFailure {
    #[error("could not look up its repository: {0}")]
    Repository(EcrError),
    #[error("could not look up its image: {0}")]
    Image(RegistryError),
}

/// The plan for one consumer.
#[derive(Clone, Debug)]
pub struct ConsumerPlan {
    /// The folder name.
    pub name: String,
    /// `<project>-<consumer>`: the ECR repository (and, later, the service).
    pub resource_name: Option<String>,
    pub status: Status,
    /// Why the status is what it is, for the report.
    pub reasons: Vec<String>,
    pub steps: Vec<Step>,
    pub display_dir: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    pub context_files: usize,
    pub context_bytes: u64,
    pub settings: Option<ConsumerSettings>,
    pub diagnostics: Vec<Diagnostic>,
    /// The image the registry already holds under the fingerprint: what the consumer runs when
    /// nothing is built.
    pub existing_image: Option<RegistryImage>,
    /// What [`Step::ReconcileRepository`] puts back.
    pub repository_drift: Vec<RepositoryDrift>,
    /// The tags its existing repository leaves mutable (exclusion filters), kept by a reconcile.
    pub repository_mutable_tags: Vec<String>,
    pub lookup_failure: Option<LookupFailure>,
    /// What Terraform's plan changes for this consumer; `None` when Terraform did not plan.
    pub infra: Option<Totals>,
    /// The image its applied entry runs, when what is applied was read.
    pub applied_image: Option<String>,
    /// The settings in which its entry differs from the applied one (`` `cpu` 256 → 512 ``).
    pub config_changes: Vec<String>,
    /// Why it is held (status `held`), or was until this run: its applied entry's record.
    pub hold: Option<Hold>,
}

impl ConsumerPlan {
    /// A consumer with `status` and nothing else known yet.
    pub fn new(name: &str, status: Status) -> Self {
        ConsumerPlan {
            name: name.to_string(),
            resource_name: None,
            status,
            reasons: Vec::new(),
            steps: Vec::new(),
            display_dir: None,
            fingerprint: None,
            context_files: 0,
            context_bytes: 0,
            settings: None,
            diagnostics: Vec::new(),
            existing_image: None,
            repository_drift: Vec::new(),
            repository_mutable_tags: Vec::new(),
            lookup_failure: None,
            infra: None,
            applied_image: None,
            config_changes: Vec::new(),
            hold: None,
        }
    }

    pub fn has(&self, step: Step) -> bool {
        self.steps.contains(&step)
    }

    /// The status as people read it. Without a Terraform plan the configuration is not compared
    /// with what runs, so an unchanged image is only that: "image unchanged".
    pub fn status_label(&self) -> &'static str {
        match self.status {
            Status::Unchanged if self.infra.is_none() && self.applied_image.is_none() => {
                "image unchanged"
            }
            s => s.as_str(),
        }
    }
}

/// The whole plan.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// `true` when nothing was observed: every consumer is new.
    pub offline: bool,
    pub commit: Option<CommitSha>,
    pub consumers: Vec<ConsumerPlan>,
    pub skipped: Vec<SkippedFolder>,
    pub warnings: Vec<Diagnostic>,
    /// Terraform's plan changes something, a consumer's resources or shared ones (the cluster,
    /// the network): an apply would not be empty.
    pub infra_pending: bool,
    /// The `consumers` option, shown, when it restricts the run; and the consumer folders it
    /// leaves out, which keep what is applied.
    pub selection: Option<String>,
    pub unselected: Vec<String>,
    /// Whether each consumer's entry was compared with what is applied ([`with_applied`]).
    pub compared: bool,
    /// Whether the consumers were discovered at all (a run cancelled first never looks).
    pub discovered: bool,
    /// Applied consumers whose folder is gone paired with a new folder of the same settings:
    /// likely renames, `(old, new)`.
    pub renames: Vec<(String, String)>,
}

impl Plan {
    pub fn count(&self, status: Status) -> usize {
        self.consumers.iter().filter(|c| c.status == status).count()
    }

    pub fn names(&self, status: Status) -> Vec<&str> {
        self.consumers
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The plan as the `plan` output gives it: each consumer's status, why, its steps, its
    /// fingerprint, the image the registry holds for it, and Terraform's changes when it planned.
    pub fn to_json(&self) -> serde_json::Value {
        let consumers: Vec<serde_json::Value> = self
            .consumers
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "status": c.status,
                    "reasons": c.reasons,
                    "steps": c.steps,
                    "fingerprint": c.fingerprint.as_ref().map(|f| f.hex().to_string()),
                    "digest": c.existing_image.as_ref().map(|i| i.digest.clone()),
                    "terraform": c.infra.as_ref().map(|t| serde_json::json!({
                        "create": t.create,
                        "update": t.update,
                        "replace": t.replace,
                        "destroy": t.destroy,
                    })),
                })
            })
            .collect();
        serde_json::json!({
            "commit": self.commit.as_ref().map(|c| c.to_string()),
            "offline": self.offline,
            "has_changes": self.has_changes(),
            "infrastructure_pending": self.infra_pending,
            "consumers": consumers,
            "skipped": self.skipped.iter().map(|s| &s.display_dir).collect::<Vec<_>>(),
        })
    }

    /// A short digest of what the plan does: each consumer's name, status, steps, fingerprint
    /// and Terraform changes (not the commit, not the wording). A deploy whose plan has the
    /// digest the pull request's comment showed applies what was reviewed.
    pub fn digest(&self) -> String {
        let shown: Vec<serde_json::Value> = self
            .consumers
            .iter()
            .map(|c| {
                serde_json::json!([
                    c.name,
                    c.status,
                    c.steps,
                    c.fingerprint.as_ref().map(|f| f.hex().to_string()),
                    c.infra
                        .as_ref()
                        .map(|t| [t.create, t.update, t.replace, t.destroy]),
                ])
            })
            .collect();
        let text = serde_json::json!([shown, self.infra_pending]).to_string();
        blake3::hash(text.as_bytes()).to_hex()[..12].to_string()
    }

    /// Whether anything would be built, created, changed or removed. A consumer whose look-up
    /// failed counts: it may have changed, and a later step gated on this must not skip it
    /// silently.
    pub fn has_changes(&self) -> bool {
        self.infra_pending
            || self.consumers.iter().any(|c| {
                matches!(
                    c.status,
                    Status::New | Status::Changed | Status::Unknown | Status::Removed
                )
            })
    }

    pub fn get(&self, name: &str) -> Option<&ConsumerPlan> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// With the build cache off (`build-cache: false`), a repository whose tags are all
    /// immutable is as it must be: no consumer reconciles it for the cache's sake.
    pub fn keep_cache_tags_immutable(&mut self) {
        for c in &mut self.consumers {
            if !c
                .repository_drift
                .contains(&RepositoryDrift::CacheTagsImmutable)
            {
                continue;
            }
            let before = drift_reason(&c.repository_drift);
            c.repository_drift
                .retain(|d| *d != RepositoryDrift::CacheTagsImmutable);
            let at = c.reasons.iter().position(|r| *r == before);
            if c.repository_drift.is_empty() {
                c.steps.retain(|s| *s != Step::ReconcileRepository);
                if let Some(i) = at {
                    c.reasons.remove(i);
                }
            } else if let Some(i) = at {
                c.reasons[i] = drift_reason(&c.repository_drift);
            }
        }
    }
}

/// A consumer with the result of fingerprinting it.
pub struct Fingerprinted<'a> {
    pub spec: &'a ConsumerSpec,
    pub fingerprint: Result<FingerprintReport, Diagnostic>,
}

/// What an existing repository must look like, and where it does not. Tags must be immutable
/// but the build cache's (`cache-*`); an `IMMUTABLE` repository (made before the cache was kept)
/// gets that exclusion. An `IMMUTABLE_WITH_EXCLUSION` of someone's own is a deliberate choice
/// and is kept (without `cache-*` among its filters, the cache is not kept, and the build says so).
pub fn repository_drift(r: &RepositoryState) -> Vec<RepositoryDrift> {
    let mut drift = Vec::new();
    if !r.tag_mutability.starts_with("IMMUTABLE") {
        drift.push(RepositoryDrift::MutableTags);
    } else if r.tag_mutability == "IMMUTABLE" {
        drift.push(RepositoryDrift::CacheTagsImmutable);
    }
    if !r.scan_on_push {
        drift.push(RepositoryDrift::ScanOnPushOff);
    }
    let keep = format!("{}*", crate::clients::ecr::KEEP_TAG_PREFIX);
    if !r.mutable_tags.contains(&keep) {
        drift.push(RepositoryDrift::KeepTagsImmutable);
    }
    drift
}

/// Build the plan. `observed` is `None` offline.
pub fn plan(
    discovery: &Discovery,
    fingerprinted: &[Fingerprinted<'_>],
    observed: Option<&Observation>,
    commit: Option<&CommitSha>,
) -> Plan {
    let mut consumers: Vec<ConsumerPlan> = fingerprinted
        .iter()
        .map(|f| plan_one(f, observed))
        .collect();
    for inv in &discovery.invalid {
        consumers.push(ConsumerPlan {
            reasons: inv.diagnostics.iter().map(|d| d.message.clone()).collect(),
            display_dir: Some(inv.display_dir.clone()),
            diagnostics: inv.diagnostics.clone(),
            ..ConsumerPlan::new(&inv.name, Status::Invalid)
        });
    }
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    Plan {
        offline: observed.is_none(),
        commit: commit.cloned(),
        consumers,
        skipped: discovery.skipped.clone(),
        warnings: discovery.warnings.clone(),
        infra_pending: false,
        selection: discovery.selection.clone(),
        unselected: discovery.unselected.clone(),
        compared: false,
        discovered: true,
        renames: Vec::new(),
    }
}

const NEW_STEPS: [Step; 3] = [Step::CreateRepository, Step::Build, Step::Push];

fn plan_one(f: &Fingerprinted<'_>, observed: Option<&Observation>) -> ConsumerPlan {
    let spec = f.spec;
    let mut p = ConsumerPlan {
        resource_name: Some(spec.resource_name.clone()),
        display_dir: Some(spec.display_dir.clone()),
        settings: Some(spec.settings.clone()),
        ..ConsumerPlan::new(spec.name.as_str(), Status::New)
    };
    let report = match &f.fingerprint {
        Ok(r) => r,
        Err(d) => {
            p.status = Status::Invalid;
            p.reasons.push(d.message.clone());
            p.diagnostics.push(d.clone());
            return p;
        }
    };
    p.fingerprint = Some(report.fingerprint.clone());
    p.context_files = report.files;
    p.context_bytes = report.bytes;

    let Some(observed) = observed else {
        p.reasons.push(OFFLINE.into());
        p.steps = NEW_STEPS.to_vec();
        return p;
    };
    let Some(o) = observed.consumers.get(&spec.resource_name) else {
        p.reasons.push("it was not looked up".into());
        p.status = Status::Unknown;
        return p;
    };
    let repository = match &o.repository {
        RepositoryLookup::Failed(e) => {
            return unknown(p, LookupFailure::Repository(e.clone()));
        }
        RepositoryLookup::Missing => {
            p.reasons.push(NO_REPOSITORY.into());
            p.steps = NEW_STEPS.to_vec();
            return p;
        }
        RepositoryLookup::Found(r) => r,
    };
    let drift = repository_drift(repository);
    p.repository_mutable_tags = repository.mutable_tags.clone();
    let at = p.reasons.len();
    let mut p = match &o.image {
        ImageLookup::Failed(e) => unknown(p, LookupFailure::Image(e.clone())),
        ImageLookup::Present(image) => {
            p.status = Status::Unchanged;
            p.existing_image = Some(image.clone());
            p.reasons.push(IN_REGISTRY.into());
            p.reasons.push(NOT_COMPARED.into());
            p
        }
        ImageLookup::Absent { built_before: true } | ImageLookup::NotAsked => {
            p.status = Status::Changed;
            p.steps.extend([Step::Build, Step::Push]);
            p.reasons.push(NO_IMAGE.into());
            p
        }
        // A repository without any image built here was never deployed (a first deploy that
        // failed, or a repository made by hand): still new.
        ImageLookup::Absent {
            built_before: false,
        } => {
            p.status = Status::New;
            p.steps.extend([Step::Build, Step::Push]);
            p.reasons.push(NEVER_BUILT.into());
            p
        }
    };
    // A consumer that cannot be planned is not touched, its repository neither.
    if p.lookup_failure.is_some() {
        return p;
    }
    // The cache's exclusion matters only to a build: a repository whose image is not rebuilt is
    // left as it is (an upgrade does not touch every repository of the fleet at once).
    let builds = p.has(Step::Build);
    p.repository_drift = drift
        .into_iter()
        .filter(|d| builds || *d != RepositoryDrift::CacheTagsImmutable)
        .collect();
    if !p.repository_drift.is_empty() {
        p.steps.insert(0, Step::ReconcileRepository);
        p.reasons.insert(at, drift_reason(&p.repository_drift));
    }
    p
}

fn drift_reason(drift: &[RepositoryDrift]) -> String {
    let what: Vec<&str> = drift.iter().map(|d| d.describe()).collect();
    format!(
        "its repository drifted ({}); it is brought back in line",
        what.join(", ")
    )
}

/// Why a consumer has image work, said before the image stage runs; after it, what the stage
/// did is what is true.
const NO_REPOSITORY: &str = "its repository does not exist yet";
const NO_IMAGE: &str = "no image has this fingerprint: its build context changed";
const NEVER_BUILT: &str = "its repository holds no image built by cdc-deploy yet";
const IN_REGISTRY: &str = "an image with this fingerprint is in the registry";
const OFFLINE: &str = "offline: nothing was looked up, so everything is new";

/// Whether `reason` is about what the registry held when the plan was made, which the image
/// stage makes untrue (a repository it created, an image it built).
pub fn is_about_the_registry(reason: &str) -> bool {
    [NO_REPOSITORY, NO_IMAGE, NEVER_BUILT, IN_REGISTRY, OFFLINE].contains(&reason)
        || (reason.starts_with("its repository drifted (")
            && reason.ends_with("it is brought back in line"))
}

/// Said of an unchanged image until Terraform's plan compares the configuration.
const NOT_COMPARED: &str = "the configuration is not compared with what runs";

/// What is applied, as [`with_applied`] compares it.
pub struct Applied<'a> {
    /// The root module's `consumers` output, read without refreshing.
    pub entries: &'a BTreeMap<String, AppliedConsumer>,
    /// The `consumers` option: a held consumer it matches is tried again, and an applied
    /// consumer it does not match is not removed.
    pub selection: Option<&'a Selection>,
    /// The host images are referenced by (`<account>.dkr.ecr.<region>.amazonaws.com`).
    pub registry_host: &'a str,
}

/// The plan with each consumer's entry compared with the one applied: a consumer whose settings
/// differ is `changed` (before anything is built, and without Terraform), one never applied is
/// `new`, one whose last rollout failed and whose folder has not changed since is `held` (unless
/// `consumers` names it), and an applied consumer whose folder is gone is `removed`. Pure.
pub fn with_applied(mut plan: Plan, applied: &Applied<'_>) -> Plan {
    for c in &mut plan.consumers {
        if matches!(c.status, Status::Invalid | Status::Unknown) {
            continue;
        }
        let (Some(settings), Some(repository)) = (&c.settings, &c.resource_name) else {
            continue;
        };
        c.reasons.retain(|r| r != NOT_COMPARED);
        let Some(a) = applied.entries.get(&c.name) else {
            if c.status == Status::Unchanged {
                c.status = Status::New;
                c.reasons
                    .push("it is not applied yet: Terraform creates its service".into());
            }
            add_step(c, Step::Apply);
            continue;
        };
        c.applied_image = Some(a.image.clone());
        let image = c
            .existing_image
            .as_ref()
            .map(|i| format!("{}/{repository}@{}", applied.registry_host, i.digest));
        let wanted = entries::entry(settings, image.as_deref().unwrap_or_default());
        let digest = entries::settings_digest(&wanted);
        let named = applied.selection.is_some_and(|s| s.matches(&c.name));
        if let Some(hold) = a.hold() {
            if hold.matches(c.fingerprint.as_ref(), image.as_deref(), &digest) && !named {
                c.status = Status::Held;
                c.steps.clear();
                c.reasons = vec![held_reason(&c.name, &hold, &a.image)];
                c.hold = Some(hold);
                continue;
            }
            c.hold = Some(hold);
        }
        c.config_changes = a
            .config
            .as_ref()
            .map(|cfg| entries::differences(&wanted, cfg))
            .unwrap_or_default();
        if let Some(scale) = a.config.as_ref().and_then(entries::scale_of) {
            let mut carried = wanted.clone();
            c.reasons.push(if entries::carry_scale(&mut carried, a.config.as_ref()) {
                format!(
                    "it runs {} as `cdc-deploy scale` set on {}, kept until its `consumer.toml` count changes",
                    scale.describe(),
                    scale.day()
                )
            } else {
                format!(
                    "the {} `cdc-deploy scale` set on {} ends: its `consumer.toml` count changed",
                    scale.describe(),
                    scale.day()
                )
            });
        }
        let runs_other = image.as_ref().is_some_and(|i| *i != a.image);
        if c.status == Status::Unchanged {
            if !c.config_changes.is_empty() {
                c.status = Status::Changed;
                c.reasons.push(format!(
                    "its configuration changed: {}",
                    c.config_changes.join(", ")
                ));
            } else if runs_other {
                c.status = Status::Changed;
                c.reasons.push(format!(
                    "it runs `{}`, not the image of its folder, which this deploy puts back",
                    a.image
                ));
            } else if c.hold.is_none() {
                c.reasons
                    .push("its applied entry is the one its folder gives".into());
            }
        } else if !c.config_changes.is_empty() {
            c.reasons.push(format!(
                "its configuration changes too: {}",
                c.config_changes.join(", ")
            ));
        }
        if c.status != Status::Unchanged {
            add_step(c, Step::Apply);
            // Held until now: say why it is tried again.
            if let Some(hold) = &c.hold {
                c.reasons.push(format!(
                    "it was held since the {} of `{}` on {}; {}, so this deploy tries again",
                    hold.verdict_noun(),
                    hold.what(),
                    hold.day(),
                    if named {
                        "`consumers` names it"
                    } else {
                        "its folder changed"
                    }
                ));
            }
        }
    }
    for (name, a) in applied.entries {
        let kept_out =
            plan.unselected.contains(name) || applied.selection.is_some_and(|s| !s.matches(name));
        if plan.get(name).is_some() || kept_out {
            continue;
        }
        plan.consumers.push(ConsumerPlan {
            reasons: vec![format!(
                "it is applied (`{}`) and its folder is gone: Terraform destroys its resources",
                a.image
            )],
            steps: vec![Step::Apply],
            applied_image: Some(a.image.clone()),
            ..ConsumerPlan::new(name, Status::Removed)
        });
    }
    plan.renames = likely_renames(&plan, applied.entries);
    for (old, new) in &plan.renames {
        if let Some(c) = plan.consumers.iter_mut().find(|c| c.name == *old) {
            c.reasons.push(format!(
                "its folder looks renamed to `{new}` (the same settings): {}",
                RENAME_WAY
            ));
        }
        if let Some(c) = plan.consumers.iter_mut().find(|c| c.name == *new) {
            c.reasons.push(format!(
                "it looks like `{old}` renamed (the same settings): Terraform makes a new service for it and destroys `{old}`'s, which the destroy guard stops; {}",
                RENAME_WAY
            ));
        }
    }
    plan.consumers.sort_by(|a, b| a.name.cmp(&b.name));
    plan.compared = true;
    plan
}

/// What to do about a renamed consumer, for people.
pub const RENAME_WAY: &str = "the two would run side by side for a while and share a Kafka consumer group or a replication slot, so keep the old folder until the new consumer runs, then remove it and deploy with `allow-destroy: true`";

/// Each applied consumer whose folder is gone paired with the one new folder whose settings (its
/// entry without the image) are the same, when the pairing is one to one.
fn likely_renames(
    plan: &Plan,
    applied: &BTreeMap<String, AppliedConsumer>,
) -> Vec<(String, String)> {
    let removed: Vec<(&str, String)> = plan
        .consumers
        .iter()
        .filter(|c| c.status == Status::Removed)
        .filter_map(|c| {
            let config = applied.get(&c.name)?.config.as_ref()?;
            Some((c.name.as_str(), entries::settings_digest(config)))
        })
        .collect();
    let new: Vec<(&str, String)> = plan
        .consumers
        .iter()
        .filter(|c| !applied.contains_key(&c.name))
        .filter_map(|c| {
            let s = c.settings.as_ref()?;
            Some((
                c.name.as_str(),
                entries::settings_digest(&entries::entry(s, "")),
            ))
        })
        .collect();
    let mut pairs = Vec::new();
    for (old, digest) in &removed {
        let same: Vec<&str> = new
            .iter()
            .filter(|(_, d)| d == digest)
            .map(|(n, _)| *n)
            .collect();
        if let [one] = same.as_slice() {
            let rivals = removed.iter().filter(|(_, d)| d == digest).count();
            if rivals == 1 {
                pairs.push((old.to_string(), one.to_string()));
            }
        }
    }
    pairs
}

/// What a held consumer's plan says: since when, on what, and how to try again.
fn held_reason(name: &str, hold: &Hold, running: &str) -> String {
    let on = if running == hold.image {
        // It was new: nothing earlier ran, and what failed is what its service has.
        "on the image that failed (it has no earlier one)".to_string()
    } else {
        format!("on its previous image `{running}`")
    };
    format!(
        "held {on} since the {} of `{}` on {}; change its folder, or deploy with `consumers: {name}`, to try again",
        hold.verdict_noun(),
        hold.what(),
        hold.day()
    )
}

fn add_step(c: &mut ConsumerPlan, step: Step) {
    if !c.steps.contains(&step) {
        c.steps.push(step);
    }
}

/// A consumer's reason when Terraform's plan changes nothing of it.
const NO_CHANGE: &str = "Terraform plans no change";
/// A consumer's reason when Terraform did not plan: nothing could change.
const NOT_RUN: &str = "entries equal to the applied ones; Terraform not run";

/// The plan when Terraform did not plan because every entry and input equals the applied ones:
/// as [`with_infra`] of an empty plan, each consumer saying Terraform did not run.
pub fn with_infra_not_run(plan: Plan) -> Plan {
    fold_infra(plan, &InfraPlan::default(), &[], NOT_RUN)
}

/// The plan with Terraform's saved plan folded in: each consumer's resource changes, a consumer
/// whose image is unchanged but whose configuration changes becomes `changed` (and one whose
/// settings differ but whose resources Terraform leaves as they are, `unchanged`), consumers
/// applied before whose folder is gone (`removed`) join it, and a change to shared resources
/// (the cluster, the network, an output) counts as a change. Terraform is the authority on
/// what its apply does. Pure, like [`plan`].
pub fn with_infra(plan: Plan, infra: &InfraPlan, removed: &[&str]) -> Plan {
    fold_infra(plan, infra, removed, NO_CHANGE)
}

/// [`with_infra`], `no_change` the reason of a consumer whose resources do not change.
fn fold_infra(mut plan: Plan, infra: &InfraPlan, removed: &[&str], no_change: &str) -> Plan {
    let totals_of = |name: &str| {
        infra.of(name).fold(Totals::default(), |mut t, r| {
            t.count(r.kind);
            t
        })
    };
    let restarts = infra.restarts();
    for c in &mut plan.consumers {
        let totals = totals_of(&c.name);
        if let Some(causes) = restarts.get(c.name.as_str()) {
            // Said before it happens: every task stops (a group rebalance, or a gap for a single
            // writer) although the consumer's revision stays.
            let causes: Vec<String> = causes.iter().map(|a| format!("`{a}`")).collect();
            c.reasons.push(format!(
                "its service restarts without a new revision: ECS starts a deployment of every task ({} changes)",
                causes.join(", ")
            ));
        }
        c.steps.retain(|s| *s != Step::Apply);
        if !totals.is_empty() {
            c.steps.push(Step::Apply);
            if c.status == Status::Unchanged {
                c.status = Status::Changed;
                c.reasons
                    .push(format!("its configuration changed: {totals}"));
            }
        } else if c.status == Status::Changed
            && !c.has(Step::Build)
            && c.existing_image.is_some()
            && !c.config_changes.is_empty()
        {
            // Its settings changed in ways its resources do not show (a count the module leaves
            // to autoscaling, say): nothing is rolled out.
            c.status = Status::Unchanged;
            c.reasons
                .push("Terraform plans no change to its resources".into());
            continue;
        }
        if matches!(c.status, Status::Invalid | Status::Unknown) {
            // Its entry is kept: Terraform changes nothing of it, unless something is wrong.
            c.infra = (!totals.is_empty()).then_some(totals);
        } else {
            c.infra = Some(totals);
            c.reasons.retain(|r| r != NOT_COMPARED);
            if totals.is_empty() && c.status != Status::Held {
                c.reasons.push(no_change.into());
            }
        }
    }
    for name in removed {
        let totals = totals_of(name);
        let said = format!("it was deployed and its folder is gone: Terraform plans {totals}");
        match plan.consumers.iter_mut().find(|c| c.name == *name) {
            Some(c) => {
                c.reasons = vec![said];
                c.steps.retain(|s| *s != Step::Apply);
                if !totals.is_empty() {
                    c.steps.push(Step::Apply);
                }
                c.infra = Some(totals);
            }
            None => plan.consumers.push(ConsumerPlan {
                reasons: vec![said],
                steps: if totals.is_empty() {
                    Vec::new()
                } else {
                    vec![Step::Apply]
                },
                infra: Some(totals),
                ..ConsumerPlan::new(name, Status::Removed)
            }),
        }
    }
    // The digest the apply records is bookkeeping, not a change to the fleet's infrastructure.
    plan.infra_pending = !infra.changes.is_empty()
        || infra
            .output_changes
            .iter()
            .any(|o| o != crate::apply::infra::digest::DIGEST_NAME);
    plan.consumers.sort_by(|a, b| a.name.cmp(&b.name));
    plan
}

fn unknown(mut p: ConsumerPlan, failure: LookupFailure) -> ConsumerPlan {
    p.status = Status::Unknown;
    p.steps.clear();
    p.repository_drift.clear();
    p.reasons = vec![failure.to_string()];
    p.lookup_failure = Some(failure);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::discovery::InvalidConsumer;
    use crate::consumers::names::{ConsumerName, ProjectName};
    use crate::observe::ObservedConsumer;
    use std::path::PathBuf;

    fn spec(name: &str) -> ConsumerSpec {
        let project = ProjectName::parse("shop").unwrap();
        let n = ConsumerName::parse(name).unwrap();
        ConsumerSpec {
            resource_name: crate::consumers::names::resource_name(&project, &n).unwrap(),
            name: n,
            dir: PathBuf::from(name),
            display_dir: format!("consumer_scripts/{name}"),
            config_file: None,
            settings: ConsumerSettings::default(),
        }
    }

    fn report(seed: &str) -> FingerprintReport {
        FingerprintReport {
            fingerprint: Fingerprint::from_hash(blake3::hash(seed.as_bytes())),
            files: 3,
            bytes: 100,
        }
    }

    /// A repository as the action makes it.
    fn repo(name: &str) -> RepositoryState {
        RepositoryState {
            name: name.into(),
            tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
            mutable_tags: vec!["cache-*".into(), "keep-*".into()],
            scan_on_push: true,
        }
    }

    fn image() -> RegistryImage {
        RegistryImage {
            digest: format!("sha256:{}", "a".repeat(64)),
            size: Some(1024),
        }
    }

    fn observed(entries: Vec<(&str, ObservedConsumer)>) -> Observation {
        Observation {
            consumers: entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    fn found(name: &str, image: ImageLookup) -> ObservedConsumer {
        ObservedConsumer {
            repository: RepositoryLookup::Found(repo(name)),
            image,
        }
    }

    fn setup(names: &[&str]) -> (Discovery, Vec<ConsumerSpec>) {
        let specs: Vec<ConsumerSpec> = names.iter().map(|n| spec(n)).collect();
        (
            Discovery {
                consumers: specs.clone(),
                ..Default::default()
            },
            specs,
        )
    }

    fn fingerprinted(specs: &[ConsumerSpec]) -> Vec<Fingerprinted<'_>> {
        specs
            .iter()
            .map(|s| Fingerprinted {
                spec: s,
                fingerprint: Ok(report(s.name.as_str())),
            })
            .collect()
    }

    #[test]
    fn offline_everything_is_new() {
        let (d, specs) = setup(&["orders"]);
        let p = plan(&d, &fingerprinted(&specs), None, None);
        assert!(p.offline);
        assert_eq!(p.consumers[0].status, Status::New);
        assert_eq!(
            p.consumers[0].steps,
            vec![Step::CreateRepository, Step::Build, Step::Push]
        );
    }

    #[test]
    fn a_repository_made_before_the_build_cache_gets_its_exclusion_only_when_it_builds() {
        let (d, specs) = setup(&["rebuilt", "same"]);
        let older = |name: &str, image| ObservedConsumer {
            repository: RepositoryLookup::Found(RepositoryState {
                tag_mutability: "IMMUTABLE".into(),
                mutable_tags: vec!["keep-*".into()],
                ..repo(name)
            }),
            image,
        };
        let o = observed(vec![
            (
                "shop-rebuilt",
                older("shop-rebuilt", ImageLookup::Absent { built_before: true }),
            ),
            (
                "shop-same",
                older("shop-same", ImageLookup::Present(image())),
            ),
        ]);
        let p = plan(&d, &fingerprinted(&specs), Some(&o), None);
        let rebuilt = p.get("rebuilt").unwrap();
        assert_eq!(
            rebuilt.steps,
            [Step::ReconcileRepository, Step::Build, Step::Push]
        );
        assert_eq!(
            rebuilt.repository_drift,
            [RepositoryDrift::CacheTagsImmutable]
        );
        assert_eq!(
            rebuilt.reasons[0],
            "its repository drifted (its build cache tags `cache-*` are immutable); it is brought back in line"
        );
        // Nothing to build: the repository is left as it is, and the consumer has no work.
        let same = p.get("same").unwrap();
        assert!(same.steps.is_empty(), "{:?}", same.steps);
        assert!(same.repository_drift.is_empty());

        // With the cache off, all-immutable tags are as they must be; other drift stays.
        let mut off = p.clone();
        off.keep_cache_tags_immutable();
        let rebuilt = off.get("rebuilt").unwrap();
        assert_eq!(rebuilt.steps, [Step::Build, Step::Push]);
        assert!(rebuilt.repository_drift.is_empty());
        assert!(
            !rebuilt.reasons.iter().any(|r| r.contains("drifted")),
            "{:?}",
            rebuilt.reasons
        );
        let mut both = p;
        let c = both
            .consumers
            .iter_mut()
            .find(|c| c.name == "rebuilt")
            .unwrap();
        c.repository_drift = vec![
            RepositoryDrift::ScanOnPushOff,
            RepositoryDrift::CacheTagsImmutable,
        ];
        c.reasons[0] = drift_reason(&c.repository_drift);
        both.keep_cache_tags_immutable();
        let rebuilt = both.get("rebuilt").unwrap();
        assert_eq!(
            rebuilt.steps,
            [Step::ReconcileRepository, Step::Build, Step::Push]
        );
        assert_eq!(
            rebuilt.reasons[0],
            "its repository drifted (scan on push is off); it is brought back in line"
        );
    }

    #[test]
    fn a_consumer_whose_image_look_up_failed_leaves_its_drifted_repository_alone() {
        let (d, specs) = setup(&["unreachable"]);
        let o = observed(vec![(
            "shop-unreachable",
            ObservedConsumer {
                repository: RepositoryLookup::Found(RepositoryState {
                    tag_mutability: "MUTABLE".into(),
                    mutable_tags: vec!["keep-*".into()],
                    ..repo("shop-unreachable")
                }),
                image: ImageLookup::Failed(RegistryError {
                    what: "x".into(),
                    failure: crate::failure::Failure::new(
                        crate::failure::Cause::Network,
                        "connection refused",
                    ),
                }),
            },
        )]);
        let p = plan(&d, &fingerprinted(&specs), Some(&o), None);
        let c = p.get("unreachable").unwrap();
        assert_eq!(c.status, Status::Unknown);
        assert!(c.steps.is_empty(), "{:?}", c.steps);
        assert!(
            c.reasons[0].contains("connection refused"),
            "{:?}",
            c.reasons
        );
    }

    #[test]
    fn outcomes_against_observed_state() {
        let (d, specs) = setup(&[
            "fresh",
            "rebuilt",
            "never",
            "same",
            "drifted",
            "unreachable",
        ]);
        let mut drifted = repo("shop-drifted");
        drifted.tag_mutability = "MUTABLE".into();
        drifted.scan_on_push = false;
        let o = observed(vec![
            (
                "shop-fresh",
                ObservedConsumer {
                    repository: RepositoryLookup::Missing,
                    image: ImageLookup::NotAsked,
                },
            ),
            (
                "shop-rebuilt",
                found("shop-rebuilt", ImageLookup::Absent { built_before: true }),
            ),
            (
                "shop-never",
                found(
                    "shop-never",
                    ImageLookup::Absent {
                        built_before: false,
                    },
                ),
            ),
            (
                "shop-same",
                found("shop-same", ImageLookup::Present(image())),
            ),
            (
                "shop-drifted",
                ObservedConsumer {
                    repository: RepositoryLookup::Found(drifted),
                    image: ImageLookup::Present(image()),
                },
            ),
            (
                "shop-unreachable",
                found(
                    "shop-unreachable",
                    ImageLookup::Failed(RegistryError {
                        what: "x".into(),
                        failure: crate::failure::Failure::new(
                            crate::failure::Cause::Network,
                            "connection refused",
                        ),
                    }),
                ),
            ),
        ]);
        let p = plan(&d, &fingerprinted(&specs), Some(&o), None);
        let got: Vec<(&str, Status, Vec<Step>)> = p
            .consumers
            .iter()
            .map(|c| (c.name.as_str(), c.status, c.steps.clone()))
            .collect();
        use Step::*;
        assert_eq!(
            got,
            vec![
                ("drifted", Status::Unchanged, vec![ReconcileRepository]),
                ("fresh", Status::New, vec![CreateRepository, Build, Push]),
                ("never", Status::New, vec![Build, Push]),
                ("rebuilt", Status::Changed, vec![Build, Push]),
                ("same", Status::Unchanged, vec![]),
                ("unreachable", Status::Unknown, vec![]),
            ]
        );
        let mut excluded = repo("shop-x");
        excluded.tag_mutability = "IMMUTABLE_WITH_EXCLUSION".into();
        assert!(
            repository_drift(&excluded).is_empty(),
            "a deliberate exclusion is kept"
        );
        let drifted = p.get("drifted").unwrap();
        assert_eq!(
            drifted.repository_drift,
            [RepositoryDrift::MutableTags, RepositoryDrift::ScanOnPushOff]
        );
        assert_eq!(p.get("same").unwrap().existing_image, Some(image()));
        assert_eq!(p.get("same").unwrap().status_label(), "image unchanged");
        assert!(p.get("unreachable").unwrap().reasons[0].contains("connection refused"));
        assert!(p.has_changes());
    }

    #[test]
    fn terraform_changes_make_an_unchanged_image_changed_and_removed_consumers_join() {
        let (d, specs) = setup(&["cfg", "same"]);
        let o = observed(vec![
            ("shop-cfg", found("shop-cfg", ImageLookup::Present(image()))),
            (
                "shop-same",
                found("shop-same", ImageLookup::Present(image())),
            ),
        ]);
        let p = plan(&d, &fingerprinted(&specs), Some(&o), None);
        assert!(!p.has_changes());
        assert_eq!(p.consumers[1].status_label(), "image unchanged");
        let json = serde_json::json!({"resource_changes": [
            {"address": "aws_ecs_task_definition.this[\"cfg\"]", "mode": "managed", "type": "aws_ecs_task_definition", "change": {"actions": ["update"]}},
            {"address": "aws_ecs_service.this[\"gone\"]", "mode": "managed", "type": "aws_ecs_service", "change": {"actions": ["delete"]}},
        ]});
        let names = ["cfg", "same", "gone"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let infra = InfraPlan::parse(&json.to_string(), &names).unwrap();
        let p = with_infra(p, &infra, &["gone"]);
        let cfg = p.get("cfg").unwrap();
        assert_eq!(cfg.status, Status::Changed);
        assert_eq!(cfg.steps, [Step::Apply]);
        assert!(
            cfg.reasons
                .iter()
                .any(|r| r == "its configuration changed: 1 to update in place"),
            "{:?}",
            cfg.reasons
        );
        let same = p.get("same").unwrap();
        assert_eq!(same.status, Status::Unchanged);
        assert_eq!(
            same.status_label(),
            "unchanged",
            "Terraform compared the configuration"
        );
        assert!(!same.reasons.iter().any(|r| r == NOT_COMPARED));
        let gone = p.get("gone").unwrap();
        assert_eq!(gone.status, Status::Removed);
        assert!(
            gone.reasons[0].contains("1 to destroy"),
            "{:?}",
            gone.reasons
        );
        assert!(p.has_changes());
        assert_eq!(p.names(Status::Removed), ["gone"]);
    }

    #[test]
    fn a_service_the_apply_restarts_says_so_before_it_happens() {
        let (d, specs) = setup(&["moved"]);
        let o = observed(vec![(
            "shop-moved",
            found("shop-moved", ImageLookup::Present(image())),
        )]);
        let p = plan(&d, &fingerprinted(&specs), Some(&o), None);
        let json = serde_json::json!({"resource_changes": [
            {"address": "aws_ecs_service.this[\"moved\"]", "mode": "managed", "type": "aws_ecs_service",
             "change": {"actions": ["update"],
                        "before": {"task_definition": "td:1", "network_configuration": [{"security_groups": ["sg-1"]}]},
                        "after": {"task_definition": "td:1", "network_configuration": [{"security_groups": ["sg-1", "sg-2"]}]}}},
        ]});
        let infra = InfraPlan::parse(
            &json.to_string(),
            &["moved".to_string()].into_iter().collect(),
        )
        .unwrap();
        let p = with_infra(p, &infra, &[]);
        let moved = p.get("moved").unwrap();
        assert_eq!(moved.status, Status::Changed);
        assert!(
            moved.reasons.iter().any(|r| r
                == "its service restarts without a new revision: ECS starts a deployment of every task (`network_configuration` changes)"),
            "{:?}",
            moved.reasons
        );
    }

    #[test]
    fn unchanged_images_are_not_a_change_and_no_commit_adds_a_step() {
        let (d, specs) = setup(&["same"]);
        let o = observed(vec![(
            "shop-same",
            found("shop-same", ImageLookup::Present(image())),
        )]);
        let commit = CommitSha::parse(&"2".repeat(40)).unwrap();
        let p = plan(&d, &fingerprinted(&specs), Some(&o), Some(&commit));
        assert_eq!(
            p.consumers[0].steps,
            vec![],
            "a new commit alone writes nothing"
        );
        assert!(!p.has_changes());
        assert!(p.consumers.iter().all(|c| c.steps.is_empty()));
    }

    #[test]
    fn invalid_consumers_are_listed_with_their_findings() {
        let d = Discovery {
            invalid: vec![InvalidConsumer {
                name: "Orders".into(),
                display_dir: "consumer_scripts/Orders".into(),
                diagnostics: vec![Diagnostic::error("consumer_scripts/Orders", "bad name")],
            }],
            ..Default::default()
        };
        let p = plan(&d, &[], Some(&Observation::default()), None);
        let c = p.get("Orders").unwrap();
        assert_eq!(c.status, Status::Invalid);
        assert_eq!(c.reasons, ["bad name"]);
    }

    #[test]
    fn a_failed_fingerprint_marks_only_that_consumer() {
        let (d, specs) = setup(&["good", "bad"]);
        let f = [
            Fingerprinted {
                spec: &specs[0],
                fingerprint: Ok(report("a")),
            },
            Fingerprinted {
                spec: &specs[1],
                fingerprint: Err(Diagnostic::error(
                    "consumer_scripts/bad/.dockerignore",
                    "bad pattern",
                )),
            },
        ];
        let p = plan(&d, &f, None, None);
        assert_eq!(p.get("good").unwrap().status, Status::New);
        assert_eq!(p.get("bad").unwrap().status, Status::Invalid);
    }

    /// What was applied for `name`: its entry from `settings` around `image`, with `hold`.
    fn applied(settings: &ConsumerSettings, image: &str, hold: Option<&Hold>) -> AppliedConsumer {
        let mut config = entries::entry(settings, image);
        config["hold"] = serde_json::to_value(hold).unwrap();
        AppliedConsumer {
            image: image.into(),
            config: Some(config),
            ..AppliedConsumer::default()
        }
    }

    #[test]
    fn entries_compared_with_what_is_applied_decide_changes_removals_and_holds() {
        let names = ["same", "cfg", "fresh", "other", "held", "retried"];
        let (d, specs) = setup(&names);
        let repos: Vec<String> = names.iter().map(|n| format!("shop-{n}")).collect();
        let o = observed(
            repos
                .iter()
                .map(|r| (r.as_str(), found(r, ImageLookup::Present(image()))))
                .collect(),
        );
        let p = plan(&d, &fingerprinted(&specs), Some(&o), None);
        let host = "reg";
        let running = |n: &str| format!("{host}/shop-{n}@{}", image().digest);
        let s = ConsumerSettings::default();
        let mut bigger = s.clone();
        bigger.cpu = 512;
        bigger.memory = 1024;
        let failed_hold = |n: &str| Hold {
            image: running(n),
            fingerprint: Some(report(n).fingerprint.hex().to_string()),
            settings: entries::settings_digest(&entries::entry(&s, &running(n))),
            verdict: entries::ROLLED_BACK.into(),
            at: "2026-12-01T10:00:00Z".into(),
        };
        let held = failed_hold("held");
        let retried = failed_hold("retried");
        let entries = [
            ("same", applied(&s, &running("same"), None)),
            ("cfg", applied(&bigger, &running("cfg"), None)),
            (
                "other",
                applied(
                    &s,
                    &format!("{host}/shop-other@sha256:{}", "0".repeat(64)),
                    None,
                ),
            ),
            (
                "held",
                applied(
                    &s,
                    &format!("{host}/shop-held@sha256:{}", "1".repeat(64)),
                    Some(&held),
                ),
            ),
            (
                "retried",
                applied(
                    &s,
                    &format!("{host}/shop-retried@sha256:{}", "1".repeat(64)),
                    Some(&retried),
                ),
            ),
            ("gone", applied(&s, "reg/shop-gone@sha256:x", None)),
        ]
        .into_iter()
        .map(|(n, a)| (n.to_string(), a))
        .collect();
        let selection = Selection::parse("retried, same, cfg, fresh, other, held, gone")
            .unwrap()
            .unwrap();
        let only_retried = Selection::parse("retried").unwrap().unwrap();
        let compared = |selection: Option<&Selection>| {
            with_applied(
                p.clone(),
                &Applied {
                    entries: &entries,
                    selection,
                    registry_host: host,
                },
            )
        };
        let c = compared(None);
        let status = |p: &Plan, n: &str| p.get(n).unwrap().status;
        assert_eq!(status(&c, "same"), Status::Unchanged);
        assert_eq!(c.get("same").unwrap().status_label(), "unchanged");
        assert_eq!(status(&c, "cfg"), Status::Changed);
        assert_eq!(
            c.get("cfg").unwrap().config_changes,
            ["`cpu` 512 → 256", "`memory` 1024 → 512"]
        );
        assert_eq!(c.get("cfg").unwrap().steps, [Step::Apply]);
        assert_eq!(status(&c, "fresh"), Status::New, "never applied");
        assert_eq!(status(&c, "other"), Status::Changed, "runs another image");
        assert_eq!(status(&c, "held"), Status::Held);
        assert!(c.get("held").unwrap().steps.is_empty());
        assert!(
            c.get("held").unwrap().reasons[0].starts_with(&format!(
                "held on its previous image `{host}/shop-held@sha256:1111"
            )),
            "{:?}",
            c.get("held").unwrap().reasons
        );
        assert_eq!(status(&c, "retried"), Status::Held);
        assert_eq!(status(&c, "gone"), Status::Removed);
        assert!(c.has_changes());
        assert!(c.compared);
        // Named by `consumers`: tried again, and said why.
        let named = compared(Some(&only_retried));
        assert_eq!(status(&named, "retried"), Status::Changed);
        assert!(named
            .get("retried")
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.ends_with("`consumers` names it, so this deploy tries again")));
        // A folder the selection leaves out keeps what is applied: not removed.
        assert!(named.get("gone").is_none(), "not named: not removed");
        let all = compared(Some(&selection));
        assert_eq!(status(&all, "gone"), Status::Removed, "named: removed");
    }
}
