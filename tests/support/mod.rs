//! Shared set-up for integration tests against the servers `scripts/test.sh` starts. A missing
//! server fails the test with what to do; nothing is skipped silently.
#![allow(dead_code)]

use aws_sdk_ecr::config::Credentials;

/// moto's answer to `GetAuthorizationToken`, which the test registry's htpasswd holds.
pub const MOTO_TOKEN_PASSWORD: &str = "123456789012-auth-token";

fn required(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: {what} is needed; run the tests with `scripts/test.sh`, which starts it")
    })
}

/// Base URL of the running moto server.
pub fn moto_url() -> String {
    required("CDC_TEST_MOTO_URL", "a moto server")
}

/// `127.0.0.1:PORT` of the running distribution registry.
pub fn registry() -> String {
    required("CDC_TEST_REGISTRY", "the docker-registry server")
}

/// An SDK configuration pointed at moto, as `AWS_ENDPOINT_URL` would point it.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// A name no other test uses, so tests can share one server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
