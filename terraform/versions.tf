# Terraform 1.10 or later: the S3 backend's native locking (`use_lockfile = true`), and input
# variable validations that refer to other variables.
#
# The module configures no provider: the root module does (region, credentials, default_tags).
terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.25.0"
    }
  }
}
