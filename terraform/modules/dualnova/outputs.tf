output "gateway_endpoint" {
  description = "Internal DNS name of the gateway's ALB (gRPC over TLS on 443)."
  value       = module.alb.dns_name
}

output "ecr_repository_url" {
  description = "Where to push the image; deploy it by digest."
  value       = module.ecr.repository_url
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.cluster.cluster_name
}

output "inference_service_name" {
  description = "ECS service of the inference service."
  value       = module.inference.service_name
}

output "gateway_service_name" {
  description = "ECS service of the gateway."
  value       = module.gateway.service_name
}
