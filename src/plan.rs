//! Planning: from what was discovered, each consumer's fingerprint and what was observed in AWS,
//! decide per consumer whether it is new, changed, unchanged or removed, and the steps to take.
//!
//! Pure: no I/O, no clock, no environment. The same inputs always give the same plan, which is
//! what `plan`, the pull request comment and the tests look at. Only the apply stages act on it.

use std::collections::{BTreeMap, BTreeSet};

use crate::consumers::config::ConsumerSettings;
use crate::consumers::discovery::{ConsumerSpec, Discovery, SkippedFolder};
use crate::context::fingerprint::{Fingerprint, FingerprintReport};
use crate::diagnostics::Diagnostic;

/// What AWS (the registry, later ECS) holds for one consumer's resource name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedConsumer {
    pub repository: bool,
    /// An image tagged with the consumer's current fingerprint exists.
    pub fingerprint_image: bool,
    /// That image also carries the current commit's tag.
    pub commit_tag: bool,
    pub service: Option<ObservedService>,
}

/// A running ECS service managed by this tool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedService {
    /// The settings digest the service was last deployed with, when recorded.
    pub settings_digest: Option<String>,
}

/// Everything observed, by resource name (`<project>-<consumer>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedState {
    pub consumers: BTreeMap<String, ObservedConsumer>,
    /// Whether ECS services were looked up. When they were not, a consumer is judged on its
    /// image alone: an existing image with this fingerprint means unchanged.
    pub services_observed: bool,
}

/// A consumer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Changed,
    Unchanged,
    Removed,
    Invalid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
            Status::Removed => "removed",
            Status::Invalid => "invalid",
        }
    }
}

/// One thing the apply stages do for a consumer, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Create the ECR repository with its scanning, tag immutability and lifecycle policy.
    CreateRepository,
    Build,
    Push,
    /// Put the existing image's manifest under the commit tag: no build, no push of layers.
    Retag,
    /// Apply the infrastructure (task definition, service, scaling) with the image's digest.
    Apply,
    RollOut,
    /// Tear down the service of a consumer whose folder is gone; its repository is kept.
    Retire,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateRepository => "create repository",
            Step::Build => "build",
            Step::Push => "push",
            Step::Retag => "retag",
            Step::Apply => "apply",
            Step::RollOut => "roll out",
            Step::Retire => "retire",
        }
    }
}

/// The plan for one consumer.
#[derive(Clone, Debug)]
pub struct ConsumerPlan {
    /// The folder name (for removed consumers, the resource name).
    pub name: String,
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
    /// What the image stage did, once `deploy` has run it.
    pub image: Option<ImageResult>,
}

/// What the image stage did for a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageOutcome {
    /// Built and pushed.
    Built,
    /// An image with this fingerprint was already in the registry.
    Reused,
    /// Already in the registry; the commit tag was added to it.
    Retagged,
    Failed,
}

impl ImageOutcome {
    pub const ALL: [ImageOutcome; 4] = [
        ImageOutcome::Built,
        ImageOutcome::Reused,
        ImageOutcome::Retagged,
        ImageOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageOutcome::Built => "built",
            ImageOutcome::Reused => "reused",
            ImageOutcome::Retagged => "retagged",
            ImageOutcome::Failed => "failed",
        }
    }
}

/// The image stage's result for one consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageResult {
    pub outcome: ImageOutcome,
    /// `<registry>/<repository>@sha256:…`: what later stages pin, never a tag.
    pub image: Option<String>,
    pub digest: Option<String>,
    /// Compressed size as the registry stores it (config and layers).
    pub size: Option<u64>,
    pub duration: std::time::Duration,
    /// Why it failed, naming the step.
    pub failure: Option<String>,
    /// The last lines of the build output, for a failed build.
    pub log_tail: Vec<String>,
}

impl ConsumerPlan {
    pub fn has(&self, step: Step) -> bool {
        self.steps.contains(&step)
    }
}

/// The whole plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `true` when nothing was observed: every consumer is new.
    pub offline: bool,
    pub commit: Option<String>,
    pub consumers: Vec<ConsumerPlan>,
    pub skipped: Vec<SkippedFolder>,
    pub warnings: Vec<Diagnostic>,
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

    pub fn has_changes(&self) -> bool {
        self.consumers
            .iter()
            .any(|c| matches!(c.status, Status::New | Status::Changed | Status::Removed))
    }

    pub fn get(&self, name: &str) -> Option<&ConsumerPlan> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// Names of the consumers whose image stage ended with `outcome`.
    pub fn image_names(&self, outcome: ImageOutcome) -> Vec<&str> {
        self.consumers
            .iter()
            .filter(|c| c.image.as_ref().is_some_and(|i| i.outcome == outcome))
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Whether the image stage ran for any consumer.
    pub fn has_image_results(&self) -> bool {
        self.consumers.iter().any(|c| c.image.is_some())
    }
}

/// A consumer with the result of fingerprinting it.
pub struct Fingerprinted<'a> {
    pub spec: &'a ConsumerSpec,
    pub fingerprint: Result<FingerprintReport, Diagnostic>,
}

/// Digest of the runtime settings (everything but the build), to tell a configuration-only change.
pub fn settings_digest(settings: &ConsumerSettings) -> String {
    let mut runtime = settings.clone();
    runtime.build = ConsumerSettings::default().build;
    let json = serde_json::to_vec(&runtime).unwrap_or_default();
    blake3::hash(&json).to_hex()[..16].to_string()
}

/// Build the plan. `observed` is `None` offline.
pub fn plan(
    discovery: &Discovery,
    fingerprinted: &[Fingerprinted<'_>],
    observed: Option<&ObservedState>,
    commit: Option<&str>,
) -> Plan {
    let mut consumers = Vec::new();
    for f in fingerprinted {
        consumers.push(plan_one(f, observed, commit));
    }
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
            image: None,
        });
    }
    if let Some(observed) = observed {
        let present: BTreeSet<&str> = discovery
            .consumers
            .iter()
            .map(|c| c.resource_name.as_str())
            .collect();
        let any_invalid = consumers.iter().any(|c| c.status == Status::Invalid);
        for (resource, o) in &observed.consumers {
            if present.contains(resource.as_str()) || (!o.repository && o.service.is_none()) {
                continue;
            }
            if !observed.services_observed && o.service.is_none() {
                // A repository alone is kept forever; without service data there is nothing to retire.
                continue;
            }
            let (steps, reason) = if any_invalid {
                (
                    Vec::new(),
                    "its folder is gone, but removals wait until every consumer is valid: an invalid folder may be this consumer renamed".to_string(),
                )
            } else if o.service.is_some() {
                (
                    vec![Step::Retire],
                    "its folder is gone; its service is retired and its repository kept"
                        .to_string(),
                )
            } else {
                (
                    Vec::new(),
                    "its folder is gone; it has no service, and its repository is kept".to_string(),
                )
            };
            consumers.push(ConsumerPlan {
                name: resource.clone(),
                resource_name: Some(resource.clone()),
                status: Status::Removed,
                reasons: vec![reason],
                steps,
                display_dir: None,
                fingerprint: None,
                context_files: 0,
                context_bytes: 0,
                settings: None,
                diagnostics: Vec::new(),
                image: None,
            });
        }
    }
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    Plan {
        offline: observed.is_none(),
        commit: commit.map(str::to_string),
        consumers,
        skipped: discovery.skipped.clone(),
        warnings: discovery.warnings.clone(),
    }
}

fn plan_one(
    f: &Fingerprinted<'_>,
    observed: Option<&ObservedState>,
    commit: Option<&str>,
) -> ConsumerPlan {
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
        image: None,
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

    let seen = observed
        .and_then(|o| o.consumers.get(&spec.resource_name))
        .filter(|o| o.repository || o.service.is_some());
    let Some(o) = seen else {
        p.reasons.push(if observed.is_none() {
            "offline: nothing was looked up, so everything is new".into()
        } else {
            "no repository or service exists yet".into()
        });
        p.steps = vec![
            Step::CreateRepository,
            Step::Build,
            Step::Push,
            Step::Apply,
            Step::RollOut,
        ];
        return p;
    };

    let mut changed = false;
    if !o.repository {
        p.steps.push(Step::CreateRepository);
        p.reasons.push("its repository is missing".into());
        changed = true;
    }
    if !o.fingerprint_image {
        p.steps.extend([Step::Build, Step::Push]);
        p.reasons
            .push("its build context changed: no image has this fingerprint".into());
        changed = true;
    } else if commit.is_some() && !o.commit_tag {
        p.steps.push(Step::Retag);
        p.reasons
            .push("the image exists; only the commit tag is added".into());
    }
    match &o.service {
        _ if !observed.is_some_and(|o| o.services_observed) => {}
        None => {
            p.reasons.push("it has no service yet".into());
            changed = true;
        }
        Some(s)
            if s.settings_digest.as_deref() != Some(settings_digest(&spec.settings).as_str()) =>
        {
            p.reasons
                .push("its `consumer.toml` settings changed".into());
            changed = true;
        }
        Some(_) => {}
    }
    if changed {
        p.status = Status::Changed;
        p.steps.extend([Step::Apply, Step::RollOut]);
    } else {
        p.status = Status::Unchanged;
        if p.reasons.is_empty() {
            p.reasons
                .push("the image and settings are already deployed".into());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::discovery::InvalidConsumer;
    use crate::consumers::names::{ConsumerName, ProjectName};
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
            fingerprint: test_fingerprint(seed),
            files: 3,
            bytes: 100,
        }
    }

    fn test_fingerprint(seed: &str) -> Fingerprint {
        Fingerprint::from_hash(blake3::hash(seed.as_bytes()))
    }

    fn observed(entries: &[(&str, ObservedConsumer)]) -> ObservedState {
        ObservedState {
            consumers: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            services_observed: true,
        }
    }

    fn deployed(settings: &ConsumerSettings) -> ObservedConsumer {
        ObservedConsumer {
            repository: true,
            fingerprint_image: true,
            commit_tag: true,
            service: Some(ObservedService {
                settings_digest: Some(settings_digest(settings)),
            }),
        }
    }

    #[test]
    fn offline_everything_is_new() {
        let a = spec("orders");
        let d = Discovery {
            consumers: vec![a.clone()],
            ..Default::default()
        };
        let f = [Fingerprinted {
            spec: &a,
            fingerprint: Ok(report("a")),
        }];
        let p = plan(&d, &f, None, None);
        assert!(p.offline);
        assert_eq!(p.consumers[0].status, Status::New);
        assert_eq!(
            p.consumers[0].steps,
            vec![
                Step::CreateRepository,
                Step::Build,
                Step::Push,
                Step::Apply,
                Step::RollOut
            ]
        );
    }

    #[test]
    fn outcomes_against_observed_state() {
        let specs = [
            spec("fresh"),
            spec("rebuilt"),
            spec("same"),
            spec("retag"),
            spec("resized"),
        ];
        let d = Discovery {
            consumers: specs.to_vec(),
            ..Default::default()
        };
        let f: Vec<_> = specs
            .iter()
            .map(|s| Fingerprinted {
                spec: s,
                fingerprint: Ok(report(s.name.as_str())),
            })
            .collect();
        let resized = ConsumerSettings {
            cpu: 512,
            ..Default::default()
        };
        let o = observed(&[
            (
                "shop-rebuilt",
                ObservedConsumer {
                    fingerprint_image: false,
                    ..deployed(&ConsumerSettings::default())
                },
            ),
            ("shop-same", deployed(&ConsumerSettings::default())),
            (
                "shop-retag",
                ObservedConsumer {
                    commit_tag: false,
                    ..deployed(&ConsumerSettings::default())
                },
            ),
            ("shop-resized", deployed(&resized)),
            ("shop-gone", deployed(&ConsumerSettings::default())),
        ]);
        let p = plan(&d, &f, Some(&o), Some("abc1234"));
        let got: Vec<(&str, Status, Vec<Step>)> = p
            .consumers
            .iter()
            .map(|c| (c.name.as_str(), c.status, c.steps.clone()))
            .collect();
        use Step::*;
        assert_eq!(
            got,
            vec![
                (
                    "fresh",
                    Status::New,
                    vec![CreateRepository, Build, Push, Apply, RollOut]
                ),
                (
                    "rebuilt",
                    Status::Changed,
                    vec![Build, Push, Apply, RollOut]
                ),
                ("resized", Status::Changed, vec![Apply, RollOut]),
                ("retag", Status::Unchanged, vec![Retag]),
                ("same", Status::Unchanged, vec![]),
                ("shop-gone", Status::Removed, vec![Retire]),
            ]
        );
        assert!(p.has_changes());
        assert!(p
            .get("resized")
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.contains("settings changed")));
    }

    #[test]
    fn without_a_commit_no_retag_is_planned() {
        let a = spec("same");
        let d = Discovery {
            consumers: vec![a.clone()],
            ..Default::default()
        };
        let f = [Fingerprinted {
            spec: &a,
            fingerprint: Ok(report("a")),
        }];
        let o = observed(&[(
            "shop-same",
            ObservedConsumer {
                commit_tag: false,
                ..deployed(&ConsumerSettings::default())
            },
        )]);
        let p = plan(&d, &f, Some(&o), None);
        assert_eq!(p.consumers[0].steps, vec![]);
        assert!(!p.has_changes());
    }

    #[test]
    fn removals_wait_while_any_consumer_is_invalid() {
        let d = Discovery {
            invalid: vec![InvalidConsumer {
                name: "Orders".into(),
                display_dir: "consumer_scripts/Orders".into(),
                diagnostics: vec![Diagnostic::error("consumer_scripts/Orders", "bad name")],
            }],
            ..Default::default()
        };
        let o = observed(&[("shop-orders", deployed(&ConsumerSettings::default()))]);
        let p = plan(&d, &[], Some(&o), None);
        let removed = p.get("shop-orders").unwrap();
        assert_eq!(removed.status, Status::Removed);
        assert!(
            removed.steps.is_empty(),
            "nothing is torn down while a folder is invalid"
        );
        assert_eq!(p.get("Orders").unwrap().status, Status::Invalid);
    }

    #[test]
    fn a_failed_fingerprint_marks_only_that_consumer() {
        let a = spec("good");
        let b = spec("bad");
        let d = Discovery {
            consumers: vec![a.clone(), b.clone()],
            ..Default::default()
        };
        let f = [
            Fingerprinted {
                spec: &a,
                fingerprint: Ok(report("a")),
            },
            Fingerprinted {
                spec: &b,
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

    #[test]
    fn without_service_data_the_image_decides() {
        let specs = [spec("same"), spec("rebuilt")];
        let d = Discovery {
            consumers: specs.to_vec(),
            ..Default::default()
        };
        let f: Vec<_> = specs
            .iter()
            .map(|s| Fingerprinted {
                spec: s,
                fingerprint: Ok(report(s.name.as_str())),
            })
            .collect();
        let image_only = |present| ObservedConsumer {
            repository: true,
            fingerprint_image: present,
            commit_tag: present,
            service: None,
        };
        let o = ObservedState {
            consumers: [
                ("shop-same".to_string(), image_only(true)),
                ("shop-rebuilt".to_string(), image_only(false)),
                ("shop-gone".to_string(), image_only(true)),
            ]
            .into_iter()
            .collect(),
            services_observed: false,
        };
        let p = plan(&d, &f, Some(&o), Some("abc1234"));
        assert_eq!(p.get("same").unwrap().status, Status::Unchanged);
        assert_eq!(p.get("rebuilt").unwrap().status, Status::Changed);
        assert!(
            p.get("shop-gone").is_none(),
            "a repository alone is never planned for removal"
        );
    }

    #[test]
    fn settings_digest_ignores_build_settings() {
        let a = ConsumerSettings::default();
        let mut b = a.clone();
        b.build.target = Some("x".into());
        assert_eq!(settings_digest(&a), settings_digest(&b));
        b.desired_count = 3;
        assert_ne!(settings_digest(&a), settings_digest(&b));
    }
}
