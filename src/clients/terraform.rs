//! The `terraform` binary, run as a child process: argv only, never a shell string, in one
//! root module folder with one environment (data directory, plugin cache, automation flags).
//!
//! This module runs commands and reads what they print; it decides nothing about plans. It never
//! prints: lines go to the caller's sink, which treats them as untrusted text.
//!
//! When the run is cancelled, a command is not started, and a running one is sent one SIGINT and
//! waited for: Terraform then finishes the write in progress, saves the state, releases its lock
//! and exits. It is never killed, because a killed Terraform can leave the state locked or torn.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::cancel::Cancel;

/// How many lines of a streamed command are kept for the report (the newest).
const KEPT_LINES: usize = 400;

/// What a finished command printed and how it ended.
#[derive(Clone, Debug, Default)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    /// The newest [`KEPT_LINES`] lines of stderr (all of it for a command that is not streamed).
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Who holds the state lock, as Terraform's "Lock Info" block says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockInfo {
    pub id: String,
    pub path: String,
    pub operation: String,
    pub who: String,
    pub version: String,
    pub created: String,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self
            .operation
            .strip_prefix("OperationType")
            .unwrap_or(&self.operation)
            .to_lowercase();
        write!(
            f,
            "the Terraform state `{}` is locked by `{}` since {} (operation `{}`, Terraform {}, lock ID `{}`); wait for that run to finish, or when it is known to have died, release the lock with `terraform force-unlock {}` in the root module",
            self.path, self.who, self.created, op, self.version, self.id, self.id
        )
    }
}

/// Why a Terraform command failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TerraformError {
    #[error("could not run `{program}`: {reason}; install Terraform (1.10 or later) and put it on PATH, or set `TERRAFORM_PATH`")]
    Spawn { program: String, reason: String },
    #[error("{0}")]
    Locked(LockInfo),
    /// The command ran and failed; `diagnostics` are Terraform's own error blocks.
    #[error("`terraform {command}` failed{}{}", .code.map(|c| format!(" (exit code {c})")).unwrap_or_default(), first_line(.diagnostics))]
    Failed {
        command: String,
        code: Option<i32>,
        diagnostics: Vec<String>,
    },
    /// `apply` refused the saved plan: the state changed after it was made (another deploy of
    /// the same state applied first).
    #[error("another deploy applied while this one planned: re-run. The Terraform state changed after this run's `terraform plan`, so Terraform refused the saved plan and nothing was applied; run the deploy again to plan against what is applied now. A `concurrency:` group per environment in the workflow (`cancel-in-progress: false`) keeps deploys of one environment one at a time")]
    StalePlan { diagnostics: Vec<String> },
    #[error("`terraform {command}` printed what could not be read: {reason}")]
    Unreadable { command: String, reason: String },
    /// The run was cancelled before the command started, so it was not run.
    #[error("`terraform {command}` was not started: the run was cancelled by {reason}")]
    Cancelled { command: String, reason: String },
    /// The run was cancelled while the command ran: it was sent one SIGINT, waited for, and did
    /// not succeed. `diagnostics` are the error blocks it printed on its way out.
    #[error("`terraform {command}` was interrupted because the run was cancelled by {reason}: {}", interrupted_how(*.code))]
    Interrupted {
        command: String,
        reason: String,
        code: Option<i32>,
        diagnostics: Vec<String>,
    },
}

/// How an interrupted command ended: on its own (an exit code), or ended by a signal from
/// elsewhere before it could.
fn interrupted_how(code: Option<i32>) -> String {
    match code {
        Some(c) => format!(
            "Terraform was asked to stop once and stopped on its own (exit code {c}); its last lines in the log say what it had finished"
        ),
        None => "Terraform was asked to stop once but was ended by a signal before it exited on its own; the state may still be locked: see `terraform force-unlock` in the root module".into(),
    }
}

fn first_line(diagnostics: &[String]) -> String {
    diagnostics
        .first()
        .and_then(|d| d.lines().next())
        .map(|l| format!(": {}", l.trim_start_matches("Error: ")))
        .unwrap_or_default()
}

impl TerraformError {
    /// Terraform's own diagnostics, each a block of text (untrusted).
    pub fn diagnostics(&self) -> &[String] {
        match self {
            TerraformError::Failed { diagnostics, .. }
            | TerraformError::StalePlan { diagnostics }
            | TerraformError::Interrupted { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }

    /// Whether the command did not run to its end because the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            TerraformError::Cancelled { .. } | TerraformError::Interrupted { .. }
        )
    }

    /// Turn a failed command into the error it means: a held lock, or Terraform's diagnostics.
    pub fn from_finished(command: &str, f: &Finished) -> TerraformError {
        let text = format!("{}\n{}", f.stdout, f.stderr);
        if let Some(lock) = parse_lock_info(&text) {
            return TerraformError::Locked(lock);
        }
        let diagnostics = parse_diagnostics(&text);
        if command == "apply"
            && diagnostics
                .iter()
                .any(|d| d.starts_with("Error: Saved plan is stale"))
        {
            return TerraformError::StalePlan { diagnostics };
        }
        TerraformError::Failed {
            command: command.to_string(),
            code: f.code,
            diagnostics,
        }
    }
}

/// The runner of Terraform commands in one root module.
#[async_trait]
pub trait Terraform: Send + Sync {
    /// Run a command and stream each line it prints to `sink` as it comes.
    async fn stream(
        &self,
        args: &[String],
        sink: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<Finished, TerraformError>;
    /// Run a command and capture what it prints (for `-json` output).
    async fn capture(&self, args: &[String]) -> Result<Finished, TerraformError>;
}

/// The real `terraform` binary.
#[derive(Clone, Debug)]
pub struct TerraformCli {
    pub program: PathBuf,
    /// The root module folder every command runs in.
    pub dir: PathBuf,
    /// Variables set for every command (`TF_DATA_DIR`, `TF_PLUGIN_CACHE_DIR`, ...).
    pub env: Vec<(String, String)>,
    /// The run's cancellation: once set, commands are not started and a running one is
    /// interrupted (one SIGINT) and waited for. `None` runs every command to its end. A call is
    /// never to be dropped for cancellation (as `or_cancelled` would): Terraform would run on
    /// unwatched.
    pub cancel: Option<Cancel>,
}

impl TerraformCli {
    fn command(&self, args: &[String]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1");
        // Its own process group, so that the only interrupt Terraform hears is the one sent in
        // `until_exit`. In a terminal, Ctrl-C signals the whole foreground group: Terraform
        // would get that SIGINT directly and then the one forwarded on cancellation, and a
        // second interrupt makes Terraform stop at once, without saving the state or releasing
        // its lock. (In the action's container there is no terminal; there the runner signals
        // `docker`, which signals this process alone, and the child hears nothing without us.)
        c.process_group(0);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The error for a command that is not started because the run is already cancelled.
    fn not_started(&self, args: &[String]) -> Option<TerraformError> {
        let reason = self.cancel.as_ref()?.reason()?;
        Some(TerraformError::Cancelled {
            command: subcommand(args),
            reason,
        })
    }

    /// Wait for `run`, a child's whole run (its output, then its exit). When the run is cancelled
    /// meanwhile, the child `pid` is sent SIGINT, once, and still waited for: `run` goes on
    /// reading its output until it exits on its own. Returns what cancelled the run, if the child
    /// was interrupted.
    async fn until_exit<T>(
        &self,
        args: &[String],
        pid: Option<u32>,
        run: impl Future<Output = T>,
    ) -> (T, Option<String>) {
        let Some(cancel) = &self.cancel else {
            return (run.await, None);
        };
        tokio::pin!(run);
        tokio::select! {
            // When the command's end and the cancellation are both ready, its end stands.
            biased;
            done = &mut run => return (done, None),
            () = cancel.cancelled() => {}
        }
        let reason = cancel.reason().unwrap_or_default();
        let command = subcommand(args);
        tracing::warn!(
            "the run was cancelled by {reason}: asking `terraform {command}` to stop and waiting for it to exit on its own"
        );
        if let Some(pid) = pid {
            if let Err(e) = interrupt(pid) {
                tracing::debug!("could not interrupt `terraform {command}` (pid {pid}): {e}");
            }
        }
        (run.await, Some(reason))
    }

    /// The error an interrupted command's end means: [`TerraformError::Interrupted`] when it did
    /// not succeed. Anything else is the caller's to read.
    fn interrupted(
        &self,
        args: &[String],
        finished: &Finished,
        reason: Option<String>,
    ) -> Option<TerraformError> {
        let reason = reason.filter(|_| !finished.success())?;
        Some(TerraformError::Interrupted {
            command: subcommand(args),
            reason,
            code: finished.code,
            diagnostics: parse_diagnostics(&format!("{}\n{}", finished.stdout, finished.stderr)),
        })
    }

    fn spawn_error(&self, e: &std::io::Error) -> TerraformError {
        TerraformError::Spawn {
            program: self.program.display().to_string(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "it was not found".into()
            } else {
                e.to_string()
            },
        }
    }
}

#[async_trait]
impl Terraform for TerraformCli {
    async fn stream(
        &self,
        args: &[String],
        sink: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<Finished, TerraformError> {
        if let Some(e) = self.not_started(args) {
            return Err(e);
        }
        let mut child = self
            .command(args)
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        let pid = child.id();
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
        let run = async {
            let mut kept_out = std::collections::VecDeque::new();
            let mut kept_err = std::collections::VecDeque::new();
            let (mut out_open, mut err_open) = (true, true);
            let keep = |q: &mut std::collections::VecDeque<String>, l: String| {
                if q.len() == KEPT_LINES {
                    q.pop_front();
                }
                q.push_back(l);
            };
            while out_open || err_open {
                tokio::select! {
                    l = out.next_line(), if out_open => match l {
                        Ok(Some(l)) => { sink(&l); keep(&mut kept_out, l); }
                        _ => out_open = false,
                    },
                    l = err.next_line(), if err_open => match l {
                        Ok(Some(l)) => { sink(&l); keep(&mut kept_err, l); }
                        _ => err_open = false,
                    },
                }
            }
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((status, kept_out, kept_err))
        };
        let (done, interrupted) = self.until_exit(args, pid, run).await;
        let (status, kept_out, kept_err) = done.map_err(|e| self.spawn_error(&e))?;
        let join =
            |q: std::collections::VecDeque<String>| q.into_iter().collect::<Vec<_>>().join("\n");
        let finished = Finished {
            code: status.code(),
            stdout: join(kept_out),
            stderr: join(kept_err),
        };
        match self.interrupted(args, &finished, interrupted) {
            Some(e) => Err(e),
            None => Ok(finished),
        }
    }

    async fn capture(&self, args: &[String]) -> Result<Finished, TerraformError> {
        if let Some(e) = self.not_started(args) {
            return Err(e);
        }
        let mut child = self
            .command(args)
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        let pid = child.id();
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let run = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            tokio::try_join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr))?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((status, stdout, stderr))
        };
        let (done, interrupted) = self.until_exit(args, pid, run).await;
        let (status, stdout, stderr) = done.map_err(|e| self.spawn_error(&e))?;
        let finished = Finished {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        match self.interrupted(args, &finished, interrupted) {
            Some(e) => Err(e),
            None => Ok(finished),
        }
    }
}

/// Send SIGINT to the child `pid`, and only to it (not its process group: its providers are
/// stopped by Terraform itself).
fn interrupt(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours. The pid is a child not
    // yet waited for, so it cannot have been reused by another process.
    if unsafe { libc::kill(pid, libc::SIGINT) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The command's name for messages: its first argument that is not an option (`apply`).
fn subcommand(args: &[String]) -> String {
    args.iter()
        .find(|a| !a.starts_with('-'))
        .or(args.first())
        .cloned()
        .unwrap_or_default()
}

/// The "Lock Info" block Terraform prints when someone else holds the state lock.
pub fn parse_lock_info(text: &str) -> Option<LockInfo> {
    let at = text.find("Lock Info:")?;
    let mut info = LockInfo::default();
    for line in text[at..].lines().skip(1) {
        let line = line.trim_start_matches(['│', ' ']).trim_end();
        let Some((key, value)) = line.split_once(':') else {
            if line.is_empty() {
                continue;
            }
            break;
        };
        let value = value.trim().to_string();
        match key.trim() {
            "ID" => info.id = value,
            "Path" => info.path = value,
            "Operation" => info.operation = value,
            "Who" => info.who = value,
            "Version" => info.version = value,
            "Created" => info.created = value,
            "Info" => break,
            _ => {}
        }
    }
    (!info.id.is_empty()).then_some(info)
}

/// Terraform's error blocks: from each `Error: ` line to the next blank line after its text.
/// Warnings are left out (the full output is in the log).
pub fn parse_diagnostics(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for raw in text.lines() {
        let line = raw
            .trim_start_matches(['│', '╷', '╵'])
            .trim_start_matches(' ');
        let line = line.trim_end();
        if line.starts_with("Error: ") {
            if let Some(b) = current.take() {
                blocks.push(b.join("\n").trim_end().to_string());
            }
            current = Some(vec![line.to_string()]);
            continue;
        }
        if let Some(b) = current.as_mut() {
            // A block ends at two blank lines in a row or at the next warning.
            let ends = line.starts_with("Warning: ")
                || (line.is_empty() && b.last().is_some_and(|l| l.is_empty()));
            if ends {
                blocks.push(b.join("\n").trim_end().to_string());
                current = None;
            } else {
                b.push(line.to_string());
            }
        }
    }
    if let Some(b) = current {
        blocks.push(b.join("\n").trim_end().to_string());
    }
    blocks.truncate(10);
    blocks
}

/// The Terraform binary to run: `TERRAFORM_PATH`, else `terraform` on PATH.
pub fn program(configured: Option<&Path>) -> PathBuf {
    configured.map_or_else(|| PathBuf::from("terraform"), Path::to_path_buf)
}

/// A version constraint as Terraform writes it (`>= 1.10, < 2.0`, `~> 1.10`), checked against a
/// version. Pre-release versions compare by their numbers only.
pub fn satisfies(constraint: &str, version: &str) -> Result<bool, String> {
    let v = parse_version(version).ok_or_else(|| format!("`{version}` is not a version"))?;
    for part in constraint.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (op, rest) = ["~>", ">=", "<=", "!=", ">", "<", "="]
            .iter()
            .find_map(|op| part.strip_prefix(op).map(|r| (*op, r.trim())))
            .unwrap_or(("=", part));
        let want =
            parse_version(rest).ok_or_else(|| format!("`{part}` is not a version constraint"))?;
        let given = rest.trim_start_matches('v').split('.').count();
        let ok = match op {
            "=" => v == want,
            "!=" => v != want,
            ">" => v > want,
            ">=" => v >= want,
            "<" => v < want,
            "<=" => v <= want,
            _ => {
                // `~> 1.10` allows 1.x from 1.10; `~> 1.10.2` allows 1.10.x from 1.10.2.
                let fixed = given.saturating_sub(1).max(1);
                v >= want && v[..fixed] == want[..fixed]
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_version(s: &str) -> Option<[u64; 3]> {
    let s = s.trim().trim_start_matches('v');
    let s = s.split(['-', '+']).next()?;
    let mut out = [0u64; 3];
    let mut n = 0;
    for (i, p) in s.split('.').enumerate() {
        if i >= 3 {
            return None;
        }
        out[i] = p.parse().ok()?;
        n += 1;
    }
    (n > 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_info_is_read_from_terraforms_block() {
        let text = "Error: Error acquiring the state lock\n\nError message: operation error S3: PutObject, https response error\nStatusCode: 412\nLock Info:\n  ID:        5e1f2a3b-aaaa\n  Path:      tfstate/k\n  Operation: OperationTypeApply\n  Who:       alice@laptop\n  Version:   1.11.4\n  Created:   2026-11-25 21:00:00 +0000 UTC\n  Info:      \n\n\nTerraform acquires a state lock\n";
        let lock = parse_lock_info(text).unwrap();
        assert_eq!(lock.id, "5e1f2a3b-aaaa");
        assert_eq!(lock.who, "alice@laptop");
        assert_eq!(lock.created, "2026-11-25 21:00:00 +0000 UTC");
        assert_eq!(lock.operation, "OperationTypeApply");
        let msg = lock.to_string();
        assert!(
            msg.contains(
                "locked by `alice@laptop` since 2026-11-25 21:00:00 +0000 UTC (operation `apply`"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("terraform force-unlock 5e1f2a3b-aaaa"),
            "{msg}"
        );
        assert_eq!(parse_lock_info("Error: something else\n"), None);
    }

    #[test]
    fn diagnostics_are_the_error_blocks() {
        let text = "Planning...\n\nWarning: deprecated\n\nsomething\n\nError: Unsupported argument\n\n  on main.tf line 4, in resource \"x\" \"y\":\n   4:   cpuu = 1\n\nAn argument named \"cpuu\" is not expected here.\n\n\nError: second\n\nmore\n";
        let d = parse_diagnostics(text);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("Error: Unsupported argument"));
        assert!(d[0].contains("cpuu"));
        assert!(d[0].contains("not expected here"));
        assert!(d[1].starts_with("Error: second"));
        // The boxed form (with colour off Terraform still draws it in some commands).
        let boxed = "╷\n│ Error: Invalid value\n│ \n│ detail\n╵\n";
        assert_eq!(
            parse_diagnostics(boxed),
            vec!["Error: Invalid value\n\ndetail"]
        );
    }

    #[test]
    fn a_stale_saved_plan_says_another_deploy_applied_first() {
        let f = Finished {
            code: Some(1),
            stdout: String::new(),
            stderr: "\nError: Saved plan is stale\n\nThe given plan file can no longer be applied because the state was changed by\nanother operation after the plan was created.\n".into(),
        };
        let e = TerraformError::from_finished("apply", &f);
        assert!(matches!(e, TerraformError::StalePlan { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("another deploy applied while this one planned: re-run."));
        assert_eq!(e.diagnostics().len(), 1);
        // Only `apply` of a saved plan can be stale.
        assert!(matches!(
            TerraformError::from_finished("plan", &f),
            TerraformError::Failed { .. }
        ));
    }

    #[test]
    fn a_cancelled_command_is_named_and_says_how_it_ended() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(subcommand(&args(&["apply", "-auto-approve"])), "apply");
        assert_eq!(subcommand(&args(&["-chdir=x", "plan"])), "plan");
        let killed = TerraformError::Interrupted {
            command: "apply".into(),
            reason: "SIGTERM".into(),
            code: None,
            diagnostics: vec![],
        };
        assert!(killed.is_cancelled());
        assert_eq!(
            killed.to_string(),
            "`terraform apply` was interrupted because the run was cancelled by SIGTERM: Terraform was asked to stop once but was ended by a signal before it exited on its own; the state may still be locked: see `terraform force-unlock` in the root module"
        );
        let not_started = TerraformError::Cancelled {
            command: "init".into(),
            reason: "SIGINT".into(),
        };
        assert!(not_started.is_cancelled());
        assert!(!TerraformError::from_finished("apply", &Finished::default()).is_cancelled());
    }

    #[test]
    fn version_constraints_as_terraform_reads_them() {
        assert!(satisfies(">= 1.10", "1.11.4").unwrap());
        assert!(!satisfies(">= 1.10", "1.9.8").unwrap());
        assert!(satisfies("~> 1.10", "1.11.4").unwrap());
        assert!(!satisfies("~> 1.10", "2.0.0").unwrap());
        assert!(satisfies("~> 1.10.2", "1.10.9").unwrap());
        assert!(!satisfies("~> 1.10.2", "1.11.0").unwrap());
        assert!(satisfies(">= 1.10, < 2.0", "1.11.4-beta1").unwrap());
        assert!(!satisfies("!= 1.11.4", "1.11.4").unwrap());
        assert!(satisfies("1.11.4", "1.11.4").unwrap());
        assert!(satisfies(">= x", "1.0").is_err());
    }
}
