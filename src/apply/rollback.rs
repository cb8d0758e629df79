//! Rollback: put named consumers back on the image they ran before the current one (or on a
//! digest given), through the same Terraform path as a deploy so the state says what runs.
//!
//! This module finds the images: the earlier one from the consumer's task definition family in
//! ECS (the newest older revision whose image differs), checked to still be in the registry
//! before anything is planned. Terraform then applies, and the rollout is watched like any other.

use std::collections::BTreeMap;

use crate::apply::infra::vars::AppliedConsumer;
use crate::apply::infra::RolledBack;
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
    /// How `to` was given, for messages: `` `--to` `` or `` `rollback-to` ``.
    pub to_name: &'a str,
}

/// Why nothing was rolled back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// What was asked cannot be done as asked (names that match nothing deployed, a digest the
    /// repository does not hold, one digest for several consumers): bad input, exit code 2.
    #[error("nothing was rolled back: {0}")]
    Refused(String),
    /// The earlier image could not be looked up (ECS or the registry failed): exit code 1.
    #[error("nothing was rolled back: {0}")]
    Failed(String),
}

impl Resolver<'_> {
    async fn one(&self, name: &str, a: &AppliedConsumer) -> Result<RolledBack, RollbackError> {
        let (repository_ref, _) = split_image(&a.image);
        let to_name = self.to_name;
        // A held consumer runs the image before the one that failed: never go back to that.
        let held: Vec<String> = a.hold().map(|h| vec![h.image]).unwrap_or_default();
        let (to, source) = match self.to {
            Some(digest) => (
                format!("{repository_ref}@{digest}"),
                format!("the digest given with {to_name}"),
            ),
            None => match self
                .deployer
                .previous_image(&a.task_definition, &a.container, &held)
                .await
            {
                Ok(Some((image, revision))) => (image, format!("`{revision}`")),
                Ok(None) => {
                    return Err(RollbackError::Refused(format!(
                        "`{name}` has no earlier image: no older revision of `{}` ran another image in its container `{}`; give the digest to go back to with {to_name}",
                        a.task_definition, a.container
                    )))
                }
                Err(e) => {
                    return Err(RollbackError::Failed(format!(
                        "the image `{name}` ran before could not be found: {e}; give the digest to go back to with {to_name}"
                    )))
                }
            },
        };
        if to == a.image {
            return Err(RollbackError::Refused(format!(
                "`{name}` already runs `{to}`: there is nothing to roll back"
            )));
        }
        // The image must still be there: a lifecycle policy may have expired it.
        let (name_part, reference) = split_image(&to);
        if let (Some((host, repository)), Some(reference)) = (name_part.split_once('/'), reference)
        {
            if host == self.registry_host {
                match self.registry.manifest(repository, reference).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(RollbackError::Refused(format!(
                            "`{to}`, which `{name}` would go back to, is not in the registry (an image the lifecycle policy expired, or a digest of another repository); give a digest the repository `{repository}` holds with {to_name}"
                        )))
                    }
                    Err(e) => return Err(RollbackError::Failed(format!("`{name}`: {e}"))),
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

impl Resolver<'_> {
    /// The consumers to roll back, each with its images; an error stops the rollback before
    /// anything is planned.
    pub async fn resolve(
        &self,
        applied: &BTreeMap<String, AppliedConsumer>,
    ) -> Result<BTreeMap<String, RolledBack>, RollbackError> {
        let named: Vec<(&String, &AppliedConsumer)> = applied
            .iter()
            .filter(|(n, _)| self.selection.matches(n))
            .collect();
        let deployed: Vec<&str> = applied.keys().map(String::as_str).collect();
        self.selection
            .check(&deployed, "deployed consumer", "the deployed consumers are")
            .map_err(RollbackError::Refused)?;
        if self.to.is_some() && named.len() > 1 {
            let to_name = self.to_name;
            return Err(RollbackError::Refused(format!(
                "{to_name} names one image, but `consumers` names {}: roll back one consumer at a time with {to_name}",
                named
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let found = futures_util::future::join_all(
            named
                .iter()
                .map(|(n, a)| async move { (n.to_string(), self.one(n, a).await) }),
        )
        .await;
        let mut out = BTreeMap::new();
        let mut refused = Vec::new();
        let mut failed = Vec::new();
        for (n, r) in found {
            match r {
                Ok(r) => {
                    out.insert(n, r);
                }
                Err(RollbackError::Refused(e)) => refused.push(e),
                Err(RollbackError::Failed(e)) => failed.push(e),
            }
        }
        // A lookup that failed may pass on a new run; what was refused will not.
        match (refused.is_empty(), failed.is_empty()) {
            (true, true) => Ok(out),
            (true, false) => Err(RollbackError::Failed(failed.join("; "))),
            _ => Err(RollbackError::Refused(
                refused
                    .into_iter()
                    .chain(failed)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }
}
