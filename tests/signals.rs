//! Real signals to this test process: alone in its own test binary, because a signal reaches the
//! whole process and would end or cancel any other test running beside it.

use std::time::Duration;

use cdc_deploy::cancel;

fn send_to_self(signal: libc::c_int) {
    // SAFETY: kill(2) with this process's own id; it touches no memory.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

#[tokio::test]
async fn the_first_signal_cancels_the_run_and_a_second_does_not_end_the_process() {
    let cancel = cancel::listen().expect("the signal handlers are installed");
    assert!(!cancel.is_cancelled());

    send_to_self(libc::SIGTERM);
    tokio::time::timeout(Duration::from_secs(5), cancel.cancelled())
        .await
        .expect("SIGTERM cancels the run");
    assert_eq!(cancel.reason().as_deref(), Some("SIGTERM"));

    // A second signal (the runner's SIGINT, a second Ctrl-C) is only logged: the process goes on
    // (without a handler SIGINT would end it here) and the first reason stays.
    send_to_self(libc::SIGINT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cancel.reason().as_deref(), Some("SIGTERM"));
}
