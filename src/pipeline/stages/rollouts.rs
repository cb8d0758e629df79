//! The rollout stages: each changed service's deployment watched to a verdict (the pushed images'
//! scans read meanwhile), and the evidence of each that did not succeed.

use std::collections::BTreeMap;

use super::Run;
use crate::apply::infra::InfraReport;
use crate::apply::rollout::{self, EvidenceSettings, WatchSettings};
use crate::apply::{scans, RunReport};
use crate::cancel::Cancel;
use crate::config::DeploySettings;
use crate::gha::Runner;
use crate::plan::Plan;

impl Run<'_> {
    pub(super) async fn watch(&mut self) {
        let (Some(aws), Some(d)) = (&self.services.aws, self.deploy_settings()) else {
            return;
        };
        self.watches = self
            .report
            .infra
            .as_ref()
            .map(InfraReport::changed_services)
            .unwrap_or_default();
        // Scans started at push time are read while the rollouts are watched: the wait for them
        // costs nothing when there are rollouts, and at most the scan budget when there are none.
        let pushed = pushed_images(&self.plan, &self.report);
        let cancel = self.cancel;
        let scan_reader = aws.scans.clone();
        let read_scans = async {
            if pushed.is_empty() {
                return BTreeMap::new();
            }
            let collect = scans::collect(
                scan_reader.as_ref(),
                &pushed,
                scans::DEFAULT_BUDGET,
                scans::DEFAULT_INTERVAL,
            );
            crate::cancel::or_cancelled(cancel, collect)
                .await
                .unwrap_or_default()
        };
        let watch = watch_rollouts(self.runner, aws.deployer.as_ref(), d, &self.watches, cancel);
        let (rollouts, found) = tokio::join!(watch, read_scans);
        self.report.rollouts = rollouts;
        self.report.scans = found;
        for (name, scan) in &self.report.scans {
            self.runner
                .print_untrusted(&format!("scan: `{name}`: {}", scan.headline()));
        }
    }

    pub(super) async fn evidence(&mut self) {
        let (Some(aws), Some(d)) = (&self.services.aws, self.deploy_settings()) else {
            return;
        };
        explain_rollouts(
            self.runner,
            aws,
            self.cancel,
            d,
            &self.watches,
            &mut self.report.rollouts,
        )
        .await;
    }
}

/// `(consumer, repository, digest)` of each image this run pushed.
fn pushed_images(plan: &Plan, run: &RunReport) -> Vec<(String, String, String)> {
    run.images
        .iter()
        .filter(|(_, r)| r.outcome == crate::apply::ImageOutcome::Built)
        .filter_map(|(name, r)| {
            let repository = plan.get(name)?.resource_name.clone()?;
            Some((name.clone(), repository, r.digest.clone()?))
        })
        .collect()
}

/// Watch `watches` to their verdicts, unless `wait` is off.
pub(super) async fn watch_rollouts(
    runner: &Runner,
    deployer: &dyn crate::clients::ecs::Deployer,
    d: &DeploySettings,
    watches: &[rollout::Watch],
    cancel: &Cancel,
) -> BTreeMap<String, rollout::Verdict> {
    if !d.wait || watches.is_empty() {
        return BTreeMap::new();
    }
    let _g = runner.group(&format!("rollouts of {} services", watches.len()));
    rollout::watch(
        deployer,
        watches,
        WatchSettings {
            timeout: d.wait_timeout,
            ..WatchSettings::default()
        },
        cancel,
        &|line: &str| runner.print_untrusted(line),
    )
    .await
}

/// Gather the evidence of every rollout that did not succeed, and log it.
async fn explain_rollouts(
    runner: &Runner,
    aws: &crate::pipeline::services::AwsServices,
    cancel: &Cancel,
    d: &DeploySettings,
    watches: &[rollout::Watch],
    verdicts: &mut BTreeMap<String, rollout::Verdict>,
) {
    if verdicts.values().all(|v| v.kind.is_success()) {
        return;
    }
    let _g = runner.group("evidence of the rollouts that did not succeed");
    let gather = rollout::gather_evidence(
        aws.deployer.as_ref(),
        aws.logs.as_ref(),
        watches,
        verdicts,
        EvidenceSettings {
            log_lines: d.log_lines,
            ..EvidenceSettings::default()
        },
    );
    // A signal stops the gathering too: the report must be written before the runner gives up.
    if crate::cancel::or_cancelled(cancel, gather).await.is_err() {
        runner.print("evidence: not gathered, the run was cancelled");
        return;
    }
    for line in rollout::evidence_lines(verdicts) {
        runner.print_untrusted(&line);
    }
}
