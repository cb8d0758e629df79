//! The sticky pull request comment: one per project and environment, found by the hidden marker
//! on its first line and updated in place on every run, never a second one.
//!
//! A run on a pull request comments there; a run on a push finds the pull request its commit
//! came from. Two runs that race to create the comment both look again after creating, and the
//! one that finds two keeps the older, so one comment stays. Only a bot's comment is taken for
//! the sticky one.

use crate::clients::github::{GitHub, GithubError, IssueComment};
use crate::config::event::Event;

/// When the comment is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentMode {
    /// On every run with a pull request.
    #[default]
    Always,
    /// When the plan changes something, or a comment exists already (it is kept up to date).
    OnChange,
    /// Never.
    Never,
}

/// Whether `body`'s first line is the marker of `project` and `environment`.
pub fn is_ours(body: &str, project: &str, environment: &str) -> bool {
    let first = body.lines().next().unwrap_or_default().trim();
    let Some(inner) = first
        .strip_prefix("<!-- cdc-deploy:report ")
        .and_then(|r| r.strip_suffix("-->"))
    else {
        return false;
    };
    let mut p = None;
    let mut e = None;
    for pair in inner.split_whitespace() {
        match pair.split_once('=') {
            Some(("project", v)) => p = Some(v),
            Some(("environment", v)) => e = Some(v),
            _ => {}
        }
    }
    p == Some(project) && e == Some(environment)
}

/// The plan digest a comment's marker records, when it records one.
pub fn marker_digest(body: &str) -> Option<&str> {
    let first = body.lines().next()?.trim();
    let inner = first
        .strip_prefix("<!-- cdc-deploy:report ")?
        .strip_suffix("-->")?;
    inner
        .split_whitespace()
        .find_map(|pair| pair.strip_prefix("plan="))
        .filter(|d| d.len() == 12 && d.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The pull request a run reports to: the event's, or for a push (and a dispatch or schedule)
/// the one the commit came from, the newest when there are several.
pub async fn pull_request(
    gh: &dyn GitHub,
    event: Option<&Event>,
    commit: Option<&str>,
) -> Result<Option<u64>, GithubError> {
    if let Some(Event::PullRequest {
        number: Some(n), ..
    }) = event
    {
        return Ok(Some(*n));
    }
    if matches!(
        event,
        Some(Event::PullRequest { .. } | Event::MergeGroup { .. })
    ) {
        return Ok(None);
    }
    let Some(sha) = commit else {
        return Ok(None);
    };
    // A pushed commit belongs to the pull request that merged it; an open one that also
    // contains it is a later one, not its review.
    let pulls = gh.pulls_for_commit(sha).await?;
    let merged = pulls
        .iter()
        .filter(|p| p.merged_at.is_some())
        .map(|p| p.number)
        .max();
    Ok(merged.or_else(|| pulls.iter().map(|p| p.number).max()))
}

/// The sticky comment: the oldest with the marker that a bot wrote (the job's token writes as
/// `github-actions[bot]`, an app's as the app). A person's comment carrying the marker is not
/// taken for it, so no one can make the report update, or quote, their comment.
fn oldest_ours<'a>(
    comments: &'a [IssueComment],
    project: &str,
    environment: &str,
) -> Option<&'a IssueComment> {
    comments
        .iter()
        .filter(|c| c.user.as_ref().is_some_and(|u| u.kind == "Bot"))
        .filter(|c| {
            c.body
                .as_deref()
                .is_some_and(|b| is_ours(b, project, environment))
        })
        .min_by_key(|c| c.id)
}

/// Write `body` as the sticky comment on `issue`: update ours when it exists (not at all when it
/// already says this), else create it. `create` false: only an existing comment is updated.
/// Returns the comment, `None` when there was none to update.
pub async fn upsert(
    gh: &dyn GitHub,
    issue: u64,
    project: &str,
    environment: &str,
    body: &str,
    create: bool,
) -> Result<Option<IssueComment>, GithubError> {
    upsert_with(
        gh,
        issue,
        project,
        environment,
        &|_| body.to_string(),
        create,
    )
    .await
}

/// [`upsert`], with the body made from the comment it replaces (`None` when there is none).
pub async fn upsert_with(
    gh: &dyn GitHub,
    issue: u64,
    project: &str,
    environment: &str,
    compose: &(dyn Fn(Option<&str>) -> String + Send + Sync),
    create: bool,
) -> Result<Option<IssueComment>, GithubError> {
    let comments = gh.comments(issue).await?;
    if let Some(c) = oldest_ours(&comments, project, environment) {
        let body = compose(c.body.as_deref());
        if c.body.as_deref() == Some(body.as_str()) {
            return Ok(Some(c.clone()));
        }
        return gh.update_comment(c.id, &body).await.map(Some);
    }
    let body = compose(None);
    let body = body.as_str();
    if !create {
        return Ok(None);
    }
    let created = gh.create_comment(issue, body).await?;
    // Another run may have created one meanwhile: the older stays, with this run's body.
    let comments = gh.comments(issue).await?;
    match oldest_ours(&comments, project, environment) {
        Some(older) if older.id != created.id => {
            gh.delete_comment(created.id).await?;
            gh.update_comment(older.id, body).await.map(Some)
        }
        _ => Ok(Some(created)),
    }
}

/// GitHub's longest deployment status description, in characters.
const STATUS_DESCRIPTION: usize = 140;

fn description(s: &str) -> String {
    match s.char_indices().nth(STATUS_DESCRIPTION - 1) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Record a deploy of `commit` to `environment` as a GitHub deployment, in progress, with a
/// link to the run. Returns its id, for [`finish_deployment`].
pub async fn start_deployment(
    gh: &dyn GitHub,
    commit: &str,
    project: &str,
    environment: &str,
    log_url: Option<&str>,
) -> Result<u64, GithubError> {
    let id = gh
        .create_deployment(&serde_json::json!({
            "ref": commit,
            "task": "deploy",
            "environment": environment,
            "description": description(&format!("cdc-deploy: {project} to {environment}")),
            "auto_merge": false,
            // The workflow that runs the deploy is the check; others do not gate it.
            "required_contexts": [],
            "production_environment": environment == "production",
            "transient_environment": false,
            "payload": { "project": project },
        }))
        .await?;
    let mut status = serde_json::json!({
        "state": "in_progress",
        "description": "deploying",
        "environment": environment,
    });
    if let Some(url) = log_url {
        status["log_url"] = url.into();
    }
    gh.create_deployment_status(id, &status).await?;
    Ok(id)
}

/// End a deployment: `success` or `failure`, with `why` in a few words.
pub async fn finish_deployment(
    gh: &dyn GitHub,
    id: u64,
    success: bool,
    why: &str,
    log_url: Option<&str>,
) -> Result<(), GithubError> {
    let mut status = serde_json::json!({
        "state": if success { "success" } else { "failure" },
        "description": description(why),
        // An earlier successful deployment of the environment is no longer what runs.
        "auto_inactive": success,
    });
    if let Some(url) = log_url {
        status["log_url"] = url.into();
    }
    gh.create_deployment_status(id, &status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_names_its_project_and_environment_exactly() {
        let body = "<!-- cdc-deploy:report project=shop environment=prod -->\n## report";
        assert!(is_ours(body, "shop", "prod"));
        assert!(!is_ours(body, "shop", "prod2"));
        assert!(!is_ours(body, "sho", "prod"));
        assert!(!is_ours(
            "## report\n<!-- cdc-deploy:report project=shop environment=prod -->",
            "shop",
            "prod"
        ));
        let with_hash =
            "<!-- cdc-deploy:report project=shop environment=prod plan=0123456789ab -->";
        assert!(is_ours(with_hash, "shop", "prod"));
        assert_eq!(marker_digest(with_hash), Some("0123456789ab"));
        let forged =
            "<!-- cdc-deploy:report project=shop environment=prod plan=`![x](https://e)` -->";
        assert_eq!(marker_digest(forged), None, "only a digest is quoted");
        assert_eq!(marker_digest(body), None);
    }

    use crate::clients::github::PullRef;
    use async_trait::async_trait;
    use serde_json::Value;
    use std::sync::Mutex;

    /// Comments in memory; the first create also lets "another run" create its comment first.
    #[derive(Default)]
    struct Racing {
        comments: Mutex<Vec<IssueComment>>,
        raced: Mutex<bool>,
        deleted: Mutex<Vec<u64>>,
    }

    fn comment(id: u64, body: &str) -> IssueComment {
        IssueComment {
            id,
            body: Some(body.into()),
            html_url: format!("https://github.com/acme/cdc/pull/2#issuecomment-{id}"),
            user: Some(crate::clients::github::Author {
                login: "github-actions[bot]".into(),
                kind: "Bot".into(),
            }),
        }
    }

    #[async_trait]
    impl GitHub for Racing {
        async fn comments(&self, _: u64) -> Result<Vec<IssueComment>, GithubError> {
            Ok(self.comments.lock().unwrap().clone())
        }
        async fn create_comment(&self, _: u64, body: &str) -> Result<IssueComment, GithubError> {
            let mut c = self.comments.lock().unwrap();
            let mut raced = self.raced.lock().unwrap();
            if !*raced {
                *raced = true;
                c.push(comment(
                    10,
                    "<!-- cdc-deploy:report project=shop environment=prod -->\nthe other run's",
                ));
            }
            let mine = comment(11, body);
            c.push(mine.clone());
            Ok(mine)
        }
        async fn update_comment(&self, id: u64, body: &str) -> Result<IssueComment, GithubError> {
            let mut c = self.comments.lock().unwrap();
            let found = c.iter_mut().find(|c| c.id == id).unwrap();
            found.body = Some(body.into());
            Ok(found.clone())
        }
        async fn delete_comment(&self, id: u64) -> Result<(), GithubError> {
            self.comments.lock().unwrap().retain(|c| c.id != id);
            self.deleted.lock().unwrap().push(id);
            Ok(())
        }
        async fn pulls_for_commit(&self, _: &str) -> Result<Vec<PullRef>, GithubError> {
            Ok(Vec::new())
        }
        async fn create_check_run(&self, _: &Value) -> Result<u64, GithubError> {
            unreachable!()
        }
        async fn update_check_run(&self, _: u64, _: &Value) -> Result<(), GithubError> {
            unreachable!()
        }
        async fn create_deployment(&self, _: &Value) -> Result<u64, GithubError> {
            unreachable!()
        }
        async fn create_deployment_status(&self, _: u64, _: &Value) -> Result<(), GithubError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn two_runs_that_race_to_create_leave_one_comment_the_older() {
        let gh = Racing::default();
        let body = "<!-- cdc-deploy:report project=shop environment=prod -->\nthis run's";
        let kept = upsert(&gh, 2, "shop", "prod", body, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.id, 10, "the older comment stays");
        assert_eq!(kept.body.as_deref(), Some(body), "with this run's report");
        assert_eq!(*gh.deleted.lock().unwrap(), vec![11]);
        assert_eq!(gh.comments.lock().unwrap().len(), 1);
        // Without `create`, nothing is made where there is no comment.
        let empty = Racing::default();
        assert_eq!(
            upsert(&empty, 2, "shop", "prod", body, false)
                .await
                .unwrap(),
            None
        );
        assert!(empty.comments.lock().unwrap().is_empty());
    }
}
