//! The variables the action hands Terraform: `project_name`, `environment`, `aws_region` and the
//! `consumers` map, each consumer's image pinned by digest.
//!
//! Pure. A consumer that is invalid, could not be looked up or whose image failed in this run
//! keeps the entry it was last applied with, so a broken folder or build changes nothing for its
//! running service; a new consumer that failed is left out. A held consumer keeps its applied
//! entry, hold included.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::apply::{ImageOutcome, RunReport};
use crate::consumers::config::ConsumerSettings;
use crate::consumers::select::Selection;
pub use crate::plan::entries::{entry, AppliedConsumer};
use crate::plan::{entries, Plan, Status};

/// The name of the variables file the action writes for a run, in a folder of the run's own
/// (never in the root module: it is passed with `-var-file`). A file of this name in a root
/// module is what an older cdc-deploy left there, which Terraform loads by itself.
pub const TFVARS_FILE: &str = "cdc-deploy.auto.tfvars.json";

/// The variables every root module used by the action declares.
pub const DECLARED: [&str; 4] = ["project_name", "environment", "aws_region", "consumers"];

/// Why a consumer's entry is not built from this run's folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Kept {
    /// It keeps the entry it was last applied with.
    Running { reason: String, image: String },
    /// It is left out of the map: never applied, or its last entry cannot be recovered.
    LeftOut { reason: String },
}

/// The variables, and the consumers whose entry is not this run's.
#[derive(Clone, Debug, PartialEq)]
pub struct Variables {
    pub json: Value,
    pub kept: BTreeMap<String, Kept>,
    /// Consumers whose image is not built yet (planning), with the content-tag reference the
    /// plan names it by.
    pub unbuilt: BTreeMap<String, String>,
}

impl Variables {
    /// The consumer names in the map.
    pub fn consumers(&self) -> std::collections::BTreeSet<String> {
        self.json["consumers"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The entry of `name`, when the map has it.
    pub fn entry(&self, name: &str) -> Option<&Value> {
        self.json["consumers"].get(name)
    }
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
    /// The `consumers` option: applied consumers it does not name keep their entry.
    pub selection: Option<&'a Selection>,
}

/// An applied consumer's entry as it was applied: its `config` (a hold included) with its
/// running image.
pub fn kept_entry(applied: &AppliedConsumer, settings: Option<&ConsumerSettings>) -> Option<Value> {
    let mut e = applied.config.clone().or_else(|| {
        // The root module does not give the entry back: a consumer whose settings are valid is
        // rebuilt from them around its running image.
        settings.map(|s| entry(s, &applied.image))
    })?;
    e["image"] = Value::String(applied.image.clone());
    Some(e)
}

/// Build the variables for the consumers of `plan`.
pub fn variables(plan: &Plan, inputs: &VariableInputs<'_>) -> Variables {
    let mut consumers = Map::new();
    let mut kept = BTreeMap::new();
    let mut unbuilt = BTreeMap::new();
    for c in &plan.consumers {
        if c.status == Status::Removed {
            // Its folder is gone: out of the map, so Terraform destroys what it had.
            continue;
        }
        if c.status == Status::Held {
            // Its applied entry, hold and running image included: nothing of it changes.
            if let Some(e) = inputs
                .applied
                .get(&c.name)
                .and_then(|a| kept_entry(a, None))
            {
                consumers.insert(c.name.clone(), e);
                continue;
            }
        }
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
                        (None, Some(fp)) => {
                            let image = format!("{}/{repo}:{}", inputs.registry_host, fp.tag());
                            unbuilt.insert(c.name.clone(), image.clone());
                            image
                        }
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
            Ok(mut e) => {
                // A count set by hand stays while the file's count is the one it was set over.
                entries::carry_scale(
                    &mut e,
                    inputs.applied.get(&c.name).and_then(|a| a.config.as_ref()),
                );
                consumers.insert(c.name.clone(), e);
            }
            Err(reason) => match inputs.applied.get(&c.name) {
                Some(applied) => match kept_entry(applied, c.settings.as_ref()) {
                    Some(e) => {
                        consumers.insert(c.name.clone(), e);
                        kept.insert(
                            c.name.clone(),
                            Kept::Running {
                                reason,
                                image: applied.image.clone(),
                            },
                        );
                    }
                    None => {
                        kept.insert(
                                c.name.clone(),
                                Kept::LeftOut {
                                    reason: format!(
                                        "{reason}, and the root module's `consumers` output does not give back its applied `config`"
                                    ),
                                },
                            );
                    }
                },
                None => {
                    kept.insert(
                        c.name.clone(),
                        Kept::LeftOut {
                            reason: format!("{reason}, and it was never applied"),
                        },
                    );
                }
            },
        }
    }
    // Applied consumers the `consumers` option leaves out keep their entry, folder or not.
    if let Some(selection) = inputs.selection {
        for (name, applied) in inputs.applied {
            if selection.matches(name) || plan.get(name).is_some() {
                continue;
            }
            // Not listed in `kept`: the report says once how many the option leaves out.
            let reason = "`consumers` does not name it".to_string();
            match kept_entry(applied, None) {
                Some(e) => {
                    consumers.insert(name.clone(), e);
                }
                None => {
                    kept.insert(
                        name.clone(),
                        Kept::LeftOut {
                            reason: format!(
                                "{reason}, and the root module's `consumers` output does not give back its applied `config`"
                            ),
                        },
                    );
                }
            }
        }
    }
    Variables {
        json: json!({
            "project_name": inputs.project,
            "environment": inputs.environment,
            "aws_region": inputs.region,
            "consumers": consumers,
        }),
        kept,
        unbuilt,
    }
}

/// The variables that keep every applied consumer's entry as it was applied, but those in
/// `entries`, which are given (a rollback's, a restore's).
pub fn from_applied(
    project: &str,
    environment: &str,
    region: &str,
    applied: &BTreeMap<String, AppliedConsumer>,
    entries: &BTreeMap<String, Value>,
) -> Variables {
    let mut consumers = Map::new();
    let mut kept = BTreeMap::new();
    for (name, a) in applied {
        if let Some(e) = entries.get(name) {
            consumers.insert(name.clone(), e.clone());
            continue;
        }
        match kept_entry(a, None) {
            Some(e) => {
                consumers.insert(name.clone(), e);
            }
            None => {
                kept.insert(
                    name.clone(),
                    Kept::LeftOut {
                        reason: "the root module's `consumers` output does not give back its applied `config`, which this run keeps".into(),
                    },
                );
            }
        }
    }
    Variables {
        json: json!({
            "project_name": project,
            "environment": environment,
            "aws_region": region,
            "consumers": consumers,
        }),
        kept,
        unbuilt: BTreeMap::new(),
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

    use crate::apply::ImageResult;
    use crate::context::fingerprint::Fingerprint;
    use crate::observe::RegistryImage;
    use crate::plan::{ConsumerPlan, Plan};

    fn consumer(name: &str, status: Status) -> ConsumerPlan {
        ConsumerPlan {
            resource_name: Some(format!("shop-{name}")),
            fingerprint: Some(Fingerprint::from_hash(blake3::hash(name.as_bytes()))),
            context_files: 1,
            context_bytes: 1,
            settings: (status != Status::Invalid).then(ConsumerSettings::default),
            ..ConsumerPlan::new(name, status)
        }
    }

    fn applied(image: &str, config: Option<Value>) -> AppliedConsumer {
        AppliedConsumer {
            image: image.into(),
            config,
            ..AppliedConsumer::default()
        }
    }

    fn inputs<'a>(
        run: Option<&'a RunReport>,
        applied: &'a BTreeMap<String, AppliedConsumer>,
    ) -> VariableInputs<'a> {
        VariableInputs {
            project: "shop",
            environment: "prod",
            region: "us-east-1",
            registry_host: "reg",
            run,
            applied,
            selection: None,
        }
    }

    #[test]
    fn failed_and_invalid_consumers_keep_their_applied_entry_and_new_ones_are_left_out() {
        let mut plan = Plan {
            offline: false,
            commit: None,
            consumers: vec![
                consumer("built", Status::Changed),
                consumer("broken", Status::Changed),
                consumer("invalid", Status::Invalid),
                consumer("unknown", Status::Unknown),
                consumer("fresh", Status::New),
            ],
            skipped: Vec::new(),
            warnings: Vec::new(),
            infra_pending: false,
            selection: None,
            unselected: Vec::new(),
            compared: false,
            discovered: true,
            renames: Vec::new(),
        };
        plan.consumers[3].settings = Some(ConsumerSettings::default());
        let ok = |image: &str| ImageResult {
            outcome: ImageOutcome::Built,
            image: Some(image.into()),
            digest: None,
            size: None,
            duration: std::time::Duration::ZERO,
            error: None,
        };
        let failed = ImageResult {
            outcome: ImageOutcome::Failed,
            image: None,
            ..ok("")
        };
        let run = RunReport {
            images: [
                ("built".to_string(), ok("reg/shop-built@sha256:new")),
                ("broken".to_string(), failed.clone()),
                ("fresh".to_string(), failed),
            ]
            .into_iter()
            .collect(),
            ..RunReport::default()
        };
        let before: BTreeMap<String, AppliedConsumer> = [
            ("broken", applied("reg/shop-broken@sha256:old", None)),
            (
                "invalid",
                applied(
                    "reg/shop-invalid@sha256:old",
                    Some(json!({"cpu": 1024, "image": "x"})),
                ),
            ),
            (
                "unknown",
                applied(
                    "reg/shop-unknown@sha256:old",
                    Some(json!({"cpu": 512, "image": "x"})),
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let v = variables(&plan, &inputs(Some(&run), &before));
        let c = &v.json["consumers"];
        assert_eq!(c["built"]["image"], "reg/shop-built@sha256:new");
        // Rebuilt from its valid settings around the running image: the output has no config.
        assert_eq!(c["broken"]["image"], "reg/shop-broken@sha256:old");
        assert_eq!(c["broken"]["cpu"], 256);
        // Its applied entry, as it was, whatever the folder says now.
        assert_eq!(
            c["invalid"],
            json!({"cpu": 1024, "image": "reg/shop-invalid@sha256:old"})
        );
        assert_eq!(c["unknown"]["cpu"], 512);
        assert!(
            c.get("fresh").is_none(),
            "a new consumer that failed is left out"
        );
        assert!(
            matches!(&v.kept["broken"], Kept::Running { reason, .. } if reason == "its image failed in this run")
        );
        assert!(
            matches!(&v.kept["fresh"], Kept::LeftOut { reason } if reason.contains("never applied"))
        );
        assert_eq!(v.kept.len(), 4);
        assert_eq!(v.json["project_name"], "shop");

        // An invalid consumer whose root gives back no config cannot be kept.
        let bare: BTreeMap<String, AppliedConsumer> = [(
            "invalid".to_string(),
            applied("reg/shop-invalid@sha256:old", None),
        )]
        .into();
        let v = variables(&plan, &inputs(Some(&run), &bare));
        assert!(
            matches!(&v.kept["invalid"], Kept::LeftOut { reason } if reason.contains("does not give back its applied `config`"))
        );
    }

    #[test]
    fn a_plan_names_existing_images_by_digest_and_unbuilt_ones_by_content_tag() {
        let mut same = consumer("same", Status::Unchanged);
        same.existing_image = Some(RegistryImage {
            digest: "sha256:abc".into(),
            size: None,
        });
        let plan = Plan {
            offline: false,
            commit: None,
            consumers: vec![same, consumer("fresh", Status::New)],
            skipped: Vec::new(),
            warnings: Vec::new(),
            infra_pending: false,
            selection: None,
            unselected: Vec::new(),
            compared: false,
            discovered: true,
            renames: Vec::new(),
        };
        let none = BTreeMap::new();
        let v = variables(&plan, &inputs(None, &none));
        assert_eq!(
            v.json["consumers"]["same"]["image"],
            "reg/shop-same@sha256:abc"
        );
        let fresh = v.json["consumers"]["fresh"]["image"].as_str().unwrap();
        assert!(fresh.starts_with("reg/shop-fresh:ctx-"), "{fresh}");
        assert_eq!(v.unbuilt.keys().collect::<Vec<_>>(), ["fresh"]);
        assert!(v.kept.is_empty());
    }

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
                "alarms",
                "autoscaling",
                "cpu",
                "deployment_maximum_percent",
                "deployment_minimum_healthy_percent",
                "desired_count",
                "environment",
                "execute_command",
                "health_check",
                "hold",
                "image",
                "memory",
                "msk",
                "platform",
                "scale",
                "secrets",
                "stop_timeout"
            ],
            "tests/module_contract.rs checks these against the module's `consumers` type"
        );
        assert_eq!(e["health_check"], Value::Null);
        assert_eq!(e["hold"], Value::Null);
        // Keys a consumer does not use are null, as in an entry applied before they existed:
        // the settings digest of a consumer that does not use them stays the same.
        for key in [
            "alarms",
            "deployment_maximum_percent",
            "deployment_minimum_healthy_percent",
            "execute_command",
            "msk",
        ] {
            assert_eq!(e[key], Value::Null, "{key}");
        }
        let mut before = e.clone();
        for key in [
            "alarms",
            "deployment_maximum_percent",
            "deployment_minimum_healthy_percent",
            "execute_command",
            "msk",
        ] {
            before.as_object_mut().unwrap().remove(key);
        }
        assert_eq!(
            crate::plan::entries::settings_digest(&before),
            crate::plan::entries::settings_digest(&e)
        );
    }

    #[test]
    fn consumers_the_selection_leaves_out_keep_their_applied_entry() {
        let plan = Plan {
            offline: false,
            commit: None,
            consumers: vec![consumer("orders", Status::Changed)],
            skipped: Vec::new(),
            warnings: Vec::new(),
            infra_pending: false,
            selection: Some("orders".into()),
            unselected: vec!["audit".into()],
            compared: false,
            discovered: true,
            renames: Vec::new(),
        };
        let applied: BTreeMap<String, AppliedConsumer> = [
            (
                "orders".to_string(),
                applied("reg/shop-orders@sha256:old", Some(json!({"cpu": 256}))),
            ),
            (
                "audit".to_string(),
                applied("reg/shop-audit@sha256:run", Some(json!({"cpu": 512}))),
            ),
            // Its folder is gone, but the selection does not name it: not removed either.
            (
                "gone".to_string(),
                applied("reg/shop-gone@sha256:run", Some(json!({"cpu": 256}))),
            ),
            (
                "bare".to_string(),
                applied("reg/shop-bare@sha256:run", None),
            ),
        ]
        .into_iter()
        .collect();
        let selection = Selection::parse("orders").unwrap().unwrap();
        let mut i = inputs(None, &applied);
        i.selection = Some(&selection);
        let v = variables(&plan, &i);
        let c = &v.json["consumers"];
        assert_eq!(c["audit"]["image"], "reg/shop-audit@sha256:run");
        assert_eq!(c["audit"]["cpu"], 512);
        assert_eq!(c["gone"]["image"], "reg/shop-gone@sha256:run");
        assert_ne!(c["orders"]["image"], "reg/shop-orders@sha256:old");
        assert!(!v.kept.contains_key("audit"), "said once, not per consumer");
        assert!(
            matches!(&v.kept["bare"], Kept::LeftOut { reason } if reason.contains("does not give back")),
            "{:?}",
            v.kept
        );
        assert!(!v.kept.contains_key("orders"));
    }
}
