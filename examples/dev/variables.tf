# The variables cdc-deploy writes to cdc-deploy.auto.tfvars.json: a root module the action runs
# must declare them (the bundled module declares and validates their types).

variable "project_name" {
  description = "Prefix of every resource name (cdc-deploy's project-name input)."
  type        = string
}

variable "environment" {
  description = "Deployment environment (cdc-deploy's environment input), e.g. dev."
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
