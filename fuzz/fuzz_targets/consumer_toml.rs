//! `consumer.toml` reading and validation: any bytes give settings or findings, never a panic,
//! and every finding names the file and, when it has one, a line inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FILE: &str = "consumer_scripts/orders/consumer.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = std::path::Path::new("/nonexistent/consumer_scripts/orders");
    if let Err(findings) = cdc_deploy::consumers::config::validate(text, FILE, dir) {
        assert!(!findings.is_empty());
        let lines = text.lines().count().max(1);
        for d in findings {
            assert_eq!(d.file, FILE);
            if let Some(line) = d.line {
                assert!(
                    line >= 1 && line <= lines + 1,
                    "line {line} of {lines}: {d:?}"
                );
            }
            assert!(!d.message.is_empty());
        }
    }
});
