//! The event that started the workflow, read once from `GITHUB_EVENT_NAME` and the payload at
//! `GITHUB_EVENT_PATH` into one typed value, and the commit a run is about.
//!
//! Nothing else reads the payload. A push that deletes a branch or tag carries no commit (its
//! `after` is forty zeros): it is recognised here, so no stage ever sees that as a commit.

use std::fmt;

use serde::Deserialize;

/// A full git commit id: 40 hex digits (SHA-1) or 64 (SHA-256), lowercase.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct CommitSha(String);

/// A commit id that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("`{0}` is not a full commit id: give the 40 hex digits `git rev-parse HEAD` prints (64 in a SHA-256 repository)")]
    NotACommit(String),
    #[error("`{0}` is all zeros, which GitHub sends for a ref that was deleted, not a commit")]
    Zero(String),
}

impl CommitSha {
    pub fn parse(raw: &str) -> Result<Self, CommitError> {
        let raw = raw.trim();
        let hex = raw.chars().all(|c| c.is_ascii_hexdigit());
        if !hex || !(raw.len() == 40 || raw.len() == 64) {
            return Err(CommitError::NotACommit(raw.to_string()));
        }
        if raw.chars().all(|c| c == '0') {
            return Err(CommitError::Zero(raw.to_string()));
        }
        Ok(CommitSha(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for tables.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a run does when `mode` is `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventMode {
    Plan,
    Deploy,
    /// Only chosen explicitly (`mode: rollback`), never by an event.
    Rollback,
    /// Only chosen explicitly (`mode: build`): build and push, nothing else.
    Build,
    /// Day-2 commands, only chosen explicitly.
    Status,
    Logs,
    Exec,
    Scale,
}

/// The triggering event, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `pull_request` or `pull_request_target` (`target: true`).
    PullRequest {
        number: Option<u64>,
        head_sha: Option<CommitSha>,
        target: bool,
    },
    /// A push to a branch or tag. `after` is `None` when the push deleted the ref.
    Push {
        git_ref: Option<String>,
        after: Option<CommitSha>,
        deleted: bool,
    },
    WorkflowDispatch {
        git_ref: Option<String>,
    },
    Schedule,
    /// A merge queue's check of a group of pull requests.
    MergeGroup {
        head_sha: Option<CommitSha>,
    },
    /// Any other event: it does not choose a mode on its own.
    Other {
        name: String,
    },
}

/// A payload that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("could not read the event payload `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("the `{event}` event payload `{path}` is not what GitHub sends: {reason}")]
    Shape {
        event: String,
        path: String,
        reason: String,
    },
}

#[derive(Deserialize)]
struct PullRequestPayload {
    pull_request: Option<PullRequestBody>,
    number: Option<u64>,
}

#[derive(Deserialize)]
struct PullRequestBody {
    number: Option<u64>,
    head: Option<HeadBody>,
}

#[derive(Deserialize)]
struct HeadBody {
    sha: Option<String>,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct DispatchPayload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Deserialize)]
struct MergeGroupPayload {
    merge_group: Option<MergeGroupBody>,
}

#[derive(Deserialize)]
struct MergeGroupBody {
    head_sha: Option<String>,
}

impl Event {
    /// Type the event `name` from its payload (`None` when there is no payload file). `path` is
    /// only for messages.
    pub fn parse(name: &str, payload: Option<&str>, path: &str) -> Result<Event, EventError> {
        let shape = |reason: String| EventError::Shape {
            event: name.to_string(),
            path: path.to_string(),
            reason,
        };
        fn body<T: for<'de> Deserialize<'de>>(
            payload: Option<&str>,
            shape: &dyn Fn(String) -> EventError,
        ) -> Result<Option<T>, EventError> {
            payload
                .map(|p| serde_json::from_str::<T>(p).map_err(|e| shape(e.to_string())))
                .transpose()
        }
        let commit = |raw: Option<String>, field: &str| -> Result<Option<CommitSha>, EventError> {
            raw.map(|r| CommitSha::parse(&r).map_err(|e| shape(format!("`{field}`: {e}"))))
                .transpose()
        };
        Ok(match name {
            "pull_request" | "pull_request_target" => {
                let p: Option<PullRequestPayload> = body(payload, &shape)?;
                let pr = p.as_ref().and_then(|p| p.pull_request.as_ref());
                Event::PullRequest {
                    number: pr
                        .and_then(|pr| pr.number)
                        .or(p.as_ref().and_then(|p| p.number)),
                    head_sha: commit(
                        pr.and_then(|pr| pr.head.as_ref())
                            .and_then(|h| h.sha.clone()),
                        "pull_request.head.sha",
                    )?,
                    target: name == "pull_request_target",
                }
            }
            "push" => {
                let p: Option<PushPayload> = body(payload, &shape)?;
                let deleted = p.as_ref().is_some_and(|p| p.deleted);
                let after = match p.as_ref().and_then(|p| p.after.clone()) {
                    // A deleted ref's `after` is all zeros: no commit.
                    Some(a) if deleted || a.chars().all(|c| c == '0') => None,
                    other => commit(other, "after")?,
                };
                let zero_after = p
                    .as_ref()
                    .and_then(|p| p.after.as_deref())
                    .is_some_and(|a| !a.is_empty() && a.chars().all(|c| c == '0'));
                Event::Push {
                    git_ref: p.and_then(|p| p.git_ref),
                    deleted: deleted || zero_after,
                    after,
                }
            }
            "workflow_dispatch" => Event::WorkflowDispatch {
                git_ref: body::<DispatchPayload>(payload, &shape)?.and_then(|p| p.git_ref),
            },
            "schedule" => Event::Schedule,
            "merge_group" => Event::MergeGroup {
                head_sha: commit(
                    body::<MergeGroupPayload>(payload, &shape)?
                        .and_then(|p| p.merge_group)
                        .and_then(|m| m.head_sha),
                    "merge_group.head_sha",
                )?,
            },
            other => Event::Other {
                name: other.to_string(),
            },
        })
    }

    /// The event's name as GitHub spells it.
    pub fn name(&self) -> &str {
        match self {
            Event::PullRequest { target: false, .. } => "pull_request",
            Event::PullRequest { target: true, .. } => "pull_request_target",
            Event::Push { .. } => "push",
            Event::WorkflowDispatch { .. } => "workflow_dispatch",
            Event::Schedule => "schedule",
            Event::MergeGroup { .. } => "merge_group",
            Event::Other { name } => name,
        }
    }

    /// The commit the event is about: a pull request's head (not the merge commit GitHub checks
    /// out), the pushed commit, a merge group's head.
    pub fn commit(&self) -> Option<&CommitSha> {
        match self {
            Event::PullRequest { head_sha, .. } | Event::MergeGroup { head_sha } => {
                head_sha.as_ref()
            }
            Event::Push { after, .. } => after.as_ref(),
            _ => None,
        }
    }

    /// What `mode: auto` does on this event; `None` when it does not say.
    pub fn mode(&self) -> Option<EventMode> {
        match self {
            Event::PullRequest { .. } | Event::MergeGroup { .. } => Some(EventMode::Plan),
            Event::Push { .. } | Event::WorkflowDispatch { .. } | Event::Schedule => {
                Some(EventMode::Deploy)
            }
            Event::Other { .. } => None,
        }
    }

    /// The ref a push deleted, when it did.
    pub fn deleted_ref(&self) -> Option<&str> {
        match self {
            Event::Push {
                deleted: true,
                git_ref,
                ..
            } => Some(git_ref.as_deref().unwrap_or("a ref")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

    #[test]
    fn commits_are_full_ids() {
        assert_eq!(CommitSha::parse(SHA).unwrap().as_str(), SHA);
        assert_eq!(CommitSha::parse(&SHA.to_uppercase()).unwrap().as_str(), SHA);
        assert!(CommitSha::parse(&"a".repeat(64)).is_ok());
        for bad in ["abc1234", "", &"g".repeat(40), &"a".repeat(41)] {
            assert!(
                matches!(CommitSha::parse(bad), Err(CommitError::NotACommit(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            CommitSha::parse(&"0".repeat(40)),
            Err(CommitError::Zero(_))
        ));
    }

    #[test]
    fn a_push_that_deletes_a_ref_has_no_commit() {
        let payload = format!(
            r#"{{"ref":"refs/heads/gone","before":"{SHA}","after":"{}","deleted":true}}"#,
            "0".repeat(40)
        );
        let e = Event::parse("push", Some(&payload), "event.json").unwrap();
        assert_eq!(e.deleted_ref(), Some("refs/heads/gone"));
        assert_eq!(e.commit(), None);
        assert_eq!(e.mode(), Some(EventMode::Deploy));
        let pushed = format!(r#"{{"ref":"refs/heads/main","after":"{SHA}","deleted":false}}"#);
        let e = Event::parse("push", Some(&pushed), "event.json").unwrap();
        assert_eq!(e.deleted_ref(), None);
        assert_eq!(e.commit().unwrap().as_str(), SHA);
        let no_after =
            Event::parse("push", Some(r#"{"ref":"refs/heads/main"}"#), "e.json").unwrap();
        assert_eq!(
            no_after.deleted_ref(),
            None,
            "a payload without `after` deleted nothing"
        );
        assert_eq!(no_after.commit(), None);
    }

    #[test]
    fn pull_requests_and_merge_groups_plan_on_their_head() {
        let pr =
            format!(r#"{{"number":7,"pull_request":{{"number":7,"head":{{"sha":"{SHA}"}}}}}}"#);
        let e = Event::parse("pull_request_target", Some(&pr), "e.json").unwrap();
        assert_eq!(e.mode(), Some(EventMode::Plan));
        assert!(matches!(
            e,
            Event::PullRequest {
                number: Some(7),
                target: true,
                ..
            }
        ));
        assert_eq!(e.commit().unwrap().as_str(), SHA);
        assert_eq!(e.name(), "pull_request_target");
        let mg = format!(r#"{{"merge_group":{{"head_sha":"{SHA}"}}}}"#);
        let e = Event::parse("merge_group", Some(&mg), "e.json").unwrap();
        assert_eq!(e.mode(), Some(EventMode::Plan));
        assert_eq!(e.commit().unwrap().as_str(), SHA);
    }

    #[test]
    fn other_events_choose_no_mode_and_bad_payloads_are_named() {
        let e = Event::parse("issues", None, "e.json").unwrap();
        assert_eq!(e.mode(), None);
        assert_eq!(e.name(), "issues");
        let err = Event::parse("push", Some(r#"{"after":"abc"}"#), "/x/event.json").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`/x/event.json`") && text.contains("`after`"),
            "{text}"
        );
        assert!(Event::parse("push", Some("not json"), "e.json").is_err());
    }
}
