//! ECR through its API: the registry authorization token, and repositories: described a hundred
//! at a time, created with immutable tags (but the build cache's `cache-*`), scan on push, encryption, tags and a lifecycle policy,
//! and brought back in line where their tag mutability or scanning drifted. It also reads the
//! summary of an image's vulnerability scan ([`ScanReader`]).
//!
//! Images themselves are observed and retagged through the registry ([`crate::clients::registry`]), which
//! is what is actually deployable. This module never deletes a repository, and never starts a scan.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageIdentifier, ImageScanFindings, ImageScanStatus,
    ImageScanningConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType, ScanStatus, Tag,
};
use base64::Engine as _;

use aws_sdk_ecr::config::http::HttpResponse;

use crate::failure::{self, Cause, Failure};
use crate::secret::Secret;

/// Value of the `managed-by` tag on everything this tool creates.
pub const MANAGED_BY: &str = "cdc-deploy";

/// What a consumer's repository must look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositorySpec {
    pub name: String,
    pub project: String,
    pub consumer: String,
    pub environment: String,
    /// Tagged images kept by the lifecycle policy.
    pub keep_images: u32,
    /// Days after which untagged images expire.
    pub untagged_expiry_days: u32,
    /// Whether the build cache's tags (`cache-*`) are left mutable (`build-cache`).
    pub cache_tags_mutable: bool,
    /// The tags an existing repository already leaves mutable (its exclusion filters, `cache-*`):
    /// a reconcile adds to them, never takes one away.
    pub mutable_tags: Vec<String>,
}

/// Prefix of the tags that mark the image an environment runs (`keep-run-<environment>`) and the
/// one it ran before (`keep-ran-<environment>`, what a rollback goes back to). Each deploy moves
/// them; the lifecycle policy's first rule selects them and never expires one, and ECR lets no
/// lower rule expire an image a higher one selects.
pub const KEEP_TAG_PREFIX: &str = "keep-";

/// More images than a repository will ever hold under `keep-` tags (two per environment): the
/// first rule's count, never reached.
const KEEP_COUNT: u32 = 9999;

/// The tag on the image `environment` runs.
pub fn keep_run_tag(environment: &str) -> String {
    keep_tag("run", environment)
}

/// The tag on the image `environment` ran before the last change, what a rollback goes back to.
pub fn keep_ran_tag(environment: &str) -> String {
    keep_tag("ran", environment)
}

/// `keep-<which>-<environment>`, in the characters a tag may hold (others become `-`) and at most
/// 128 of them.
fn keep_tag(which: &str, environment: &str) -> String {
    let env: String = environment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut tag = format!("{KEEP_TAG_PREFIX}{which}-{env}");
    tag.truncate(128);
    tag
}

impl RepositorySpec {
    /// The lifecycle policy: never expire what an environment runs or ran before (`keep-`
    /// tags), expire untagged images after M days, keep the last N images built by this tool
    /// (every such image carries a `ctx-` tag).
    pub fn lifecycle_policy(&self) -> String {
        serde_json::json!({
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "never expire the images environments run or ran before (keep-* tags, moved by each deploy)",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPrefixList": [KEEP_TAG_PREFIX],
                        "countType": "imageCountMoreThan",
                        "countNumber": KEEP_COUNT
                    },
                    "action": { "type": "expire" }
                },
                {
                    "rulePriority": 2,
                    "description": format!("expire untagged images after {} days", self.untagged_expiry_days),
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": self.untagged_expiry_days
                    },
                    "action": { "type": "expire" }
                },
                {
                    "rulePriority": 3,
                    "description": format!("keep the last {} images built by cdc-deploy", self.keep_images),
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPrefixList": [crate::context::fingerprint::TAG_PREFIX],
                        "countType": "imageCountMoreThan",
                        "countNumber": self.keep_images
                    },
                    "action": { "type": "expire" }
                }
            ]
        })
        .to_string()
    }

    /// The exclusion filters from tag immutability the repository must have: the ones it has,
    /// `keep-*`, and `cache-*` when the build cache is kept (with `cache`).
    fn mutable_filters(&self, cache: bool) -> Vec<String> {
        let mut filters = self.mutable_tags.clone();
        let keep = format!("{KEEP_TAG_PREFIX}*");
        let cached = format!("{CACHE_TAG_PREFIX}*");
        for f in [Some(cached).filter(|_| cache), Some(keep)]
            .into_iter()
            .flatten()
        {
            if !filters.contains(&f) {
                filters.push(f);
            }
        }
        filters
    }
}

/// A repository as `DescribeRepositories` returns it: the settings the plan compares with what
/// they must be. (Its encryption is not among them: ECR encrypts every repository and cannot
/// change how after creation, so there is nothing to bring back in line.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryState {
    pub name: String,
    /// `IMMUTABLE`, `MUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, ...
    pub tag_mutability: String,
    /// Its exclusion filters from tag immutability (`cache-*`, `keep-*`).
    pub mutable_tags: Vec<String>,
    pub scan_on_push: bool,
}

/// The answer to one `DescribeRepositories` call for a list of names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Described {
    /// Every name exists.
    All(Vec<RepositoryState>),
    /// At least one name does not: ECR then fails the whole call, naming only one of them
    /// (`missing`, when its message could be read).
    SomeMissing { missing: Option<String> },
}

/// The repository a `RepositoryNotFoundException` names: `The repository with name 'x' does not
/// exist in the registry with id '123456789012'`.
fn missing_name(message: &str) -> Option<String> {
    let rest = &message[message.find("name '")? + "name '".len()..];
    Some(rest[..rest.find('\'')?].to_string())
}

/// A setting of an existing repository that is not as it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepositoryDrift {
    /// Tags can be overwritten: an image could change under a tag the action pinned.
    MutableTags,
    /// Images are not scanned for vulnerabilities when pushed.
    ScanOnPushOff,
    /// Every tag is immutable, the build cache's too: the cache cannot move to a new image.
    CacheTagsImmutable,
    /// The tags that mark what environments run (`keep-*`) cannot move, and the lifecycle
    /// policy may predate the rule that protects them: a repository made by an earlier version.
    KeepTagsImmutable,
}

impl RepositoryDrift {
    pub fn describe(self) -> &'static str {
        match self {
            RepositoryDrift::MutableTags => "tags are mutable",
            RepositoryDrift::ScanOnPushOff => "scan on push is off",
            RepositoryDrift::CacheTagsImmutable => "its build cache tags `cache-*` are immutable",
            RepositoryDrift::KeepTagsImmutable => {
                "the tags that keep what environments run (`keep-*`) cannot move"
            }
        }
    }
}

/// Registry credentials from `GetAuthorizationToken`.
#[derive(Clone, Debug)]
pub struct EcrAuth {
    pub username: String,
    pub password: Secret,
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`.
    pub proxy_endpoint: String,
}

/// An ECR call that failed after the SDK's retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcrError {
    #[error("ECR {operation} failed{}: {failure}", repository.as_deref().map(|r| format!(" for `{r}`")).unwrap_or_default())]
    Api {
        operation: &'static str,
        repository: Option<String>,
        failure: Failure,
    },
    #[error("ECR returned an authorization token that is not `user:password` in base64")]
    BadToken,
}

impl EcrError {
    /// Why the call failed, when it reached ECR or tried to.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            EcrError::Api { failure, .. } => Some(failure),
            EcrError::BadToken => None,
        }
    }
}

/// A request the SDK refused to build (a required field missing): a bug, reported like an API error.
fn build_error(operation: &'static str, repository: &str, e: &dyn std::error::Error) -> EcrError {
    EcrError::Api {
        operation,
        repository: Some(repository.to_string()),
        failure: Failure::new(Cause::Configuration, e.to_string()),
    }
}

fn state(r: &aws_sdk_ecr::types::Repository) -> RepositoryState {
    RepositoryState {
        name: r.repository_name().unwrap_or_default().to_string(),
        tag_mutability: r
            .image_tag_mutability()
            .map_or("MUTABLE", |m| m.as_str())
            .to_string(),
        // Only an immutable repository's filters name mutable tags (a mutable one's name the
        // tags that are not).
        mutable_tags: if r.image_tag_mutability()
            == Some(&ImageTagMutability::ImmutableWithExclusion)
        {
            r.image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect()
        } else {
            Vec::new()
        },
        scan_on_push: r
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push()),
    }
}

/// Prefix of the tags a consumer's build cache is kept under, the only mutable ones.
pub const CACHE_TAG_PREFIX: &str = "cache-";

/// The exclusions from tag immutability: the tags that move (the build cache's, the ones that
/// keep what environments run), each a wildcard filter.
fn exclusions(
    operation: &'static str,
    repository: &str,
    filters: &[String],
) -> Result<Vec<ImageTagMutabilityExclusionFilter>, EcrError> {
    filters
        .iter()
        .map(|f| {
            ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(f)
                .build()
                .map_err(|e| build_error(operation, repository, &e))
        })
        .collect()
}

/// Names per `DescribeRepositories` call: the API's maximum.
pub const DESCRIBE_BATCH: usize = 100;

/// The ECR API as the action uses it.
#[async_trait]
pub trait RepositoryService: Send + Sync {
    async fn authorization(&self) -> Result<EcrAuth, EcrError>;
    /// The repositories named, at most [`DESCRIBE_BATCH`] of them, in one call.
    async fn describe(&self, names: &[String]) -> Result<Described, EcrError>;
    /// Every repository of the registry, page by page. A role allowed to describe only its
    /// project's repositories is refused this.
    async fn list(&self) -> Result<Vec<RepositoryState>, EcrError>;
    /// Create the repository with immutable tags (but `cache-*`, when the cache is on), scan on push, encryption, its tags and its
    /// lifecycle policy. Returns `false` when another run created it first (not an error).
    async fn create(&self, spec: &RepositorySpec) -> Result<bool, EcrError>;
    /// Bring an existing repository's settings back in line.
    async fn reconcile(
        &self,
        spec: &RepositorySpec,
        drift: &[RepositoryDrift],
    ) -> Result<(), EcrError>;
}

/// A finding severity as ECR names it. Ordered most severe first, so a map keyed by it lists the
/// worst findings first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
    /// A name this version does not know (enhanced scanning's `UNTRIAGED`, say), kept as ECR
    /// spelt it; after the known ones.
    Other(String),
}

impl Severity {
    /// The severity ECR calls `name`.
    pub fn parse(name: &str) -> Self {
        match name {
            "CRITICAL" => Severity::Critical,
            "HIGH" => Severity::High,
            "MEDIUM" => Severity::Medium,
            "LOW" => Severity::Low,
            "INFORMATIONAL" => Severity::Informational,
            "UNDEFINED" => Severity::Undefined,
            other => Severity::Other(other.to_string()),
        }
    }

    /// ECR's name: `CRITICAL`, `HIGH`, ...
    pub fn as_str(&self) -> &str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
            Severity::Other(name) => name,
        }
    }

    /// `CRITICAL` or `HIGH`: what a person should look at before the image runs.
    pub fn is_serious(&self) -> bool {
        matches!(self, Severity::Critical | Severity::High)
    }
}

impl serde::Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What ECR says about the scan of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanState {
    /// The scan is done (`COMPLETE`, or `ACTIVE` under enhanced scanning): findings by
    /// severity, without the zeros; empty when nothing was found.
    Complete(BTreeMap<Severity, u32>),
    /// The scan has not finished (`IN_PROGRESS`, `PENDING`).
    Pending,
    /// ECR holds no scan of the image (`ScanNotFoundException`): scan on push is off, or the
    /// scan never started.
    NotScanned,
    /// There are no findings to be had: the scan failed, the image is not supported, or the
    /// image or repository does not exist. `reason` is ECR's description (server text,
    /// untrusted) or says which is missing.
    Unavailable { reason: String },
}

/// Characters of ECR's description kept in a reason.
const DESCRIPTION: usize = 200;

/// The state a `DescribeImageScanFindings` answer describes.
fn scan_state(status: Option<&ImageScanStatus>, findings: Option<&ImageScanFindings>) -> ScanState {
    let description = status
        .and_then(|s| s.description())
        .map(|d| failure::one_line(d, DESCRIPTION))
        .filter(|d| !d.is_empty());
    match status.and_then(|s| s.status()) {
        Some(ScanStatus::Complete | ScanStatus::Active) => ScanState::Complete(
            findings
                .and_then(|f| f.finding_severity_counts())
                .into_iter()
                .flatten()
                .filter_map(|(severity, n)| {
                    let n = u32::try_from(*n).ok().filter(|n| *n > 0)?;
                    Some((Severity::parse(severity.as_str()), n))
                })
                .collect(),
        ),
        Some(ScanStatus::InProgress | ScanStatus::Pending) => ScanState::Pending,
        Some(other) => ScanState::Unavailable {
            reason: match description {
                Some(d) => format!("ECR reports `{}`: {d}", other.as_str()),
                None => format!("ECR reports `{}`", other.as_str()),
            },
        },
        None => ScanState::Unavailable {
            reason: "ECR gave no scan status".to_string(),
        },
    }
}

/// Reads the vulnerability scan of pushed images. Kept apart from [`RepositoryService`]: only
/// the report needs it.
#[async_trait]
pub trait ScanReader: Send + Sync {
    /// The scan of the image `digest` (`sha256:…`) in `repository`. An image or repository that
    /// does not exist is a [`ScanState::Unavailable`], not an error; errors are calls that failed.
    async fn scan_findings(&self, repository: &str, digest: &str) -> Result<ScanState, EcrError>;
}

/// The real client.
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    /// Where the calls go, for messages: the endpoint override or ECR's regional endpoint.
    endpoint: String,
}

impl Ecr {
    /// Write the lifecycle policy `spec` asks for.
    async fn put_lifecycle_policy(&self, spec: &RepositorySpec) -> Result<(), EcrError> {
        self.client
            .put_lifecycle_policy()
            .repository_name(&spec.name)
            .lifecycle_policy_text(spec.lifecycle_policy())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("PutLifecyclePolicy", Some(&spec.name), &e))
    }

    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let endpoint = config.endpoint_url().map_or_else(
            || {
                format!(
                    "https://api.ecr.{}.amazonaws.com",
                    config.region().map_or("REGION", |r| r.as_ref())
                )
            },
            str::to_string,
        );
        Ecr {
            client: aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(config)
                    .interceptor(super::aws_retries::counted("ECR"))
                    .build(),
            ),
            endpoint,
        }
    }

    fn error<E>(
        &self,
        operation: &'static str,
        repository: Option<&str>,
        e: &SdkError<E, HttpResponse>,
    ) -> EcrError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        EcrError::Api {
            operation,
            repository: repository.map(str::to_string),
            failure: failure::from_sdk(e, &format!("ecr:{operation}"), &self.endpoint),
        }
    }
}

#[async_trait]
impl RepositoryService for Ecr {
    async fn authorization(&self) -> Result<EcrAuth, EcrError> {
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| self.error("GetAuthorizationToken", None, &e))?;
        let data = out.authorization_data().first().ok_or(EcrError::BadToken)?;
        let token = data.authorization_token().ok_or(EcrError::BadToken)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| EcrError::BadToken)?;
        let decoded = String::from_utf8(decoded).map_err(|_| EcrError::BadToken)?;
        let (user, password) = decoded.split_once(':').ok_or(EcrError::BadToken)?;
        Ok(EcrAuth {
            username: user.to_string(),
            password: Secret::new(password),
            proxy_endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
        })
    }

    async fn describe(&self, names: &[String]) -> Result<Described, EcrError> {
        match self
            .client
            .describe_repositories()
            .set_repository_names(Some(names.to_vec()))
            .send()
            .await
        {
            Ok(out) => Ok(Described::All(
                out.repositories().iter().map(state).collect(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                Ok(Described::SomeMissing {
                    missing: e
                        .as_service_error()
                        .and_then(|s| s.message())
                        .and_then(missing_name),
                })
            }
            Err(e) => Err(self.error("DescribeRepositories", None, &e)),
        }
    }

    async fn list(&self) -> Result<Vec<RepositoryState>, EcrError> {
        let mut pages = self
            .client
            .describe_repositories()
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("DescribeRepositories", None, &e))?;
            out.extend(page.repositories().iter().map(state));
        }
        Ok(out)
    }

    async fn create(&self, spec: &RepositorySpec) -> Result<bool, EcrError> {
        let name = spec.name.as_str();
        let tags = [
            ("project", spec.project.as_str()),
            ("consumer", spec.consumer.as_str()),
            ("environment", spec.environment.as_str()),
            ("managed-by", MANAGED_BY),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error("CreateRepository", name, &e))?;
        let created = self
            .client
            .create_repository()
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
            .set_image_tag_mutability_exclusion_filters(Some(exclusions(
                "CreateRepository",
                name,
                &spec.mutable_filters(spec.cache_tags_mutable),
            )?))
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(true)
                    .build(),
            )
            .encryption_configuration(
                EncryptionConfiguration::builder()
                    .encryption_type(EncryptionType::Aes256)
                    .build()
                    .map_err(|e| build_error("CreateRepository", name, &e))?,
            )
            .set_tags(Some(tags))
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Another run created it between our look-up and our create: it sets it up.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(self.error("CreateRepository", Some(name), &e)),
        }
        self.put_lifecycle_policy(spec).await?;
        Ok(true)
    }

    async fn reconcile(
        &self,
        spec: &RepositorySpec,
        drift: &[RepositoryDrift],
    ) -> Result<(), EcrError> {
        let name = spec.name.as_str();
        if drift.contains(&RepositoryDrift::ScanOnPushOff) {
            self.client
                .put_image_scanning_configuration()
                .repository_name(name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(true)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.error("PutImageScanningConfiguration", Some(name), &e))?;
        }
        let cache = drift.iter().any(|d| {
            matches!(
                d,
                RepositoryDrift::MutableTags | RepositoryDrift::CacheTagsImmutable
            )
        });
        if cache || drift.contains(&RepositoryDrift::KeepTagsImmutable) {
            self.client
                .put_image_tag_mutability()
                .repository_name(name)
                .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
                .set_image_tag_mutability_exclusion_filters(Some(exclusions(
                    "PutImageTagMutability",
                    name,
                    &spec.mutable_filters(cache && spec.cache_tags_mutable),
                )?))
                .send()
                .await
                .map_err(|e| self.error("PutImageTagMutability", Some(name), &e))?;
        }
        if drift.contains(&RepositoryDrift::KeepTagsImmutable) {
            // A repository without the `keep-*` exclusion predates the policy's first rule.
            self.put_lifecycle_policy(spec).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ScanReader for Ecr {
    async fn scan_findings(&self, repository: &str, digest: &str) -> Result<ScanState, EcrError> {
        let answer = self
            .client
            .describe_image_scan_findings()
            .repository_name(repository)
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            // Only the summary (`findingSeverityCounts`) is read, not the paged list of findings:
            // a page of one, the fewest the API allows, keeps the answer small.
            .max_results(1)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(scan_state(
                out.image_scan_status(),
                out.image_scan_findings(),
            )),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_scan_not_found_exception() => Ok(ScanState::NotScanned),
                Some(s) if s.is_image_not_found_exception() => Ok(ScanState::Unavailable {
                    reason: format!("`{repository}` holds no image `{digest}`"),
                }),
                Some(s) if s.is_repository_not_found_exception() => Ok(ScanState::Unavailable {
                    reason: format!("the repository `{repository}` does not exist"),
                }),
                _ => Err(self.error("DescribeImageScanFindings", Some(repository), &e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_repository_is_read_from_ecrs_message() {
        assert_eq!(
            missing_name("The repository with name 'shop-orders' does not exist in the registry with id '123456789012'").as_deref(),
            Some("shop-orders")
        );
        assert_eq!(missing_name("not found"), None);
    }

    #[test]
    fn only_an_immutable_repositorys_filters_are_its_mutable_tags() {
        let repo = |m: ImageTagMutability| {
            aws_sdk_ecr::types::Repository::builder()
                .repository_name("shop-orders")
                .image_tag_mutability(m)
                .image_tag_mutability_exclusion_filters(
                    exclusions("test", "shop-orders", &["release-*".to_string()]).unwrap()[0]
                        .clone(),
                )
                .build()
        };
        assert_eq!(
            state(&repo(ImageTagMutability::ImmutableWithExclusion)).mutable_tags,
            ["release-*"]
        );
        // A mutable repository's filters name the tags that are not: none is mutable to keep.
        assert!(state(&repo(ImageTagMutability::MutableWithExclusion))
            .mutable_tags
            .is_empty());
    }

    #[test]
    fn lifecycle_policy_keeps_n_and_expires_untagged_after_m_days() {
        let spec = RepositorySpec {
            name: "shop-orders".into(),
            project: "shop".into(),
            consumer: "orders".into(),
            environment: "production".into(),
            keep_images: 25,
            untagged_expiry_days: 3,
            cache_tags_mutable: true,
            mutable_tags: vec!["mine-*".into()],
        };
        let v: serde_json::Value = serde_json::from_str(&spec.lifecycle_policy()).unwrap();
        assert_eq!(v["rules"][0]["rulePriority"], 1);
        assert_eq!(v["rules"][0]["selection"]["tagPrefixList"][0], "keep-");
        assert_eq!(v["rules"][1]["selection"]["tagStatus"], "untagged");
        assert_eq!(v["rules"][1]["selection"]["countNumber"], 3);
        assert_eq!(
            v["rules"][2]["selection"]["countType"],
            "imageCountMoreThan"
        );
        assert_eq!(v["rules"][2]["selection"]["countNumber"], 25);
        assert_eq!(v["rules"][2]["selection"]["tagPrefixList"][0], "ctx-");
        // A reconcile adds the filters it needs to the repository's own.
        assert_eq!(spec.mutable_filters(true), ["mine-*", "cache-*", "keep-*"]);
        assert_eq!(spec.mutable_filters(false), ["mine-*", "keep-*"]);
        assert_eq!(keep_run_tag("prod/eu 1"), "keep-run-prod-eu-1");
        assert_eq!(keep_ran_tag("staging"), "keep-ran-staging");
    }

    fn status(status: &str, description: Option<&str>) -> ImageScanStatus {
        ImageScanStatus::builder()
            .status(ScanStatus::from(status))
            .set_description(description.map(str::to_string))
            .build()
    }

    fn counts(pairs: &[(&str, i32)]) -> ImageScanFindings {
        let mut b = ImageScanFindings::builder();
        for (severity, n) in pairs {
            b = b.finding_severity_counts((*severity).into(), *n);
        }
        b.build()
    }

    #[test]
    fn a_complete_scan_gives_counts_most_severe_first() {
        let state = scan_state(
            Some(&status(
                "COMPLETE",
                Some("The scan was completed successfully."),
            )),
            Some(&counts(&[
                ("LOW", 3),
                ("CRITICAL", 2),
                ("UNTRIAGED", 4),
                ("MEDIUM", 0),
                ("HIGH", 5),
            ])),
        );
        let ScanState::Complete(found) = state else {
            panic!("{state:?}")
        };
        let names: Vec<(&str, u32)> = found.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(
            names,
            [("CRITICAL", 2), ("HIGH", 5), ("LOW", 3), ("UNTRIAGED", 4)],
            "zeros left out, unknown names kept after the known ones"
        );
    }

    #[test]
    fn a_complete_scan_without_counts_found_nothing() {
        assert_eq!(
            scan_state(Some(&status("COMPLETE", None)), None),
            ScanState::Complete(BTreeMap::new())
        );
        assert_eq!(
            scan_state(Some(&status("ACTIVE", None)), Some(&counts(&[("HIGH", 1)]))),
            ScanState::Complete(BTreeMap::from([(Severity::High, 1)])),
            "enhanced scanning's continuous state has findings"
        );
    }

    #[test]
    fn unfinished_and_failed_scans_are_told_apart() {
        for s in ["IN_PROGRESS", "PENDING"] {
            assert_eq!(scan_state(Some(&status(s, None)), None), ScanState::Pending);
        }
        assert_eq!(
            scan_state(
                Some(&status(
                    "UNSUPPORTED_IMAGE",
                    Some("UnsupportedImageError: The operating system\nis not supported.")
                )),
                None
            ),
            ScanState::Unavailable {
                reason: "ECR reports `UNSUPPORTED_IMAGE`: UnsupportedImageError: The operating system is not supported.".into()
            }
        );
        for s in [
            "FAILED",
            "FINDINGS_UNAVAILABLE",
            "SCAN_ELIGIBILITY_EXPIRED",
            "SOMETHING_NEW",
        ] {
            assert_eq!(
                scan_state(Some(&status(s, None)), Some(&counts(&[("HIGH", 1)]))),
                ScanState::Unavailable {
                    reason: format!("ECR reports `{s}`")
                }
            );
        }
        assert!(matches!(
            scan_state(None, None),
            ScanState::Unavailable { .. }
        ));
    }

    #[test]
    fn severities_order_and_print_as_ecr_names_them() {
        let mut all: Vec<Severity> = [
            "UNDEFINED",
            "LOW",
            "UNTRIAGED",
            "CRITICAL",
            "INFORMATIONAL",
            "MEDIUM",
            "HIGH",
        ]
        .into_iter()
        .map(Severity::parse)
        .collect();
        all.sort();
        let names: Vec<&str> = all.iter().map(Severity::as_str).collect();
        assert_eq!(
            names,
            [
                "CRITICAL",
                "HIGH",
                "MEDIUM",
                "LOW",
                "INFORMATIONAL",
                "UNDEFINED",
                "UNTRIAGED"
            ]
        );
        assert_eq!(
            serde_json::to_string(&BTreeMap::from([
                (Severity::Low, 1),
                (Severity::Critical, 2)
            ]))
            .unwrap(),
            r#"{"CRITICAL":2,"LOW":1}"#
        );
        assert!(Severity::Critical.is_serious() && Severity::High.is_serious());
        assert!(!Severity::Medium.is_serious());
    }
}
