# Alarms per consumer, each kind switched by `alarms` (which consumers get which: alarm_locals.tf),
# and the topic they all notify (and tell when they are OK again). Thresholds are
# `alarm_thresholds`. A standard alarm costs $0.10 a month per metric it reads: five kinds for 500
# consumers are about 2,500 alarms, $250 to $400 a month.

locals {
  alarm_topic_actions = [aws_sns_topic.alarms.arn]
}

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:Encrypted with kms_key_arn when one is given. CloudWatch cannot publish to a topic under the AWS managed key aws/sns (its key policy cannot grant cloudwatch.amazonaws.com), so without a key of the team's the topic is not encrypted.
  name              = "${local.name}-alarms"
  kms_master_key_id = var.kms_key_arn

  tags = local.tags
}

# The topic's own policy replaces the default one: CloudWatch may publish for this fleet's alarms.
# https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "FleetAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:cloudwatch:${var.aws_region}:${data.aws_caller_identity.current.account_id}:alarm:${local.name}-*"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_email_addresses)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# A PagerDuty Events integration URL, or a webhook relay that confirms the subscription itself
# (SNS posts a SubscriptionConfirmation; an endpoint that does not confirm fails the apply).
# Keyed by position: removing a URL replaces the subscriptions after it.
resource "aws_sns_topic_subscription" "https" {
  for_each = nonsensitive(toset([for i in range(length(var.alarm_https_endpoints)) : tostring(i)]))

  topic_arn              = aws_sns_topic.alarms.arn
  protocol               = "https"
  endpoint               = var.alarm_https_endpoints[tonumber(each.key)]
  endpoint_auto_confirms = true
}

# Running below desired for N minutes: tasks that do not start or do not stay up. For a consumer
# it is a group with fewer members than partitions to spare, or a source nobody reads.
resource "aws_cloudwatch_metric_alarm" "running_below_desired" {
  for_each = local.alarm_running

  alarm_name          = "${local.name}-${each.key}-running-below-desired"
  alarm_description   = "${each.key}: fewer tasks running than desired for ${local.alarm_threshold[each.key].running_below_desired_minutes} minutes. Runbook: README, Watching the fleet."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = local.alarm_threshold[each.key].running_below_desired_minutes
  datapoints_to_alarm = local.alarm_threshold[each.key].running_below_desired_minutes
  # No data is no verdict (a service being created, Container Insights catching up).
  treat_missing_data = "missing"
  alarm_actions      = local.alarm_topic_actions
  ok_actions         = local.alarm_topic_actions

  metric_query {
    id = "missing"
    # No task running may mean no data point for running at all: that is 0 running.
    expression  = "desired - FILL(running, 0)"
    label       = "tasks missing"
    return_data = true
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      period      = 60
      stat        = "Average"
      dimensions  = { ClusterName = local.name, ServiceName = each.key }
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      period      = 60
      stat        = "Average"
      dimensions  = { ClusterName = local.name, ServiceName = each.key }
    }
  }

  tags = merge(local.tags, { consumer = each.key })
}

# Tasks stopping repeatedly: each one a rebalance of the group, or a slot let go of.
resource "aws_cloudwatch_metric_alarm" "tasks_stopping" {
  for_each = local.alarm_stopped

  alarm_name          = "${local.name}-${each.key}-tasks-stopping"
  alarm_description   = "${each.key}: ${local.alarm_threshold[each.key].tasks_stopped} or more tasks stopped by a failure within 15 minutes. Runbook: README, Watching the fleet."
  namespace           = local.stopped_tasks_namespace
  metric_name         = local.stopped_tasks_metric
  dimensions          = { Group = "service:${each.key}" }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = local.alarm_threshold[each.key].tasks_stopped
  # A service that stops nothing has no data point at all.
  treat_missing_data = "notBreaching"
  alarm_actions      = local.alarm_topic_actions
  ok_actions         = local.alarm_topic_actions

  tags = merge(local.tags, { consumer = each.key })
}

# Lag above the threshold for N minutes, summed over every topic of the consumer's group (one
# Metrics Insights query: topics named by a wildcard included, no limit of ten metrics). MSK
# publishes nothing while the group rebalances: that gap keeps the alarm as it was.
resource "aws_cloudwatch_metric_alarm" "lag" {
  for_each = local.alarm_lag

  alarm_name          = "${local.name}-${each.key}-lag"
  alarm_description   = "${each.key}: more than ${local.alarm_threshold[each.key].lag_messages} messages behind on its topics for ${local.alarm_threshold[each.key].lag_minutes} minutes. Runbook: README, Watching the fleet."
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.alarm_threshold[each.key].lag_messages
  evaluation_periods  = local.alarm_threshold[each.key].lag_minutes
  datapoints_to_alarm = local.alarm_threshold[each.key].lag_minutes
  treat_missing_data  = "ignore"
  alarm_actions       = local.alarm_topic_actions
  ok_actions          = local.alarm_topic_actions

  metric_query {
    id          = "lag"
    expression  = "SELECT SUM(SumOffsetLag) FROM SCHEMA(\"AWS/Kafka\", \"Cluster Name\", \"Consumer Group\", Topic) WHERE \"Cluster Name\" = '${local.consumers[each.key].msk.cluster}' AND \"Consumer Group\" = '${local.consumers[each.key].msk.consumer_group}'"
    period      = 60
    label       = "messages behind"
    return_data = true
  }

  tags = merge(local.tags, { consumer = each.key })
}

# CPU or memory saturated: a consumer at its task's limit falls behind, or is killed for memory.
resource "aws_cloudwatch_metric_alarm" "cpu" {
  for_each = local.alarm_cpu

  alarm_name          = "${local.name}-${each.key}-cpu"
  alarm_description   = "${each.key}: CPU at ${local.alarm_threshold[each.key].cpu_percent}% or more of its task's for ${var.alarm_thresholds.saturation_minutes} minutes. Runbook: README, Watching the fleet."
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  dimensions          = { ClusterName = local.name, ServiceName = each.key }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = var.alarm_thresholds.saturation_minutes
  datapoints_to_alarm = var.alarm_thresholds.saturation_minutes
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = local.alarm_threshold[each.key].cpu_percent
  # No task, no metric: running below desired says that.
  treat_missing_data = "missing"
  alarm_actions      = local.alarm_topic_actions
  ok_actions         = local.alarm_topic_actions

  tags = merge(local.tags, { consumer = each.key })
}

resource "aws_cloudwatch_metric_alarm" "memory" {
  for_each = local.alarm_memory

  alarm_name          = "${local.name}-${each.key}-memory"
  alarm_description   = "${each.key}: memory at ${local.alarm_threshold[each.key].memory_percent}% or more of its task's for ${var.alarm_thresholds.saturation_minutes} minutes. Runbook: README, Watching the fleet."
  namespace           = "AWS/ECS"
  metric_name         = "MemoryUtilization"
  dimensions          = { ClusterName = local.name, ServiceName = each.key }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = var.alarm_thresholds.saturation_minutes
  datapoints_to_alarm = var.alarm_thresholds.saturation_minutes
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = local.alarm_threshold[each.key].memory_percent
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_topic_actions
  ok_actions          = local.alarm_topic_actions

  tags = merge(local.tags, { consumer = each.key })
}

# ---- Slack, through AWS Chatbot -----------------------------------------------------------------

# The role AWS Chatbot assumes in the channel: it reads CloudWatch to draw the alarm's graph. The
# channel's guardrail is the same read-only policy, so nobody in the channel can do more through
# it (without a guardrail AWS Chatbot applies AdministratorAccess), and each member acts with a
# role of their own (user_authorization_required).
data "aws_iam_policy_document" "chatbot_assume" {
  count = var.alarm_slack_channel == null ? 0 : 1

  statement {
    sid     = "ChatbotAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["chatbot.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "chatbot" {
  count = var.alarm_slack_channel == null ? 0 : 1

  name               = "${local.name}-alarms-chatbot"
  assume_role_policy = data.aws_iam_policy_document.chatbot_assume[0].json

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "chatbot" {
  count = var.alarm_slack_channel == null ? 0 : 1

  role       = aws_iam_role.chatbot[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/CloudWatchReadOnlyAccess"
}

resource "aws_chatbot_slack_channel_configuration" "alarms" {
  count = var.alarm_slack_channel == null ? 0 : 1

  # AWS Chatbot's API answers in a few regions only: alarm_slack_channel.region picks one.
  region                      = var.alarm_slack_channel.region
  configuration_name          = "${local.name}-alarms"
  iam_role_arn                = aws_iam_role.chatbot[0].arn
  slack_team_id               = var.alarm_slack_channel.workspace_id
  slack_channel_id            = var.alarm_slack_channel.channel_id
  sns_topic_arns              = [aws_sns_topic.alarms.arn]
  guardrail_policy_arns       = ["arn:${data.aws_partition.current.partition}:iam::aws:policy/CloudWatchReadOnlyAccess"]
  user_authorization_required = true
  logging_level               = "ERROR"

  tags = local.tags
}
