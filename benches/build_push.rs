//! Building and pushing a generated 1 GiB build context with `cdc-deploy deploy`, run as the
//! action runs it: the release binary against moto, the Docker engine and the local registry.
//! Prints the wall time, the throughput and the binary's peak resident memory (from `wait4`);
//! asserts nothing about time.
//!
//! Run it with `scripts/bench.sh`, which starts the servers; `CDC_BENCH_MIB` changes the size.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;
use std::time::Instant;

mod common;

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run this benchmark with `scripts/bench.sh`, which starts the servers it needs")
    })
}

/// Wait for `pid` and return its exit status and peak resident set size in KiB.
fn wait_with_rusage(pid: u32) -> (std::process::ExitStatus, u64) {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped; both pointers are to live locals.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(r, pid as libc::pid_t, "wait4 failed");
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as u64,
    )
}

fn main() {
    let moto = required("CDC_TEST_MOTO_URL");
    let registry = required("CDC_TEST_REGISTRY");
    let mib: u64 = std::env::var("CDC_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let consumer = dir.path().join("consumer_scripts/bulk");
    std::fs::create_dir_all(&consumer).unwrap();
    let t = Instant::now();
    common::generate(&consumer, mib);
    eprintln!("generated {mib} MiB in {:.1?}", t.elapsed());
    let project = format!("bench{}", std::process::id());

    let t = Instant::now();
    // Reaped by `wait4` below, which also reports its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_cdc-deploy"))
        .args([
            "deploy",
            "--project-name",
            &project,
            "--commit",
            "0123456789abcdef",
        ])
        .arg("--registry-host")
        .arg(format!("http://{registry}"))
        .arg("--workspace")
        .arg(dir.path())
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let (status, peak_kib) = wait_with_rusage(child.id());
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success(), "deploy failed: {status}");
    let bytes = (mib << 20) as f64 + 2000.0 * 12.0;
    println!(
        "build + push of {mib} MiB: {secs:.1} s = {:.0} MiB/s end to end; cdc-deploy peak RSS {:.1} MiB",
        bytes / 1048576.0 / secs,
        peak_kib as f64 / 1024.0
    );
    // The engine keeps the image; this benchmark's 1 GiB layer is removed again.
    let image = format!("{registry}/{project}-bulk");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' '{image}' | xargs -r docker rmi -f >/dev/null"
        ))
        .status();
}
