//! ECR through its API: repositories (created idempotently with scanning, immutable tags,
//! encryption, tags and a lifecycle policy) and the registry authorization token.
//!
//! Images themselves are observed and retagged through the registry ([`crate::clients::registry`]), which
//! is what is actually deployable. This module never deletes a repository.

use async_trait::async_trait;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use base64::Engine as _;

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

/// A repository as ECR describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    pub name: String,
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
    pub uri: String,
    /// The repository's ARN, for tagging.
    pub arn: Option<String>,
    /// Whether this run created it.
    pub created: bool,
}

impl Repository {
    /// The registry host part of the URI.
    pub fn registry_host(&self) -> &str {
        self.uri.split('/').next().unwrap_or(&self.uri)
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
#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error("ECR {operation} failed for `{repository}`: {message}")]
    Api {
        operation: &'static str,
        repository: String,
        message: String,
    },
    #[error("ECR returned an authorization token that is not `user:password` in base64")]
    BadToken,
}

fn api_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    repository: &str,
    e: &SdkError<E>,
) -> EcrError {
    let message = match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            )
        }
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    };
    EcrError::Api {
        operation,
        repository: repository.to_string(),
        message,
    }
}

/// A request the SDK refused to build (a required field missing): a bug, reported like an API error.
fn build_error(operation: &'static str, repository: &str, e: &dyn std::error::Error) -> EcrError {
    EcrError::Api {
        operation,
        repository: repository.to_string(),
        message: e.to_string(),
    }
}

/// The ECR API as the deploy uses it.
#[async_trait]
pub trait RepositoryService: Send + Sync {
    async fn authorization(&self) -> Result<EcrAuth, EcrError>;
    /// Create the repository if missing and bring its settings in line; never deletes.
    async fn ensure(&self, spec: &RepositorySpec) -> Result<Repository, EcrError>;
    /// Whether the repository exists, without changing anything.
    async fn find(&self, name: &str) -> Result<Option<Repository>, EcrError>;
}

/// The real client.
pub struct Ecr {
    client: aws_sdk_ecr::Client,
}

impl Ecr {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Ecr {
            client: aws_sdk_ecr::Client::new(config),
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
            .map_err(|e| api_error("GetAuthorizationToken", "-", &e))?;
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

    async fn find(&self, name: &str) -> Result<Option<Repository>, EcrError> {
        match self
            .client
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.repositories().first().map(|r| Repository {
                name: name.to_string(),
                uri: r.repository_uri().unwrap_or_default().to_string(),
                arn: r.repository_arn().map(str::to_string),
                created: false,
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeRepositories", name, &e)),
        }
    }

    async fn ensure(&self, spec: &RepositorySpec) -> Result<Repository, EcrError> {
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

        let repository = match self.find(name).await? {
            Some(r) => r,
            None => {
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
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await;
                match created {
                    Ok(out) => Repository {
                        name: name.to_string(),
                        uri: out
                            .repository()
                            .and_then(|r| r.repository_uri())
                            .unwrap_or_default()
                            .to_string(),
                        arn: out
                            .repository()
                            .and_then(|r| r.repository_arn())
                            .map(str::to_string),
                        created: true,
                    },
                    // Another run created it between our look-up and our create: not an error.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_repository_already_exists_exception()) =>
                    {
                        self.find(name).await?.ok_or_else(|| EcrError::Api {
                            operation: "DescribeRepositories",
                            repository: name.into(),
                            message: "the repository was reported as existing but cannot be found"
                                .into(),
                        })?
                    }
                    Err(e) => return Err(api_error("CreateRepository", name, &e)),
                }
            }
        };
        if !repository.created {
            // Existing repositories are brought in line; each call is idempotent.
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
                .map_err(|e| api_error("PutImageScanningConfiguration", name, &e))?;
            self.client
                .put_image_tag_mutability()
                .repository_name(name)
                .image_tag_mutability(ImageTagMutability::Immutable)
                .send()
                .await
                .map_err(|e| api_error("PutImageTagMutability", name, &e))?;
            // Tags are put again, so a repository created by hand or an older run is labelled too.
            if let Some(arn) = &repository.arn {
                self.client
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| api_error("TagResource", name, &e))?;
            }
        }
        self.client
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(spec.lifecycle_policy())
            .send()
            .await
            .map_err(|e| api_error("PutLifecyclePolicy", name, &e))?;
        Ok(repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn registry_host_is_the_uri_before_the_first_slash() {
        let r = Repository {
            name: "shop-orders".into(),
            uri: "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-orders".into(),
            arn: None,
            created: true,
        };
        assert_eq!(
            r.registry_host(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
    }
}
