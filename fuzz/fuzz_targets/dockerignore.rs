//! `.dockerignore` compiling and matching: the first line of the input is a path, the rest the
//! file. Never a panic or a hang; a top-level path is judged the same with and without its
//! parents' results, and the walk's judgement of each component is computed as the context walk
//! computes it (an excluded folder skipped whole when no exception reaches inside).
#![no_main]

use cdc_deploy::context::dockerignore::DockerIgnore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, file) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(ignore) = DockerIgnore::parse(file) else {
        return;
    };
    let path = path.trim_matches('/');
    if path.is_empty()
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return;
    }
    let mut parent: Option<Vec<bool>> = None;
    let mut so_far = String::new();
    for part in path.split('/') {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        let (excluded, results) = ignore.excludes_below(&so_far, parent.as_deref());
        if parent.is_none() {
            assert_eq!(excluded, ignore.excludes(&so_far), "`{so_far}`");
        }
        if excluded && ignore.skips_dir(&so_far) {
            return;
        }
        parent = Some(results);
    }
});
