output "kms_key_arn" {
  description = "ARN of the KMS key for logs and images."
  value       = aws_kms_key.this.arn
}

output "log_group_names" {
  description = "Log group name per component."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "log_group_arns" {
  description = "Log group ARN per component."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.arn }
}
