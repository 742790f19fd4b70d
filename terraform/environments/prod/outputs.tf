output "gateway_endpoint" {
  description = "Internal DNS name of the gateway (gRPC over TLS on 443)."
  value       = module.dualnova.gateway_endpoint
}

output "ecr_repository_url" {
  description = "Where to push the image."
  value       = module.dualnova.ecr_repository_url
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.dualnova.cluster_name
}
