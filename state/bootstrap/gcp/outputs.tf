output "bucket" {
  description = "Name of the state bucket."
  value       = google_storage_bucket.state.name
}

output "skyterra_backend" {
  description = "The `backend:` mapping for ~/.skyterra/config.yaml or .skyterra.yaml."
  value = {
    type   = "gcs"
    bucket = google_storage_bucket.state.name
  }
}
