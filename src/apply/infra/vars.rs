//! The variables the action hands Terraform: `project_name`, `environment`, `aws_region` and the
//! `consumers` map, each consumer's image pinned by digest.
//!
//! Pure. A consumer that is invalid, could not be looked up or whose image failed in this run
//! keeps the entry it was last applied with, so a broken folder or build changes nothing for its
//! running service; a new consumer that failed is left out.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::apply::{ImageOutcome, RunReport};
use crate::consumers::config::{ConsumerSettings, SecretSource};
use crate::plan::{Plan, Status};

/// The file the variables are written to, in the root module's folder (Terraform loads every
/// `*.auto.tfvars.json` there by itself).
pub const TFVARS_FILE: &str = "cdc-deploy.auto.tfvars.json";

/// The variables every root module used by the action declares.
pub const DECLARED: [&str; 4] = ["project_name", "environment", "aws_region", "consumers"];

/// What a root module's `consumers` output says about one applied consumer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct AppliedConsumer {
    pub cluster: String,
    pub service: String,
    /// The ARN of the task definition revision the service should run.
    pub task_definition: String,
    pub log_group: String,
    pub container: String,
    pub image: String,
    /// The `consumers` entry it was applied with, when the root module gives it back (the
    /// bundled module does): what a consumer that fails in a later run keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// Why a consumer's entry is not built from this run's folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Held {
    /// It keeps the entry it was last applied with.
    Kept { reason: String, image: String },
    /// It is left out of the map: never applied, or its last entry cannot be recovered.
    LeftOut { reason: String },
}

/// The variables, and the consumers whose entry is not this run's.
#[derive(Clone, Debug, PartialEq)]
pub struct Variables {
    pub json: Value,
    pub held: BTreeMap<String, Held>,
}

impl Variables {
    /// The consumer names in the map.
    pub fn consumers(&self) -> std::collections::BTreeSet<String> {
        self.json["consumers"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A consumer's entry from its settings and its image reference.
pub fn entry(s: &ConsumerSettings, image: &str) -> Value {
    let secrets: Map<String, Value> = s
        .secrets
        .iter()
        .map(|(k, v)| {
            let arn = match v {
                SecretSource::SsmParameter(a) | SecretSource::SecretsManager(a) => a,
            };
            (k.clone(), Value::String(arn.clone()))
        })
        .collect();
    json!({
        "image": image,
        "cpu": s.cpu,
        "memory": s.memory,
        "desired_count": s.desired_count,
        "platform": s.platform.as_str(),
        "stop_timeout": s.stop_timeout,
        "environment": s.environment,
        "secrets": secrets,
        "health_check": s.health_check.as_ref().map(|h| json!({
            "command": h.command,
            "interval": h.interval,
            "timeout": h.timeout,
            "retries": h.retries,
            "start_period": h.start_period,
        })),
        "autoscaling": s.autoscaling.as_ref().map(|a| json!({
            "min": a.min,
            "max": a.max,
            "cpu_target": a.cpu_target,
            "memory_target": a.memory_target,
            "kafka_lag": a.kafka_lag.as_ref().map(|k| json!({
                "msk_cluster": k.msk_cluster,
                "consumer_group": k.consumer_group,
                "topic": k.topic,
                "target_lag": k.target_lag,
            })),
        })),
    })
}

/// Everything [`variables`] reads besides the plan.
pub struct VariableInputs<'a> {
    pub project: &'a str,
    pub environment: &'a str,
    pub region: &'a str,
    /// The registry host images are referenced by (`<account>.dkr.ecr.<region>.amazonaws.com`).
    pub registry_host: &'a str,
    /// What the image stage did (`deploy`); `None` when planning.
    pub run: Option<&'a RunReport>,
    /// What is applied now, from the root module's `consumers` output.
    pub applied: &'a BTreeMap<String, AppliedConsumer>,
}

/// Build the variables for the consumers of `plan`.
pub fn variables(plan: &Plan, inputs: &VariableInputs<'_>) -> Variables {
    let mut consumers = Map::new();
    let mut held = BTreeMap::new();
    for c in &plan.consumers {
        let this_run = match (c.status, &c.settings, &c.resource_name) {
            (Status::Invalid, _, _) | (_, None, _) | (_, _, None) => {
                Err("its configuration is invalid".to_string())
            }
            (Status::Unknown, _, _) => Err("its image could not be looked up".to_string()),
            (_, Some(settings), Some(repo)) => match inputs.run {
                Some(run) => match run.images.get(&c.name) {
                    Some(r) if r.outcome != ImageOutcome::Failed => match &r.image {
                        Some(image) => Ok(entry(settings, image)),
                        None => Err("its image has no digest".to_string()),
                    },
                    Some(_) => Err("its image failed in this run".to_string()),
                    None => Err("its image stage did not run".to_string()),
                },
                None => {
                    // Planning: the image that exists, by digest, else the one the deploy will
                    // build, by its content tag.
                    let image = match (&c.existing_image, &c.fingerprint) {
                        (Some(e), _) => format!("{}/{repo}@{}", inputs.registry_host, e.digest),
                        (None, Some(fp)) => format!("{}/{repo}:{}", inputs.registry_host, fp.tag()),
                        (None, None) => String::new(),
                    };
                    if image.is_empty() {
                        Err("it has no fingerprint".to_string())
                    } else {
                        Ok(entry(settings, &image))
                    }
                }
            },
        };
        match this_run {
            Ok(e) => {
                consumers.insert(c.name.clone(), e);
            }
            Err(reason) => match inputs.applied.get(&c.name) {
                Some(applied) => {
                    let kept = applied.config.clone().or_else(|| {
                        // The root module does not give the entry back: a consumer whose
                        // settings are valid is rebuilt from them around its running image.
                        c.settings.as_ref().map(|s| entry(s, &applied.image))
                    });
                    match kept {
                        Some(mut e) => {
                            e["image"] = Value::String(applied.image.clone());
                            consumers.insert(c.name.clone(), e);
                            held.insert(
                                c.name.clone(),
                                Held::Kept {
                                    reason,
                                    image: applied.image.clone(),
                                },
                            );
                        }
                        None => {
                            held.insert(
                                c.name.clone(),
                                Held::LeftOut {
                                    reason: format!(
                                        "{reason}, and the root module's `consumers` output does not give back its applied `config`"
                                    ),
                                },
                            );
                        }
                    }
                }
                None => {
                    held.insert(
                        c.name.clone(),
                        Held::LeftOut {
                            reason: format!("{reason}, and it was never applied"),
                        },
                    );
                }
            },
        }
    }
    Variables {
        json: json!({
            "project_name": inputs.project,
            "environment": inputs.environment,
            "aws_region": inputs.region,
            "consumers": consumers,
        }),
        held,
    }
}

/// Read the `consumers` output from `terraform output -json` (all outputs): empty when the
/// state has none yet.
pub fn applied_from_outputs(json: &str) -> Result<BTreeMap<String, AppliedConsumer>, String> {
    let all: Map<String, Value> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let Some(consumers) = all.get("consumers") else {
        return Ok(BTreeMap::new());
    };
    let value = consumers.get("value").cloned().unwrap_or(Value::Null);
    if value.is_null() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_value(value).map_err(|e| {
        format!("the `consumers` output is not a map of objects with `cluster`, `service`, `task_definition`, `log_group`, `container` and `image`: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_read_with_or_without_a_config() {
        let json = r#"{"consumers":{"sensitive":false,"type":"x","value":{
            "orders":{"cluster":"c","service":"orders","task_definition":"arn:td:3","log_group":"/ecs/x","container":"orders","image":"r/x@sha256:1","config":{"cpu":256}},
            "audit":{"cluster":"c","service":"audit","task_definition":"arn:td:1","log_group":"/ecs/y","container":"audit","image":"r/y@sha256:2","extra":true}}},
            "cluster_name":{"value":"c"}}"#;
        let m = applied_from_outputs(json).unwrap();
        assert_eq!(m["orders"].config, Some(json!({"cpu": 256})));
        assert_eq!(m["audit"].config, None);
        assert_eq!(m["audit"].task_definition, "arn:td:1");
        assert!(applied_from_outputs("{}").unwrap().is_empty());
        let err =
            applied_from_outputs(r#"{"consumers":{"value":{"a":{"image":"x"}}}}"#).unwrap_err();
        assert!(err.contains("`cluster`"), "{err}");
    }

    #[test]
    fn an_entry_has_every_key_the_module_declares() {
        let e = entry(&ConsumerSettings::default(), "r/x@sha256:1");
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "autoscaling",
                "cpu",
                "desired_count",
                "environment",
                "health_check",
                "image",
                "memory",
                "platform",
                "secrets",
                "stop_timeout"
            ]
        );
        assert_eq!(e["health_check"], Value::Null);
    }
}
