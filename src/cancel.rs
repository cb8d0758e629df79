//! Cancellation of a run: one cheap handle that every stage can look at, set once by the first
//! SIGTERM or SIGINT (a cancelled workflow: the runner sends SIGINT to `docker`, which passes it
//! to this process, then SIGTERM 7.5 s later, then kills the process tree 2.5 s after that).
//!
//! The binary is PID 1 in the action's container, where the kernel applies no default action to
//! SIGTERM or SIGINT: without [`listen`] a cancelled run would carry on until it is killed. With
//! it, stages stop waiting and starting work, a running Terraform is asked to stop once and waited
//! for, and the run ends by reporting what was cancelled.
//!
//! This module only records that the run is cancelled and why. It never ends the process and
//! never signals a child; a second signal is logged, not acted on, because the run is already
//! finishing cleanly and a hard stop could leave the Terraform state locked or torn.

use std::future::Future;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Whether the run is cancelled, and by what; clones share the state. Set once: the first reason
/// is the one kept.
#[derive(Clone, Debug)]
pub struct Cancel {
    state: Arc<watch::Sender<Option<String>>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A handle that is not cancelled (and is only cancelled by [`Cancel::cancel`]).
    pub fn new() -> Cancel {
        Cancel {
            state: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Cancel the run, for `reason` (`SIGTERM`, `SIGINT`). Returns whether this call cancelled
    /// it: `false` when it already was, and the first reason stays.
    pub fn cancel(&self, reason: &str) -> bool {
        self.state.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(reason.to_string());
            true
        })
    }

    pub fn is_cancelled(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// What cancelled the run (`SIGTERM`, `SIGINT`), once it is.
    pub fn reason(&self) -> Option<String> {
        self.state.borrow().clone()
    }

    /// Resolves when the run is cancelled (at once when it already is); made for
    /// `tokio::select!`. It is cancel-safe: dropping it loses nothing.
    pub async fn cancelled(&self) {
        let mut seen = self.state.subscribe();
        // The sender lives in `self`, so the wait cannot end for lack of one.
        let _ = seen.wait_for(Option::is_some).await;
    }

    /// The [`Cancelled`] error for this handle's reason, once it is cancelled.
    pub fn error(&self) -> Option<Cancelled> {
        self.reason().map(|reason| Cancelled { reason })
    }
}

/// Work that was not finished because the run was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled by {reason}")]
pub struct Cancelled {
    /// What cancelled the run: `SIGTERM`, `SIGINT`.
    pub reason: String,
}

/// Run `work` until it finishes or the run is cancelled, whichever comes first; when both are
/// ready, cancellation wins. Cancelling drops `work`, so it is for work that may be abandoned at
/// any await point (polling, waiting, building); never for a child that must be asked to stop.
pub async fn or_cancelled<F: Future>(cancel: &Cancel, work: F) -> Result<F::Output, Cancelled> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(cancel.error().unwrap_or_else(|| Cancelled {
            reason: "an unknown reason".into(),
        })),
        out = work => Ok(out),
    }
}

/// Listen for SIGTERM and SIGINT: the first cancels the returned handle, each later one is only
/// logged. Call it inside the Tokio runtime, once, before any work starts; from then on these
/// signals no longer end the process on their own (the run must end itself).
pub fn listen() -> std::io::Result<Cancel> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = Cancel::new();
    let handle = cancel.clone();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => break,
            };
            if handle.cancel(name) {
                tracing::warn!(
                    "received {name}: cancelling the run; work in progress stops and a running Terraform is asked to stop and waited for"
                );
            } else {
                tracing::warn!(
                    "received {name} again; the run is already stopping ({}), waiting for it to finish cleanly",
                    handle.error().map(|c| c.to_string()).unwrap_or_default()
                );
            }
        }
    });
    Ok(cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cancel_wakes_a_waiter_and_keeps_the_first_reason() {
        let cancel = Cancel::new();
        assert!(!cancel.is_cancelled());
        assert_eq!(cancel.reason(), None);
        let waiter = tokio::spawn({
            let c = cancel.clone();
            async move { c.cancelled().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        assert!(cancel.clone().cancel("SIGTERM"));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("cancelled() resolves once cancelled")
            .unwrap();
        assert!(!cancel.cancel("SIGINT"));
        assert!(cancel.is_cancelled());
        assert_eq!(cancel.reason().as_deref(), Some("SIGTERM"));
        // Already cancelled: resolves at once.
        tokio::time::timeout(Duration::from_millis(100), cancel.cancelled())
            .await
            .expect("resolves at once");
    }

    #[tokio::test]
    async fn or_cancelled_gives_the_output_until_cancelled() {
        let cancel = Cancel::new();
        assert_eq!(or_cancelled(&cancel, async { 7 }).await, Ok(7));

        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel("SIGINT");
        });
        let never = std::future::pending::<()>();
        let err = tokio::time::timeout(Duration::from_secs(5), or_cancelled(&cancel, never))
            .await
            .expect("cancellation ends the wait")
            .unwrap_err();
        assert_eq!(err.reason, "SIGINT");
        assert_eq!(err.to_string(), "cancelled by SIGINT");
        // Once cancelled, even work that is ready is not awaited.
        assert_eq!(
            or_cancelled(&cancel, async { 7 }).await,
            Err(Cancelled {
                reason: "SIGINT".into()
            })
        );
    }
}
