//! Inputs nobody wrote by hand, through the binary as the action runs it: files that are not
//! UTF-8, TOML nested a million deep, a folder whose name is not UTF-8, an input and an event
//! payload that are not UTF-8. Each is a finding that names its file and, where it has one, the
//! line; the other consumers are planned; nothing panics. (Sizes and peak memory:
//! `benches/hostile_inputs.rs`.)

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::process::Command;

use support::{runner_commands, write};

/// `plan --offline` as the action runs it, with `env` (values that need not be UTF-8).
fn plan(ws: &std::path::Path, env: &[(&str, OsString)]) -> (i32, String) {
    let out = Command::new(support::binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", ws)
        .env("INPUT_MODE", "plan")
        .env("INPUT_OFFLINE", "true")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(ws)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

fn bytes(path: &std::path::Path, b: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b).unwrap();
}

#[test]
fn each_malformed_file_is_a_finding_with_its_file_and_line_and_the_others_are_planned() {
    let ws = tempfile::tempdir().unwrap();
    let root = ws.path();
    let dockerfile = "FROM scratch\nCOPY . /app\n";
    for name in ["okay", "toml", "deep", "docker", "ignore"] {
        write(
            root,
            &format!("consumer_scripts/{name}/Dockerfile"),
            dockerfile,
        );
    }
    let c = |n: &str, f: &str| root.join(format!("consumer_scripts/{n}/{f}"));
    bytes(
        &c("toml", "consumer.toml"),
        b"cpu = 256\nmemory = 512\n# caf\xe9\n",
    );
    let nested = format!("cpu = {}{}\n", "[".repeat(1 << 20), "]".repeat(1 << 20));
    bytes(&c("deep", "consumer.toml"), nested.as_bytes());
    bytes(&c("docker", "Dockerfile"), b"FROM scratch\nRUN echo \xff\n");
    bytes(&c("ignore", ".dockerignore"), b"*.tmp\nbuild/\n\xfe\n");
    let odd = root.join(std::ffi::OsStr::from_bytes_compat(
        b"consumer_scripts/bad\xffname",
    ));
    bytes(&odd.join("Dockerfile"), dockerfile.as_bytes());

    let (code, out) = plan(root, &[]);
    assert_eq!(code, 1, "{out}");
    let errors: Vec<String> = runner_commands(&out)
        .into_iter()
        .filter(|c| c.starts_with("::error "))
        .collect();
    let has = |want: &str| {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "{want}:\n{}",
            errors.join("\n")
        )
    };
    has("::error file=consumer_scripts/toml/consumer.toml,line=3,col=6,");
    has("::error file=consumer_scripts/deep/consumer.toml,line=1,");
    has("::error file=consumer_scripts/docker/Dockerfile,line=2,col=10,");
    has("::error file=consumer_scripts/ignore/.dockerignore,line=3,col=1,");
    has("::error file=consumer_scripts/bad");
    assert!(out.contains("nested too deeply to read"), "{out}");
    assert!(
        out.contains("is not UTF-8 text: line 3 has a byte that is not"),
        "{out}"
    );
    assert!(
        out.contains("output new: [\"okay\"]"),
        "the others are planned: {out}"
    );
}

/// `OsStr` from bytes (Unix).
trait FromBytes {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

#[test]
fn an_input_or_an_event_payload_that_is_not_utf8_is_named() {
    let ws = tempfile::tempdir().unwrap();
    write(
        ws.path(),
        "consumer_scripts/okay/Dockerfile",
        "FROM scratch\n",
    );
    let (code, out) = plan(
        ws.path(),
        &[(
            "INPUT_PROJECT-NAME",
            OsString::from_vec(b"sh\xffop".to_vec()),
        )],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("input `project-name` is not UTF-8 text (`INPUT_PROJECT-NAME`"),
        "{out}"
    );

    let event = ws.path().join("event.json");
    bytes(&event, b"{\n  \"after\": \"\xff\"\n}\n");
    let (code, out) = plan(
        ws.path(),
        &[
            ("INPUT_MODE", "auto".into()),
            ("GITHUB_EVENT_NAME", "push".into()),
            ("GITHUB_EVENT_PATH", event.clone().into_os_string()),
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "could not read the event payload `{}`: it is not UTF-8 text (line 2, column 13)",
            event.display()
        )),
        "{out}"
    );
}
