//! The image registry, through the OCI distribution API: the manifest behind a tag (whether it
//! exists, its digest and size, in one request), and an existing manifest put under a new tag.
//!
//! ECR's registry endpoint serves this API with basic auth (`AWS` and the token from
//! `GetAuthorizationToken`); so does the distribution registry with htpasswd. This module never
//! logs the credentials and never creates repositories (that is the ECR API's job).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::clients::retry::{parse_retry_after, RetryPolicy};
use crate::config::RegistryHost;
use crate::secret::Secret;

/// Manifest media types the look-ups accept: Docker schema 2 and OCI, single and multi-platform.
pub const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

/// Registry credentials. The password is a [`Secret`].
#[derive(Clone, Debug)]
pub struct RegistryAuth {
    pub username: String,
    pub password: Secret,
}

/// A manifest as stored, with its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub digest: String,
    pub body: Vec<u8>,
}

impl Manifest {
    /// Compressed size of the image as the registry stores it: config plus layers.
    pub fn stored_size(&self) -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let mut total = v
            .pointer("/config/size")
            .and_then(|s| s.as_u64())
            .unwrap_or(0);
        for layer in v.get("layers")?.as_array()? {
            total += layer.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
        }
        Some(total)
    }
}

/// A registry request that failed for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("registry `{host}` refused the credentials for `{repository}` (HTTP {status}); check that the ECR token is for this registry")]
    Unauthorized {
        host: String,
        repository: String,
        status: u16,
    },
    #[error("registry `{host}` answered HTTP {status} for {what}: {body}")]
    Status {
        host: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("could not reach registry `{host}` for {what}: {message}")]
    Transport {
        host: String,
        what: String,
        /// The error with its causes (`error sending request: dns error: …`).
        message: String,
    },
}

/// The registry the images live in.
#[async_trait]
pub trait Registry: Send + Sync {
    /// The manifest behind `repository:reference` (a tag or a digest), or `None` when there is
    /// none (an unknown repository included).
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError>;
    /// Store `manifest` under `tag`; returns the digest the registry computed.
    async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<String, RegistryError>;
}

/// The real client.
pub struct HttpRegistry {
    host: RegistryHost,
    auth: RegistryAuth,
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// One attempt's failure, before it is known whether it is the last.
enum Attempt {
    Transport(reqwest::Error),
    /// A `429` or `5xx` answer.
    Status(reqwest::Response),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Transport(e) => write!(f, "{}", chain(e)),
            Attempt::Status(r) => write!(f, "HTTP {}", r.status()),
        }
    }
}

impl HttpRegistry {
    pub fn new(host: RegistryHost, auth: RegistryAuth) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("cdc-deploy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpRegistry {
            host,
            auth,
            http,
            retry: RetryPolicy::STANDARD,
        })
    }

    fn url(&self, repository: &str, reference: &str) -> String {
        format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.host.base_url()
        )
    }

    /// Send under the shared retry policy: 429, 5xx and transport errors are retried, with the
    /// registry's `Retry-After` honoured. The last answer is returned whatever its status.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let attempt = || async {
            let req = build().basic_auth(&self.auth.username, Some(self.auth.password.expose()));
            match req.send().await {
                Ok(r)
                    if r.status() == StatusCode::TOO_MANY_REQUESTS
                        || r.status().is_server_error() =>
                {
                    Err(Attempt::Status(r))
                }
                Ok(r) => Ok(r),
                Err(e) => Err(Attempt::Transport(e)),
            }
        };
        let result = self
            .retry
            .run(
                what,
                attempt,
                |a| match a {
                    Attempt::Status(_) => true,
                    Attempt::Transport(e) => e.is_connect() || e.is_timeout() || e.is_request(),
                },
                |a| match a {
                    Attempt::Status(r) => r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after),
                    Attempt::Transport(_) => None,
                },
                |_, _| {},
            )
            .await;
        match result {
            Ok(r) | Err(Attempt::Status(r)) => Ok(r),
            Err(Attempt::Transport(source)) => Err(RegistryError::Transport {
                host: self.host.host.clone(),
                what: what.to_string(),
                message: chain(&source.without_url()),
            }),
        }
    }

    async fn fail(&self, repository: &str, what: &str, r: reqwest::Response) -> RegistryError {
        let status = r.status().as_u16();
        if status == 401 || status == 403 {
            return RegistryError::Unauthorized {
                host: self.host.host.clone(),
                repository: repository.to_string(),
                status,
            };
        }
        let body: String = r
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        RegistryError::Status {
            host: self.host.host.clone(),
            what: what.to_string(),
            status,
            body: body.trim().to_string(),
        }
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn digest_header(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[async_trait]
impl Registry for HttpRegistry {
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let what = format!("`{repository}:{reference}`");
        let url = self.url(repository, reference);
        let r = self
            .send(&what, || self.http.get(&url).header(ACCEPT, MANIFEST_TYPES))
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.fail(repository, &what, r).await);
        }
        let digest = digest_header(&r);
        let media_type = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
            .to_string();
        let body = r
            .bytes()
            .await
            .map_err(|source| RegistryError::Transport {
                host: self.host.host.clone(),
                what: what.clone(),
                message: chain(&source.without_url()),
            })?
            .to_vec();
        let digest = digest.unwrap_or_else(|| {
            use sha2::Digest as _;
            format!("sha256:{:x}", sha2::Sha256::digest(&body))
        });
        Ok(Some(Manifest {
            media_type,
            digest,
            body,
        }))
    }

    async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<String, RegistryError> {
        let what = format!("tagging `{repository}:{tag}`");
        let url = self.url(repository, tag);
        let r = self
            .send(&what, || {
                self.http
                    .put(&url)
                    .header(CONTENT_TYPE, &manifest.media_type)
                    .body(manifest.body.clone())
            })
            .await?;
        if !r.status().is_success() {
            return Err(self.fail(repository, &what, r).await);
        }
        Ok(digest_header(&r).unwrap_or_else(|| manifest.digest.clone()))
    }
}
