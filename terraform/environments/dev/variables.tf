variable "region" {
  description = "AWS region of this environment."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "image" {
  description = "The image to run, by digest: <account>.dkr.ecr.<region>.amazonaws.com/dualnova@sha256:<64 hex>."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>."
  }
}

variable "vpc_id" {
  description = "VPC to run in."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two zones, with a NAT gateway or VPC endpoints (bedrock-runtime, bedrock, ecr.api, ecr.dkr, s3 gateway, logs, monitoring; with a knowledge base, bedrock-agent-runtime and bedrock-agent)."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the gateway's HTTPS listener."
  type        = string
}

variable "alb_allowed_cidrs" {
  description = "CIDRs of the callers that may reach the gateway."
  type        = list(string)
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket for ALB access logs; null: off."
  type        = string
  default     = null
}

variable "micro_model" {
  description = "DUALNOVA_MICRO_MODEL (a model id or a cross-region inference-profile id)."
  type        = string
  default     = "amazon.nova-micro-v1:0"
}

variable "pro_model" {
  description = "DUALNOVA_PRO_MODEL (a model id or a cross-region inference-profile id)."
  type        = string
  default     = "amazon.nova-pro-v1:0"
}

variable "cloudwatch_namespace" {
  description = "DUALNOVA_CLOUDWATCH_NAMESPACE for token metrics; null: off."
  type        = string
  default     = null
}

variable "knowledge_base_id" {
  description = "DUALNOVA_KNOWLEDGE_BASE_ID: the Bedrock Knowledge Base grounded chats retrieve from (the role may Retrieve from it alone); null: none."
  type        = string
  default     = null
}

variable "otel_exporter_otlp_endpoint" {
  description = "OTEL_EXPORTER_OTLP_ENDPOINT of both services; null: no export."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
