output "repository_arn" {
  description = "ARN of the repository (the execution role may pull from it only)."
  value       = aws_ecr_repository.this.arn
}

output "repository_url" {
  description = "URL to push to; deploy by digest: <url>@sha256:<digest>."
  value       = aws_ecr_repository.this.repository_url
}
