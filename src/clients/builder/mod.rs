//! The image builder: the Docker Engine, through its API (bollard). It builds a consumer's image
//! from the context stream with BuildKit (so `RUN --mount=type=cache` and `COPY --chmod` work as
//! with `docker build` on a current runner), or with the classic builder where the engine has no
//! BuildKit or `DOCKER_BUILDKIT=0` asks for it, and pushes it with the registry's credentials.
//!
//! The engine is found at `DOCKER_HOST` or `/var/run/docker.sock`, where a container action finds
//! the runner's daemon. Build output is handed line by line to the caller, which decides where it
//! goes; the failing step, its Dockerfile line and the last lines are kept for the failure. The
//! registry credentials reach the build too, so `FROM` an image in the private registry works.

pub mod buildkit;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, CreateImageOptions, PushImageOptions,
};
use bollard::Docker;
use futures_util::StreamExt as _;
use rand::Rng as _;

use crate::clients::registry::RegistryAuth;
use crate::clients::retry::RetryPolicy;
use crate::context::tar::{Expected, SentContextError};
use crate::context::BuildContext;

/// Where a container action finds the runner's daemon.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Seconds one engine request may take. A build is one request, so this bounds a build.
const REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Lines of build output kept for a failure message.
pub const TAIL_LINES: usize = 25;
/// The engine API version from which `/build` takes a BuildKit session (Docker 18.09).
const BUILDKIT_API: (u32, u32) = (1, 39);

/// The engine could not be reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("could not reach the Docker engine at `{address}`: {message}; a container action needs `/var/run/docker.sock`, elsewhere set `DOCKER_HOST`")]
pub struct EngineError {
    pub address: String,
    pub message: String,
}

/// A build that did not produce an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailure {
    /// The step that was running, as the builder named it (`[2/3] RUN make`, `Step 3/5 : RUN make`).
    pub step: Option<String>,
    /// The Dockerfile line that step starts on.
    pub line: Option<usize>,
    pub message: String,
    /// The last lines of output before the failure.
    pub tail: Vec<String>,
}

impl std::fmt::Display for BuildFailure {
    /// One line: the step and the engine's message, each cut to a readable length (the last
    /// lines of the build, kept whole, go in the report).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = crate::failure::one_line(&self.message, 150);
        match &self.step {
            Some(step) => write!(
                f,
                "{} failed: {message}",
                crate::failure::one_line(step, 100)
            ),
            None => write!(f, "the build failed: {message}"),
        }
    }
}

/// Why a build gave no image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Failed(BuildFailure),
    /// The files sent are not the ones the plan fingerprinted.
    #[error(transparent)]
    ContextChanged(SentContextError),
    /// The connection to the engine broke during the build (closed, reset, unreadable): the
    /// engine's failure, not the Dockerfile's.
    #[error("{0}")]
    Engine(String),
}

/// A push that did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("push of `{image}` failed after {attempts} attempt(s): {message}{}", push_hint(.message))]
pub struct PushFailure {
    pub image: String,
    pub attempts: u32,
    pub message: String,
}

/// Where build and push output goes, line by line.
pub type OnLine<'a> = dyn for<'s> FnMut(&'s str) + Send + 'a;

/// Credentials for one registry, by the host name images are referenced with.
#[derive(Clone, Debug)]
pub struct RegistryLogin {
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com` or `127.0.0.1:5000`.
    pub host: String,
    pub auth: RegistryAuth,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The scan the fingerprint was made from; its files are streamed and hashed again.
    pub context: BuildContext,
    pub expected: Expected,
    pub target: Option<String>,
    pub args: HashMap<String, String>,
    /// `linux/amd64` or `linux/arm64`.
    pub platform: String,
    /// The full reference the image is tagged with (`host/repo:tag`).
    pub tag: String,
    pub labels: HashMap<String, String>,
    /// Registries the build may pull from (`FROM` a private base image).
    pub logins: Vec<RegistryLogin>,
    /// Images whose layers the build may reuse (`host/repo:cache-…`, pushed by earlier builds
    /// with their cache inline). One that does not exist yet is skipped.
    pub cache_from: Vec<String>,
    /// Whether the image carries its own cache (BuildKit's inline cache), so a later build on a
    /// cold engine can reuse its layers. The classic builder's images serve as cache as they are.
    pub inline_cache: bool,
}

/// Steps of a build, and how many of them came from the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub steps: usize,
    pub cached: usize,
}

impl BuildStats {
    /// `3 of 4 steps came from the cache`, for the log.
    pub fn describe(&self) -> String {
        format!(
            "{} of {} step{} came from the cache",
            self.cached,
            self.steps,
            if self.steps == 1 { "" } else { "s" }
        )
    }
}

/// Something that builds and pushes images.
#[async_trait]
pub trait ImageBuilder: Send + Sync {
    /// One line for the log: which builder, on which engine.
    fn describe(&self) -> String;
    /// The engine, for messages: "the Docker engine at `unix:///var/run/docker.sock`".
    fn engine(&self) -> String {
        "the image builder".into()
    }
    /// Whether this builder is a fallback the log should warn about (the classic builder, whose
    /// cache is coarser and whose output is less readable).
    fn is_fallback(&self) -> bool {
        false
    }
    /// Build `req`, streaming its context. Each line of output goes to `on_line`.
    async fn build(
        &self,
        req: BuildRequest,
        on_line: &mut OnLine<'_>,
    ) -> Result<BuildStats, BuildError>;
    /// Push `host/repo:tag` with the registry's credentials, retrying transient failures.
    async fn push(
        &self,
        reference: &str,
        login: &RegistryLogin,
        on_line: &mut OnLine<'_>,
    ) -> Result<(), PushFailure>;
}

/// Which of the engine's builders is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    BuildKit,
    /// The classic builder, and why BuildKit is not used.
    Classic {
        why: String,
    },
}

/// The connected engine.
#[derive(Clone, Debug)]
pub struct DockerEngine {
    docker: Docker,
    address: String,
    version: String,
    backend: Backend,
    retry: RetryPolicy,
    /// The run's cancellation: no retry waits past it.
    cancel: crate::cancel::Cancel,
}

fn api_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl DockerEngine {
    /// Connect to `docker_host` (`unix://…`, `tcp://…`, `http://…`) or the default socket, agree
    /// on an API version and choose the builder: BuildKit unless `buildkit` is false or the
    /// engine cannot run it.
    pub async fn connect(docker_host: Option<&str>, buildkit: bool) -> Result<Self, EngineError> {
        let address = docker_host
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_SOCKET)
            .to_string();
        let fail = |e: bollard::errors::Error| EngineError {
            address: address.clone(),
            message: crate::failure::one_line(&e.to_string(), 200),
        };
        let docker = if address.starts_with("tcp://") || address.starts_with("http://") {
            Docker::connect_with_http(&address, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if address.starts_with("unix://") || address.starts_with('/') {
            Docker::connect_with_unix(&address, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(EngineError {
                address: address.clone(),
                message: "only `unix://` and `tcp://` addresses are supported".into(),
            });
        }
        .map_err(fail)?;
        let docker = docker.negotiate_version().await.map_err(fail)?;
        let v = docker.version().await.map_err(fail)?;
        let api = v.api_version.clone().unwrap_or_default();
        let os = v.os.clone().unwrap_or_default();
        let version = format!(
            "Docker Engine {} (API {api}, {os})",
            v.version.as_deref().unwrap_or("?")
        );
        let backend = if !buildkit {
            Backend::Classic {
                why: "`DOCKER_BUILDKIT=0` asks for it".into(),
            }
        } else if os != "linux" {
            Backend::Classic {
                why: format!("the engine runs on `{os}`, where BuildKit is not available"),
            }
        } else if api_version(&api).is_none_or(|a| a < BUILDKIT_API) {
            Backend::Classic {
                why: format!("the engine's API {api} is older than 1.39, which brought BuildKit"),
            }
        } else {
            Backend::BuildKit
        };
        Ok(DockerEngine {
            docker,
            address,
            version,
            backend,
            retry: RetryPolicy::STANDARD,
            cancel: crate::cancel::Cancel::new(),
        })
    }

    /// Retries stop waiting when `cancel` is set.
    pub fn with_cancel(mut self, cancel: &crate::cancel::Cancel) -> Self {
        self.cancel = cancel.clone();
        self
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Pull the cache images the classic builder is to reuse, for the build's platform; returns
    /// the ones the engine now holds. One that is missing (the first build) or cannot be pulled
    /// only makes the build slower: it is said and skipped.
    async fn pull_cache(
        &self,
        refs: &[String],
        logins: &[RegistryLogin],
        platform: &str,
        on_line: &mut OnLine<'_>,
    ) -> Vec<String> {
        let all = credentials(logins);
        let mut pulled = Vec::new();
        for reference in refs {
            let (repo, tag) = split_reference(reference);
            let host = repo.split('/').next().unwrap_or_default();
            let mut stream = self.docker.create_image(
                Some(CreateImageOptions {
                    from_image: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                    platform: platform.to_string(),
                    ..Default::default()
                }),
                None,
                all.get(host).cloned(),
            );
            let mut failed = None;
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    failed = Some(stream_error(e));
                    break;
                }
            }
            match failed {
                None => {
                    on_line(&format!("cache: pulled `{reference}`"));
                    pulled.push(reference.clone());
                }
                Some(m) if m.contains("not found") || m.contains("manifest unknown") => {
                    on_line(&format!("cache: no `{reference}` yet"))
                }
                Some(m) => on_line(&format!(
                    "cache: `{reference}` could not be pulled ({}); building without it",
                    crate::failure::one_line(&m, 150)
                )),
            }
        }
        pulled
    }
}

fn credentials(logins: &[RegistryLogin]) -> HashMap<String, DockerCredentials> {
    logins
        .iter()
        .map(|l| {
            (
                l.host.clone(),
                DockerCredentials {
                    username: Some(l.auth.username.clone()),
                    password: Some(l.auth.password.expose().to_string()),
                    serveraddress: Some(l.host.clone()),
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// A session id nobody else uses: the engine keeps sessions by id, and a reused one points at a
/// connection that is gone.
fn session_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("cdc-deploy-{hex}")
}

/// A `dockerfile parse error line 4: …` from the frontend.
fn line_in_message(message: &str) -> Option<usize> {
    let at = message.find("error line ")? + "error line ".len();
    message[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[async_trait]
impl ImageBuilder for DockerEngine {
    fn engine(&self) -> String {
        format!("the Docker engine at `{}`", self.address)
    }

    fn is_fallback(&self) -> bool {
        matches!(self.backend, Backend::Classic { .. })
    }

    fn describe(&self) -> String {
        match &self.backend {
            Backend::BuildKit => format!(
                "images are built with BuildKit on {} at `{}`",
                self.version, self.address
            ),
            Backend::Classic { why } => format!(
                "images are built with the classic builder on {} at `{}`: {why}",
                self.version, self.address
            ),
        }
    }

    async fn build(
        &self,
        req: BuildRequest,
        on_line: &mut OnLine<'_>,
    ) -> Result<BuildStats, BuildError> {
        let buildkit = self.backend == Backend::BuildKit;
        let dockerfile_path = req.context.root.join(&req.context.dockerfile);
        let mut args = req.args;
        if buildkit && req.inline_cache {
            // Not a build argument of the consumer's: it is not part of the fingerprint.
            args.insert("BUILDKIT_INLINE_CACHE".into(), "1".into());
        }
        // The classic builder reuses only images the engine holds, and, given cache images,
        // only layers that descend from them: it gets the ones that could be pulled, or none
        // (then its own cache serves as before).
        let cache_from = if buildkit {
            req.cache_from.clone()
        } else {
            self.pull_cache(&req.cache_from, &req.logins, &req.platform, on_line)
                .await
        };
        let labels: Vec<String> = req.labels.keys().cloned().collect();
        let options = BuildImageOptions {
            dockerfile: req.context.dockerfile.clone(),
            t: Some(req.tag.clone()),
            buildargs: Some(args),
            cachefrom: (!cache_from.is_empty()).then_some(cache_from),
            labels: Some(req.labels),
            platform: req.platform,
            target: req.target.unwrap_or_default(),
            rm: true,
            forcerm: true,
            version: if buildkit {
                BuilderVersion::BuilderBuildKit
            } else {
                BuilderVersion::BuilderV1
            },
            session: buildkit.then(session_id),
            ..Default::default()
        };
        let (body, verification) = crate::context::tar::stream(req.context, req.expected);
        let mut stream = self.docker.build_image(
            options,
            Some(credentials(&req.logins)),
            Some(bollard::body_try_stream(body)),
        );
        let mut classic = ClassicLog {
            added_labels: labels.iter().map(|k| format!("LABEL {k}=")).collect(),
            ..ClassicLog::default()
        };
        let mut progress = buildkit::Progress::default();
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(BuildInfoAux::BuildKit(status)) = &info.aux {
                        progress.update(status, on_line);
                    }
                    if let Some(text) = &info.stream {
                        classic.push(text, on_line);
                    }
                    if let Some(status) = &info.status {
                        classic.push(&format!("{status}\n"), on_line);
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        progress.finish(on_line);
        classic.finish(on_line);
        drop(stream);
        let sent = verification.result();
        match (error, sent) {
            // A changed file says more than the engine's complaint about a cut-off archive.
            (
                _,
                Err(
                    e @ (SentContextError::FileChanged { .. }
                    | SentContextError::Mismatch { .. }
                    | SentContextError::Read { .. }),
                ),
            ) => Err(BuildError::ContextChanged(e)),
            (Some(e), _) if is_transport(&e) => Err(BuildError::Engine(crate::failure::one_line(
                &e.to_string(),
                300,
            ))),
            (Some(e), _) => {
                let message = stream_error(e);
                let text = tokio::fs::read_to_string(&dockerfile_path)
                    .await
                    .unwrap_or_default();
                let (step, line, tail) = if buildkit {
                    let step = progress.failed_step().map(str::to_string);
                    let line = step
                        .as_deref()
                        .and_then(|s| crate::consumers::dockerfile::buildkit_step_line(&text, s))
                        .or_else(|| line_in_message(&message));
                    (step, line, progress.tail())
                } else {
                    let line = classic
                        .step
                        .as_deref()
                        .and_then(crate::consumers::dockerfile::classic_step_number)
                        .and_then(|n| crate::consumers::dockerfile::classic_step_line(&text, n))
                        .or_else(|| line_in_message(&message));
                    (
                        classic.step.clone(),
                        line,
                        classic.tail.iter().cloned().collect(),
                    )
                };
                Err(BuildError::Failed(BuildFailure {
                    step,
                    line,
                    message: message.trim().to_string(),
                    tail,
                }))
            }
            (None, Err(e)) => Err(BuildError::ContextChanged(e)),
            (None, Ok(())) => Ok(if buildkit {
                progress.stats()
            } else {
                classic.stats
            }),
        }
    }

    async fn push(
        &self,
        reference: &str,
        login: &RegistryLogin,
        on_line: &mut OnLine<'_>,
    ) -> Result<(), PushFailure> {
        let (repo, tag) = split_reference(reference);
        let attempts = AtomicU32::new(0);
        let sink = Mutex::new(on_line);
        let say = |line: &str| {
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            (*s)(line)
        };
        let attempt = || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            let credentials = credentials(std::slice::from_ref(login))
                .into_values()
                .next();
            let mut stream = self.docker.push_image(
                repo,
                Some(PushImageOptions {
                    tag: Some(tag.to_string()),
                    platform: None,
                }),
                credentials,
            );
            while let Some(item) = stream.next().await {
                match item {
                    // Progress bars are noise in a CI log; statuses are kept.
                    Ok(info) => {
                        if let (Some(status), None) = (&info.status, &info.progress) {
                            say(status);
                        }
                    }
                    Err(e) => return Err(stream_error(e)),
                }
            }
            Ok(())
        };
        let throttled = |message: &str| push_cause(message) == crate::failure::Cause::Throttled;
        self.retry
            .run(
                "push",
                &self.cancel,
                attempt,
                |message: &String| push_cause(message).is_transient(),
                // The registry's `Retry-After` does not come through the engine: a throttled
                // push waits at least THROTTLED_PUSH_WAIT, doubling with each attempt.
                |message: &String| {
                    throttled(message).then(|| {
                        THROTTLED_PUSH_WAIT
                            * 2u32.saturating_pow(attempts.load(Ordering::SeqCst).max(1) - 1)
                    })
                },
                |message, delay| {
                    let what = if throttled(message) {
                        "push throttled by the registry"
                    } else {
                        "push failed"
                    };
                    say(&format!(
                        "{what} ({message}); retrying in {:.1} s",
                        delay.as_secs_f64()
                    ))
                },
            )
            .await
            .map_err(|message| PushFailure {
                image: reference.to_string(),
                attempts: attempts.load(Ordering::SeqCst),
                message: crate::failure::one_line(&message, 200),
            })
    }
}

/// `host:port/repo:tag` into `host:port/repo` and `tag`.
pub fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}

/// The least a push the registry throttled (HTTP 429) waits before its next attempt, doubled for
/// each attempt: the engine does not retry it, nor pass on the registry's `Retry-After`.
const THROTTLED_PUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What to do about a push that failed with `message`, after its attempts.
fn push_hint(message: &str) -> &'static str {
    match push_cause(message) {
        crate::failure::Cause::Throttled => "; the registry limits how fast it takes pushes (HTTP 429) and was still refusing after the waits: run again later, or lower `build-concurrency` so fewer pushes run at once",
        _ => "",
    }
}

/// Why a push failed, read from the engine's message: credentials, permission, a missing
/// repository and an existing immutable tag will fail again; anything else is taken for the
/// network or the registry having a bad moment.
fn push_cause(message: &str) -> crate::failure::Cause {
    use crate::failure::Cause;
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&[
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
    ]) {
        Cause::Credentials
    } else if has(&["denied"]) {
        Cause::Permission
    } else if has(&["name unknown", "does not exist"]) {
        Cause::NotFound
    } else if has(&["already exists", "tag invalid"]) {
        Cause::Rejected
    } else if has(&["toomanyrequests", "too many requests", "429"]) {
        Cause::Throttled
    } else {
        Cause::Network
    }
}

/// Whether a build's stream ended because the connection to the engine did (closed, reset, cut
/// short, unreadable), rather than with the engine's own answer about the build.
fn is_transport(e: &bollard::errors::Error) -> bool {
    !matches!(
        e,
        bollard::errors::Error::DockerStreamError { .. }
            | bollard::errors::Error::DockerResponseServerError { .. }
    )
}

fn stream_error(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("the engine answered {status_code}: {message}"),
        other => other.to_string(),
    }
}

/// The classic builder's output split into lines, with the current step and the last lines
/// kept. BuildKit builds send a few such lines too (`Successfully tagged …`).
#[derive(Default)]
struct ClassicLog {
    partial: String,
    step: Option<String>,
    tail: VecDeque<String>,
    stats: BuildStats,
    /// `LABEL key=` of the labels the build is given, which the classic builder adds as steps
    /// of its own after the Dockerfile's: they are not counted.
    added_labels: Vec<String>,
    /// Whether the running step is counted.
    counted: bool,
}

impl ClassicLog {
    fn push(&mut self, text: &str, on_line: &mut OnLine<'_>) {
        self.partial.push_str(text);
        // A lone `\r` (a progress bar redrawn) ends a line too, as the runner reads it.
        while let Some(i) = self.partial.find(['\n', '\r']) {
            let line: String = self.partial.drain(..=i).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.is_empty() {
                self.line(line, on_line);
            }
        }
    }

    fn finish(&mut self, on_line: &mut OnLine<'_>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, on_line);
        }
    }

    fn line(&mut self, line: &str, on_line: &mut OnLine<'_>) {
        if line.starts_with("Step ") && line.contains(" : ") {
            self.step = Some(line.to_string());
            // `FROM` is the base image, not a step of the consumer's build.
            let instruction = line.split_once(" : ").map_or("", |(_, i)| i);
            let added = self
                .added_labels
                .iter()
                .any(|l| instruction.starts_with(l.as_str()));
            self.counted = !added && !instruction.to_ascii_uppercase().starts_with("FROM ");
            if self.counted {
                self.stats.steps += 1;
            }
        } else if self.counted && line.trim() == "---> Using cache" {
            self.stats.cached += 1;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        on_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_reference("127.0.0.1:5000/shop-orders:ctx-ab"),
            ("127.0.0.1:5000/shop-orders", "ctx-ab")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/shop-orders"),
            ("127.0.0.1:5000/shop-orders", "latest")
        );
    }

    #[test]
    fn the_classic_log_keeps_the_running_step_and_the_last_lines() {
        let mut log = ClassicLog::default();
        let mut seen = Vec::new();
        let mut sink = |l: &str| seen.push(l.to_string());
        log.push(
            "Step 1/3 : FROM base\n ---> abc\nStep 2/3 : RUN ",
            &mut sink,
        );
        log.push("make\n", &mut sink);
        for i in 0..40 {
            log.push(&format!("line {i}\n"), &mut sink);
        }
        log.push("no newline", &mut sink);
        log.finish(&mut sink);
        assert_eq!(log.step.as_deref(), Some("Step 2/3 : RUN make"));
        assert_eq!(log.tail.len(), TAIL_LINES);
        assert_eq!(log.tail.back().unwrap(), "no newline");
        assert_eq!(seen.len(), 44);
    }

    #[test]
    fn the_classic_log_counts_steps_from_the_cache_but_not_the_labels_it_adds() {
        let mut log = ClassicLog {
            added_labels: vec!["LABEL org.opencontainers.image.title=".into()],
            ..ClassicLog::default()
        };
        let mut sink = |_: &str| {};
        log.push(
            "Step 1/5 : FROM base AS deps\n ---> 8e5f\nStep 2/5 : RUN pip install\n ---> Using cache\n ---> 6cd1\n\
             Step 3/5 : COPY app /app\n ---> 3c62\nStep 4/5 : LABEL team=cdc\n ---> Using cache\n\
             Step 5/5 : LABEL org.opencontainers.image.title=shop-orders\n ---> Using cache\n",
            &mut sink,
        );
        assert_eq!(
            log.stats,
            BuildStats {
                steps: 3,
                cached: 2
            }
        );
    }

    #[test]
    fn failures_read_as_step_and_message() {
        let f = BuildFailure {
            step: Some("[2/3] RUN make".into()),
            line: Some(4),
            message: "exit code: 2".into(),
            tail: vec![],
        };
        assert_eq!(f.to_string(), "[2/3] RUN make failed: exit code: 2");
        assert_eq!(
            line_in_message("failed to create LLB definition: dockerfile parse error line 2: unknown instruction: BOGUS"),
            Some(2)
        );
        assert_eq!(line_in_message("exit code: 2"), None);
        assert_eq!(api_version("1.41"), Some((1, 41)));
        assert!(api_version("1.38").unwrap() < BUILDKIT_API);
    }

    #[test]
    fn credential_and_immutability_errors_are_not_retried() {
        use crate::failure::Cause;
        assert_eq!(
            push_cause("unauthorized: authentication required"),
            Cause::Credentials
        );
        let immutable =
            "tag invalid: The image tag 'ctx-1' already exists in the 'shop-orders' repository";
        assert!(!push_cause(immutable).is_transient());
        assert!(
            push_cause("received unexpected HTTP status: 503 Service Unavailable").is_transient()
        );
        assert!(push_cause("connection reset by peer").is_transient());
        assert_eq!(push_cause("toomanyrequests: retry later"), Cause::Throttled);
    }
}
