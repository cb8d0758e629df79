# A development environment: cheap and easy to look into.
#
# - tasks in public subnets with a public IP: no NAT gateway to pay for (the security group
#   still allows no inbound traffic);
# - Fargate Spot (consumers on linux/arm64 run on Fargate: Spot is X86_64 only);
# - a week of logs;
# - ECS Exec on, to open a shell in a running consumer.

module "cdc" {
  source = "../../terraform"

  project_name = var.project_name
  environment  = var.environment
  aws_region   = var.aws_region
  consumers    = var.consumers

  network_mode           = "public"
  capacity_provider      = "FARGATE_SPOT"
  log_retention_days     = 7
  enable_execute_command = true
}
