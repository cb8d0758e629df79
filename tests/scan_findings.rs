//! ECR scan findings read from moto. What moto 5 does, and these tests rely on: scan on push
//! starts no scan (`DescribeImageScanFindings` answers `ScanNotFoundException` until
//! `StartImageScan`), a started scan is `COMPLETE` at once with one `HIGH` finding of its own,
//! and its API (`/moto-api/static/ecr/scan-finding-results`) can set the answer for an image
//! instead, which then stays the answer for that image.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration};
use cdc_deploy::apply::scans::{self, ScanSummary};
use cdc_deploy::clients::ecr::{Ecr, ScanReader, ScanState, Severity};
use sha2::{Digest as _, Sha256};

/// A repository with scan on push, holding one image pushed with `PutImage`; returns the image's
/// digest: the sha256 of the manifest's bytes, as ECR computes it.
async fn repository_with_image(client: &aws_sdk_ecr::Client, repository: &str) -> String {
    client
        .create_repository()
        .repository_name(repository)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Blob digests of our own, so each repository's image is a different one.
    let blob = |what: &str| {
        format!(
            "sha256:{:x}",
            Sha256::digest(format!("{repository}/{what}"))
        )
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469,
            "digest": blob("config"),
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2479,
            "digest": blob("layer"),
        }],
    })
    .to_string();
    let digest = format!("sha256:{:x}", Sha256::digest(manifest.as_bytes()));
    let put = client
        .put_image()
        .repository_name(repository)
        .image_manifest(&manifest)
        .image_digest(&digest)
        .image_tag("ctx-0123456789ab")
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.image()
            .and_then(|i| i.image_id())
            .and_then(|i| i.image_digest()),
        Some(digest.as_str()),
        "moto holds the image under the manifest's digest"
    );
    digest
}

async fn start_scan(client: &aws_sdk_ecr::Client, repository: &str, digest: &str) {
    client
        .start_image_scan()
        .repository_name(repository)
        .image_id(ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await
        .unwrap();
}

/// Make `answer` (a `DescribeImageScanFindings` response body) moto's answer for the image.
async fn set_answer(repository: &str, digest: &str, mut answer: serde_json::Value) {
    answer["repositoryName"] = repository.into();
    answer["imageId"] = serde_json::json!({ "imageDigest": digest });
    let status = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/ecr/scan-finding-results",
            support::moto_url()
        ))
        .json(&serde_json::json!({ "results": [answer], "region": "us-east-1" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "moto took the answer");
}

/// A digest no image has.
fn absent_digest() -> String {
    format!("sha256:{}", "0".repeat(64))
}

#[tokio::test]
async fn scan_on_push_starts_no_scan_in_moto_and_a_started_one_has_moto_s_finding() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let ecr = Ecr::new(&config);
    let repository = support::unique("shop-orders-");
    let digest = repository_with_image(&client, &repository).await;

    assert_eq!(
        ecr.scan_findings(&repository, &digest).await.unwrap(),
        ScanState::NotScanned,
        "moto answers ScanNotFoundException, scan on push or not"
    );

    start_scan(&client, &repository, &digest).await;
    assert_eq!(
        ecr.scan_findings(&repository, &digest).await.unwrap(),
        ScanState::Complete(BTreeMap::from([(Severity::High, 1)])),
        "moto's own answer: COMPLETE, one HIGH finding (CVE-9999-9999)"
    );

    let images = [("orders".to_string(), repository, digest)];
    let got = scans::collect(
        &ecr,
        &images,
        scans::DEFAULT_BUDGET,
        scans::DEFAULT_INTERVAL,
    )
    .await;
    let orders = &got["orders"];
    assert_eq!(orders.headline(), "1 high");
    assert_eq!(orders.worst(), Some(&Severity::High));
    assert!(orders.is_serious());
    assert_eq!(
        serde_json::to_value(orders).unwrap(),
        serde_json::json!({ "status": "complete", "counts": { "HIGH": 1 } })
    );
}

#[tokio::test]
async fn counts_come_most_severe_first_with_ecr_s_names() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let repository = support::unique("shop-billing-");
    let digest = repository_with_image(&client, &repository).await;
    start_scan(&client, &repository, &digest).await;
    set_answer(
        &repository,
        &digest,
        serde_json::json!({
            "imageScanStatus": { "status": "COMPLETE", "description": "The scan was completed successfully." },
            "imageScanFindings": {
                "findingSeverityCounts": { "LOW": 4, "MEDIUM": 1, "CRITICAL": 2, "HIGH": 5, "INFORMATIONAL": 0, "UNTRIAGED": 3 },
                "findings": [],
            },
        }),
    )
    .await;

    let state = Ecr::new(&config)
        .scan_findings(&repository, &digest)
        .await
        .unwrap();
    let ScanState::Complete(counts) = state else {
        panic!("{state:?}")
    };
    let summary = ScanSummary::Complete { counts };
    assert_eq!(
        summary.headline(),
        "2 critical, 5 high, 1 medium, 4 low, 3 untriaged"
    );
    assert_eq!(
        serde_json::to_string(&summary).unwrap(),
        r#"{"status":"complete","counts":{"CRITICAL":2,"HIGH":5,"MEDIUM":1,"LOW":4,"UNTRIAGED":3}}"#
    );
}

#[tokio::test]
async fn a_failed_scan_is_unavailable_in_ecr_s_words() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let repository = support::unique("shop-search-");
    let digest = repository_with_image(&client, &repository).await;
    start_scan(&client, &repository, &digest).await;
    set_answer(
        &repository,
        &digest,
        serde_json::json!({
            "imageScanStatus": {
                "status": "UNSUPPORTED_IMAGE",
                "description": "UnsupportedImageError: The operating system and/or package manager are not supported.",
            },
        }),
    )
    .await;

    let got = scans::collect(
        &Ecr::new(&config),
        &[("search".to_string(), repository, digest)],
        scans::DEFAULT_BUDGET,
        scans::DEFAULT_INTERVAL,
    )
    .await;
    assert_eq!(
        got["search"].headline(),
        "scan unavailable: ECR reports `UNSUPPORTED_IMAGE`: UnsupportedImageError: The operating system and/or package manager are not supported."
    );
    assert!(!got["search"].is_serious());
}

#[tokio::test]
async fn a_scan_still_in_progress_is_pending_when_the_budget_ends() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let repository = support::unique("shop-stock-");
    let digest = repository_with_image(&client, &repository).await;
    start_scan(&client, &repository, &digest).await;
    set_answer(
        &repository,
        &digest,
        serde_json::json!({ "imageScanStatus": { "status": "IN_PROGRESS" } }),
    )
    .await;
    let ecr = Ecr::new(&config);
    assert_eq!(
        ecr.scan_findings(&repository, &digest).await.unwrap(),
        ScanState::Pending
    );

    let budget = Duration::from_millis(1500);
    let started = Instant::now();
    let got = scans::collect(
        &ecr,
        &[("stock".to_string(), repository, digest)],
        budget,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(got["stock"], ScanSummary::Pending);
    assert_eq!(got["stock"].headline(), "scan still in progress");
    assert!(
        started.elapsed() < budget + Duration::from_millis(500),
        "the wait ends with the budget: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_image_or_repository_that_does_not_exist_is_unavailable_and_named() {
    let config = support::aws().await;
    let client = aws_sdk_ecr::Client::new(&config);
    let ecr = Ecr::new(&config);
    let repository = support::unique("shop-orders-");
    let digest = repository_with_image(&client, &repository).await;
    let other = support::unique("shop-empty-");
    client
        .create_repository()
        .repository_name(&other)
        .send()
        .await
        .unwrap();
    let missing_repository = support::unique("shop-none-");
    let absent = absent_digest();

    let images = [
        ("absent".to_string(), repository.clone(), absent.clone()),
        ("elsewhere".to_string(), other.clone(), digest.clone()),
        (
            "no-repository".to_string(),
            missing_repository.clone(),
            digest.clone(),
        ),
        ("present".to_string(), repository.clone(), digest.clone()),
    ];
    let got = scans::collect(
        &ecr,
        &images,
        scans::DEFAULT_BUDGET,
        scans::DEFAULT_INTERVAL,
    )
    .await;
    assert_eq!(
        got,
        BTreeMap::from([
            (
                "absent".to_string(),
                ScanSummary::Unavailable {
                    reason: format!("`{repository}` holds no image `{absent}`")
                }
            ),
            (
                "elsewhere".to_string(),
                ScanSummary::Unavailable {
                    reason: format!("`{other}` holds no image `{digest}`")
                }
            ),
            (
                "no-repository".to_string(),
                ScanSummary::Unavailable {
                    reason: format!("the repository `{missing_repository}` does not exist")
                }
            ),
            ("present".to_string(), ScanSummary::NotScanned),
        ])
    );
}

#[tokio::test]
async fn refused_credentials_are_unavailable_at_once() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(support::moto_auth_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "AKIAUNKNOWN",
            "unknown",
            None,
            None,
            "tests",
        ))
        .load()
        .await;
    let started = Instant::now();
    let got = scans::collect(
        &Ecr::new(&config),
        &[(
            "orders".to_string(),
            "shop-orders".to_string(),
            absent_digest(),
        )],
        scans::DEFAULT_BUDGET,
        scans::DEFAULT_INTERVAL,
    )
    .await;
    let ScanSummary::Unavailable { reason } = &got["orders"] else {
        panic!("{:?}", got["orders"])
    };
    assert!(
        reason.starts_with(
            "ECR DescribeImageScanFindings failed for `shop-orders`: AWS refused the credentials"
        ),
        "{reason}"
    );
    assert!(
        started.elapsed() < scans::DEFAULT_INTERVAL,
        "not asked again: {:?}",
        started.elapsed()
    );
}
