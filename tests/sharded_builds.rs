//! Builds across runners, end to end through the binary against moto's ECR API, the real Docker
//! engine and the registry: a plan's `matrix` output covers every consumer to build exactly
//! once, each `mode: build` shard builds and pushes its group and nothing else, and the deploy
//! after the shards builds nothing they pushed, and builds (naming it) what a shard left missing.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::{base_image, run_action, unique, write, Run};

const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

/// A busybox consumer whose build context holds `kib` KiB of data.
fn consumer(root: &Path, name: &str, kib: usize, version: u32) {
    write(
        root,
        &format!("consumer_scripts/{name}/Dockerfile"),
        &format!(
            "FROM {}\nCOPY app /app\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n",
            base_image()
        ),
    );
    write(
        root,
        &format!("consumer_scripts/{name}/app/run.sh"),
        &format!("echo {name} v{version}\n"),
    );
    write(
        root,
        &format!("consumer_scripts/{name}/app/data"),
        &"x".repeat(kib * 1024),
    );
}

fn step(root: &Path, inputs: &[(&str, &str)]) -> Run {
    let r = run_action(root, inputs);
    assert!(r.code == 0, "{inputs:?}: {}", r.describe());
    r
}

/// The groups of the plan's `matrix` output.
fn matrix(plan: &Run) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_str(&plan.outputs["matrix"]).unwrap();
    m["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["consumers"].as_str().unwrap().to_string())
        .collect()
}

fn set(names: Vec<String>) -> BTreeSet<String> {
    names.into_iter().collect()
}

fn split(group: &str) -> BTreeSet<String> {
    group.split(',').map(str::to_string).collect()
}

#[test]
fn shards_build_their_groups_once_and_the_deploy_builds_only_what_a_shard_left_missing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let project = unique("shard");
    let fleet = [("a", 64), ("b", 48), ("c", 32), ("d", 16), ("e", 8)];
    for (name, kib) in fleet {
        consumer(root, name, kib, 1);
    }
    let common = |mode: &'static str, commit: &'static str| {
        vec![
            ("mode", mode),
            ("project-name", project.as_str()),
            ("commit", commit),
        ]
    };

    // The plan: every consumer to build, in two groups, each exactly once.
    let mut inputs = common("plan", COMMIT_1);
    inputs.push(("shards", "2"));
    let plan = step(root, &inputs);
    let groups = matrix(&plan);
    assert_eq!(groups.len(), 2, "{}", plan.outputs["matrix"]);
    let all: Vec<String> = groups.iter().flat_map(|g| split(g)).collect();
    assert_eq!(all.len(), fleet.len(), "each once: {groups:?}");
    assert_eq!(set(all), set(plan.names("new")));
    // Balanced by context size (largest first, each into the lighter group): 88 and 80 KiB.
    let kib = |g: &String| -> usize {
        split(g)
            .iter()
            .map(|n| fleet.iter().find(|(f, _)| f == n).unwrap().1)
            .sum()
    };
    let totals: Vec<usize> = groups.iter().map(kib).collect();
    assert!(
        totals.iter().max().unwrap() - totals.iter().min().unwrap() <= 8,
        "{groups:?}: {totals:?}"
    );

    // Each shard builds its group and nothing else, and applies nothing.
    for g in &groups {
        let mut inputs = common("build", COMMIT_1);
        inputs.push(("consumers", g.as_str()));
        let shard = step(root, &inputs);
        assert_eq!(set(shard.names("built")), split(g), "{}", shard.describe());
        assert_eq!(shard.names("deployed"), Vec::<String>::new());
        assert!(!shard.stdout.contains("terraform"), "{}", shard.stdout);
    }

    // The deploy after them builds nothing twice.
    let mut inputs = common("deploy", COMMIT_1);
    inputs.push(("shards", "2"));
    let deploy = step(root, &inputs);
    assert_eq!(
        deploy.names("built"),
        Vec::<String>::new(),
        "{}",
        deploy.describe()
    );
    assert_eq!(deploy.names("reused").len(), fleet.len());
    assert!(
        !deploy.stdout.contains("no build shard pushed"),
        "{}",
        deploy.stdout
    );

    // A change to two consumers; only the first shard runs (the other failed): the deploy
    // builds what it left missing, and says so.
    consumer(root, "a", 64, 2);
    consumer(root, "e", 8, 2);
    let mut inputs = common("plan", COMMIT_2);
    inputs.push(("shards", "2"));
    let plan = step(root, &inputs);
    let groups = matrix(&plan);
    let changed: Vec<String> = groups.iter().flat_map(|g| split(g)).collect();
    assert_eq!(
        set(changed),
        set(vec!["a".into(), "e".into()]),
        "only the changed: {groups:?}"
    );
    let mut inputs = common("build", COMMIT_2);
    inputs.push(("consumers", groups[0].as_str()));
    step(root, &inputs);
    let missing: BTreeSet<String> = groups[1..].iter().flat_map(|g| split(g)).collect();
    let mut inputs = common("deploy", COMMIT_2);
    inputs.push(("shards", "2"));
    let deploy = step(root, &inputs);
    assert_eq!(set(deploy.names("built")), missing, "{}", deploy.describe());
    for name in &missing {
        assert!(
            deploy
                .stdout
                .contains(&format!("`{name}`: no build shard pushed its image")),
            "{}",
            deploy.stdout
        );
    }

    // A build without `consumers` is refused before anything starts.
    let refused = run_action(root, &common("build", COMMIT_2));
    assert_eq!(refused.code, 2, "{}", refused.describe());
    assert!(
        refused.stdout.contains("a build needs `consumers`"),
        "{}",
        refused.stdout
    );
}
