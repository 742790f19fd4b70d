output "dns_name" {
  description = "DNS name of the internal ALB (point the certificate's name at it)."
  value       = aws_lb.this.dns_name
}

output "security_group_id" {
  description = "Security group of the ALB (the gateway admits it)."
  value       = aws_security_group.this.id
}

output "target_group_arn" {
  description = "The gateway's gRPC target group."
  value       = aws_lb_target_group.gateway.arn
}
