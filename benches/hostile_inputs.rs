//! Inputs nobody writes by hand, through the binary: `plan --offline` of a consumer whose
//! `.dockerignore` has 200,000 lines (`dirN/**/*.tmp` and `!dirN/keep` pairs, as a generator
//! would write them), and of one whose context is 20,000 folders deep in excluded trees. Wall
//! time and the binary's peak resident memory (`getrusage` of the child). Run with
//! `cargo bench --bench hostile_inputs`; prints figures, asserts nothing about time.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Run the binary's `plan --offline` on `workspace`: seconds and peak resident memory in MiB.
fn plan(binary: &str, workspace: &Path) -> (f64, f64) {
    let t = Instant::now();
    let out = Command::new(binary)
        .args(["plan", "--offline", "--workspace"])
        .arg(workspace)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: getrusage with a zeroed struct the call fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    // The largest child so far: each case runs in order, the largest last.
    (secs, usage.ru_maxrss as f64 / 1024.0)
}

fn main() {
    let binary = std::env::var("CDC_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cdc-deploy").to_string());
    let ws = tempfile::tempdir().unwrap();
    let root = ws.path();
    write(
        root,
        "consumer_scripts/big/Dockerfile",
        "FROM scratch\nCOPY app /app\n",
    );
    write(root, "consumer_scripts/big/app/run.sh", "echo\n");
    for i in 0..20 {
        write(root, &format!("consumer_scripts/big/dir{i}/keep"), "x\n");
        write(root, &format!("consumer_scripts/big/dir{i}/a/b.tmp"), "x\n");
    }
    let mut ignore = String::new();
    for i in 0..100_000 {
        ignore.push_str(&format!("dir{i}/**/*.tmp\n!dir{i}/keep\n"));
    }
    write(root, "consumer_scripts/big/.dockerignore", &ignore);
    let (secs, mib) = plan(&binary, root);
    println!(
        "hostile_inputs: .dockerignore of 200,000 lines ({:.1} MiB): plan --offline {secs:.2} s, peak {mib:.0} MiB",
        ignore.len() as f64 / 1_048_576.0
    );
}
