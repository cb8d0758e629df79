//! The run on GitHub: the deployment of the environment, the fleet's check run and one per
//! consumer with something to do, and the
//! sticky pull request comment. Opened as soon as the run knows what changes, completed with
//! what happened, whatever failed in between. Reporting never changes the run's verdict: what
//! GitHub refuses is a warning naming the permission the token lacks.

use std::collections::BTreeMap;

use crate::apply::RunReport;
use crate::clients::github::{GitHub, GithubError};
use crate::config::{DeploySettings, Settings};
use crate::gha::Runner;
use crate::plan::Plan;
use crate::report::{self, checks};

/// What the run opened on GitHub, to complete at its end.
#[derive(Debug, Default)]
pub struct Opened {
    /// Whether the run's GitHub side is open (a deploy opens it once it knows what changes).
    pub done: bool,
    /// The deployment's id.
    pub deployment: Option<u64>,
    /// The open check run of each consumer with work, by consumer.
    pub checks: BTreeMap<String, u64>,
}

impl Opened {
    /// Open the deployment of a deploy that changes something, and the check run of each
    /// consumer with work (`in_progress`). Done once.
    pub async fn open(
        &mut self,
        settings: &Settings,
        runner: &Runner,
        gh: &dyn GitHub,
        plan: &Plan,
        deploy: &DeploySettings,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        let Some(sha) = settings.commit.as_ref().map(|c| c.to_string()) else {
            return;
        };
        let log_url = settings.github.run_url();
        if deploy.deployments && plan.has_changes() {
            match report::publish::start_deployment(
                gh,
                &sha,
                settings.project.as_str(),
                &settings.environment,
                log_url.as_deref(),
            )
            .await
            {
                Ok(id) => self.deployment = Some(id),
                Err(e) => runner.warning(&refusal(
                    "the GitHub deployment was not recorded",
                    &e,
                    "deployments: write",
                )),
            }
        }
        if settings.github.check_runs {
            let (ids, errors) =
                checks::open(gh, plan, &settings.environment, &sha, log_url.as_deref()).await;
            if let Some(e) = errors.first() {
                runner.warning(&refusal(
                    &format!("{} check runs were not opened", errors.len()),
                    e,
                    "checks: write",
                ));
            }
            self.checks = ids;
        }
    }

    /// Complete the fleet's check with the run's result and its whole `report`, and the check
    /// of each consumer with something to do or something wrong with its own (after a plan,
    /// with what a deploy would do), each opening with the run's `headline`.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_checks(
        &self,
        settings: &Settings,
        runner: &Runner,
        gh: &dyn GitHub,
        plan: &Plan,
        run: Option<&RunReport>,
        cancelled: Option<&str>,
        terraform_failed: bool,
        outcome: (&str, &str),
        failed: &BTreeMap<String, String>,
        report: &str,
    ) {
        let (result, headline) = outcome;
        if !settings.github.check_runs {
            return;
        }
        let Some(sha) = settings.commit.as_ref().map(|c| c.to_string()) else {
            return;
        };
        let fleet = checks::fleet_content(result, headline, report);
        let contents: Vec<_> = std::iter::once(fleet)
            .chain(
                plan.consumers
                    .iter()
                    .filter(|c| {
                        self.checks.contains_key(&c.name)
                            || checks::needs_own_check(c, run, failed.contains_key(&c.name))
                    })
                    .map(|c| {
                        checks::content_for(
                            c,
                            run,
                            cancelled,
                            terraform_failed,
                            headline,
                            failed.get(&c.name).map(String::as_str),
                        )
                    }),
            )
            .collect();
        let details = settings.github.run_url();
        let errors = checks::complete(
            gh,
            &contents,
            &self.checks,
            &settings.environment,
            &sha,
            details.as_deref(),
        )
        .await;
        if let Some(e) = errors.first() {
            runner.warning(&refusal(
                &format!("{} check runs were not completed", errors.len()),
                e,
                "checks: write",
            ));
        }
    }

    /// End the deployment with the run's result.
    pub async fn finish_deployment(
        &self,
        settings: &Settings,
        runner: &Runner,
        gh: &dyn GitHub,
        success: bool,
        headline: &str,
    ) {
        let Some(id) = self.deployment else { return };
        let log_url = settings.github.run_url();
        if let Err(e) =
            report::publish::finish_deployment(gh, id, success, headline, log_url.as_deref()).await
        {
            runner.warning(&refusal(
                "the GitHub deployment's result was not recorded",
                &e,
                "deployments: write",
            ));
        }
    }
}

/// Write `body` as the run's sticky comment on its pull request, as `comment` asks; returns its
/// address. `deployed`: the plan digest of a deploy, compared with the plan the comment showed
/// before.
pub async fn comment(
    settings: &Settings,
    runner: &Runner,
    gh: &dyn GitHub,
    body: &str,
    changes: bool,
    deployed: Option<&str>,
) -> Option<String> {
    use crate::report::publish::{self, CommentMode};
    let gh_settings = &settings.github;
    if gh_settings.comment == CommentMode::Never {
        return None;
    }
    let commit = settings.commit.as_ref().map(|c| c.to_string());
    let issue = match publish::pull_request(gh, gh_settings.event.as_ref(), commit.as_deref()).await
    {
        Ok(Some(n)) => n,
        Ok(None) => {
            tracing::debug!("no pull request to comment on");
            return None;
        }
        Err(e) => {
            runner.warning(&refusal(
                "the pull request of the commit was not found",
                &e,
                "contents: read` and `pull-requests: read",
            ));
            return None;
        }
    };
    let create = match gh_settings.comment {
        CommentMode::Always => true,
        CommentMode::OnChange => changes,
        CommentMode::Never => false,
    };
    let compose = |previous: Option<&str>| match deployed {
        Some(digest) => with_review_note(body, previous, digest),
        None => body.to_string(),
    };
    match publish::upsert_with(
        gh,
        issue,
        settings.project.as_str(),
        &settings.environment,
        &compose,
        create,
    )
    .await
    {
        Ok(Some(c)) => {
            runner.print(&format!("pull request comment: {}", c.html_url));
            Some(c.html_url)
        }
        Ok(None) => None,
        Err(e) => {
            runner.warning(&refusal(
                &format!("the comment on #{issue} was not written"),
                &e,
                "pull-requests: write",
            ));
            None
        }
    }
}

/// A deploy's comment, with a line under its title saying whether the plan it applied is the
/// one the pull request's comment showed (by the digest in its marker).
pub fn with_review_note(body: &str, previous: Option<&str>, digest: &str) -> String {
    let Some(previous) = previous else {
        return body.to_string();
    };
    let reviewed = previous.contains("\n## cdc-deploy plan:");
    let note = match crate::report::publish::marker_digest(previous) {
        Some(d) if reviewed && d == digest => format!(
            "> [!NOTE]\n> This deploy applied the plan this pull request showed (plan `{digest}`).\n"
        ),
        Some(d) if reviewed => format!(
            "> [!WARNING]\n> This deploy's plan (`{digest}`) is not the one this pull request showed (`{d}`): something changed between the review and the deploy (another merge, or what runs in AWS).\n"
        ),
        _ => return body.to_string(),
    };
    // The comment was fitted to GitHub's limit already: the note goes only where it fits.
    if body.chars().count() + note.chars().count() + 1 > report::markdown::COMMENT_LIMIT {
        return body.to_string();
    }
    match body.find("\n## ") {
        Some(i) => match body[i + 1..].find('\n') {
            Some(j) => {
                let at = i + 1 + j + 1;
                format!("{}\n{note}{}", &body[..at], &body[at..])
            }
            None => format!("{body}\n\n{note}"),
        },
        None => format!("{body}\n\n{note}"),
    }
}

/// A warning for a GitHub call that failed: with the permission to grant when GitHub refused.
pub fn refusal(what: &str, e: &GithubError, permission: &str) -> String {
    if e.is_refusal() {
        format!(
            "{what}: {e}. Give the job `{permission}` in the workflow's `permissions:` (a pull request from a fork gets a read-only token whatever `permissions:` says)"
        )
    } else {
        format!("{what}: {e}")
    }
}
