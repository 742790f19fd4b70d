variable "name" {
  description = "Service and task-definition family name, e.g. dualnova-prod-inference."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,254}$", var.name))
    error_message = "name must be letters, digits, dashes or underscores, starting with a letter."
  }
}

variable "component" {
  description = "Which program this service runs: inference or gateway (also the container name)."
  type        = string
  validation {
    condition     = contains(["inference", "gateway"], var.component)
    error_message = "component must be inference or gateway."
  }
}

variable "image" {
  description = "The image by digest, <repository url>@sha256:<64 hex>; tags are not accepted, so a task always runs exactly the build that was tested."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>."
  }
}

variable "command" {
  description = "Container command, e.g. [\"python\", \"-m\", \"gateway\"]."
  type        = list(string)
  validation {
    condition     = length(var.command) > 0
    error_message = "command must not be empty."
  }
}

variable "environment" {
  description = "Environment variables of the container: declared settings of the program (README, Configuration) or standard AWS/OTEL variables. No secrets here: the task definition is readable."
  type        = map(string)
  default     = {}
}

variable "container_port" {
  description = "Port the program listens on (INFERENCE_LISTEN / GATEWAY_LISTEN)."
  type        = number
  validation {
    condition     = var.container_port >= 1024 && var.container_port <= 65535
    error_message = "container_port must be between 1024 and 65535 (the image runs as uid 10001)."
  }
}

variable "health_requires_serving" {
  description = "true: the container is healthy only while the server reports SERVING; false (default): while it answers grpc.health at all, so a Bedrock outage does not replace every task."
  type        = bool
  default     = false
}

variable "cpu" {
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  type        = number
  default     = 1024
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Fargate task memory in MiB (must fit the CPU size)."
  type        = number
  default     = 2048
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64, the architecture of the image."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL; must cover the drain (shutdown delay + grace). Fargate allows at most 120."
  type        = number
  default     = 30
  validation {
    condition     = var.stop_timeout >= 2 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 2 and 120 seconds (the Fargate maximum)."
  }
}

variable "drain_seconds" {
  description = "The program's drain: its shutdown delay plus its shutdown grace, in seconds; stop_timeout must be at least this."
  type        = number
  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 120
    error_message = "drain_seconds must be between 0 and 120."
  }
}

variable "execution_role_arn" {
  description = "Execution role (image pull and logs only)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.execution_role_arn))
    error_message = "execution_role_arn must be an IAM role ARN."
  }
}

variable "task_role_arn" {
  description = "Task role: the program's own AWS identity."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.task_role_arn))
    error_message = "task_role_arn must be an IAM role ARN."
  }
}

variable "log_group_name" {
  description = "CloudWatch log group of the container."
  type        = string
}

variable "region" {
  description = "AWS region of the log group."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "cluster_arn" {
  description = "ECS cluster ARN."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name (the autoscaling resource id uses it)."
  type        = string
}

variable "namespace_id" {
  description = "Cloud Map private DNS namespace id the service registers in (with discovery_name)."
  type        = string
}

variable "discovery_name" {
  description = "DNS name, under the namespace, other services reach this one by (e.g. inference: one A record per task); null: not registered."
  type        = string
  default     = null
  validation {
    condition     = var.discovery_name == null || can(regex("^[a-z][a-z0-9-]{0,62}$", coalesce(var.discovery_name, "x")))
    error_message = "discovery_name must be a lowercase DNS label."
  }
}

variable "vpc_id" {
  description = "VPC of the private subnets."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (egress to the upstream component stays inside it)."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a CIDR block."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (no public IPs are assigned); at least two, in different zones."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids must be at least two subnet ids."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups that may open connections to container_port (the gateway's for the inference service, the ALB's for the gateway)."
  type        = list(string)
  default     = []
}

variable "egress_https_cidr" {
  description = "Where HTTPS may go: AWS endpoints through a NAT gateway or VPC endpoints."
  type        = string
  default     = "0.0.0.0/0"
  validation {
    condition     = can(cidrhost(var.egress_https_cidr, 0))
    error_message = "egress_https_cidr must be a CIDR block."
  }
}

variable "upstream_port" {
  description = "Port of the component this one calls (the gateway calls the inference service); null: none."
  type        = number
  default     = null
}

variable "target_group_arn" {
  description = "ALB target group to register tasks in (the gateway); null: none."
  type        = string
  default     = null
}

variable "min_count" {
  description = "Fewest tasks (also the first desired count)."
  type        = number
  default     = 2
  validation {
    condition     = var.min_count >= 1
    error_message = "min_count must be at least 1."
  }
}

variable "max_count" {
  description = "Most tasks CPU autoscaling may run."
  type        = number
  default     = 10
  validation {
    condition     = var.max_count >= 1 && var.max_count <= 1000
    error_message = "max_count must be between 1 and 1000."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilization the service scales to hold."
  type        = number
  default     = 60
  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
