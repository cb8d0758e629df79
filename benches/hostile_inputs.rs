//! Inputs nobody writes by hand, through the binary: `plan --offline` of a consumer whose
//! `.dockerignore` has 200,000 lines (`dirN/**/*.tmp` and `!dirN/keep` pairs, as a generator
//! would write them), a `consumer.toml` of 64 MiB and one nested a million deep, a Dockerfile of
//! 500,001 lines, a push event of 100 MiB and one nested a million deep. Wall time and the
//! binary's peak resident memory (`getrusage` of the child, each case in a process of its own),
//! marked when over the 512 MiB any input may take. Run with `cargo bench --bench
//! hostile_inputs`; prints figures, asserts nothing about time.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Run the binary's `plan --offline` on `workspace` (with `env`): seconds, peak resident memory
/// in MiB (`getrusage` of the children: each case runs in a process of its own), and what it
/// printed.
fn plan(binary: &str, workspace: &Path, env: &[(&str, String)]) -> (f64, f64, String) {
    let t = Instant::now();
    let out = Command::new(binary)
        .args(["plan", "--offline", "--workspace"])
        .arg(workspace)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.code().is_some(),
        "ended by a signal: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: getrusage with a zeroed struct the call fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, usage.ru_maxrss as f64 / 1024.0, printed)
}

/// A workspace with one consumer `big`, its Dockerfile `dockerfile`.
fn workspace(dockerfile: &str) -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    write(ws.path(), "consumer_scripts/big/Dockerfile", dockerfile);
    write(ws.path(), "consumer_scripts/big/app/run.sh", "echo\n");
    ws
}

const CASES: [&str; 6] = [
    "dockerignore",
    "consumer-toml-huge",
    "consumer-toml-nested",
    "dockerfile-huge",
    "event-huge",
    "event-nested",
];

/// One case, in this process; prints its line.
fn case(binary: &str, name: &str) {
    let plain = "FROM scratch\nCOPY app /app\n";
    let ws = workspace(plain);
    let root = ws.path();
    let mut env: Vec<(&str, String)> = Vec::new();
    let (what, size, expect): (&str, usize, Option<&str>) = match name {
        "dockerignore" => {
            for i in 0..20 {
                write(root, &format!("consumer_scripts/big/dir{i}/keep"), "x\n");
                write(root, &format!("consumer_scripts/big/dir{i}/a/b.tmp"), "x\n");
            }
            let mut ignore = String::new();
            for i in 0..100_000 {
                ignore.push_str(&format!("dir{i}/**/*.tmp\n!dir{i}/keep\n"));
            }
            write(root, "consumer_scripts/big/.dockerignore", &ignore);
            (".dockerignore of 200,000 lines", ignore.len(), None)
        }
        "consumer-toml-huge" => {
            let mut text = String::from("cpu = 256\nmemory = 512\n[environment]\n");
            for i in 0..2_000 {
                text.push_str(&format!("TOPIC_{i} = \"orders.events.{i}\"\n"));
            }
            while text.len() < 64 << 20 {
                text.push_str("# a generated comment line, kept to make the file large\n");
            }
            write(root, "consumer_scripts/big/consumer.toml", &text);
            (
                "consumer.toml of 64 MiB (2,000 variables)",
                text.len(),
                None,
            )
        }
        "consumer-toml-nested" => {
            let text = format!("cpu = {}{}\n", "[".repeat(1 << 20), "]".repeat(1 << 20));
            write(root, "consumer_scripts/big/consumer.toml", &text);
            (
                "consumer.toml nested 1,048,576 deep",
                text.len(),
                Some("nested too deeply"),
            )
        }
        "dockerfile-huge" => {
            let mut text = String::from("FROM scratch\n");
            for i in 0..500_000 {
                text.push_str(&format!("RUN echo step {i}\n"));
            }
            write(root, "consumer_scripts/big/Dockerfile", &text);
            ("Dockerfile of 500,001 lines", text.len(), None)
        }
        "event-huge" => {
            let commit = "{\"id\":\"1111111111111111111111111111111111111111\",\"message\":\"a commit message of some length, as pushes carry\"},";
            let mut commits = String::new();
            while commits.len() < 100 << 20 {
                commits.push_str(commit);
            }
            commits.pop();
            let payload = format!("{{\"ref\":\"refs/heads/main\",\"after\":\"1111111111111111111111111111111111111111\",\"commits\":[{commits}]}}");
            let path = root.join("event.json");
            std::fs::write(&path, &payload).unwrap();
            env.push(("GITHUB_EVENT_NAME", "push".into()));
            env.push(("GITHUB_EVENT_PATH", path.display().to_string()));
            ("push event of 100 MiB", payload.len(), None)
        }
        "event-nested" => {
            let payload = format!("{}{}", "[".repeat(1 << 20), "]".repeat(1 << 20));
            let path = root.join("event.json");
            std::fs::write(&path, &payload).unwrap();
            env.push(("GITHUB_EVENT_NAME", "push".into()));
            env.push(("GITHUB_EVENT_PATH", path.display().to_string()));
            (
                "push event nested 1,048,576 deep",
                payload.len(),
                Some("event.json"),
            )
        }
        other => panic!("no case {other}"),
    };
    let (secs, mib, printed) = plan(binary, root, &env);
    if let Some(e) = expect {
        assert!(printed.contains(e), "{name}: {printed}");
    }
    println!(
        "hostile_inputs: {what} ({:.1} MiB): plan --offline {secs:.2} s, peak {mib:.0} MiB{}",
        size as f64 / 1_048_576.0,
        if mib > 512.0 { "  OVER 512 MiB" } else { "" }
    );
}

fn main() {
    let binary = std::env::var("CDC_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cdc-deploy").to_string());
    if let Ok(name) = std::env::var("CDC_HOSTILE_CASE") {
        return case(&binary, &name);
    }
    // Each case in a process of its own, so each peak is its own.
    for name in CASES {
        let status = Command::new(std::env::current_exe().unwrap())
            .env("CDC_HOSTILE_CASE", name)
            .env("CDC_BENCH_BIN", &binary)
            .status()
            .unwrap();
        assert!(status.success(), "{name}");
    }
}
