//! The `consumers` entries: what the action hands Terraform for each consumer, and what the root
//! module gives back as applied (its `consumers` output). Comparing the two tells, before anything
//! is built and without a second Terraform plan, whose configuration changes, who is gone, and
//! who is held on its previous image after a rollout that failed.
//!
//! Pure: values in, values out.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::consumers::config::{ConsumerSettings, SecretSource};
use crate::context::fingerprint::Fingerprint;
use crate::reference::digest_of;

/// The key of an entry that records why a consumer is held (see [`Hold`]).
pub const HOLD_KEY: &str = "hold";
/// The key of an entry that records a task count set by hand (see [`Scale`]).
pub const SCALE_KEY: &str = "scale";

/// A task count set by hand (`cdc-deploy scale`), over the one the consumer's `consumer.toml`
/// gives: kept by every later deploy while the file's count is still `file`, dropped once it
/// changes (the team's new count wins).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Scale {
    /// The fixed count, for a consumer without autoscaling.
    #[serde(default)]
    pub desired_count: Option<u32>,
    /// The bounds, for an autoscaled consumer.
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
    /// [`count_signature`] of the entry it was set over.
    pub file: String,
    /// When, as RFC 3339.
    pub at: String,
}

impl Scale {
    /// `3 tasks`, `2 to 8 tasks`.
    pub fn describe(&self) -> String {
        match (self.desired_count, self.min, self.max) {
            (Some(n), _, _) => format!("{n} task{}", if n == 1 { "" } else { "s" }),
            (None, Some(min), Some(max)) => format!("{min} to {max} tasks"),
            _ => "its count".into(),
        }
    }

    /// `2026-12-04`, the day it was set.
    pub fn day(&self) -> &str {
        self.at.get(..10).unwrap_or(&self.at)
    }
}

/// The count an entry gives, as the file wrote it: `desired_count=1`, or with autoscaling
/// `min=1,max=4`. A scale by hand lasts while this stays the same.
pub fn count_signature(e: &Value) -> String {
    let n = |v: &Value| normal(v).to_string();
    match e.get("autoscaling").filter(|a| !a.is_null()) {
        Some(a) => format!("min={},max={}", n(&a["min"]), n(&a["max"])),
        None => format!("desired_count={}", n(&e["desired_count"])),
    }
}

/// The scale by hand an applied entry records, if any.
pub fn scale_of(applied: &Value) -> Option<Scale> {
    serde_json::from_value(applied.get(SCALE_KEY)?.clone()).ok()
}

/// `wanted` with the scale by hand of `applied` carried over, when the count `wanted` gives is
/// still the one the scale was set over; returns whether it was.
pub fn carry_scale(wanted: &mut Value, applied: Option<&Value>) -> bool {
    let Some(scale) = applied.and_then(scale_of) else {
        return false;
    };
    if scale.file != count_signature(wanted) {
        return false;
    }
    wanted[SCALE_KEY] = serde_json::to_value(&scale).unwrap_or(Value::Null);
    true
}

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

impl AppliedConsumer {
    /// The hold its applied entry records, if any.
    pub fn hold(&self) -> Option<Hold> {
        let h = self.config.as_ref()?.get(HOLD_KEY)?;
        serde_json::from_value(h.clone()).ok()
    }
}

/// Why a consumer is held on the image it runs: its rollout of `image` ended `verdict` at `at`.
/// Recorded in the consumer's own entry (the root module gives it back in `config`), so every
/// later run knows it without a store of its own. A held consumer keeps its entry until its
/// folder changes (another fingerprint, or other settings) or a deploy's `consumers` names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Hold {
    /// The image whose rollout failed, pinned by digest.
    pub image: String,
    /// Its content fingerprint (64 hex digits), when known.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// [`settings_digest`] of the entry that failed.
    pub settings: String,
    /// How the rollout ended: `failed`, `rolled back`, `rolled back by hand`.
    pub verdict: String,
    /// When, as RFC 3339 (`2026-12-04T21:30:00Z`).
    pub at: String,
}

impl Hold {
    /// Whether the folder as it is now would deploy what failed again: the same fingerprint
    /// (or, when the hold has none, the same image) and the same settings.
    pub fn matches(
        &self,
        fingerprint: Option<&Fingerprint>,
        image: Option<&str>,
        settings: &str,
    ) -> bool {
        let same_build = match (&self.fingerprint, fingerprint) {
            (Some(held), Some(now)) => held == now.hex(),
            _ => match (digest_of(&self.image), image.and_then(digest_of)) {
                (Some(held), Some(now)) => held == now,
                _ => false,
            },
        };
        same_build && self.settings == settings
    }

    /// The event that started the hold, as a noun: `rollback`, `rollback by hand`, `failed
    /// rollout`.
    pub fn verdict_noun(&self) -> &'static str {
        match self.verdict.as_str() {
            ROLLED_BACK => "rollback",
            ROLLED_BACK_BY_HAND => "rollback by hand",
            _ => "failed rollout",
        }
    }

    /// `2026-12-04`, the day of the hold.
    pub fn day(&self) -> &str {
        self.at.get(..10).unwrap_or(&self.at)
    }

    /// What failed, for people: the fingerprint's first digits, else the image's digest.
    pub fn what(&self) -> String {
        match &self.fingerprint {
            Some(f) => f.get(..12).unwrap_or(f).to_string(),
            None => digest_of(&self.image)
                .map_or(self.image.as_str(), |d| d.get(..19).unwrap_or(d))
                .to_string(),
        }
    }
}

/// [`Hold::verdict`] of a rollout the circuit breaker (or ECS) rolled back.
pub const ROLLED_BACK: &str = "rolled back";
/// [`Hold::verdict`] of a rollout that failed without being rolled back.
pub const FAILED: &str = "failed";
/// [`Hold::verdict`] after `rollback` put a consumer back on an earlier image.
pub const ROLLED_BACK_BY_HAND: &str = "rolled back by hand";

/// A consumer's entry from its settings and its image reference; `hold` is `null`.
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
        // Only a single writer carries its own rollout limits; the others take the module's.
        "deployment_minimum_healthy_percent": s.deployment_percentages().map(|p| p.0),
        "deployment_maximum_percent": s.deployment_percentages().map(|p| p.1),
        "msk": s.msk.as_ref().map(|m| json!({
            "cluster": m.cluster,
            "consumer_group": m.consumer_group,
            "read_topics": m.read_topics,
            "write_topics": m.write_topics,
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
        // Written only where the file sets them, so an entry from before they existed stays
        // equal to what is applied (the module reads null as the default).
        "alarms": s.alarms.as_ref().map(|a| json!({
            "running_below_desired_minutes": a.running_below_desired_minutes,
            "tasks_stopped": a.tasks_stopped,
            "lag_messages": a.lag_messages,
            "lag_minutes": a.lag_minutes,
            "cpu_percent": a.cpu_percent,
            "memory_percent": a.memory_percent,
            "off": a.off,
            "rollback": a.rollback,
        })),
        "execute_command": s.execute_command.then_some(true),
        SCALE_KEY: Value::Null,
        HOLD_KEY: Value::Null,
    })
}

/// The keys of an entry that are its settings: every key [`entry`] writes but the image, the
/// hold and a scale by hand (which are records of what happened, not the folder's settings).
fn settings_keys() -> Vec<String> {
    let e = entry(&ConsumerSettings::default(), "");
    e.as_object()
        .map(|m| {
            m.keys()
                .filter(|k| *k != "image" && *k != HOLD_KEY && *k != SCALE_KEY)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// A value as Terraform gives it back: numbers without a fraction as integers, object keys in
/// order (Terraform writes `70.0` back as `70`).
fn normal(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(normal).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), normal(v))).collect()),
        other => other.clone(),
    }
}

/// The settings a digest always names, a missing one as `null`: those of the entries the holds
/// recorded so far were digested with. A setting added later counts only where it is set, so
/// adding one leaves every recorded hold matching the consumers it held.
const DIGESTED_ALWAYS: [&str; 12] = [
    "autoscaling",
    "cpu",
    "deployment_maximum_percent",
    "deployment_minimum_healthy_percent",
    "desired_count",
    "environment",
    "health_check",
    "memory",
    "msk",
    "platform",
    "secrets",
    "stop_timeout",
];

/// A short digest of an entry's settings (every key but the image and the hold, a missing one
/// read as `null`; see [`DIGESTED_ALWAYS`]): the same for the entry the action writes and the one
/// Terraform gives back.
pub fn settings_digest(e: &Value) -> String {
    digest_over(e, &settings_keys())
}

fn digest_over(e: &Value, keys: &[String]) -> String {
    let picked: Map<String, Value> = keys
        .iter()
        .filter_map(|k| {
            let v = e.get(k).map_or(Value::Null, normal);
            (DIGESTED_ALWAYS.contains(&k.as_str()) || !v.is_null()).then(|| (k.clone(), v))
        })
        .collect();
    let text = Value::Object(picked).to_string();
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// The settings in which `wanted` differs from `applied`, each as people read it (`` `cpu` 256 →
/// 512 ``, `` `environment` ``). Keys the applied entry does not carry are not compared: a root
/// module whose `consumers` variable lacks them drops them.
pub fn differences(wanted: &Value, applied: &Value) -> Vec<String> {
    let Some(applied) = applied.as_object() else {
        return Vec::new();
    };
    settings_keys()
        .into_iter()
        .filter_map(|k| {
            let before = normal(applied.get(&k)?);
            let after = wanted.get(&k).map_or(Value::Null, normal);
            if before == after {
                return None;
            }
            Some(match (&before, &after) {
                (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
                    format!("`{k}` {} → {}", scalar(&before), scalar(&after))
                }
                _ => format!("`{k}`"),
            })
        })
        .collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `wanted`, an entry as the action writes it, is what Terraform gives back as `applied`
/// (its `config`): every key of either the same, a missing one read as `null`, numbers without
/// a fraction read as integers. Then applying `wanted` changes nothing of that consumer.
pub fn same_entry(wanted: &Value, applied: &Value) -> bool {
    let (Some(w), Some(a)) = (wanted.as_object(), applied.as_object()) else {
        return false;
    };
    w.keys().chain(a.keys()).all(|k| {
        let get = |m: &Map<String, Value>| m.get(k).map_or(Value::Null, normal);
        get(w) == get(a)
    })
}

/// Whether the applied entries carry a hold: the root module's `consumers` variable declares
/// `hold` and its output gives the entry back as `config`.
pub fn carries_holds(applied: &BTreeMap<String, AppliedConsumer>, name: &str) -> bool {
    applied
        .get(name)
        .and_then(|a| a.config.as_ref())
        .is_some_and(|c| c.get(HOLD_KEY).is_some_and(|h| !h.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(seed: &str) -> Fingerprint {
        Fingerprint::from_hash(blake3::hash(seed.as_bytes()))
    }

    #[test]
    fn a_setting_added_later_leaves_the_digests_of_the_entries_without_it_as_they_were() {
        let e = entry(&ConsumerSettings::default(), "r/x@sha256:1");
        let today = settings_keys();
        for k in DIGESTED_ALWAYS {
            assert!(
                today.iter().any(|t| t == k),
                "`{k}` is a setting the entry writes"
            );
        }
        // The digest as the holds recorded so far were made: every key of then, a null one
        // included.
        let before: Map<String, Value> = DIGESTED_ALWAYS
            .iter()
            .map(|k| (k.to_string(), e.get(*k).map_or(Value::Null, normal)))
            .collect();
        assert_eq!(
            settings_digest(&e),
            blake3::hash(Value::Object(before).to_string().as_bytes()).to_hex()[..16].to_string()
        );
        // A key added later: the same digest while it is not set, another once it is.
        // The keys added since (`alarms`, `execute_command`, …) count once set.
        assert!(
            today.iter().any(|k| k == "alarms") && today.iter().any(|k| k == "execute_command")
        );
        let mut set = e.clone();
        set["alarms"] = json!({"lag_messages": 1000});
        assert_ne!(settings_digest(&set), settings_digest(&e));
    }

    #[test]
    fn the_settings_digest_is_the_same_for_what_is_written_and_what_terraform_gives_back() {
        let mut s = ConsumerSettings::default();
        s.environment.insert("TOPIC".into(), "orders".into());
        let written = entry(&s, "r/x@sha256:1");
        // Terraform drops what its type lacks, fills optional keys, and writes numbers back
        // without a fraction.
        let mut back = written.clone();
        back["cpu"] = json!(256.0);
        back["image"] = json!("r/x@sha256:2");
        back[HOLD_KEY] = json!({"image": "x", "settings": "y", "verdict": "failed", "at": "z"});
        back["unknown_optional"] = json!(3);
        assert_eq!(settings_digest(&written), settings_digest(&back));
        let mut other = s.clone();
        other.cpu = 512;
        assert_ne!(
            settings_digest(&written),
            settings_digest(&entry(&other, "r/x@sha256:1"))
        );
    }

    #[test]
    fn an_entry_equals_what_terraform_gives_back_for_it() {
        let mut s = ConsumerSettings::default();
        s.environment.insert("TOPIC".into(), "orders".into());
        let written = entry(&s, "r/x@sha256:1");
        let mut back = written.clone();
        back["cpu"] = json!(256.0);
        assert!(same_entry(&written, &back), "70.0 is 70");
        back.as_object_mut().unwrap().remove("msk");
        assert!(same_entry(&written, &back), "a null the root dropped");
        let mut other = back.clone();
        other["image"] = json!("r/x@sha256:2");
        assert!(!same_entry(&written, &other), "another image");
        let mut held = back.clone();
        held[HOLD_KEY] = json!({"image": "i", "settings": "s", "verdict": "failed", "at": "t"});
        assert!(!same_entry(&written, &held), "a hold to clear");
        let mut extra = back;
        extra["unknown_optional"] = json!(3);
        assert!(
            !same_entry(&written, &extra),
            "a value the action did not write"
        );
        assert!(!same_entry(&written, &Value::Null));
    }

    #[test]
    fn differences_name_the_settings_that_change() {
        let s = ConsumerSettings::default();
        let mut other = s.clone();
        other.cpu = 512;
        other.memory = 1024;
        other.environment.insert("A".into(), "b".into());
        let d = differences(&entry(&other, "i"), &entry(&s, "j"));
        assert_eq!(
            d,
            ["`cpu` 256 → 512", "`environment`", "`memory` 512 → 1024"]
        );
        // A key the applied entry does not carry is not compared.
        let mut bare = entry(&s, "j");
        bare.as_object_mut().unwrap().remove("environment");
        let d = differences(&entry(&other, "i"), &bare);
        assert_eq!(d, ["`cpu` 256 → 512", "`memory` 512 → 1024"]);
        assert!(
            differences(&entry(&s, "i"), &entry(&s, "j")).is_empty(),
            "the image is aside"
        );
    }

    #[test]
    fn a_hold_matches_the_same_fingerprint_and_settings_only() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let hold = Hold {
            image: format!("r/x@{digest}"),
            fingerprint: Some(fp("one").hex().to_string()),
            settings: "s1".into(),
            verdict: "rolled back".into(),
            at: "2026-12-04T21:30:00Z".into(),
        };
        assert!(hold.matches(Some(&fp("one")), None, "s1"));
        assert!(
            !hold.matches(Some(&fp("two")), None, "s1"),
            "its folder changed"
        );
        assert!(
            !hold.matches(Some(&fp("one")), None, "s2"),
            "its settings changed"
        );
        assert_eq!(hold.day(), "2026-12-04");
        assert_eq!(hold.what(), &fp("one").hex()[..12]);
        // Without a fingerprint (a rollback by hand), the image the folder has is compared.
        let by_hand = Hold {
            fingerprint: None,
            ..hold.clone()
        };
        assert!(by_hand.matches(Some(&fp("one")), Some(&format!("r/x@{digest}")), "s1"));
        let other = format!("r/x@sha256:{}", "b".repeat(64));
        assert!(!by_hand.matches(Some(&fp("one")), Some(&other), "s1"));
        assert!(
            !by_hand.matches(Some(&fp("one")), None, "s1"),
            "an image not built yet"
        );
        assert_eq!(by_hand.what(), "sha256:aaaaaaaaaaaa");
    }

    #[test]
    fn a_hold_is_read_from_the_applied_config() {
        let a = AppliedConsumer {
            config: Some(
                json!({"cpu": 256, "hold": {"image": "i", "fingerprint": null, "settings": "s", "verdict": "failed", "at": "t"}}),
            ),
            ..AppliedConsumer::default()
        };
        assert_eq!(a.hold().unwrap().verdict, "failed");
        let none = AppliedConsumer {
            config: Some(json!({"cpu": 256, "hold": null})),
            ..AppliedConsumer::default()
        };
        assert_eq!(none.hold(), None);
    }
}
