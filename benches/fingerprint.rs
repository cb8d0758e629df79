//! Fingerprinting a generated 1 GiB build context: wall time, throughput and the process's peak
//! resident memory while hashing. Run with `cargo bench --bench fingerprint`; set
//! `CDC_BENCH_MIB` to change the size. Prints figures; asserts nothing about time.

use std::fs;
use std::time::Instant;

use cdc_deploy::consumers::config::{BuildSettings, Platform};
use cdc_deploy::context::fingerprint::fingerprint;
use cdc_deploy::context::BuildContext;

mod common;

/// Peak resident set size of this process so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reset the peak so that only what follows is measured (Linux `clear_refs`, value 5).
fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let mib: u64 = std::env::var("CDC_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    common::generate(dir.path(), mib);
    eprintln!("generated {mib} MiB in {:.1?}", t.elapsed());
    let build = BuildSettings {
        dockerfile: "Dockerfile".into(),
        target: None,
        args: Default::default(),
    };
    for run in 1..=2 {
        reset_peak_rss();
        let before = peak_rss_kib();
        let t = Instant::now();
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let report = fingerprint(&ctx, &build, Platform::LinuxAmd64).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let peak = peak_rss_kib();
        println!(
            "fingerprint run {run}: {} files, {:.0} MiB in {secs:.2} s = {:.0} MiB/s; peak RSS {:.1} MiB (at start {:.1} MiB); {}",
            report.files,
            report.bytes as f64 / 1048576.0,
            report.bytes as f64 / 1048576.0 / secs,
            peak as f64 / 1024.0,
            before as f64 / 1024.0,
            report.fingerprint.short()
        );
    }
}
