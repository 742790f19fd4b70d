variable "name" {
  description = "Cluster name."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,255}$", var.name))
    error_message = "name must be 1-255 letters, digits, dashes or underscores."
  }
}

variable "namespace" {
  description = "Service Connect (Cloud Map HTTP) namespace, e.g. dualnova.internal."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,1023}$", var.namespace))
    error_message = "namespace must be lowercase letters, digits, dots and dashes."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
