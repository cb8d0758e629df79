# Two roles per consumer, each with one inline policy of least privilege:
#
# - the execution role, which ECS uses to start the task: pull the consumer's image from its own
#   ECR repository, write to its own log group, read its own secrets (and decrypt them with
#   var.secrets_kms_key_arns when set);
# - the task role, which the consumer's code runs as: MSK IAM authentication to its cluster, to
#   read and write the topics its `msk` entry names and commit offsets as its consumer group, and
#   the ssmmessages channels of ECS Exec (a consumer with execute_command, or every one with
#   var.enable_execute_command). Teams attach further policies to it by name (output
#   `consumers[*].task_role_name`).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Consumers whose task role gets an inline policy (an empty policy document is not valid).
  task_policies = {
    for name, c in local.consumers : name => c if c.msk != null || c.execute_command
  }
}

# ---- execution roles --------------------------------------------------------------------------

data "aws_iam_policy_document" "execution_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  for_each = var.consumers

  name               = local.consumers[each.key].execution_role
  description        = "ECS execution role of the ${each.key} consumer (${local.name}): pulls its image, writes its logs, reads its secrets"
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json

  tags = merge(local.tags, { consumer = each.key })
}

data "aws_iam_policy_document" "execution" {
  for_each = var.consumers

  # GetAuthorizationToken takes no resource: it is always "*".
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "EcrPullOwnRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = ["arn:${local.partition}:ecr:${var.aws_region}:${local.account_id}:repository/${local.consumers[each.key].repository}"]
  }

  statement {
    sid = "WriteOwnLogGroup"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = length(local.consumers[each.key].ssm_parameter_arns) > 0 ? [local.consumers[each.key].ssm_parameter_arns] : []

    content {
      sid       = "ReadOwnParameters"
      actions   = ["ssm:GetParameters"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = length(local.consumers[each.key].secretsmanager_arns) > 0 ? [local.consumers[each.key].secretsmanager_arns] : []

    content {
      sid       = "ReadOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = statement.value
    }
  }

  # The keys behind its secrets (customer managed keys of SSM SecureString parameters and Secrets
  # Manager secrets), never the log group key: CloudWatch Logs uses that one, not the task.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-app-prereq.html
  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 && length(each.value.secrets) > 0 ? [sort(distinct(var.secrets_kms_key_arns))] : []

    content {
      sid       = "DecryptOwnSecrets"
      actions   = ["kms:Decrypt"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  for_each = var.consumers

  name   = "execution"
  role   = aws_iam_role.execution[each.key].id
  policy = data.aws_iam_policy_document.execution[each.key].json
}

# ---- task roles ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "task_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Only ECS tasks of this account and region (confused deputy protection).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task" {
  for_each = var.consumers

  name               = local.consumers[each.key].task_role
  description        = "ECS task role of the ${each.key} consumer (${local.name}): what its code may do"
  assume_role_policy = data.aws_iam_policy_document.task_assume.json

  tags = merge(local.tags, { consumer = each.key })
}

data "aws_iam_policy_document" "task" {
  for_each = local.task_policies

  # MSK IAM authentication: connect to its cluster, read and write the topics its `msk` entry
  # names, commit offsets as its consumer group. An idempotent producer (the default of Kafka
  # clients since 3.0) also needs WriteDataIdempotently on the cluster.
  # https://docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html#kafka-actions
  dynamic "statement" {
    for_each = each.value.msk == null ? [] : [each.value.msk]

    content {
      sid = "MskConnect"
      actions = concat(
        ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
        length(statement.value.write_topics) > 0 ? ["kafka-cluster:WriteDataIdempotently"] : [],
      )
      resources = ["arn:${local.partition}:kafka:${var.aws_region}:${local.account_id}:cluster/${statement.value.cluster}/*"]
    }
  }

  dynamic "statement" {
    for_each = try(length(each.value.msk.read_topics) > 0, false) ? [each.value.msk] : []

    content {
      sid = "MskReadTopics"
      actions = [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:ReadData",
      ]
      resources = [for t in statement.value.read_topics : "arn:${local.partition}:kafka:${var.aws_region}:${local.account_id}:topic/${statement.value.cluster}/*/${t}"]
    }
  }

  dynamic "statement" {
    for_each = try(length(each.value.msk.write_topics) > 0, false) ? [each.value.msk] : []

    content {
      sid = "MskWriteTopics"
      actions = [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:WriteData",
      ]
      resources = [for t in statement.value.write_topics : "arn:${local.partition}:kafka:${var.aws_region}:${local.account_id}:topic/${statement.value.cluster}/*/${t}"]
    }
  }

  dynamic "statement" {
    for_each = try(each.value.msk.consumer_group != null, false) ? [each.value.msk] : []

    content {
      sid = "MskConsumerGroup"
      actions = [
        "kafka-cluster:AlterGroup",
        "kafka-cluster:DescribeGroup",
      ]
      resources = ["arn:${local.partition}:kafka:${var.aws_region}:${local.account_id}:group/${statement.value.cluster}/*/${statement.value.consumer_group}"]
    }
  }

  # ECS Exec: the SSM agent in the task opens its session channels (these actions take no
  # resource), and writes the session log to the consumer's log group.
  dynamic "statement" {
    for_each = local.consumers[each.key].execute_command ? [1] : []

    content {
      sid = "EcsExecChannels"
      actions = [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
      ]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.consumers[each.key].execute_command ? [aws_cloudwatch_log_group.this[each.key].arn] : []

    content {
      sid = "EcsExecSessionLogs"
      actions = [
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
      ]
      resources = ["${statement.value}:*"]
    }
  }

  dynamic "statement" {
    for_each = local.consumers[each.key].execute_command ? [1] : []

    content {
      sid       = "EcsExecFindLogGroup"
      actions   = ["logs:DescribeLogGroups"]
      resources = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  for_each = local.task_policies

  name   = "task"
  role   = aws_iam_role.task[each.key].id
  policy = data.aws_iam_policy_document.task[each.key].json
}
