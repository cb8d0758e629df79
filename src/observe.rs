//! Observation: what AWS already holds for the consumers, read and never changed. Repositories
//! are described a hundred names per `DescribeRepositories` call; when one name in a batch does
//! not exist ECR fails the whole call, so the registry's repositories are then listed once and
//! every later batch is answered from that list. A role allowed to describe only its project's
//! repositories is refused the listing; the batch is then narrowed instead, leaving out each name
//! ECR reports missing (or halving it when ECR names none). For each existing repository the registry is
//! asked for the manifest under the consumer's fingerprint tag: one request says whether the
//! image exists, its digest and its size. A look-up that fails is recorded against the consumers
//! it concerns; the others go on.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use tokio::sync::OnceCell;

use crate::clients::ecr::{
    Described, EcrError, RepositoryService, RepositoryState, DESCRIBE_BATCH,
};
use crate::clients::registry::{Registry, RegistryError};

/// Registry look-ups in flight at once.
pub const LOOKUP_CONCURRENCY: usize = 16;
/// `DescribeRepositories` calls in flight at once.
const DESCRIBE_CONCURRENCY: usize = 4;

/// A consumer to observe: its repository and the tag its current image would carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// `<project>-<consumer>`: the repository name.
    pub resource: String,
    /// `ctx-<fingerprint>`.
    pub fingerprint_tag: String,
}

/// What the ECR API said about a consumer's repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepositoryLookup {
    Missing,
    Found(RepositoryState),
    Failed(EcrError),
}

/// An image as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryImage {
    pub digest: String,
    /// Compressed size: config and layers.
    pub size: Option<u64>,
}

/// What the registry said about the image under the fingerprint tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageLookup {
    /// Not asked: the repository does not exist (or could not be looked up).
    NotAsked,
    /// No image has the fingerprint; `built_before` says whether any image cdc-deploy built is
    /// in the repository (it was asked only then).
    Absent {
        built_before: bool,
    },
    Present(RegistryImage),
    Failed(RegistryError),
}

/// Everything observed about one consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedConsumer {
    pub repository: RepositoryLookup,
    pub image: ImageLookup,
}

/// Everything observed, by resource name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    pub consumers: BTreeMap<String, ObservedConsumer>,
}

type Found = BTreeMap<String, RepositoryState>;

/// Describe `names`, whose call just failed with `first`, narrowing it until ECR answers: each
/// name ECR reports missing is left out; when it names none, the batch is halved.
async fn narrowed(
    ecr: &dyn RepositoryService,
    names: Vec<String>,
    first: Described,
) -> Result<Found, EcrError> {
    let mut found = Found::new();
    let mut pending = vec![(names, Some(first))];
    while let Some((mut batch, known)) = pending.pop() {
        if batch.is_empty() {
            continue;
        }
        let answer = match known {
            Some(a) => a,
            None => ecr.describe(&batch).await?,
        };
        match answer {
            Described::All(states) => {
                found.extend(states.into_iter().map(|s| (s.name.clone(), s)));
            }
            Described::SomeMissing { missing: Some(m) } if batch.contains(&m) => {
                batch.retain(|n| *n != m);
                pending.push((batch, None));
            }
            Described::SomeMissing { .. } if batch.len() == 1 => {}
            Described::SomeMissing { .. } => {
                let back = batch.split_off(batch.len() / 2);
                pending.push((batch, None));
                pending.push((back, None));
            }
        }
    }
    Ok(found)
}

/// Describe the repositories of `wanted`, a batch per call.
async fn repositories(
    ecr: &dyn RepositoryService,
    wanted: &[Wanted],
) -> BTreeMap<String, RepositoryLookup> {
    let listing: OnceCell<Result<Found, EcrError>> = OnceCell::new();
    let listing = &listing;
    let batches = wanted.chunks(DESCRIBE_BATCH).map(|batch| async move {
        let names: Vec<String> = batch.iter().map(|w| w.resource.clone()).collect();
        let found: Result<Found, EcrError> = match ecr.describe(&names).await {
            Ok(Described::All(states)) => {
                Ok(states.into_iter().map(|s| (s.name.clone(), s)).collect())
            }
            Ok(failed @ Described::SomeMissing { .. }) => {
                let listed = listing
                    .get_or_init(|| async {
                        ecr.list()
                            .await
                            .map(|all| all.into_iter().map(|s| (s.name.clone(), s)).collect())
                    })
                    .await;
                match listed {
                    Ok(all) => Ok(all.clone()),
                    Err(e) => {
                        tracing::debug!(%e, "the repositories could not be listed; the batch is narrowed instead");
                        narrowed(ecr, names.clone(), failed).await
                    }
                }
            }
            Err(e) => Err(e),
        };
        names
            .into_iter()
            .map(|name| {
                let lookup = match &found {
                    Ok(states) => states
                        .get(&name)
                        .cloned()
                        .map_or(RepositoryLookup::Missing, RepositoryLookup::Found),
                    Err(e) => RepositoryLookup::Failed(e.clone()),
                };
                (name, lookup)
            })
            .collect::<Vec<_>>()
    });
    futures_util::stream::iter(batches)
        .buffer_unordered(DESCRIBE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Observe `wanted`: repositories through the ECR API, images through the registry.
pub async fn observe(
    ecr: &dyn RepositoryService,
    registry: &dyn Registry,
    wanted: &[Wanted],
) -> Observation {
    let mut repos = repositories(ecr, wanted).await;
    let lookups = wanted.iter().map(|w| {
        let repository = repos
            .remove(&w.resource)
            .unwrap_or(RepositoryLookup::Missing);
        async move {
            let image = match &repository {
                RepositoryLookup::Found(_) => {
                    match registry.manifest(&w.resource, &w.fingerprint_tag).await {
                        Ok(Some(m)) => ImageLookup::Present(RegistryImage {
                            size: m.stored_size(),
                            digest: m.digest,
                        }),
                        Ok(None) => match registry.has_built_images(&w.resource).await {
                            Ok(built_before) => ImageLookup::Absent { built_before },
                            // A role allowed to pull by tag but not to list tags: the
                            // consumer is taken as deployed before, as it was planned
                            // before tags were read.
                            Err(e) if e.failure.cause == crate::failure::Cause::Permission => {
                                tracing::debug!(%e, "the tags could not be listed");
                                ImageLookup::Absent { built_before: true }
                            }
                            Err(e) => ImageLookup::Failed(e),
                        },
                        Err(e) => ImageLookup::Failed(e),
                    }
                }
                _ => ImageLookup::NotAsked,
            };
            (w.resource.clone(), ObservedConsumer { repository, image })
        }
    });
    Observation {
        consumers: futures_util::stream::iter(lookups)
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ecr::EcrAuth;
    use crate::clients::ecr::{RepositoryDrift, RepositorySpec};
    use crate::clients::registry::Manifest;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// An ECR that holds `existing` and records its calls. `listable: false` is a role that may
    /// describe only named repositories; `names_missing: false` an ECR whose message names none.
    struct FakeEcr {
        existing: Vec<String>,
        calls: Mutex<Vec<String>>,
        listable: bool,
        names_missing: bool,
    }

    impl FakeEcr {
        fn new(existing: Vec<String>) -> Self {
            FakeEcr {
                existing,
                calls: Mutex::default(),
                listable: true,
                names_missing: true,
            }
        }
    }

    fn state(name: &str) -> RepositoryState {
        RepositoryState {
            name: name.into(),
            tag_mutability: "IMMUTABLE".into(),
            mutable_tags: vec!["keep-*".into()],
            scan_on_push: true,
        }
    }

    #[async_trait]
    impl RepositoryService for FakeEcr {
        async fn authorization(&self) -> Result<EcrAuth, EcrError> {
            unreachable!()
        }
        async fn describe(&self, names: &[String]) -> Result<Described, EcrError> {
            assert!(names.len() <= DESCRIBE_BATCH);
            self.calls
                .lock()
                .unwrap()
                .push(format!("describe {}", names.len()));
            match names.iter().find(|n| !self.existing.contains(n)) {
                None => Ok(Described::All(names.iter().map(|n| state(n)).collect())),
                Some(m) => Ok(Described::SomeMissing {
                    missing: self.names_missing.then(|| m.clone()),
                }),
            }
        }
        async fn list(&self) -> Result<Vec<RepositoryState>, EcrError> {
            self.calls.lock().unwrap().push("list".into());
            if !self.listable {
                return Err(EcrError::Api {
                    operation: "DescribeRepositories",
                    repository: None,
                    failure: crate::failure::Failure::new(
                        crate::failure::Cause::Permission,
                        "not allowed (AccessDeniedException)",
                    ),
                });
            }
            Ok(self.existing.iter().map(|n| state(n)).collect())
        }
        async fn create(&self, _: &RepositorySpec) -> Result<bool, EcrError> {
            unreachable!("observation never writes")
        }
        async fn reconcile(
            &self,
            _: &crate::clients::ecr::RepositorySpec,
            _: &[RepositoryDrift],
        ) -> Result<(), EcrError> {
            unreachable!("observation never writes")
        }
    }

    struct NoImages;

    #[async_trait]
    impl Registry for NoImages {
        async fn manifest(&self, _: &str, _: &str) -> Result<Option<Manifest>, RegistryError> {
            Ok(None)
        }
        async fn image_labels(
            &self,
            _: &str,
            _: &str,
        ) -> Result<std::collections::BTreeMap<String, String>, RegistryError> {
            Ok(Default::default())
        }
        async fn put_manifest(
            &self,
            _: &str,
            _: &str,
            _: &Manifest,
        ) -> Result<String, RegistryError> {
            unreachable!("observation never writes")
        }
        async fn has_built_images(&self, _: &str) -> Result<bool, RegistryError> {
            Ok(false)
        }
    }

    fn wanted(n: usize) -> Vec<Wanted> {
        (0..n)
            .map(|i| Wanted {
                resource: format!("shop-c{i:04}"),
                fingerprint_tag: "ctx-x".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn repositories_are_described_a_hundred_at_a_time() {
        let w = wanted(250);
        let ecr = FakeEcr::new(w.iter().map(|w| w.resource.clone()).collect());
        let o = observe(&ecr, &NoImages, &w).await;
        let mut calls = ecr.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, ["describe 100", "describe 100", "describe 50"]);
        assert!(o
            .consumers
            .values()
            .all(|c| matches!(c.repository, RepositoryLookup::Found(_))
                && c.image
                    == ImageLookup::Absent {
                        built_before: false
                    }));
    }

    fn without_two_new(w: &[Wanted]) -> Vec<String> {
        w.iter()
            .map(|w| w.resource.clone())
            .filter(|r| r != "shop-c0007" && r != "shop-c0107")
            .collect()
    }

    #[tokio::test]
    async fn a_role_that_may_not_list_narrows_the_batch_instead() {
        let w = wanted(250);
        for names_missing in [true, false] {
            let ecr = FakeEcr {
                listable: false,
                names_missing,
                ..FakeEcr::new(without_two_new(&w))
            };
            let o = observe(&ecr, &NoImages, &w).await;
            assert_eq!(
                o.consumers["shop-c0007"].repository,
                RepositoryLookup::Missing
            );
            assert_eq!(
                o.consumers["shop-c0107"].repository,
                RepositoryLookup::Missing
            );
            assert!(
                o.consumers
                    .iter()
                    .filter(|(n, _)| *n != "shop-c0007" && *n != "shop-c0107")
                    .all(|(_, c)| matches!(c.repository, RepositoryLookup::Found(_))),
                "names_missing={names_missing}"
            );
            let calls = ecr.calls.lock().unwrap().clone();
            let describes = calls.iter().filter(|c| c.starts_with("describe")).count();
            // Named: 3 batches, 2 failing, each described once more without its new name.
            // Unnamed: the failing batches are halved down to the new name.
            let most = if names_missing { 5 } else { 3 + 2 * 2 * 8 };
            assert!(
                describes <= most,
                "names_missing={names_missing}: {calls:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_name_falls_back_to_one_listing() {
        let w = wanted(250);
        // One new consumer in each of the first two batches.
        let ecr = FakeEcr::new(without_two_new(&w));
        let o = observe(&ecr, &NoImages, &w).await;
        let calls = ecr.calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().filter(|c| *c == "list").count(),
            1,
            "{calls:?}"
        );
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert_eq!(
            o.consumers["shop-c0007"].repository,
            RepositoryLookup::Missing
        );
        assert_eq!(o.consumers["shop-c0007"].image, ImageLookup::NotAsked);
        assert!(matches!(
            o.consumers["shop-c0008"].repository,
            RepositoryLookup::Found(_)
        ));
    }
}
