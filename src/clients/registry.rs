//! The image registry, through the OCI distribution API: the manifest behind a tag (whether it
//! exists, its digest and size, in one request), and an existing manifest put under a new tag.
//!
//! ECR's registry endpoint serves this API with basic auth (`AWS` and the token from
//! `GetAuthorizationToken`); so does the distribution registry with htpasswd. This module never
//! logs the credentials and never creates repositories (that is the ECR API's job).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::clients::retry::{parse_retry_after, RetryPolicy};
use crate::failure;
use crate::failure::Failure;
use crate::reference::RegistryHost;
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
#[error("the registry request for {what} failed: {failure}")]
pub struct RegistryError {
    /// `` `shop-orders:ctx-…` ``, `` tagging `shop-orders:sha-…` ``.
    pub what: String,
    pub failure: Failure,
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
    /// Whether the repository holds any image cdc-deploy built (a `ctx-` tag).
    async fn has_built_images(&self, repository: &str) -> Result<bool, RegistryError>;
    /// The labels of the image `digest` (its config's `Labels`; of the first image of an index),
    /// empty for an image without any. Two requests: the manifest and the config blob.
    async fn image_labels(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<BTreeMap<String, String>, RegistryError>;
}

/// What of a manifest says where the image's config is, or (an index) its images.
#[derive(serde::Deserialize)]
struct ManifestRefs {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(serde::Deserialize)]
struct Descriptor {
    digest: String,
}

/// What of an image config the labels are in.
#[derive(serde::Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<ConfigLabels>,
}

#[derive(serde::Deserialize)]
struct ConfigLabels {
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// Pages of a repository's tag list read at most.
const TAG_PAGES: usize = 20;

/// The next page a `Link: <…>; rel="next"` header points to.
fn next_page(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// A registry's `tags/list` answer.
#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The real client.
pub struct HttpRegistry {
    host: RegistryHost,
    auth: RegistryAuth,
    http: reqwest::Client,
    retry: RetryPolicy,
    /// The run's cancellation: no retry waits past it.
    cancel: crate::cancel::Cancel,
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
            Attempt::Transport(e) => write!(f, "{e}"),
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
            cancel: crate::cancel::Cancel::new(),
        })
    }

    /// Retries stop waiting when `cancel` is set.
    pub fn with_cancel(mut self, cancel: &crate::cancel::Cancel) -> Self {
        self.cancel = cancel.clone();
        self
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
                &self.cancel,
                attempt,
                |a| match a {
                    // A 429 is throttling, a 5xx the server's failure.
                    Attempt::Status(_) => true,
                    // A TLS handshake that failed fails again: its cause is not transient.
                    Attempt::Transport(e) => failure::from_http(e, "").cause.is_transient(),
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
            Err(Attempt::Transport(source)) => Err(self.transport(what, &source)),
        }
    }

    async fn fail(&self, what: &str, r: reqwest::Response) -> RegistryError {
        let status = r.status().as_u16();
        let body = if status == 401 {
            // A registry's 401 body only repeats the status.
            String::new()
        } else {
            r.text().await.unwrap_or_default()
        };
        RegistryError {
            what: what.to_string(),
            failure: failure::from_status(status, &self.host.base_url(), &body),
        }
    }

    fn transport(&self, what: &str, e: &reqwest::Error) -> RegistryError {
        RegistryError {
            what: what.to_string(),
            failure: failure::from_http(e, &self.host.base_url()),
        }
    }
}

impl HttpRegistry {
    /// The `Labels` of the image config blob `digest`.
    async fn config_labels(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        let what = format!("the config of `{repository}@{}`", short_reference(digest));
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.host.base_url());
        let r = self.send(&what, || self.http.get(&url)).await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(BTreeMap::new());
        }
        if !r.status().is_success() {
            return Err(self.fail(&what, r).await);
        }
        let body = r.bytes().await.map_err(|e| self.transport(&what, &e))?;
        let config: ImageConfig = serde_json::from_slice(&body).map_err(|_| RegistryError {
            what: what.clone(),
            failure: Failure::new(
                failure::Cause::Rejected,
                "the image config is not JSON".to_string(),
            ),
        })?;
        Ok(config.config.and_then(|c| c.labels).unwrap_or_default())
    }
}

/// A tag or digest for messages: `ctx-`, `sha-` and `sha256:` references cut to 12 hex digits.
fn short_reference(reference: &str) -> String {
    for prefix in ["ctx-", "sha-", "sha256:"] {
        if let Some(hex) = reference.strip_prefix(prefix) {
            if hex.len() > 12 {
                return format!("{prefix}{}…", &hex[..12]);
            }
        }
    }
    reference.to_string()
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
        let what = format!("`{repository}:{}`", short_reference(reference));
        let url = self.url(repository, reference);
        let r = self
            .send(&what, || self.http.get(&url).header(ACCEPT, MANIFEST_TYPES))
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.fail(&what, r).await);
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
            .map_err(|source| self.transport(&what, &source))?
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
        let what = format!("tagging `{repository}:{}`", short_reference(tag));
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
            return Err(self.fail(&what, r).await);
        }
        Ok(digest_header(&r).unwrap_or_else(|| manifest.digest.clone()))
    }

    async fn image_labels(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        let mut reference = digest.to_string();
        // An index points at its images: the first one's labels (one level, as built here).
        for _ in 0..2 {
            let Some(m) = self.manifest(repository, &reference).await? else {
                return Ok(BTreeMap::new());
            };
            let refs: ManifestRefs =
                serde_json::from_slice(&m.body).map_err(|_| RegistryError {
                    what: format!("`{repository}@{}`", short_reference(&reference)),
                    failure: Failure::new(
                        failure::Cause::Rejected,
                        "the manifest is not the registry API's JSON".to_string(),
                    ),
                })?;
            if let Some(config) = refs.config {
                return self.config_labels(repository, &config.digest).await;
            }
            match refs.manifests.into_iter().next() {
                Some(first) => reference = first.digest,
                None => return Ok(BTreeMap::new()),
            }
        }
        Ok(BTreeMap::new())
    }

    async fn has_built_images(&self, repository: &str) -> Result<bool, RegistryError> {
        let what = format!("the tags of `{repository}`");
        let base = self.host.base_url();
        let mut url = format!("{base}/v2/{repository}/tags/list?n=1000");
        // Page by page, as the registry's `Link` header leads, up to a bound.
        for _ in 0..TAG_PAGES {
            let r = self.send(&what, || self.http.get(&url)).await?;
            if r.status() == StatusCode::NOT_FOUND {
                return Ok(false);
            }
            if !r.status().is_success() {
                return Err(self.fail(&what, r).await);
            }
            let next = next_page(&r);
            let list: TagList = r.json().await.map_err(|_| RegistryError {
                what: what.clone(),
                failure: Failure::new(
                    failure::Cause::Rejected,
                    format!("`{base}` sent a tag list that is not the registry API's JSON"),
                ),
            })?;
            if list
                .tags
                .unwrap_or_default()
                .iter()
                .any(|t| t.starts_with(crate::context::fingerprint::TAG_PREFIX))
            {
                return Ok(true);
            }
            match next {
                Some(n) if n.starts_with("http") => url = n,
                Some(n) => url = format!("{base}{n}"),
                None => return Ok(false),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(link: Option<&str>) -> reqwest::Response {
        let mut b = hyper::http::Response::builder().status(200);
        if let Some(l) = link {
            b = b.header("link", l);
        }
        reqwest::Response::from(b.body("").unwrap())
    }

    #[test]
    fn the_tag_list_follows_its_next_link() {
        assert_eq!(
            next_page(&answer(Some(
                "</v2/shop-orders/tags/list?last=sha-1&n=1000>; rel=\"next\""
            )))
            .as_deref(),
            Some("/v2/shop-orders/tags/list?last=sha-1&n=1000")
        );
        assert_eq!(next_page(&answer(None)), None);
        assert_eq!(next_page(&answer(Some("</x>; rel=\"prev\""))), None);
    }

    #[test]
    fn long_references_are_shortened_for_messages() {
        assert_eq!(
            short_reference(&format!("ctx-{}", "a".repeat(64))),
            "ctx-aaaaaaaaaaaa…"
        );
        assert_eq!(short_reference("latest"), "latest");
    }
}
