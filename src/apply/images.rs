//! The image stage of `deploy`, and the registry observation `plan` shares with it.
//!
//! Observe: for each consumer, does its ECR repository exist, and does the registry hold its
//! fingerprint tag (`ctx-…`) and the commit tag (`sha-…`)? Then, after the plan: ensure every
//! repository, build and push what changed (at most `build-concurrency` at a time), put the commit
//! tag on images that already exist, and record each image's digest. A consumer that fails is
//! marked failed with its reason; the others go on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::{Mutex, Semaphore};

use crate::clients::builder::{BuildRequest, Engine};
use crate::clients::ecr::{EcrError, RepositoryService, RepositorySpec};
use crate::clients::registry::{Registry, RegistryAuth, RegistryError};
use crate::config::{DeploySettings, RegistryHost, Settings};
use crate::consumers::discovery::ConsumerSpec;
use crate::context::BuildContext;
use crate::gha::{Annotation, Level, Runner};
use crate::plan::{
    ConsumerPlan, ImageOutcome, ImageResult, ObservedConsumer, ObservedState, Plan, Status, Step,
};

/// Look-ups in flight at once while observing, and consumers handled at once while applying
/// (builds are bounded separately by `build-concurrency`).
pub const LOOKUP_CONCURRENCY: usize = 8;
/// Prefix of the tag that carries the commit.
pub const COMMIT_TAG_PREFIX: &str = "sha-";
/// Build output kept per consumer when builds run concurrently and their logs are printed one
/// after another; beyond this, only the last lines are kept.
const BUFFERED_LOG_BYTES: usize = 512 * 1024;

/// The tag that marks the image of a commit.
pub fn commit_tag(commit: &str) -> String {
    format!("{COMMIT_TAG_PREFIX}{commit}")
}

/// What was observed, and the consumers whose look-ups failed (with why).
pub struct Observation {
    pub state: ObservedState,
    pub failures: HashMap<String, String>,
}

/// Ask ECR and the registry what exists for each consumer, given as its resource name and
/// fingerprint tag, in parallel.
pub async fn observe(
    ecr: &dyn RepositoryService,
    registry: &dyn Registry,
    consumers: &[(&str, String)],
    commit: Option<&str>,
) -> Observation {
    let lookups = consumers.iter().map(|(name, tag)| async move {
        let result = observe_one(ecr, registry, name, tag, commit).await;
        (name.to_string(), result)
    });
    let results: Vec<(String, Result<ObservedConsumer, String>)> =
        futures_util::stream::iter(lookups)
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
    let mut state = ObservedState::default();
    let mut failures = HashMap::new();
    for (name, r) in results {
        match r {
            Ok(o) => {
                state.consumers.insert(name, o);
            }
            Err(e) => {
                failures.insert(name, e);
            }
        }
    }
    Observation { state, failures }
}

async fn observe_one(
    ecr: &dyn RepositoryService,
    registry: &dyn Registry,
    repository: &str,
    fingerprint_tag: &str,
    commit: Option<&str>,
) -> Result<ObservedConsumer, String> {
    let mut o = ObservedConsumer::default();
    if ecr
        .find(repository)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Ok(o);
    }
    o.repository = true;
    let sha_tag = commit.map(commit_tag);
    let (ctx, sha) = tokio::join!(registry.digest(repository, fingerprint_tag), async {
        match &sha_tag {
            Some(t) => registry.digest(repository, t).await,
            None => Ok(None),
        }
    });
    let ctx = ctx.map_err(|e| e.to_string())?;
    let sha = sha.map_err(|e| e.to_string())?;
    o.fingerprint_image = ctx.is_some();
    // With immutable tags a commit tag on another image cannot be moved; the image is pinned by
    // digest anyway, so an existing commit tag is left as it is.
    o.commit_tag = sha.is_some();
    Ok(o)
}

/// Everything the image stage needs.
pub struct ImageStage<'a> {
    pub settings: &'a Settings,
    pub deploy: &'a DeploySettings,
    pub runner: &'a Runner,
    pub ecr: Arc<dyn RepositoryService>,
    pub registry: Arc<dyn Registry>,
    pub registry_host: RegistryHost,
    pub auth: RegistryAuth,
    /// Connected only when something is built.
    pub engine: Option<Engine>,
    pub commit: Option<String>,
}

/// Apply the image steps of `plan`: fills each valid consumer's [`ImageResult`].
pub async fn apply_images(
    stage: &ImageStage<'_>,
    plan: &mut Plan,
    specs: &[&ConsumerSpec],
    lookup_failures: &HashMap<String, String>,
) {
    let builds = Semaphore::new(stage.deploy.build_concurrency.max(1));
    let print = Mutex::new(());
    let live = stage.deploy.build_concurrency == 1;
    let by_resource: HashMap<&str, &ConsumerSpec> = specs
        .iter()
        .map(|s| (s.resource_name.as_str(), *s))
        .collect();
    let work: Vec<(usize, &ConsumerPlan, &ConsumerSpec)> = plan
        .consumers
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.status, Status::New | Status::Changed | Status::Unchanged))
        .filter_map(|(i, c)| {
            let spec = by_resource.get(c.resource_name.as_deref()?)?;
            Some((i, c, *spec))
        })
        .collect();
    let tasks = work.into_iter().map(|(i, c, spec)| {
        let builds = &builds;
        let print = &print;
        async move {
            let started = Instant::now();
            let result = match lookup_failures.get(&spec.resource_name) {
                Some(e) => Err(Failed::new(format!("could not look up its image: {e}"))),
                None => one(stage, c, spec, builds, print, live).await,
            };
            let result = match result {
                Ok(mut r) => {
                    r.duration = started.elapsed();
                    r
                }
                Err(f) => ImageResult {
                    outcome: ImageOutcome::Failed,
                    image: None,
                    digest: None,
                    size: None,
                    duration: started.elapsed(),
                    failure: Some(f.reason),
                    log_tail: f.tail,
                },
            };
            let _g = print.lock().await;
            stage.runner.print(&result_line(&c.name, &result));
            (i, result)
        }
    });
    let results: Vec<(usize, ImageResult)> = futures_util::stream::iter(tasks)
        .buffer_unordered(LOOKUP_CONCURRENCY.max(stage.deploy.build_concurrency))
        .collect()
        .await;
    for (i, r) in results {
        plan.consumers[i].image = Some(r);
    }
}

/// One line per consumer in the log once its image is settled.
pub fn result_line(name: &str, r: &ImageResult) -> String {
    match (&r.failure, &r.digest) {
        (Some(f), _) => format!("✗ {name}: failed: {f}"),
        (None, Some(d)) => format!(
            "✓ {name}: {} {d} ({}, {:.1} s)",
            r.outcome.as_str(),
            r.size.map_or("size unknown".into(), crate::report::bytes),
            r.duration.as_secs_f64()
        ),
        (None, None) => format!("✓ {name}: {}", r.outcome.as_str()),
    }
}

struct Failed {
    reason: String,
    tail: Vec<String>,
}

impl Failed {
    fn new(reason: impl Into<String>) -> Self {
        Failed {
            reason: reason.into(),
            tail: Vec::new(),
        }
    }
}

impl From<RegistryError> for Failed {
    fn from(e: RegistryError) -> Self {
        Failed::new(e.to_string())
    }
}

impl From<EcrError> for Failed {
    fn from(e: EcrError) -> Self {
        Failed::new(e.to_string())
    }
}

async fn one(
    stage: &ImageStage<'_>,
    c: &ConsumerPlan,
    spec: &ConsumerSpec,
    builds: &Semaphore,
    print: &Mutex<()>,
    live: bool,
) -> Result<ImageResult, Failed> {
    let fingerprint = c
        .fingerprint
        .as_ref()
        .ok_or_else(|| Failed::new("it has no fingerprint"))?;
    let repo = spec.resource_name.as_str();
    let ctx_tag = fingerprint.tag();
    stage
        .ecr
        .ensure(&RepositorySpec {
            name: repo.to_string(),
            project: stage.settings.project.to_string(),
            consumer: spec.name.to_string(),
            environment: stage.settings.environment.clone(),
            keep_images: stage.deploy.keep_images,
            untagged_expiry_days: stage.deploy.untagged_expiry_days,
        })
        .await?;

    let mut outcome = if c.has(Step::Build) {
        ImageOutcome::Built
    } else if c.has(Step::Retag) {
        ImageOutcome::Retagged
    } else {
        ImageOutcome::Reused
    };
    // An image the plan reuses as it is already carries the commit tag: the observation saw it.
    let commit_tag_seen = outcome == ImageOutcome::Reused;
    if outcome == ImageOutcome::Built {
        let _slot = builds
            .acquire()
            .await
            .map_err(|_| Failed::new("the build queue closed"))?;
        match build_and_push(stage, spec, c, &ctx_tag, print, live).await {
            Ok(()) => {}
            Err(f) => {
                // Another run may have pushed the same fingerprint meanwhile (tags are
                // immutable, so our push of it is refused): that image is the one we wanted.
                if stage
                    .registry
                    .digest(repo, &ctx_tag)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    outcome = ImageOutcome::Reused;
                } else {
                    return Err(f);
                }
            }
        }
    }
    let manifest = stage.registry.manifest(repo, &ctx_tag).await?;
    if let Some(commit) = stage.commit.as_ref().filter(|_| !commit_tag_seen) {
        let tag = commit_tag(commit);
        if stage.registry.digest(repo, &tag).await?.is_none() {
            let digest = stage.registry.put_manifest(repo, &tag, &manifest).await?;
            if digest != manifest.digest {
                return Err(Failed::new(format!(
                    "the registry stored `{repo}:{tag}` as {digest}, not {}",
                    manifest.digest
                )));
            }
            if outcome == ImageOutcome::Reused {
                outcome = ImageOutcome::Retagged;
            }
        }
    }
    Ok(ImageResult {
        outcome,
        image: Some(format!(
            "{}/{repo}@{}",
            stage.registry_host.host, manifest.digest
        )),
        size: manifest.stored_size(),
        digest: Some(manifest.digest),
        duration: Duration::ZERO,
        failure: None,
        log_tail: Vec::new(),
    })
}

/// Build output for one consumer: printed as it comes inside the consumer's group when builds run
/// one at a time, else kept (up to a bound) and printed as one group when the consumer is done.
struct ConsumerLog<'a> {
    runner: &'a Runner,
    live: bool,
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
}

impl ConsumerLog<'_> {
    fn line(&mut self, line: &str) {
        if self.live {
            self.runner.print_untrusted(line);
        } else if self.bytes + line.len() <= BUFFERED_LOG_BYTES {
            self.bytes += line.len() + 1;
            self.lines.push(line.to_string());
        } else {
            self.dropped += 1;
        }
    }

    fn flush(&mut self, title: &str) {
        if self.live {
            return;
        }
        let _g = self.runner.group(title);
        if !self.lines.is_empty() {
            self.runner.print_untrusted(&self.lines.join("\n"));
        }
        if self.dropped > 0 {
            self.runner.print(&format!(
                "… {} more lines were not kept; the failure message has the last ones",
                self.dropped
            ));
        }
    }
}

async fn build_and_push(
    stage: &ImageStage<'_>,
    spec: &ConsumerSpec,
    c: &ConsumerPlan,
    ctx_tag: &str,
    print: &Mutex<()>,
    live: bool,
) -> Result<(), Failed> {
    let engine = stage
        .engine
        .as_ref()
        .ok_or_else(|| Failed::new("the Docker engine is not connected"))?;
    let s = &spec.settings;
    let context = tokio::task::spawn_blocking({
        let dir = spec.dir.clone();
        let dockerfile = s.build.dockerfile.clone();
        move || BuildContext::scan(&dir, &dockerfile)
    })
    .await
    .map_err(|e| Failed::new(format!("scanning the build context stopped: {e}")))?
    .map_err(|e| Failed::new(e.to_string()))?;
    let reference = format!(
        "{}/{}:{ctx_tag}",
        stage.registry_host.host, spec.resource_name
    );
    let request = BuildRequest {
        context,
        target: s.build.target.clone(),
        args: s.build.args.clone().into_iter().collect(),
        platform: s.platform.as_str().to_string(),
        tag: reference.clone(),
        labels: labels(stage, spec, c),
    };
    let title = format!("build and push {} ({})", c.name, spec.resource_name);
    // Held for the whole build when it is printed live, so no other output lands in its group.
    let _live_guard = if live { Some(print.lock().await) } else { None };
    let _group = live.then(|| stage.runner.group(&title));
    let mut log = ConsumerLog {
        runner: stage.runner,
        live,
        lines: Vec::new(),
        bytes: 0,
        dropped: 0,
    };
    let built = {
        let mut sink = |l: &str| log.line(l);
        engine.build(request, &mut sink).await
    };
    let result = match built {
        Ok(_) => {
            let server = stage.registry_host.host.clone();
            let mut sink = |l: &str| log.line(l);
            engine
                .push(&reference, &server, &stage.auth, &mut sink)
                .await
                .map_err(|e| Failed::new(e.to_string()))
        }
        Err(f) => {
            let file = format!("{}/{}", spec.display_dir, s.build.dockerfile);
            let line = f
                .step
                .as_deref()
                .and_then(crate::clients::builder::step_number)
                .and_then(|n| {
                    let text = std::fs::read_to_string(spec.dir.join(&s.build.dockerfile)).ok()?;
                    crate::clients::builder::instruction_line(&text, n)
                });
            let reason = match line {
                Some(l) => format!("`{file}` line {l}: {f}"),
                None => format!("`{file}`: {f}"),
            };
            stage.runner.annotate(
                &Annotation::new(Level::Error, f.to_string())
                    .file(file, line)
                    .title(format!("{}: the image build failed", c.name)),
            );
            Err(Failed {
                reason,
                tail: f.tail,
            })
        }
    };
    if !live {
        let _g = print.lock().await;
        log.flush(&title);
    }
    result
}

fn labels(
    stage: &ImageStage<'_>,
    spec: &ConsumerSpec,
    c: &ConsumerPlan,
) -> HashMap<String, String> {
    let g = &stage.settings.github;
    let mut labels = HashMap::new();
    if let (Some(server), Some(repo)) = (&g.server_url, &g.repository) {
        labels.insert(
            "org.opencontainers.image.source".into(),
            format!("{}/{repo}", server.trim_end_matches('/')),
        );
    }
    if let Some(commit) = &stage.commit {
        labels.insert("org.opencontainers.image.revision".into(), commit.clone());
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    labels.insert("org.opencontainers.image.created".into(), now);
    labels.insert(
        "org.opencontainers.image.title".into(),
        spec.resource_name.clone(),
    );
    if let Some(f) = &c.fingerprint {
        labels.insert("dev.cdc-deploy.fingerprint".into(), f.hex().to_string());
    }
    labels
}
