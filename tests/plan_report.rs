//! The plan and its report, end to end over real folders: the table and the markdown people read
//! are snapshots, and the binary is run the way the Actions runner runs it.

use std::fs;
use std::path::Path;
use std::process::Command;

use std::time::Duration;

use cdc_deploy::apply::{ImageError, ImageOutcome, ImageResult, RunReport};
use cdc_deploy::clients::builder::BuildFailure;
use cdc_deploy::clients::ecr::RepositoryState;
use cdc_deploy::config::event::CommitSha;
use cdc_deploy::consumers::discovery::discover;
use cdc_deploy::consumers::names::ProjectName;
use cdc_deploy::observe::{
    ImageLookup, Observation, ObservedConsumer, RegistryImage, RepositoryLookup,
};
use cdc_deploy::pipeline::fingerprint_one;
use cdc_deploy::pipeline::outcome::{outcome, Facts, RunResult, Verb};
use cdc_deploy::plan::{plan, Fingerprinted};
use cdc_deploy::report::{markdown, table, ReportHeader};

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
            fingerprint: fingerprint_one(s).map(|scan| scan.report),
        })
        .collect()
}

fn header() -> ReportHeader {
    ReportHeader {
        project: "shop".into(),
        environment: "staging".into(),
        verb: "plan".into(),
        cancelled: None,
        plan_digest: None,
        run_url: Some("https://github.com/acme/cdc/actions/runs/42".into()),
        headline: String::new(),
        failed: false,
        aws_retried: None,
    }
}

/// The header of a report of `verb`, with the headline the run's outcome gives.
fn headed(verb: Verb, p: &cdc_deploy::plan::Plan, run: &RunReport) -> ReportHeader {
    let o = outcome(&Facts {
        verb,
        plan: p,
        run,
        cancelled: None,
        report_errors: &[],
    });
    ReportHeader {
        verb: match verb {
            Verb::Plan => "plan",
            _ => "deploy",
        }
        .into(),
        headline: o.headline,
        failed: o.result == RunResult::Failure,
        ..header()
    }
}

fn commit() -> CommitSha {
    CommitSha::parse("0123456789abcdef0123456789abcdef01234567").unwrap()
}

fn repo(name: &str) -> RepositoryState {
    RepositoryState {
        name: name.into(),
        tag_mutability: "IMMUTABLE_WITH_EXCLUSION".into(),
        mutable_tags: vec!["cache-*".into(), "keep-*".into()],
        scan_on_push: true,
    }
}

/// What AWS holds when nothing was deployed yet.
fn nothing_exists(found: &cdc_deploy::consumers::discovery::Discovery) -> Observation {
    Observation {
        consumers: found
            .consumers
            .iter()
            .map(|c| {
                (
                    c.resource_name.clone(),
                    ObservedConsumer {
                        repository: RepositoryLookup::Missing,
                        image: ImageLookup::NotAsked,
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn offline_plan_report() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let p = plan(&found, &f, None, Some(&commit()));
    insta::assert_snapshot!("offline_table", table::table(&p, None));
    insta::assert_snapshot!(
        "offline_markdown",
        markdown::comment(
            &p,
            None,
            None,
            &headed(Verb::Plan, &p, &RunReport::default())
        )
    );
}

#[test]
fn observed_plan_report() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    fs::remove_dir_all(dir.path().join("consumer_scripts/broken")).unwrap();
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let mut drifted = repo("shop-orders");
    drifted.tag_mutability = "MUTABLE".into();
    let observed = Observation {
        consumers: [
            (
                "shop-audit".to_string(),
                ObservedConsumer {
                    repository: RepositoryLookup::Found(repo("shop-audit")),
                    image: ImageLookup::Present(RegistryImage {
                        digest: format!("sha256:{}", "c".repeat(64)),
                        size: Some(20 * 1024 * 1024),
                    }),
                },
            ),
            (
                "shop-orders".to_string(),
                ObservedConsumer {
                    repository: RepositoryLookup::Found(drifted),
                    image: ImageLookup::Absent { built_before: true },
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let p = plan(&found, &f, Some(&observed), Some(&commit()));
    insta::assert_snapshot!("observed_table", table::table(&p, None));
    insta::assert_snapshot!(
        "observed_markdown",
        markdown::comment(
            &p,
            None,
            None,
            &headed(Verb::Plan, &p, &RunReport::default())
        )
    );
}

#[test]
fn deploy_report_with_image_results() {
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
    let p = plan(&found, &f, Some(&nothing_exists(&found)), Some(&commit()));
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let pinned = |name: &str, c: char| {
        Some(format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-{name}@{}",
            digest(c)
        ))
    };
    let mut run = RunReport::default();
    run.images.insert(
        "audit".into(),
        ImageResult {
            outcome: ImageOutcome::Built,
            image: pinned("audit", 'a'),
            digest: Some(digest('a')),
            size: Some(48 * 1024 * 1024 + 300_000),
            duration: Duration::from_millis(41_250),
            error: None,
        },
    );
    run.images.insert(
        "orders".into(),
        ImageResult {
            outcome: ImageOutcome::Reused,
            image: pinned("orders", 'b'),
            digest: Some(digest('b')),
            size: Some(12 * 1024 * 1024),
            duration: Duration::from_millis(0),
            error: None,
        },
    );
    run.images.insert(
        "billing".into(),
        ImageResult {
            outcome: ImageOutcome::Failed,
            image: None,
            digest: None,
            size: None,
            duration: Duration::from_millis(3_400),
            error: Some(ImageError::Build {
                file: "consumer_scripts/billing/Dockerfile".into(),
                failure: BuildFailure {
                    step: Some("[2/3] RUN make | tee log".into()),
                    line: Some(3),
                    message: "executor failed running [/bin/sh -c make | tee log]: exit code: 2"
                        .into(),
                    tail: vec![
                        "make: *** No rule to make target ```all```.  Stop.".into(),
                        "::error title=x::from the build".into(),
                        "cc @acme/platform <img src=x>".into(),
                    ],
                },
            }),
        },
    );
    let h = headed(Verb::Deploy, &p, &run);
    insta::assert_snapshot!("deploy_table", table::table(&p, Some(&run)));
    insta::assert_snapshot!(
        "deploy_markdown",
        markdown::comment(&p, Some(&run), None, &h)
    );
}

/// A fleet of `n` consumers with `[environment]` settings that make the full report long.
/// The entry `settings` give with `image`, as the root module gives it back, with `hold`.
fn applied_entry(
    settings: &cdc_deploy::consumers::config::ConsumerSettings,
    image: &str,
    hold: Option<serde_json::Value>,
) -> cdc_deploy::plan::entries::AppliedConsumer {
    let mut config = cdc_deploy::plan::entries::entry(settings, image);
    config["hold"] = hold.unwrap_or(serde_json::Value::Null);
    cdc_deploy::plan::entries::AppliedConsumer {
        cluster: "shop-staging".into(),
        service: "x".into(),
        task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/shop-x:7".into(),
        log_group: "/ecs/shop/staging/x".into(),
        container: "x".into(),
        image: image.into(),
        config: Some(config),
    }
}

#[test]
fn a_failed_rollout_and_a_held_consumer_lead_the_report() {
    use cdc_deploy::apply::infra::InfraReport;
    use cdc_deploy::apply::rollout::{Verdict, VerdictKind};
    use cdc_deploy::apply::Restore;
    use cdc_deploy::plan::entries::{entry, settings_digest};
    use cdc_deploy::plan::terraform::InfraPlan;
    use cdc_deploy::plan::{with_applied, with_infra, Applied};

    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    fs::remove_dir_all(dir.path().join("consumer_scripts/broken")).unwrap();
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    // `audit`'s image is in the registry; `orders` changed and is built.
    let observed = Observation {
        consumers: [
            (
                "shop-audit".to_string(),
                ObservedConsumer {
                    repository: RepositoryLookup::Found(repo("shop-audit")),
                    image: ImageLookup::Present(RegistryImage {
                        digest: digest('c'),
                        size: Some(20 * 1024 * 1024),
                    }),
                },
            ),
            (
                "shop-orders".to_string(),
                ObservedConsumer {
                    repository: RepositoryLookup::Found(repo("shop-orders")),
                    image: ImageLookup::Absent { built_before: true },
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let p = plan(&found, &f, Some(&observed), Some(&commit()));
    // `audit` was rolled back on its image `c…` and held on `1…` since; `orders` runs `0…`.
    let audit = p.get("audit").unwrap();
    let audit_settings = audit.settings.clone().unwrap();
    let failed = format!("{host}/shop-audit@{}", digest('c'));
    let hold = serde_json::json!({
        "image": failed,
        "fingerprint": audit.fingerprint.as_ref().unwrap().hex(),
        "settings": settings_digest(&entry(&audit_settings, &failed)),
        "verdict": "rolled back",
        "at": "2026-12-01T10:00:00Z",
    });
    let orders_settings = p.get("orders").unwrap().settings.clone().unwrap();
    let applied = [
        (
            "audit".to_string(),
            applied_entry(
                &audit_settings,
                &format!("{host}/shop-audit@{}", digest('1')),
                Some(hold),
            ),
        ),
        (
            "orders".to_string(),
            applied_entry(
                &orders_settings,
                &format!("{host}/shop-orders@{}", digest('0')),
                None,
            ),
        ),
    ]
    .into_iter()
    .collect();
    let p = with_applied(
        p,
        &Applied {
            entries: &applied,
            selection: None,
            registry_host: host,
        },
    );
    let names = ["audit", "orders"].iter().map(|s| s.to_string()).collect();
    let shown = serde_json::json!({"resource_changes": [
        {"address": "aws_ecs_task_definition.this[\"orders\"]", "index": "orders", "mode": "managed", "type": "aws_ecs_task_definition", "change": {"actions": ["create", "delete"]}},
        {"address": "aws_ecs_service.this[\"orders\"]", "index": "orders", "mode": "managed", "type": "aws_ecs_service", "change": {"actions": ["update"]}},
    ]});
    let infra_plan = InfraPlan::parse(&shown.to_string(), &names).unwrap();
    let p = with_infra(p, &infra_plan, &[]);
    assert_eq!(p.get("audit").unwrap().status.as_str(), "held");
    let mut run = RunReport::default();
    run.images.insert(
        "orders".into(),
        ImageResult {
            outcome: ImageOutcome::Built,
            image: Some(format!("{host}/shop-orders@{}", digest('b'))),
            digest: Some(digest('b')),
            size: Some(12 * 1024 * 1024),
            duration: Duration::from_millis(8_200),
            error: None,
        },
    );
    // A held consumer has no image work: the image stage leaves it out.
    let verdict = |kind: VerdictKind, reason: &str, secs: u64| Verdict {
        kind,
        reason: reason.into(),
        duration: Duration::from_secs(secs),
        running: 1,
        desired: 1,
        deployment_id: None,
        events: Vec::new(),
        stopped_tasks: Vec::new(),
        evidence_gaps: Vec::new(),
    };
    run.rollouts.insert(
        "orders".into(),
        verdict(
            VerdictKind::RolledBack,
            "its deployment is gone and `arn:aws:ecs:us-east-1:123456789012:task-definition/shop-orders:7` is primary again",
            94,
        ),
    );
    run.restores.insert(
        "orders".into(),
        Restore {
            failed_image: format!("{host}/shop-orders@{}", digest('b')),
            image: format!("{host}/shop-orders@{}", digest('0')),
            verdict: Some(verdict(
                VerdictKind::Succeeded,
                "1 of 1 tasks running the new revision",
                41,
            )),
            error: None,
            remembered: true,
        },
    );
    run.infra = Some(InfraReport {
        plan: Some(infra_plan),
        applied: true,
        after: Some(applied),
        terraform_version: Some("1.11.4".into()),
        ..InfraReport::default()
    });
    let h = headed(Verb::Deploy, &p, &run);
    assert_eq!(
        h.headline,
        "the rollout of `orders` failed (rolled back); `orders` back on its previous image and held there; `audit` held on its previous image"
    );
    let comment = markdown::comment(&p, Some(&run), None, &h);
    // The outcome comes first, before any table.
    let first = comment.lines().find(|l| l.starts_with('>')).unwrap();
    assert_eq!(first, "> [!CAUTION]");
    insta::assert_snapshot!("held_and_restored_markdown", comment);
}

fn big_fleet(root: &Path, n: usize) {
    for i in 0..n {
        write(
            root,
            &format!("consumer_scripts/consumer-{i:04}/Dockerfile"),
            "FROM scratch\n",
        );
        let env: String = (0..8)
            .map(|k| format!("VARIABLE_NUMBER_{k} = \"x\"\n"))
            .collect();
        write(
            root,
            &format!("consumer_scripts/consumer-{i:04}/consumer.toml"),
            &format!("[environment]\n{env}"),
        );
    }
}

fn offline_plan_of(n: usize) -> (tempfile::TempDir, cdc_deploy::plan::Plan) {
    let dir = tempfile::tempdir().unwrap();
    big_fleet(dir.path(), n);
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let p = plan(&found, &f, None, None);
    (dir, p)
}

#[test]
fn the_comment_for_1200_consumers_fits_github_and_names_every_one() {
    let (_dir, p) = offline_plan_of(1_200);
    let comment = markdown::comment(&p, None, None, &header());
    assert!(
        comment.chars().count() <= markdown::COMMENT_LIMIT,
        "{} characters",
        comment.chars().count()
    );
    assert_eq!(
        comment.matches("| `consumer-").count(),
        1_200,
        "a row per consumer"
    );
    assert!(comment.contains("[Workflow run]"), "the footer survives");
    let summary = markdown::summary(&p, None, None, &header());
    assert!(
        summary.len() <= markdown::SUMMARY_LIMIT,
        "{} bytes",
        summary.len()
    );
    assert!(
        summary.contains("VARIABLE_NUMBER_7"),
        "the summary has room for the per-consumer details"
    );
}

#[test]
fn a_fleet_too_big_for_one_comment_says_how_many_rows_are_elsewhere() {
    let (_dir, p) = offline_plan_of(4_000);
    let comment = markdown::comment(&p, None, None, &header());
    assert!(
        comment.len() <= markdown::COMMENT_LIMIT,
        "{} bytes",
        comment.len()
    );
    let shown = comment.matches("| `consumer-").count();
    assert!(shown > 1_000, "only {shown} rows fit");
    let more = comment
        .lines()
        .find(|l| l.contains("more consumers: see the job summary"))
        .expect("a visible line says how many consumers are left out");
    assert!(
        more.contains(&format!("{} more consumers", 4_000 - shown)),
        "{more}"
    );
    let summary = markdown::summary(&p, None, None, &header());
    assert!(
        summary.len() <= markdown::SUMMARY_LIMIT,
        "{} bytes",
        summary.len()
    );
    assert_eq!(
        summary.matches("| `consumer-").count(),
        4_000,
        "the summary lists them all"
    );
}

#[test]
fn failures_never_push_the_comment_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    big_fleet(dir.path(), 1_200);
    let project = ProjectName::parse("shop").unwrap();
    let found = discover(dir.path(), Path::new("consumer_scripts"), &project).unwrap();
    let f = fingerprinted(&found);
    let p = plan(&found, &f, Some(&nothing_exists(&found)), None);
    let mut run = RunReport::default();
    for c in &p.consumers {
        run.images.insert(
            c.name.clone(),
            ImageResult {
                outcome: ImageOutcome::Failed,
                image: None,
                digest: None,
                size: None,
                duration: Duration::from_secs(1),
                error: Some(ImageError::Build {
                    file: format!("consumer_scripts/{}/Dockerfile", c.name),
                    failure: BuildFailure {
                        step: Some("[2/2] RUN make".into()),
                        line: Some(2),
                        message: "x".repeat(2_000),
                        tail: vec!["y".repeat(500); 25],
                    },
                }),
            },
        );
    }
    let comment = markdown::comment(&p, Some(&run), None, &header());
    assert!(
        comment.len() <= markdown::COMMENT_LIMIT,
        "{} bytes",
        comment.len()
    );
    assert!(
        comment.contains("more failures: see the job summary"),
        "{}",
        &comment[..500]
    );
    let summary = markdown::summary(&p, Some(&run), None, &header());
    assert!(
        summary.len() <= markdown::SUMMARY_LIMIT,
        "{} bytes",
        summary.len()
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
        include_str!("fixtures/github/events/pull_request.opened.0.json"),
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
    // The marker names the project, the environment and the digest of the plan shown.
    let marker = md.lines().next().unwrap();
    assert!(
        marker.starts_with("<!-- cdc-deploy:report project=shop environment=staging plan=")
            && marker.ends_with(" -->"),
        "{marker}"
    );
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
    assert!(
        err.contains(
            "input `mode` is `sometimes`: use `auto`, `plan`, `deploy`, `rollback`, `build`, `status`, `logs`, `exec` or `scale`"
        ),
        "{err}"
    );
}

/// Every event of `md` as CommonMark reads it (with GitHub's tables).
fn parse(md: &str) -> Vec<pulldown_cmark::Event<'_>> {
    pulldown_cmark::Parser::new_ext(md, pulldown_cmark::Options::ENABLE_TABLES).collect()
}

/// What a reader of rendered `md` would see as markup: HTML outside code, text outside code.
fn rendered_markup(md: &str) -> (Vec<String>, Vec<String>) {
    use pulldown_cmark::{Event, Tag, TagEnd};
    let mut html = Vec::new();
    let mut text = Vec::new();
    let mut in_code = 0;
    for e in parse(md) {
        match e {
            Event::Start(Tag::CodeBlock(_)) => in_code += 1,
            Event::End(TagEnd::CodeBlock) => in_code -= 1,
            Event::Html(h) | Event::InlineHtml(h) if in_code == 0 => html.push(h.to_string()),
            Event::Text(t) if in_code == 0 => text.push(t.to_string()),
            _ => {}
        }
    }
    (html, text)
}

#[test]
fn five_hundred_failed_rollouts_with_hostile_evidence_stay_within_limits_and_inert() {
    use cdc_deploy::apply::rollout::{LogTail, TaskEvidence, Verdict, VerdictKind};
    use cdc_deploy::clients::ecs::{StoppedContainer, StoppedTask};
    let (_dir, p) = offline_plan_of(500);
    let hostile = "</details><script>alert(1)</script> @org/team ``` **x** | `y` <img src=x>";
    let mut run = RunReport::default();
    for c in &p.consumers {
        let tasks = (0..3)
            .map(|t| {
                let mut logs = std::collections::BTreeMap::new();
                logs.insert(
                    c.name.clone(),
                    LogTail::Lines {
                        group: format!("/ecs/shop/staging/{}", c.name),
                        stream: format!("ecs/{}/task{t}", c.name),
                        lines: (0..20)
                            .map(|i| format!("{i} {hostile} {}", "z".repeat(900)))
                            .collect(),
                    },
                );
                TaskEvidence {
                    task: StoppedTask {
                        id: format!("task{t}"),
                        task_definition: "td:2".into(),
                        stopped_reason: Some(format!(
                            "Essential container in task exited {hostile}"
                        )),
                        stop_code: Some("EssentialContainerExited".into()),
                        stopped_at: None,
                        containers: vec![StoppedContainer {
                            name: c.name.clone(),
                            exit_code: Some(1),
                            reason: Some(hostile.into()),
                        }],
                    },
                    logs,
                }
            })
            .collect();
        run.rollouts.insert(
            c.name.clone(),
            Verdict {
                kind: VerdictKind::Failed,
                reason: format!("circuit breaker {hostile}"),
                duration: Duration::from_secs(90),
                running: 0,
                desired: 2,
                deployment_id: None,
                events: vec![hostile.to_string(); 10],
                stopped_tasks: tasks,
                evidence_gaps: vec![],
            },
        );
    }
    let comment = markdown::comment(&p, Some(&run), None, &header());
    let summary = markdown::summary(&p, Some(&run), None, &header());
    assert!(
        comment.chars().count() <= markdown::COMMENT_LIMIT,
        "{}",
        comment.chars().count()
    );
    assert!(
        summary.len() <= markdown::SUMMARY_LIMIT,
        "{}",
        summary.len()
    );
    for md in [&comment, &summary] {
        let (html, text) = rendered_markup(md);
        // Only the report's own HTML: balanced details, no script, no image.
        let opened = html.iter().filter(|h| h.contains("<details>")).count();
        let closed = html.iter().filter(|h| h.contains("</details>")).count();
        assert_eq!(opened, closed, "{html:?}");
        assert!(
            html.iter()
                .all(|h| !h.contains("<script") && !h.contains("<img")),
            "{html:?}"
        );
        assert!(
            text.iter().all(|t| !t.contains("@org/team")),
            "no one is mentioned"
        );
    }
    // The comment tells each failed rollout, or says where the rest is.
    let told = comment.matches("circuit breaker").count();
    assert!(told > 50, "as many as fit: {told}");
    assert!(
        told == 500
            || comment.contains(&format!(
                "{} more rollouts: see the job summary",
                500 - told
            )),
        "{told} told, and no pointer to the rest"
    );
    assert!(
        summary.contains("circuit breaker"),
        "the summary has the rollouts"
    );

    // A check run's summary for one of them: within GitHub's limit, its code blocks closed.
    let c = &p.consumers[0];
    let check = cdc_deploy::report::checks::content(c, Some(&run), None);
    assert!(check.summary.chars().count() <= cdc_deploy::report::checks::SUMMARY_LIMIT);
    assert_eq!(check.conclusion, "failure");
    let (html, text) = rendered_markup(&check.summary);
    assert!(html.iter().all(|h| !h.contains("<script")), "{html:?}");
    assert!(text.iter().all(|t| !t.contains("@org/team")));
}

#[test]
fn hostile_messages_in_rollouts_and_check_runs_render_inert() {
    use cdc_deploy::apply::rollout::{LogTail, TaskEvidence, Verdict, VerdictKind};
    use cdc_deploy::clients::ecs::{StoppedContainer, StoppedTask};
    let (_dir, p) = offline_plan_of(1);
    let hostile = "`</details>` <script>alert(1)</script> @org/team ```` [x](javascript:y) |";
    let mut logs = std::collections::BTreeMap::new();
    logs.insert(
        "consumer-0000".to_string(),
        LogTail::Lines {
            group: "/ecs/shop/staging/consumer-0000".into(),
            stream: "ecs/consumer-0000/abc".into(),
            lines: vec![hostile.into(), "::error::not a command".into()],
        },
    );
    let mut run = RunReport::default();
    run.rollouts.insert(
        "consumer-0000".into(),
        Verdict {
            kind: VerdictKind::Failed,
            reason: hostile.into(),
            duration: Duration::from_secs(12),
            running: 0,
            desired: 1,
            deployment_id: None,
            events: vec![hostile.into()],
            stopped_tasks: vec![TaskEvidence {
                task: StoppedTask {
                    id: "abc".into(),
                    task_definition: "td:2".into(),
                    stopped_reason: Some(hostile.into()),
                    stop_code: Some("EssentialContainerExited".into()),
                    stopped_at: None,
                    containers: vec![StoppedContainer {
                        name: "consumer-0000".into(),
                        exit_code: Some(1),
                        reason: Some(hostile.into()),
                    }],
                },
                logs,
            }],
            evidence_gaps: vec![hostile.into()],
        },
    );
    let h = ReportHeader {
        verb: "deploy".into(),
        ..header()
    };
    let summary = markdown::summary(&p, Some(&run), None, &h);
    let rollouts = &summary[summary.find("### Rollouts").unwrap()..];
    insta::assert_snapshot!("hostile_rollout_evidence", rollouts);
    let check = cdc_deploy::report::checks::content(&p.consumers[0], Some(&run), None);
    insta::assert_snapshot!("hostile_check_run_summary", check.summary);
}
