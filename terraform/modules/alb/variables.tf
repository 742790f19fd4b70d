variable "name" {
  description = "Name prefix (e.g. dualnova-prod); ALB names are cut to 32 characters."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or dashes."
  }
}

variable "vpc_id" {
  description = "VPC of the ALB and the gateway's tasks."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (the ALB sends to targets inside it only)."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a CIDR block."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the internal ALB, at least two zones."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids must be at least two subnet ids."
  }
}

variable "allowed_cidrs" {
  description = "CIDRs of the callers allowed to reach the ALB on 443 (never 0.0.0.0/0: it is internal)."
  type        = list(string)
  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "allowed_cidrs must be CIDR blocks, not 0.0.0.0/0."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener (the name callers use for the gateway)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  validation {
    condition     = startswith(var.ssl_policy, "ELBSecurityPolicy-TLS13")
    error_message = "ssl_policy must be a TLS 1.3 policy (ELBSecurityPolicy-TLS13-...)."
  }
}

variable "target_port" {
  description = "Port of the gateway's tasks (GATEWAY_LISTEN)."
  type        = number
  default     = 50052
  validation {
    condition     = var.target_port >= 1024 && var.target_port <= 65535
    error_message = "target_port must be between 1024 and 65535."
  }
}

variable "idle_timeout" {
  description = "Seconds a connection may carry no bytes before the ALB closes it (longest silence inside a stream)."
  type        = number
  default     = 300
  validation {
    condition     = var.idle_timeout >= 60 && var.idle_timeout <= 4000
    error_message = "idle_timeout must be between 60 and 4000 seconds."
  }
}

variable "deregistration_delay" {
  description = "Seconds a stopping gateway task keeps its running streams through the ALB before ECS sends SIGTERM."
  type        = number
  default     = 60
  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay must be between 0 and 3600."
  }
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion (true in prod)."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "S3 bucket for ALB access logs (its policy must let ELB write); null: off."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
