variable "bucket_name" {
  description = "The GCS bucket's name (checked by skyterra against Google's naming rule)."
  type        = string
}

variable "project" {
  description = "The project of the bucket; null: the provider's default (GOOGLE_CLOUD_PROJECT)."
  type        = string
  default     = null
}

variable "location" {
  description = "The bucket's location (a region or multi-region such as US)."
  type        = string
  default     = "US"
}

variable "labels" {
  description = "Labels of the bucket (skyterra-bucket = <name>)."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Delete the objects too when the bucket is destroyed (skyterra storage delete)."
  type        = bool
  default     = true
}
