terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.25.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (see
  # backend.hcl.example), or cdc-deploy's `terraform-backend-config` input.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      project     = var.project_name
      environment = var.environment
      terraform   = "examples/dev"
    }
  }
}
