//! `exec <consumer>`: the exact `aws ecs execute-command` line that opens a shell in a running task
//! of the consumer, or why there is none. It never opens the session itself: inside Actions there
//! is no one to type, and on a laptop the line is the whole of it (the Session Manager plugin of
//! the AWS CLI does the rest).

use crate::apply::infra::vars::AppliedConsumer;
use crate::clients::ecs::RunningTask;
use crate::gha::Runner;
use crate::pipeline::outcome::RunResult;
use crate::pipeline::outputs::Outputs;
use crate::pipeline::services::AwsServices;
use crate::pipeline::{RunError, EXIT_FAILED};

pub async fn run(
    runner: &Runner,
    aws: &AwsServices,
    name: &str,
    consumer: &AppliedConsumer,
    command: &str,
) -> Result<u8, RunError> {
    let tasks = aws
        .deployer
        .running_tasks(&consumer.cluster, &consumer.service)
        .await
        .map_err(|e| RunError::Start(e.to_string()))?;
    match choose(&tasks, &consumer.container) {
        Ok(task) => {
            let line = command_line(
                &aws.region,
                &consumer.cluster,
                &task.id,
                &consumer.container,
                command,
            );
            runner.print_untrusted(&line);
            let mut o = Outputs::empty(RunResult::Success);
            o.exec_command = line.clone();
            let _ = o.write(runner);
            let _ = runner.append_summary(&format!(
                "## cdc-deploy exec: {}\n\nA shell in task {} of {} (needs the AWS CLI with the Session Manager plugin):\n\n{}\n",
                crate::report::md::code(name),
                crate::report::md::code(&task.id),
                crate::report::md::code(name),
                crate::report::md::fenced(&line),
            ));
            Ok(0)
        }
        Err(why) => {
            let message = format!("no shell in `{name}`: {why}");
            runner.error(&message);
            let _ = Outputs::empty(RunResult::Failure).write(runner);
            let _ = runner.append_summary(&format!(
                "## cdc-deploy exec: {}\n\n{}\n",
                crate::report::md::code(name),
                crate::report::md::message(&message)
            ));
            Ok(EXIT_FAILED)
        }
    }
}

/// The task to open the shell in: the oldest running one whose ECS Exec agent runs in
/// `container`; else why none can be used.
pub fn choose<'t>(tasks: &'t [RunningTask], container: &str) -> Result<&'t RunningTask, String> {
    let running: Vec<&RunningTask> = tasks
        .iter()
        .filter(|t| t.last_status == "RUNNING")
        .collect();
    if running.is_empty() {
        return Err(if tasks.is_empty() {
            "it has no running task (its desired count may be 0, or its tasks keep stopping: see `cdc-deploy status` and `cdc-deploy logs`)".into()
        } else {
            format!(
                "none of its {} tasks is running yet ({}): try again in a minute",
                tasks.len(),
                tasks
                    .iter()
                    .map(|t| t.last_status.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    if running.iter().all(|t| !t.exec_enabled) {
        return Err("ECS Exec is not enabled for its tasks: set `execute_command = true` in its `consumer.toml` (or `enable_execute_command` in the module) and deploy; tasks started before that cannot be entered".into());
    }
    let agent = |t: &RunningTask| {
        t.containers
            .iter()
            .find(|(n, _)| n == container)
            .and_then(|(_, a)| a.clone())
    };
    running
        .iter()
        .copied()
        .filter(|t| t.exec_enabled)
        .find(|t| agent(t).as_deref() == Some("RUNNING"))
        .ok_or_else(|| {
            let states: Vec<String> = running
                .iter()
                .filter(|t| t.exec_enabled)
                .map(|t| agent(t).unwrap_or_else(|| "not started".into()))
                .collect();
            format!(
                "the ECS Exec agent in its `{container}` container is not running ({}): the task needs outbound HTTPS to SSM (a NAT gateway or the ssmmessages VPC endpoint) and a task role allowed the ssmmessages channels",
                states.join(", ")
            )
        })
}

/// The line, each argument quoted for a POSIX shell where it needs it.
pub fn command_line(
    region: &str,
    cluster: &str,
    task: &str,
    container: &str,
    command: &str,
) -> String {
    format!(
        "aws ecs execute-command --region {} --cluster {} --task {} --container {} --interactive --command {}",
        quote(region),
        quote(cluster),
        quote(task),
        quote(container),
        quote(command)
    )
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '='));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, status: &str, exec: bool, agent: Option<&str>) -> RunningTask {
        RunningTask {
            id: id.into(),
            task_definition: "td:1".into(),
            last_status: status.into(),
            exec_enabled: exec,
            containers: vec![("orders".into(), agent.map(str::to_string))],
            started_at: None,
        }
    }

    #[test]
    fn the_line_is_quoted_for_a_shell() {
        assert_eq!(
            command_line("us-east-1", "cdc-prod", "3f2a", "orders", "/bin/sh"),
            "aws ecs execute-command --region us-east-1 --cluster cdc-prod --task 3f2a --container orders --interactive --command /bin/sh"
        );
        assert!(command_line("r", "c", "t", "o", "sh -c 'ls /'")
            .ends_with(r"--command 'sh -c '\''ls /'\'''"));
    }

    #[test]
    fn a_task_is_chosen_only_where_exec_can_work_and_else_it_says_why() {
        assert!(choose(&[], "orders")
            .unwrap_err()
            .contains("no running task"));
        assert!(choose(&[task("a", "PENDING", true, None)], "orders")
            .unwrap_err()
            .contains("PENDING"));
        assert!(choose(&[task("a", "RUNNING", false, None)], "orders")
            .unwrap_err()
            .contains("execute_command = true"));
        assert!(
            choose(&[task("a", "RUNNING", true, Some("PENDING"))], "orders")
                .unwrap_err()
                .contains("agent")
        );
        let tasks = [
            task("a", "RUNNING", true, Some("STOPPED")),
            task("b", "RUNNING", true, Some("RUNNING")),
        ];
        assert_eq!(choose(&tasks, "orders").unwrap().id, "b");
    }
}
