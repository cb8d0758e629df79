//! How a failure reads, cause by cause, against real endpoints: moto and the registry up, down,
//! refusing, or spoken to wrongly. Each case is the binary run as the action runs it; what a
//! person reads (the exit code and each error annotation, one line) is snapshot-tested.

mod support;

use support::{closed_port, run_action, run_action_env, write, Run};

const PROJECT: &str = "fail";

/// The error annotations a run printed, as `title: message`, unescaped.
fn errors(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::error"))
        .map(|l| {
            let (props, data) = l.split_once("::").unwrap_or((l, ""));
            let title = props
                .split(',')
                .find_map(|p| p.trim().strip_prefix("title="))
                .unwrap_or("")
                .replace("%3A", ":")
                .replace("%2C", ",");
            let data = data
                .replace("%0A", "\n")
                .replace("%0D", "\r")
                .replace("%25", "%");
            if title.is_empty() {
                data
            } else {
                format!("{title}: {data}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_cause_reads_as_one_line_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
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
    // The consumer's repository exists, so the registry is asked about its image.
    let ecr = aws_sdk_ecr::Client::new(&support::aws().await);
    let _ = ecr
        .create_repository()
        .repository_name(format!("{PROJECT}-orders"))
        .send()
        .await;
    let empty_home = tempfile::tempdir().unwrap();
    let home = empty_home.path().to_str().unwrap().to_string();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let registry = support::registry();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("AWS is down", vec![("AWS_ENDPOINT_URL", closed.clone())]),
        (
            "AWS's name does not resolve",
            vec![(
                "AWS_ENDPOINT_URL",
                "http://ecr.cdc-deploy-test.invalid".into(),
            )],
        ),
        (
            "no credentials",
            vec![
                ("AWS_ACCESS_KEY_ID", String::new()),
                ("AWS_SECRET_ACCESS_KEY", String::new()),
                ("HOME", home.clone()),
            ],
        ),
        (
            "no credentials, and no instance metadata service answers",
            vec![
                ("AWS_ACCESS_KEY_ID", String::new()),
                ("AWS_SECRET_ACCESS_KEY", String::new()),
                ("AWS_EC2_METADATA_DISABLED", String::new()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", closed.clone()),
                ("HOME", home.clone()),
            ],
        ),
        (
            "no region",
            vec![("INPUT_AWS-REGION", String::new()), ("HOME", home.clone())],
        ),
        (
            "credentials AWS does not know",
            vec![("AWS_ENDPOINT_URL", support::moto_auth_url())],
        ),
        (
            "the registry is down",
            vec![("INPUT_REGISTRY-HOST", closed.clone())],
        ),
        (
            "a plain-HTTP registry addressed as HTTPS",
            vec![("INPUT_REGISTRY-HOST", registry.clone())],
        ),
        (
            "the registry refuses the token",
            vec![(
                "INPUT_REGISTRY-HOST",
                format!("http://{}", support::registry_other_password()),
            )],
        ),
        (
            "the workspace is missing",
            vec![("INPUT_WORKSPACE", "/nonexistent/repository".into())],
        ),
        (
            "the consumers folder is missing",
            vec![("INPUT_CONSUMERS-DIR", "services".into())],
        ),
    ];
    let mut report = String::new();
    for (case, env) in cases {
        let root = root.to_path_buf();
        let files = tempfile::tempdir().unwrap();
        let comment = files.path().join("comment.md");
        let output = comment.to_str().unwrap().to_string();
        let started = std::time::Instant::now();
        let run = tokio::task::spawn_blocking(move || {
            run_action_env(
                &root,
                &[
                    ("mode", "plan"),
                    ("project-name", PROJECT),
                    ("output", &output),
                ],
                &env,
            )
        })
        .await
        .unwrap();
        // No probing for seconds, whatever is missing.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{case}: took {:?}",
            started.elapsed()
        );
        let everything = run.everything();
        for bad in ["DispatchFailure", "{ source:", "ConnectorError", "panicked"] {
            assert!(
                !everything.contains(bad),
                "{case}: `{bad}` shown:\n{}",
                run.describe()
            );
        }
        let lines = errors(&run);
        assert!(
            !lines.is_empty(),
            "{case}: no error annotation:\n{}",
            run.describe()
        );
        for line in lines.iter().chain(
            run.stdout
                .lines()
                .chain(run.stderr.lines())
                .map(String::from)
                .collect::<Vec<_>>()
                .iter(),
        ) {
            assert!(
                line.chars().count() <= 300 && !line.contains('\n'),
                "{case}: not one short line: {line}"
            );
        }
        if run.code == 1 {
            // A plan whose look-ups failed says so in its report, never a guess such as `new`.
            assert!(
                run.summary.contains("| `orders` | **unknown** |")
                    && run.summary.contains("could not look up its image"),
                "{case}: the report does not show the failed look-up:\n{}",
                run.summary
            );
            assert_eq!(run.names("unknown"), ["orders"]);
            assert!(run.names("new").is_empty());
            let written = std::fs::read_to_string(&comment).unwrap();
            assert!(
                written.contains("could not look up its image"),
                "{case}: the comment written to `output` hides the failure:\n{written}"
            );
        }
        report.push_str(&format!("{case}: exit {}\n", run.code));
        for line in lines {
            report.push_str(&format!("  {line}\n"));
        }
    }
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
        (r"ctx-[0-9a-f]{12}…", "ctx-FINGERPRINT…"),
        (r"Request ID: [0-9A-Za-z-]+", "Request ID: ID"),
    ]}, {
        insta::assert_snapshot!(report);
    });
}

#[test]
fn a_run_that_cannot_start_still_says_so_in_its_outputs_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_action(
        dir.path(),
        &[("mode", "deploy"), ("project-name", "Not A Name")],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    assert_eq!(r.outputs["result"], "failure", "{}", r.describe());
    assert_eq!(r.outputs["images"], "{}", "every output is set, empty");
    assert_eq!(r.outputs["failed"], "[]");
    assert!(
        r.summary.starts_with("## cdc-deploy could not run"),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("Not A Name"), "{}", r.summary);
}
