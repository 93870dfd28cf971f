output "bucket" {
  description = "Name of the state bucket."
  value       = aws_s3_bucket.state.id
}

output "region" {
  description = "Region of the bucket and the table."
  value       = var.region
}

output "dynamodb_table" {
  description = "Name of the lock table (null when S3-native locking is used)."
  value       = var.lock_table_name == "" ? null : aws_dynamodb_table.locks[0].name
}

output "skyterra_backend" {
  description = "The `backend:` mapping for ~/.skyterra/config.yaml or .skyterra.yaml (null keys are unused)."
  value = {
    type           = "s3"
    bucket         = aws_s3_bucket.state.id
    region         = var.region
    dynamodb_table = var.lock_table_name == "" ? null : aws_dynamodb_table.locks[0].name
    use_lockfile   = var.lock_table_name == ""
  }
}
