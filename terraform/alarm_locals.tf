# Which consumers get which alarm (alarms.tf), worked out from the variables and locals.tf alone
# (no resource, no data source), so that a test can evaluate them with the terraform binary.

locals {
  # Kinds that apply to a consumer: running below desired needs Container Insights' task counts;
  # lag needs a consumer group that reads.
  alarm_running = var.alarms.running_below_desired && var.container_insights != "disabled" ? var.consumers : {}
  alarm_stopped = var.alarms.tasks_stopping ? var.consumers : {}
  alarm_lag     = var.alarms.lag ? { for name, c in var.consumers : name => c if local.consumers[name].lag_watched } : {}
  alarm_cpu     = var.alarms.cpu ? var.consumers : {}
  alarm_memory  = var.alarms.memory ? var.consumers : {}
}
