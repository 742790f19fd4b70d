variable "name" {
  description = "Name prefix (e.g. dualnova-prod); log groups are /ecs/<name>/<component>."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "components" {
  description = "Components that get a log group each."
  type        = list(string)
  default     = ["inference", "gateway"]
  validation {
    condition     = length(var.components) > 0 && alltrue([for c in var.components : can(regex("^[a-z][a-z0-9-]*$", c))])
    error_message = "components must be non-empty lowercase names."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps log events (one of the values CloudWatch accepts, never 0 = forever)."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ... 3653)."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
