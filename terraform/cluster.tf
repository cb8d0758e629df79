# One ECS cluster per project and environment, with both Fargate capacity providers.

resource "aws_ecs_cluster" "this" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = data.aws_region.current.region == var.aws_region
      error_message = "aws_region is \"${var.aws_region}\" but the aws provider is configured for \"${data.aws_region.current.region}\": configure the provider with region = var.aws_region."
    }
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = var.capacity_provider
    weight            = 1
    base              = 0
  }
}
