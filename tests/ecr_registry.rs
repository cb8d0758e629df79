//! ECR repositories against moto, and image look-ups and retags against the real distribution
//! registry with htpasswd auth (user `AWS`, password = moto's token), as ECR's registry serves them.

mod support;

use cdc_deploy::clients::ecr::{
    Described, Ecr, RepositoryDrift, RepositoryService, RepositorySpec,
};
use cdc_deploy::clients::registry::{HttpRegistry, Registry, RegistryAuth};
use cdc_deploy::config::RegistryHost;
use cdc_deploy::failure::Cause;
use cdc_deploy::plan::repository_drift;
use cdc_deploy::secret::Secret;

fn spec(name: &str) -> RepositorySpec {
    RepositorySpec {
        name: name.to_string(),
        project: "shop".into(),
        consumer: name.trim_start_matches("shop-").into(),
        environment: "staging".into(),
        keep_images: 20,
        untagged_expiry_days: 5,
        cache_tags_mutable: true,
        mutable_tags: Vec::new(),
    }
}

#[tokio::test]
async fn create_makes_a_repository_with_every_setting() {
    let config = support::aws().await;
    let ecr = Ecr::new(&config);
    let name = support::unique("shop-orders-");
    assert!(
        ecr.create(&spec(&name)).await.unwrap(),
        "created by this call"
    );

    let client = aws_sdk_ecr::Client::new(&config);
    let facts = support::repository_facts(&client, &name).await;
    // Every tag is immutable but the build cache's and the ones that keep what runs.
    assert_eq!(facts.mutability, "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(facts.mutable_tags, ["WILDCARD cache-*", "WILDCARD keep-*"]);
    assert!(facts.scan_on_push);
    assert_eq!(facts.encryption.as_deref(), Some("AES256"));
    let policy = facts.lifecycle_policy.as_ref().unwrap();
    assert_eq!(policy["rules"][0]["selection"]["tagPrefixList"][0], "keep-");
    assert_eq!(policy["rules"][1]["selection"]["countNumber"], 5);
    assert_eq!(policy["rules"][2]["selection"]["countNumber"], 20);
    for (key, value) in [
        ("project", "shop"),
        ("managed-by", "cdc-deploy"),
        ("environment", "staging"),
    ] {
        assert!(
            facts.has_tag(key, value),
            "{key}={value} in {:?}",
            facts.tags
        );
    }
}

#[tokio::test]
async fn concurrent_creators_are_not_an_error() {
    let config = support::aws().await;
    let ecr = Ecr::new(&config);
    let name = support::unique("shop-audit-");
    let s = spec(&name);
    let (a, b, c, d) = tokio::join!(
        ecr.create(&s),
        ecr.create(&s),
        ecr.create(&s),
        ecr.create(&s)
    );
    let created = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert!(
        !ecr.create(&s).await.unwrap(),
        "an existing repository is not created again"
    );
}

#[tokio::test]
async fn repositories_are_described_by_the_batch_or_listed() {
    let config = support::aws().await;
    let ecr = Ecr::new(&config);
    let names: Vec<String> = (0..3).map(|_| support::unique("shop-batch-")).collect();
    for n in &names {
        ecr.create(&spec(n)).await.unwrap();
    }
    let Described::All(found) = ecr.describe(&names).await.unwrap() else {
        panic!("every name exists")
    };
    let mut got: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
    got.sort();
    assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(found
        .iter()
        .all(|r| r.tag_mutability == "IMMUTABLE_WITH_EXCLUSION" && r.scan_on_push));

    // One name missing fails the whole call, as ECR does; the listing has the others.
    let mut with_missing = names.clone();
    with_missing.push(support::unique("shop-none-"));
    assert_eq!(
        ecr.describe(&with_missing).await.unwrap(),
        Described::SomeMissing {
            missing: with_missing.last().cloned()
        },
        "ECR names the missing repository"
    );
    let listed = ecr.list().await.unwrap();
    for n in &names {
        assert!(listed.iter().any(|r| &r.name == n), "{n} is listed");
    }
}

#[tokio::test]
async fn a_repository_made_by_hand_is_brought_back_in_line() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let name = support::unique("shop-manual-");
    client
        .create_repository()
        .repository_name(&name)
        .send()
        .await
        .unwrap();
    let ecr = Ecr::new(&config);
    let Described::All(found) = ecr.describe(std::slice::from_ref(&name)).await.unwrap() else {
        panic!()
    };
    let drift = repository_drift(&found[0]);
    assert_eq!(
        drift,
        [
            RepositoryDrift::MutableTags,
            RepositoryDrift::ScanOnPushOff,
            RepositoryDrift::KeepTagsImmutable
        ]
    );
    ecr.reconcile(&spec(&name), &drift).await.unwrap();
    let facts = support::repository_facts(&client, &name).await;
    assert_eq!(facts.mutability, "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(facts.mutable_tags, ["WILDCARD cache-*", "WILDCARD keep-*"]);
    assert!(facts.scan_on_push);
    let Described::All(after) = ecr.describe(std::slice::from_ref(&name)).await.unwrap() else {
        panic!()
    };
    assert!(repository_drift(&after[0]).is_empty());
}

#[tokio::test]
async fn a_repository_made_before_the_build_cache_gets_the_cache_tags_excluded() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let name = support::unique("shop-older-");
    client
        .create_repository()
        .repository_name(&name)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .image_scanning_configuration(
            aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ecr = Ecr::new(&config);
    let Described::All(found) = ecr.describe(std::slice::from_ref(&name)).await.unwrap() else {
        panic!()
    };
    let drift = repository_drift(&found[0]);
    assert_eq!(
        drift,
        [
            RepositoryDrift::CacheTagsImmutable,
            RepositoryDrift::KeepTagsImmutable
        ]
    );
    ecr.reconcile(&spec(&name), &drift).await.unwrap();
    let facts = support::repository_facts(&client, &name).await;
    assert_eq!(facts.mutability, "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(facts.mutable_tags, ["WILDCARD cache-*", "WILDCARD keep-*"]);
    // It gets the lifecycle policy whose first rule keeps what environments run.
    let policy = facts.lifecycle_policy.as_ref().expect("a lifecycle policy");
    assert_eq!(policy["rules"][0]["selection"]["tagPrefixList"][0], "keep-");
    let Described::All(after) = ecr.describe(std::slice::from_ref(&name)).await.unwrap() else {
        panic!()
    };
    assert!(repository_drift(&after[0]).is_empty());
}

#[tokio::test]
async fn the_authorization_token_is_decoded_and_never_printed() {
    let config = support::aws().await;
    let auth = Ecr::new(&config).authorization().await.unwrap();
    assert_eq!(auth.username, "AWS");
    assert_eq!(auth.password.expose(), support::MOTO_TOKEN_PASSWORD);
    let shown = format!("{auth:?}");
    assert!(!shown.contains(support::MOTO_TOKEN_PASSWORD), "{shown}");
}

fn client(password: &str) -> HttpRegistry {
    support::registry_at(&format!("http://{}", support::registry()), password)
}

#[tokio::test]
async fn look_ups_and_retags_go_through_the_registry() {
    let repo = support::unique("shop-orders-");
    let digest = support::seed_image(&repo, &["ctx-aaaa"]).await;
    let reg = client(support::MOTO_TOKEN_PASSWORD);

    let manifest = reg.manifest(&repo, "ctx-aaaa").await.unwrap().unwrap();
    assert_eq!(reg.manifest(&repo, "ctx-bbbb").await.unwrap(), None);
    assert_eq!(
        reg.manifest(&support::unique("shop-none-"), "x")
            .await
            .unwrap(),
        None,
        "an unknown repository is no image"
    );

    assert_eq!(manifest.digest, digest);
    assert_eq!(
        manifest.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(manifest.stored_size().unwrap() > 0);
    let retagged = reg
        .put_manifest(&repo, "sha-0123456", &manifest)
        .await
        .unwrap();
    assert_eq!(
        retagged, digest,
        "the same manifest under a new tag has the same digest"
    );
    assert_eq!(
        reg.manifest(&repo, "sha-0123456")
            .await
            .unwrap()
            .map(|m| m.digest),
        Some(digest)
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_password() {
    let reg = client("not-the-token");
    let err = reg.manifest("shop-orders", "ctx-aaaa").await.unwrap_err();
    assert!(err.failure.cause == Cause::Credentials, "{err}");
    let text = err.to_string();
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(!text.contains("not-the-token"));
}

#[tokio::test]
async fn an_unreachable_registry_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg = HttpRegistry::new(
        RegistryHost::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        RegistryAuth {
            username: "AWS".into(),
            password: Secret::new("x"),
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = reg.manifest("shop-orders", "ctx-aaaa").await.unwrap_err();
    assert_eq!(err.failure.cause, Cause::Network, "{err}");
    assert!(err.to_string().contains("refused the connection"), "{err}");
    // Four attempts with at least 250, 500 and 1000 ms between them (plus jitter).
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1700),
        "{:?}",
        started.elapsed()
    );
}

/// A registry that answers `failure` to its first `failures` requests, then a manifest.
async fn flaky_registry(
    failures: usize,
    failure: &'static str,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let reply = if n < failures {
                format!("HTTP/1.1 {failure}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            } else {
                let body = r#"{"schemaVersion":2,"config":{"size":10},"layers":[{"size":90}]}"#;
                format!(
                    "HTTP/1.1 200 OK\r\ndocker-content-digest: sha256:{}\r\ncontent-type: application/vnd.docker.distribution.manifest.v2+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    "d".repeat(64),
                    body.len()
                )
            };
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_registry_that_fails_transiently_is_retried_until_it_answers() {
    let (port, seen) = flaky_registry(2, "503 Service Unavailable").await;
    let reg = support::registry_at(&format!("http://127.0.0.1:{port}"), "x");
    let m = reg
        .manifest("shop-orders", "ctx-aaaa")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.digest, format!("sha256:{}", "d".repeat(64)));
    assert_eq!(m.stored_size(), Some(100));
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);

    // One failure more than the attempts allow is reported with the status.
    let (port, seen) = flaky_registry(10, "503 Service Unavailable").await;
    let reg = support::registry_at(&format!("http://127.0.0.1:{port}"), "x");
    let err = reg.manifest("shop-orders", "ctx-aaaa").await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_registry_that_asks_to_wait_is_waited_for() {
    let (port, seen) = flaky_registry(1, "429 Too Many Requests\r\nretry-after: 2").await;
    let reg = support::registry_at(&format!("http://127.0.0.1:{port}"), "x");
    let started = std::time::Instant::now();
    assert!(reg
        .manifest("shop-orders", "ctx-aaaa")
        .await
        .unwrap()
        .is_some());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After: 2 was not honoured: {:?}",
        started.elapsed()
    );
}
