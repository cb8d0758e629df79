//! `status`: every consumer as it runs now. Where it runs and what it should run come from what
//! is applied; the services from ECS (one `DescribeServices` per ten services of a cluster); the
//! image's fingerprint and commit from its labels in the registry (two requests per image); the
//! alarms from CloudWatch (one `DescribeAlarms` per hundred alarms in ALARM). Nothing changes.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};

use super::repository_and_digest;
use crate::apply::infra::vars::AppliedConsumer;
use crate::clients::alarms::FiringAlarm;
use crate::clients::ecs::{Described, DESCRIBE_BATCH};
use crate::config::Settings;
use crate::gha::Runner;
use crate::pipeline::outcome::RunResult;
use crate::pipeline::outputs::Outputs;
use crate::pipeline::services::AwsServices;
use crate::pipeline::{RunError, EXIT_CANNOT_START, EXIT_FAILED};
use crate::plan::entries::{scale_of, Hold, Scale};
use crate::report::md;

/// Requests in flight at once (registry and task definition reads).
const CONCURRENCY: usize = 8;

/// The label the action puts the build context's fingerprint in.
pub const FINGERPRINT_LABEL: &str = "dev.cdc-deploy.fingerprint";
/// The label the action puts the commit in.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// The alarm kinds the bundled module makes, as their names end.
const ALARM_KINDS: [&str; 5] = [
    "running-below-desired",
    "tasks-stopping",
    "lag",
    "cpu",
    "memory",
];

/// One consumer as it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStatus {
    pub name: String,
    /// Tasks running and desired, when ECS knows the service.
    pub tasks: Option<(i32, i32)>,
    /// ECS's state of the primary deployment (`COMPLETED`, `IN_PROGRESS`, `FAILED`), or why the
    /// service could not be read.
    pub deployment: String,
    /// The image the primary deployment runs, pinned by digest.
    pub image: Option<String>,
    /// Whether that is not the image applied (ECS rolled back, or someone changed the service).
    pub drifted: bool,
    pub fingerprint: Option<String>,
    pub commit: Option<String>,
    /// The hold the applied entry records: the last verdict cdc-deploy recorded.
    pub hold: Option<Hold>,
    /// A count set by hand (`cdc-deploy scale`) the applied entry records.
    pub scale: Option<Scale>,
    /// Its alarms in ALARM, by kind.
    pub alarms: Vec<String>,
    /// Why it is unhealthy; empty when it is not.
    pub unhealthy: Vec<String>,
}

/// The fleet as it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetStatus {
    pub project: String,
    pub environment: String,
    pub consumers: Vec<ConsumerStatus>,
    /// Alarms of the fleet in ALARM that name no consumer.
    pub other_alarms: Vec<FiringAlarm>,
    /// What could not be read (the others are shown).
    pub errors: Vec<String>,
}

impl FleetStatus {
    pub fn unhealthy(&self) -> impl Iterator<Item = &ConsumerStatus> {
        self.consumers.iter().filter(|c| !c.unhealthy.is_empty())
    }
}

pub async fn run(
    settings: &Settings,
    runner: &Runner,
    aws: &AwsServices,
    applied: &BTreeMap<String, AppliedConsumer>,
    fail_on_unhealthy: bool,
) -> Result<u8, RunError> {
    let prefix = format!("{}-{}-", settings.project, settings.environment);
    let fleet = gather(aws, applied, &prefix).await;
    let fleet = FleetStatus {
        project: settings.project.to_string(),
        environment: settings.environment.clone(),
        ..fleet
    };
    if fleet.consumers.is_empty() && !fleet.errors.is_empty() {
        return Err(RunError::Start(format!(
            "the fleet's status could not be read: {}",
            fleet.errors.join("; ")
        )));
    }
    runner.print_untrusted(&terminal(&fleet));
    let _ = runner.append_summary(&markdown(&fleet));
    // What could not be read is not healthy: a scheduled check must not pass on a refused read.
    let unread = !fleet.errors.is_empty();
    let failed = unread || (fail_on_unhealthy && fleet.unhealthy().count() > 0);
    let mut o = Outputs::empty(if failed {
        RunResult::Failure
    } else {
        RunResult::Success
    });
    o.status = outputs(&fleet);
    let _ = o.write(runner);
    for e in &fleet.errors {
        runner.error(e);
    }
    Ok(if unread {
        EXIT_CANNOT_START
    } else if failed {
        EXIT_FAILED
    } else {
        0
    })
}

/// Read everything `status` shows.
pub async fn gather(
    aws: &AwsServices,
    applied: &BTreeMap<String, AppliedConsumer>,
    alarm_prefix: &str,
) -> FleetStatus {
    let mut fleet = FleetStatus::default();
    // Services by cluster, ten per call.
    let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in applied.values() {
        by_cluster
            .entry(&a.cluster)
            .or_default()
            .push(a.service.clone());
    }
    let batches: Vec<(&str, Vec<String>)> = by_cluster
        .iter()
        .flat_map(|(cluster, services)| {
            services
                .chunks(DESCRIBE_BATCH)
                .map(|c| (*cluster, c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    let described: Vec<_> = stream::iter(batches)
        .map(|(cluster, services)| async move {
            (
                cluster,
                aws.deployer.describe_services(cluster, &services).await,
            )
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut services: BTreeMap<(String, String), Described> = BTreeMap::new();
    let mut unread: BTreeSet<String> = BTreeSet::new();
    for (cluster, r) in described {
        match r {
            Ok(found) => {
                for (name, d) in found {
                    services.insert((cluster.to_string(), name), d);
                }
            }
            Err(e) => {
                fleet.errors.push(e.to_string());
                unread.insert(cluster.to_string());
            }
        }
    }

    // The image each primary deployment runs: the applied one, unless its task definition is
    // another (then read from that task definition).
    let mut rows: Vec<ConsumerStatus> = Vec::new();
    let mut to_read: Vec<(usize, String, String)> = Vec::new();
    for (name, a) in applied {
        let mut c = ConsumerStatus {
            name: name.clone(),
            hold: a.hold(),
            scale: a.config.as_ref().and_then(scale_of),
            ..ConsumerStatus::default()
        };
        match services.get(&(a.cluster.clone(), a.service.clone())) {
            Some(Described::Found(s)) => {
                c.tasks = Some((s.running, s.desired));
                let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
                c.deployment = primary
                    .and_then(|d| d.rollout_state.clone())
                    .unwrap_or_else(|| "-".into());
                if s.status != "ACTIVE" {
                    c.deployment = s.status.clone();
                    c.unhealthy.push(format!("its service is {}", s.status));
                }
                if let Some(d) = primary {
                    if d.rollout_state.as_deref() == Some("FAILED") {
                        c.unhealthy.push(match &d.rollout_state_reason {
                            Some(r) => {
                                format!("its deployment failed ({})", r.trim_end_matches('.'))
                            }
                            None => "its deployment failed".into(),
                        });
                    }
                    if d.task_definition == a.task_definition || d.task_definition.is_empty() {
                        c.image = Some(a.image.clone());
                    } else {
                        c.drifted = true;
                        to_read.push((rows.len(), d.task_definition.clone(), a.container.clone()));
                    }
                }
                if s.running < s.desired {
                    c.unhealthy
                        .push(format!("{} of {} tasks running", s.running, s.desired));
                }
            }
            Some(Described::Missing { reason }) => {
                c.deployment = format!("service missing ({reason})");
                c.unhealthy
                    .push(format!("its service `{}` is missing", a.service));
            }
            None => {
                c.deployment = if unread.contains(&a.cluster) {
                    "not read".into()
                } else {
                    "-".into()
                };
            }
        }
        rows.push(c);
    }
    let read: Vec<_> = stream::iter(to_read)
        .map(|(i, td, container)| async move {
            (
                i,
                td.clone(),
                container.clone(),
                aws.deployer.container_images(&td).await,
            )
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (i, td, container, r) in read {
        match r {
            Ok(images) => rows[i].image = images.get(&container).cloned(),
            Err(e) => fleet.errors.push(format!("{}: {e}", rows[i].name)),
        }
        if rows[i].image.is_none() {
            rows[i].image = Some(td);
        }
    }

    // Each distinct image's labels, once.
    let images: BTreeSet<String> = rows.iter().filter_map(|c| c.image.clone()).collect();
    let labels: BTreeMap<String, BTreeMap<String, String>> = stream::iter(images)
        .map(|image| async move {
            let labels = match repository_and_digest(&image) {
                Some((repo, digest)) => aws.registry.image_labels(repo, digest).await,
                None => Ok(BTreeMap::new()),
            };
            (image, labels)
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|(image, r)| async move {
            match r {
                Ok(l) => Some((image, l)),
                Err(e) => {
                    tracing::warn!("the labels of {image} could not be read: {e}");
                    None
                }
            }
        })
        .collect()
        .await;
    for c in &mut rows {
        if let Some(l) = c.image.as_ref().and_then(|i| labels.get(i)) {
            c.fingerprint = l.get(FINGERPRINT_LABEL).cloned();
            c.commit = l.get(REVISION_LABEL).cloned();
        }
    }

    // Alarms in ALARM, each to the consumer whose name it carries.
    match aws.alarms.firing(alarm_prefix).await {
        Ok(firing) => {
            for alarm in firing {
                match alarm_owner(&alarm.name, alarm_prefix, applied.keys()) {
                    Some((consumer, kind)) => {
                        if let Some(c) = rows.iter_mut().find(|c| c.name == consumer) {
                            c.alarms.push(kind.to_string());
                            c.unhealthy.push(format!("its {kind} alarm is in ALARM"));
                        }
                    }
                    None => fleet.other_alarms.push(alarm),
                }
            }
        }
        Err(e) => fleet
            .errors
            .push(format!("the alarms could not be read: {e}")),
    }
    fleet.consumers = rows;
    fleet
}

/// The consumer and kind an alarm of the bundled module is about:
/// `<project>-<env>-<consumer>-<kind>`, the longest consumer name that fits.
fn alarm_owner<'a>(
    alarm: &str,
    prefix: &str,
    consumers: impl Iterator<Item = &'a String>,
) -> Option<(String, &'static str)> {
    let rest = alarm.strip_prefix(prefix)?;
    consumers
        .filter_map(|c| {
            let kind = rest.strip_prefix(c.as_str())?.strip_prefix('-')?;
            ALARM_KINDS
                .iter()
                .find(|k| **k == kind)
                .map(|k| (c.clone(), *k))
        })
        .max_by_key(|(c, _)| c.len())
}

fn short_digest(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((_, hex)) => hex.get(..12).unwrap_or(hex).to_string(),
        None => image.to_string(),
    }
}

/// The cells of a consumer's row, shared by the terminal and the markdown.
fn cells(c: &ConsumerStatus) -> [String; 8] {
    let tasks = c.tasks.map_or("-".into(), |(r, d)| format!("{r}/{d}"));
    let image = c.image.as_deref().map_or("-".into(), short_digest);
    let fingerprint = c
        .fingerprint
        .as_deref()
        .map_or("-".into(), |f| f.get(..12).unwrap_or(f).to_string());
    let commit = c
        .commit
        .as_deref()
        .map_or("-".into(), |s| s.get(..7).unwrap_or(s).to_string());
    let verdict = c.hold.as_ref().map_or("-".into(), |h| {
        format!(
            "{} {} ({}), held on its previous image",
            h.verdict,
            h.day(),
            h.what()
        )
    });
    let scaled = c.scale.as_ref().map_or("-".into(), |s| {
        format!("{} since {}", s.describe(), s.day())
    });
    let health = if c.unhealthy.is_empty() {
        "ok".to_string()
    } else {
        c.unhealthy.join("; ")
    };
    [
        tasks,
        c.deployment.clone(),
        image,
        fingerprint,
        commit,
        verdict,
        scaled,
        health,
    ]
}

const HEADER: [&str; 9] = [
    "CONSUMER",
    "TASKS",
    "DEPLOYMENT",
    "IMAGE",
    "FINGERPRINT",
    "COMMIT",
    "LAST VERDICT",
    "SCALED BY HAND",
    "HEALTH",
];

fn headline(f: &FleetStatus) -> String {
    let unhealthy = f.unhealthy().count();
    let held = f.consumers.iter().filter(|c| c.hold.is_some()).count();
    let alarms: usize =
        f.consumers.iter().map(|c| c.alarms.len()).sum::<usize>() + f.other_alarms.len();
    format!(
        "{} consumer{}: {} unhealthy, {} held, {} alarm{} in ALARM",
        f.consumers.len(),
        if f.consumers.len() == 1 { "" } else { "s" },
        unhealthy,
        held,
        alarms,
        if alarms == 1 { "" } else { "s" }
    )
}

/// The table for a terminal.
pub fn terminal(f: &FleetStatus) -> String {
    let rows: Vec<Vec<String>> = f
        .consumers
        .iter()
        .map(|c| {
            let mut row = vec![c.name.clone()];
            row.extend(cells(c));
            if c.drifted {
                row[3].push_str(" (not the applied one)");
            }
            row
        })
        .collect();
    let mut out = format!("{}/{}: {}\n\n", f.project, f.environment, headline(f));
    out.push_str(&crate::report::table::columns(&HEADER, &rows));
    for a in &f.other_alarms {
        out.push_str(&format!("alarm in ALARM: {}: {}\n", a.name, a.reason));
    }
    for e in &f.errors {
        out.push_str(&format!("not read: {e}\n"));
    }
    out
}

/// The same as markdown, for the job summary.
pub fn markdown(f: &FleetStatus) -> String {
    let mut out = format!(
        "## cdc-deploy status: {} / {}\n\n{}\n\n",
        md::text(&f.project),
        md::text(&f.environment),
        md::text(&headline(f))
    );
    out.push_str("| Consumer | Tasks | Deployment | Image | Fingerprint | Commit | Last verdict | Scaled by hand | Health |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for c in &f.consumers {
        let [tasks, deployment, image, fingerprint, commit, verdict, scaled, health] = cells(c);
        let health = if c.unhealthy.is_empty() {
            "✅ ok".to_string()
        } else {
            format!("❌ {}", md::message(&health))
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            md::code(&c.name),
            md::text(&tasks),
            md::message(&deployment),
            match (image.as_str(), c.drifted) {
                ("-", _) => image,
                (_, true) => format!("{} (not the applied one)", md::code(&image)),
                (_, false) => md::code(&image),
            },
            if fingerprint == "-" {
                fingerprint
            } else {
                md::code(&fingerprint)
            },
            if commit == "-" {
                commit
            } else {
                md::code(&commit)
            },
            md::text(&verdict),
            md::text(&scaled),
            health
        ));
    }
    if !f.other_alarms.is_empty() {
        out.push_str("\nOther alarms in ALARM:\n\n");
        for a in &f.other_alarms {
            out.push_str(&format!(
                "- {}: {}\n",
                md::code(&a.name),
                md::text(&a.reason)
            ));
        }
    }
    if !f.errors.is_empty() {
        out.push_str("\nNot read:\n\n");
        for e in &f.errors {
            out.push_str(&format!("- {}\n", md::message(e)));
        }
    }
    out
}

/// The `status` output: each consumer's tasks, deployment, image and health, as JSON.
pub fn outputs(f: &FleetStatus) -> serde_json::Value {
    serde_json::Value::Object(
        f.consumers
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    serde_json::json!({
                        "running": c.tasks.map(|t| t.0),
                        "desired": c.tasks.map(|t| t.1),
                        "deployment": c.deployment,
                        "image": c.image,
                        "fingerprint": c.fingerprint,
                        "commit": c.commit,
                        "held": c.hold.is_some(),
                        "scaled": c.scale.as_ref().map(Scale::describe),
                        "alarms": c.alarms,
                        "healthy": c.unhealthy.is_empty(),
                    }),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetStatus {
        let digest = |c: char| {
            format!(
                "127.0.0.1:5000/shop-orders@sha256:{}",
                c.to_string().repeat(64)
            )
        };
        FleetStatus {
            project: "shop".into(),
            environment: "production".into(),
            consumers: vec![
                ConsumerStatus {
                    name: "orders".into(),
                    tasks: Some((2, 2)),
                    deployment: "COMPLETED".into(),
                    image: Some(digest('a')),
                    fingerprint: Some("3f2a9c1e0b7d".repeat(5)),
                    commit: Some("1111111111111111111111111111111111111111".into()),
                    ..ConsumerStatus::default()
                },
                ConsumerStatus {
                    name: "billing".into(),
                    tasks: Some((1, 1)),
                    deployment: "COMPLETED".into(),
                    image: Some(digest('b')),
                    drifted: true,
                    hold: Some(Hold {
                        image: digest('c'),
                        fingerprint: Some("9".repeat(64)),
                        settings: "s".into(),
                        verdict: "rolled back".into(),
                        at: "2026-12-05T06:40:00Z".into(),
                    }),
                    ..ConsumerStatus::default()
                },
                ConsumerStatus {
                    name: "ledger".into(),
                    scale: Some(Scale {
                        desired_count: Some(3),
                        min: None,
                        max: None,
                        file: "desired_count=1".into(),
                        at: "2026-12-05T07:00:00Z".into(),
                    }),
                    tasks: Some((0, 1)),
                    deployment: "FAILED".into(),
                    image: Some(digest('d')),
                    alarms: vec!["running-below-desired".into()],
                    unhealthy: vec![
                        "its deployment failed (tasks failed to start | @team <b>x</b>)".into(),
                        "0 of 1 tasks running".into(),
                        "its running-below-desired alarm is in ALARM".into(),
                    ],
                    ..ConsumerStatus::default()
                },
                ConsumerStatus {
                    name: "audit".into(),
                    deployment: "service missing (MISSING)".into(),
                    unhealthy: vec!["its service `audit` is missing".into()],
                    ..ConsumerStatus::default()
                },
            ],
            other_alarms: vec![FiringAlarm {
                name: "shop-production-nat-errors".into(),
                reason: "Threshold Crossed".into(),
                since: None,
            }],
            errors: vec![],
        }
    }

    /// What people read: the terminal table and the job summary, for a fleet with a healthy, a
    /// held, a failed and a missing consumer; text from outside (ECS's reason) stays text.
    #[test]
    fn the_status_as_people_read_it() {
        let f = fleet();
        insta::assert_snapshot!("terminal", terminal(&f));
        let md = markdown(&f);
        assert!(!md.contains("<b>"), "{md}");
        assert!(md.contains("@&#8203;team"), "{md}");
        insta::assert_snapshot!("markdown", md);
        let out = outputs(&f);
        assert_eq!(out["billing"]["held"], true);
        assert_eq!(out["ledger"]["healthy"], false);
        assert_eq!(f.unhealthy().count(), 2);
    }

    #[test]
    fn an_alarm_goes_to_the_longest_consumer_name_it_carries() {
        let names = ["orders".to_string(), "orders-eu".to_string()];
        assert_eq!(
            alarm_owner("cdc-prod-orders-eu-lag", "cdc-prod-", names.iter()),
            Some(("orders-eu".into(), "lag"))
        );
        assert_eq!(
            alarm_owner(
                "cdc-prod-orders-running-below-desired",
                "cdc-prod-",
                names.iter()
            ),
            Some(("orders".into(), "running-below-desired"))
        );
        assert_eq!(
            alarm_owner("cdc-prod-orders-latency", "cdc-prod-", names.iter()),
            None
        );
        assert_eq!(
            alarm_owner("other-orders-lag", "cdc-prod-", names.iter()),
            None
        );
    }
}
