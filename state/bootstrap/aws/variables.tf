variable "region" {
  type        = string
  description = "AWS region of the state bucket and the lock table, e.g. \"us-east-1\"."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must be an AWS region name such as \"us-east-1\"."
  }
}

variable "bucket_name" {
  type        = string
  description = "Name of the S3 bucket that holds the Terraform state of every skyterra cluster (globally unique)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.", var.bucket_name))
    error_message = "The bucket_name must be 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit."
  }
}

variable "lock_table_name" {
  type        = string
  description = "Name of the DynamoDB lock table (hash key LockID). Empty: no table; use S3-native locking (use_lockfile, Terraform >= 1.10) instead."
  default     = "skyterra-terraform-locks"

  validation {
    condition     = var.lock_table_name == "" || can(regex("^[A-Za-z0-9_.-]{3,255}$", var.lock_table_name))
    error_message = "The lock_table_name must be empty or 3-255 characters of letters, digits, '_', '.' and '-'."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for server-side encryption of the state objects. Empty: SSE-S3 (AES256)."
  default     = ""
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days to keep old versions of state files before they expire."
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

variable "tags" {
  type        = map(string)
  description = "Tags for the bucket and the table."
  default     = {}
}
