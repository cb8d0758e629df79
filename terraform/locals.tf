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

  # Entries written before `msk` existed, whose autoscaling.kafka_lag named the cluster and group:
  # the one topic its lag is measured on, read as that group.
  msk_before_msk = {
    for name, c in var.consumers : name => {
      cluster        = c.autoscaling.kafka_lag.msk_cluster
      consumer_group = c.autoscaling.kafka_lag.consumer_group
      read_topics    = compact([c.autoscaling.kafka_lag.topic])
      write_topics   = tolist([])
    } if try(c.autoscaling.kafka_lag.msk_cluster, null) != null
  }

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
      # A count set by hand (`scale`) wins over the entry's while it is there.
      min_capacity  = try(c.scale.min, null) != null ? c.scale.min : (try(c.scale.desired_count, null) != null ? c.scale.desired_count : (c.autoscaling == null ? c.desired_count : c.autoscaling.min))
      max_capacity  = try(c.scale.max, null) != null ? c.scale.max : (try(c.scale.desired_count, null) != null ? c.scale.desired_count : (c.autoscaling == null ? c.desired_count : c.autoscaling.max))
      initial_count = try(c.scale.desired_count, null) != null ? c.scale.desired_count : (c.autoscaling == null ? c.desired_count : max((try(c.scale.min, null) != null ? c.scale.min : c.autoscaling.min), min((try(c.scale.max, null) != null ? c.scale.max : c.autoscaling.max), c.desired_count)))
      cpu_target    = try(c.autoscaling.cpu_target, null)
      memory_target = try(c.autoscaling.memory_target, null)

      # ECS Exec into its tasks: every consumer's (enable_execute_command) or its own.
      execute_command = var.enable_execute_command || c.execute_command == true

      # Rollout limits: the consumer's own (a single writer's 0 and 100), else the module's.
      deployment_minimum_healthy_percent = c.deployment_minimum_healthy_percent != null ? c.deployment_minimum_healthy_percent : var.deployment_minimum_healthy_percent
      deployment_maximum_percent         = c.deployment_maximum_percent != null ? c.deployment_maximum_percent : var.deployment_maximum_percent

      # MSK IAM access of the task role: `msk`, or for an entry written before `msk` existed, what
      # its autoscaling.kafka_lag names.
      msk = c.msk == null ? lookup(local.msk_before_msk, name, null) : {
        cluster        = c.msk.cluster
        consumer_group = c.msk.consumer_group
        read_topics    = sort(distinct(c.msk.read_topics))
        write_topics   = sort(distinct(c.msk.write_topics))
      }

      # Whether the consumer's lag is watched (its alarm): a group that reads at least one topic.
      # A consumer that only writes to Kafka has no lag.
      # (An entry written before `msk` existed names its group and topic in kafka_lag.)
      lag_watched = (c.msk != null ? c.msk.consumer_group : try(local.msk_before_msk[name].consumer_group, null)) != null && length((c.msk != null ? c.msk.read_topics : try(local.msk_before_msk[name].read_topics, []))) > 0
      # The topics its lag is drawn for: those named, not by a wildcard.
      lag_topics = (c.msk != null ? c.msk.consumer_group : try(local.msk_before_msk[name].consumer_group, null)) == null ? [] : sort([for t in distinct((c.msk != null ? c.msk.read_topics : try(local.msk_before_msk[name].read_topics, []))) : t if !strcontains(t, "*")])

      # Lag scaling: the group's SumOffsetLag on one topic, each part from kafka_lag or msk.
      kafka_lag = try(c.autoscaling.kafka_lag, null) == null ? null : {
        target_lag     = c.autoscaling.kafka_lag.target_lag
        msk_cluster    = coalesce(c.autoscaling.kafka_lag.msk_cluster, try(c.msk.cluster, null))
        consumer_group = coalesce(c.autoscaling.kafka_lag.consumer_group, try(c.msk.consumer_group, null))
        topic          = coalesce(c.autoscaling.kafka_lag.topic, try(c.msk.read_topics[0], null))
      }

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
          # startPeriod only when positive: 0 means "no start period" and ECS omits it from the
          # registered definition, so sending it would show as a change on every plan.
          # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html
          healthCheck = c.health_check == null ? null : {
            for k, v in {
              command     = c.health_check.command
              interval    = c.health_check.interval
              timeout     = c.health_check.timeout
              retries     = c.health_check.retries
              startPeriod = c.health_check.start_period > 0 ? c.health_check.start_period : null
            } : k => v if v != null
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
