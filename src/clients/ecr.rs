//! ECR through its API: the registry authorization token, and repositories: described a hundred
//! at a time, created with immutable tags, scan on push, encryption, tags and a lifecycle policy,
//! and brought back in line where their tag mutability or scanning drifted.
//!
//! Images themselves are observed and retagged through the registry ([`crate::clients::registry`]), which
//! is what is actually deployable. This module never deletes a repository.

use async_trait::async_trait;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
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
}

impl RepositorySpec {
    /// The lifecycle policy: expire untagged images after M days, keep the last N images built
    /// by this tool (every such image carries a `ctx-` tag).
    pub fn lifecycle_policy(&self) -> String {
        serde_json::json!({
            "rules": [
                {
                    "rulePriority": 1,
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
                    "rulePriority": 2,
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
}

/// A repository as `DescribeRepositories` returns it: the settings the plan compares with what
/// they must be. (Its encryption is not among them: ECR encrypts every repository and cannot
/// change how after creation, so there is nothing to bring back in line.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryState {
    pub name: String,
    /// `IMMUTABLE`, `MUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, ...
    pub tag_mutability: String,
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
}

impl RepositoryDrift {
    pub fn describe(self) -> &'static str {
        match self {
            RepositoryDrift::MutableTags => "tags are mutable",
            RepositoryDrift::ScanOnPushOff => "scan on push is off",
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
        scan_on_push: r
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push()),
    }
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
    /// Create the repository with immutable tags, scan on push, encryption, its tags and its
    /// lifecycle policy. Returns `false` when another run created it first (not an error).
    async fn create(&self, spec: &RepositorySpec) -> Result<bool, EcrError>;
    /// Bring an existing repository's settings back in line.
    async fn reconcile(&self, name: &str, drift: &[RepositoryDrift]) -> Result<(), EcrError>;
}

/// The real client.
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    /// Where the calls go, for messages: the endpoint override or ECR's regional endpoint.
    endpoint: String,
}

impl Ecr {
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
            client: aws_sdk_ecr::Client::new(config),
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
            .image_tag_mutability(ImageTagMutability::Immutable)
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
        self.client
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(spec.lifecycle_policy())
            .send()
            .await
            .map_err(|e| self.error("PutLifecyclePolicy", Some(name), &e))?;
        Ok(true)
    }

    async fn reconcile(&self, name: &str, drift: &[RepositoryDrift]) -> Result<(), EcrError> {
        for d in drift {
            match d {
                RepositoryDrift::ScanOnPushOff => {
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
                RepositoryDrift::MutableTags => {
                    self.client
                        .put_image_tag_mutability()
                        .repository_name(name)
                        .image_tag_mutability(ImageTagMutability::Immutable)
                        .send()
                        .await
                        .map_err(|e| self.error("PutImageTagMutability", Some(name), &e))?;
                }
            }
        }
        Ok(())
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
    fn lifecycle_policy_keeps_n_and_expires_untagged_after_m_days() {
        let spec = RepositorySpec {
            name: "shop-orders".into(),
            project: "shop".into(),
            consumer: "orders".into(),
            environment: "production".into(),
            keep_images: 25,
            untagged_expiry_days: 3,
        };
        let v: serde_json::Value = serde_json::from_str(&spec.lifecycle_policy()).unwrap();
        assert_eq!(v["rules"][0]["selection"]["tagStatus"], "untagged");
        assert_eq!(v["rules"][0]["selection"]["countNumber"], 3);
        assert_eq!(
            v["rules"][1]["selection"]["countType"],
            "imageCountMoreThan"
        );
        assert_eq!(v["rules"][1]["selection"]["countNumber"], 25);
        assert_eq!(v["rules"][1]["selection"]["tagPrefixList"][0], "ctx-");
    }
}
