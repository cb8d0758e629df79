# Inputs of the module. `project_name`, `environment`, `aws_region` and `consumers` are what
# cdc-deploy writes to `cdc-deploy.auto.tfvars.json`; the others tune the network and the
# cluster and have defaults.
#
# This file holds only `variable` blocks whose validations refer to nothing but variables: the
# action copies it as it is into the root module it generates around this module.

# ---- what the action writes -------------------------------------------------------------------

variable "project_name" {
  description = "Prefix of every resource name: lowercase letters, digits and single hyphens, starting with a letter, at most 24 characters."
  type        = string

  validation {
    condition     = length(var.project_name) <= 24 && can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", var.project_name))
    error_message = "project_name \"${var.project_name}\" is not valid: use at most 24 lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen (for example \"cdc\")."
  }
}

variable "environment" {
  description = "Deployment environment (production, staging, dev): part of the cluster, task definition and log group names."
  type        = string

  validation {
    condition     = length(var.environment) <= 32 && can(regex("^[a-z][a-z0-9-]*$", var.environment))
    error_message = "environment \"${var.environment}\" is not valid: use up to 32 lowercase letters, digits and hyphens, starting with a letter (for example \"production\")."
  }
}

variable "aws_region" {
  description = "AWS region everything is deployed to; it must be the region the root module's aws provider uses."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.aws_region))
    error_message = "aws_region \"${var.aws_region}\" is not an AWS region name such as \"us-east-1\"."
  }
}

variable "consumers" {
  description = "The consumers to run, keyed by consumer name (the folder name). See README.md for every field."
  type = map(object({
    # The image, pinned by digest: <registry>/<repository>@sha256:<64 hex digits>.
    image = string
    # Fargate task size: CPU units (256 = 0.25 vCPU) and memory in MiB, a combination Fargate accepts.
    cpu    = number
    memory = number
    # Task count at creation, and the count enforced when `autoscaling` is null.
    desired_count = number
    platform      = optional(string, "linux/amd64")
    # Seconds between SIGTERM and SIGKILL when a task stops (Fargate allows 2 to 120).
    stop_timeout = optional(number, 30)
    environment  = optional(map(string), {})
    # Environment variable name => ARN of an SSM parameter or a Secrets Manager secret.
    secrets = optional(map(string), {})
    health_check = optional(object({
      command      = list(string)
      interval     = optional(number, 30)
      timeout      = optional(number, 5)
      retries      = optional(number, 3)
      start_period = optional(number, 0)
    }))
    # Rollouts of this consumer's service, over the module-wide deployment_* inputs: a consumer
    # that owns its source (a replication slot, a single-writer lock) needs 0 and 100, so that
    # its old task stops before the new one starts. cdc-deploy writes them for `single_writer`.
    deployment_minimum_healthy_percent = optional(number)
    deployment_maximum_percent         = optional(number)
    # MSK IAM access of the task role: the cluster (its name), the consumer group it commits
    # offsets as, the topics it reads and those it writes. Independent of autoscaling.
    msk = optional(object({
      cluster        = string
      consumer_group = optional(string)
      read_topics    = optional(list(string), [])
      write_topics   = optional(list(string), [])
    }))
    autoscaling = optional(object({
      min           = number
      max           = number
      cpu_target    = optional(number)
      memory_target = optional(number)
      # Lag of the consumer group on one topic, from `msk` where these are null: msk_cluster is
      # msk.cluster, consumer_group msk.consumer_group, topic the only one of msk.read_topics.
      kafka_lag = optional(object({
        target_lag     = number
        topic          = optional(string)
        msk_cluster    = optional(string)
        consumer_group = optional(string)
      }))
    }))
    # `[alarms]`: this consumer's thresholds over alarm_thresholds (null keeps the module's), the
    # kinds it switches off (running_below_desired, tasks_stopping, lag, cpu, memory), and
    # rollback: ECS rolls back a deployment during which its running-below-desired alarm fires.
    alarms = optional(object({
      running_below_desired_minutes = optional(number)
      tasks_stopped                 = optional(number)
      lag_messages                  = optional(number)
      lag_minutes                   = optional(number)
      cpu_percent                   = optional(number)
      memory_percent                = optional(number)
      off                           = optional(list(string))
      rollback                      = optional(bool)
    }))
    # ECS Exec into this consumer's tasks, besides every consumer's with enable_execute_command.
    execute_command = optional(bool)
    # Written by `cdc-deploy scale`: a task count set by hand (desired_count, or min and max for
    # an autoscaled consumer) over the entry's own, kept by cdc-deploy while the consumer.toml
    # count is still `file` (the count it was set over), and when (`at`).
    scale = optional(object({
      desired_count = optional(number)
      min           = optional(number)
      max           = optional(number)
      file          = string
      at            = string
    }))
    # Written by cdc-deploy, used by no resource: while set, the consumer is held on the image it
    # runs because the rollout of `image` ended `verdict` (failed, rolled back, rolled back by
    # hand) at `at`. It comes back in the `consumers` output's `config`, which is how later runs
    # know to leave the consumer alone until its folder changes.
    hold = optional(object({
      image       = string
      fingerprint = optional(string)
      settings    = string
      verdict     = string
      at          = string
    }))
  }))

  validation {
    condition = alltrue([
      for name in keys(var.consumers) : can(regex("^[a-z][a-z0-9]*([-_][a-z0-9]+)*$", name))
    ])
    error_message = "Consumer names must be lowercase letters and digits with single \"-\" or \"_\" between them, starting with a letter; not valid: ${join(", ", [for name in keys(var.consumers) : "\"${name}\"" if !can(regex("^[a-z][a-z0-9]*([-_][a-z0-9]+)*$", name))])}."
  }

  validation {
    condition = alltrue([
      for name in keys(var.consumers) : length(startswith(name, "${var.project_name}-") ? name : "${var.project_name}-${name}") <= 52
    ])
    error_message = "\"<project_name>-<consumer>\" (the ECR repository and IAM role base name) must be at most 52 characters; too long: ${join(", ", [for name in keys(var.consumers) : "\"${name}\"" if length(startswith(name, "${var.project_name}-") ? name : "${var.project_name}-${name}") > 52])}."
  }

  validation {
    condition = alltrue([
      for c in values(var.consumers) : can(regex("^[^@\\s]+@sha256:[0-9a-f]{64}$", c.image)) || can(regex("^[^@\\s]+:ctx-[0-9a-f]{64}$", c.image))
    ])
    error_message = "Every consumer's image must be pinned by digest, \"<registry>/<repository>@sha256:<64 hex digits>\" (only a plan may name an image not built yet by its immutable cdc-deploy content tag \":ctx-<64 hex digits>\"); not pinned: ${join(", ", [for name, c in var.consumers : "${name} (\"${c.image}\")" if !(can(regex("^[^@\\s]+@sha256:[0-9a-f]{64}$", c.image)) || can(regex("^[^@\\s]+:ctx-[0-9a-f]{64}$", c.image)))])}."
  }

  validation {
    condition = alltrue([
      for c in values(var.consumers) : contains(lookup({
        "256"   = [512, 1024, 2048]
        "512"   = range(1024, 4097, 1024)
        "1024"  = range(2048, 8193, 1024)
        "2048"  = range(4096, 16385, 1024)
        "4096"  = range(8192, 30721, 1024)
        "8192"  = range(16384, 61441, 4096)
        "16384" = range(32768, 122881, 8192)
      }, tostring(c.cpu), []), c.memory)
    ])
    error_message = "Every consumer's cpu/memory must be a Fargate task size: cpu 256 (memory 512, 1024, 2048), 512 (1024-4096 by 1024), 1024 (2048-8192 by 1024), 2048 (4096-16384 by 1024), 4096 (8192-30720 by 1024), 8192 (16384-61440 by 4096) or 16384 (32768-122880 by 8192); not valid: ${join(", ", [for name, c in var.consumers : "${name} (cpu ${c.cpu}, memory ${c.memory})" if !contains(lookup({ "256" = [512, 1024, 2048], "512" = range(1024, 4097, 1024), "1024" = range(2048, 8193, 1024), "2048" = range(4096, 16385, 1024), "4096" = range(8192, 30721, 1024), "8192" = range(16384, 61441, 4096), "16384" = range(32768, 122881, 8192) }, tostring(c.cpu), []), c.memory)])}."
  }

  validation {
    condition     = length([for name, c in var.consumers : name if !(c.desired_count >= 0 && floor(c.desired_count) == c.desired_count)]) == 0
    error_message = "Every consumer's desired_count must be a whole number of tasks, 0 or more; not valid: ${join(", ", [for name, c in var.consumers : name if !(c.desired_count >= 0 && floor(c.desired_count) == c.desired_count)])}."
  }

  validation {
    condition     = length([for name, c in var.consumers : name if !contains(["linux/amd64", "linux/arm64"], c.platform)]) == 0
    error_message = "Every consumer's platform must be \"linux/amd64\" or \"linux/arm64\"; not valid: ${join(", ", [for name, c in var.consumers : "${name} (\"${c.platform}\")" if !contains(["linux/amd64", "linux/arm64"], c.platform)])}."
  }

  validation {
    condition     = length([for name, c in var.consumers : name if !(c.stop_timeout >= 2 && c.stop_timeout <= 120 && floor(c.stop_timeout) == c.stop_timeout)]) == 0
    error_message = "Every consumer's stop_timeout must be whole seconds from 2 to 120 (the most Fargate waits between SIGTERM and SIGKILL); not valid: ${join(", ", [for name, c in var.consumers : "${name} (${c.stop_timeout})" if !(c.stop_timeout >= 2 && c.stop_timeout <= 120 && floor(c.stop_timeout) == c.stop_timeout)])}."
  }

  validation {
    condition = length(flatten([
      for name, c in var.consumers : [
        for key, arn in c.secrets : "${name}.${key}" if !can(regex("^arn:aws(-[a-z]+)*:(ssm:[a-z0-9-]+:[0-9]{12}:parameter/[^\\s]+|secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[^\\s]+)$", arn))
      ]
    ])) == 0
    error_message = "Every secret must be the ARN of an SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-abcdef), never the secret's value; not an ARN: ${join(", ", flatten([for name, c in var.consumers : [for key, arn in c.secrets : "${name} secret ${key}" if !can(regex("^arn:aws(-[a-z]+)*:(ssm:[a-z0-9-]+:[0-9]{12}:parameter/[^\\s]+|secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[^\\s]+)$", arn))]]))}."
  }

  validation {
    condition     = length([for name, c in var.consumers : name if length(setintersection(keys(c.environment), keys(c.secrets))) > 0]) == 0
    error_message = "A consumer's variable is set both in environment and in secrets: ${join(", ", [for name, c in var.consumers : "${name} (${join(", ", sort(setintersection(keys(c.environment), keys(c.secrets))))})" if length(setintersection(keys(c.environment), keys(c.secrets))) > 0])}; keep each name in one of them."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if c.health_check == null ? false : !(
        length(c.health_check.command) >= 2
        && contains(["CMD", "CMD-SHELL"], c.health_check.command[0])
        && c.health_check.interval >= 5 && c.health_check.interval <= 300
        && c.health_check.timeout >= 2 && c.health_check.timeout <= 60
        && c.health_check.retries >= 1 && c.health_check.retries <= 10
        && c.health_check.start_period >= 0 && c.health_check.start_period <= 300
      )
    ]) == 0
    error_message = "A health_check must have a command [\"CMD\", \"executable\", ...] or [\"CMD-SHELL\", \"shell command\"], interval 5-300 s, timeout 2-60 s, retries 1-10 and start_period 0-300 s; not valid: ${join(", ", [for name, c in var.consumers : name if c.health_check == null ? false : !(length(c.health_check.command) >= 2 && contains(["CMD", "CMD-SHELL"], c.health_check.command[0]) && c.health_check.interval >= 5 && c.health_check.interval <= 300 && c.health_check.timeout >= 2 && c.health_check.timeout <= 60 && c.health_check.retries >= 1 && c.health_check.retries <= 10 && c.health_check.start_period >= 0 && c.health_check.start_period <= 300)])}."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if c.alarms == null ? false : !(
        alltrue([for k in coalesce(c.alarms.off, []) : contains(["running_below_desired", "tasks_stopping", "lag", "cpu", "memory"], k)])
        && alltrue([for m in [c.alarms.running_below_desired_minutes, c.alarms.lag_minutes] : (m == null ? true : (m >= 1 && m <= 1440 && floor(m) == m))])
        && alltrue([for n in [c.alarms.tasks_stopped, c.alarms.lag_messages] : (n == null ? true : n >= 1)])
        && alltrue([for p in [c.alarms.cpu_percent, c.alarms.memory_percent] : (p == null ? true : (p >= 1 && p <= 100))])
        && !(c.alarms.rollback == true && (coalesce(c.deployment_minimum_healthy_percent, var.deployment_minimum_healthy_percent) == 0 || contains(coalesce(c.alarms.off, []), "running_below_desired")))
      )
    ]) == 0
    error_message = "A consumer's alarms must switch off only running_below_desired, tasks_stopping, lag, cpu or memory, give minutes from 1 to 1440, tasks_stopped and lag_messages of 1 or more, percents from 1 to 100, and roll back only a consumer with the running-below-desired alarm whose old tasks run until the new ones start (not deployment_minimum_healthy_percent 0: it runs below desired in every rollout); not valid: ${join(", ", [for name, c in var.consumers : name if c.alarms == null ? false : !(alltrue([for k in coalesce(c.alarms.off, []) : contains(["running_below_desired", "tasks_stopping", "lag", "cpu", "memory"], k)]) && alltrue([for m in [c.alarms.running_below_desired_minutes, c.alarms.lag_minutes] : (m == null ? true : (m >= 1 && m <= 1440 && floor(m) == m))]) && alltrue([for n in [c.alarms.tasks_stopped, c.alarms.lag_messages] : (n == null ? true : n >= 1)]) && alltrue([for p in [c.alarms.cpu_percent, c.alarms.memory_percent] : (p == null ? true : (p >= 1 && p <= 100))]) && !(c.alarms.rollback == true && (coalesce(c.deployment_minimum_healthy_percent, var.deployment_minimum_healthy_percent) == 0 || contains(coalesce(c.alarms.off, []), "running_below_desired"))))])}."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if c.autoscaling == null ? false : !(
        c.autoscaling.min >= 0 && c.autoscaling.max >= 1 && c.autoscaling.min <= c.autoscaling.max
        && floor(c.autoscaling.min) == c.autoscaling.min && floor(c.autoscaling.max) == c.autoscaling.max
      )
    ]) == 0
    error_message = "autoscaling min and max must be whole task counts with 0 <= min <= max and max >= 1; not valid: ${join(", ", [for name, c in var.consumers : "${name} (min ${c.autoscaling.min}, max ${c.autoscaling.max})" if c.autoscaling == null ? false : !(c.autoscaling.min >= 0 && c.autoscaling.max >= 1 && c.autoscaling.min <= c.autoscaling.max && floor(c.autoscaling.min) == c.autoscaling.min && floor(c.autoscaling.max) == c.autoscaling.max)])}."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if c.autoscaling == null ? false : anytrue([
        for t in [c.autoscaling.cpu_target, c.autoscaling.memory_target] : (t == null ? false : !(t >= 1 && t <= 100))
      ])
    ]) == 0
    error_message = "autoscaling cpu_target and memory_target are percentages from 1 to 100, or null; not valid: ${join(", ", [for name, c in var.consumers : name if c.autoscaling == null ? false : anytrue([for t in [c.autoscaling.cpu_target, c.autoscaling.memory_target] : (t == null ? false : !(t >= 1 && t <= 100))])])}."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if c.msk == null ? false : !(
        can(regex("^[0-9A-Za-z][0-9A-Za-z-]{0,63}$", c.msk.cluster))
        && alltrue([for t in concat(c.msk.read_topics, c.msk.write_topics) : can(regex("^[A-Za-z0-9._*-]{1,249}$", t))])
        && length(c.msk.read_topics) + length(c.msk.write_topics) > 0
        && (length(c.msk.read_topics) == 0 || try(length(c.msk.consumer_group) > 0, false))
      )
    ]) == 0
    error_message = "msk needs cluster (the MSK cluster's name: letters, digits and hyphens), at least one of read_topics and write_topics (topic names: letters, digits, \".\", \"_\", \"-\", \"*\" as a wildcard), and a consumer_group when it reads; not valid: ${join(", ", [for name, c in var.consumers : name if c.msk == null ? false : !(can(regex("^[0-9A-Za-z][0-9A-Za-z-]{0,63}$", c.msk.cluster)) && alltrue([for t in concat(c.msk.read_topics, c.msk.write_topics) : can(regex("^[A-Za-z0-9._*-]{1,249}$", t))]) && length(c.msk.read_topics) + length(c.msk.write_topics) > 0 && (length(c.msk.read_topics) == 0 || try(length(c.msk.consumer_group) > 0, false)))])}."
  }

  # MSK publishes no consumer-lag metrics (SumOffsetLag, MaxOffsetLag, EstimatedMaxTimeLag) for a
  # consumer group whose name has a colon or characters outside printable ASCII, so lag scaling
  # on such a group could never fire; IAM group ARNs take the same names.
  # https://docs.aws.amazon.com/msk/latest/developerguide/consumer-lag.html
  validation {
    condition = length([
      for name, c in var.consumers : name if !alltrue([
        for g in compact([try(c.msk.consumer_group, null), try(c.autoscaling.kafka_lag.consumer_group, null)]) : can(regex("^[ -9;-~]{1,255}$", g)) && trimspace(g) == g
      ])
    ]) == 0
    error_message = "A consumer_group must be 1 to 255 printable ASCII characters without \":\" and without leading or trailing spaces: MSK publishes no lag metrics for other group names; not valid: ${join(", ", [for name, c in var.consumers : name if !alltrue([for g in compact([try(c.msk.consumer_group, null), try(c.autoscaling.kafka_lag.consumer_group, null)]) : can(regex("^[ -9;-~]{1,255}$", g)) && trimspace(g) == g])])}."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if try(c.autoscaling.kafka_lag, null) == null ? false : !(
        c.autoscaling.kafka_lag.target_lag >= 1
        && can(regex("^[0-9A-Za-z][0-9A-Za-z-]{0,63}$", coalesce(c.autoscaling.kafka_lag.msk_cluster, try(c.msk.cluster, null), "-")))
        && try(coalesce(c.autoscaling.kafka_lag.consumer_group, try(c.msk.consumer_group, null)), "") != ""
        && can(regex("^[A-Za-z0-9._-]{1,249}$", coalesce(c.autoscaling.kafka_lag.topic, try((length(c.msk.read_topics) == 1 ? c.msk.read_topics[0] : null), null), "-")))
      )
    ]) == 0
    error_message = "autoscaling.kafka_lag needs target_lag (messages of lag per running task) of at least 1, and an MSK cluster, a consumer_group and one topic (no wildcard), each given in kafka_lag or taken from msk (the topic when msk reads exactly one); not valid: ${join(", ", [for name, c in var.consumers : name if try(c.autoscaling.kafka_lag, null) == null ? false : !(c.autoscaling.kafka_lag.target_lag >= 1 && can(regex("^[0-9A-Za-z][0-9A-Za-z-]{0,63}$", coalesce(c.autoscaling.kafka_lag.msk_cluster, try(c.msk.cluster, null), "-"))) && try(coalesce(c.autoscaling.kafka_lag.consumer_group, try(c.msk.consumer_group, null)), "") != "" && can(regex("^[A-Za-z0-9._-]{1,249}$", coalesce(c.autoscaling.kafka_lag.topic, try((length(c.msk.read_topics) == 1 ? c.msk.read_topics[0] : null), null), "-"))))])}."
  }

  # Lag per running task divides by Container Insights' RunningTaskCount, which has no datapoint
  # while no task runs: a service at 0 tasks would never scale out again on lag.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/Container-Insights-metrics-ECS.html
  validation {
    condition     = length([for name, c in var.consumers : name if try(c.autoscaling.kafka_lag, null) != null && try(c.autoscaling.min, 1) < 1]) == 0
    error_message = "autoscaling.min must be at least 1 with kafka_lag: lag per running task has no value at 0 tasks, so a consumer scaled to 0 would never scale out again; not valid: ${join(", ", [for name, c in var.consumers : name if try(c.autoscaling.kafka_lag, null) != null && try(c.autoscaling.min, 1) < 1])}."
  }

  validation {
    condition = length([
      for name, c in var.consumers : name if !(
        (c.deployment_minimum_healthy_percent == null || try(c.deployment_minimum_healthy_percent >= 0 && c.deployment_minimum_healthy_percent <= 100, false))
        && (c.deployment_maximum_percent == null || try(c.deployment_maximum_percent >= 100 && c.deployment_maximum_percent <= 200, false))
        && try((c.deployment_maximum_percent == null ? var.deployment_maximum_percent : c.deployment_maximum_percent) > (c.deployment_minimum_healthy_percent == null ? var.deployment_minimum_healthy_percent : c.deployment_minimum_healthy_percent), false)
      )
    ]) == 0
    error_message = "A consumer's deployment_minimum_healthy_percent must be 0 to 100 and its deployment_maximum_percent 100 to 200, the maximum above the minimum (each the module's deployment_* input where the consumer sets none), or a rollout can neither start a new task nor stop an old one; not valid: ${join(", ", [for name, c in var.consumers : name if !((c.deployment_minimum_healthy_percent == null || try(c.deployment_minimum_healthy_percent >= 0 && c.deployment_minimum_healthy_percent <= 100, false)) && (c.deployment_maximum_percent == null || try(c.deployment_maximum_percent >= 100 && c.deployment_maximum_percent <= 200, false)) && try((c.deployment_maximum_percent == null ? var.deployment_maximum_percent : c.deployment_maximum_percent) > (c.deployment_minimum_healthy_percent == null ? var.deployment_minimum_healthy_percent : c.deployment_minimum_healthy_percent), false))])}."
  }

}

variable "deploy_inputs_digest" {
  description = "Written by cdc-deploy, used by no resource: a digest of the root module, its variable files and the variables besides consumers it was applied with, given back as an output so that a run whose entries and inputs equal the applied ones skips its plan."
  type        = string
  default     = null
}

# ---- network ----------------------------------------------------------------------------------

variable "network_mode" {
  description = "\"public\": a new VPC, tasks in public subnets with a public IP; \"private\": a new VPC, tasks in private subnets behind one NAT gateway per AZ; \"existing\": tasks in vpc_id/subnet_ids."
  type        = string
  default     = "public"

  validation {
    condition     = contains(["existing", "public", "private"], var.network_mode)
    error_message = "network_mode must be \"public\", \"private\" or \"existing\"."
  }
}

variable "vpc_id" {
  description = "With network_mode \"existing\": the VPC the tasks run in (their security group is created there)."
  type        = string
  default     = null

  validation {
    condition     = var.network_mode != "existing" || var.vpc_id != null
    error_message = "network_mode \"existing\" needs vpc_id: the VPC the tasks run in."
  }

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id such as \"vpc-0123456789abcdef0\"."
  }
}

variable "subnet_ids" {
  description = "With network_mode \"existing\": the subnets the tasks run in (private subnets with a NAT gateway or VPC endpoints: tasks get no public IP)."
  type        = list(string)
  default     = []

  validation {
    condition     = var.network_mode != "existing" || length(var.subnet_ids) > 0
    error_message = "network_mode \"existing\" needs subnet_ids: the subnets the tasks run in (two or more, in different AZs, recommended)."
  }

  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must be subnet ids such as \"subnet-0123456789abcdef0\"."
  }
}

variable "vpc_cidr" {
  description = "With network_mode \"public\" or \"private\": the new VPC's IPv4 range, /16 to /24 (it is cut into four equal subnets)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(try(split("/", var.vpc_cidr)[1], "0")) >= 16 && tonumber(try(split("/", var.vpc_cidr)[1], "0")) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block from /16 to /24, such as \"10.0.0.0/16\"."
  }
}

variable "security_group_ids" {
  description = "Further security groups for every task, besides the module's egress-only one (for example one a database or MSK cluster allows)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "security_group_ids must be security group ids such as \"sg-0123456789abcdef0\"."
  }

  # A task in awsvpc mode takes at most 5 security groups, and the module adds its own: a fifth
  # one here would fail at apply with InvalidParameterException.
  # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_AwsVpcConfiguration.html
  validation {
    condition     = length(var.security_group_ids) <= 4
    error_message = "security_group_ids takes at most 4 groups (${length(var.security_group_ids)} given): a Fargate task takes at most 5 security groups and the module adds its own egress-only group. Merge the rules of some groups into one."
  }
}

variable "availability_zone_ids" {
  description = "With network_mode \"public\" or \"private\": the two AZ IDs (such as \"use1-az1\") the new VPC spans. Empty: the first two AZs by name whose ID is not in exclude_zone_ids."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zone_ids) == 0 || (length(var.availability_zone_ids) == 2 && length(distinct(var.availability_zone_ids)) == 2 && alltrue([for z in var.availability_zone_ids : can(regex("^[a-z]{2,}[0-9]+(-[a-z]+[0-9]+)?-az[0-9]+$", z))]))
    error_message = "availability_zone_ids must be empty or two different AZ IDs such as [\"use1-az1\", \"use1-az2\"] (IDs, not names: a name like us-east-1a maps to a different zone in each account)."
  }
}

variable "exclude_zone_ids" {
  description = "AZ IDs the new VPC never spans when availability_zone_ids is empty. The default lists the AZ IDs where Fargate does not run."
  type        = list(string)
  # Fargate runs in every AZ of its regions but these: us-west-1 in usw1-az1 and usw1-az3 only,
  # ap-northeast-1 in apne1-az1, apne1-az2 and apne1-az4 only.
  # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AWS_Fargate-Regions.html
  default = ["usw1-az2", "apne1-az3"]

  validation {
    condition     = alltrue([for z in var.exclude_zone_ids : can(regex("^[a-z]{2,}[0-9]+(-[a-z]+[0-9]+)?-az[0-9]+$", z))])
    error_message = "exclude_zone_ids must be AZ IDs such as \"use1-az3\", not AZ names."
  }
}

# ---- logs and encryption ----------------------------------------------------------------------

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the consumers' logs and the VPC flow logs (0 keeps them forever)."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653 (or 0 to keep logs forever)."
  }
}

variable "secrets_kms_key_arns" {
  description = "ARNs of the customer managed KMS keys the consumers' secrets (SSM SecureString parameters, Secrets Manager secrets) are encrypted with: the execution roles may decrypt with them to inject the secrets. Not needed for AWS managed keys."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.secrets_kms_key_arns : can(regex("^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", k))])
    error_message = "secrets_kms_key_arns must be KMS key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID), not aliases: IAM policies match keys by key ARN."
  }
}

variable "kms_key_arn" {
  description = "ARN of a KMS key to encrypt the log groups (the consumers', the VPC flow logs', /aws/events/cdc/<project>/<env>/*) and the alarm topic with: its key policy must allow CloudWatch Logs (which encrypts and decrypts the logs; the tasks never do) and cloudwatch.amazonaws.com (which publishes the alarms); see examples/prod. Null: CloudWatch Logs' own encryption and an unencrypted topic."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias: CloudWatch Logs takes key ARNs only."
  }
}

variable "tags" {
  description = "Tags for every resource, besides project, environment, managed-by (and consumer on a consumer's resources)."
  type        = map(string)
  default     = {}
}

# ---- cluster and services ---------------------------------------------------------------------

variable "enable_execute_command" {
  description = "Allow ECS Exec (aws ecs execute-command) into the consumers' containers; the task roles get the ssmmessages permissions it needs."
  type        = bool
  default     = false
}

variable "dashboards" {
  description = "Create the fleet's CloudWatch dashboards (cdc-<project>-<environment>, or -1, -2, … past dashboard_consumers_per_page consumers). The first three dashboards of an account are free, each further one costs about $3 a month."
  type        = bool
  default     = true
}

variable "dashboard_consumers_per_page" {
  description = "Consumers per dashboard: each is a row of up to four widgets (CloudWatch takes at most 500 widgets and 2,500 metrics per dashboard)."
  type        = number
  default     = 50

  validation {
    condition     = var.dashboard_consumers_per_page >= 1 && var.dashboard_consumers_per_page <= 100 && floor(var.dashboard_consumers_per_page) == var.dashboard_consumers_per_page
    error_message = "dashboard_consumers_per_page must be a whole number from 1 to 100."
  }
}

variable "alarms" {
  description = "Which alarms each consumer gets: running below desired (needs Container Insights), tasks stopping repeatedly, Kafka lag (consumers with msk), CPU and memory saturated. Each is one standard alarm per consumer ($0.10 a month)."
  type = object({
    running_below_desired = optional(bool, true)
    tasks_stopping        = optional(bool, true)
    lag                   = optional(bool, true)
    cpu                   = optional(bool, true)
    memory                = optional(bool, true)
  })
  default  = {}
  nullable = false
}

variable "alarm_thresholds" {
  description = "When the alarms go off: minutes below desired; tasks stopped by a failure within 15 minutes; messages behind and for how many minutes; CPU or memory percent and for how many minutes."
  type = object({
    running_below_desired_minutes = optional(number, 5)
    tasks_stopped                 = optional(number, 3)
    lag_messages                  = optional(number, 100000)
    lag_minutes                   = optional(number, 10)
    saturation_percent            = optional(number, 90)
    saturation_minutes            = optional(number, 15)
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([
      for m in [var.alarm_thresholds.running_below_desired_minutes, var.alarm_thresholds.lag_minutes, var.alarm_thresholds.saturation_minutes] :
      m >= 1 && m <= 1440 && floor(m) == m
    ]) && var.alarm_thresholds.tasks_stopped >= 1 && var.alarm_thresholds.lag_messages >= 1 && var.alarm_thresholds.saturation_percent >= 1 && var.alarm_thresholds.saturation_percent <= 100
    error_message = "alarm_thresholds: minutes are whole numbers from 1 to 1440 (CloudWatch evaluates at most a day), tasks_stopped and lag_messages at least 1, saturation_percent from 1 to 100."
  }
}

variable "alarm_email_addresses" {
  description = "E-mail addresses the alarms' topic sends to (each must confirm its subscription)."
  type        = list(string)
  default     = []
}

variable "alarm_https_endpoints" {
  description = "HTTPS endpoints the alarms' topic posts to: a PagerDuty Events integration URL, a webhook relay. Sensitive: such URLs carry the integration's key."
  type        = list(string)
  default     = []
  sensitive   = true

  validation {
    condition     = alltrue([for u in var.alarm_https_endpoints : startswith(u, "https://")])
    error_message = "alarm_https_endpoints take https:// URLs only."
  }
}

variable "alarm_slack_channel" {
  description = "A Slack channel the alarms' topic posts to through AWS Chatbot: the workspace ID (authorise the workspace once in the AWS Chatbot console, which shows it), the channel ID (the end of the channel's link), and the region of AWS Chatbot's API to create it in (null: the provider's; it answers in us-east-2, us-west-2, eu-west-1, ap-southeast-1 and a few more). Private channels need /invite @aws first."
  type = object({
    workspace_id = string
    channel_id   = string
    region       = optional(string)
  })
  default = null

  validation {
    condition     = var.alarm_slack_channel == null ? true : (can(regex("^[A-Z0-9]{1,255}$", var.alarm_slack_channel.workspace_id)) && can(regex("^[A-Za-z0-9]{1,255}$", var.alarm_slack_channel.channel_id)))
    error_message = "alarm_slack_channel takes Slack IDs, not names: workspace_id like \"T07EA123LEP\" (from the AWS Chatbot console) and channel_id like \"C07EZ1ABC23\" (the end of the channel's link)."
  }
}

variable "capacity_provider" {
  description = "\"FARGATE\" or \"FARGATE_SPOT\" (interruptible, cheaper). Consumers on linux/arm64 always use FARGATE: Fargate Spot runs X86_64 only."
  type        = string
  default     = "FARGATE"

  validation {
    condition     = contains(["FARGATE", "FARGATE_SPOT"], var.capacity_provider)
    error_message = "capacity_provider must be \"FARGATE\" or \"FARGATE_SPOT\"."
  }
}

variable "force_new_deployment" {
  description = "Start a new deployment of every service on any change to it. Off: only a new revision or a change of network starts one. Set it for the apply that changes capacity_provider (the provider requires it), then unset it."
  type        = bool
  default     = false
}

variable "availability_zone_rebalancing" {
  description = "Let ECS stop running tasks to rebalance a service across AZs. Off by default: every task stopped is a Kafka consumer-group rebalance (or, for a single writer, a gap)."
  type        = bool
  default     = false
}

variable "deployment_minimum_healthy_percent" {
  description = "Lower limit, in percent of the desired count, of the running tasks during a rollout (a consumer's own deployment_minimum_healthy_percent wins)."
  type        = number
  default     = 100

  validation {
    condition     = var.deployment_minimum_healthy_percent >= 0 && var.deployment_minimum_healthy_percent <= 100
    error_message = "deployment_minimum_healthy_percent must be from 0 to 100."
  }
}

variable "deployment_maximum_percent" {
  description = "Upper limit, in percent of the desired count, of the running tasks during a rollout (a consumer's own deployment_maximum_percent wins)."
  type        = number
  default     = 200

  validation {
    condition     = var.deployment_maximum_percent >= 100 && var.deployment_maximum_percent > var.deployment_minimum_healthy_percent
    error_message = "deployment_maximum_percent must be at least 100 and above deployment_minimum_healthy_percent, or a rollout can neither start a new task nor stop an old one."
  }
}

variable "container_insights" {
  description = "The cluster's containerInsights setting: \"enabled\", \"enhanced\" or \"disabled\". Kafka lag scaling reads its RunningTaskCount metric, so it needs Container Insights."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enabled", "enhanced", "disabled"], var.container_insights)
    error_message = "container_insights must be \"enabled\", \"enhanced\" or \"disabled\"."
  }
}
