//! The soak run (`scripts/soak.sh`; not in CI): 50 consumers, 20 deploys in a row through the
//! binary against the local stack (moto's ECR and S3 for the state, the registry, the Docker
//! engine, the real Terraform on the rollout fixture root, the scripted ECS), each with random
//! small changes (code, settings), some with a random failure (a Dockerfile that fails, a rollout
//! the circuit breaker fails), and one pair of deploys at once. After each run the report must
//! agree with what the servers hold: every consumer it calls deployed runs, in the state, the
//! image it names, which the registry holds; every failed one keeps what it ran. Nothing may be
//! left behind: no file in the run's temporary folder but the work folder's Terraform caches
//! (kept on purpose), no stopped container; the engine's images of the project are counted (the
//! built images stay in the engine, as on a runner). Prints
//! figures; fails on a disagreement. `CDC_SOAK_RUNS`, `CDC_SOAK_CONSUMERS` and `CDC_SOAK_SEED`
//! change the size and the draw.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use cdc_deploy::clients::registry::Registry as _;
use support::ecs_sim::{Behaviour, EcsSimulator};
use support::terraform::{consumer, rollout_workspace, Backend};
use support::{docker, unique, write, Run};

/// A small deterministic random source (xorshift), seeded.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deploy through the binary as the action runs it, watching the rollouts on the scripted ECS;
/// also the files its temporary folder still holds besides the runner's own two.
fn deploy(
    ws: &Path,
    project: &str,
    backend: &Backend,
    sim: &str,
    commit: &str,
) -> (Run, Vec<String>) {
    let temp = tempfile::tempdir().unwrap();
    let r = support::terraform::run_env(
        ws,
        project,
        backend,
        "deploy",
        commit,
        &[("wait", "true"), ("wait-timeout", "2m")],
        &[
            ("AWS_ENDPOINT_URL_ECS", sim.to_string()),
            ("CDC_TEST_ECS_SIM", sim.to_string()),
            ("TMPDIR", temp.path().display().to_string()),
            ("RUNNER_TEMP", temp.path().display().to_string()),
        ],
    );
    // The work folder `cdc-deploy/` keeps Terraform's data directory and plugin cache on
    // purpose (the runner empties its temporary folder after the job); a run's own folder
    // (`run-…`: the variables, the saved plan) must be gone, and nothing else may be there.
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut left: Vec<String> = names(temp.path())
        .into_iter()
        .filter(|n| n != "cdc-deploy")
        .collect();
    left.extend(
        names(&temp.path().join("cdc-deploy"))
            .into_iter()
            .filter(|n| n.starts_with("run-"))
            .map(|n| format!("cdc-deploy/{n}")),
    );
    (r, left)
}

/// What the state applies, name → image (nothing before the first apply).
async fn applied(backend: &Backend) -> BTreeMap<String, String> {
    match backend.state().await {
        Some(_) => backend.applied_images().await,
        None => BTreeMap::new(),
    }
}

/// What a run says against what the servers hold; the disagreements.
async fn disagreements(
    r: &Run,
    backend: &Backend,
    before: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let applied = applied(backend).await;
    let reported: BTreeMap<String, String> =
        serde_json::from_str(r.outputs.get("images").map_or("{}", String::as_str))
            .unwrap_or_default();
    for name in r.names("deployed") {
        match (reported.get(&name), applied.get(&name)) {
            (Some(said), Some(runs)) if said == runs => {}
            (said, runs) => out.push(format!(
                "`{name}` deployed: report {said:?}, state {runs:?}"
            )),
        }
    }
    for name in r.names("failed") {
        if applied.get(&name) != before.get(&name) {
            out.push(format!(
                "`{name}` failed but its applied image moved: {:?} → {:?}",
                before.get(&name),
                applied.get(&name)
            ));
        }
    }
    let registry = support::registry_client();
    for (name, image) in &applied {
        let (repo_part, digest) = image.split_once('@').unwrap();
        let repo = repo_part.split_once('/').unwrap().1;
        if registry
            .manifest(repo, digest)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            out.push(format!(
                "`{name}` runs {image}, which the registry does not hold"
            ));
        }
    }
    out
}

fn containers() -> usize {
    docker(&["ps", "-aq"]).lines().count()
}

fn project_images(project: &str) -> usize {
    docker(&[
        "images",
        "-q",
        "--filter",
        &format!("reference=*/{project}-*"),
    ])
    .lines()
    .count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs = env_or("CDC_SOAK_RUNS", 20);
    let n = env_or("CDC_SOAK_CONSUMERS", 50);
    let mut draw = Draw(env_or("CDC_SOAK_SEED", 20261205) as u64 | 1);
    let sim = EcsSimulator::start().await;
    let backend = Backend::new().await;
    let ws = rollout_workspace();
    let root = ws.path().to_path_buf();
    let project = unique("soak");
    let names: Vec<String> = (0..n).map(|i| format!("c{i:02}")).collect();
    for name in &names {
        consumer(&root, name, 256);
        sim.behave(name, Behaviour::CompletesAfter(1));
    }
    let containers_before = containers();
    let started = Instant::now();
    let mut broken: Option<String> = None;
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    for run in 1..=runs {
        // Last run's broken Dockerfile is mended; a few consumers change; maybe something fails.
        if let Some(b) = broken.take() {
            write(
                &root,
                &format!("consumer_scripts/{b}/Dockerfile"),
                &dockerfile(),
            );
        }
        let mut changed = Vec::new();
        for _ in 0..=draw.below(4) {
            let name = names[draw.below(n)].clone();
            if draw.below(3) == 0 {
                let cpu = [256, 512][draw.below(2)];
                let memory = if cpu == 256 { 512 } else { 1024 };
                write(
                    &root,
                    &format!("consumer_scripts/{name}/consumer.toml"),
                    &format!("cpu = {cpu}\nmemory = {memory}\n[environment]\nTOPIC = \"{name}.events\"\n"),
                );
            } else {
                write(
                    &root,
                    &format!("consumer_scripts/{name}/app/run.sh"),
                    &format!("echo {name} run {run}\n"),
                );
            }
            changed.push(name);
        }
        let failure = match draw.below(4) {
            0 => {
                let b = changed[0].clone();
                write(
                    &root,
                    &format!("consumer_scripts/{b}/Dockerfile"),
                    &format!("FROM {}\nRUN exit 3\n", support::base_image()),
                );
                broken = Some(b.clone());
                format!("build of {b} fails")
            }
            1 => {
                let b = changed[changed.len() - 1].clone();
                sim.behave(&b, Behaviour::FailsAfter(1));
                format!("rollout of {b} fails")
            }
            _ => "none".to_string(),
        };
        let before = applied(&backend).await;
        let commit = format!("{:040x}", run);
        let t = Instant::now();
        let (r, left) = if run == runs / 2 {
            // A pair at once: the second deploy starts while the first runs.
            let (w1, p1, b1, s1, c1) = (
                root.clone(),
                project.clone(),
                backend.clone(),
                sim.url(),
                commit.clone(),
            );
            let first = std::thread::spawn(move || deploy(&w1, &p1, &b1, &s1, &c1));
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let (second, left2) = deploy(&root, &project, &backend, &sim.url(), &commit);
            let (first, left1) = first.join().unwrap();
            let stale = |r: &Run| {
                r.everything()
                    .contains("another deploy applied while this one planned")
            };
            lines.push(format!(
                "run {run} (a pair at once): first exit {} {}, second exit {} {}",
                first.code,
                if stale(&first) {
                    "(stale plan, said so)"
                } else {
                    ""
                },
                second.code,
                if stale(&second) {
                    "(stale plan, said so)"
                } else {
                    ""
                },
            ));
            for r in [&first, &second] {
                if r.code != 0 && !stale(r) && r.names("failed").is_empty() {
                    problems.push(format!(
                        "run {run}: a deploy of the pair failed without saying why: {}",
                        r.describe()
                    ));
                }
            }
            (second, [left1, left2].concat())
        } else {
            deploy(&root, &project, &backend, &sim.url(), &commit)
        };
        let secs = t.elapsed().as_secs_f64();
        for name in &names {
            sim.behave(name, Behaviour::CompletesAfter(1));
        }
        let mut wrong = disagreements(&r, &backend, &before).await;
        if !left.is_empty() {
            wrong.push(format!("left in the temporary folder: {left:?}"));
        }
        if r.code != 0
            && r.names("failed").is_empty()
            && !r.everything().contains("another deploy applied")
        {
            wrong.push(format!(
                "exit {} with nothing failed: {}",
                r.code,
                r.describe()
            ));
        }
        lines.push(format!(
            "run {run:2}: {secs:5.1} s, exit {}, {} deployed, {} failed, failure drawn: {failure}{}",
            r.code,
            r.names("deployed").len(),
            r.names("failed").len(),
            if wrong.is_empty() { String::new() } else { format!(" — {} disagreement(s)", wrong.len()) }
        ));
        problems.extend(wrong.into_iter().map(|w| format!("run {run}: {w}")));
    }
    let total = started.elapsed().as_secs_f64();
    for l in &lines {
        println!("soak: {l}");
    }
    let stopped = containers().saturating_sub(containers_before);
    println!(
        "soak: {runs} deploys of {n} consumers in {total:.0} s ({:.1} s a deploy); {stopped} container(s) left; {} image(s) of the project in the engine",
        total / runs as f64,
        project_images(&project)
    );
    if stopped > 0 {
        problems.push(format!("{stopped} container(s) left in the engine"));
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("soak: {p}");
        }
        std::process::exit(1);
    }
    println!("soak: the report agreed with the servers after every run");
}

fn dockerfile() -> String {
    format!(
        "FROM {}\nCOPY app /app\nUSER 10001\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n",
        support::base_image()
    )
}
