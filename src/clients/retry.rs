//! One retry policy for every call that is not an AWS SDK call (those keep the SDK's own standard
//! retry mode): registry requests, image pushes, GitHub. Exponential backoff with jitter, a
//! bounded number of attempts, and a server's `Retry-After` honoured up to a ceiling. Whether a
//! failure is worth another attempt is its [`Cause`](crate::failure::Cause)'s to say; the run's
//! cancellation ends the waiting at once, so no retry outlives the runner's grace period after a
//! cancelled workflow.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};

use crate::cancel::Cancel;

/// How often and how patiently a failed call is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: usize,
    /// Delay before the second attempt; each later one doubles it, plus up to as much again in
    /// random jitter.
    pub first_delay: Duration,
    /// No delay is longer, `Retry-After` included.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The policy every client uses: 4 attempts, 250 ms doubling, at most 20 s apart.
    pub const STANDARD: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(20),
    };

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
    }

    /// Run `op` until it succeeds, fails with an error `retryable` refuses, the attempts run out
    /// or the run is cancelled; the last error is returned. `retry_after` reads a server's
    /// requested delay from an error, which replaces the backoff's when longer. `on_retry` hears
    /// of each retry before its delay.
    #[allow(clippy::too_many_arguments)]
    pub async fn run<T, E, Fut>(
        &self,
        what: &str,
        cancel: &Cancel,
        mut op: impl FnMut() -> Fut,
        retryable: impl Fn(&E) -> bool,
        retry_after: impl Fn(&E) -> Option<Duration>,
        mut on_retry: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut delays = self.backoff().build();
        loop {
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !retryable(&e) || cancel.is_cancelled() {
                return Err(e);
            }
            let Some(delay) = delays.next() else {
                return Err(e);
            };
            let delay = retry_after(&e).map_or(delay, |ra| ra.min(self.max_delay).max(delay));
            tracing::debug!(what, %e, ?delay, "transient failure; retrying");
            on_retry(&e, delay);
            if crate::cancel::or_cancelled(cancel, tokio::time::sleep(delay))
                .await
                .is_err()
            {
                return Err(e);
            }
        }
    }
}

/// A `Retry-After` header's delay, in the seconds form registries and GitHub send.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[derive(Debug)]
    struct Failure {
        transient: bool,
        after: Option<Duration>,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failure")
        }
    }

    const FAST: RetryPolicy = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(400),
    };

    async fn count(policy: RetryPolicy, failure: fn() -> Failure) -> (usize, Duration) {
        let calls = AtomicUsize::new(0);
        let started = Instant::now();
        let r: Result<(), Failure> = policy
            .run(
                "test",
                &Cancel::new(),
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(failure())
                },
                |e| e.transient,
                |e| e.after,
                |_, _| {},
            )
            .await;
        assert!(r.is_err());
        (calls.load(Ordering::SeqCst), started.elapsed())
    }

    #[tokio::test]
    async fn transient_failures_are_tried_the_policys_number_of_times() {
        let (calls, _) = count(FAST, || Failure {
            transient: true,
            after: None,
        })
        .await;
        assert_eq!(calls, 3);
        let (calls, _) = count(FAST, || Failure {
            transient: false,
            after: None,
        })
        .await;
        assert_eq!(calls, 1, "a permanent failure is not retried");
    }

    #[tokio::test]
    async fn retry_after_is_honoured_up_to_the_ceiling() {
        let (calls, took) = count(FAST, || Failure {
            transient: true,
            after: Some(Duration::from_millis(150)),
        })
        .await;
        assert_eq!(calls, 3);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        let (_, took) = count(FAST, || Failure {
            transient: true,
            after: Some(Duration::from_secs(3600)),
        })
        .await;
        assert!(
            took < Duration::from_secs(2),
            "capped at max_delay: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_cancelled_run_stops_retrying_at_once() {
        let cancel = Cancel::new();
        let calls = AtomicUsize::new(0);
        let slow = RetryPolicy {
            attempts: 10,
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(60),
        };
        let started = Instant::now();
        let r: Result<(), Failure> = slow
            .run(
                "test",
                &cancel,
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Failure {
                        transient: true,
                        after: None,
                    })
                },
                |e| e.transient,
                |e| e.after,
                |_, _| {
                    cancel.cancel("SIGTERM");
                },
            )
            .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no attempt after the cancel"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
