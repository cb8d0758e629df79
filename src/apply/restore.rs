//! Putting back a consumer whose rollout failed: after the circuit breaker rolls it back, ECS runs
//! the previous task definition while the Terraform state holds the failed one, and the next
//! plan would roll the failed image out again. This module decides, purely, which entries go
//! back (each consumer's entry from before the run, with a [`Hold`] recording what failed) and
//! whether the applied entries remember the hold afterwards. A consumer that was new has nothing
//! earlier: its failed entry stays, with the hold, so later runs do not roll it out again and say
//! why. The Terraform stage applies them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::infra::vars::{kept_entry, AppliedConsumer};
use super::rollout::{Verdict, VerdictKind};
use super::Restore;
use crate::plan::entries::{self, Hold};
use crate::plan::{Plan, Status};

/// What a run puts back, and what it cannot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restoring {
    /// The entry each consumer goes back to, its hold included.
    pub entries: BTreeMap<String, Value>,
    /// Each consumer whose rollout failed, as far as it is known yet.
    pub restores: BTreeMap<String, Restore>,
    /// Consumers that were new in this run: ECS has nothing earlier to run, nor the state; they
    /// keep the entry that failed, held.
    pub new: Vec<String>,
}

/// The entries that put back each consumer whose rollout `failed` or was `rolled back`:
/// `before` is what was applied before the run, `after` what its apply left, `at` now.
pub fn entries(
    verdicts: &BTreeMap<String, Verdict>,
    before: &BTreeMap<String, AppliedConsumer>,
    after: &BTreeMap<String, AppliedConsumer>,
    plan: &Plan,
    at: &str,
) -> Restoring {
    let mut out = Restoring::default();
    for (name, v) in verdicts {
        let verdict = match v.kind {
            VerdictKind::RolledBack => entries::ROLLED_BACK,
            VerdictKind::Failed => entries::FAILED,
            _ => continue,
        };
        let Some(failed) = after.get(name) else {
            continue;
        };
        // Nothing earlier: the entry that failed stays, and is held.
        let previous = match before.get(name) {
            Some(p) => p,
            None => {
                out.new.push(name.clone());
                failed
            }
        };
        let mut restore = Restore {
            failed_image: failed.image.clone(),
            image: previous.image.clone(),
            verdict: None,
            error: None,
            remembered: false,
        };
        let Some(mut e) = kept_entry(previous, None) else {
            restore.error = Some(
                "the root module's `consumers` output does not give back its previous `config`"
                    .into(),
            );
            out.restores.insert(name.clone(), restore);
            continue;
        };
        // The folder's fingerprint, when the failed image is the folder's.
        let fingerprint = plan
            .get(name)
            .filter(|c| c.status != Status::Held)
            .and_then(|c| c.fingerprint.as_ref())
            .map(|f| f.hex().to_string());
        let hold = Hold {
            image: failed.image.clone(),
            fingerprint,
            settings: entries::settings_digest(failed.config.as_ref().unwrap_or(&Value::Null)),
            verdict: verdict.to_string(),
            at: at.to_string(),
        };
        e[entries::HOLD_KEY] = serde_json::to_value(&hold).unwrap_or(Value::Null);
        out.entries.insert(name.clone(), e);
        out.restores.insert(name.clone(), restore);
    }
    out
}

/// Whether the entry applied for `name` now records the hold on `failed_image`.
pub fn remembered(
    applied: &BTreeMap<String, AppliedConsumer>,
    name: &str,
    failed_image: &str,
) -> bool {
    applied
        .get(name)
        .and_then(AppliedConsumer::hold)
        .is_some_and(|h| h.image == failed_image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::config::ConsumerSettings;
    use crate::plan::ConsumerPlan;
    use std::time::Duration;

    fn applied(image: &str, config: Option<Value>) -> AppliedConsumer {
        AppliedConsumer {
            image: image.into(),
            config,
            ..AppliedConsumer::default()
        }
    }

    fn verdict(kind: VerdictKind) -> Verdict {
        Verdict {
            kind,
            reason: String::new(),
            duration: Duration::ZERO,
            running: 0,
            desired: 1,
            deployment_id: None,
            events: Vec::new(),
            stopped_tasks: Vec::new(),
            evidence_gaps: Vec::new(),
        }
    }

    #[test]
    fn a_failed_rollout_goes_back_to_its_entry_from_before_the_run_with_a_hold() {
        let s = ConsumerSettings::default();
        let old = entries::entry(&s, "r/beta@sha256:0");
        let mut changed = s.clone();
        changed.cpu = 512;
        let new = entries::entry(&changed, "r/beta@sha256:1");
        let before = BTreeMap::from([
            (
                "beta".to_string(),
                applied("r/beta@sha256:0", Some(old.clone())),
            ),
            (
                "gamma".to_string(),
                applied("r/gamma@sha256:0", Some(old.clone())),
            ),
        ]);
        let after = BTreeMap::from([
            (
                "beta".to_string(),
                applied("r/beta@sha256:1", Some(new.clone())),
            ),
            (
                "gamma".to_string(),
                applied("r/gamma@sha256:1", Some(old.clone())),
            ),
            (
                "fresh".to_string(),
                applied("r/fresh@sha256:1", Some(old.clone())),
            ),
        ]);
        let verdicts = BTreeMap::from([
            ("beta".to_string(), verdict(VerdictKind::RolledBack)),
            ("gamma".to_string(), verdict(VerdictKind::Succeeded)),
            ("fresh".to_string(), verdict(VerdictKind::Failed)),
        ]);
        let plan = Plan {
            consumers: vec![ConsumerPlan::new("beta", Status::Changed)],
            ..Plan::default()
        };
        let r = entries(&verdicts, &before, &after, &plan, "2026-12-04T21:30:00Z");
        assert_eq!(r.entries.keys().collect::<Vec<_>>(), ["beta", "fresh"]);
        assert_eq!(r.new, ["fresh"], "nothing earlier to go back to");
        // A new consumer keeps the entry that failed, held.
        assert_eq!(r.entries["fresh"]["image"], "r/fresh@sha256:1");
        assert_eq!(r.entries["fresh"]["hold"]["image"], "r/fresh@sha256:1");
        assert_eq!(r.entries["fresh"]["hold"]["verdict"], "failed");
        let e = &r.entries["beta"];
        assert_eq!(e["image"], "r/beta@sha256:0");
        assert_eq!(e["cpu"], 256, "its settings from before the run");
        let hold: Hold = serde_json::from_value(e["hold"].clone()).unwrap();
        assert_eq!(hold.image, "r/beta@sha256:1");
        assert_eq!(hold.verdict, "rolled back");
        assert_eq!(hold.settings, entries::settings_digest(&new), "what failed");
        assert_eq!(r.restores["beta"].image, "r/beta@sha256:0");
        // A root that gives no `config` back cannot put it back.
        let bare = BTreeMap::from([("beta".to_string(), applied("r/beta@sha256:0", None))]);
        let r = entries(&verdicts, &bare, &after, &plan, "t");
        assert!(!r.entries.contains_key("beta"));
        assert!(r.restores["beta"].error.is_some());

        let mut back = after.clone();
        back.get_mut("beta").unwrap().config = Some(e.clone());
        assert!(remembered(&back, "beta", "r/beta@sha256:1"));
        assert!(!remembered(&after, "beta", "r/beta@sha256:1"));
    }
}
