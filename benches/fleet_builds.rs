//! Build speed where runners start cold, measured in one run (these machines are noisy: compare
//! figures of the same run). The release binary runs as the action runs it, against moto's ECR
//! API, the machine's Docker engine and the local registry (Terraform off: images only).
//!
//! 1. **Cold rebuild**: a consumer whose dependency step takes 15 s (`RUN sleep 15`, the time of
//!    a `pip install` or a Maven resolve), single-stage and multi-stage (the dependencies in a
//!    stage of their own), is deployed, the engine is made cold (the project's images and its
//!    base image removed, BuildKit's cache pruned: a new runner), a code file changes and it is
//!    deployed again. With `build-cache` on and off, with BuildKit and the classic builder.
//! 2. **Shards**: 40 consumers of 1 to 10 MiB, built by one runner (`build-concurrency: 2`)
//!    against the plan's `matrix` of 4 shards, each shard's `mode: build` run measured on a cold
//!    engine one after the other (one engine cannot be four runners), then the deploy that
//!    builds nothing. The sharded wall time is modelled as plan + the slowest shard + deploy.
//! 3. **First deploy** of 10 and 100 consumers of 5 MiB (`CDC_BENCH_FIRST=10,100`) against the
//!    plain shell loop a team writes without the action: per consumer, an ECR log-in, the
//!    repository made if missing, `docker build` and `docker push` (`benches/shell_loop.sh`).
//!
//! Prints figures; asserts only that each run succeeds. Run it with
//! `scripts/bench.sh --bench fleet_builds`, which starts the servers.
//! `CDC_BENCH_PARTS=rebuild,shards,first` chooses the parts.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{docker, run_action_env, unique, write, Run};

const DEPENDENCY_SECS: u64 = 15;
const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Run the action; panic with its output unless it succeeded. Returns the run and its wall time.
fn action(root: &Path, inputs: &[(&str, &str)], env: &[(&str, String)]) -> (Run, Duration) {
    let t = Instant::now();
    let run = run_action_env(root, inputs, env);
    let took = t.elapsed();
    assert_eq!(run.code, 0, "{}", run.describe());
    (run, took)
}

/// The same for images built on the machine's base image, which stays: the project's images
/// removed by reference, and BuildKit's cache emptied.
fn make_cold_by_reference(prefix: &str) {
    support::remove_images(prefix);
    docker(&["builder", "prune", "--all", "--force"]);
}

fn cache_line(run: &Run, consumer: &str) -> String {
    let group = run
        .stdout
        .split("::group::")
        .find(|g| g.starts_with(&format!("build and push {consumer} ")))
        .unwrap_or_default();
    group
        .lines()
        .filter(|l| l.starts_with("cache: ") && l.contains(" came from the cache"))
        .map(|l| l.trim_start_matches("cache: ").to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn rebuild() {
    let registry = support::registry();
    println!(
        "\n## Cold rebuild after a code-only change, under a {DEPENDENCY_SECS} s dependency step\n"
    );
    println!("| builder | Dockerfile | build-cache | first build | cold rebuild | what came from the cache |");
    println!("|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for (builder, env) in [
        ("BuildKit", vec![]),
        ("classic", vec![("DOCKER_BUILDKIT", "0".to_string())]),
    ] {
        for cache in ["true", "false"] {
            let project = unique("benchwarm");
            let prefix = format!("{registry}/{project}-");
            let _cleanup = support::RemovesImages(prefix.clone());
            let base = format!("{registry}/{project}-base:1");
            support::push_base_image(&base, &project);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            write(
                root,
                "consumer_scripts/single/Dockerfile",
                &format!("FROM {base}\nRUN sleep {DEPENDENCY_SECS} && echo installed > /deps\nCOPY app /app\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n"),
            );
            write(
                root,
                "consumer_scripts/multi/Dockerfile",
                &format!("FROM {base} AS deps\nRUN sleep {DEPENDENCY_SECS} && mkdir /deps && echo installed > /deps/lib\n\nFROM {base}\nCOPY --from=deps /deps /deps\nCOPY app /app\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n"),
            );
            for (name, v) in [("single", "v1"), ("multi", "v1")] {
                write(
                    root,
                    &format!("consumer_scripts/{name}/app/run.sh"),
                    &format!("echo {v}\n"),
                );
            }
            let inputs = |commit: &'static str| {
                vec![
                    ("mode", "deploy"),
                    ("project-name", project.as_str()),
                    ("commit", commit),
                    ("build-cache", cache),
                    // One build at a time: each build's time is its own.
                    ("build-concurrency", "1"),
                ]
            };
            support::make_cold(&project);
            let (first, _) = action(root, &inputs(COMMIT_1), &env);
            support::make_cold(&project);
            for name in ["single", "multi"] {
                write(
                    root,
                    &format!("consumer_scripts/{name}/app/run.sh"),
                    "echo v2\n",
                );
            }
            let (second, _) = action(root, &inputs(COMMIT_2), &env);
            for name in ["single", "multi"] {
                let (a, b) = (
                    support::build_time(&first, name),
                    support::build_time(&second, name),
                );
                println!(
                    "| {builder} | {name}-stage | {cache} | {} | {} | {} |",
                    secs(a),
                    secs(b),
                    cache_line(&second, name)
                );
                results.push(((builder, name, cache), b));
            }
        }
    }
    println!();
    for builder in ["BuildKit", "classic"] {
        for name in ["single", "multi"] {
            let find = |cache| {
                results
                    .iter()
                    .find(|((b, n, c), _)| *b == builder && *n == name && *c == cache)
                    .map(|(_, d)| *d)
                    .unwrap()
            };
            let (on, off) = (find("true"), find("false"));
            println!(
                "{builder}, {name}-stage: the cold rebuild takes {} with the cache, {} without: {:.1}× faster",
                secs(on),
                secs(off),
                off.as_secs_f64() / on.as_secs_f64()
            );
        }
    }
}

/// Pseudo-random bytes, `mib` MiB, into `path`.
fn random_file(path: &Path, mib: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    common::fill_random(&mut w, mib, &mut (seed | 1));
}

/// `n` consumers of `mib(i)` MiB each: a data file and a step that reads it.
fn fleet(root: &Path, n: usize, mib: impl Fn(usize) -> u64) {
    let base = support::base_image();
    for i in 0..n {
        let name = format!("c{i:03}");
        write(
            root,
            &format!("consumer_scripts/{name}/Dockerfile"),
            &format!("FROM {base}\nCOPY data /data\nRUN sha256sum /data/* > /sums\nCMD [\"cat\", \"/sums\"]\n"),
        );
        random_file(
            &root.join(format!("consumer_scripts/{name}/data/blob.bin")),
            mib(i),
            0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
        );
    }
}

fn shards() {
    let registry = support::registry();
    let n = 40;
    let size = |i: usize| 1 + (i as u64 * 7) % 10;
    let total: u64 = (0..n).map(size).sum();
    println!("\n## 4 shards against one runner: {n} consumers of 1 to 10 MiB ({total} MiB)\n");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fleet(root, n, size);

    // One runner.
    let one = unique("benchone");
    let _c1 = support::RemovesImages(format!("{registry}/{one}-"));
    make_cold_by_reference(&format!("{registry}/{one}-"));
    let deploy = |project: &str, env: &[(&str, String)]| {
        action(
            root,
            &[
                ("mode", "deploy"),
                ("project-name", project),
                ("commit", COMMIT_1),
            ],
            env,
        )
    };
    let (run, t_one) = deploy(&one, &[]);
    assert_eq!(run.names("built").len(), n, "{}", run.describe());

    // Plan → 4 shards → deploy.
    let sharded = unique("benchshard");
    let prefix = format!("{registry}/{sharded}-");
    let _c2 = support::RemovesImages(prefix.clone());
    let (plan, t_plan) = action(
        root,
        &[
            ("mode", "plan"),
            ("project-name", &sharded),
            ("commit", COMMIT_1),
            ("shards", "4"),
        ],
        &[],
    );
    let matrix: serde_json::Value = serde_json::from_str(&plan.outputs["matrix"]).unwrap();
    let mut t_shards = Vec::new();
    for shard in matrix["include"].as_array().unwrap() {
        make_cold_by_reference(&prefix);
        let consumers = shard["consumers"].as_str().unwrap();
        let (run, took) = action(
            root,
            &[
                ("mode", "build"),
                ("project-name", &sharded),
                ("commit", COMMIT_1),
                ("consumers", consumers),
            ],
            &[],
        );
        let count = consumers.split(',').count();
        assert_eq!(run.names("built").len(), count, "{}", run.describe());
        let mib: u64 = consumers
            .split(',')
            .map(|c| size(c[1..].parse().unwrap()))
            .sum();
        println!(
            "- shard {}: {count} consumers, {mib} MiB, {}",
            shard["shard"].as_str().unwrap(),
            secs(took)
        );
        t_shards.push(took);
    }
    make_cold_by_reference(&prefix);
    let (run, t_deploy) = deploy(&sharded, &[]);
    assert!(run.names("built").is_empty(), "{}", run.describe());
    let slowest = t_shards.iter().max().copied().unwrap_or_default();
    let modelled = t_plan + slowest + t_deploy;
    println!(
        "\none runner: {}; 4 shards: plan {} + slowest shard {} + deploy (builds nothing) {} = {}: {:.1}× faster",
        secs(t_one),
        secs(t_plan),
        secs(slowest),
        secs(t_deploy),
        secs(modelled),
        t_one.as_secs_f64() / modelled.as_secs_f64()
    );
}

fn first_deploy() {
    let registry = support::registry();
    let sizes: Vec<usize> = std::env::var("CDC_BENCH_FIRST")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let script = format!("{}/benches/shell_loop.sh", env!("CARGO_MANIFEST_DIR"));
    println!("\n## First deploy against the shell loop (consumers of 5 MiB)\n");
    println!("| consumers | shell loop (`docker build` + `docker push`) | action, BuildKit | action, classic builder | loop ÷ action |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fleet(root, n, |_| 5);

        let looped = unique("benchloop");
        let _c0 = support::RemovesImages(format!("{registry}/{looped}-"));
        docker(&["builder", "prune", "--all", "--force"]);
        let t = Instant::now();
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(root.join("consumer_scripts"))
            .env("PROJECT", &looped)
            .env("REGISTRY", &registry)
            .env("AWS_ENDPOINT_URL", support::moto_url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("COMMIT", COMMIT_1)
            .output()
            .unwrap();
        let t_loop = t.elapsed();
        assert!(
            out.status.success(),
            "the shell loop failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        support::remove_images(&format!("{registry}/{looped}-"));

        let mut times = Vec::new();
        for env in [vec![], vec![("DOCKER_BUILDKIT", "0".to_string())]] {
            let project = unique("benchfirst");
            let _c = support::RemovesImages(format!("{registry}/{project}-"));
            docker(&["builder", "prune", "--all", "--force"]);
            let (run, took) = action(
                root,
                &[
                    ("mode", "deploy"),
                    ("project-name", &project),
                    ("commit", COMMIT_1),
                ],
                &env,
            );
            assert_eq!(run.names("built").len(), n, "{}", run.describe());
            times.push(took);
        }
        println!(
            "| {n} | {} | {} | {} | {:.1}× (BuildKit), {:.1}× (classic) |",
            secs(t_loop),
            secs(times[0]),
            secs(times[1]),
            t_loop.as_secs_f64() / times[0].as_secs_f64(),
            t_loop.as_secs_f64() / times[1].as_secs_f64()
        );
    }
}

fn main() {
    let parts = std::env::var("CDC_BENCH_PARTS").unwrap_or_else(|_| "rebuild,shards,first".into());
    let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
    println!(
        "# fleet_builds (release binary, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if parts.contains(&"rebuild") {
        rebuild();
    }
    if parts.contains(&"shards") {
        shards();
    }
    if parts.contains(&"first") {
        first_deploy();
    }
}
