//! The consumers a deploy would build, split into at most `n` groups of about the same build
//! context size, as a GitHub Actions matrix: one runner builds and pushes each group (`mode:
//! build`), then one deploy job applies and watches, building nothing the shards pushed.
//!
//! Pure.

use serde_json::{json, Value};

use super::{Plan, Step};

/// The most shards a plan splits into (GitHub runs at most 256 jobs of one matrix).
pub const MAX_SHARDS: usize = 64;

/// The consumers with a build step, in at most `n` groups balanced by context size: the largest
/// first, each into the group with the fewest bytes so far (ties: the one with fewer
/// consumers, then the first). Groups are never empty; names in each are sorted.
pub fn shards(plan: &Plan, n: usize) -> Vec<Vec<String>> {
    let mut builds: Vec<(&str, u64)> = plan
        .consumers
        .iter()
        .filter(|c| c.steps.contains(&Step::Build))
        .map(|c| (c.name.as_str(), c.context_bytes))
        .collect();
    builds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let n = n.clamp(1, MAX_SHARDS).min(builds.len());
    let mut groups: Vec<(u64, Vec<String>)> = vec![(0, Vec::new()); n];
    for (name, bytes) in builds {
        let (total, names) = groups
            .iter_mut()
            .min_by_key(|(total, names)| (*total, names.len()))
            .expect("at least one group when there is a build");
        *total += bytes;
        names.push(name.to_string());
    }
    groups
        .into_iter()
        .map(|(_, mut names)| {
            names.sort();
            names
        })
        .collect()
}

/// The `matrix` output: `{"include": [{"shard": "1/3", "consumers": "a,b"}, …]}`, which a
/// workflow's `strategy.matrix` takes as it is (`fromJSON`), each `consumers` a value for the
/// `consumers` input of a `mode: build` step. `{"include": []}` when nothing is to be built.
pub fn matrix(groups: &[Vec<String>]) -> Value {
    let n = groups.len();
    json!({
        "include": groups
            .iter()
            .enumerate()
            .map(|(i, g)| json!({"shard": format!("{}/{n}", i + 1), "consumers": g.join(",")}))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ConsumerPlan, Status};

    fn plan(sizes: &[(&str, u64, bool)]) -> Plan {
        Plan {
            consumers: sizes
                .iter()
                .map(|(name, bytes, build)| ConsumerPlan {
                    context_bytes: *bytes,
                    steps: if *build {
                        vec![Step::Build, Step::Push]
                    } else {
                        vec![]
                    },
                    ..ConsumerPlan::new(
                        name,
                        if *build {
                            Status::Changed
                        } else {
                            Status::Unchanged
                        },
                    )
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn every_consumer_to_build_is_in_exactly_one_shard_and_the_shards_are_balanced() {
        let mut sizes: Vec<(String, u64, bool)> = (0..40)
            .map(|i| (format!("c{i:02}"), 1_000 + (i * 37 % 11) * 500, i % 5 != 0))
            .collect();
        sizes.push(("huge".into(), 20_000, true));
        let refs: Vec<(&str, u64, bool)> =
            sizes.iter().map(|(n, b, x)| (n.as_str(), *b, *x)).collect();
        let p = plan(&refs);
        let groups = shards(&p, 4);
        assert_eq!(groups.len(), 4);
        let mut all: Vec<&String> = groups.iter().flatten().collect();
        all.sort();
        let mut want: Vec<&String> = sizes.iter().filter(|s| s.2).map(|s| &s.0).collect();
        want.sort();
        assert_eq!(all, want, "each consumer to build once, and only those");
        let bytes = |g: &Vec<String>| -> u64 {
            g.iter()
                .map(|n| sizes.iter().find(|s| &s.0 == n).unwrap().1)
                .sum()
        };
        let totals: Vec<u64> = groups.iter().map(bytes).collect();
        let (min, max) = (totals.iter().min().unwrap(), totals.iter().max().unwrap());
        assert!(
            max - min <= 20_000,
            "within the largest context: {totals:?}"
        );
        let m = matrix(&groups);
        assert_eq!(m["include"].as_array().unwrap().len(), 4);
        assert_eq!(m["include"][0]["shard"], "1/4");
    }

    #[test]
    fn fewer_consumers_than_shards_and_none_at_all() {
        let p = plan(&[("a", 10, true), ("b", 5, true), ("c", 5, false)]);
        assert_eq!(
            shards(&p, 8),
            [vec!["a".to_string()], vec!["b".to_string()]]
        );
        assert_eq!(shards(&p, 1), [vec!["a".to_string(), "b".to_string()]]);
        let none = plan(&[("c", 5, false)]);
        assert!(shards(&none, 4).is_empty());
        assert_eq!(matrix(&shards(&none, 4)), json!({"include": []}));
        assert_eq!(
            matrix(&shards(&p, 1)),
            json!({"include": [{"shard": "1/1", "consumers": "a,b"}]})
        );
    }
}
