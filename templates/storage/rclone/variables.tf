variable "bucket_name" {
  description = "The bucket (or Blob container) to create; checked by skyterra."
  type        = string
}

variable "store" {
  description = "Which store the bucket is on (gcs, azure): recorded in the state."
  type        = string
}
