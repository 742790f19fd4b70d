variable "name" {
  description = "Name prefix of every resource, e.g. dualnova-prod."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of the deployment and of Bedrock (AWS_REGION of the inference service)."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "image" {
  description = "The DualNova image by digest: <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<64 hex>. Both services run it."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>."
  }
}

variable "ecr_repository_name" {
  description = "Name of the ECR repository the image is pushed to."
  type        = string
  default     = "dualnova"
  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._/-][a-z0-9]+)*$", var.ecr_repository_name))
    error_message = "ecr_repository_name must be a valid ECR repository name."
  }
}

variable "vpc_id" {
  description = "VPC to run in."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a CIDR block."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (NAT gateway or VPC endpoints for Bedrock, ECR, logs), in at least two zones; tasks and the ALB live here."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids must be at least two subnet ids."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the ALB's HTTPS listener (the name callers use for the gateway)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "alb_allowed_cidrs" {
  description = "CIDRs of the callers that may reach the gateway's ALB on 443."
  type        = list(string)
  validation {
    condition     = length(var.alb_allowed_cidrs) > 0 && alltrue([for c in var.alb_allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "alb_allowed_cidrs must be CIDR blocks, not 0.0.0.0/0."
  }
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket for the ALB's access logs; null: off."
  type        = string
  default     = null
}

variable "alb_deregistration_delay" {
  description = "Seconds a stopping gateway keeps its streams through the ALB before SIGTERM."
  type        = number
  default     = 60
  validation {
    condition     = var.alb_deregistration_delay >= 0 && var.alb_deregistration_delay <= 3600
    error_message = "alb_deregistration_delay must be between 0 and 3600."
  }
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion."
  type        = bool
  default     = true
}

variable "service_discovery_namespace" {
  description = "Cloud Map private DNS namespace; the gateway reaches the inference tasks as inference.<namespace>:50051."
  type        = string
  default     = "dualnova.internal"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,1023}$", var.service_discovery_namespace))
    error_message = "service_discovery_namespace must be lowercase letters, digits, dots and dashes."
  }
}

variable "micro_model" {
  description = "DUALNOVA_MICRO_MODEL: Bedrock model or inference-profile id of the micro route (the role may invoke it)."
  type        = string
  default     = "amazon.nova-micro-v1:0"
  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.[a-z0-9.:-]+$", var.micro_model)) && !strcontains(var.micro_model, "*")
    error_message = "micro_model must be one Bedrock model or inference-profile id, without wildcards."
  }
}

variable "pro_model" {
  description = "DUALNOVA_PRO_MODEL: Bedrock model or inference-profile id of the pro route (the role may invoke it)."
  type        = string
  default     = "amazon.nova-pro-v1:0"
  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.[a-z0-9.:-]+$", var.pro_model)) && !strcontains(var.pro_model, "*")
    error_message = "pro_model must be one Bedrock model or inference-profile id, without wildcards."
  }
}

variable "allowed_models" {
  description = "DUALNOVA_ALLOWED_MODELS: extra model or inference-profile ids callers may name (the role may invoke each)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.allowed_models : can(regex("^[a-z0-9.-]+\\.[a-z0-9.:-]+$", m)) && !strcontains(m, "*")])
    error_message = "allowed_models must be Bedrock model or inference-profile ids, without wildcards."
  }
}

variable "inference_profile_regions" {
  description = "Regions a cross-region inference profile (us.*, eu.*, ...) may route to; the role gets those regions' foundation models."
  type        = list(string)
  default     = ["us-east-1", "us-east-2", "us-west-2"]
  validation {
    condition     = alltrue([for r in var.inference_profile_regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", r))])
    error_message = "inference_profile_regions must be region names."
  }
}

variable "cloudwatch_namespace" {
  description = "DUALNOVA_CLOUDWATCH_NAMESPACE for token metrics, and the only namespace the role may write; null: off."
  type        = string
  default     = null
  validation {
    condition     = var.cloudwatch_namespace == null || !startswith(coalesce(var.cloudwatch_namespace, "x"), "AWS/")
    error_message = "cloudwatch_namespace must not start with AWS/."
  }
}

variable "knowledge_base_id" {
  description = "DUALNOVA_KNOWLEDGE_BASE_ID: the Bedrock Knowledge Base (in region) a grounding without an id retrieves from, and the only one the role may Retrieve from; null: none."
  type        = string
  default     = null
  validation {
    condition     = var.knowledge_base_id == null || can(regex("^[0-9a-zA-Z]{10}$", var.knowledge_base_id))
    error_message = "knowledge_base_id must be a knowledge base id: 10 letters or digits."
  }
}

variable "otel_exporter_otlp_endpoint" {
  description = "OTEL_EXPORTER_OTLP_ENDPOINT of both services (a collector reachable from the tasks); null: no export."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the services' logs."
  type        = number
  default     = 365
  validation {
    condition     = var.log_retention_days >= 1
    error_message = "log_retention_days must be at least 1 (never 0 = forever)."
  }
}

variable "inference" {
  description = "Size of the inference service: Fargate cpu and memory, task count range, CPU target and INFERENCE_WORKERS (one per vCPU)."
  type = object({
    cpu                = number
    memory             = number
    min_count          = number
    max_count          = number
    cpu_target_percent = optional(number, 60)
    workers            = optional(number, 1)
  })
  default = { cpu = 1024, memory = 2048, min_count = 2, max_count = 10 }
  validation {
    condition     = var.inference.min_count >= 1 && var.inference.max_count >= var.inference.min_count && var.inference.workers >= 1
    error_message = "inference needs min_count >= 1, max_count >= min_count and workers >= 1."
  }
}

variable "gateway" {
  description = "Size of the gateway: Fargate cpu and memory, task count range, CPU target and GATEWAY_WORKERS."
  type = object({
    cpu                = number
    memory             = number
    min_count          = number
    max_count          = number
    cpu_target_percent = optional(number, 60)
    workers            = optional(number, 1)
  })
  default = { cpu = 512, memory = 1024, min_count = 2, max_count = 10 }
  validation {
    condition     = var.gateway.min_count >= 1 && var.gateway.max_count >= var.gateway.min_count && var.gateway.workers >= 1
    error_message = "gateway needs min_count >= 1, max_count >= min_count and workers >= 1."
  }
}

variable "inference_shutdown_delay" {
  description = "INFERENCE_SHUTDOWN_DELAY: seconds NOT_SERVING after SIGTERM before new calls are refused."
  type        = number
  default     = 2
  validation {
    condition     = var.inference_shutdown_delay >= 0 && var.inference_shutdown_delay <= 60
    error_message = "inference_shutdown_delay must be between 0 and 60."
  }
}

variable "inference_shutdown_grace" {
  description = "INFERENCE_SHUTDOWN_GRACE: seconds running streams may finish after SIGTERM."
  type        = number
  default     = 10
  validation {
    condition     = var.inference_shutdown_grace >= 0 && var.inference_shutdown_grace <= 110
    error_message = "inference_shutdown_grace must be between 0 and 110."
  }
}

variable "gateway_shutdown_delay" {
  description = "GATEWAY_SHUTDOWN_DELAY: seconds NOT_SERVING after SIGTERM before new calls are refused."
  type        = number
  default     = 2
  validation {
    condition     = var.gateway_shutdown_delay >= 0 && var.gateway_shutdown_delay <= 60
    error_message = "gateway_shutdown_delay must be between 0 and 60."
  }
}

variable "gateway_shutdown_grace" {
  description = "GATEWAY_SHUTDOWN_GRACE: seconds running DualChats may finish after SIGTERM."
  type        = number
  default     = 10
  validation {
    condition     = var.gateway_shutdown_grace >= 0 && var.gateway_shutdown_grace <= 110
    error_message = "gateway_shutdown_grace must be between 0 and 110."
  }
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL, for both services; at least each one's shutdown delay + grace, at most 120 (Fargate)."
  type        = number
  default     = 30
  validation {
    condition     = var.stop_timeout >= 2 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 2 and 120 seconds."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
