//! The plan and its report, end to end over real folders: the table and the markdown people read
//! are snapshots, and the binary is run the way the Actions runner runs it.

use std::fs;
use std::path::Path;
use std::process::Command;

use cdc_deploy::consumers::discovery::discover;
use cdc_deploy::consumers::names::ProjectName;
use cdc_deploy::pipeline::fingerprint_one;
use cdc_deploy::plan::{
    plan, settings_digest, Fingerprinted, ObservedConsumer, ObservedService, ObservedState,
};
use cdc_deploy::report::{self, ReportHeader};

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn fixture(root: &Path) {
    write(
        root,
        "consumer_scripts/orders/Dockerfile",
        "FROM scratch\nCOPY app /app\n",
    );
    write(
        root,
        "consumer_scripts/orders/app/main.py",
        "print('orders')\n",
    );
    write(root, "consumer_scripts/orders/consumer.toml", "cpu = 512\nmemory = 1024\n[autoscaling]\nmin = 1\nmax = 3\ncpu_target = 60\n[secrets]\nTOKEN = \"arn:aws:ssm:us-east-1:123456789012:parameter/t\"\n");
    write(root, "consumer_scripts/audit/Dockerfile", "FROM scratch\n");
    write(
        root,
        "consumer_scripts/audit/consumer.toml",
        "platform = \"linux/arm64\"\n[environment]\nAPI_TOKEN = \"plain\"\n",
    );
    write(root, "consumer_scripts/broken/Dockerfile", "FROM scratch\n");
    write(
        root,
        "consumer_scripts/broken/consumer.toml",
        "cpu = 256\nmemory = 4096\n",
    );
    write(root, "consumer_scripts/notes/README.md", "not a consumer\n");
}

fn fingerprinted(found: &cdc_deploy::consumers::discovery::Discovery) -> Vec<Fingerprinted<'_>> {
    found
        .consumers
        .iter()
        .map(|s| Fingerprinted {
            spec: s,
            fingerprint: fingerprint_one(s),
        })
        .collect()
}

fn header() -> ReportHeader {
    ReportHeader {
        project: "shop".into(),
        environment: "staging".into(),
        verb: "plan".into(),
        run_url: Some("https://github.com/acme/cdc/actions/runs/42".into()),
    }
}

#[test]
fn offline_plan_report() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let p = plan(
        &found,
        &f,
        None,
        Some("0123456789abcdef0123456789abcdef01234567"),
    );
    insta::assert_snapshot!("offline_table", report::table(&p));
    insta::assert_snapshot!("offline_markdown", report::markdown(&p, &header()));
}

#[test]
fn observed_plan_report() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    fs::remove_dir_all(dir.path().join("consumer_scripts/broken")).unwrap();
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let audit = &found.consumers[0];
    let observed = ObservedState {
        consumers: [
            (
                "shop-audit".to_string(),
                ObservedConsumer {
                    repository: true,
                    fingerprint_image: true,
                    commit_tag: false,
                    service: Some(ObservedService {
                        settings_digest: Some(settings_digest(&audit.settings)),
                    }),
                },
            ),
            (
                "shop-orders".to_string(),
                ObservedConsumer {
                    repository: true,
                    fingerprint_image: false,
                    commit_tag: false,
                    service: Some(ObservedService::default()),
                },
            ),
            (
                "shop-legacy".to_string(),
                ObservedConsumer {
                    repository: true,
                    service: Some(ObservedService::default()),
                    ..Default::default()
                },
            ),
        ]
        .into_iter()
        .collect(),
        services_observed: true,
    };
    let p = plan(
        &found,
        &f,
        Some(&observed),
        Some("0123456789abcdef0123456789abcdef01234567"),
    );
    insta::assert_snapshot!("observed_table", report::table(&p));
    insta::assert_snapshot!("observed_markdown", report::markdown(&p, &header()));
}

#[test]
fn deploy_report_with_image_results() {
    use cdc_deploy::plan::{ImageOutcome, ImageResult};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    fs::remove_dir_all(dir.path().join("consumer_scripts/broken")).unwrap();
    write(
        dir.path(),
        "consumer_scripts/billing/Dockerfile",
        "FROM scratch\n",
    );
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let mut p = plan(
        &found,
        &f,
        Some(&ObservedState::default()),
        Some("0123456789abcdef"),
    );
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let pinned = |name: &str, c: char| {
        Some(format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-{name}@{}",
            digest(c)
        ))
    };
    for c in &mut p.consumers {
        c.image = Some(match c.name.as_str() {
            "audit" => ImageResult {
                outcome: ImageOutcome::Built,
                image: pinned("audit", 'a'),
                digest: Some(digest('a')),
                size: Some(48 * 1024 * 1024 + 300_000),
                duration: Duration::from_millis(41_250),
                failure: None,
                log_tail: Vec::new(),
            },
            "orders" => ImageResult {
                outcome: ImageOutcome::Retagged,
                image: pinned("orders", 'b'),
                digest: Some(digest('b')),
                size: Some(12 * 1024 * 1024),
                duration: Duration::from_millis(180),
                failure: None,
                log_tail: Vec::new(),
            },
            _ => ImageResult {
                outcome: ImageOutcome::Failed,
                image: None,
                digest: None,
                size: None,
                duration: Duration::from_millis(3_400),
                failure: Some("`consumer_scripts/billing/Dockerfile` line 3: Step 3/4 : RUN make | tee log failed: The command '/bin/sh -c make' returned a non-zero code: 2".into()),
                log_tail: vec![
                    "Step 3/4 : RUN make | tee log".into(),
                    " ---> Running in 0123abcd".into(),
                    "make: *** No rule to make target ```all```.  Stop.".into(),
                ],
            },
        });
    }
    let h = ReportHeader {
        verb: "deploy".into(),
        ..header()
    };
    insta::assert_snapshot!("deploy_table", report::table(&p));
    insta::assert_snapshot!("deploy_markdown", report::markdown(&p, &h));
}

#[test]
fn markdown_fits_a_github_comment() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..400 {
        write(
            dir.path(),
            &format!("consumer_scripts/consumer-{i:03}/Dockerfile"),
            "FROM scratch\n",
        );
        let env: String = (0..20)
            .map(|k| format!("VARIABLE_NUMBER_{k} = \"x\"\n"))
            .collect();
        write(
            dir.path(),
            &format!("consumer_scripts/consumer-{i:03}/consumer.toml"),
            &format!("[environment]\n{env}"),
        );
    }
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let md = report::markdown(&plan(&found, &f, None, None), &header());
    assert!(md.len() <= report::MAX_COMMENT, "{} characters", md.len());
    assert!(md.contains("left out to fit"));
    assert!(
        md.contains("`consumer-399`"),
        "the table keeps every consumer"
    );
}

/// The binary, started as the runner starts a container action: inputs as `INPUT_*` with hyphens,
/// files for outputs and the summary, annotations on stdout.
#[test]
fn binary_runs_as_an_action_step() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let out_file = dir.path().join("github_output");
    let summary = dir.path().join("step_summary");
    let event = dir.path().join("event.json");
    fs::write(
        &event,
        include_str!("../../shared/github-contract/events/pull_request.opened.0.json"),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_cdc-deploy"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", dir.path())
        .env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", &event)
        .env("INPUT_PROJECT-NAME", "shop")
        .env("INPUT_ENVIRONMENT", "staging")
        .env("INPUT_MODE", "plan")
        .env("INPUT_OFFLINE", "true")
        .args(["plan"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "an invalid consumer fails the step\n{stdout}"
    );
    assert!(
        stdout.contains("::error file=consumer_scripts/broken/consumer.toml,line=2,col=10,title=cdc-deploy%3A invalid consumer configuration::`cpu` 256 with `memory` 4096 is not a valid Fargate task size"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::warning file=consumer_scripts/audit/consumer.toml,line=3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::warning file=consumer_scripts/notes::"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::group::pull request comment preview"),
        "{stdout}"
    );
    let outputs = fs::read_to_string(&out_file).unwrap();
    let value = |name: &str| -> String {
        let start = outputs
            .find(&format!("{name}<<"))
            .unwrap_or_else(|| panic!("no output {name}"));
        outputs[start..].lines().nth(1).unwrap().to_string()
    };
    assert_eq!(value("new"), r#"["audit","orders"]"#);
    assert_eq!(value("invalid"), r#"["broken"]"#);
    assert_eq!(value("has-changes"), "true");
    let md = fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("<!-- cdc-deploy:report project=shop environment=staging -->"));
}

#[test]
fn binary_rejects_bad_inputs_with_the_valid_values() {
    let run = Command::new(env!("CARGO_BIN_EXE_cdc-deploy"))
        .env_clear()
        .env("INPUT_MODE", "sometimes")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("possible values: auto, plan, deploy"), "{err}");
}
