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

output "nat_public_ips" {
  description = "The consumers' source addresses on the internet (to allow in a database's firewall)."
  value       = module.cdc.nat_public_ips
}

output "security_group_id" {
  description = "The consumers' security group, to allow in the MSK cluster's and the databases' security groups."
  value       = module.cdc.security_group_id
}

output "logs_kms_key_arn" {
  description = "The KMS key the log groups are encrypted with."
  value       = aws_kms_key.logs.arn
}
