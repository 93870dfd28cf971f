output "bucket" {
  description = "The bucket's name."
  value       = aws_s3_bucket.bucket.bucket
}

output "url" {
  description = "The bucket as a file_mounts source."
  value       = "s3://${aws_s3_bucket.bucket.bucket}"
}
