variable "name" {
  description = "Cluster name."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,255}$", var.name))
    error_message = "name must be 1-255 letters, digits, dashes or underscores."
  }
}

variable "namespace" {
  description = "Cloud Map private DNS namespace, e.g. dualnova.internal; the inference service is inference.<namespace>."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,1023}$", var.namespace))
    error_message = "namespace must be lowercase letters, digits, dots and dashes."
  }
}

variable "vpc_id" {
  description = "VPC the private DNS namespace answers in."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
