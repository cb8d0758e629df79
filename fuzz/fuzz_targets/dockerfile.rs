//! The Dockerfile checks and the readers of a build's step names: any text, never a panic, and a
//! finding's line is a line of the file.
#![no_main]

use cdc_deploy::consumers::dockerfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    let target = text.lines().next().filter(|l| l.len() < 40);
    for f in dockerfile::findings(text, target) {
        if let Some(line) = f.line {
            assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
        }
    }
    let _ = dockerfile::cache_stages(text, target);
    for n in 0..4 {
        if let Some(line) = dockerfile::classic_step_line(text, n) {
            assert!(line >= 1 && line <= lines + 1);
        }
    }
    let step = text.lines().last().unwrap_or_default();
    let _ = dockerfile::classic_step_number(step);
    if let Some(line) = dockerfile::buildkit_step_line(text, step) {
        assert!(line >= 1 && line <= lines + 1);
    }
});
