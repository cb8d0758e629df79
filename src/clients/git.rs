//! The checkout's git, for the one fact the action asks it: the commit `HEAD` points at, when
//! neither an input nor the event names the commit. Behind a trait so tests decide the answer.

use std::path::Path;
use std::process::{Command, Stdio};

/// The repository's git.
pub trait Git: Send + Sync {
    /// What `git rev-parse HEAD` prints in `workspace`, or `None` when it is not a checkout (or
    /// git is missing, or refuses the folder).
    fn head(&self, workspace: &Path) -> Option<String>;
}

/// The `git` program on `PATH`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitCli;

impl Git for GitCli {
    fn head(&self, workspace: &Path) -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(["rev-parse", "--verify", "--quiet", "HEAD"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !sha.is_empty()).then_some(sha)
    }
}

/// A git that answers a fixed commit, or none.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct FixedGit(pub Option<String>);

#[cfg(test)]
impl Git for FixedGit {
    fn head(&self, _workspace: &Path) -> Option<String> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_of_a_fresh_checkout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(GitCli.head(dir.path()), None, "not a checkout");
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        assert_eq!(GitCli.head(dir.path()), None, "no commit yet");
        git(&["commit", "-q", "--allow-empty", "-m", "first"]);
        let head = GitCli.head(dir.path()).unwrap();
        assert_eq!(head.len(), 40, "{head}");
    }
}
