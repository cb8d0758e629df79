//! A fleet of consumers that is already deployed: folders on disk, their ECR repositories in moto
//! and an image under each one's fingerprint tag in the registry, put there through the APIs
//! directly (no builds), so a run over it has nothing to do. Tests and the no-op benchmark share
//! it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// Write `n` consumers named `c0000`, `c0001`, … under `root/consumer_scripts`.
pub fn write_fleet(root: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("c{i:04}");
            let dir = root.join("consumer_scripts").join(&name);
            std::fs::create_dir_all(dir.join("app")).unwrap();
            std::fs::write(
                dir.join("Dockerfile"),
                "FROM scratch\nCOPY app /app\nCMD [\"/app/run\"]\n",
            )
            .unwrap();
            std::fs::write(dir.join("app/run"), format!("consumer {name}\n")).unwrap();
            name
        })
        .collect()
}

/// Each consumer's fingerprint tag, as a run computes it.
pub fn fingerprint_tags(root: &Path, project: &str) -> BTreeMap<String, String> {
    let project = cdc_deploy::consumers::names::ProjectName::parse(project).unwrap();
    let found =
        cdc_deploy::consumers::discovery::discover(root, Path::new("consumer_scripts"), &project)
            .unwrap();
    found
        .consumers
        .iter()
        .map(|spec| {
            let report = cdc_deploy::pipeline::fingerprint_one(spec).unwrap();
            (spec.name.to_string(), report.report.fingerprint.tag())
        })
        .collect()
}

/// Create each consumer's repository as a deploy would (immutable tags, scan on push, tags and
/// lifecycle policy) and put one image under its fingerprint tag, and under `extra_tags` too.
pub async fn seed_fleet(root: &Path, project: &str, extra_tags: &[String]) {
    let tags = fingerprint_tags(root, project);
    let ecr = aws_sdk_ecr::Client::new(&super::aws().await);
    let work = tags.iter().map(|(name, tag)| {
        let ecr = &ecr;
        async move {
            let repo = format!("{project}-{name}");
            let tag_list = [("project", project), ("consumer", name.as_str()), ("managed-by", "cdc-deploy")]
                .into_iter()
                .map(|(k, v)| aws_sdk_ecr::types::Tag::builder().key(k).value(v).build().unwrap())
                .collect::<Vec<_>>();
            ecr.create_repository()
                .repository_name(&repo)
                .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion)
                .set_image_tag_mutability_exclusion_filters(Some(
                    ["cache-*", "keep-*"]
                        .into_iter()
                        .map(|f| {
                            aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                                .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                                .filter(f)
                                .build()
                                .unwrap()
                        })
                        .collect(),
                ))
                .image_scanning_configuration(
                    aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                        .scan_on_push(true)
                        .build(),
                )
                .set_tags(Some(tag_list))
                .send()
                .await
                .unwrap();
            ecr.put_lifecycle_policy()
                .repository_name(&repo)
                .lifecycle_policy_text(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#)
                .send()
                .await
                .unwrap();
            let tags: Vec<&str> = std::iter::once(tag.as_str())
                .chain(extra_tags.iter().map(String::as_str))
                .collect();
            super::seed_image(&repo, &tags).await;
        }
    });
    use futures_util::StreamExt as _;
    futures_util::stream::iter(work)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}
