# A production environment:
#
# - tasks in private subnets without public IPs, behind one NAT gateway per AZ (or in an
#   existing VPC's subnets);
# - on-demand Fargate;
# - logs kept for a year, encrypted with a customer managed KMS key created here;
# - no ECS Exec.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name = "${var.project_name}-${var.environment}"

  # The log groups the module creates: the consumers', the VPC flow logs' and the stopped tasks'
  # events.
  log_group_arns = [
    "arn:${data.aws_partition.current.partition}:logs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:log-group:/ecs/${var.project_name}/${var.environment}/*",
    "arn:${data.aws_partition.current.partition}:logs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:log-group:/vpc/${local.name}/*",
    "arn:${data.aws_partition.current.partition}:logs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/events/cdc/${var.project_name}/${var.environment}/*",
  ]
}

data "aws_iam_policy_document" "logs_key" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource is this key alone; the account's administrators keep managing it, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is this key alone; the account's administrators keep managing it, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is this key alone, which is all a key policy can name.

  # The account's IAM policies decide who else may use or manage the key (the default key policy).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts and decrypts this environment's log groups with it, and nothing else.
  statement {
    sid = "CloudWatchLogsUse"
    actions = [
      "kms:Decrypt*",
      "kms:Describe*",
      "kms:Encrypt*",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]

    # The regional principal the CloudWatch Logs encryption guide gives.
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
    principals {
      type        = "Service"
      identifiers = ["logs.${var.aws_region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = local.log_group_arns
    }
  }

  # The module's alarm topic is encrypted with the same key: CloudWatch publishes the alarms to
  # it, which needs a data key from it. The AWS managed key aws/sns cannot grant this, so an
  # encrypted alarm topic needs a key of your own. As the SNS guide writes it, unconditioned.
  # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
  statement {
    sid       = "AlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "logs" {
  description             = "Logs and alarms of ${local.name}: the cdc-deploy consumers' logs, the VPC flow logs, the alarm topic"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.logs_key.json
}

resource "aws_kms_alias" "logs" {
  name          = "alias/${local.name}-logs"
  target_key_id = aws_kms_key.logs.key_id
}

module "cdc" {
  source = "../../terraform"

  project_name = var.project_name
  environment  = var.environment
  aws_region   = var.aws_region
  consumers    = var.consumers

  network_mode       = var.network_mode
  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids

  availability_zone_ids = var.availability_zone_ids
  secrets_kms_key_arns  = var.secrets_kms_key_arns

  capacity_provider  = "FARGATE"
  log_retention_days = 365
  kms_key_arn        = aws_kms_key.logs.arn
}
