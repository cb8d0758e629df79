# Per consumer, keyed by consumer name (every address ends in ["<consumer>"], which is how
# cdc-deploy attributes a plan's changes to consumers): its log group, task definition and
# service. Its roles are in iam.tf, its task count and scaling policies in autoscaling.tf.

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (30 days by default); a year of consumer logs is the team's choice, not the module's.
  for_each = var.consumers

  name              = local.consumers[each.key].log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  # A removed consumer's logs outlive it (until their retention ends): Terraform forgets the
  # group instead of deleting it, and a consumer added again under the same name adopts it (the
  # root cdc-deploy generates imports it; see README.md for a root module of your own).
  # https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/cloudwatch_log_group#skip_destroy
  skip_destroy = true

  tags = merge(local.tags, { consumer = each.key })
}

resource "aws_ecs_task_definition" "this" {
  #checkov:skip=CKV_AWS_336:Consumers write heartbeat and offset files to their root filesystem, so it cannot be read-only.
  for_each = var.consumers

  family                   = local.consumers[each.key].family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(each.value.cpu)
  memory                   = tostring(each.value.memory)
  execution_role_arn       = aws_iam_role.execution[each.key].arn
  task_role_arn            = aws_iam_role.task[each.key].arn
  container_definitions    = local.consumers[each.key].container_definitions

  # A new revision replaces this one in the state, but the old revision stays registered (not
  # deregistered), so that a service, a rollback or an operator can go back to it.
  skip_destroy = true

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = local.consumers[each.key].cpu_architecture
  }

  tags = merge(local.tags, { consumer = each.key })
}

resource "aws_ecs_service" "this" {
  for_each = var.consumers

  name            = each.key
  cluster         = aws_ecs_cluster.this.arn
  task_definition = aws_ecs_task_definition.this[each.key].arn
  # Only at creation: Application Auto Scaling owns the count afterwards (autoscaling.tf).
  desired_count       = local.consumers[each.key].initial_count
  scheduling_strategy = "REPLICA"
  platform_version    = "LATEST"

  capacity_provider_strategy {
    capacity_provider = local.consumers[each.key].capacity_provider
    weight            = 1
    base              = 0
  }
  # No forced deployment unless asked: with force_new_deployment every update of a service (tags,
  # rollout percentages, AZ rebalancing) starts a new deployment, so a module upgrade would
  # restart every consumer of the fleet, each stop a Kafka rebalance. ECS starts one by itself
  # only for what needs new tasks: a new task definition revision, the network configuration, the
  # platform version. The provider refuses a change of capacity_provider without it ("force_new_deployment
  # should be true when capacity_provider_strategy is being updated"): set the input for that
  # apply; cdc-deploy's plan then says which consumers restart, and it watches them.
  # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html
  # https://github.com/hashicorp/terraform-provider-aws/pull/43533 (capacityProviderStrategyCustomizeDiff)
  force_new_deployment = var.force_new_deployment

  # ECS turns AZ rebalancing on for new services and then stops healthy tasks to even out the
  # AZs; each stop is a consumer-group rebalance (or a gap for a single writer). Off unless asked.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-rebalancing.html
  availability_zone_rebalancing = var.availability_zone_rebalancing ? "ENABLED" : "DISABLED"

  deployment_controller {
    type = "ECS"
  }

  # A rollout whose tasks keep failing stops and goes back to the last revision that ran. It
  # trips after max(3, min(200, half the desired count)) tasks failed to start: a one-task
  # consumer gets three tries.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # `[alarms] rollback`: ECS watches the consumer's running-below-desired alarm during a
  # deployment and for a bake time after it (computed by ECS from the alarm's periods), and rolls
  # back to the last completed deployment when it fires. A consumer whose new tasks start, pass
  # and then die minutes later (a poison record, a slot it cannot take) is put back this way.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
  # Always written, off where not asked for: the provider sends nothing when the block is gone,
  # and ECS would keep watching (and rolling back on) an alarm a consumer no longer asks for.
  alarms {
    alarm_names = contains(keys(local.alarm_rollback), each.key) ? [aws_cloudwatch_metric_alarm.running_below_desired[each.key].alarm_name] : []
    enable      = contains(keys(local.alarm_rollback), each.key)
    rollback    = contains(keys(local.alarm_rollback), each.key)
  }

  # Per consumer: a single writer (0 and 100) stops its old task before the new one starts.
  deployment_minimum_healthy_percent = local.consumers[each.key].deployment_minimum_healthy_percent
  deployment_maximum_percent         = local.consumers[each.key].deployment_maximum_percent

  network_configuration {
    subnets          = local.task_subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.security_group_ids)
    assign_public_ip = local.assign_public_ip
  }

  enable_execute_command  = local.consumers[each.key].execute_command
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  # cdc-deploy watches the rollout itself, after the apply.
  wait_for_steady_state = false

  tags = merge(local.tags, { consumer = each.key })

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [
    aws_ecs_cluster_capacity_providers.this,
    # The roles can do their work before the first task starts, and still can while the last
    # one stops.
    aws_iam_role_policy.execution,
    aws_iam_role_policy.task,
    # In "private" mode the tasks reach ECR and CloudWatch through the NAT gateways.
    aws_route.private_nat,
    aws_route.public_internet,
    aws_route_table_association.private,
    aws_route_table_association.public,
    aws_vpc_security_group_egress_rule.tasks_all,
  ]
}
