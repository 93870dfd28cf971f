output "bucket" {
  description = "The bucket's name."
  value       = terraform_data.bucket.output.bucket
}
