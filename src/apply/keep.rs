//! The images environments run, kept from the lifecycle policy. A consumer's repository is shared
//! by every environment of the project, and its policy keeps only the newest `keep-images`
//! images built: staging's deploys alone could push the image production runs (or the one it
//! would roll back to) past that count. After each apply, the image a consumer now runs in this
//! environment gets the tag `keep-run-<environment>` and the one it ran before `keep-ran-<environment>`;
//! the policy's first rule selects every `keep-` image and never expires one, and ECR lets no
//! lower rule expire what a higher one selects.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;

use crate::clients::ecr::{keep_ran_tag, keep_run_tag};
use crate::clients::registry::Registry;
use crate::plan::entries::AppliedConsumer;
use crate::reference::split_image;

/// Tags moved at once.
const IN_FLIGHT: usize = 8;

/// `repository` and `digest` of an image pinned in `host`'s registry; `None` for an image of
/// another registry, or one not pinned by digest.
fn in_registry<'a>(image: &'a str, host: &str) -> Option<(&'a str, &'a str)> {
    let (name, reference) = split_image(image);
    let (image_host, repository) = name.split_once('/')?;
    let digest = reference.filter(|r| r.starts_with("sha256:"))?;
    (image_host == host).then_some((repository, digest))
}

/// One tag to put on one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepTag {
    pub consumer: String,
    pub repository: String,
    pub digest: String,
    pub tag: String,
    /// Whether the tag may already be on the image (a consumer the apply did not change): it is
    /// looked up first and put only when it is not.
    pub check_first: bool,
}

/// The tags to move after an apply: for each consumer whose image changed (`before` → `now`),
/// `keep-run-<environment>` on the new one and `keep-ran-<environment>` on the one before; for
/// each other consumer, `keep-run-<environment>` on what it runs when the tag is not there yet
/// (an image deployed by a version without these tags, or before its repository got the
/// exclusion). `skip`: consumers put back on their earlier entry (what runs is what ran before).
pub fn moves(
    environment: &str,
    host: &str,
    before: &BTreeMap<String, AppliedConsumer>,
    now: &BTreeMap<String, AppliedConsumer>,
    skip: &BTreeSet<String>,
) -> Vec<KeepTag> {
    let mut out = Vec::new();
    for (name, a) in now {
        let Some((repository, digest)) = in_registry(&a.image, host) else {
            continue;
        };
        let earlier = before.get(name).map(|b| b.image.as_str());
        let unchanged = skip.contains(name) || earlier == Some(a.image.as_str());
        let mut tag = |digest: &str, tag: String, check_first: bool| {
            out.push(KeepTag {
                consumer: name.clone(),
                repository: repository.to_string(),
                digest: digest.to_string(),
                tag,
                check_first,
            })
        };
        tag(digest, keep_run_tag(environment), unchanged);
        if unchanged {
            continue;
        }
        if let Some((r, d)) = earlier.and_then(|e| in_registry(e, host)) {
            if r == repository {
                tag(d, keep_ran_tag(environment), false);
            }
        }
    }
    out
}

/// Put each tag on its image (read by digest, stored again under the tag). Returns a warning for
/// each that could not be moved.
pub async fn apply(registry: &dyn Registry, tags: &[KeepTag]) -> Vec<String> {
    let results: Vec<Option<String>> = futures_util::stream::iter(tags)
        .map(|k| async move {
            if k.check_first {
                if let Ok(Some(m)) = registry.manifest(&k.repository, &k.tag).await {
                    if m.digest == k.digest {
                        return None;
                    }
                }
            }
            let moved = match registry.manifest(&k.repository, &k.digest).await {
                Ok(Some(m)) => registry
                    .put_manifest(&k.repository, &k.tag, &m)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Ok(None) => Err(format!("`{}` holds no `{}`", k.repository, k.digest)),
                Err(e) => Err(e.to_string()),
            };
            moved.err().map(|e| {
                format!(
                    "`{}`: the tag `{}` was not moved to `{}` ({e}); until a later deploy that applies a change moves it, the lifecycle policy does not protect that image and may expire it once `keep-images` newer ones are pushed",
                    k.consumer, k.tag, k.digest
                )
            })
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(image: &str) -> AppliedConsumer {
        AppliedConsumer {
            image: image.into(),
            ..AppliedConsumer::default()
        }
    }

    #[test]
    fn the_image_now_run_and_the_one_before_are_tagged_for_the_environment() {
        let host = "1.dkr.ecr.eu-west-1.amazonaws.com";
        let img =
            |repo: &str, d: char| format!("{host}/{repo}@sha256:{}", d.to_string().repeat(64));
        let before = BTreeMap::from([
            ("orders".to_string(), applied(&img("shop-orders", 'a'))),
            ("same".to_string(), applied(&img("shop-same", 'c'))),
            ("held".to_string(), applied(&img("shop-held", 'e'))),
        ]);
        let now = BTreeMap::from([
            ("orders".to_string(), applied(&img("shop-orders", 'b'))),
            ("same".to_string(), applied(&img("shop-same", 'c'))),
            ("held".to_string(), applied(&img("shop-held", 'f'))),
            ("new".to_string(), applied(&img("shop-new", 'd'))),
            (
                "elsewhere".to_string(),
                applied("docker.io/library/x@sha256:1"),
            ),
        ]);
        let skip = BTreeSet::from(["held".to_string()]);
        let tags: Vec<(String, String, char, bool)> = moves("prod", host, &before, &now, &skip)
            .into_iter()
            .map(|k| {
                (
                    k.consumer,
                    k.tag,
                    k.digest.chars().last().unwrap(),
                    k.check_first,
                )
            })
            .collect();
        let t =
            |c: &str, tag: &str, d: char, check: bool| (c.to_string(), tag.to_string(), d, check);
        assert_eq!(
            tags,
            [
                // Put back on its earlier entry: what it runs keeps (or gets) the tag.
                t("held", "keep-run-prod", 'f', true),
                t("new", "keep-run-prod", 'd', false),
                t("orders", "keep-run-prod", 'b', false),
                t("orders", "keep-ran-prod", 'a', false),
                // Unchanged: tagged when the tag is not on it yet.
                t("same", "keep-run-prod", 'c', true),
            ]
        );
    }
}
