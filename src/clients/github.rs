//! GitHub's REST API, as the reports use it: issue comments (the sticky pull request comment),
//! the pull requests of a commit, check runs and deployments.
//!
//! Requests go through octocrab's HTTP layer with bodies built here, as GitHub's REST description
//! names their fields, and are retried by the project's own policy: server errors and rate
//! limits (`Retry-After`, `x-ratelimit-reset`) are asked again a bounded number of times; any
//! other refusal is returned at once, classified (a 403 or 404 usually means a permission the
//! job's token lacks). `GITHUB_API_URL` is honoured, so GitHub Enterprise Server works.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt as _;
use serde_json::Value;

use crate::clients::retry::{parse_retry_after, RetryPolicy};

/// Why a GitHub request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    /// GitHub answered with an error status.
    #[error("GitHub refused to {operation} ({status}): {message}")]
    Status {
        operation: String,
        status: u16,
        message: String,
        /// A delay GitHub asked for (rate limits), for the retry.
        retry_after: Option<Duration>,
    },
    /// GitHub could not be reached, or its answer could not be read.
    #[error("GitHub could not be asked to {operation}: {message}")]
    Transport { operation: String, message: String },
}

impl GithubError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Status { status, .. } => Some(*status),
            GithubError::Transport { .. } => None,
        }
    }

    /// A 403 or 404 that is not a rate limit: the token may not do this (a pull request from a
    /// fork, a workflow without the permission).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            GithubError::Status {
                status: 403 | 404,
                retry_after: None,
                ..
            }
        )
    }

    /// Why the call failed, as far as retrying it goes.
    pub fn cause(&self) -> crate::failure::Cause {
        use crate::failure::Cause;
        match self {
            GithubError::Status {
                retry_after: Some(_),
                ..
            }
            | GithubError::Status { status: 429, .. } => Cause::Throttled,
            GithubError::Status { status, .. } if *status >= 500 => Cause::Server,
            GithubError::Status { status: 401, .. } => Cause::Credentials,
            GithubError::Status { status: 403, .. } => Cause::Permission,
            GithubError::Status { status: 404, .. } => Cause::NotFound,
            GithubError::Status { .. } => Cause::Rejected,
            GithubError::Transport { .. } => Cause::Network,
        }
    }

    /// Asking again later may succeed: the cause is transient, and a rate limit's wait is one a
    /// run can afford (a longer one is reported instead).
    fn is_transient(&self) -> bool {
        self.cause().is_transient() && self.retry_after().is_none_or(|wait| wait <= MAX_WAIT)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            GithubError::Status { retry_after, .. } => *retry_after,
            GithubError::Transport { .. } => None,
        }
    }
}

/// A comment on an issue or pull request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct IssueComment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
    pub html_url: String,
    #[serde(default)]
    pub user: Option<Author>,
}

/// Who wrote a comment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Author {
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A pull request that contains a commit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct PullRef {
    pub number: u64,
    pub state: String,
    #[serde(default)]
    pub merged_at: Option<String>,
}

/// The calls the reports make, against one repository.
#[async_trait]
pub trait GitHub: Send + Sync {
    /// Every comment on issue or pull request `issue`, oldest first.
    async fn comments(&self, issue: u64) -> Result<Vec<IssueComment>, GithubError>;
    async fn create_comment(&self, issue: u64, body: &str) -> Result<IssueComment, GithubError>;
    async fn update_comment(&self, id: u64, body: &str) -> Result<IssueComment, GithubError>;
    async fn delete_comment(&self, id: u64) -> Result<(), GithubError>;
    /// The pull requests that contain `sha`.
    async fn pulls_for_commit(&self, sha: &str) -> Result<Vec<PullRef>, GithubError>;
    /// Create a check run; `body` as the REST description has it. Returns its id.
    async fn create_check_run(&self, body: &Value) -> Result<u64, GithubError>;
    async fn update_check_run(&self, id: u64, body: &Value) -> Result<(), GithubError>;
    /// Create a deployment; returns its id.
    async fn create_deployment(&self, body: &Value) -> Result<u64, GithubError>;
    async fn create_deployment_status(&self, id: u64, body: &Value) -> Result<(), GithubError>;
}

/// The longest wait GitHub may ask for that a request is retried after.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// Comments asked for per page (GitHub's largest).
const PER_PAGE: usize = 100;
/// Pages of comments read at most: a pull request with more than 3,000 comments is not looked
/// through further for the sticky one.
const MAX_PAGES: usize = 30;

/// The real client.
pub struct GithubApi {
    client: octocrab::Octocrab,
    /// `https://api.github.com`, or a GitHub Enterprise Server's `https://HOST/api/v3`.
    base: String,
    /// `owner/name`.
    repository: String,
    retry: RetryPolicy,
    /// The run's cancellation: no retry waits past it.
    cancel: crate::cancel::Cancel,
}

impl GithubApi {
    pub fn new(api_url: &str, repository: &str, token: &str) -> Result<Self, GithubError> {
        let setup = |message: String| GithubError::Transport {
            operation: "set up the client".into(),
            message,
        };
        // The token is sent only to the base URL's host: it must be the API's (GHES too).
        let client = octocrab::Octocrab::builder()
            .base_uri(api_url.trim_end_matches('/'))
            .map_err(|e| setup(format!("`{api_url}` is not a URL: {e}")))?
            .personal_token(token.to_string())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(GithubApi {
            client,
            base: api_url.trim_end_matches('/').to_string(),
            repository: repository.to_string(),
            retry: RetryPolicy::STANDARD,
            cancel: crate::cancel::Cancel::new(),
        })
    }

    /// Retries stop waiting when `cancel` is set.
    pub fn with_cancel(mut self, cancel: &crate::cancel::Cancel) -> Self {
        self.cancel = cancel.clone();
        self
    }

    /// With another retry policy (tests keep it short).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}/repos/{}{path}", self.base, self.repository)
    }

    /// Send once: the body as JSON, the answer's JSON or a classified error.
    async fn send_once(
        &self,
        operation: &str,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, GithubError> {
        let transport = |e: &dyn std::fmt::Display| GithubError::Transport {
            operation: operation.to_string(),
            message: e.to_string(),
        };
        // What the run hides from its log is hidden from comments and check runs too.
        let body = body.map(crate::secret::hidden_json);
        let body = body.as_ref();
        let response = match method {
            "GET" => self.client._get(url).await,
            "POST" => self.client._post(url, body).await,
            "PATCH" => self.client._patch(url, body).await,
            "DELETE" => self.client._delete(url, None::<&()>).await,
            other => return Err(transport(&format!("unsupported method {other}"))),
        }
        .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after")
            .and_then(|v| parse_retry_after(&v))
            .or_else(|| {
                // A primary rate limit: no requests left until the reset time.
                (header("x-ratelimit-remaining").as_deref() == Some("0"))
                    .then(|| header("x-ratelimit-reset"))
                    .flatten()
                    .and_then(|reset| reset.parse::<u64>().ok())
                    .map(|reset| {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs();
                        Duration::from_secs(reset.saturating_sub(now).max(1))
                    })
            });
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(&e))?
            .to_bytes();
        if (200..300).contains(&status) {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| transport(&e));
        }
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut message = parsed["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            });
        if let Some(errors) = parsed["errors"].as_array() {
            let details: Vec<String> = errors
                .iter()
                .map(|e| {
                    e["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            format!(
                                "{} {} {}",
                                e["resource"].as_str().unwrap_or_default(),
                                e["field"].as_str().unwrap_or_default(),
                                e["code"].as_str().unwrap_or_default()
                            )
                        })
                })
                .collect();
            if !details.is_empty() {
                message = format!("{message}: {}", details.join("; "));
            }
        }
        // A secondary rate limit may come without a delay: GitHub asks for at least a minute.
        let retry_after = retry_after.or_else(|| {
            (status == 403 && message.to_ascii_lowercase().contains("rate limit"))
                .then_some(Duration::from_secs(60))
        });
        Err(GithubError::Status {
            operation: operation.to_string(),
            status,
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
            retry_after: retry_after.filter(|_| status == 403 || status == 429),
        })
    }

    /// Send, retrying what may pass.
    async fn send(
        &self,
        operation: &str,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, GithubError> {
        self.retry
            .run(
                operation,
                &self.cancel,
                || self.send_once(operation, method, url, body),
                GithubError::is_transient,
                GithubError::retry_after,
                |_, _| {},
            )
            .await
    }
}

impl GithubApi {
    /// Send `body` to `path` of the repository with `method`, retried as [`GithubApi::send`].
    async fn write(
        &self,
        operation: &str,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, GithubError> {
        self.send(operation, method, &self.url(path), Some(body))
            .await
    }
}

fn field<T: serde::de::DeserializeOwned>(operation: &str, value: Value) -> Result<T, GithubError> {
    serde_json::from_value(value).map_err(|e| GithubError::Transport {
        operation: operation.to_string(),
        message: format!("the answer could not be read: {e}"),
    })
}

fn id_of(operation: &str, value: &Value) -> Result<u64, GithubError> {
    value["id"].as_u64().ok_or_else(|| GithubError::Transport {
        operation: operation.to_string(),
        message: "the answer has no `id`".into(),
    })
}

#[async_trait]
impl GitHub for GithubApi {
    async fn comments(&self, issue: u64) -> Result<Vec<IssueComment>, GithubError> {
        let operation = format!("list the comments of #{issue}");
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = self.url(&format!(
                "/issues/{issue}/comments?per_page={PER_PAGE}&page={page}"
            ));
            let batch: Vec<IssueComment> =
                field(&operation, self.send(&operation, "GET", &url, None).await?)?;
            let last = batch.len() < PER_PAGE;
            all.extend(batch);
            if last {
                break;
            }
        }
        Ok(all)
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<IssueComment, GithubError> {
        let what = format!("comment on #{issue}");
        let path = format!("/issues/{issue}/comments");
        let answer = self
            .write(&what, "POST", &path, &serde_json::json!({ "body": body }))
            .await?;
        field(&what, answer)
    }

    async fn update_comment(&self, id: u64, body: &str) -> Result<IssueComment, GithubError> {
        let what = format!("update comment {id}");
        let path = format!("/issues/comments/{id}");
        let answer = self
            .write(&what, "PATCH", &path, &serde_json::json!({ "body": body }))
            .await?;
        field(&what, answer)
    }

    async fn delete_comment(&self, id: u64) -> Result<(), GithubError> {
        let operation = format!("delete comment {id}");
        let url = self.url(&format!("/issues/comments/{id}"));
        self.send(&operation, "DELETE", &url, None)
            .await
            .map(|_| ())
    }

    async fn pulls_for_commit(&self, sha: &str) -> Result<Vec<PullRef>, GithubError> {
        let operation = format!("list the pull requests of {sha}");
        let url = self.url(&format!("/commits/{sha}/pulls?per_page=100"));
        field(&operation, self.send(&operation, "GET", &url, None).await?)
    }

    async fn create_check_run(&self, body: &Value) -> Result<u64, GithubError> {
        let what = format!(
            "create the check run `{}`",
            body["name"].as_str().unwrap_or_default()
        );
        let answer = self.write(&what, "POST", "/check-runs", body).await?;
        id_of(&what, &answer)
    }

    async fn update_check_run(&self, id: u64, body: &Value) -> Result<(), GithubError> {
        let what = format!("update check run {id}");
        let path = format!("/check-runs/{id}");
        self.write(&what, "PATCH", &path, body).await.map(|_| ())
    }

    async fn create_deployment(&self, body: &Value) -> Result<u64, GithubError> {
        let what = format!(
            "create a deployment to `{}`",
            body["environment"].as_str().unwrap_or_default()
        );
        let answer = self.write(&what, "POST", "/deployments", body).await?;
        id_of(&what, &answer)
    }

    async fn create_deployment_status(&self, id: u64, body: &Value) -> Result<(), GithubError> {
        let what = format!("set the status of deployment {id}");
        let path = format!("/deployments/{id}/statuses");
        self.write(&what, "POST", &path, body).await.map(|_| ())
    }
}
