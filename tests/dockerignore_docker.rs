//! The build context holds exactly the files `docker build` sends: for each `.dockerignore`, the
//! files the context scan keeps are the files the Docker engine's classic builder copies into an
//! image (`COPY . /ctx`, then listed). The classic builder skips an excluded folder without
//! looking inside unless an exception names a path in it, as BuildKit does wherever exceptions
//! are plain paths: the cases here keep to those.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use cdc_deploy::context::{BuildContext, EntryKind};
use support::write;

/// The files `docker build` (classic builder) sends for the context at `root`.
fn sent_by_docker(root: &Path) -> BTreeSet<String> {
    write(
        root,
        "Dockerfile",
        &format!(
            "FROM {}\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sed 's|^\\./|SENT: |'\n",
            support::base_image()
        ),
    );
    let out = std::process::Command::new("docker")
        .args([
            "build",
            "--no-cache",
            "--rm",
            "--force-rm",
            "-t",
            "cdc-test/context-probe:1",
            ".",
        ])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker build: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("SENT: "))
        .map(str::to_string)
        .collect()
}

fn kept_by_scan(root: &Path) -> BTreeSet<String> {
    BuildContext::scan(root, "Dockerfile")
        .unwrap()
        .entries
        .into_iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .map(|e| e.path)
        .collect()
}

#[test]
fn the_context_holds_exactly_what_docker_sends() {
    let files = [
        "src/app.py",
        "src/secrets/key.pem",
        "src/lib/secrets/token.txt",
        "secrets/keep.txt",
        "secrets/other.txt",
        "build/out/app.bin",
        "build/tmp/x.o",
        "notes.md",
    ];
    let cases = [
        // An exception that re-includes a parent of an excluded folder: the folder stays out.
        "**/secrets\n!src\n",
        "secrets\n!secrets/keep.txt\n",
        "build\n!build/out/**\n",
        "build\n!build/out\n*.md\n",
        "**/secrets\n",
    ];
    for ignore in cases {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            write(dir.path(), f, "x\n");
        }
        write(dir.path(), ".dockerignore", ignore);
        let docker = sent_by_docker(dir.path());
        let scan = kept_by_scan(dir.path());
        assert_eq!(scan, docker, "`.dockerignore`:\n{ignore}");
    }
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", "cdc-test/context-probe:1"])
        .output();
    // The case that once leaked a key into the image.
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        write(dir.path(), f, "x\n");
    }
    write(dir.path(), ".dockerignore", "**/secrets\n!src\n");
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    let scan = kept_by_scan(dir.path());
    assert!(!scan.contains("src/secrets/key.pem"), "{scan:?}");
    assert!(scan.contains("src/app.py"), "{scan:?}");
}
