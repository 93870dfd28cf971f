variable "bucket_name" {
  description = "The Blob container's name (checked by skyterra against Azure's rule)."
  type        = string
}

variable "account" {
  description = "The existing storage account that holds the container."
  type        = string
}

variable "subscription_id" {
  description = "The subscription of the storage account; null: ARM_SUBSCRIPTION_ID."
  type        = string
  default     = null
}

variable "metadata" {
  description = "Metadata of the container (skyterra_bucket = <name>)."
  type        = map(string)
  default     = {}
}
