//! The image registry, through the OCI distribution API: does a tag exist, what is its digest,
//! and put an existing manifest under a new tag (a retag without a pull or a build).
//!
//! ECR's registry endpoint serves this API with basic auth (`AWS` and the token from
//! `GetAuthorizationToken`); so does the distribution registry with htpasswd. This module never
//! logs the credentials and never creates repositories (that is the ECR API's job).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

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
#[derive(Debug, thiserror::Error)]
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
    #[error("registry `{host}` sent no `Docker-Content-Digest` for {what}")]
    NoDigest { host: String, what: String },
}

/// The registry the images live in.
#[async_trait]
pub trait Registry: Send + Sync {
    /// The digest behind `repository:tag`, or `None` when the tag does not exist.
    async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, RegistryError>;
    /// The manifest behind `repository:reference` (a tag or a digest).
    async fn manifest(&self, repository: &str, reference: &str) -> Result<Manifest, RegistryError>;
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
    /// Attempts for one request when the registry or the network fails transiently.
    attempts: u32,
    backoff: Duration,
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
            attempts: 4,
            backoff: Duration::from_millis(250),
        })
    }

    pub fn host(&self) -> &RegistryHost {
        &self.host
    }

    fn url(&self, repository: &str, reference: &str) -> String {
        format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.host.base_url()
        )
    }

    /// Send with bounded retries on 429, 5xx and transport errors, exponential backoff.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            let req = build().basic_auth(&self.auth.username, Some(self.auth.password.expose()));
            let result = req.send().await;
            let retry = match &result {
                Ok(r) => {
                    r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
                }
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            };
            if !retry || attempt >= self.attempts {
                return result.map_err(|source| RegistryError::Transport {
                    host: self.host.host.clone(),
                    what: what.to_string(),
                    message: chain(&source.without_url()),
                });
            }
            tracing::debug!(
                what,
                attempt,
                "registry request failed transiently; retrying"
            );
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
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
    async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, RegistryError> {
        let what = format!("`{repository}:{tag}`");
        let url = self.url(repository, tag);
        let r = self
            .send(&what, || {
                self.http.head(&url).header(ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        match r.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => digest_header(&r).map(Some).ok_or(RegistryError::NoDigest {
                host: self.host.host.clone(),
                what,
            }),
            _ => Err(self.fail(repository, &what, r).await),
        }
    }

    async fn manifest(&self, repository: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let what = format!("`{repository}:{reference}`");
        let url = self.url(repository, reference);
        let r = self
            .send(&what, || self.http.get(&url).header(ACCEPT, MANIFEST_TYPES))
            .await?;
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
        Ok(Manifest {
            media_type,
            digest,
            body,
        })
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
