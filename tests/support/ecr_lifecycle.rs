//! ECR's lifecycle policy evaluation, as its documentation states the rules (moto stores policies
//! but never runs them): rules are evaluated by `rulePriority`, lowest first; a rule selects the
//! images its `tagStatus` and `tagPrefixList`/`tagPatternList` match (every prefix or pattern
//! matched by one of the image's tags); `imageCountMoreThan` expires the selected images past the
//! newest `countNumber` (ordered by push time, oldest expired first), `sinceImagePushed` those
//! pushed more than `countNumber` days ago; an image expires by exactly one rule or none, and an
//! image that matches the selection of a higher-priority rule cannot be expired by a lower one,
//! though lower rules still count it. Only one rule may select untagged images, and an `any`
//! rule must come last.
#![allow(dead_code)]

use std::collections::BTreeSet;

use serde_json::Value;

/// An image as the policy sees it.
#[derive(Clone, Debug)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    /// When it was pushed, in seconds.
    pub pushed_at: u64,
}

/// A `*` wildcard pattern against a tag.
pub fn wildcard(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == tag;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !tag.starts_with(first) || tag.len() < first.len() + last.len() || !tag.ends_with(last) {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `rule`'s selection matches `image` (its tagging requirements).
fn selects(rule: &Value, image: &Image) -> bool {
    let s = &rule["selection"];
    match s["tagStatus"].as_str() {
        Some("untagged") => image.tags.is_empty(),
        Some("any") => true,
        Some("tagged") => {
            let prefixes = strings(&s["tagPrefixList"]);
            let patterns = strings(&s["tagPatternList"]);
            assert!(
                !prefixes.is_empty() || !patterns.is_empty(),
                "a tagged rule needs tagPrefixList or tagPatternList: {rule}"
            );
            !image.tags.is_empty()
                && prefixes
                    .iter()
                    .all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str())))
                && patterns
                    .iter()
                    .all(|p| image.tags.iter().any(|t| wildcard(p, t)))
        }
        other => panic!("ECR refuses tagStatus {other:?}: {rule}"),
    }
}

/// The digests `policy` expires among `images`, `now` in seconds.
pub fn expired(policy: &Value, images: &[Image], now: u64) -> BTreeSet<String> {
    let mut rules: Vec<&Value> = policy["rules"].as_array().expect("rules").iter().collect();
    rules.sort_by_key(|r| r["rulePriority"].as_u64().expect("rulePriority"));
    let priorities: BTreeSet<u64> = rules
        .iter()
        .map(|r| r["rulePriority"].as_u64().unwrap())
        .collect();
    assert_eq!(priorities.len(), rules.len(), "priorities must be unique");
    let untagged = rules
        .iter()
        .filter(|r| r["selection"]["tagStatus"] == "untagged")
        .count();
    assert!(untagged <= 1, "only one rule may select untagged images");
    if let Some(i) = rules
        .iter()
        .position(|r| r["selection"]["tagStatus"] == "any")
    {
        assert_eq!(
            i,
            rules.len() - 1,
            "an `any` rule must have the highest priority"
        );
    }
    let mut out = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        assert_eq!(rule["action"]["type"], "expire", "{rule}");
        let mut selected: Vec<&Image> = images.iter().filter(|img| selects(rule, img)).collect();
        // Youngest first.
        selected.sort_by_key(|img| std::cmp::Reverse(img.pushed_at));
        let n = rule["selection"]["countNumber"]
            .as_u64()
            .expect("countNumber");
        assert!(n >= 1, "countNumber is at least 1");
        let candidates: Vec<&Image> = match rule["selection"]["countType"].as_str() {
            Some("imageCountMoreThan") => selected.into_iter().skip(n as usize).collect(),
            Some("sinceImagePushed") => {
                assert_eq!(rule["selection"]["countUnit"], "days", "{rule}");
                selected
                    .into_iter()
                    .filter(|img| img.pushed_at + n * 86_400 < now)
                    .collect()
            }
            other => panic!("ECR refuses countType {other:?}"),
        };
        for img in candidates {
            let higher = rules[..i].iter().any(|r| selects(r, img));
            if !higher {
                out.insert(img.digest.clone());
            }
        }
    }
    out
}
