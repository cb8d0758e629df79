//! The lifecycle policy the action writes, run through ECR's documented rule semantics
//! (`support::ecr_lifecycle`, since moto stores policies but never runs them), against the images
//! real deploys of two environments leave in the registry: what an environment runs, or would
//! roll back to, is never expired, however many images the other environment pushes.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use cdc_deploy::clients::registry::Registry as _;
use support::ecr_lifecycle::{expired, wildcard, Image};
use support::terraform::{consumer, run, workspace, Backend};
use support::{unique, write};

#[test]
fn the_documented_example_of_two_rules_holds() {
    // AWS's example: a `prod` rule before a `beta` rule, each keeping one image.
    let policy = serde_json::json!({"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
    ]});
    let img = |d: &str, tags: &[&str], at: u64| Image {
        digest: d.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: at,
    };
    let images = [
        img("A", &["beta-1", "prod-1"], 1),
        img("B", &["beta-2", "prod-2"], 2),
        img("C", &["beta-3"], 3),
    ];
    // Rule 1 expires A; rule 2 would expire A and B, but both match rule 1: only A goes.
    assert_eq!(
        expired(&policy, &images, 10),
        BTreeSet::from(["A".to_string()])
    );
    assert!(wildcard("keep-*", "keep-run-prod"));
    assert!(!wildcard("keep-*", "ctx-1"));
    assert!(wildcard("*-prod", "keep-run-prod"));
}

/// Every image of `repo` in the registry, with its tags; pushed in the order `order` names them.
async fn images(repo: &str, order: &[String]) -> Vec<Image> {
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/{repo}/tags/list",
            support::registry()
        ))
        .basic_auth("AWS", Some(support::MOTO_TOKEN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let registry = support::registry_client();
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in list["tags"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        let m = registry.manifest(repo, t).await.unwrap().unwrap();
        tags.entry(m.digest).or_default().push(t.to_string());
    }
    tags.into_iter()
        .map(|(digest, tags)| Image {
            pushed_at: order
                .iter()
                .position(|d| *d == digest)
                .unwrap_or_else(|| panic!("{digest} was not pushed by the test"))
                as u64,
            digest,
            tags,
        })
        .collect()
}

#[tokio::test]
async fn what_every_environment_runs_or_would_roll_back_to_is_never_expired() {
    let ws = workspace();
    let project = unique("keep");
    consumer(ws.path(), "orders", 256);
    let production = Backend::new().await;
    let staging = Backend::new().await;
    let mut pushed: Vec<String> = Vec::new();
    // Two deploys of production, then three of staging, each of new code; two images kept.
    for (i, (env, backend)) in [
        ("production", &production),
        ("production", &production),
        ("staging", &staging),
        ("staging", &staging),
        ("staging", &staging),
    ]
    .into_iter()
    .enumerate()
    {
        write(
            ws.path(),
            "consumer_scripts/orders/app/run.sh",
            &format!("echo orders v{i}\n"),
        );
        let commit = format!("{}", i + 1).repeat(40);
        let r = run(
            ws.path(),
            &project,
            backend,
            "deploy",
            &commit,
            &[("environment", env), ("keep-images", "2")],
        );
        assert_eq!(r.code, 0, "{}", r.describe());
        let images: BTreeMap<String, String> = serde_json::from_str(&r.outputs["images"]).unwrap();
        pushed.push(images["orders"].rsplit_once('@').unwrap().1.to_string());
    }
    let repo = format!("{project}-orders");
    let ecr = aws_sdk_ecr::Client::new(&support::aws().await);
    let policy = support::repository_facts(&ecr, &repo)
        .await
        .lifecycle_policy
        .expect("the policy the action wrote");
    let held = images(&repo, &pushed).await;
    let tagged = |digest: &str| {
        held.iter()
            .find(|i| i.digest == digest)
            .map(|i| i.tags.clone())
            .unwrap_or_default()
    };
    // Each environment's image, and the one before it, carries its `keep-` tag.
    assert!(tagged(&pushed[1]).contains(&"keep-run-production".to_string()));
    assert!(tagged(&pushed[0]).contains(&"keep-ran-production".to_string()));
    assert!(tagged(&pushed[4]).contains(&"keep-run-staging".to_string()));
    assert!(tagged(&pushed[3]).contains(&"keep-ran-staging".to_string()));
    assert!(!tagged(&pushed[2]).iter().any(|t| t.starts_with("keep-")));

    // Only staging's first image goes: past the two newest, and no environment's.
    let now = 1_000_000;
    assert_eq!(
        expired(&policy, &held, now),
        BTreeSet::from([pushed[2].clone()])
    );
    // Without its first rule, the policy would expire what production runs and would roll back
    // to.
    let mut unprotected = policy.clone();
    unprotected["rules"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["selection"]["tagPrefixList"][0] != "keep-");
    let lost = expired(&unprotected, &held, now);
    assert!(
        lost.contains(&pushed[1]) && lost.contains(&pushed[0]),
        "{lost:?}"
    );
}
