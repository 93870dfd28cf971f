variable "project" {
  type        = string
  description = "GCP project that owns the state bucket."

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a GCP project id (6-30 lowercase letters, digits and '-')."
  }
}

variable "location" {
  type        = string
  description = "Bucket location: a region (\"us-central1\") or multi-region (\"US\")."
  default     = "US"
}

variable "bucket_name" {
  type        = string
  description = "Name of the GCS bucket that holds the Terraform state of every skyterra cluster (globally unique)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "The bucket_name must be 3-63 characters of lowercase letters, digits, '.', '_' and '-'."
  }
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key for the bucket's default encryption. Empty: Google-managed encryption."
  default     = ""
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days to keep old versions of state files before they are deleted."
  default     = 90

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "The noncurrent_version_days must be a whole number of at least 1."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Allow `terraform destroy` to delete the bucket while it still holds state files (keep false outside tests)."
  default     = false
}

variable "labels" {
  type        = map(string)
  description = "Labels of the bucket."
  default     = {}
}
