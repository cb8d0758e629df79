//! Warm builds on a cold engine, end to end: the binary run as the action against moto's ECR API,
//! the real Docker engine and the distribution registry. A first deploy leaves each consumer's
//! cache in the registry; then the engine is made cold (the project's images and its base image
//! removed, BuildKit's cache pruned) and a code-only change is deployed: the dependency step must
//! come from the registry's cache, for a single-stage and a multi-stage Dockerfile, with BuildKit
//! and with the classic builder.

mod support;

use std::path::Path;
use std::time::Duration;

use cdc_deploy::clients::registry::Registry as _;
use support::{docker, run_action_env, unique, write, Run};

const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";
const COMMIT_3: &str = "3333333333333333333333333333333333333333";
/// The dependency step's time: `pip install`, a Maven resolve, a Debezium download.
const DEPENDENCY_SECS: u64 = 15;

/// `single`: the dependency step and the code in one stage. `multi`: the dependencies installed
/// in a stage of their own (as the example consumers do) and copied into the runtime stage.
fn consumers(root: &Path, base: &str) {
    write(
        root,
        "consumer_scripts/single/Dockerfile",
        &format!(
            "FROM {base}\nRUN sleep {DEPENDENCY_SECS} && echo installed > /deps\nCOPY app /app\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n"
        ),
    );
    write(
        root,
        "consumer_scripts/multi/Dockerfile",
        &format!(
            "FROM {base} AS deps\nRUN sleep {DEPENDENCY_SECS} && mkdir /deps && echo installed > /deps/lib\n\nFROM {base}\nCOPY --from=deps /deps /deps\nCOPY app /app\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n"
        ),
    );
    code(root, "v1");
}

fn code(root: &Path, version: &str) {
    for name in ["single", "multi"] {
        write(
            root,
            &format!("consumer_scripts/{name}/app/run.sh"),
            &format!("echo {name} {version}\n"),
        );
    }
}

/// The build's own account of its cache, `cache: 3 of 4 steps came from the cache`, as
/// `(cached, steps)` per line the consumer's group printed, in order.
fn cache_lines(run: &Run, consumer: &str) -> Vec<(String, usize, usize)> {
    let group = run
        .stdout
        .split("::group::")
        .find(|g| g.starts_with(&format!("build and push {consumer} ")))
        .unwrap_or_else(|| panic!("no build group for {consumer}:\n{}", run.describe()));
    group
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cache: ")?;
            let (label, counts) = match rest.split_once(": ") {
                Some((label, counts)) => (label.to_string(), counts),
                None => (String::new(), rest),
            };
            let (cached, rest) = counts.split_once(" of ")?;
            let steps = rest.split_whitespace().next()?;
            Some((label, cached.parse().ok()?, steps.parse().ok()?))
        })
        .collect()
}

fn deploy(root: &Path, project: &str, commit: &str, env: &[(&str, String)]) -> Run {
    let run = run_action_env(
        root,
        &[
            ("mode", "deploy"),
            ("project-name", project),
            ("commit", commit),
            ("build-concurrency", "2"),
        ],
        env,
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    let mut built = run.names("built");
    built.sort();
    assert_eq!(built, ["multi", "single"], "{}", run.describe());
    run
}

fn image_runs(run: &Run, consumer: &str) -> String {
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&run.outputs["images"]).unwrap();
    docker(&["run", "--rm", &images[consumer]])
}

async fn a_cold_engine_rebuilds_only_what_changed(builder: &str, env: &[(&str, String)]) {
    let registry = support::registry();
    let project = unique(&format!("warm{builder}"));
    let _cleanup = support::RemovesImages(format!("{registry}/{project}-"));
    let base = format!("{registry}/{project}-base:1");
    support::push_base_image(&base, &project);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    consumers(root, &base);

    let first = deploy(root, &project, COMMIT_1, env);
    let registry_client = support::registry_client();
    for consumer in ["single", "multi"] {
        let repo = format!("{project}-{consumer}");
        let built = registry_client
            .manifest(&repo, &format!("sha-{COMMIT_1}"))
            .await
            .unwrap()
            .expect("the commit's image");
        let cache = registry_client
            .manifest(&repo, "cache-image")
            .await
            .unwrap()
            .expect("the cache tag");
        assert_eq!(
            cache.digest, built.digest,
            "{consumer}: the cache is the image built"
        );
        assert_eq!(
            image_runs(&first, consumer).trim(),
            format!("{consumer} v1")
        );
    }
    let stage = registry_client
        .manifest(&format!("{project}-multi"), "cache-stage-deps")
        .await
        .unwrap();
    assert!(stage.is_some(), "the dependency stage's cache is pushed");
    assert!(
        registry_client
            .manifest(&format!("{project}-single"), "cache-stage-deps")
            .await
            .unwrap()
            .is_none(),
        "a single stage keeps no stage cache"
    );

    support::make_cold(&project);
    code(root, "v2");
    let second = deploy(root, &project, COMMIT_2, env);
    for consumer in ["single", "multi"] {
        let took = support::build_time(&second, consumer);
        assert!(
            took < Duration::from_secs(DEPENDENCY_SECS * 2 / 3),
            "{builder} {consumer}: the cold rebuild took {took:?}, the dependency step alone takes {DEPENDENCY_SECS} s:\n{}",
            second.describe()
        );
        // The change is in the image: the cache did not hide it.
        assert_eq!(
            image_runs(&second, consumer).trim(),
            format!("{consumer} v2")
        );
    }
    // The log says what came from the cache: the dependency step did, the code did not.
    let single = cache_lines(&second, "single");
    assert_eq!(single.len(), 1, "{single:?}");
    let (_, cached, steps) = &single[0];
    assert!(
        *cached >= 1 && cached < steps,
        "{single:?}\n{}",
        second.describe()
    );
    let multi = cache_lines(&second, "multi");
    assert_eq!(multi.len(), 2, "{multi:?}\n{}", second.describe());
    assert_eq!(multi[0].0, "stage `deps`");
    assert!(
        multi[0].2 >= 1 && multi[0].1 == multi[0].2,
        "the whole stage came from the cache: {multi:?}"
    );
    assert!(multi[1].1 >= 1 && multi[1].1 < multi[1].2, "{multi:?}");
    // On the first build, nothing was cached.
    let cold_first = cache_lines(&first, "single");
    assert_eq!(cold_first[0].1, 0, "{cold_first:?}\n{}", first.describe());

    // The cache is not part of the fingerprint: without it, nothing is rebuilt.
    let without = |commit| {
        run_action_env(
            root,
            &[
                ("mode", "deploy"),
                ("project-name", &project),
                ("commit", commit),
                ("build-cache", "false"),
            ],
            env,
        )
    };
    let same = without(COMMIT_2);
    assert_eq!(same.code, 0, "{}", same.describe());
    assert!(same.names("built").is_empty(), "{}", same.describe());
    // And a build without it takes no cache, builds no stage apart, moves no cache tag.
    let cached_before = registry_client
        .manifest(&format!("{project}-multi"), "cache-image")
        .await
        .unwrap()
        .unwrap();
    code(root, "v3");
    let third = without(COMMIT_3);
    assert_eq!(third.code, 0, "{}", third.describe());
    assert_eq!(third.names("built").len(), 2, "{}", third.describe());
    assert!(
        !third.stdout.contains("cache-image") && !third.stdout.contains("building stage"),
        "{}",
        third.describe()
    );
    let cached_after = registry_client
        .manifest(&format!("{project}-multi"), "cache-image")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached_after.digest, cached_before.digest);
    assert_eq!(image_runs(&third, "multi").trim(), "multi v3");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_buildkit_a_cold_engine_reuses_the_registrys_cache() {
    a_cold_engine_rebuilds_only_what_changed("bk", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_classic_builder_a_cold_engine_pulls_the_cache_first() {
    a_cold_engine_rebuilds_only_what_changed("classic", &[("DOCKER_BUILDKIT", "0".into())]).await;
}
