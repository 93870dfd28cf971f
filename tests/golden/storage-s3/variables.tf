variable "bucket_name" {
  description = "The S3 bucket's name (checked by skyterra against AWS's naming rule)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "An S3 bucket name is 3-63 lowercase letters, digits, '.' and '-'."
  }
}

variable "region" {
  description = "The AWS region of the bucket."
  type        = string
}

variable "tags" {
  description = "Tags of the bucket (skyterra-bucket = <name>)."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Delete the objects too when the bucket is destroyed (skyterra storage delete)."
  type        = bool
  default     = true
}

variable "s3_endpoint" {
  description = "An S3 emulator's URL (moto, LocalStack, MinIO); null for AWS itself."
  type        = string
  default     = null
}
