//! ECR repositories against moto, and image look-ups and retags against the real distribution
//! registry with htpasswd auth (user `AWS`, password = moto's token), as ECR's registry serves them.

mod support;

use cdc_deploy::clients::ecr::{Ecr, RepositoryService, RepositorySpec};
use cdc_deploy::clients::registry::{HttpRegistry, Registry, RegistryAuth, RegistryError};
use cdc_deploy::config::RegistryHost;
use cdc_deploy::secret::Secret;

fn spec(name: &str) -> RepositorySpec {
    RepositorySpec {
        name: name.to_string(),
        project: "shop".into(),
        consumer: name.trim_start_matches("shop-").into(),
        environment: "staging".into(),
        keep_images: 20,
        untagged_expiry_days: 5,
    }
}

#[tokio::test]
async fn ensure_creates_a_repository_with_every_setting() {
    let config = support::aws().await;
    let ecr = Ecr::new(&config);
    let name = support::unique("shop-orders-");
    let repo = ecr.ensure(&spec(&name)).await.unwrap();
    assert!(repo.created);
    assert!(repo.uri.ends_with(&format!("/{name}")), "{}", repo.uri);

    let client = aws_sdk_ecr::Client::new(&config);
    let facts = support::repository_facts(&client, &name).await;
    assert_eq!(facts.mutability, "IMMUTABLE");
    assert!(facts.scan_on_push);
    assert_eq!(facts.encryption.as_deref(), Some("AES256"));
    let policy = facts.lifecycle_policy.as_ref().unwrap();
    assert_eq!(policy["rules"][0]["selection"]["countNumber"], 5);
    assert_eq!(policy["rules"][1]["selection"]["countNumber"], 20);
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
async fn ensure_is_idempotent_and_tolerates_concurrent_creators() {
    let config = support::aws().await;
    let ecr = Ecr::new(&config);
    let name = support::unique("shop-audit-");
    let s = spec(&name);
    let (a, b, c, d) = tokio::join!(
        ecr.ensure(&s),
        ecr.ensure(&s),
        ecr.ensure(&s),
        ecr.ensure(&s)
    );
    let results = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
    assert!(results.iter().filter(|r| r.created).count() >= 1);
    assert!(results.iter().all(|r| r.uri == results[0].uri));
    let again = ecr.ensure(&s).await.unwrap();
    assert!(
        !again.created,
        "an existing repository is not created again"
    );
    // A later run with other lifecycle numbers updates the policy of the existing repository.
    let mut changed = s.clone();
    changed.keep_images = 7;
    ecr.ensure(&changed).await.unwrap();
    let client = aws_sdk_ecr::Client::new(&config);
    let policy = client
        .get_lifecycle_policy()
        .repository_name(&name)
        .send()
        .await
        .unwrap();
    assert!(policy
        .lifecycle_policy_text()
        .unwrap()
        .contains("\"countNumber\":7"));
    assert!(ecr
        .find(&support::unique("shop-none-"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_repository_made_by_hand_is_brought_in_line() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let name = support::unique("shop-manual-");
    client
        .create_repository()
        .repository_name(&name)
        .send()
        .await
        .unwrap();
    let r = Ecr::new(&config).ensure(&spec(&name)).await.unwrap();
    assert!(!r.created);
    let facts = support::repository_facts(&client, &name).await;
    assert_eq!(facts.mutability, "IMMUTABLE");
    assert!(facts.scan_on_push);
    assert!(facts.lifecycle_policy.is_some());
    for key in ["project", "consumer", "environment", "managed-by"] {
        assert!(
            facts.tags.iter().any(|(k, _)| k == key),
            "{key} missing from {:?}",
            facts.tags
        );
    }
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
    let digest = support::seed_image(&repo, "ctx-aaaa").await;
    let reg = client(support::MOTO_TOKEN_PASSWORD);

    assert_eq!(
        reg.digest(&repo, "ctx-aaaa").await.unwrap(),
        Some(digest.clone())
    );
    assert_eq!(reg.digest(&repo, "ctx-bbbb").await.unwrap(), None);
    assert_eq!(
        reg.digest(&support::unique("shop-none-"), "x")
            .await
            .unwrap(),
        None,
        "an unknown repository is no image"
    );

    let manifest = reg.manifest(&repo, "ctx-aaaa").await.unwrap();
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
        reg.digest(&repo, "sha-0123456").await.unwrap(),
        Some(digest)
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_password() {
    let reg = client("not-the-token");
    let err = reg.digest("shop-orders", "ctx-aaaa").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { status: 401, .. }),
        "{err}"
    );
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
    let err = reg.digest("shop-orders", "ctx-aaaa").await.unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    // Four attempts with 250, 500 and 1000 ms between them.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1700),
        "{:?}",
        started.elapsed()
    );
}

/// A registry that answers `503` to its first `failures` requests, then a manifest digest.
async fn flaky_registry(failures: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
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
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\ndocker-content-digest: sha256:{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", "d".repeat(64))
            };
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_registry_that_fails_transiently_is_retried_until_it_answers() {
    let (port, seen) = flaky_registry(2).await;
    let reg = support::registry_at(&format!("http://127.0.0.1:{port}"), "x");
    let digest = reg.digest("shop-orders", "ctx-aaaa").await.unwrap();
    assert_eq!(digest, Some(format!("sha256:{}", "d".repeat(64))));
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);

    // One failure more than the attempts allow is reported with the status.
    let (port, seen) = flaky_registry(10).await;
    let reg = support::registry_at(&format!("http://127.0.0.1:{port}"), "x");
    let err = reg.digest("shop-orders", "ctx-aaaa").await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 4);
}
