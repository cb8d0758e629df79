# Names and per-consumer settings worked out from the variables alone (no resource, no data
# source), so that they can be checked without a provider.

locals {
  # The cluster, and the prefix of every name that is not per consumer.
  name = "${var.project_name}-${var.environment}"

  tags = merge({
    "project"     = var.project_name
    "environment" = var.environment
    "managed-by"  = "cdc-deploy"
  }, var.tags)

  create_vpc       = var.network_mode != "existing"
  private_subnets  = var.network_mode == "private"
  assign_public_ip = var.network_mode == "public"

  # IAM role names stop at 64 characters. A name that would be longer is cut and ends with 8 hex
  # digits of the SHA-1 of the whole name, so it stays unique per project, environment and
  # consumer; a consumer's role then keeps "<project>-<consumer>" (the environment is in the hash
  # and in the role's tags).
  flow_logs_role_name = length("${local.name}-vpc-flow-logs") <= 64 ? "${local.name}-vpc-flow-logs" : "${substr(local.name, 0, 41)}-${substr(sha1(local.name), 0, 8)}-vpc-flow-logs"

  consumers = {
    for name, c in var.consumers : name => {
      # The ECR repository cdc-deploy pushes the consumer's images to (it is not managed here).
      repository = startswith(name, "${var.project_name}-") ? name : "${var.project_name}-${name}"
      family     = "${local.name}-${name}"
      log_group  = "/ecs/${var.project_name}/${var.environment}/${name}"

      execution_role = length("${local.name}-${name}") <= 59 ? "${local.name}-${name}-exec" : "${substr(startswith(name, "${var.project_name}-") ? name : "${var.project_name}-${name}", 0, 50)}-${substr(sha1("${local.name}-${name}"), 0, 8)}-exec"
      task_role      = length("${local.name}-${name}") <= 59 ? "${local.name}-${name}-task" : "${substr(startswith(name, "${var.project_name}-") ? name : "${var.project_name}-${name}", 0, 50)}-${substr(sha1("${local.name}-${name}"), 0, 8)}-task"

      cpu_architecture = c.platform == "linux/arm64" ? "ARM64" : "X86_64"
      # Fargate Spot runs X86_64 tasks only.
      capacity_provider = c.platform == "linux/arm64" ? "FARGATE" : var.capacity_provider

      # Application Auto Scaling owns the task count: within autoscaling's min and max, or fixed
      # at desired_count without autoscaling.
      min_capacity  = c.autoscaling == null ? c.desired_count : c.autoscaling.min
      max_capacity  = c.autoscaling == null ? c.desired_count : c.autoscaling.max
      initial_count = c.autoscaling == null ? c.desired_count : max(c.autoscaling.min, min(c.autoscaling.max, c.desired_count))
      cpu_target    = try(c.autoscaling.cpu_target, null)
      memory_target = try(c.autoscaling.memory_target, null)
      kafka_lag     = try(c.autoscaling.kafka_lag, null)

      # What the execution role may read to inject the secrets.
      ssm_parameter_arns = sort(distinct([for arn in values(c.secrets) : arn if can(regex("^arn:[^:]+:ssm:", arn))]))
      # A Secrets Manager valueFrom may name a JSON key, stage or version after the secret's ARN
      # (7 fields); the ARN may also be written without its 6-character random suffix.
      secretsmanager_arns = sort(distinct(flatten([
        for arn in values(c.secrets) : [
          join(":", slice(split(":", arn), 0, 7)),
          "${join(":", slice(split(":", arn), 0, 7))}-??????",
        ] if can(regex("^arn:[^:]+:secretsmanager:", arn))
      ])))

      container_definitions = jsonencode([{
        for key, value in {
          name      = name
          image     = c.image
          essential = true
          # Seconds between SIGTERM and SIGKILL: time to commit offsets and flush.
          stopTimeout = c.stop_timeout
          environment = [
            for key, value in merge({ CONSUMER_NAME = name }, c.environment) : { name = key, value = value }
          ]
          secrets = [for key in sort(keys(c.secrets)) : { name = key, valueFrom = c.secrets[key] }]
          healthCheck = c.health_check == null ? null : {
            command     = c.health_check.command
            interval    = c.health_check.interval
            timeout     = c.health_check.timeout
            retries     = c.health_check.retries
            startPeriod = c.health_check.start_period
          }
          # An init process as PID 1 forwards SIGTERM to the consumer and reaps zombies (and
          # is what ECS Exec wants).
          linuxParameters = { initProcessEnabled = true }
          # Consumers write heartbeat and state files.
          readonlyRootFilesystem = false
          logConfiguration = {
            logDriver = "awslogs"
            options = {
              "awslogs-group"         = "/ecs/${var.project_name}/${var.environment}/${name}"
              "awslogs-region"        = var.aws_region
              "awslogs-stream-prefix" = "ecs"
              # A slow CloudWatch never blocks the consumer; a full 25 MiB buffer drops lines.
              "mode"            = "non-blocking"
              "max-buffer-size" = "25m"
            }
          }
        } : key => value if value != null && value != []
      }])
    }
  }
}
