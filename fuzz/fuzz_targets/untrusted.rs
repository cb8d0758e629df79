//! Text from outside printed to the runner's log: after `inert`, no line is a workflow command
//! (`::name::` at its start, after spaces) and no `##[` remains; escaped command data holds no
//! line break.
#![no_main]

use cdc_deploy::gha;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = gha::inert(&text);
    for line in out.split(['\n', '\r']) {
        assert!(
            !line.trim_start().starts_with("::"),
            "{line:?} from {text:?}"
        );
    }
    assert!(!out.contains("##["), "{out:?}");
    let data = gha::escape_data(&text);
    assert!(!data.contains(['\n', '\r']));
    let property = gha::escape_property(&text);
    assert!(!property.contains(['\n', '\r', ':', ',']));
});
