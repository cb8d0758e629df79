//! Event payloads as the runner hands them over: any bytes, for each event the action reads, give
//! an event or an error naming the file, never a panic.
#![no_main]

use cdc_deploy::config::event::Event;
use libfuzzer_sys::fuzz_target;

const EVENTS: [&str; 7] = [
    "push",
    "pull_request",
    "pull_request_target",
    "merge_group",
    "workflow_dispatch",
    "schedule",
    "issue_comment",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(payload) = std::str::from_utf8(rest) else {
        return;
    };
    let name = EVENTS[usize::from(which) % EVENTS.len()];
    match Event::parse(
        name,
        Some(payload),
        "/home/runner/work/_temp/_github_workflow/event.json",
    ) {
        Ok(e) => {
            let _ = (e.name(), e.commit(), e.mode(), e.deleted_ref());
        }
        Err(e) => assert!(e.to_string().contains("event.json"), "{e}"),
    }
});
