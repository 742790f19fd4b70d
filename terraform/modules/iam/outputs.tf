output "execution_role_arn" {
  description = "Execution role of both task definitions (pull and log only)."
  value       = aws_iam_role.execution.arn
}

output "inference_task_role_arn" {
  description = "Task role of the inference service (Bedrock converse, health reads and, with a knowledge base, Retrieve)."
  value       = aws_iam_role.inference.arn
}

output "gateway_task_role_arn" {
  description = "Task role of the gateway (no policies)."
  value       = aws_iam_role.gateway.arn
}
