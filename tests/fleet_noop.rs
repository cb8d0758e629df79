//! A deploy at fleet size, counted where it lands: every request the binary sends to moto's ECR
//! API and to the registry passes through a counting proxy. A fleet already deployed costs one
//! `DescribeRepositories` per hundred consumers, the registry token, and one manifest read per
//! consumer: no writes, whatever the commit.

mod support;

use support::proxy::CountingProxy;
use support::{run_action_env, unique, Run};

const CONSUMERS: usize = 120;
const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

async fn deploy(
    root: &std::path::Path,
    project: &str,
    commit: &str,
    aws: &CountingProxy,
    registry: &CountingProxy,
) -> Run {
    aws.clear();
    registry.clear();
    let root = root.to_path_buf();
    let project = project.to_string();
    let commit = commit.to_string();
    let env = vec![
        ("AWS_ENDPOINT_URL", aws.url()),
        ("INPUT_REGISTRY-HOST", registry.url()),
    ];
    tokio::task::spawn_blocking(move || {
        run_action_env(
            &root,
            &[
                ("mode", "deploy"),
                ("project-name", &project),
                ("commit", &commit),
            ],
            &env,
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployed_fleet_costs_a_call_per_hundred_consumers_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("noop");
    let names = support::fleet::write_fleet(root, CONSUMERS);
    support::fleet::seed_fleet(root, &project, &[]).await;
    let aws = CountingProxy::start(&support::moto_url()).await;
    let registry = CountingProxy::start(&format!("http://{}", support::registry())).await;

    for commit in [COMMIT_1, COMMIT_2] {
        let run = deploy(root, &project, commit, &aws, &registry).await;
        assert_eq!(run.code, 0, "{}", run.describe());
        assert_eq!(run.names("reused").len(), CONSUMERS, "{}", run.describe());
        assert!(run.names("built").is_empty());

        let calls = aws.counts();
        let batches = CONSUMERS.div_ceil(100);
        assert_eq!(
            calls.get("DescribeRepositories"),
            Some(&batches),
            "{calls:?}"
        );
        assert_eq!(calls.get("GetAuthorizationToken"), Some(&1), "{calls:?}");
        assert_eq!(
            calls.values().sum::<usize>(),
            batches + 1,
            "at most ceil(N/100) + 1 AWS calls: {calls:?}"
        );
        let reads = registry.requests();
        assert!(
            reads
                .iter()
                .all(|r| r.method == "GET" && r.path.contains("/manifests/ctx-")),
            "only fingerprint look-ups reach the registry: {reads:?}"
        );
        assert_eq!(reads.len(), CONSUMERS, "one request per consumer");
        assert!(
            aws.requests()
                .iter()
                .chain(reads.iter())
                .all(|r| !r.writes()),
            "commit {commit}: a no-op deploy writes nothing"
        );
    }

    // Every consumer still runs the image it had: the one seeded under its fingerprint.
    let images: std::collections::BTreeMap<String, String> = {
        let run = deploy(root, &project, COMMIT_2, &aws, &registry).await;
        serde_json::from_str(&run.outputs["images"]).unwrap()
    };
    assert_eq!(images.len(), names.len());
    assert!(images.values().all(|i| i.contains("@sha256:")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_consumer_in_a_deployed_fleet_is_the_only_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("grow");
    support::fleet::write_fleet(root, 30);
    support::fleet::seed_fleet(root, &project, &[]).await;
    // Added after the fleet was deployed: its repository does not exist, so the batch
    // describing it fails as a whole and the registry's repositories are listed instead.
    let fresh = root.join("consumer_scripts/zeta");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("Dockerfile"), "FROM scratch\nCOPY run /run\n").unwrap();
    std::fs::write(fresh.join("run"), "zeta\n").unwrap();
    let aws = CountingProxy::start(&support::moto_url()).await;
    let registry = CountingProxy::start(&format!("http://{}", support::registry())).await;
    // The engine tags what it pushes with the proxy's address, which the servers' clean-up
    // does not know.
    let _pushed = support::RemovesImages(format!("{}/{project}-", registry.host()));

    let run = deploy(root, &project, COMMIT_1, &aws, &registry).await;
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(run.names("built"), ["zeta"]);
    assert_eq!(run.names("new"), ["zeta"]);
    assert_eq!(run.names("reused").len(), 30);
    let writes: Vec<String> = aws
        .requests()
        .iter()
        .filter(|r| r.writes())
        .filter_map(|r| r.operation().map(str::to_string))
        .collect();
    assert_eq!(
        writes,
        ["CreateRepository", "PutLifecyclePolicy"],
        "{:?}",
        aws.counts()
    );
    let calls = aws.counts();
    assert!(
        calls.get("DescribeRepositories").is_some_and(|n| *n >= 2),
        "a describe, then the listing: {calls:?}"
    );
    // The engine pushes the new image, only that one; the action itself writes two manifests:
    // the commit tag on it, and the build cache's tag.
    let requests = registry.requests();
    let (ours, engine): (Vec<_>, Vec<_>) = requests
        .iter()
        .filter(|r| r.writes())
        .partition(|r| r.user_agent.starts_with("cdc-deploy/"));
    assert_eq!(
        ours.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        [
            format!("/v2/{project}-zeta/manifests/sha-{COMMIT_1}"),
            format!("/v2/{project}-zeta/manifests/cache-image")
        ],
        "{ours:?}"
    );
    assert!(!engine.is_empty(), "the engine pushed through the proxy");
    assert!(
        engine
            .iter()
            .all(|r| r.path.starts_with(&format!("/v2/{project}-zeta/"))),
        "{engine:?}"
    );
}
