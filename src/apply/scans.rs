//! Scan findings, after the push: for each pushed image, ECR's vulnerability scan summary
//! (findings by severity), when the scan is ready within a short wait. The deploy never waits
//! long for a scan: what is not finished when the budget ends is reported as pending, and a scan
//! that cannot be read is reported as unavailable, never as a failed run. This module only reads
//! ECR: it never starts a scan, and findings never fail the run here.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;

use crate::clients::ecr::{EcrError, ScanReader, ScanState, Severity};

/// How long scans are waited for, from the first question: ECR's basic scan of a small image
/// often finishes within it; a run does not wait longer for a report line.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(20);

/// How often an unfinished scan is asked about again.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Questions to ECR in flight at once.
const CONCURRENCY: usize = 8;

/// The scan of one pushed image, as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ScanSummary {
    /// The scan finished. Findings by ECR's severity names (`CRITICAL`, `HIGH`, ...), most
    /// severe first, without zeros: empty means nothing was found.
    Complete { counts: BTreeMap<Severity, u32> },
    /// The scan had not finished when the wait ended.
    Pending,
    /// ECR holds no scan of the image: scan on push is off, or the scan did not start.
    NotScanned,
    /// The findings cannot be had: the scan failed, the image is not supported or not found, or
    /// ECR could not be asked. `reason` may hold server text: print it as untrusted.
    Unavailable { reason: String },
}

impl From<ScanState> for ScanSummary {
    fn from(state: ScanState) -> Self {
        match state {
            ScanState::Complete(counts) => ScanSummary::Complete { counts },
            ScanState::Pending => ScanSummary::Pending,
            ScanState::NotScanned => ScanSummary::NotScanned,
            ScanState::Unavailable { reason } => ScanSummary::Unavailable { reason },
        }
    }
}

impl ScanSummary {
    /// One short line for a person: `2 critical, 5 high, 1 medium`, `no findings`,
    /// `scan still in progress`, `not scanned: …`, `scan unavailable: …`.
    pub fn headline(&self) -> String {
        match self {
            ScanSummary::Complete { counts } if counts.values().all(|n| *n == 0) => {
                "no findings".to_string()
            }
            ScanSummary::Complete { counts } => counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(severity, n)| format!("{n} {}", severity.as_str().to_lowercase()))
                .collect::<Vec<_>>()
                .join(", "),
            ScanSummary::Pending => "scan still in progress".to_string(),
            ScanSummary::NotScanned => {
                "not scanned: ECR holds no scan of this image (is scan on push off?)".to_string()
            }
            ScanSummary::Unavailable { reason } => format!("scan unavailable: {reason}"),
        }
    }

    /// The most severe finding's severity; `None` when nothing was found or the scan is not
    /// complete.
    pub fn worst(&self) -> Option<&Severity> {
        match self {
            ScanSummary::Complete { counts } => counts
                .iter()
                .find(|(_, n)| **n > 0)
                .map(|(severity, _)| severity),
            _ => None,
        }
    }

    /// Whether the scan found anything `CRITICAL` or `HIGH`.
    pub fn is_serious(&self) -> bool {
        self.worst().is_some_and(Severity::is_serious)
    }
}

/// A failed call that may succeed if asked again.
fn transient(e: &EcrError) -> bool {
    e.failure().is_some_and(|f| f.cause.is_transient())
}

/// The scan summary of each image, by consumer. `images` are `(consumer, repository, digest)`.
///
/// Every image is asked about at once (at most eight questions in flight). The ones whose scan
/// is unfinished, or whose question failed in a way that may pass (throttled, a server error,
/// the network), are asked again every `interval`, as long as the next round starts before
/// `budget`, counted from the call, ends; a question still unanswered when it ends is not waited
/// for. Unfinished scans are then reported as pending, and an image that only ever met failures
/// as unavailable, with the last one.
pub async fn collect(
    reader: &dyn ScanReader,
    images: &[(String, String, String)],
    budget: Duration,
    interval: Duration,
) -> BTreeMap<String, ScanSummary> {
    let deadline = Instant::now() + budget;
    let mut summaries: BTreeMap<String, ScanSummary> = BTreeMap::new();
    let mut asking: Vec<&(String, String, String)> = images.iter().collect();
    while !asking.is_empty() {
        let answers: Vec<_> = futures_util::stream::iter(asking.iter().map(|&image| async move {
            let (_, repository, digest) = image;
            let answer =
                tokio::time::timeout_at(deadline, reader.scan_findings(repository, digest)).await;
            (image, answer)
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        asking.clear();
        for (image, answer) in answers {
            let (consumer, repository, digest) = image;
            let Ok(answer) = answer else {
                // The budget ended mid-question: what was known before stands.
                summaries
                    .entry(consumer.clone())
                    .or_insert_with(|| ScanSummary::Unavailable {
                        reason: format!("ECR did not answer within {budget:?}"),
                    });
                continue;
            };
            tracing::debug!(consumer, repository, digest, ?answer, "scan findings");
            match answer {
                Ok(ScanState::Pending) => {
                    summaries.insert(consumer.clone(), ScanSummary::Pending);
                    asking.push(image);
                }
                Ok(state) => {
                    summaries.insert(consumer.clone(), state.into());
                }
                Err(e) if transient(&e) => {
                    // A scan known to be pending stays so; otherwise the failure is all there is.
                    if summaries.get(consumer) != Some(&ScanSummary::Pending) {
                        summaries.insert(
                            consumer.clone(),
                            ScanSummary::Unavailable {
                                reason: e.to_string(),
                            },
                        );
                    }
                    asking.push(image);
                }
                Err(e) => {
                    summaries.insert(
                        consumer.clone(),
                        ScanSummary::Unavailable {
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        let next = Instant::now() + interval;
        if asking.is_empty() || next >= deadline {
            break;
        }
        tokio::time::sleep_until(next).await;
    }
    summaries
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use crate::failure::Cause;
    use async_trait::async_trait;

    use super::*;
    use crate::failure::Failure;

    /// A reader that answers from a script per digest (the last answer repeats), after `delay`,
    /// and counts what it was asked.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<HashMap<String, VecDeque<Result<ScanState, EcrError>>>>,
        calls: Mutex<HashMap<String, usize>>,
        delay: Duration,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Scripted {
        fn new(script: &[(&str, Vec<Result<ScanState, EcrError>>)]) -> Self {
            Scripted {
                script: Mutex::new(
                    script
                        .iter()
                        .map(|(d, a)| (d.to_string(), a.iter().cloned().collect()))
                        .collect(),
                ),
                ..Scripted::default()
            }
        }

        fn calls(&self, digest: &str) -> usize {
            self.calls.lock().unwrap().get(digest).copied().unwrap_or(0)
        }
    }

    #[async_trait]
    impl ScanReader for Scripted {
        async fn scan_findings(
            &self,
            _repository: &str,
            digest: &str,
        ) -> Result<ScanState, EcrError> {
            *self
                .calls
                .lock()
                .unwrap()
                .entry(digest.to_string())
                .or_default() += 1;
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let mut script = self.script.lock().unwrap();
            let answers = script.get_mut(digest).expect("a scripted digest");
            if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers.front().cloned().unwrap()
            }
        }
    }

    fn failed(cause: Cause, message: &str) -> Result<ScanState, EcrError> {
        Err(EcrError::Api {
            operation: "DescribeImageScanFindings",
            repository: Some("shop-orders".into()),
            failure: Failure::new(cause, message),
        })
    }

    fn complete(pairs: &[(Severity, u32)]) -> ScanState {
        ScanState::Complete(pairs.iter().cloned().collect())
    }

    /// `(consumer, repository, digest)` with the digest named after the consumer.
    fn images(consumers: &[&str]) -> Vec<(String, String, String)> {
        consumers
            .iter()
            .map(|c| (c.to_string(), format!("shop-{c}"), format!("sha256:{c}")))
            .collect()
    }

    const BUDGET: Duration = Duration::from_secs(20);
    const INTERVAL: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn a_pending_scan_is_asked_again_until_it_completes() {
        let reader = Scripted::new(&[
            (
                "sha256:orders",
                vec![Ok(ScanState::Pending), Ok(complete(&[(Severity::High, 1)]))],
            ),
            ("sha256:billing", vec![Ok(complete(&[]))]),
        ]);
        let started = Instant::now();
        let got = collect(&reader, &images(&["orders", "billing"]), BUDGET, INTERVAL).await;
        assert_eq!(
            got,
            BTreeMap::from([
                (
                    "orders".to_string(),
                    ScanSummary::Complete {
                        counts: BTreeMap::from([(Severity::High, 1)])
                    }
                ),
                (
                    "billing".to_string(),
                    ScanSummary::Complete {
                        counts: BTreeMap::new()
                    }
                ),
            ])
        );
        assert_eq!(reader.calls("sha256:orders"), 2);
        assert_eq!(
            reader.calls("sha256:billing"),
            1,
            "a finished scan is not asked again"
        );
        assert_eq!(started.elapsed(), INTERVAL, "one interval, not the budget");
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_unfinished_when_the_budget_ends_is_pending() {
        let reader = Scripted::new(&[("sha256:orders", vec![Ok(ScanState::Pending)])]);
        let started = Instant::now();
        let got = collect(&reader, &images(&["orders"]), BUDGET, INTERVAL).await;
        assert_eq!(got["orders"], ScanSummary::Pending);
        // Asked at 0, 5, 10 and 15 s; a round at 20 s would start as the budget ends.
        assert_eq!(reader.calls("sha256:orders"), 4);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert!(started.elapsed() < BUDGET);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_will_not_pass_is_unavailable_at_once() {
        let reader = Scripted::new(&[
            (
                "sha256:orders",
                vec![failed(
                    Cause::Permission,
                    "not allowed (AccessDeniedException: no)",
                )],
            ),
            ("sha256:billing", vec![Ok(ScanState::NotScanned)]),
            (
                "sha256:search",
                vec![Ok(ScanState::Unavailable {
                    reason: "ECR reports `FAILED`".into(),
                })],
            ),
        ]);
        let got = collect(
            &reader,
            &images(&["orders", "billing", "search"]),
            BUDGET,
            INTERVAL,
        )
        .await;
        assert_eq!(
            got["orders"],
            ScanSummary::Unavailable {
                reason: "ECR DescribeImageScanFindings failed for `shop-orders`: not allowed (AccessDeniedException: no)".into()
            }
        );
        assert_eq!(got["billing"], ScanSummary::NotScanned);
        assert_eq!(
            got["search"],
            ScanSummary::Unavailable {
                reason: "ECR reports `FAILED`".into()
            }
        );
        for d in ["sha256:orders", "sha256:billing", "sha256:search"] {
            assert_eq!(reader.calls(d), 1, "{d} is asked once");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_asked_again_within_the_budget() {
        let reader = Scripted::new(&[
            (
                "sha256:orders",
                vec![
                    failed(Cause::Throttled, "AWS throttled the calls"),
                    failed(Cause::Server, "AWS failed with HTTP 500"),
                    Ok(complete(&[(Severity::Critical, 2)])),
                ],
            ),
            (
                "sha256:billing",
                vec![failed(
                    Cause::Network,
                    "`http://ecr` refused the connection",
                )],
            ),
            (
                "sha256:search",
                vec![
                    Ok(ScanState::Pending),
                    failed(Cause::Throttled, "AWS throttled the calls"),
                ],
            ),
        ]);
        let got = collect(
            &reader,
            &images(&["orders", "billing", "search"]),
            BUDGET,
            INTERVAL,
        )
        .await;
        assert_eq!(
            got["orders"],
            ScanSummary::Complete {
                counts: BTreeMap::from([(Severity::Critical, 2)])
            }
        );
        assert_eq!(reader.calls("sha256:orders"), 3);
        let ScanSummary::Unavailable { reason } = &got["billing"] else {
            panic!("{:?}", got["billing"])
        };
        assert!(reason.contains("refused the connection"), "{reason}");
        assert_eq!(
            reader.calls("sha256:billing"),
            4,
            "retried while the budget lasts"
        );
        assert_eq!(
            got["search"],
            ScanSummary::Pending,
            "a scan known to be pending stays so when later questions fail"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn questions_are_bounded_and_asked_together() {
        let names: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let digests: Vec<String> = names.iter().map(|c| format!("sha256:{c}")).collect();
        let script: Vec<(&str, Vec<Result<ScanState, EcrError>>)> = digests
            .iter()
            .map(|d| (d.as_str(), vec![Ok(complete(&[]))]))
            .collect();
        let reader = Scripted {
            delay: Duration::from_secs(1),
            ..Scripted::new(&script)
        };
        let started = Instant::now();
        let got = collect(&reader, &images(&names), BUDGET, INTERVAL).await;
        assert_eq!(got.len(), 20);
        assert!(got.values().all(|s| s.headline() == "no findings"));
        assert_eq!(reader.most_in_flight.load(Ordering::SeqCst), CONCURRENCY);
        // Twenty one-second questions, eight at a time: three seconds.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_question_unanswered_when_the_budget_ends_is_not_waited_for() {
        let reader = Scripted {
            delay: Duration::from_secs(600),
            ..Scripted::new(&[("sha256:orders", vec![Ok(complete(&[]))])])
        };
        let started = Instant::now();
        let got = collect(&reader, &images(&["orders"]), BUDGET, INTERVAL).await;
        assert_eq!(started.elapsed(), BUDGET);
        assert_eq!(
            got["orders"],
            ScanSummary::Unavailable {
                reason: "ECR did not answer within 20s".into()
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_to_ask_is_nothing_reported() {
        let reader = Scripted::default();
        assert!(collect(&reader, &[], BUDGET, INTERVAL).await.is_empty());
    }

    #[test]
    fn headlines_say_the_worst_first() {
        let summary = ScanSummary::Complete {
            counts: BTreeMap::from([
                (Severity::Medium, 1),
                (Severity::Critical, 2),
                (Severity::High, 5),
            ]),
        };
        assert_eq!(summary.headline(), "2 critical, 5 high, 1 medium");
        assert_eq!(summary.worst(), Some(&Severity::Critical));
        assert!(summary.is_serious());

        let mild = ScanSummary::Complete {
            counts: BTreeMap::from([
                (Severity::Other("UNTRIAGED".into()), 3),
                (Severity::Low, 4),
                (Severity::Informational, 1),
            ]),
        };
        assert_eq!(mild.headline(), "4 low, 1 informational, 3 untriaged");
        assert_eq!(mild.worst(), Some(&Severity::Low));
        assert!(!mild.is_serious());

        let clean = ScanSummary::Complete {
            counts: BTreeMap::new(),
        };
        assert_eq!(clean.headline(), "no findings");
        assert_eq!(clean.worst(), None);
        assert_eq!(ScanSummary::Pending.headline(), "scan still in progress");
        assert!(ScanSummary::NotScanned
            .headline()
            .starts_with("not scanned: "));
        assert_eq!(
            ScanSummary::Unavailable {
                reason: "`shop-orders` holds no image `sha256:0`".into()
            }
            .headline(),
            "scan unavailable: `shop-orders` holds no image `sha256:0`"
        );
        assert!(!ScanSummary::Pending.is_serious());
    }

    #[test]
    fn summaries_serialize_with_their_status() {
        let json = |s: &ScanSummary| serde_json::to_string(s).unwrap();
        assert_eq!(
            json(&ScanSummary::Complete {
                counts: BTreeMap::from([(Severity::Low, 1), (Severity::High, 2)])
            }),
            r#"{"status":"complete","counts":{"HIGH":2,"LOW":1}}"#
        );
        assert_eq!(json(&ScanSummary::Pending), r#"{"status":"pending"}"#);
        assert_eq!(
            json(&ScanSummary::NotScanned),
            r#"{"status":"not-scanned"}"#
        );
        assert_eq!(
            json(&ScanSummary::Unavailable {
                reason: "gone".into()
            }),
            r#"{"status":"unavailable","reason":"gone"}"#
        );
    }
}
