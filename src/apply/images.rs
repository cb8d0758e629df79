//! The image stage of `deploy`: exactly the plan's repository and image steps. It creates the
//! repositories the plan says are missing and reconciles the ones that drifted, builds and pushes
//! the images whose fingerprint the registry does not hold (at most `build-concurrency` at a
//! time), puts the commit tag on the images it built, and records every image by digest. A
//! consumer with no steps costs no request: the plan already knows its image. A consumer that
//! fails is recorded with its reason; the others go on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::{Mutex, MutexGuard, Semaphore};

use super::{ImageError, ImageOutcome, ImageResult};
use crate::clients::builder::{BuildError, BuildRequest, EngineError, ImageBuilder, RegistryLogin};
use crate::clients::ecr::{RepositoryDrift, RepositoryService, RepositorySpec, CACHE_TAG_PREFIX};
use crate::clients::registry::Registry;
use crate::config::event::CommitSha;
use crate::consumers::discovery::ConsumerSpec;
use crate::context::tar::Expected;
use crate::context::BuildContext;
use crate::gha::{Annotation, GroupGuard, Level, Runner};
use crate::plan::{ConsumerPlan, Plan, Status, Step};
use crate::reference::RegistryHost;

/// Consumers handled at once (builds are bounded separately by `build-concurrency`).
const CONSUMER_CONCURRENCY: usize = 8;
/// Prefix of the tag that carries the commit.
pub const COMMIT_TAG_PREFIX: &str = "sha-";
/// Build output kept per consumer when builds run concurrently and their logs are printed one
/// after another; lines beyond it are counted and dropped (a failure keeps its own last lines).
const BUFFERED_LOG_BYTES: usize = 512 * 1024;

/// The tag that marks the image a commit built.
pub fn commit_tag(commit: &CommitSha) -> String {
    format!("{COMMIT_TAG_PREFIX}{commit}")
}

/// A consumer the stage can build: its spec and the scan its fingerprint was made from.
pub struct Buildable<'a> {
    pub spec: &'a ConsumerSpec,
    pub context: &'a BuildContext,
}

/// Everything the image stage needs.
pub struct ImageStage<'a> {
    pub runner: &'a Runner,
    pub ecr: &'a dyn RepositoryService,
    pub registry: &'a dyn Registry,
    /// The engine, when the plan builds something and it could be reached.
    pub builder: Result<&'a dyn ImageBuilder, EngineError>,
    pub registry_host: RegistryHost,
    pub login: RegistryLogin,
    pub project: String,
    pub environment: String,
    pub keep_images: u32,
    pub untagged_expiry_days: u32,
    pub build_concurrency: usize,
    /// How long one consumer's builds (its cache stages and its image) may take.
    pub build_timeout: Duration,
    pub commit: Option<CommitSha>,
    /// `https://github.com/owner/repo`, for the image's source label.
    pub source_url: Option<String>,
    /// Set when the run is cancelled: no build starts after it, and one in progress stops.
    pub cancel: &'a crate::cancel::Cancel,
    /// Whether builds take their cache from the registry and leave theirs there.
    pub build_cache: bool,
}

/// Apply the image steps of `plan` for every consumer that can have an image.
pub async fn apply(
    stage: &ImageStage<'_>,
    plan: &Plan,
    buildable: &HashMap<&str, Buildable<'_>>,
) -> BTreeMap<String, ImageResult> {
    let builds = Semaphore::new(stage.build_concurrency.max(1));
    let print = Mutex::new(());
    let work = plan.consumers.iter().filter(|c| {
        matches!(
            c.status,
            Status::New | Status::Changed | Status::Unchanged | Status::Unknown
        )
    });
    let tasks = work.map(|c| {
        let builds = &builds;
        let print = &print;
        async move {
            let started = Instant::now();
            let mut log = ConsumerLog::new(stage.runner, c, stage.build_concurrency == 1);
            let result = match crate::cancel::or_cancelled(
                stage.cancel,
                one(stage, c, buildable, builds, print, &mut log),
            )
            .await
            {
                Ok(r) => r,
                Err(cancelled) => Err(ImageError::Cancelled(cancelled)),
            };
            let result = match result {
                // A build's time is its own (from the moment it had a build slot); anything
                // else counts from the start.
                Ok(mut r) => {
                    if r.duration.is_zero() {
                        r.duration = started.elapsed();
                    }
                    r
                }
                Err(e) => ImageResult {
                    outcome: ImageOutcome::Failed,
                    image: None,
                    digest: None,
                    size: None,
                    duration: started.elapsed(),
                    error: Some(e),
                },
            };
            // Each consumer's story once, in order: its build log and result line in its group,
            // then a failed build's annotation on its Dockerfile line. Other failures are
            // annotated together below: one cause shared by many consumers is said once.
            let line = (!c.steps.is_empty() || result.error.is_some())
                .then(|| result_line(&c.name, &result));
            let annotation = match &result.error {
                Some(ImageError::Build { file, failure }) => Some(
                    Annotation::new(Level::Error, failure.to_string())
                        .file(file.clone(), failure.line)
                        .title(format!("{}: the image build failed", c.name)),
                ),
                _ => None,
            };
            log.finish(print, line.as_deref(), annotation).await;
            (c.name.clone(), result)
        }
    });
    let results: BTreeMap<String, ImageResult> = futures_util::stream::iter(tasks)
        .buffer_unordered(CONSUMER_CONCURRENCY.max(stage.build_concurrency))
        .collect()
        .await;
    let shared = results.iter().filter_map(|(name, r)| match &r.error {
        Some(ImageError::Build { .. }) | None => None,
        Some(e) => Some((name.as_str(), e.stage(), e.to_string())),
    });
    for a in crate::gha::grouped_errors(shared) {
        stage.runner.annotate(&a);
    }
    results
}

/// One line per consumer in the log once its image is settled.
pub fn result_line(name: &str, r: &ImageResult) -> String {
    match (&r.error, &r.digest) {
        (Some(e), _) => format!("✗ {name}: {e}"),
        (None, Some(d)) => format!(
            "✓ {name}: {} {d} ({}, {:.1} s)",
            r.outcome.as_str(),
            r.size.map_or("size unknown".into(), crate::report::bytes),
            r.duration.as_secs_f64()
        ),
        (None, None) => format!("✓ {name}: {}", r.outcome.as_str()),
    }
}

async fn one<'a>(
    stage: &ImageStage<'a>,
    c: &ConsumerPlan,
    buildable: &HashMap<&str, Buildable<'_>>,
    builds: &Semaphore,
    print: &'a Mutex<()>,
    log: &mut ConsumerLog<'a>,
) -> Result<ImageResult, ImageError> {
    if let Some(failure) = &c.lookup_failure {
        return Err(ImageError::Lookup(failure.clone()));
    }
    let unapplicable = |reason: &'static str| ImageError::Unapplicable {
        consumer: c.name.clone(),
        reason,
    };
    let Some(repo) = c.resource_name.as_deref() else {
        return Err(unapplicable("it has no resource name"));
    };
    let spec = RepositorySpec {
        name: repo.to_string(),
        project: stage.project.clone(),
        consumer: c.name.clone(),
        environment: stage.environment.clone(),
        keep_images: stage.keep_images,
        untagged_expiry_days: stage.untagged_expiry_days,
        cache_tags_mutable: stage.build_cache,
        mutable_tags: c.repository_mutable_tags.clone(),
    };
    if c.has(Step::CreateRepository) {
        stage
            .ecr
            .create(&spec)
            .await
            .map_err(ImageError::Repository)?;
    }
    if c.has(Step::ReconcileRepository) {
        // What protects the images must be put back; the cache's exclusion only makes the next
        // build faster, and the `keep-*` exclusion with its policy protects images only once a
        // deploy moves the tags, so a refusal of either (ECR allows five filters) is said and the
        // build goes on.
        let (cache, must): (Vec<RepositoryDrift>, Vec<RepositoryDrift>) =
            c.repository_drift.iter().partition(|d| {
                matches!(
                    d,
                    RepositoryDrift::CacheTagsImmutable | RepositoryDrift::KeepTagsImmutable
                )
            });
        if !must.is_empty() {
            stage
                .ecr
                .reconcile(&spec, &must)
                .await
                .map_err(ImageError::Repository)?;
        }
        if !cache.is_empty() {
            if let Err(e) = stage.ecr.reconcile(&spec, &cache).await {
                log.line(&format!(
                    "the repository's tags {} could not be made mutable, or its lifecycle policy set ({e}); the build goes on, {}",
                    cache.iter().map(|d| d.describe()).collect::<Vec<_>>().join(", "),
                    "its cache is not moved and the images environments run are kept only by `keep-images`"
                ));
            }
        }
    }
    let pinned = |digest: &str| format!("{}/{repo}@{digest}", stage.registry_host.host);
    if !c.has(Step::Build) {
        let Some(existing) = &c.existing_image else {
            return Err(unapplicable("the plan builds nothing and knows no image"));
        };
        return Ok(ImageResult {
            outcome: ImageOutcome::Reused,
            image: Some(pinned(&existing.digest)),
            digest: Some(existing.digest.clone()),
            size: existing.size,
            duration: Duration::ZERO,
            error: None,
        });
    }
    let ctx_tag = fingerprint_tag(c);
    let target = buildable
        .get(c.name.as_str())
        .ok_or_else(|| unapplicable("its build context was not scanned"))?;
    let (built, building) = {
        let _slot = builds.acquire().await.ok();
        let at = Instant::now();
        let built = build_and_push(stage, c, target, &ctx_tag, print, log).await;
        (built, at.elapsed())
    };
    let pushed = stage.registry.manifest(repo, &ctx_tag);
    let (outcome, manifest) = match built {
        Ok(()) => (
            ImageOutcome::Built,
            pushed
                .await
                .map_err(ImageError::Registry)?
                .ok_or_else(|| ImageError::NotPushed {
                    reference: format!("{repo}:{ctx_tag}"),
                })?,
        ),
        // Another run may have pushed the same fingerprint meanwhile (tags are immutable, so our
        // push of it is refused): that image is the one we wanted, and it is not ours to tag.
        Err(e @ ImageError::Push(_)) => match pushed.await {
            Ok(Some(m)) => (ImageOutcome::Reused, m),
            _ => return Err(e),
        },
        Err(e) => return Err(e),
    };
    if let (ImageOutcome::Built, Some(commit)) = (outcome, &stage.commit) {
        put_commit_tag(stage, repo, commit, &manifest).await?;
    }
    if outcome == ImageOutcome::Built && stage.build_cache {
        // The image is the next build's cache; without the tag that build is only slower.
        if let Err(e) = stage
            .registry
            .put_manifest(repo, CACHE_IMAGE_TAG, &manifest)
            .await
        {
            log.line(&format!(
                "cache: `{CACHE_IMAGE_TAG}` was not moved to this image ({e}); the next build on a cold engine starts from an older one or from nothing"
            ));
        }
    }
    Ok(ImageResult {
        outcome,
        image: Some(pinned(&manifest.digest)),
        size: manifest.stored_size(),
        digest: Some(manifest.digest),
        duration: if outcome == ImageOutcome::Built {
            building
        } else {
            Duration::ZERO
        },
        error: None,
    })
}

/// Put the commit tag on the image this run built. Tags are immutable: when the commit already
/// tags another image (the same commit built again from a changed checkout), that tag stays, and
/// the image is pinned by digest all the same.
async fn put_commit_tag(
    stage: &ImageStage<'_>,
    repo: &str,
    commit: &CommitSha,
    manifest: &crate::clients::registry::Manifest,
) -> Result<(), ImageError> {
    let tag = commit_tag(commit);
    if let Some(existing) = stage
        .registry
        .manifest(repo, &tag)
        .await
        .map_err(ImageError::Registry)?
    {
        if existing.digest != manifest.digest {
            tracing::info!(
                repo,
                tag,
                "the commit tag already marks another image; it is left as it is"
            );
        }
        return Ok(());
    }
    let stored = stage
        .registry
        .put_manifest(repo, &tag, manifest)
        .await
        .map_err(ImageError::Registry)?;
    if stored != manifest.digest {
        return Err(ImageError::DigestMismatch {
            reference: format!("{repo}:{tag}"),
            stored,
            expected: manifest.digest.clone(),
        });
    }
    Ok(())
}

fn fingerprint_tag(c: &ConsumerPlan) -> String {
    c.fingerprint.as_ref().map(|f| f.tag()).unwrap_or_default()
}

/// Output for one consumer. With builds one at a time it is printed as it comes, inside the
/// consumer's group; otherwise it is kept (up to a bound) and printed as one group when the
/// consumer is done, so groups never interleave. The result line ends the group either way.
struct ConsumerLog<'a> {
    runner: &'a Runner,
    title: String,
    live: bool,
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
    /// Whether a build started: only then is there a group.
    built: bool,
    /// With `live`, the log's turn, held from the build's start to the result line.
    turn: Option<MutexGuard<'a, ()>>,
    group: Option<GroupGuard<'a>>,
}

impl<'a> ConsumerLog<'a> {
    fn new(runner: &'a Runner, c: &ConsumerPlan, live: bool) -> Self {
        ConsumerLog {
            runner,
            title: format!(
                "build and push {} ({})",
                c.name,
                c.resource_name.as_deref().unwrap_or("-")
            ),
            live,
            lines: Vec::new(),
            bytes: 0,
            dropped: 0,
            built: false,
            turn: None,
            group: None,
        }
    }

    /// A build starts: printed live, it takes the log's turn and opens its group now.
    async fn start(&mut self, print: &'a Mutex<()>) {
        self.built = true;
        if self.live {
            self.turn = Some(print.lock().await);
            self.group = Some(self.runner.group(&self.title));
        }
    }

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

    /// Print what is kept and the result line, close the group, then annotate.
    async fn finish(
        mut self,
        print: &'a Mutex<()>,
        result: Option<&str>,
        annotation: Option<Annotation>,
    ) {
        if result.is_none() && annotation.is_none() && !self.built {
            return;
        }
        let turn = match self.turn.take() {
            Some(t) => t,
            None => print.lock().await,
        };
        let group = match self.group.take() {
            Some(g) => Some(g),
            None if self.built => Some(self.runner.group(&self.title)),
            None => None,
        };
        if !self.lines.is_empty() {
            self.runner.print_untrusted(&self.lines.join("\n"));
        }
        if self.dropped > 0 {
            self.runner.print(&format!(
                "… {} more lines were not kept; the failure message has the last ones",
                self.dropped
            ));
        }
        if let Some(r) = result {
            self.runner.print_untrusted(r);
        }
        drop(group);
        if let Some(a) = annotation {
            self.runner.annotate(&a);
        }
        drop(turn);
    }
}

/// The tag of the image last built for a consumer, kept for its cache: the next build, on any
/// engine, reuses its layers. Tags under [`CACHE_TAG_PREFIX`] are the only mutable ones.
pub const CACHE_IMAGE_TAG: &str = "cache-image";
/// The longest tag a registry takes.
const MAX_TAG: usize = 128;

/// The tag an earlier stage's cache image is kept under.
pub fn stage_cache_tag(stage: &str) -> String {
    format!("{CACHE_TAG_PREFIX}stage-{stage}")
}

/// The stages whose cache is kept apart for a consumer's build, by name, and a line for each one
/// that cannot be (an unnamed stage cannot be built on its own).
fn cached_stages(context: &BuildContext, target: Option<&str>) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(context.root.join(&context.dockerfile)).unwrap_or_default();
    let mut named = Vec::new();
    let mut said = Vec::new();
    for stage in crate::consumers::dockerfile::cache_stages(&text, target) {
        match stage {
            Err(k) => said.push(format!(
                "cache: stage {k} has no name, so its cache is not kept and a cold engine runs its steps again; name it with `FROM <image> AS <name>`"
            )),
            Ok(name) if stage_cache_tag(&name).len() > MAX_TAG => said.push(format!(
                "cache: stage `{name}` has a name too long for a tag, so its cache is not kept"
            )),
            Ok(name) => named.push(name),
        }
    }
    (named, said)
}

async fn build_and_push<'a>(
    stage: &ImageStage<'a>,
    c: &ConsumerPlan,
    target: &Buildable<'_>,
    ctx_tag: &str,
    print: &'a Mutex<()>,
    log: &mut ConsumerLog<'a>,
) -> Result<(), ImageError> {
    let builder = match &stage.builder {
        Ok(b) => *b,
        Err(e) => return Err(ImageError::Engine(e.clone())),
    };
    let spec = target.spec;
    let s = &spec.settings;
    let fingerprint = c
        .fingerprint
        .clone()
        .ok_or_else(|| ImageError::Unapplicable {
            consumer: c.name.clone(),
            reason: "it has no fingerprint",
        })?;
    let image = |tag: &str| format!("{}/{}:{tag}", stage.registry_host.host, spec.resource_name);
    let reference = image(ctx_tag);
    let (stages, said, cache_from) = if stage.build_cache {
        let (stages, said) = cached_stages(target.context, s.build.target.as_deref());
        let from: Vec<String> = std::iter::once(image(CACHE_IMAGE_TAG))
            .chain(stages.iter().map(|n| image(&stage_cache_tag(n))))
            .collect();
        (stages, said, from)
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let context = target.context;
    let request = |build_target: Option<String>, tag: String, labels| BuildRequest {
        context: context.clone(),
        expected: Expected {
            fingerprint: fingerprint.clone(),
            build: s.build.clone(),
            platform: s.platform,
        },
        target: build_target,
        args: s.build.args.clone().into_iter().collect(),
        platform: s.platform.as_str().to_string(),
        tag,
        labels,
        logins: vec![stage.login.clone()],
        cache_from: cache_from.clone(),
        inline_cache: stage.build_cache,
    };
    let failed = |e: BuildError| match e {
        BuildError::ContextChanged(source) => ImageError::ContextChanged {
            dir: spec.display_dir.clone(),
            source,
        },
        BuildError::Engine(message) => ImageError::EngineLost {
            engine: builder.engine(),
            message,
        },
        BuildError::Failed(failure) => ImageError::Build {
            file: format!("{}/{}", spec.display_dir, s.build.dockerfile),
            failure,
        },
    };
    log.start(print).await;
    for line in &said {
        log.line(line);
    }
    // The builds stop at the deadline: dropping a build closes its connection, and the engine
    // stops the build.
    let deadline = tokio::time::Instant::now() + stage.build_timeout;
    let last_line = std::sync::Mutex::new(tokio::time::Instant::now());
    let timed_out = || ImageError::BuildTimedOut {
        engine: builder.engine(),
        limit: stage.build_timeout,
        silent: last_line.lock().map_or(Duration::ZERO, |t| t.elapsed()),
    };
    // Each earlier stage whose files the image takes is built and pushed on its own, with its
    // cache inline: the image's inline cache covers only the stages it is built on.
    for name in &stages {
        let stage_tag = stage_cache_tag(name);
        let tag = image(&stage_tag);
        log.line(&format!(
            "cache: building stage `{name}` to keep its cache as `{stage_tag}`"
        ));
        let mut labels = HashMap::new();
        labels.insert(
            "org.opencontainers.image.title".into(),
            spec.resource_name.clone(),
        );
        labels.insert("dev.cdc-deploy.cache-stage".into(), name.clone());
        let built = {
            let mut sink = |l: &str| {
                if let Ok(mut t) = last_line.lock() {
                    *t = tokio::time::Instant::now();
                }
                log.line(l)
            };
            tokio::time::timeout_at(
                deadline,
                builder.build(request(Some(name.clone()), tag.clone(), labels), &mut sink),
            )
            .await
        };
        let Ok(built) = built else {
            return Err(timed_out());
        };
        let stats = match built {
            Ok(stats) => stats,
            Err(e @ (BuildError::ContextChanged(_) | BuildError::Engine(_))) => {
                return Err(failed(e))
            }
            // Built only for its cache: the image's build runs the same steps and says what
            // fails, if anything does.
            Err(BuildError::Failed(f)) => {
                log.line(&format!(
                    "cache: stage `{name}` could not be built on its own ({f}); the image is built without keeping its cache"
                ));
                continue;
            }
        };
        log.line(&format!("cache: stage `{name}`: {}", stats.describe()));
        let pushed = {
            let mut sink = |l: &str| {
                if let Ok(mut t) = last_line.lock() {
                    *t = tokio::time::Instant::now();
                }
                log.line(l)
            };
            builder.push(&tag, &stage.login, &mut sink).await
        };
        if let Err(e) = pushed {
            log.line(&format!(
                "cache: stage `{name}`'s cache was not pushed ({e}); the next build on a cold engine runs its steps again"
            ));
        }
    }
    let built = {
        let mut sink = |l: &str| {
            if let Ok(mut t) = last_line.lock() {
                *t = tokio::time::Instant::now();
            }
            log.line(l)
        };
        tokio::time::timeout_at(
            deadline,
            builder.build(
                request(
                    s.build.target.clone(),
                    reference.clone(),
                    labels(stage, spec, c),
                ),
                &mut sink,
            ),
        )
        .await
    };
    let stats = built.map_err(|_| timed_out())?.map_err(failed)?;
    log.line(&format!("cache: {}", stats.describe()));
    let mut sink = |l: &str| log.line(l);
    builder
        .push(&reference, &stage.login, &mut sink)
        .await
        .map_err(ImageError::Push)
}

fn labels(
    stage: &ImageStage<'_>,
    spec: &ConsumerSpec,
    c: &ConsumerPlan,
) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if let Some(source) = &stage.source_url {
        labels.insert("org.opencontainers.image.source".into(), source.clone());
    }
    if let Some(commit) = &stage.commit {
        labels.insert(
            "org.opencontainers.image.revision".into(),
            commit.to_string(),
        );
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
