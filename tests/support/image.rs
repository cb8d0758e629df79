//! The action's image as the `Dockerfile`'s runtime stage makes it, assembled here where nothing
//! can be pulled: that stage's instructions read from the file, `FROM` a Debian base made by
//! debootstrap with the packages the stage installs (`CDC_TEST_RUNTIME_BASE`, from
//! `scripts/servers.sh`), over a given `cdc-deploy` binary and the Terraform on `PATH`; or the
//! image `CDC_TEST_ACTION_IMAGE` names, built from the Dockerfile itself. Shared by the
//! end-to-end test and the image benchmark.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
pub fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head.trim_end());
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// The runtime stage of the Dockerfile, as a Dockerfile over a local context: `FROM` the local
/// base, its package installation dropped (the base was made with those packages), and each
/// `COPY --from=STAGE SRC DST` turned into a copy of `from-STAGE/<file name>` from the context.
/// Everything else (labels, files, environment, working directory, entry point) is kept as the
/// Dockerfile says.
pub fn runtime_stage(dockerfile: &str, base: &str) -> (String, Vec<(String, String)>) {
    let all = instructions(dockerfile);
    let last_from = all
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM in the Dockerfile");
    let mut text = format!("FROM {base}\n");
    let mut from_stages = Vec::new();
    for i in &all[last_from + 1..] {
        if i.starts_with("RUN ") && i.contains("apt-get install") {
            continue;
        }
        if let Some(rest) = i.strip_prefix("COPY --from=") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "COPY --from=STAGE SRC DST: {i}");
            let name = Path::new(parts[1]).file_name().unwrap().to_str().unwrap();
            text.push_str(&format!("COPY from-{}/{name} {}\n", parts[0], parts[2]));
            from_stages.push((parts[0].to_string(), name.to_string()));
            continue;
        }
        assert!(
            !i.starts_with("RUN "),
            "the runtime stage runs something this test does not know how to reproduce: {i}"
        );
        text.push_str(i);
        text.push('\n');
    }
    (text, from_stages)
}

/// The action image; removed when dropped if this test built it.
pub struct Image {
    pub tag: String,
    built: bool,
}

impl Image {
    /// An image built elsewhere (`docker build` of the Dockerfile itself), left in place.
    pub fn existing(tag: &str) -> Image {
        let image = Image {
            tag: tag.to_string(),
            built: false,
        };
        image.starts();
        // An image of another commit tests other code: said, not refused (a local image of
        // uncommitted work has the revision it was built from).
        let label = docker(&[
            "image",
            "inspect",
            "--format",
            "{{ index .Config.Labels \"org.opencontainers.image.revision\" }}",
            tag,
        ]);
        let head = Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let revision = String::from_utf8_lossy(&label.stdout).trim().to_string();
        if !head.is_empty() && revision != head {
            eprintln!(
                "note: {tag} was built from revision `{revision}`, not this checkout's {head}: the test runs that image's code"
            );
        }
        image
    }

    /// Whether the engine runs rootless: the container's root is then this user on the host.
    pub fn rootless_engine() -> bool {
        let out = docker(&["info", "--format", "{{ .SecurityOptions }}"]);
        String::from_utf8_lossy(&out.stdout).contains("rootless")
    }

    /// The image's binary starts: a binary that needs a newer C library than the image's
    /// (a host build on a newer system) says so here, not as a failed step later.
    fn starts(&self) {
        let out = docker(&["run", "--rm", &self.tag, "--version"]);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("cdc-deploy "),
            "`docker run {} --version` failed ({}): {}{}",
            self.tag,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if self.built {
            let _ = docker(&["rmi", "-f", &self.tag]);
        }
    }
}

/// The image the end-to-end test runs: `CDC_TEST_ACTION_IMAGE` when it names one (CI builds it
/// from the Dockerfile), else the runtime stage assembled over `binary`.
pub fn action_image(binary: &Path) -> Image {
    match std::env::var("CDC_TEST_ACTION_IMAGE") {
        Ok(tag) if !tag.is_empty() => Image::existing(&tag),
        _ => build_image(binary),
    }
}

pub fn terraform_on_path() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v terraform"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Build the image: the runtime stage over `binary` and the Terraform on `PATH` (the version the
/// Dockerfile pins).
pub fn build_image(binary: &Path) -> Image {
    let base = std::env::var("CDC_TEST_RUNTIME_BASE").unwrap_or_else(|_| {
        panic!("CDC_TEST_RUNTIME_BASE is not set: the Dockerfile's runtime base is needed; run the tests with `scripts/test.sh`, which makes it")
    });
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).unwrap();
    let pinned = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG TERRAFORM_VERSION="))
        .expect("the Dockerfile pins TERRAFORM_VERSION");
    let terraform = terraform_on_path();
    let version = Command::new(&terraform).arg("version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with(&format!("Terraform v{pinned}\n")),
        "the Terraform on PATH is not the Dockerfile's {pinned}: {}",
        String::from_utf8_lossy(&version.stdout)
    );
    let (text, from_stages) = runtime_stage(&dockerfile, &base);
    let ctx = tempfile::tempdir().unwrap();
    for (stage, name) in &from_stages {
        let source = match (stage.as_str(), name.as_str()) {
            ("build", "cdc-deploy") => binary.to_path_buf(),
            ("terraform", "terraform") => terraform.clone(),
            other => panic!("the runtime stage copies {other:?}, which this test does not make"),
        };
        std::fs::create_dir_all(ctx.path().join(format!("from-{stage}"))).unwrap();
        std::fs::copy(&source, ctx.path().join(format!("from-{stage}/{name}"))).unwrap();
    }
    for dir in ["docker"] {
        let dest = ctx.path().join(dir);
        std::fs::create_dir_all(&dest).unwrap();
        for f in std::fs::read_dir(repo_file(dir)).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dest.join(f.file_name())).unwrap();
        }
    }
    std::fs::write(ctx.path().join("Dockerfile"), &text).unwrap();
    let tag = format!(
        "cdc-test/action:{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let ctx_path = ctx.path().to_str().unwrap().to_string();
    let out = docker(&[
        "build",
        "--quiet",
        "--build-arg",
        "VERSION=test",
        "-t",
        &tag,
        &ctx_path,
    ]);
    assert!(
        out.status.success(),
        "docker build of\n{text}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = Image { tag, built: true };
    image.starts();
    image
}
