//! The apply stages: each takes the plan, performs exactly the steps it lists and returns what
//! happened per consumer, in a [`RunReport`] beside the plan. The plan itself is never changed.

pub mod images;
pub mod infra;
pub mod keep;
pub mod restore;
pub mod rollback;
pub mod rollout;
pub mod scans;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clients::builder::{BuildFailure, EngineError, PushFailure};
use crate::clients::ecr::EcrError;
use crate::clients::registry::RegistryError;
use crate::context::tar::SentContextError;
use crate::plan::LookupFailure;

/// What the image stage did for a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageOutcome {
    /// Built and pushed by this run.
    Built,
    /// An image with this fingerprint was already in the registry; nothing was written.
    Reused,
    Failed,
}

impl ImageOutcome {
    pub const ALL: [ImageOutcome; 3] = [
        ImageOutcome::Built,
        ImageOutcome::Reused,
        ImageOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageOutcome::Built => "built",
            ImageOutcome::Reused => "reused",
            ImageOutcome::Failed => "failed",
        }
    }
}

/// Why a consumer's image stage failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Lookup(LookupFailure),
    #[error(transparent)]
    Repository(EcrError),
    /// The build failed; `file` is the Dockerfile, relative to the repository root.
    #[error("`{file}`{}: {failure}", failure.line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Build { file: String, failure: BuildFailure },
    #[error("the build context of `{dir}` changed while it was built: {source}")]
    ContextChanged {
        dir: String,
        source: SentContextError,
    },
    #[error(transparent)]
    Push(PushFailure),
    #[error(transparent)]
    Registry(RegistryError),
    #[error("the registry has no `{reference}` after it was pushed")]
    NotPushed { reference: String },
    /// The plan and what was scanned disagree: a defect, reported instead of guessed around.
    #[error("`{consumer}` cannot be applied: {reason}")]
    Unapplicable {
        consumer: String,
        reason: &'static str,
    },
    #[error("the registry stored `{reference}` as {stored}, not {expected}")]
    DigestMismatch {
        reference: String,
        stored: String,
        expected: String,
    },
    #[error(transparent)]
    Engine(EngineError),
    /// The connection to the engine broke during the build.
    #[error("{engine} closed the connection during the build ({message}), so the image was not built: check that the engine runs (`docker info`; its log says whether it restarted or ran out of memory or disk), then run again")]
    EngineLost { engine: String, message: String },
    /// The build ran past `build-timeout` and was stopped.
    #[error("the build did not finish within `build-timeout` ({}) and was stopped: {}", crate::failure::spoken(*.limit), timed_out_why(.engine, *.limit, *.silent))]
    BuildTimedOut {
        engine: String,
        limit: Duration,
        /// How long the build had printed nothing when it was stopped.
        silent: Duration,
    },
    /// The run was cancelled before the image was built and pushed.
    #[error("not finished: the run was {0}")]
    Cancelled(crate::cancel::Cancelled),
}

/// Why a build ran out of time: an engine that had gone silent looks hung; one still printing is
/// a slow build.
fn timed_out_why(engine: &str, limit: Duration, silent: Duration) -> String {
    if silent >= HUNG_AFTER.min(limit / 2) {
        format!(
            "{engine} had sent nothing for {}, so it looks hung; check it (`docker info`, its log) and run again",
            crate::failure::spoken(silent)
        )
    } else {
        format!(
            "it was still printing (its last line {} before), so the build is slower than that: give it a longer `build-timeout`",
            crate::failure::spoken(silent)
        )
    }
}

/// A build that printed nothing for this long (or half its time, when that is shorter) when its
/// time ran out is taken for a hung engine.
pub const HUNG_AFTER: Duration = Duration::from_secs(60);

impl ImageError {
    /// What failed, in a few words, for an annotation's title.
    pub fn stage(&self) -> &'static str {
        match self {
            ImageError::Lookup(_) => "the look-up failed",
            ImageError::Repository(_) => "the repository could not be set up",
            ImageError::Build { .. } => "the image build failed",
            ImageError::ContextChanged { .. } => "the build context changed",
            ImageError::Push(_) => "the push failed",
            ImageError::Engine(_) => "the Docker engine could not be reached",
            ImageError::EngineLost { .. } => "the Docker engine went away",
            ImageError::BuildTimedOut { .. } => "the build timed out",
            ImageError::Cancelled(_) => "cancelled",
            ImageError::Registry(_)
            | ImageError::NotPushed { .. }
            | ImageError::DigestMismatch { .. }
            | ImageError::Unapplicable { .. } => "the image could not be recorded",
        }
    }

    /// The last lines of the build, for a failed build.
    pub fn tail(&self) -> &[String] {
        match self {
            ImageError::Build { failure, .. } => &failure.tail,
            _ => &[],
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
    pub duration: Duration,
    pub error: Option<ImageError>,
}

/// What the apply stages did, by consumer name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub images: BTreeMap<String, ImageResult>,
    /// The Terraform stage; `None` when it did not run.
    pub infra: Option<infra::InfraReport>,
    /// Each watched rollout's verdict, by consumer.
    pub rollouts: BTreeMap<String, rollout::Verdict>,
    /// ECR's scan summary of each image this run pushed, by consumer.
    pub scans: BTreeMap<String, scans::ScanSummary>,
    /// Why the run was cancelled (`SIGTERM`), when it was: what was in progress is marked so.
    pub cancelled: Option<String>,
    /// Consumers whose rollout failed, put back on their previous entry by this run.
    pub restores: BTreeMap<String, Restore>,
}

/// A consumer whose rollout failed or was rolled back, put back through Terraform on the entry
/// it was applied with before this run, so that the state says what ECS runs and later runs hold
/// it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore {
    /// The image whose rollout failed.
    pub failed_image: String,
    /// The image it is put back on (its previous entry's).
    pub image: String,
    /// The rollout of the restored entry; `None` when it was not watched.
    pub verdict: Option<rollout::Verdict>,
    /// Why it could not be put back, when it could not.
    pub error: Option<String>,
    /// Whether the applied entry now records the hold (a root module whose `consumers` variable
    /// lacks `hold`, or whose output gives no `config`, cannot).
    pub remembered: bool,
}

impl Restore {
    /// Whether the consumer was new: it had no earlier image, and keeps the one that failed.
    pub fn was_new(&self) -> bool {
        self.image == self.failed_image
    }

    /// Whether the previous entry is applied and its rollout did not fail.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.verdict.as_ref().is_none_or(|v| v.kind.is_success())
    }
}

impl RunReport {
    /// Names of the consumers whose image stage ended with `outcome`.
    pub fn names(&self, outcome: ImageOutcome) -> Vec<&str> {
        self.images
            .iter()
            .filter(|(_, r)| r.outcome == outcome)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The consumers that failed, with why.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &ImageError)> {
        self.images
            .iter()
            .filter_map(|(n, r)| Some((n.as_str(), r.error.as_ref()?)))
    }
}
