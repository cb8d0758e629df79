# The variables cdc-deploy writes to cdc-deploy.auto.tfvars.json: a root module the action runs
# must declare them (the bundled module declares and validates their types).

variable "project_name" {
  description = "Prefix of every resource name (cdc-deploy's project-name input)."
  type        = string
}

variable "environment" {
  description = "Deployment environment (cdc-deploy's environment input), e.g. production."
  type        = string
}

variable "aws_region" {
  description = "AWS region (cdc-deploy's aws-region input)."
  type        = string
}

variable "consumers" {
  description = "The consumers map cdc-deploy writes; see terraform/README.md for its fields."
  type        = any
}

# The network, from a .tfvars file of this root (cdc-deploy's terraform-var-file input).

variable "network_mode" {
  description = "\"private\" (a new VPC with NAT gateways) or \"existing\" (vpc_id and subnet_ids)."
  type        = string
  default     = "private"
}

variable "vpc_id" {
  description = "With network_mode \"existing\": the VPC the consumers run in."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "With network_mode \"existing\": private subnets, with a route to the internet or VPC endpoints for ECR, CloudWatch Logs, Secrets Manager and SSM."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Further security groups for the consumers' tasks, e.g. one the MSK cluster's and the databases' security groups allow."
  type        = list(string)
  default     = []
}

variable "availability_zone_ids" {
  description = "With network_mode \"private\": the two AZ IDs (such as \"use1-az1\") the VPC spans; empty: the first two by name where Fargate runs."
  type        = list(string)
  default     = []
}

variable "secrets_kms_key_arns" {
  description = "Customer managed KMS keys the consumers' secrets are encrypted with (the execution roles may decrypt with them)."
  type        = list(string)
  default     = []
}
