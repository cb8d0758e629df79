//! The day-2 commands: `status`, `logs`, `exec`. Each reads where the consumers run from what
//! Terraform applied (the root module's `consumers` output: cluster, service, task definition,
//! log group, container, image and the entry), then asks AWS, and changes nothing.
//!
//! Exit codes as every command: 0 done; 1 the answer is a failure (an unhealthy consumer with
//! `--fail-on-unhealthy`, no task to exec into); 2 it could not read (no state, AWS refused, a
//! consumer that is not deployed).

pub mod exec;
pub mod logs;
pub mod scale;
pub mod status;

use std::collections::BTreeMap;

use crate::apply::infra::vars::AppliedConsumer;
use crate::apply::infra::{self, InfraStage, Session};
use crate::cancel::Cancel;
use crate::config::{Operation, Settings};
use crate::gha::Runner;
use crate::pipeline::{RunError, Services};

/// Connect to AWS and Terraform and run the day-2 command the settings ask for; its exit code.
pub async fn execute(
    settings: &Settings,
    runner: &Runner,
    cancel: &Cancel,
    op: &Operation,
) -> Result<u8, RunError> {
    let registry_host = match op {
        Operation::Status { registry_host, .. } => registry_host.as_ref(),
        _ => None,
    };
    let services = Services::connect(settings, runner, cancel, false, registry_host).await?;
    run(settings, runner, cancel, &services, op).await
}

/// Run the day-2 command with `services` and return its exit code.
pub async fn run(
    settings: &Settings,
    runner: &Runner,
    cancel: &Cancel,
    services: &Services,
    op: &Operation,
) -> Result<u8, RunError> {
    let quiet = runner.to_stderr();
    let (prepared, mut session, applied) =
        open_state(settings, &quiet, services, op.name()).await?;
    if let Some(name) = op.consumer() {
        if !applied.contains_key(name) {
            let known: Vec<&str> = applied.keys().map(String::as_str).collect();
            return Err(RunError::Start(format!(
                "`{name}` is not a deployed consumer of {}/{}: {}",
                settings.project,
                settings.environment,
                if known.is_empty() {
                    "nothing is deployed there yet".to_string()
                } else {
                    format!("the deployed ones are {}", known.join(", "))
                }
            )));
        }
    }
    let aws = services
        .aws
        .as_ref()
        .ok_or_else(|| RunError::Start(format!("`{}` needs AWS", op.name())))?;
    match op {
        Operation::Status {
            fail_on_unhealthy, ..
        } => status::run(settings, runner, aws, &applied, *fail_on_unhealthy).await,
        Operation::Logs {
            consumer,
            since,
            filter,
            lines,
            follow,
        } => {
            let request = logs::Request {
                since: *since,
                filter: filter.as_deref(),
                lines: *lines,
                follow: *follow,
            };
            logs::run(runner, cancel, aws, &applied[consumer.as_str()], &request).await
        }
        Operation::Exec { consumer, command } => {
            exec::run(runner, aws, consumer, &applied[consumer.as_str()], command).await
        }
        Operation::Scale {
            consumer,
            count,
            wait,
            wait_timeout,
        } => {
            let request = scale::Request {
                consumer,
                to: *count,
                wait: *wait,
                timeout: *wait_timeout,
            };
            scale::run(
                settings,
                runner,
                cancel,
                aws,
                (&prepared, &mut session),
                &applied,
                &request,
            )
            .await
        }
    }
}

/// The root module, initialised, and what is applied, by consumer: `terraform init` and
/// `terraform output` in the run's root module. `runner` takes Terraform's own output (stderr
/// outside Actions: stdout is the command's answer).
async fn open_state<'a>(
    settings: &'a Settings,
    runner: &'a Runner,
    services: &'a Services,
    command: &str,
) -> Result<
    (
        infra::Prepared,
        Session<'a>,
        BTreeMap<String, AppliedConsumer>,
    ),
    RunError,
> {
    let (Some(tf), Some(aws)) = (services.terraform.as_deref(), services.aws.as_ref()) else {
        return Err(RunError::Start(format!(
            "`{command}` reads where each consumer runs from the Terraform state: with `terraform: false` there is none; run it with the `terraform-dir` and `terraform-backend-config` the deploys use"
        )));
    };
    let apply = command == "scale";
    let prepared = infra::prepare(&settings.terraform, tf, apply)
        .await
        .map_err(|e| RunError::Start(format!("terraform: {e}")))?;
    let stage = InfraStage {
        runner,
        settings: &settings.terraform,
        project: settings.project.as_str(),
        environment: &settings.environment,
        region: &aws.region,
        registry_host: &aws.registry_host.host,
        selection: None,
        terraform: tf,
    };
    let (session, applied) = Session::open(stage, &prepared)
        .await
        .map_err(|e| RunError::Start(format!("`{command}` could not read what is applied: {e}")))?;
    Ok((prepared, session, applied))
}

/// The image reference's repository (`host/repo@sha256:…` → `repo`) and digest.
fn repository_and_digest(image: &str) -> Option<(&str, &str)> {
    let (name, digest) = image.split_once('@')?;
    let repository = name.split_once('/').map_or(name, |(_, r)| r);
    Some((repository, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_reference_gives_its_repository_and_digest() {
        assert_eq!(
            repository_and_digest(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/cdc-orders@sha256:ab"
            ),
            Some(("cdc-orders", "sha256:ab"))
        );
        assert_eq!(
            repository_and_digest("127.0.0.1:5000/team/orders@sha256:cd"),
            Some(("team/orders", "sha256:cd"))
        );
        assert_eq!(repository_and_digest("orders:latest"), None);
    }
}
