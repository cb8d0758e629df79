//! Which AWS calls the SDK retried. Every AWS client of the run carries [`counted`]: before each
//! attempt it reads the attempt's number from the SDK, and counts a call the first time it is
//! tried again and each retry. AWS throttles a fleet's calls (`ThrottlingException`) and answers
//! some with a passing 5xx; the SDK retries those within its budget, and the report says how
//! many, per service, so a run that got through a bad minute says so.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The calls of one service that needed more than one attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retried {
    /// Calls tried more than once.
    pub calls: u64,
    /// Attempts after the first, over all of them.
    pub retries: u64,
}

/// What every client counted in this process, by service (`ECR`, `ECS`).
static COUNTS: Mutex<BTreeMap<&'static str, Retried>> = Mutex::new(BTreeMap::new());

/// The interceptor that counts `service`'s retried calls.
#[derive(Debug)]
struct Counter {
    service: &'static str,
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "cdc-deploy retried AWS calls"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt > 1 {
            count(self.service, attempt == 2);
        }
        Ok(())
    }
}

fn count(service: &'static str, first_retry: bool) {
    let mut counts = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let c = counts.entry(service).or_default();
    c.retries += 1;
    if first_retry {
        c.calls += 1;
    }
}

/// An interceptor for a client of `service` (`ECR`, `ECS`, `CloudWatch Logs`): add it to the
/// client's config.
pub fn counted(service: &'static str) -> SharedInterceptor {
    SharedInterceptor::new(Counter { service })
}

/// The retried calls so far, by service; services with none are left out.
pub fn so_far() -> BTreeMap<&'static str, Retried> {
    COUNTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// One line for the report, `None` when no call was retried: "3 AWS calls were retried (ECR 2,
/// ECS 1; 4 retries in all) …".
pub fn line(counts: &BTreeMap<&'static str, Retried>) -> Option<String> {
    let calls: u64 = counts.values().map(|r| r.calls).sum();
    if calls == 0 {
        return None;
    }
    let retries: u64 = counts.values().map(|r| r.retries).sum();
    let each = counts
        .iter()
        .filter(|(_, r)| r.calls > 0)
        .map(|(s, r)| format!("{s} {}", r.calls))
        .collect::<Vec<_>>()
        .join(", ");
    let (noun, verb) = if calls == 1 {
        ("call was", "it")
    } else {
        ("calls were", "them")
    };
    Some(format!(
        "{calls} AWS {noun} retried ({each}; {retries} {} in all): AWS throttled {verb} or answered with a passing error, and the retry went through unless the report says otherwise",
        if retries == 1 { "retry" } else { "retries" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_each_service_and_the_retries_in_all() {
        let mut counts = BTreeMap::new();
        assert_eq!(line(&counts), None);
        counts.insert(
            "ECR",
            Retried {
                calls: 2,
                retries: 3,
            },
        );
        counts.insert(
            "ECS",
            Retried {
                calls: 1,
                retries: 1,
            },
        );
        counts.insert("CloudWatch Logs", Retried::default());
        assert_eq!(
            line(&counts).unwrap(),
            "3 AWS calls were retried (ECR 2, ECS 1; 4 retries in all): AWS throttled them or answered with a passing error, and the retry went through unless the report says otherwise"
        );
        let one = BTreeMap::from([(
            "ECS",
            Retried {
                calls: 1,
                retries: 1,
            },
        )]);
        assert!(line(&one)
            .unwrap()
            .starts_with("1 AWS call was retried (ECS 1; 1 retry in all): AWS throttled it"));
    }
}
