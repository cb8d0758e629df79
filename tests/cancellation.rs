//! A cancelled run and a running Terraform: the Terraform client, given the run's [`Cancel`],
//! runs a stand-in `terraform` (a shell script that handles SIGINT the way Terraform does: it says
//! so, takes a second to finish, then exits 1) and must interrupt it once, wait for it, and keep
//! streaming its lines; once the run is cancelled it must not start a command at all.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cdc_deploy::cancel::Cancel;
use cdc_deploy::clients::terraform::{Terraform, TerraformCli, TerraformError};

/// The stand-in. It records, in `$FAKE_TF_DIR`, that it started, its pid and process group, each
/// SIGINT it gets, and that it exited through its handler; without a signal it runs
/// `$FAKE_TF_SLEEP` seconds (30) and succeeds. On SIGINT it exits `$FAKE_TF_EXIT` (1).
const SCRIPT: &str = r#"#!/bin/sh
d="$FAKE_TF_DIR"
echo started > "$d/started"
echo $$ > "$d/pid"
cut -d' ' -f5 /proc/$$/stat > "$d/pgid"
on_int() {
  echo x >> "$d/sigints"
  echo "Interrupt received. Please wait for Terraform to exit or data loss may occur."
  echo "Gracefully shutting down..." >&2
  sleep 1 &
  wait $!
  touch "$d/clean-exit"
  printf 'Error: execution halted\n\n' >&2
  echo "stopped"
  kill "$long" 2>/dev/null
  exit "${FAKE_TF_EXIT:-1}"
}
trap on_int INT
echo "aws_ecs_service.orders: Modifying..."
sleep "${FAKE_TF_SLEEP:-30}" >/dev/null 2>&1 &
long=$!
wait $long
echo "Apply complete!"
"#;

/// The script, written once for the whole test binary before any test spawns a process (a file
/// being written while another thread forks cannot be run: `Text file busy`).
fn script() -> &'static Path {
    static SCRIPT_PATH: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT_PATH.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cancellation");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("terraform");
        let partial = dir.join(format!("terraform.{}", std::process::id()));
        std::fs::write(&partial, SCRIPT).unwrap();
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    })
}

fn cli(markers: &Path, cancel: Option<Cancel>, extra: &[(&str, &str)]) -> TerraformCli {
    let mut env = vec![("FAKE_TF_DIR".to_string(), markers.display().to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TerraformCli {
        program: script().to_path_buf(),
        dir: markers.to_path_buf(),
        env,
        cancel,
    }
}

fn apply_args() -> Vec<String> {
    ["apply", "-auto-approve", "-no-color"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Cancel `cancel` for `reason` after `after`.
fn cancel_after(cancel: &Cancel, after: Duration, reason: &'static str) {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        cancel.cancel(reason);
    });
}

/// Whether process `pid` still exists (a reaped child does not).
fn running(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn read(markers: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(markers.join(name)).ok()
}

/// The checks every interrupted run shares: one SIGINT, an exit through the handler, a process
/// that is gone, a return no sooner than the handler's second after the cancellation at 500 ms.
fn assert_interrupted_once_and_waited_for(markers: &Path, started: Instant) {
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "returned after {elapsed:?}, before the interrupted command could have finished"
    );
    assert_eq!(
        read(markers, "sigints").as_deref(),
        Some("x\n"),
        "the command gets exactly one SIGINT"
    );
    assert!(
        markers.join("clean-exit").exists(),
        "returned before the command finished stopping"
    );
    let pid: i32 = read(markers, "pid").unwrap().trim().parse().unwrap();
    assert!(
        !running(pid),
        "the command is still running after the call returned"
    );
}

#[tokio::test]
async fn a_cancelled_run_interrupts_a_streamed_command_once_and_waits_for_it_to_stop() {
    let markers = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    let tf = cli(markers.path(), Some(cancel.clone()), &[]);
    let lines = Mutex::new(Vec::<String>::new());
    let sink = |l: &str| lines.lock().unwrap().push(l.to_string());

    let started = Instant::now();
    cancel_after(&cancel, Duration::from_millis(500), "SIGTERM");
    let result = tokio::time::timeout(Duration::from_secs(20), tf.stream(&apply_args(), &sink))
        .await
        .expect("the interrupted command ends long before its 30 s");

    assert_interrupted_once_and_waited_for(markers.path(), started);
    let err = result.expect_err("an interrupted command that fails is an error");
    assert!(err.is_cancelled());
    let TerraformError::Interrupted {
        command,
        reason,
        code,
        diagnostics,
    } = &err
    else {
        panic!("not Interrupted: {err:?}");
    };
    assert_eq!(command, "apply");
    assert_eq!(reason, "SIGTERM");
    assert_eq!(*code, Some(1), "it exited on its own, it was not killed");
    assert_eq!(diagnostics, &["Error: execution halted".to_string()]);
    assert_eq!(
        err.to_string(),
        "`terraform apply` was interrupted because the run was cancelled by SIGTERM: Terraform was asked to stop once and stopped on its own (exit code 1); its last lines in the log say what it had finished"
    );

    // Its lines were streamed the whole time, up to its last.
    let lines = lines.into_inner().unwrap();
    let at = |want: &str| {
        lines
            .iter()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!("`{want}` was not streamed: {lines:?}"))
    };
    assert!(
        at("aws_ecs_service.orders: Modifying...")
            < at("Interrupt received. Please wait for Terraform to exit or data loss may occur.")
    );
    assert!(
        at("Interrupt received. Please wait for Terraform to exit or data loss may occur.")
            < at("stopped")
    );
    // stderr's lines too (read beside stdout, so in no certain order with it).
    at("Gracefully shutting down...");
    at("Error: execution halted");
}

#[tokio::test]
async fn a_cancelled_run_interrupts_a_captured_command_once_and_waits_for_it_to_stop() {
    let markers = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    let tf = cli(markers.path(), Some(cancel.clone()), &[]);
    let args: Vec<String> = vec!["output".into(), "-json".into()];

    let started = Instant::now();
    cancel_after(&cancel, Duration::from_millis(500), "SIGINT");
    let result = tokio::time::timeout(Duration::from_secs(20), tf.capture(&args))
        .await
        .expect("the interrupted command ends long before its 30 s");

    assert_interrupted_once_and_waited_for(markers.path(), started);
    match result {
        Err(TerraformError::Interrupted {
            command,
            reason,
            code,
            diagnostics,
        }) => {
            assert_eq!(command, "output");
            assert_eq!(reason, "SIGINT");
            assert_eq!(code, Some(1));
            assert_eq!(diagnostics, vec!["Error: execution halted".to_string()]);
        }
        other => panic!("not Interrupted: {other:?}"),
    }
}

#[tokio::test]
async fn an_interrupted_command_that_succeeds_anyway_is_a_success() {
    let markers = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    let tf = cli(
        markers.path(),
        Some(cancel.clone()),
        &[("FAKE_TF_EXIT", "0")],
    );
    let lines = Mutex::new(Vec::<String>::new());
    let sink = |l: &str| lines.lock().unwrap().push(l.to_string());

    let started = Instant::now();
    cancel_after(&cancel, Duration::from_millis(500), "SIGTERM");
    let finished = tokio::time::timeout(Duration::from_secs(20), tf.stream(&apply_args(), &sink))
        .await
        .expect("the interrupted command ends long before its 30 s")
        .expect("a command that exits 0 succeeded, interrupted or not");

    assert_interrupted_once_and_waited_for(markers.path(), started);
    assert_eq!(finished.code, Some(0));
    assert!(
        finished.stdout.ends_with("stopped"),
        "{:?}",
        finished.stdout
    );
}

#[tokio::test]
async fn a_command_is_not_started_once_the_run_is_cancelled() {
    let markers = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    cancel.cancel("SIGINT");
    let tf = cli(markers.path(), Some(cancel), &[]);
    let sink = |_: &str| panic!("nothing runs, nothing prints");

    let streamed = tf.stream(&apply_args(), &sink).await;
    assert_eq!(
        streamed.as_ref().map(|f| f.code),
        Err(&TerraformError::Cancelled {
            command: "apply".into(),
            reason: "SIGINT".into(),
        })
    );
    assert_eq!(
        streamed.unwrap_err().to_string(),
        "`terraform apply` was not started: the run was cancelled by SIGINT"
    );
    let captured = tf.capture(&["output".to_string(), "-json".into()]).await;
    assert!(
        matches!(&captured, Err(TerraformError::Cancelled { command, .. }) if command == "output"),
        "{captured:?}"
    );
    assert!(captured.unwrap_err().is_cancelled());
    assert!(
        !markers.path().join("started").exists(),
        "a command was started after the run was cancelled"
    );
}

#[tokio::test]
async fn an_uncancelled_command_runs_to_its_end_in_its_own_process_group() {
    for cancel in [None, Some(Cancel::new())] {
        let markers = tempfile::tempdir().unwrap();
        let tf = cli(markers.path(), cancel, &[("FAKE_TF_SLEEP", "0")]);
        let sink = |_: &str| {};
        let finished = tf.stream(&apply_args(), &sink).await.unwrap();
        assert_eq!(finished.code, Some(0));
        assert!(finished.stdout.ends_with("Apply complete!"));
        assert_eq!(read(markers.path(), "sigints"), None);
        // Its own group: a terminal's Ctrl-C does not reach it besides the one interrupt sent.
        assert_eq!(
            read(markers.path(), "pgid").unwrap().trim(),
            read(markers.path(), "pid").unwrap().trim()
        );
    }
}
