# Application Auto Scaling owns every consumer's task count (the service ignores desired_count
# after creation):
#
# - with `autoscaling`, between its min and max, moved by the target-tracking policies below;
# - without, min = max = desired_count: a change of desired_count updates this target in place
#   and Application Auto Scaling sets the service's count at once, and a service whose count
#   a policy changed never shows up as drift in a plan.
#
# Application Auto Scaling enforces the range only when a policy scales or the target is
# registered again, not continuously: a count set by hand (update-service --desired-count) on a
# consumer without `autoscaling` holds until its desired_count or autoscaling changes. README.md
# says so; nothing here re-applies it.
# https://docs.aws.amazon.com/autoscaling/application/userguide/getting-started.html

resource "aws_appautoscaling_target" "this" {
  for_each = var.consumers

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this[each.key].name}"
  min_capacity       = local.consumers[each.key].min_capacity
  max_capacity       = local.consumers[each.key].max_capacity

  tags = merge(local.tags, { consumer = each.key })
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each = { for name, c in local.consumers : name => c.cpu_target if c.cpu_target != null }

  name               = "${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = each.value
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "memory" {
  for_each = { for name, c in local.consumers : name => c.memory_target if c.memory_target != null }

  name               = "${each.key}-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = each.value
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
  }

  # One policy of a scalable target at a time: Application Auto Scaling may refuse concurrent
  # updates of one target (ConcurrentUpdateException).
  depends_on = [aws_appautoscaling_policy.cpu]
}

# Kafka consumer lag per running task: MSK's SumOffsetLag of the consumer group on the topic,
# divided by the service's running tasks (Container Insights), kept at target_lag.
#
# Missing data means no scaling, never scaling in: MSK publishes no lag while the group is not
# STABLE or EMPTY (during a rebalance, which every rollout causes), and nothing for a group name
# with ":" or characters outside printable ASCII (refused in variables.tf); RunningTaskCount has
# no datapoint at 0 tasks, so the minimum is at least 1 with lag scaling (also refused there).
# Target tracking leaves its alarms in INSUFFICIENT_DATA then, which starts no scaling activity.
# https://docs.aws.amazon.com/msk/latest/developerguide/consumer-lag.html
# https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-target-tracking.html
resource "aws_appautoscaling_policy" "kafka_lag" {
  for_each = { for name, c in local.consumers : name => c.kafka_lag if c.kafka_lag != null }

  name               = "${each.key}-kafka-lag"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.target_lag
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    customized_metric_specification {
      metrics {
        id          = "lag"
        label       = "SumOffsetLag of ${each.value.consumer_group} on ${each.value.topic}"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = "AWS/Kafka"
            metric_name = "SumOffsetLag"

            dimensions {
              name  = "Cluster Name"
              value = each.value.msk_cluster
            }

            dimensions {
              name  = "Consumer Group"
              value = each.value.consumer_group
            }

            dimensions {
              name  = "Topic"
              value = each.value.topic
            }
          }
        }
      }

      metrics {
        id          = "tasks"
        label       = "Running tasks of ${each.key}"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"

            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }

            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.this[each.key].name
            }
          }
        }
      }

      metrics {
        id          = "lag_per_task"
        label       = "Kafka lag per running task of ${each.key}"
        expression  = "lag / tasks"
        return_data = true
      }
    }
  }

  depends_on = [aws_appautoscaling_policy.memory]

  lifecycle {
    precondition {
      condition     = var.container_insights != "disabled"
      error_message = "Kafka lag scaling of ${each.key} divides the lag by the service's RunningTaskCount, a Container Insights metric: set container_insights to \"enabled\" or \"enhanced\"."
    }
  }
}
