//! Names that become AWS resource names: the project and each consumer.
//!
//! A consumer's resources are named `<project>-<consumer>`: the ECR repository, the ECS service
//! and task definition family, the IAM roles (`…-task`, `…-execution`) and the log group
//! `/ecs/<project>/<consumer>`. The rules here are the intersection of what those services accept,
//! so a name that passes is valid everywhere. This module never touches the file system.

use std::fmt;

/// The longest `<project>-<consumer>` name: IAM role names stop at 64 characters and the
/// longest suffix the deployment adds is `-execution` (10), with a margin for `-task`.
pub const MAX_RESOURCE_NAME: usize = 52;
/// The longest project name: it prefixes every resource, so it must leave room for consumers.
pub const MAX_PROJECT_NAME: usize = 24;

/// Why a name was refused, with a name that would be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NameError {
    pub reason: String,
    /// A valid name close to the one given, when one can be derived.
    pub suggestion: Option<String>,
}

/// A validated project name: lowercase letters, digits and single hyphens, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let ok = raw.len() <= MAX_PROJECT_NAME
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && !raw.ends_with('-')
            && !raw.contains("--")
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(ProjectName(raw.to_string()))
        } else {
            Err(NameError {
                reason: format!(
                    "project name `{raw}` is not valid: use at most {MAX_PROJECT_NAME} lowercase letters, digits and single hyphens, starting with a letter"
                ),
                suggestion: sanitize(raw, &['-'], MAX_PROJECT_NAME),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated consumer name: the folder's name under `consumers-dir`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ConsumerName(String);

impl ConsumerName {
    /// Check a folder name on its own. Its length with the project prefix is checked by
    /// [`resource_name`].
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let mut problems = Vec::new();
        if raw.is_empty() {
            problems.push("it is empty");
        }
        if raw.chars().any(|c| c.is_ascii_uppercase()) {
            problems.push("ECR repository names are lowercase");
        }
        if raw.contains('.') {
            problems.push("ECS service names cannot contain `.`");
        }
        if raw
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        {
            problems.push("only letters, digits, `-` and `_` are allowed");
        }
        if !raw.is_empty() && !raw.starts_with(|c: char| c.is_ascii_lowercase()) {
            problems.push("it must start with a lowercase letter");
        }
        if raw.ends_with(['-', '_']) {
            problems.push("it must end with a letter or digit");
        }
        if ["--", "__", "-_", "_-"].iter().any(|s| raw.contains(s)) {
            problems.push("ECR repository names cannot have two separators in a row");
        }
        if problems.is_empty() {
            Ok(ConsumerName(raw.to_string()))
        } else {
            Err(NameError {
                reason: format!(
                    "consumer name `{raw}` is not valid: {}",
                    problems.join("; ")
                ),
                suggestion: sanitize(raw, &['-', '_'], MAX_RESOURCE_NAME),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a consumer's AWS resources. A folder already named `<project>-…` is not prefixed
/// twice, so `shop-orders` and `orders` in project `shop` both become `shop-orders` (and collide).
pub fn resource_name(project: &ProjectName, consumer: &ConsumerName) -> Result<String, NameError> {
    let prefix = format!("{project}-");
    let name = if consumer.as_str().starts_with(&prefix) {
        consumer.as_str().to_string()
    } else {
        format!("{prefix}{consumer}")
    };
    if name.len() > MAX_RESOURCE_NAME {
        let room = MAX_RESOURCE_NAME.saturating_sub(prefix.len());
        return Err(NameError {
            reason: format!(
                "consumer name `{consumer}` is too long: `{name}` has {} characters and AWS resource names here stop at {MAX_RESOURCE_NAME}; rename the folder to at most {room} characters",
                name.len()
            ),
            suggestion: sanitize(consumer.as_str(), &['-', '_'], room),
        });
    }
    Ok(name)
}

/// Derive a valid name from an invalid one: lowercase, other characters turned into the first
/// allowed separator, runs of separators folded, the ends trimmed, cut to `max`.
fn sanitize(raw: &str, separators: &[char], max: usize) -> Option<String> {
    let sep = separators[0];
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else {
            let s = if separators.contains(&c) { c } else { sep };
            if !out.is_empty() && !out.ends_with(separators) {
                out.push(s);
            }
        }
    }
    let trimmed = out.trim_start_matches(|c: char| c.is_ascii_digit() || separators.contains(&c));
    let mut name: String = trimmed.chars().take(max).collect();
    while name.ends_with(separators) {
        name.pop();
    }
    (!name.is_empty() && name != raw).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(s: &str) -> ProjectName {
        ProjectName::parse(s).unwrap()
    }

    #[test]
    fn valid_consumer_names() {
        for ok in ["orders", "orders-cdc", "orders_cdc", "o1", "a-b_c2"] {
            assert!(ConsumerName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_consumer_names_say_why_and_suggest() {
        let cases = [
            ("Orders", "lowercase", Some("orders")),
            ("orders.cdc", "cannot contain `.`", Some("orders-cdc")),
            ("orders cdc", "only letters", Some("orders-cdc")),
            ("1orders", "start with a lowercase letter", Some("orders")),
            ("orders-", "end with a letter or digit", Some("orders")),
            ("orders--cdc", "two separators", Some("orders-cdc")),
            ("ördérs", "only letters", Some("rd-rs")),
        ];
        for (raw, why, suggestion) in cases {
            let err = ConsumerName::parse(raw).unwrap_err();
            assert!(err.reason.contains(why), "{raw}: {}", err.reason);
            assert_eq!(err.suggestion.as_deref(), suggestion, "{raw}");
        }
    }

    #[test]
    fn project_prefix_is_not_doubled() {
        let p = project("shop");
        let a = ConsumerName::parse("orders").unwrap();
        let b = ConsumerName::parse("shop-orders").unwrap();
        assert_eq!(resource_name(&p, &a).unwrap(), "shop-orders");
        assert_eq!(resource_name(&p, &b).unwrap(), "shop-orders");
    }

    #[test]
    fn long_names_are_refused_with_the_room_left() {
        let p = project("shop");
        let long = ConsumerName::parse(&"a".repeat(60)).unwrap();
        let err = resource_name(&p, &long).unwrap_err();
        assert!(
            err.reason.contains("at most 47 characters"),
            "{}",
            err.reason
        );
        assert_eq!(err.suggestion.unwrap().len(), 47);
    }

    #[test]
    fn project_names() {
        assert!(ProjectName::parse("cdc").is_ok());
        assert!(ProjectName::parse("shop-cdc2").is_ok());
        let err = ProjectName::parse("Shop_CDC").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("shop-cdc"));
        assert!(ProjectName::parse(&"a".repeat(25)).is_err());
    }
}
