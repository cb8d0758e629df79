# cdc-deploy reads `consumers` back after every apply: a root module it runs must pass it on.

output "consumers" {
  description = "Per consumer: cluster, service, task_definition, log_group, container, image and the entry it was applied with."
  value       = module.cdc.consumers
}

output "cluster_name" {
  description = "The ECS cluster."
  value       = module.cdc.cluster_name
}

output "cluster_arn" {
  description = "The ECS cluster's ARN."
  value       = module.cdc.cluster_arn
}
