//! Rollback: put named consumers back on the image they ran before the current one (or on a
//! digest given), through the same Terraform path as a deploy so the state says what runs.
//!
//! This module finds the images: the earlier one from the consumer's task definition family in
//! ECS (the newest older revision whose image differs), checked to still be in the registry
//! before anything is planned. Terraform then applies, and the rollout is watched like any other.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::apply::infra::vars::AppliedConsumer;
use crate::apply::infra::{RollbackTargets, RolledBack};
use crate::clients::ecs::Deployer;
use crate::clients::registry::Registry;
use crate::consumers::select::Selection;
use crate::reference::split_image;

/// Finds each named consumer's earlier image.
pub struct Resolver<'a> {
    pub deployer: &'a dyn Deployer,
    pub registry: &'a dyn Registry,
    /// The host images are pushed to: images there are checked to exist.
    pub registry_host: &'a str,
    pub selection: &'a Selection,
    /// `--to`: the digest to go back to, for one consumer.
    pub to: Option<&'a str>,
}

impl Resolver<'_> {
    async fn one(&self, name: &str, a: &AppliedConsumer) -> Result<RolledBack, String> {
        let (repository_ref, _) = split_image(&a.image);
        let (to, source) = match self.to {
            Some(digest) => (
                format!("{repository_ref}@{digest}"),
                "the digest given with `to`".to_string(),
            ),
            None => match self
                .deployer
                .previous_image(&a.task_definition, &a.container)
                .await
            {
                Ok(Some((image, revision))) => (image, format!("`{revision}`")),
                Ok(None) => {
                    return Err(format!(
                        "`{name}` has no earlier image: no older revision of `{}` ran another image in its container `{}`; give the digest to go back to with `to`",
                        a.task_definition, a.container
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "the image `{name}` ran before could not be found: {e}; give the digest to go back to with `to`"
                    ))
                }
            },
        };
        if to == a.image {
            return Err(format!(
                "`{name}` already runs `{to}`: there is nothing to roll back"
            ));
        }
        // The image must still be there: a lifecycle policy may have expired it.
        let (name_part, reference) = split_image(&to);
        if let (Some((host, repository)), Some(reference)) = (name_part.split_once('/'), reference)
        {
            if host == self.registry_host {
                match self.registry.manifest(repository, reference).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(format!(
                            "`{to}`, which `{name}` would go back to, is not in the registry (an image the lifecycle policy expired, or a digest of another repository); give a digest the repository `{repository}` holds with `to`"
                        ))
                    }
                    Err(e) => return Err(format!("`{name}`: {e}")),
                }
            }
        }
        Ok(RolledBack {
            from: a.image.clone(),
            to,
            source,
        })
    }
}

#[async_trait]
impl RollbackTargets for Resolver<'_> {
    async fn resolve(
        &self,
        applied: &BTreeMap<String, AppliedConsumer>,
    ) -> Result<BTreeMap<String, RolledBack>, String> {
        let named: Vec<(&String, &AppliedConsumer)> = applied
            .iter()
            .filter(|(n, _)| self.selection.matches(n))
            .collect();
        let deployed: Vec<&str> = applied.keys().map(String::as_str).collect();
        self.selection
            .check(&deployed, "deployed consumer", "the deployed consumers are")?;
        if self.to.is_some() && named.len() > 1 {
            return Err(format!(
                "`to` names one image, but `consumers` names {}: roll back one consumer at a time with `to`",
                named
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let found = futures_util::future::join_all(
            named
                .iter()
                .map(|(n, a)| async move { (n.to_string(), self.one(n, a).await) }),
        )
        .await;
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for (n, r) in found {
            match r {
                Ok(r) => {
                    out.insert(n, r);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(format!("nothing was rolled back: {}", errors.join("; ")))
        }
    }
}
