//! Property tests: whatever a `consumer.toml` or a folder name holds, validation answers with
//! settings or findings, never a panic, and every finding points into the file.

use std::path::Path;

use cdc_deploy::consumers::config::validate;
use cdc_deploy::consumers::names::{resource_name, ConsumerName, ProjectName};
use cdc_deploy::context::dockerignore::DockerIgnore;
use proptest::prelude::*;

const FILE: &str = "consumer_scripts/x/consumer.toml";

/// TOML-ish text built from the keys and shapes a `consumer.toml` uses, so that the generator
/// reaches deep into validation instead of stopping at the first syntax error.
fn tomlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("cpu"),
        Just("memory"),
        Just("desired_count"),
        Just("platform"),
        Just("stop_timeout"),
        Just("min"),
        Just("max"),
        Just("cpu_target"),
        Just("target_lag"),
        Just("command"),
        Just("dockerfile"),
        Just("target"),
        Just("msk_cluster"),
        Just("topic"),
        Just("X"),
        Just("DB_PASSWORD"),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..20000).prop_map(|n| n.to_string()),
        "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "")),
        Just("\"linux/arm64\"".to_string()),
        Just("\"arn:aws:ssm:us-east-1:123456789012:parameter/x\"".to_string()),
        Just("[]".to_string()),
        Just("[\"CMD\", \"true\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("true".to_string()),
        Just("1.5".to_string()),
    ];
    let header = prop_oneof![
        Just("[environment]"),
        Just("[secrets]"),
        Just("[build]"),
        Just("[build.args]"),
        Just("[health_check]"),
        Just("[autoscaling]"),
        Just("[autoscaling.kafka_lag]"),
        Just("[nope]"),
    ];
    let line = prop_oneof![
        3 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => header.prop_map(String::from),
        1 => "[ -~]{0,20}",
    ];
    prop::collection::vec(line, 0..16).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn consumer_toml_never_panics(text in tomlish()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        if let Err(errors) = validate(&text, FILE, dir.path()) {
            prop_assert!(!errors.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for e in errors {
                prop_assert_eq!(e.file.as_str(), FILE);
                if let Some(l) = e.line {
                    prop_assert!(l >= 1 && l <= lines, "line {} of {}", l, lines);
                }
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = validate(&text, FILE, Path::new("/nonexistent"));
    }

    #[test]
    fn names_either_pass_everywhere_or_suggest_a_valid_one(raw in "\\PC{0,70}") {
        let project = ProjectName::parse("shop").unwrap();
        match ConsumerName::parse(&raw) {
            Ok(name) => {
                let r = resource_name(&project, &name);
                if let Ok(r) = r {
                    // ECR's repository name grammar, and ECS's service name characters.
                    let ecr = regex::Regex::new(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$").unwrap();
                    prop_assert!(ecr.is_match(&r), "{}", r);
                    prop_assert!(r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                    prop_assert!(r.len() <= 52);
                }
            }
            Err(e) => {
                if let Some(s) = e.suggestion {
                    prop_assert!(ConsumerName::parse(&s).is_ok(), "suggestion `{}` for `{}` is invalid", s, raw);
                }
            }
        }
    }

    #[test]
    fn dockerignore_never_panics(text in "[ -~\\n]{0,80}", path in "[a-z/.*]{1,20}") {
        if let Ok(rules) = DockerIgnore::parse(&text) {
            let _ = rules.excludes(&path);
        }
    }
}
