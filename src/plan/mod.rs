//! Planning: from what was discovered, each consumer's fingerprint and what was observed in AWS,
//! decide per consumer whether it is new, changed or unchanged, and the steps the apply stages
//! take for it.
//!
//! Pure: no I/O, no clock, no environment. The same inputs always give the same plan, which is
//! what `plan`, the pull request comment and the tests look at. The apply stages perform exactly
//! its steps and report what happened beside it; they never change it.

pub mod terraform;

use crate::clients::ecr::{EcrError, RepositoryDrift, RepositoryState};
use crate::clients::registry::RegistryError;
use crate::config::event::CommitSha;
use crate::consumers::config::ConsumerSettings;
use crate::consumers::discovery::{ConsumerSpec, Discovery, SkippedFolder};
use crate::context::fingerprint::{Fingerprint, FingerprintReport};
use crate::diagnostics::Diagnostic;
use crate::observe::{ImageLookup, Observation, RegistryImage, RepositoryLookup};
use terraform::{InfraPlan, Totals};

/// A consumer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Changed,
    Unchanged,
    /// Its look-up in AWS failed: nothing is known, nothing is done.
    Unknown,
    Invalid,
    /// Applied before, and its folder is gone: Terraform would destroy its resources.
    Removed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Changed,
        Status::Unchanged,
        Status::Unknown,
        Status::Invalid,
        Status::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
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
    pub lookup_failure: Option<LookupFailure>,
    /// What Terraform's plan changes for this consumer; `None` when Terraform did not plan.
    pub infra: Option<Totals>,
}

impl ConsumerPlan {
    pub fn has(&self, step: Step) -> bool {
        self.steps.contains(&step)
    }

    /// The status as people read it. Without a Terraform plan the configuration is not compared
    /// with what runs, so an unchanged image is only that: "image unchanged".
    pub fn status_label(&self) -> &'static str {
        match self.status {
            Status::Unchanged if self.infra.is_none() => "image unchanged",
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
}

/// A consumer with the result of fingerprinting it.
pub struct Fingerprinted<'a> {
    pub spec: &'a ConsumerSpec,
    pub fingerprint: Result<FingerprintReport, Diagnostic>,
}

/// What an existing repository must look like, and where it does not. Tags must be immutable;
/// `IMMUTABLE_WITH_EXCLUSION` is someone's deliberate choice of tags left mutable, and is kept.
pub fn repository_drift(r: &RepositoryState) -> Vec<RepositoryDrift> {
    let mut drift = Vec::new();
    if !r.tag_mutability.starts_with("IMMUTABLE") {
        drift.push(RepositoryDrift::MutableTags);
    }
    if !r.scan_on_push {
        drift.push(RepositoryDrift::ScanOnPushOff);
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
            name: inv.name.clone(),
            resource_name: None,
            status: Status::Invalid,
            reasons: inv.diagnostics.iter().map(|d| d.message.clone()).collect(),
            steps: Vec::new(),
            display_dir: Some(inv.display_dir.clone()),
            fingerprint: None,
            context_files: 0,
            context_bytes: 0,
            settings: None,
            diagnostics: inv.diagnostics.clone(),
            existing_image: None,
            repository_drift: Vec::new(),
            lookup_failure: None,
            infra: None,
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
    }
}

const NEW_STEPS: [Step; 3] = [Step::CreateRepository, Step::Build, Step::Push];

fn plan_one(f: &Fingerprinted<'_>, observed: Option<&Observation>) -> ConsumerPlan {
    let spec = f.spec;
    let mut p = ConsumerPlan {
        name: spec.name.to_string(),
        resource_name: Some(spec.resource_name.clone()),
        status: Status::New,
        reasons: Vec::new(),
        steps: Vec::new(),
        display_dir: Some(spec.display_dir.clone()),
        fingerprint: None,
        context_files: 0,
        context_bytes: 0,
        settings: Some(spec.settings.clone()),
        diagnostics: Vec::new(),
        existing_image: None,
        repository_drift: Vec::new(),
        lookup_failure: None,
        infra: None,
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
        p.reasons
            .push("offline: nothing was looked up, so everything is new".into());
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
            p.reasons.push("its repository does not exist yet".into());
            p.steps = NEW_STEPS.to_vec();
            return p;
        }
        RepositoryLookup::Found(r) => r,
    };
    p.repository_drift = repository_drift(repository);
    if !p.repository_drift.is_empty() {
        p.steps.push(Step::ReconcileRepository);
        let what: Vec<&str> = p.repository_drift.iter().map(|d| d.describe()).collect();
        p.reasons.push(format!(
            "its repository drifted ({}); it is brought back in line",
            what.join(", ")
        ));
    }
    match &o.image {
        ImageLookup::Failed(e) => unknown(p, LookupFailure::Image(e.clone())),
        ImageLookup::Present(image) => {
            p.status = Status::Unchanged;
            p.existing_image = Some(image.clone());
            p.reasons
                .push("an image with this fingerprint is in the registry".into());
            p.reasons.push(NOT_COMPARED.into());
            p
        }
        ImageLookup::Absent { built_before: true } | ImageLookup::NotAsked => {
            p.status = Status::Changed;
            p.steps.extend([Step::Build, Step::Push]);
            p.reasons
                .push("no image has this fingerprint: its build context changed".into());
            p
        }
        // A repository without any image built here was never deployed (a first deploy that
        // failed, or a repository made by hand): still new.
        ImageLookup::Absent {
            built_before: false,
        } => {
            p.status = Status::New;
            p.steps.extend([Step::Build, Step::Push]);
            p.reasons
                .push("its repository holds no image built by cdc-deploy yet".into());
            p
        }
    }
}

/// Said of an unchanged image until Terraform's plan compares the configuration.
const NOT_COMPARED: &str = "the configuration is not compared with what runs";

/// The plan with Terraform's saved plan folded in: each consumer's resource changes, a consumer
/// whose image is unchanged but whose configuration changes becomes `changed`, and consumers
/// applied before whose folder is gone (`removed`) join it. Pure, like [`plan`].
pub fn with_infra(mut plan: Plan, infra: &InfraPlan, removed: &[&str]) -> Plan {
    for c in &mut plan.consumers {
        let totals = infra.of(&c.name).fold(Totals::default(), |mut t, r| {
            t.count(r.kind);
            t
        });
        if !totals.is_empty() {
            c.steps.push(Step::Apply);
            if c.status == Status::Unchanged {
                c.status = Status::Changed;
                c.reasons
                    .push(format!("its configuration changed: {totals}"));
            }
        }
        if matches!(c.status, Status::Invalid | Status::Unknown) {
            // Its entry is kept: Terraform changes nothing of it, unless something is wrong.
            c.infra = (!totals.is_empty()).then_some(totals);
        } else {
            c.infra = Some(totals);
            c.reasons.retain(|r| r != NOT_COMPARED);
            if totals.is_empty() {
                c.reasons.push("Terraform plans no change".into());
            }
        }
    }
    for name in removed {
        let totals = infra.of(name).fold(Totals::default(), |mut t, r| {
            t.count(r.kind);
            t
        });
        plan.consumers.push(ConsumerPlan {
            name: (*name).to_string(),
            resource_name: None,
            status: Status::Removed,
            reasons: vec![format!(
                "it was deployed and its folder is gone: Terraform plans {totals}"
            )],
            steps: if totals.is_empty() {
                Vec::new()
            } else {
                vec![Step::Apply]
            },
            display_dir: None,
            fingerprint: None,
            context_files: 0,
            context_bytes: 0,
            settings: None,
            diagnostics: Vec::new(),
            existing_image: None,
            repository_drift: Vec::new(),
            lookup_failure: None,
            infra: Some(totals),
        });
    }
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

    fn repo(name: &str) -> RepositoryState {
        RepositoryState {
            name: name.into(),
            tag_mutability: "IMMUTABLE".into(),
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
}
