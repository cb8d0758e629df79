//! The Docker Engine, through its API (bollard): build an image from a consumer's context and push
//! it with the registry's credentials.
//!
//! The engine is found at `DOCKER_HOST` or `/var/run/docker.sock`, where a container action finds
//! the runner's daemon. Build output is handed line by line to the caller, which decides where it
//! goes; the last lines and the step that was running are kept for the failure message.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions, TagImageOptions};
use bollard::Docker;
use futures_util::StreamExt as _;

use crate::clients::registry::RegistryAuth;
use crate::context::BuildContext;

/// Where a container action finds the runner's daemon.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Seconds one engine request may take. A build is one request, so this bounds a build.
const REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Lines of build output kept for a failure message.
pub const TAIL_LINES: usize = 25;
/// Attempts for one push when the registry or the network fails transiently.
const PUSH_ATTEMPTS: u32 = 3;

/// The engine could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("could not reach the Docker engine at `{address}`: {message}; a container action needs `/var/run/docker.sock`, elsewhere set `DOCKER_HOST`")]
pub struct EngineError {
    pub address: String,
    pub message: String,
}

/// A build that did not produce an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailure {
    /// The step that was running, as the builder printed it (`Step 3/5 : RUN make`).
    pub step: Option<String>,
    pub message: String,
    /// The last lines of output before the failure.
    pub tail: Vec<String>,
}

impl std::fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{step} failed: {}", self.message),
            None => write!(f, "the build failed: {}", self.message),
        }
    }
}

/// A push that did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("push of `{image}` failed after {attempts} attempt(s): {message}")]
pub struct PushFailure {
    pub image: String,
    pub attempts: u32,
    pub message: String,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    pub context: BuildContext,
    pub target: Option<String>,
    pub args: HashMap<String, String>,
    /// `linux/amd64` or `linux/arm64`.
    pub platform: String,
    /// The full reference the image is tagged with (`host/repo:tag`).
    pub tag: String,
    pub labels: HashMap<String, String>,
}

/// The connected engine.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    address: String,
}

impl Engine {
    /// Connect to `docker_host` (`unix://…`, `tcp://…`, `http://…`) or the default socket, and
    /// agree on an API version.
    pub async fn connect(docker_host: Option<&str>) -> Result<Self, EngineError> {
        let address = docker_host
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_SOCKET)
            .to_string();
        let fail = |e: bollard::errors::Error| EngineError {
            address: address.clone(),
            message: e.to_string(),
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
        docker.ping().await.map_err(fail)?;
        Ok(Engine { docker, address })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Build `req`, streaming its context from disk. Each line of output goes to `on_line`.
    /// Returns the image id.
    pub async fn build(
        &self,
        req: BuildRequest,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, BuildFailure> {
        let options = BuildImageOptions {
            dockerfile: req.context.dockerfile.clone(),
            t: Some(req.tag.clone()),
            buildargs: Some(req.args),
            labels: Some(req.labels),
            platform: req.platform,
            target: req.target.unwrap_or_default(),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let body = bollard::body_try_stream(crate::context::tar::stream(req.context));
        let mut log = BuildLog::default();
        let mut image_id = None;
        let mut stream = self.docker.build_image(options, None, Some(body));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = &info.stream {
                        log.push(text, on_line);
                    }
                    if let Some(status) = &info.status {
                        log.push(&format!("{status}\n"), on_line);
                    }
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        image_id = Some(id);
                    }
                }
                Err(e) => {
                    log.finish(on_line);
                    return Err(log.failure(stream_error(e)));
                }
            }
        }
        log.finish(on_line);
        match image_id {
            Some(id) => Ok(id),
            // Old engines print the id instead of sending it.
            None => match self.docker.inspect_image(&req.tag).await {
                Ok(i) => Ok(i.id.unwrap_or_default()),
                Err(e) => {
                    Err(log.failure(format!("the engine reported no image: {}", stream_error(e))))
                }
            },
        }
    }

    /// Give the image `source` the reference `target` (`host/repo:tag`).
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), String> {
        let (repo, tag) = split_reference(target);
        self.docker
            .tag_image(
                source,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(stream_error)
    }

    /// Push `host/repo:tag` with the registry credentials, retrying transient failures.
    pub async fn push(
        &self,
        reference: &str,
        server: &str,
        auth: &RegistryAuth,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), PushFailure> {
        let (repo, tag) = split_reference(reference);
        let mut delay = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            let credentials = DockerCredentials {
                username: Some(auth.username.clone()),
                password: Some(auth.password.expose().to_string()),
                serveraddress: Some(server.to_string()),
                ..Default::default()
            };
            let mut stream = self.docker.push_image(
                repo,
                Some(PushImageOptions {
                    tag: Some(tag.to_string()),
                    platform: None,
                }),
                Some(credentials),
            );
            let mut error = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        // Progress bars are noise in a CI log; statuses are kept.
                        if let (Some(status), None) = (&info.status, &info.progress) {
                            on_line(status);
                        }
                    }
                    Err(e) => {
                        error = Some(stream_error(e));
                        break;
                    }
                }
            }
            let Some(message) = error else { return Ok(()) };
            if attempt >= PUSH_ATTEMPTS || !push_retryable(&message) {
                return Err(PushFailure {
                    image: reference.to_string(),
                    attempts: attempt,
                    message,
                });
            }
            on_line(&format!(
                "push failed ({message}); retrying in {} s",
                delay.as_secs()
            ));
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }
}

/// The step number in a builder line such as `Step 3/7 : RUN make`.
pub fn step_number(step: &str) -> Option<usize> {
    step.strip_prefix("Step ")?
        .split('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The line (1-based) where the Dockerfile's `n`-th instruction (1-based) starts, as the classic
/// builder numbers its steps. Comments, blank lines and continuation lines are not instructions.
pub fn instruction_line(dockerfile: &str, n: usize) -> Option<usize> {
    let mut escape = '\\';
    let mut directives = true;
    let mut count = 0;
    let mut continued = false;
    for (i, raw) in dockerfile.lines().enumerate() {
        let line = raw.trim();
        if directives {
            // Parser directives (`# escape=`` ` ``) come first, before any other line.
            let directive = line
                .strip_prefix('#')
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| {
                    d.starts_with("escape=") || d.starts_with("syntax=") || d.starts_with("check=")
                });
            match directive {
                Some(d) => {
                    if let Some(e) = d.strip_prefix("escape=") {
                        escape = e.trim().chars().next().unwrap_or('\\');
                    }
                    continue;
                }
                None => directives = false,
            }
        }
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if !continued {
            count += 1;
            if count == n {
                return Some(i + 1);
            }
        }
        continued = line.ends_with(escape);
    }
    None
}

/// `host:port/repo:tag` into `host:port/repo` and `tag`.
pub fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}

/// Whether a push error may pass on a second attempt. Credentials, a missing repository and an
/// existing immutable tag will not.
fn push_retryable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ![
        "unauthorized",
        "denied",
        "authentication required",
        "no basic auth credentials",
        "already exists",
        "tag invalid",
        "name unknown",
        "does not exist",
    ]
    .iter()
    .any(|s| m.contains(s))
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

/// Build output split into lines, with the current step and the last lines kept.
#[derive(Default)]
struct BuildLog {
    partial: String,
    step: Option<String>,
    tail: VecDeque<String>,
}

impl BuildLog {
    fn push(&mut self, text: &str, on_line: &mut (dyn FnMut(&str) + Send)) {
        self.partial.push_str(text);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.line(line.trim_end_matches(['\n', '\r']), on_line);
        }
    }

    fn finish(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, on_line);
        }
    }

    fn line(&mut self, line: &str, on_line: &mut (dyn FnMut(&str) + Send)) {
        if line.starts_with("Step ") && line.contains(" : ") {
            self.step = Some(line.to_string());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        on_line(line);
    }

    fn failure(&self, message: String) -> BuildFailure {
        BuildFailure {
            step: self.step.clone(),
            message: message.trim().to_string(),
            tail: self.tail.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_map_to_dockerfile_lines() {
        let text = "# syntax=docker/dockerfile:1\n# a comment\nFROM base AS build\n\nRUN make \\\n    all \\\n  # comment inside\n    install\nCOPY . /app\n";
        assert_eq!(instruction_line(text, 1), Some(3));
        assert_eq!(instruction_line(text, 2), Some(5));
        assert_eq!(instruction_line(text, 3), Some(9));
        assert_eq!(instruction_line(text, 4), None);
        let backtick = "# escape=`\nFROM base\nRUN a `\n  b\nUSER 1\n";
        assert_eq!(instruction_line(backtick, 3), Some(5));
        assert_eq!(step_number("Step 12/40 : RUN x"), Some(12));
        assert_eq!(step_number("Successfully built"), None);
    }

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
    fn the_log_keeps_the_running_step_and_the_last_lines() {
        let mut log = BuildLog::default();
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
        let f = log.failure("The command '/bin/sh -c make' returned a non-zero code: 2\n".into());
        assert_eq!(f.step.as_deref(), Some("Step 2/3 : RUN make"));
        assert_eq!(f.tail.len(), TAIL_LINES);
        assert_eq!(f.tail.last().unwrap(), "no newline");
        assert_eq!(
            f.to_string(),
            "Step 2/3 : RUN make failed: The command '/bin/sh -c make' returned a non-zero code: 2"
        );
        assert_eq!(seen.len(), 44);
    }

    #[test]
    fn credential_and_immutability_errors_are_not_retried() {
        assert!(!push_retryable("unauthorized: authentication required"));
        assert!(!push_retryable(
            "tag invalid: The image tag 'ctx-1' already exists in the 'shop-orders' repository"
        ));
        assert!(push_retryable(
            "received unexpected HTTP status: 503 Service Unavailable"
        ));
        assert!(push_retryable("connection reset by peer"));
    }
}
