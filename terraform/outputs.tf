# cdc-deploy reads `consumers` after every apply (its keys and their meaning are a contract):
# which service to watch roll out, which task definition revision it should reach, where its
# logs are, and the entry each consumer was applied with (`config`), which a consumer that
# fails in a later run keeps.

output "consumers" {
  description = "Per consumer: cluster and service names, task definition ARN (with revision), log group, container name, image, the consumers entry it was applied with (config), and its roles."
  value = {
    for name, c in var.consumers : name => {
      cluster             = aws_ecs_cluster.this.name
      service             = aws_ecs_service.this[name].name
      task_definition     = aws_ecs_task_definition.this[name].arn
      log_group           = aws_cloudwatch_log_group.this[name].name
      container           = name
      image               = c.image
      config              = c
      task_role_name      = aws_iam_role.task[name].name
      task_role_arn       = aws_iam_role.task[name].arn
      execution_role_name = aws_iam_role.execution[name].name
    }
  }
}

output "cluster_name" {
  description = "Name of the ECS cluster (<project_name>-<environment>)."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "vpc_id" {
  description = "The VPC the tasks run in (created, or var.vpc_id)."
  value       = local.vpc_id
}

output "availability_zones" {
  description = "With network_mode \"public\" or \"private\": AZ name => AZ ID of the zones the VPC spans."
  value       = local.az_ids
}

output "subnet_ids" {
  description = "The subnets the tasks run in."
  value       = local.task_subnet_ids
}

output "security_group_id" {
  description = "The tasks' egress-only security group (allow it in a database's or MSK cluster's security group)."
  value       = aws_security_group.tasks.id
}

output "nat_public_ips" {
  description = "In \"private\" mode, the NAT gateways' public IPs (the tasks' source addresses on the internet)."
  value       = [for az in keys(aws_eip.nat) : aws_eip.nat[az].public_ip]
}

output "alarm_topic_arn" {
  description = "The SNS topic every alarm notifies: subscribe more endpoints to it (a queue, a Lambda function)."
  value       = aws_sns_topic.alarms.arn
}

output "dashboards" {
  description = "The fleet's CloudWatch dashboards, by name."
  value       = [for d in aws_cloudwatch_dashboard.fleet : d.dashboard_name]
}

output "deploy_inputs_digest" {
  description = "The deploy_inputs_digest the state was applied with: cdc-deploy compares it with its own to skip a plan that would change nothing."
  value       = var.deploy_inputs_digest
  # After every resource: an apply that fails half way leaves the digest of the last complete
  # one, so the next run plans again instead of taking the failed change for applied.
  depends_on = [
    aws_appautoscaling_target.this,
    aws_appautoscaling_policy.cpu,
    aws_appautoscaling_policy.memory,
    aws_appautoscaling_policy.kafka_lag,
    aws_ecs_cluster.this,
    aws_ecs_cluster_capacity_providers.this,
    aws_cloudwatch_log_group.this,
    aws_ecs_task_definition.this,
    aws_ecs_service.this,
    aws_iam_role.execution,
    aws_iam_role_policy.execution,
    aws_iam_role.task,
    aws_iam_role_policy.task,
    aws_vpc.this,
    aws_default_security_group.this,
    aws_internet_gateway.this,
    aws_subnet.public,
    aws_route_table.public,
    aws_route.public_internet,
    aws_route_table_association.public,
    aws_eip.nat,
    aws_nat_gateway.this,
    aws_subnet.private,
    aws_route_table.private,
    aws_route.private_nat,
    aws_route_table_association.private,
    aws_cloudwatch_log_group.flow_logs,
    aws_iam_role.flow_logs,
    aws_iam_role_policy.flow_logs,
    aws_flow_log.this,
    aws_security_group.tasks,
    aws_vpc_security_group_egress_rule.tasks_all,
    aws_cloudwatch_dashboard.fleet,
    aws_cloudwatch_log_group.task_events,
    aws_cloudwatch_event_rule.tasks_stopped,
    aws_cloudwatch_event_target.tasks_stopped,
    aws_cloudwatch_log_resource_policy.task_events,
    aws_cloudwatch_log_metric_filter.tasks_stopped,
    aws_sns_topic.alarms,
    aws_sns_topic_policy.alarms,
    aws_sns_topic_subscription.email,
    aws_sns_topic_subscription.https,
    aws_cloudwatch_metric_alarm.running_below_desired,
    aws_cloudwatch_metric_alarm.tasks_stopping,
    aws_cloudwatch_metric_alarm.lag,
    aws_cloudwatch_metric_alarm.cpu,
    aws_cloudwatch_metric_alarm.memory,
    aws_iam_role.chatbot,
    aws_iam_role_policy_attachment.chatbot,
    aws_chatbot_slack_channel_configuration.alarms,
  ]
}
