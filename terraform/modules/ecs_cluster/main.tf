resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

# Cloud Map private DNS: each inference task is an A record under
# inference.<namespace>, so the gateway's dns:/// target resolves every replica
# and its own round robin and per-replica health checks balance over them (as
# with a headless Service on Kubernetes). Service Connect would hide the
# replicas behind one proxy address, and the gateway's health watch on that one
# address would follow whichever replica answered it.
resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.namespace
  description = "Service discovery of ${var.name}"
  vpc         = var.vpc_id
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
