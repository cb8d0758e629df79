//! The action's image: its size as the engine stores it and as the runner pulls it (the layers
//! gzip-compressed), and how long the action takes to start: from `exec` of the binary, and from
//! `docker run` of the image, to the first line it prints, for `plan --offline` over the
//! repository's own `consumer_scripts/`. The image is the `Dockerfile`'s runtime stage over
//! `CDC_IMAGE_BIN` (scripts/bench.sh builds it with the `dist` profile, as the Dockerfile does),
//! or the image `CDC_TEST_ACTION_IMAGE` names (built from the Dockerfile itself). Prints figures;
//! asserts nothing about them.

#[path = "../tests/support/image.rs"]
mod image;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes of `sh -c cmd`'s standard output, counted, not kept.
fn counted(cmd: &str) -> u64 {
    let mut child = Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert!(child.wait().unwrap().success(), "{cmd}");
    total
}

/// Time from spawning `cmd` to the first byte it writes to stdout or stderr.
fn first_line(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for mut stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).unwrap_or(0) == 1 {
                let _ = tx.send(Instant::now());
            }
            // Drain the rest so the program never blocks on a full pipe.
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        });
    }
    drop(tx);
    let first = rx.recv().expect("the program printed something");
    let status = child.wait().unwrap();
    assert!(status.success(), "the run failed: {status}");
    first - started
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: median {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

fn main() {
    let Ok(bin) = std::env::var("CDC_IMAGE_BIN") else {
        eprintln!(
            "CDC_IMAGE_BIN is not set: the binary the image carries is needed; run scripts/bench.sh --bench action_image, which builds it with the dist profile"
        );
        std::process::exit(1);
    };
    let bin = PathBuf::from(bin);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary_size = std::fs::metadata(&bin).unwrap().len();
    // The image built from the Dockerfile itself when CDC_TEST_ACTION_IMAGE names one.
    let image = image::action_image(&bin);

    let inspect = image::docker(&["image", "inspect", "--format", "{{.Size}}", &image.tag]);
    let stored: u64 = String::from_utf8_lossy(&inspect.stdout)
        .trim()
        .parse()
        .unwrap();
    let pulled = counted(&format!("docker save {} | gzip -6", image.tag));
    let binary_gz = counted(&format!("gzip -6 -c '{}'", bin.display()));
    println!(
        "binary: {} ({} gzip-compressed)",
        mib(binary_size),
        mib(binary_gz)
    );
    println!(
        "image: {} stored, {} compressed as the runner pulls it",
        mib(stored),
        mib(pulled)
    );

    let workspace = repo.to_str().unwrap();
    let exec_times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            first_line(
                Command::new(&bin)
                    .args(["plan", "--offline", "--workspace", workspace])
                    .env_remove("GITHUB_ACTIONS"),
            )
        })
        .collect();
    summary("start-up, exec to first line", exec_times);
    let run_times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            first_line(Command::new("docker").args([
                "run",
                "--rm",
                "-v",
                &format!("{workspace}:/github/workspace:ro"),
                &image.tag,
                "plan",
                "--offline",
            ]))
        })
        .collect();
    summary("start-up, docker run to first line", run_times);
}
