output "bucket" {
  description = "The bucket's name."
  value       = google_storage_bucket.bucket.name
}

output "url" {
  description = "The bucket as a file_mounts source."
  value       = google_storage_bucket.bucket.url
}
