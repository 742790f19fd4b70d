variable "name" {
  description = "Name prefix of the roles (e.g. dualnova-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 letters, digits or dashes."
  }
}

variable "ecr_repository_arn" {
  description = "The one repository the execution role may pull from."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[^*]+$", var.ecr_repository_arn))
    error_message = "ecr_repository_arn must be one ECR repository ARN, without wildcards."
  }
}

variable "kms_key_arn" {
  description = "KMS key the repository's images are encrypted with."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "log_group_arns" {
  description = "Log groups the execution role may write (the task's awslogs driver)."
  type        = list(string)
  validation {
    condition     = length(var.log_group_arns) > 0 && alltrue([for a in var.log_group_arns : can(regex("^arn:aws[a-z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*]+$", a))])
    error_message = "log_group_arns must be log group ARNs without wildcards."
  }
}

variable "foundation_model_arns" {
  description = "Foundation-model ARNs the inference service may converse with and describe (arn:aws:bedrock:<region>::foundation-model/<id>)."
  type        = list(string)
  validation {
    condition     = length(var.foundation_model_arns) > 0 && alltrue([for a in var.foundation_model_arns : can(regex("^arn:aws[a-z-]*:bedrock:[a-z0-9-]+::foundation-model/[^*]+$", a))])
    error_message = "foundation_model_arns must be foundation-model ARNs, each naming one model (no wildcards)."
  }
}

variable "inference_profile_arns" {
  description = "Inference-profile ARNs the inference service may converse with and describe (arn:aws:bedrock:<region>:<account>:inference-profile/<id>)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.inference_profile_arns : can(regex("^arn:aws[a-z-]*:bedrock:[a-z0-9-]+:[0-9]{12}:(application-)?inference-profile/[^*]+$", a))])
    error_message = "inference_profile_arns must be inference-profile ARNs, each naming one profile (no wildcards)."
  }
}

variable "cloudwatch_namespace" {
  description = "DUALNOVA_CLOUDWATCH_NAMESPACE, the only namespace PutMetricData is allowed in; null: no CloudWatch rights."
  type        = string
  default     = null
  validation {
    condition     = var.cloudwatch_namespace == null || can(regex("^[^:][ -~]{0,254}$", var.cloudwatch_namespace)) && !startswith(coalesce(var.cloudwatch_namespace, "x"), "AWS/")
    error_message = "cloudwatch_namespace must be printable ASCII, at most 255 characters, not starting with ':' or 'AWS/'."
  }
}

variable "knowledge_base_id" {
  description = "DUALNOVA_KNOWLEDGE_BASE_ID: the one Bedrock Knowledge Base the inference service may Retrieve from and describe (GetKnowledgeBase, its health probe); null: no Knowledge Base rights."
  type        = string
  default     = null
  validation {
    condition     = var.knowledge_base_id == null || can(regex("^[0-9a-zA-Z]{10}$", var.knowledge_base_id))
    error_message = "knowledge_base_id must be a knowledge base id: 10 letters or digits."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
