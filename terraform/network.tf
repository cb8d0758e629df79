# Where the tasks run.
#
# network_mode "public":   a VPC over two AZs, one public subnet per AZ routed to an internet
#                          gateway; tasks get a public IP (no NAT gateway to pay for).
# network_mode "private":  the same public subnets, holding one NAT gateway per AZ, and one
#                          private subnet per AZ routed to its AZ's NAT gateway; tasks get no
#                          public IP.
# network_mode "existing": var.vpc_id and var.subnet_ids; nothing but the tasks' security group
#                          is created.
#
# In every mode the tasks get a security group that allows egress only: a consumer connects
# out (to Kafka, its databases, AWS APIs) and nothing connects to it.

# The two AZs the VPC spans, chosen by zone ID: AZ names map to different zones in each account,
# and Fargate does not run in every zone (exclude_zone_ids lists those it does not).
# https://docs.aws.amazon.com/ram/latest/userguide/working-with-az-ids.html
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AWS_Fargate-Regions.html
data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:AZs are chosen by zone ID (availability_zone_ids, or every regular AZ but exclude_zone_ids); without an explicit list the first two by name are used, as before, so an existing VPC keeps its subnets.
  count = local.create_vpc ? 1 : 0
  state = "available"

  # Zones where Fargate does not run; ignored when availability_zone_ids names the zones.
  exclude_zone_ids = length(var.availability_zone_ids) > 0 ? [] : var.exclude_zone_ids

  # Regular AZs only, no Local or Wavelength Zones.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }

  dynamic "filter" {
    for_each = length(var.availability_zone_ids) > 0 ? [var.availability_zone_ids] : []

    content {
      name   = "zone-id"
      values = filter.value
    }
  }
}

locals {
  # AZ name => index, for the two AZs the VPC spans: the first two by name among those allowed.
  # Subnets are keyed by AZ name and cut by index, so a VPC created before zone IDs were chosen
  # keeps its subnets wherever its AZs are allowed; a change of AZ replaces subnets, which
  # cdc-deploy's destroy guard stops.
  az_names = local.create_vpc ? sort(data.aws_availability_zones.available[0].names) : []
  azs      = { for i, az in slice(local.az_names, 0, min(2, length(local.az_names))) : az => i }
  # AZ name => AZ ID, of the zones the VPC spans.
  az_ids = local.create_vpc ? {
    for i, name in data.aws_availability_zones.available[0].names : name => data.aws_availability_zones.available[0].zone_ids[i] if contains(keys(local.azs), name)
  } : {}

  task_subnet_ids = (
    var.network_mode == "existing" ? var.subnet_ids : (
      local.private_subnets
      ? [for az in keys(local.azs) : aws_subnet.private[az].id]
      : [for az in keys(local.azs) : aws_subnet.public[az].id]
    )
  )
  vpc_id = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
}

resource "aws_vpc" "this" {
  count = local.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.tags, { Name = local.name })

  lifecycle {
    precondition {
      condition     = length(local.azs) == 2
      error_message = "The VPC spans two AZs, but ${length(local.azs)} ${length(var.availability_zone_ids) > 0 ? "of availability_zone_ids ${jsonencode(var.availability_zone_ids)} exist" : "regular AZs outside exclude_zone_ids ${jsonencode(var.exclude_zone_ids)} are available"} in ${var.aws_region}: name two AZ IDs where Fargate runs in availability_zone_ids."
    }
  }
}

# The VPC's default security group, stripped of its rules: nothing should use it.
resource "aws_default_security_group" "this" {
  count = local.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = "${local.name}-default-unused" })
}

resource "aws_internet_gateway" "this" {
  count = local.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = local.name })
}

# ---- public subnets (the tasks' in "public" mode, the NAT gateways' in "private" mode) ---------

resource "aws_subnet" "public" {
  for_each = local.azs

  vpc_id            = aws_vpc.this[0].id
  availability_zone = each.key
  cidr_block        = cidrsubnet(var.vpc_cidr, 2, each.value)
  # Tasks get their public IP from the service (assign_public_ip), NAT gateways from their
  # Elastic IP: nothing else is launched here, so nothing gets one implicitly.
  map_public_ip_on_launch = false

  tags = merge(local.tags, { Name = "${local.name}-public-${each.key}" })
}

resource "aws_route_table" "public" {
  count = local.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = "${local.name}-public" })
}

resource "aws_route" "public_internet" {
  count = local.create_vpc ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  for_each = local.azs

  subnet_id      = aws_subnet.public[each.key].id
  route_table_id = aws_route_table.public[0].id
}

# ---- private subnets behind one NAT gateway per AZ ("private" mode) ---------------------------

resource "aws_eip" "nat" {
  for_each = local.private_subnets ? local.azs : {}

  domain = "vpc"

  tags = merge(local.tags, { Name = "${local.name}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  for_each = local.private_subnets ? local.azs : {}

  connectivity_type = "public"
  allocation_id     = aws_eip.nat[each.key].id
  subnet_id         = aws_subnet.public[each.key].id

  tags = merge(local.tags, { Name = "${local.name}-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_subnet" "private" {
  for_each = local.private_subnets ? local.azs : {}

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = each.key
  cidr_block              = cidrsubnet(var.vpc_cidr, 2, each.value + 2)
  map_public_ip_on_launch = false

  tags = merge(local.tags, { Name = "${local.name}-private-${each.key}" })
}

resource "aws_route_table" "private" {
  for_each = local.private_subnets ? local.azs : {}

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = "${local.name}-private-${each.key}" })
}

resource "aws_route" "private_nat" {
  for_each = local.private_subnets ? local.azs : {}

  route_table_id         = aws_route_table.private[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[each.key].id
}

resource "aws_route_table_association" "private" {
  for_each = local.private_subnets ? local.azs : {}

  subnet_id      = aws_subnet.private[each.key].id
  route_table_id = aws_route_table.private[each.key].id
}

# ---- VPC flow logs ------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (30 days by default); how long to keep flow logs is the team's choice, not the module's.
  count = local.create_vpc ? 1 : 0

  name              = "/vpc/${local.name}/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = local.tags
}

data "aws_iam_policy_document" "flow_logs_assume" {
  count = local.create_vpc ? 1 : 0

  statement {
    sid     = "VpcFlowLogsAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    # Only flow logs of this account (confused deputy protection).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ec2:${var.aws_region}:${local.account_id}:vpc-flow-log/*"]
    }
  }
}

data "aws_iam_policy_document" "flow_logs" {
  count = local.create_vpc ? 1 : 0

  statement {
    sid = "WriteFlowLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
  }

  statement {
    sid       = "FindLogGroup"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:*"]
  }
}

resource "aws_iam_role" "flow_logs" {
  count = local.create_vpc ? 1 : 0

  name               = local.flow_logs_role_name
  description        = "VPC flow logs of ${local.name} to CloudWatch Logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume[0].json

  tags = local.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  count = local.create_vpc ? 1 : 0

  name   = "flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count = local.create_vpc ? 1 : 0

  vpc_id               = aws_vpc.this[0].id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn

  tags = merge(local.tags, { Name = local.name })

  depends_on = [aws_iam_role_policy.flow_logs]
}

# ---- the tasks' security group ------------------------------------------------------------------

resource "aws_security_group" "tasks" {
  name_prefix = "${local.name}-tasks-"
  description = "cdc-deploy consumers of ${local.name}: egress only"
  vpc_id      = local.vpc_id

  tags = merge(local.tags, { Name = "${local.name}-tasks" })

  lifecycle {
    # A new VPC needs a new group: create it before the old one goes, so the services can move.
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "tasks_all" {
  security_group_id = aws_security_group.tasks.id
  description       = "Consumers connect out: Kafka, databases, AWS APIs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"

  tags = local.tags
}
