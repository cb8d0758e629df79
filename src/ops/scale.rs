//! `scale <consumer> --count N` (or `--min`/`--max` for an autoscaled one): the consumer's applied
//! entry gets a `scale` record, every other applied entry is kept as it is, and Terraform plans
//! and applies that, so the state says what runs. Every later deploy keeps the record while the
//! consumer's `consumer.toml` count is still the one it was set over (see
//! [`crate::plan::entries::Scale`]). Then it waits until ECS runs the new count.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::apply::infra::vars::{self, AppliedConsumer};
use crate::apply::infra::{Prepared, Session};
use crate::cancel::Cancel;
use crate::clients::ecs::Described;
use crate::config::{ScaleTo, Settings};
use crate::gha::Runner;
use crate::pipeline::outcome::RunResult;
use crate::pipeline::outputs::Outputs;
use crate::pipeline::services::AwsServices;
use crate::pipeline::{RunError, EXIT_FAILED};
use crate::plan::entries::{self, Scale};
use crate::report::now;

/// What `scale` is asked for.
pub struct Request<'a> {
    pub consumer: &'a str,
    pub to: ScaleTo,
    pub wait: bool,
    pub timeout: Duration,
}

/// The entry `scale` applies for `applied`: its applied entry with the count set by hand, or
/// (a count equal to its file's) without one. Refused: a count for an autoscaled consumer or
/// bounds for one without, more than one task for a single writer.
pub fn scaled_entry(
    name: &str,
    applied: &AppliedConsumer,
    to: ScaleTo,
    at: &str,
) -> Result<serde_json::Value, String> {
    let mut e = vars::kept_entry(applied, None).ok_or_else(|| {
        format!("the root module's `consumers` output does not give back `{name}`'s applied `config`, which `scale` changes")
    })?;
    let autoscaled = e.get("autoscaling").is_some_and(|a| !a.is_null());
    let single_writer = e["deployment_minimum_healthy_percent"].as_f64() == Some(0.0);
    let scale = match to {
        ScaleTo::Count(_) if autoscaled => {
            return Err(format!(
                "`{name}` is autoscaled: give `min` and `max` (its `consumer.toml` has {})",
                entries::count_signature(&e).replace(',', ", ")
            ))
        }
        ScaleTo::Bounds { .. } if !autoscaled => {
            return Err(format!(
                "`{name}` has a fixed count ({}): give `count`",
                entries::count_signature(&e)
            ))
        }
        ScaleTo::Count(n) if single_writer && n > 1 => {
            return Err(format!(
                "`{name}` is a `single_writer`: it runs one task at most, since a second one on the same replication slot or lock fails; give `count` 0 or 1"
            ))
        }
        ScaleTo::Count(n) => Scale {
            desired_count: Some(n),
            min: None,
            max: None,
            file: entries::count_signature(&e),
            at: at.to_string(),
        },
        ScaleTo::Bounds { min, max } => Scale {
            desired_count: None,
            min: Some(min),
            max: Some(max),
            file: entries::count_signature(&e),
            at: at.to_string(),
        },
    };
    let file_count = match to {
        ScaleTo::Count(n) => e["desired_count"].as_f64() == Some(f64::from(n)),
        ScaleTo::Bounds { min, max } => {
            e["autoscaling"]["min"].as_f64() == Some(f64::from(min))
                && e["autoscaling"]["max"].as_f64() == Some(f64::from(max))
        }
    };
    // Back to what the file says: no record left.
    e[entries::SCALE_KEY] = if file_count {
        serde_json::Value::Null
    } else {
        serde_json::to_value(&scale).unwrap_or(serde_json::Value::Null)
    };
    Ok(e)
}

pub async fn run(
    settings: &Settings,
    runner: &Runner,
    cancel: &Cancel,
    aws: &AwsServices,
    (prepared, session): (&Prepared, &mut Session<'_>),
    applied: &BTreeMap<String, AppliedConsumer>,
    request: &Request<'_>,
) -> Result<u8, RunError> {
    let name = request.consumer;
    let a = &applied[name];
    let entry = scaled_entry(name, a, request.to, &now()).map_err(RunError::Start)?;
    let target = match request.to {
        ScaleTo::Count(n) => format!("{n} task{}", if n == 1 { "" } else { "s" }),
        ScaleTo::Bounds { min, max } => format!("{min} to {max} tasks"),
    };
    runner.print(&format!("scale: `{name}` to {target}, through Terraform"));
    let mut variables = vars::from_applied(
        settings.project.as_str(),
        &settings.environment,
        &aws.region,
        applied,
        &BTreeMap::from([(name.to_string(), entry.clone())]),
    );
    // As a deploy records it: a later deploy that changes nothing still needs no plan.
    if let Err(e) =
        crate::apply::infra::add_inputs_digest(&settings.terraform, prepared, &mut variables)
    {
        runner.warning(&format!("the next deploy plans: {e}"));
    }
    let known: BTreeSet<String> = applied.keys().cloned().collect();
    let planned = session
        .plan(prepared, &variables, &known)
        .await
        .map_err(|e| RunError::Start(format!("terraform plan: {e}")))?;
    // A scale changes its consumer and nothing else: another change in the plan is a root
    // module or an entry that changed since the last deploy, which a deploy applies and watches.
    let others: Vec<String> = planned
        .plan
        .changes
        .iter()
        .filter(|c| c.consumer.as_deref() != Some(name))
        .map(|c| format!("`{}`", c.address))
        .collect();
    if !others.is_empty() {
        return Err(RunError::Start(format!(
            "the plan for the scale of `{name}` also changes {}: the root module or its inputs changed since the last deploy; deploy first, then scale",
            others.join(", ")
        )));
    }
    if !planned.guarded.is_empty() && !settings.terraform.allow_destroy {
        return Err(RunError::Start(format!(
            "the plan for the scale would also destroy or replace: {}; the root module changed since the last deploy: deploy first, or give `allow-destroy`",
            planned
                .guarded
                .iter()
                .map(|g| format!("`{}` ({})", g.address, g.why))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let done = session.apply().await;
    let finish = |result: RunResult, line: &str| {
        let _ = Outputs::empty(result).write(runner);
        let _ = runner.append_summary(&format!(
            "## cdc-deploy scale: {}\n\n{}\n",
            crate::report::md::code(name),
            crate::report::md::message(line)
        ));
    };
    let after = match done {
        Ok(d) => d.after,
        Err(e) => Err(e),
    };
    let recorded = match &after {
        Ok(after) => {
            after
                .get(name)
                .and_then(|a| a.config.as_ref())
                .map(|c| c.get(entries::SCALE_KEY).cloned().unwrap_or_default())
                == Some(entry[entries::SCALE_KEY].clone())
        }
        Err(_) => false,
    };
    if let Err(e) = after {
        let line = format!("`{name}` was not scaled: the apply failed: {e}");
        runner.error(&line);
        finish(RunResult::Failure, &line);
        return Ok(EXIT_FAILED);
    }
    if !recorded {
        let line = format!("`{name}` was not scaled: the root module's `consumers` variable does not declare `scale` (or its output does not give it back in `config`), so Terraform dropped the count; declare it as the bundled module does");
        runner.error(&line);
        finish(RunResult::Failure, &line);
        return Ok(EXIT_FAILED);
    }
    if !request.wait {
        let line = format!("`{name}` is scaled to {target} in Terraform's state (not waited for)");
        runner.print(&line);
        finish(RunResult::Success, &line);
        return Ok(0);
    }
    match wait(aws, cancel, a, request.to, request.timeout, runner).await {
        Ok((running, desired)) => {
            let line = format!("`{name}` runs {running} of {desired} tasks: scaled to {target}; it stays so across deploys until its `consumer.toml` count changes");
            runner.print(&line);
            finish(RunResult::Success, &line);
            Ok(0)
        }
        Err(why) => {
            let line = format!("`{name}` is scaled to {target} in Terraform's state, but {why}");
            runner.error(&line);
            finish(
                if cancel.is_cancelled() {
                    RunResult::Cancelled
                } else {
                    RunResult::Failure
                },
                &line,
            );
            Ok(EXIT_FAILED)
        }
    }
}

/// Poll the service (from 2 s apart, backing off to 15 s) until it runs the count asked for:
/// desired equal to it (or within the bounds) and as many running. `Ok((running, desired))`.
async fn wait(
    aws: &AwsServices,
    cancel: &Cancel,
    a: &AppliedConsumer,
    to: ScaleTo,
    timeout: Duration,
    runner: &Runner,
) -> Result<(i32, i32), String> {
    let started = Instant::now();
    let mut interval = Duration::from_secs(2);
    let mut last: Option<(i32, i32)> = None;
    loop {
        let services = std::slice::from_ref(&a.service);
        match aws.deployer.describe_services(&a.cluster, services).await {
            Ok(found) => match found.get(&a.service) {
                Some(Described::Found(s)) => {
                    let now = (s.running, s.desired);
                    if last != Some(now) {
                        runner.print(&format!(
                            "scale: {} of {} tasks running",
                            s.running, s.desired
                        ));
                        last = Some(now);
                    }
                    let desired_ok = match to {
                        ScaleTo::Count(n) => i64::from(s.desired) == i64::from(n),
                        ScaleTo::Bounds { min, max } => {
                            (i64::from(min)..=i64::from(max)).contains(&i64::from(s.desired))
                        }
                    };
                    if desired_ok && s.running == s.desired {
                        return Ok(now);
                    }
                }
                Some(Described::Missing { reason }) => {
                    return Err(format!("its service `{}` is missing ({reason})", a.service))
                }
                None => {}
            },
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(format!("its service could not be read: {e}")),
        }
        if started.elapsed() >= timeout {
            return Err(match last {
                Some((r, d)) => format!(
                    "after {} it runs {r} of {d} tasks (`wait-timeout`); see `cdc-deploy status` and `cdc-deploy logs`",
                    crate::failure::spoken(timeout)
                ),
                None => format!("its service could not be read within {}", crate::failure::spoken(timeout)),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = cancel.cancelled() => return Err("the run was cancelled before it did".into()),
        }
        interval = (interval * 2).min(Duration::from_secs(15));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(config: serde_json::Value) -> AppliedConsumer {
        AppliedConsumer {
            image: "r/x@sha256:1".into(),
            config: Some(config),
            ..AppliedConsumer::default()
        }
    }

    #[test]
    fn a_scale_records_the_count_it_was_set_over_and_is_refused_where_it_cannot_hold() {
        let fixed = applied(
            json!({"desired_count": 1, "autoscaling": null, "deployment_minimum_healthy_percent": null}),
        );
        let e = scaled_entry("orders", &fixed, ScaleTo::Count(3), "2026-12-05T07:00:00Z").unwrap();
        assert_eq!(
            e["scale"],
            json!({"desired_count": 3, "min": null, "max": null, "file": "desired_count=1", "at": "2026-12-05T07:00:00Z"})
        );
        assert_eq!(e["desired_count"], 1, "the file's count stays in the entry");
        assert_eq!(e["image"], "r/x@sha256:1");
        // Back to the file's count: no record.
        let back = scaled_entry("orders", &fixed, ScaleTo::Count(1), "t").unwrap();
        assert_eq!(back["scale"], serde_json::Value::Null);
        let err =
            scaled_entry("orders", &fixed, ScaleTo::Bounds { min: 1, max: 4 }, "t").unwrap_err();
        assert!(err.contains("give `count`"), "{err}");

        let auto = applied(json!({"desired_count": 2, "autoscaling": {"min": 1, "max": 4}}));
        let e = scaled_entry("orders", &auto, ScaleTo::Bounds { min: 2, max: 8 }, "t").unwrap();
        assert_eq!(e["scale"]["file"], "min=1,max=4");
        assert_eq!(
            (e["scale"]["min"].clone(), e["scale"]["max"].clone()),
            (json!(2), json!(8))
        );
        let err = scaled_entry("orders", &auto, ScaleTo::Count(3), "t").unwrap_err();
        assert!(err.contains("give `min` and `max`"), "{err}");

        let writer = applied(
            json!({"desired_count": 1, "deployment_minimum_healthy_percent": 0, "deployment_maximum_percent": 100}),
        );
        let err = scaled_entry("slot", &writer, ScaleTo::Count(2), "t").unwrap_err();
        assert!(err.contains("single_writer"), "{err}");
        assert!(
            scaled_entry("slot", &writer, ScaleTo::Count(0), "t").is_ok(),
            "a pause"
        );
    }

    #[test]
    fn a_scale_is_carried_while_the_files_count_stays() {
        let applied = json!({"desired_count": 1, "autoscaling": null, "scale": {"desired_count": 3, "file": "desired_count=1", "at": "t"}});
        let mut same = json!({"desired_count": 1, "autoscaling": null, "scale": null});
        assert!(entries::carry_scale(&mut same, Some(&applied)));
        assert_eq!(same["scale"]["desired_count"], 3);
        let mut changed = json!({"desired_count": 2, "autoscaling": null, "scale": null});
        assert!(!entries::carry_scale(&mut changed, Some(&applied)));
        assert_eq!(changed["scale"], serde_json::Value::Null);
    }
}
