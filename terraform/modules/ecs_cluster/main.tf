resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  # Service Connect: services in this namespace reach each other by name
  # (the gateway calls inference:50051) through the Envoy proxy ECS injects,
  # which balances every request over the healthy replicas.
  service_connect_defaults {
    namespace = aws_service_discovery_http_namespace.this.arn
  }

  tags = var.tags
}

resource "aws_service_discovery_http_namespace" "this" {
  name        = var.namespace
  description = "Service Connect namespace of ${var.name}"
  tags        = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
    base              = 1
  }
}
