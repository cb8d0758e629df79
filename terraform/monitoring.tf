# What the fleet is watched by: its dashboards (bodies in dashboard_locals.tf), and the metric of
# tasks that stop by their own failure, which ECS does not publish.

resource "aws_cloudwatch_dashboard" "fleet" {
  for_each = var.dashboards ? local.dashboards : {}

  dashboard_name = each.key
  dashboard_body = each.value
}

# Tasks stopped by a failure, per service: ECS sends every task state change to EventBridge; the
# rule keeps the cluster's tasks that stopped because an essential container exited or the task
# failed to start (not those a deployment, a scale-in or a person stopped), the log group keeps
# the events, and a metric filter counts them with the service as the dimension `Group`
# (`service:<consumer>`). For a consumer each of them is a rebalance of its group, or a source
# it let go of.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html
resource "aws_cloudwatch_log_group" "task_events" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (30 days by default), as for the consumers' own logs.
  # EventBridge writes to log groups under /aws/events/.
  name              = "/aws/events/cdc/${var.project_name}/${var.environment}/tasks-stopped"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = local.tags
}

resource "aws_cloudwatch_event_rule" "tasks_stopped" {
  name        = "${local.task_events_name}-tasks-stopped"
  description = "Tasks of ${local.name} stopped by a failure: their events become the ${local.stopped_tasks_metric} metric."
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [aws_ecs_cluster.this.arn]
      lastStatus = ["STOPPED"]
      # A container that exited, a task that failed to start, or a task the scheduler stopped
      # because its container health check failed (a consumer whose heartbeat went stale). Spot
      # interruptions are not counted: they are Fargate's, not the consumer's.
      "$or" = [
        { stopCode = ["EssentialContainerExited", "TaskFailedToStart"] },
        { stopCode = ["ServiceSchedulerInitiated"], stoppedReason = [{ prefix = "Task failed container health checks" }] },
      ]
    }
  })

  tags = local.tags
}

# A log group is a target through its resource policy, not a role.
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html
resource "aws_cloudwatch_event_target" "tasks_stopped" {
  rule = aws_cloudwatch_event_rule.tasks_stopped.name
  arn  = aws_cloudwatch_log_group.task_events.arn
}

# An account has at most 10 such policies per Region: one per project and environment.
resource "aws_cloudwatch_log_resource_policy" "task_events" {
  policy_name = "${local.task_events_name}-task-events"
  policy_document = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeWritesTaskEvents"
      Effect    = "Allow"
      Principal = { Service = ["events.amazonaws.com", "delivery.logs.amazonaws.com"] }
      Action    = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource  = "${aws_cloudwatch_log_group.task_events.arn}:*"
    }]
  })
}

resource "aws_cloudwatch_log_metric_filter" "tasks_stopped" {
  name           = "tasks-stopped"
  log_group_name = aws_cloudwatch_log_group.task_events.name
  pattern        = "{ $.detail.lastStatus = \"STOPPED\" }"

  metric_transformation {
    name      = local.stopped_tasks_metric
    namespace = local.stopped_tasks_namespace
    value     = "1"
    unit      = "Count"
    # With a dimension there is no default value: a quiet service has no data point, which its
    # alarm reads as not breaching.
    dimensions = { Group = "$.detail.group" }
  }
}
