# Which consumers get which alarm (alarms.tf), and at what threshold, worked out from the variables
# and locals.tf alone (no resource, no data source), so that a test can evaluate them with the
# terraform binary.

locals {
  # The kinds each consumer's `[alarms]` switches off.
  alarm_off = { for name, c in var.consumers : name => (c.alarms == null ? [] : coalesce(c.alarms.off, [])) }

  # Kinds that apply to a consumer: switched on module-wide and not off in its `[alarms]`; running
  # below desired needs Container Insights' task counts; lag needs a consumer group that reads.
  alarm_running = (var.alarms.running_below_desired && var.container_insights != "disabled" ? { for name, c in var.consumers : name => c if !contains(local.alarm_off[name], "running_below_desired") } : {})
  alarm_stopped = (var.alarms.tasks_stopping ? { for name, c in var.consumers : name => c if !contains(local.alarm_off[name], "tasks_stopping") } : {})
  alarm_lag     = (var.alarms.lag ? { for name, c in var.consumers : name => c if local.consumers[name].lag_watched && !contains(local.alarm_off[name], "lag") } : {})
  alarm_cpu     = (var.alarms.cpu ? { for name, c in var.consumers : name => c if !contains(local.alarm_off[name], "cpu") } : {})
  alarm_memory  = (var.alarms.memory ? { for name, c in var.consumers : name => c if !contains(local.alarm_off[name], "memory") } : {})

  # Each consumer's thresholds: its own `[alarms]` value, else the module's alarm_thresholds.
  alarm_threshold = {
    for name, c in var.consumers : name => {
      running_below_desired_minutes = (c.alarms == null ? var.alarm_thresholds.running_below_desired_minutes : coalesce(c.alarms.running_below_desired_minutes, var.alarm_thresholds.running_below_desired_minutes))
      tasks_stopped                 = (c.alarms == null ? var.alarm_thresholds.tasks_stopped : coalesce(c.alarms.tasks_stopped, var.alarm_thresholds.tasks_stopped))
      lag_messages                  = (c.alarms == null ? var.alarm_thresholds.lag_messages : coalesce(c.alarms.lag_messages, var.alarm_thresholds.lag_messages))
      lag_minutes                   = (c.alarms == null ? var.alarm_thresholds.lag_minutes : coalesce(c.alarms.lag_minutes, var.alarm_thresholds.lag_minutes))
      cpu_percent                   = (c.alarms == null ? var.alarm_thresholds.saturation_percent : coalesce(c.alarms.cpu_percent, var.alarm_thresholds.saturation_percent))
      memory_percent                = (c.alarms == null ? var.alarm_thresholds.saturation_percent : coalesce(c.alarms.memory_percent, var.alarm_thresholds.saturation_percent))
    }
  }

  # Consumers whose deployments ECS rolls back on their running-below-desired alarm: those that
  # ask for it and have that alarm.
  alarm_rollback = { for name, c in local.alarm_running : name => c if try(c.alarms.rollback, null) == true }
}
