//! Shared set-up for integration tests against the servers `scripts/test.sh` starts. A missing
//! server fails the test with what to do; nothing is skipped silently.
#![allow(dead_code)]

pub mod ecr_lifecycle;
pub mod ecs_sim;
pub mod engine_proxy;
pub mod fleet;
pub mod github;
pub mod image;
pub mod proxy;
pub mod serve;
pub mod terraform;

use aws_sdk_ecr::config::Credentials;

/// moto's answer to `GetAuthorizationToken`, which the test registry's htpasswd holds.
pub const MOTO_TOKEN_PASSWORD: &str = "123456789012-auth-token";

fn required(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: {what} is needed; run the tests with `scripts/test.sh`, which starts it")
    })
}

/// Base URL of the running moto server.
pub fn moto_url() -> String {
    required("CDC_TEST_MOTO_URL", "a moto server")
}

/// `127.0.0.1:PORT` of the running distribution registry.
pub fn registry() -> String {
    required("CDC_TEST_REGISTRY", "the docker-registry server")
}

/// Base URL of the moto server that refuses unknown credentials.
pub fn moto_auth_url() -> String {
    required(
        "CDC_TEST_MOTO_AUTH_URL",
        "a moto server started with INITIAL_NO_AUTH_ACTION_COUNT=0",
    )
}

/// `127.0.0.1:PORT` of a distribution registry whose password is not moto's token.
pub fn registry_other_password() -> String {
    required(
        "CDC_TEST_REGISTRY_OTHER_PASSWORD",
        "a second docker-registry server with another password",
    )
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An SDK configuration pointed at moto, as `AWS_ENDPOINT_URL` would point it.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// Write `text` at `path` under `root`, making the folders on the way.
pub fn write(root: &std::path::Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A name no other test uses, so tests can share one server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The local base image test consumers build `FROM` (busybox-static, imported: nothing is pulled).
pub fn base_image() -> String {
    required("CDC_TEST_BASE_IMAGE", "a local base image")
}

/// A finished run of the binary, with everything it wrote where the runner would read it.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outputs: std::collections::BTreeMap<String, String>,
    pub summary: String,
}

impl Run {
    /// A JSON array output as a list of names.
    pub fn names(&self, output: &str) -> Vec<String> {
        let raw = self
            .outputs
            .get(output)
            .unwrap_or_else(|| panic!("no output `{output}`; outputs: {:?}", self.outputs));
        serde_json::from_str(raw).unwrap()
    }

    /// Everything a person or a later step could see.
    pub fn everything(&self) -> String {
        format!(
            "{}\n{}\n{:?}\n{}",
            self.stdout, self.stderr, self.outputs, self.summary
        )
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// `secret` was masked for the runner and is shown nowhere else: the mask command is the
    /// one place it appears.
    pub fn assert_masked_once(&self, secret: &str) {
        assert!(
            self.stdout.contains(&format!("::add-mask::{secret}")),
            "not masked:\n{}",
            self.describe()
        );
        assert_eq!(
            self.everything().matches(secret).count(),
            1,
            "{}",
            self.describe()
        );
    }
}

/// A consumer `name` under `root`'s `consumer_scripts/` that copies its `app/` folder into the
/// local busybox image and runs it as an unprivileged user; its `consumer.toml` is the caller's.
pub fn busybox_consumer(root: &std::path::Path, name: &str) {
    write(
        root,
        &format!("consumer_scripts/{name}/Dockerfile"),
        &format!(
            "FROM {}\nCOPY app /app\nUSER 10001\nCMD [\"/bin/sh\", \"/app/run.sh\"]\n",
            base_image()
        ),
    );
    write(
        root,
        &format!("consumer_scripts/{name}/app/run.sh"),
        &format!("echo {name}\n"),
    );
}

/// Read a `GITHUB_OUTPUT` file written in the `name<<DELIMITER` form.
pub fn parse_outputs(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let (name, delimiter) = line
            .split_once("<<")
            .unwrap_or_else(|| panic!("output line is not `name<<delimiter`: {line}"));
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delimiter {
                break;
            }
            value.push(l);
        }
        out.insert(name.to_string(), value.join("\n"));
    }
    out
}

/// The binary under test: this build's, or `CDC_BENCH_BIN` when a benchmark compares another.
pub fn binary() -> String {
    std::env::var("CDC_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cdc-deploy").to_string())
}

/// Run the binary as the runner runs the action: inputs as `INPUT_*`, files for outputs and the
/// summary, AWS pointed at moto.
pub fn run_action(workspace: &std::path::Path, inputs: &[(&str, &str)]) -> Run {
    run_action_env(workspace, inputs, &[])
}

/// [`run_action`] with more environment variables, set last so they win (`AWS_ENDPOINT_URL` to
/// a counting proxy, say); an empty value removes the variable.
pub fn run_action_env(
    workspace: &std::path::Path,
    inputs: &[(&str, &str)],
    env: &[(&str, String)],
) -> Run {
    let (mut cmd, files) = action_command(workspace, inputs, env);
    let out = cmd.output().expect("the binary runs");
    finished(
        &files,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run_action_env`], sending `signal` to the binary once `ready` holds for what it has printed
/// on stdout so far (checked every 50 ms, for at most two minutes), as the runner does when a
/// workflow is cancelled. Returns the run and how long the binary took to exit after the signal.
pub fn run_action_signalled(
    workspace: &std::path::Path,
    inputs: &[(&str, &str)],
    env: &[(&str, String)],
    ready: impl Fn(&str) -> bool,
    signal: i32,
) -> (Run, std::time::Duration) {
    let (mut cmd, files) = action_command(workspace, inputs, env);
    let stdout_path = files.path().join("stdout");
    let stderr_path = files.path().join("stderr");
    cmd.stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut child = cmd.spawn().expect("the binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let printed = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if ready(&printed) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the binary ended ({status}) before it was ready to be signalled:\n{printed}\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready to be signalled after two minutes:\n{printed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let signalled = std::time::Instant::now();
    // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
    let sent = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(sent, 0, "the signal was sent");
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let run = finished(
        &files,
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    );
    (run, took)
}

/// The command the runner would start for the action, and the folder its files live in.
fn action_command(
    workspace: &std::path::Path,
    inputs: &[(&str, &str)],
    env: &[(&str, String)],
) -> (std::process::Command, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let out_file = files.path().join("output");
    let summary = files.path().join("summary");
    std::fs::write(&out_file, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let mut cmd = std::process::Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", workspace)
        .env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/cdc")
        .env("GITHUB_RUN_ID", "42")
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("INPUT_AWS-REGION", "us-east-1")
        .env("INPUT_REGISTRY-HOST", format!("http://{}", registry()))
        // The image stage alone unless a test asks for Terraform (`terraform: true`).
        .env("INPUT_TERRAFORM", "false")
        .env("RUNNER_TEMP", files.path())
        .current_dir(workspace);
    if let Ok(h) = std::env::var("DOCKER_HOST") {
        cmd.env("DOCKER_HOST", h);
    }
    for (k, v) in inputs {
        cmd.env(format!("INPUT_{}", k.to_uppercase()), v);
    }
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    (cmd, files)
}

fn finished(files: &tempfile::TempDir, code: i32, stdout: String, stderr: String) -> Run {
    Run {
        code,
        stdout,
        stderr,
        outputs: parse_outputs(&std::fs::read_to_string(files.path().join("output")).unwrap()),
        summary: std::fs::read_to_string(files.path().join("summary")).unwrap(),
    }
}

/// A registry client for `url` with user `AWS` and `password`.
pub fn registry_at(url: &str, password: &str) -> cdc_deploy::clients::registry::HttpRegistry {
    cdc_deploy::clients::registry::HttpRegistry::new(
        cdc_deploy::config::RegistryHost::parse(url).unwrap(),
        cdc_deploy::clients::registry::RegistryAuth {
            username: "AWS".into(),
            password: cdc_deploy::secret::Secret::new(password),
        },
    )
    .unwrap()
}

/// A registry client with moto's token, for checking what a run pushed.
pub fn registry_client() -> cdc_deploy::clients::registry::HttpRegistry {
    registry_at(&format!("http://{}", registry()), MOTO_TOKEN_PASSWORD)
}

/// An ECR repository as moto describes it: its settings, lifecycle policy and tags.
pub struct RepositoryFacts {
    pub mutability: String,
    /// The filters of the tags left mutable (`IMMUTABLE_WITH_EXCLUSION`).
    pub mutable_tags: Vec<String>,
    pub scan_on_push: bool,
    pub encryption: Option<String>,
    pub lifecycle_policy: Option<serde_json::Value>,
    pub tags: Vec<(String, String)>,
}

impl RepositoryFacts {
    pub fn has_tag(&self, key: &str, value: &str) -> bool {
        self.tags.iter().any(|(k, v)| k == key && v == value)
    }
}

pub async fn repository_facts(client: &aws_sdk_ecr::Client, name: &str) -> RepositoryFacts {
    let described = client
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
        .unwrap();
    let r = &described.repositories()[0];
    let policy = client
        .get_lifecycle_policy()
        .repository_name(name)
        .send()
        .await
        .ok()
        .and_then(|p| p.lifecycle_policy_text().map(str::to_string))
        .map(|t| serde_json::from_str(&t).unwrap());
    let tags = client
        .list_tags_for_resource()
        .resource_arn(r.repository_arn().unwrap())
        .send()
        .await
        .unwrap();
    RepositoryFacts {
        mutability: r
            .image_tag_mutability()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
        mutable_tags: r
            .image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| format!("{} {}", f.filter_type().as_str(), f.filter()))
            .collect(),
        scan_on_push: r
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push()),
        encryption: r
            .encryption_configuration()
            .map(|e| e.encryption_type().as_str().to_string()),
        lifecycle_policy: policy,
        tags: tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// Upload a blob through the distribution API (monolithic upload).
pub async fn upload_blob(http: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .basic_auth("AWS", Some(MOTO_TOKEN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{url}{sep}digest={digest}"))
        .basic_auth("AWS", Some(MOTO_TOKEN_PASSWORD))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    digest
}

/// Put a one-layer image under each of `tags` in `repo` and return its manifest digest.
pub async fn seed_image(repo: &str, tags: &[&str]) -> String {
    let base = format!("http://{}", registry());
    let http = reqwest::Client::new();
    let layer = b"not really a tar, but the registry only checks the digest".to_vec();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer_digest = upload_blob(&http, &base, repo, &layer).await;
    let config_digest = upload_blob(&http, &base, repo, &config).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.len(), "digest": layer_digest}]
    })
    .to_string();
    for tag in tags {
        let r = http
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .basic_auth("AWS", Some(MOTO_TOKEN_PASSWORD))
            .header(
                "content-type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }
    sha256(manifest.as_bytes())
}

/// The workflow commands the GitHub runner would act on in `output` (a step's stdout or
/// stderr), read the way the runner reads them: `::name props::data` at the start of a line
/// (after spaces), the older `##[name props]data` anywhere in one, and nothing between
/// `::stop-commands::TOKEN` and `::TOKEN::`. Lines end at `\n`, `\r\n` or a lone `\r`, as the
/// runner's reader ends them.
pub fn runner_commands(output: &str) -> Vec<String> {
    let mut stopped: Option<String> = None;
    let mut out = Vec::new();
    for line in output.split(['\n', '\r']) {
        let t = line.trim_start();
        if let Some(token) = &stopped {
            if t == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        if let Some(token) = t.strip_prefix("::stop-commands::") {
            stopped = Some(token.to_string());
            continue;
        }
        if t.starts_with("::") {
            out.push(t.to_string());
        } else if let Some(i) = line.find("##[") {
            out.push(line[i..].to_string());
        }
    }
    out
}

/// Remove from the engine every image whose reference starts with `prefix` (`host:port/`):
/// what a test built for a registry that is gone once it ends.
pub fn remove_images(prefix: &str) {
    let listed = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    let refs: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|r| r.starts_with(prefix))
        .map(str::to_string)
        .collect();
    if !refs.is_empty() {
        let _ = std::process::Command::new("docker")
            .arg("rmi")
            .arg("-f")
            .args(&refs)
            .output();
    }
}

/// Removes from the engine, when dropped, the images whose reference starts with its prefix
/// (`host:port/project-`): what a test pushed, also when it fails.
pub struct RemovesImages(pub String);

impl Drop for RemovesImages {
    fn drop(&mut self) {
        remove_images(&self.0);
    }
}

/// Append `lines` to `stream` of `group` in moto's CloudWatch Logs (both made if missing), a
/// millisecond apart, as a container's `awslogs` driver would have written them.
pub async fn seed_log(group: &str, stream: &str, lines: &[String]) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws().await);
    // Either may exist from an earlier run against the same server.
    let _ = logs.create_log_group().log_group_name(group).send().await;
    let _ = logs
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(start + i as i64)
                .message(l)
                .build()
                .unwrap()
        })
        .collect();
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
}

/// Run `docker args`, failing the test with its error output; returns what it printed.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run `docker args` with `env`, `input` on its standard input; what it printed on standard
/// error is kept for the caller's message.
fn docker_with_input(args: &[&str], env: &[(&str, &str)], input: &str) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap()
}

/// The label on a test's own base image, and so on every image built on it.
pub const PROJECT_LABEL: &str = "dev.cdc-deploy.test-project";

/// Put a base image of `project`'s own in the test registry as `reference` (the local base with
/// [`PROJECT_LABEL`]: every image built on it, the classic builder's intermediate ones included,
/// carries the label, and no other test's cache matches it), logged in with a Docker config of
/// its own (the engine's other users are not touched), and remove it from the engine: a build
/// `FROM` it must pull it with the registry's credentials, as on a runner.
pub fn push_base_image(reference: &str, project: &str) {
    let config = tempfile::tempdir().unwrap();
    let config_dir = config.path().to_str().unwrap();
    let built = docker_with_input(
        &[
            "build",
            "--quiet",
            "--label",
            &format!("{PROJECT_LABEL}={project}"),
            // A project's name repeats when a process id does (across runs): the nonce keeps
            // its base, and so every build step on it, new to the engine's cache.
            "--label",
            &format!(
                "dev.cdc-deploy.test-nonce={}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            "--tag",
            reference,
            "-",
        ],
        &[("DOCKER_BUILDKIT", "0")],
        &format!("FROM {}\n", base_image()),
    );
    assert!(
        built.status.success(),
        "the test's base image: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let login = docker_with_input(
        &[
            "--config",
            config_dir,
            "login",
            "-u",
            "AWS",
            "--password-stdin",
            &registry(),
        ],
        &[],
        MOTO_TOKEN_PASSWORD,
    );
    assert!(login.status.success(), "docker login to the test registry");
    docker(&["--config", config_dir, "push", reference]);
    docker(&["rmi", reference]);
}

/// Remove from the engine every image built on `project`'s base (see [`push_base_image`]),
/// tagged or not, children before parents: with BuildKit's cache pruned, the engine is as cold
/// for the project as a new runner's.
pub fn remove_project_images(project: &str) {
    for _ in 0..10 {
        let listed = docker(&[
            "images",
            "--all",
            "--quiet",
            "--filter",
            &format!("label={PROJECT_LABEL}={project}"),
        ]);
        let mut ids: Vec<&str> = listed.lines().collect();
        ids.dedup();
        if ids.is_empty() {
            return;
        }
        // A parent refuses while it has children; each pass removes the leaves.
        for id in ids {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "--force", id])
                .output();
        }
    }
    panic!("images of `{project}` are still in the engine");
}

/// A runner's engine at the start of a job, for `project`: no image built on its base (see
/// [`push_base_image`]; the classic builder's intermediate images, its cache, included) and
/// BuildKit's cache emptied.
pub fn make_cold(project: &str) {
    remove_project_images(project);
    docker(&["builder", "prune", "--all", "--force"]);
}

/// The time the result line gives for `consumer`'s build and push:
/// `✓ single: built sha256:… (1.2 MiB, 3.4 s)`.
pub fn build_time(run: &Run, consumer: &str) -> std::time::Duration {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("✓ {consumer}: built ")))
        .unwrap_or_else(|| panic!("no result line for {consumer}:\n{}", run.describe()));
    let secs = line
        .rsplit(", ")
        .next()
        .and_then(|t| t.strip_suffix(" s)"))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no time in `{line}`"));
    std::time::Duration::from_secs_f64(secs)
}
